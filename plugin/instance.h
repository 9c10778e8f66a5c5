// instance.h: one loaded certacl plugin instance (one per `plugin` line; with
// per_listener_settings true, one per listener), the glue between Mosquitto's
// plugin events and the policy engine.
//
// Every method runs on the broker's network thread, is called only from the
// C callbacks in plugin.cc, and never blocks: no network I/O, and no file I/O
// except reading the policy at start-up and on SIGHUP (as Mosquitto itself
// re-reads its configuration then) and the state file at start-up. Disk
// writes of the state file happen in a child process, certacl-state-writer
// (a thread if it cannot be started), so the broker stays single-threaded.
//
// Per client id the instance keeps the device's resolved Session, for as long
// as Mosquitto may still ask about it: while connected, and while its
// persistent session is offline (READ checks happen for queued messages), up
// to plugin_opt_max_offline_sessions offline sessions (oldest dropped first).
// A device that reconnects with the certificate its offline session holds,
// under the same policy and before any time condition of its roles changes
// (Session::valid_until), keeps that Session: its certificate is not read
// again, only checked for expiry and revocation.
// Everything kept per client id (entry, Session, index nodes) is allocated
// from the instance's own pool, never among the broker's and OpenSSL's
// per-connection chunks in the malloc heap: mixed in there, these long-lived
// allocations made every TLS handshake's malloc calls slower (bench/RESULTS.md).
//
// Renewal over MQTT (the policy's [enroll], docs/enroll.md): every PUBLISH
// passes OnMessage after the ACL allowed it; under {prefix}/ retained
// messages and requests on another device's {id} are refused and requests
// are stamped with who sent them. Connected devices whose certificate is in
// its renewal window get one notice per connection, sent directly to them.
#ifndef CERTACL_PLUGIN_INSTANCE_H_
#define CERTACL_PLUGIN_INSTANCE_H_

#include <array>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <memory_resource>
#include <string>
#include <string_view>
#include <unordered_map>

#include "plugin/options.h"
#include "plugin/rate_limiter.h"
#include "plugin/revocation/service.h"
#include "plugin/state_file.h"
#include "plugin/string_hash.h"
#include "policy/policy.h"
#include "policy/session.h"
#include "policy/signature_cache.h"

struct mosquitto;
struct mosquitto_evt_message;

namespace certacl::plugin {

// Why a connect was refused, beyond the policy's own ConnectResult.
enum class Refusal : uint8_t {
  kNoCertificate,
  kClientIdInUse,  // another certificate holds this client id's session
  kPolicy,         // see the Session's ConnectResult
  kRevoked,        // a CRL or OCSP answer says revoked
  kRevocationUnknown,  // no status yet and mode = "hard-fail"
  kRevocationStale,    // only a CRL past nextUpdate + stale_grace, stale = "deny"
  kExpired,        // notAfter has passed (a resumed TLS session skips the check)
};

class Instance {
 public:
  explicit Instance(Options options);
  // Writes the state file's last lines and logs a warning if its writer
  // failed at the end (the broker is stopping: nothing would poll later).
  ~Instance();

  // Loads the policy and the state file. Returns "" or the error (the
  // broker then refuses to start).
  std::string Start();

  // The event handlers; return MOSQ_ERR_* codes.
  int OnBasicAuth(mosquitto* client);
  int OnAclCheck(mosquitto* client, const char* topic, int access, int qos, bool retain);
  // May replace event->properties (the broker keeps whatever list is left
  // there); MOSQ_ERR_ACL_DENIED drops the message (PUBACK 0x87 for MQTT 5).
  int OnMessage(mosquitto_evt_message* event);
  void OnDisconnect(mosquitto* client);
  int OnReload();
  void OnTick();

 private:
  using Digest = std::array<unsigned char, 32>;
  struct Entry;
  using EntryMap = std::pmr::unordered_map<std::pmr::string, Entry, StringHash, std::equal_to<>>;
  // An entry with its client id. Stable for the entry's lifetime (the nodes
  // of an unordered_map never move), so the indexes below hold these instead
  // of copies of client ids: every held connection costs the broker memory.
  using EntryRef = std::pair<const std::pmr::string, Entry>*;
  using TimeIndex = std::pmr::multimap<int64_t, EntryRef>;
  using OfflineList = std::pmr::list<EntryRef>;

  // Laid out by size (bools together): one of these per held connection.
  // Built in place by entries_ (uses-allocator construction: its strings
  // live in the instance's pool too).
  struct Entry {
    using allocator_type = std::pmr::polymorphic_allocator<char>;
    explicit Entry(const allocator_type& alloc) : der(alloc), rev_key(alloc), username(alloc) {}
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;

    // Resolved from `cert` (from `der` while offline, or after a reload).
    Session session;
    // DER of the certificate the entry was admitted with. Always set while
    // OFFLINE (for READ checks of queued messages, and to recognise a
    // reconnect with the same certificate). While connected it is empty
    // after a full resolution (encoded only at disconnect, which saves
    // ~600 B per held connection) and kept after a same-certificate
    // reconnect (where it was just compared).
    std::pmr::string der;
    // Revocation: the certificate's key (issuer id + serial); connected
    // entries are indexed by it in connected_by_key_ (which views this
    // string: it changes only while the entry is not indexed).
    std::pmr::string rev_key;
    // The username BASIC_AUTH set (from the certificate; kept for a
    // same-certificate reconnect). Empty until a full connect set it.
    std::pmr::string username;
    // The certificate of the admitting connection, while connected (its
    // DER is what the entry keeps at disconnect: the Session's certificate
    // even if a TLS renegotiation changed the connection's since; [enroll]
    // stamps only requests whose connection still has this very object).
    X509Ptr cert;
    uint64_t rev_generation = 0;  // revocation_.generation() `revoked` is as of
    const mosquitto* client = nullptr;  // the connection holding it
    OfflineList::iterator offline_pos;  // valid when in_offline_list
    TimeIndex::iterator expiry_pos;     // valid when in_expiry
    TimeIndex::iterator notice_pos;     // valid when in_notices
    // The certificate's validity (0: unknown, e.g. restored from the state
    // file and not connected since).
    int64_t not_after = 0;
    int64_t not_before = 0;
    Digest owner{};  // SHA-256 of subject + issuer DER: who holds this client id
    bool connected = false;
    bool in_state_file = false;  // the state file has this client id's certificate
    bool in_offline_list = false;
    bool revoked = false;        // known revoked as of rev_generation
    bool in_expiry = false;
    bool notice_sent = false;    // the renewal notice of this connection
    bool in_notices = false;
    // Every subscription the connection's MQTT session holds passed
    // session.ReadsCovered(): its deliveries need no CheckRead (OnAclCheck).
    // True from a clean start (no subscription yet) until a subscription
    // that does not pass; kept across a resume of the session with the same
    // certificate, or with another one (a renewal) whose Session reads
    // alike, and across re-resolutions with the same read rules; false
    // whenever unsure (a restored session, a resume or a SIGHUP with other
    // read rules). Only read while connected: every connect sets it, and
    // only a resume by the entry's own client id carries it over.
    bool reads_covered = false;
  };
  // True if `cert` is the certificate of the OFFLINE entry `e` and its
  // Session is what a full connect would resolve now (same policy, before
  // valid_until, connect allowed): the reconnect may keep it. Leaves the
  // DER of `cert` in der_scratch_ when it gets that far.
  bool SameCertificateReconnect(const Entry& e, X509* cert, int64_t now);
  // Queues the `ca` checks done since the last call for the state file.
  void PersistSignatures();
  Entry* Find(std::string_view client_id);
  Entry* FindOrRestore(std::string_view client_id);
  // FindOrRestore(client_id) for an ACL check of `client`: its connection's
  // entry by pointer when `client` holds it (no hashing of the client id),
  // checked to be the very entry the lookup by id would return.
  Entry* FindForCheck(const mosquitto* client, const char* client_id);
  // Re-resolves an entry against the current policy if it was resolved
  // against an older one (after a reload).
  void Refresh(std::string_view client_id, Entry* e);
  int Refuse(mosquitto* client, Refusal why, const Session* session, const std::string& detail);
  int RecheckWithoutCertificate(mosquitto* client, std::string_view client_id);
  void MarkOffline(EntryMap::iterator it);
  void Erase(EntryMap::iterator it);
  // Adopts background revocation results and finds devices to disconnect
  // (revoked, expired); disconnects them only if `may_kick` (TICK, and
  // BASIC_AUTH of another client: never inside an ACL check, where the
  // broker may be iterating the subscriptions a disconnect would change).
  void Pump(int64_t now, bool may_kick);
  bool Revoked(Entry* e);
  void IndexConnected(EntryRef ref);
  void UnindexConnected(EntryRef ref);
  // The renewal notice of a connected entry: sent now if its window is open
  // and `may_send_now`, otherwise queued in notices_ for when it opens.
  void ScheduleNotice(EntryRef ref, int64_t now, bool may_send_now);
  void SendNotice(std::string_view client_id, Entry* e);
  void LogEnroll() const;
  // Builds the fast signature verifiers for the policy's `ca` keys
  // (SignatureCache::PrepareVerifiers), and says so.
  void PrepareVerifiers();
  enum class EnrollRefusal : uint8_t { kOtherIdentity, kRetained, kNoIdentity, kInternalError, kBridgeTopic };
  int RefuseEnroll(EnrollRefusal why, const char* topic, const char* client_id, const std::string& detail);
  void MaybePublishSys(int64_t now_s);
  void PublishSys();
  static int64_t Now();
  static int64_t MonotonicMs();

  Options options_;
  // Declared before everything allocated from it (destroyed after them).
  // Broker thread only, like every member below but revocation_'s inside.
  std::pmr::unsynchronized_pool_resource memory_;
  std::shared_ptr<const Policy> policy_;
  // `ca` checks already done (a reconnect is not verified again).
  SignatureCache signatures_{SignatureCache::kDefaultMaxEntries, &memory_};
  EntryMap entries_{&memory_};
  OfflineList offline_order_{&memory_};  // oldest first
  std::unordered_map<std::string, std::string> restored_;  // from the state file: client id -> DER
  std::unique_ptr<StateFile> state_file_;
  RateLimiter refusal_log_;
  int64_t reload_recheck_until_ms_ = 0;  // SIGHUP re-check window
  int64_t last_sys_publish_s_ = 0;
  std::string der_scratch_;  // a connection's DER (SameCertificateReconnect, state file), reused

  revocation::Service revocation_;
  std::pmr::unordered_multimap<std::string_view, EntryRef> connected_by_key_{&memory_};  // Entry::rev_key -> connected entry
  // Connection -> the entry it holds (IndexConnected/UnindexConnected keep
  // it; a lookup still compares the entry's client id and connection, so an
  // entry is never taken for another connection's).
  std::pmr::unordered_map<const mosquitto*, EntryRef> by_client_{&memory_};
  TimeIndex expiry_{&memory_};   // notAfter -> connected entry
  TimeIndex notices_{&memory_};  // renewal window start -> connected entry whose notice is not sent
  struct Kick {
    std::string client_id;
    std::string rev_key;  // revoked: still the same certificate?
    int64_t not_after;    // expired: still the same certificate?
    bool revoked;
  };
  std::vector<Kick> kicks_;

  struct Counters {
    uint64_t accepted = 0;
    uint64_t accepted_same_certificate = 0;  // of which kept their offline Session
    uint64_t refused[16] = {};  // by RefusalIndex()
    uint64_t acl[3][2] = {};    // [publish, subscribe, read][allowed, denied]
    uint64_t reads_covered = 0;  // of acl[2][0], allowed by Entry::reads_covered
    uint64_t reloads = 0;
    uint64_t reload_failures = 0;
    uint64_t disconnected_revoked = 0;
    uint64_t disconnected_expired = 0;
    uint64_t soft_fail_admitted = 0;
    uint64_t enroll_stamped = 0;
    uint64_t enroll_refused[5] = {};  // by EnrollRefusal
    uint64_t enroll_notices = 0;
  } counters_;
};

}  // namespace certacl::plugin

#endif  // CERTACL_PLUGIN_INSTANCE_H_
