// instance.cc: Mosquitto events -> policy engine decisions.
#include "plugin/instance.h"

#include <dlfcn.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <mqtt_protocol.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>

#include "plugin/run_aside.h"
#include "policy/enroll_config.h"
#include "policy/identity.h"
#include "policy/p256_verifier.h"
#include "policy/sha256.h"

// Mosquitto's own builds export only the functions listed in its
// src/linker.syms, which has the property writers but not these readers
// (Debian's build exports them all). Weak references keep the plugin
// loadable on such a broker; there, certacl cannot read a message's
// properties and refuses enrollment messages that carry any.
#pragma weak mosquitto_property_next
#pragma weak mosquitto_property_identifier
#pragma weak mosquitto_property_read_byte
#pragma weak mosquitto_property_read_int16
#pragma weak mosquitto_property_read_int32
#pragma weak mosquitto_property_read_varint
#pragma weak mosquitto_property_read_binary
#pragma weak mosquitto_property_read_string
#pragma weak mosquitto_property_read_string_pair

namespace certacl::plugin {
namespace {

// certacl-state-writer in the directory this plugin was loaded from (where
// `cmake --install` and the build tree put it), or "" if unknown.
std::string DefaultStateWriter() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&DefaultStateWriter), &info) == 0 || info.dli_fname == nullptr) return "";
  std::error_code ec;
  const std::filesystem::path plugin = std::filesystem::absolute(info.dli_fname, ec);
  if (ec) return "";
  return (plugin.parent_path() / "certacl-state-writer").string();
}

bool PropertyReadersAvailable() {
  return &mosquitto_property_next != nullptr && &mosquitto_property_identifier != nullptr &&
         &mosquitto_property_read_byte != nullptr && &mosquitto_property_read_int16 != nullptr &&
         &mosquitto_property_read_int32 != nullptr && &mosquitto_property_read_varint != nullptr &&
         &mosquitto_property_read_binary != nullptr && &mosquitto_property_read_string != nullptr &&
         &mosquitto_property_read_string_pair != nullptr;
}

// $SYS names of Instance::EnrollRefusal, in order.
constexpr const char* kEnrollRefusalNames[] = {"other-identity", "retained", "no-identity", "internal-error",
                                               "bridge-topic"};

// What certacl adds to a request (docs/enroll.md, "The stamp").
struct Stamp {
  std::string identity;
  std::string client_id;
  std::string certificate;  // base64 of the DER, no line breaks
};

// True if the list holds a user property in the stamp's namespace. Needs
// PropertyReadersAvailable().
bool HasStampProperty(const mosquitto_property* list) {
  for (const mosquitto_property* p = list; p != nullptr; p = mosquitto_property_next(p)) {
    if (mosquitto_property_identifier(p) != MQTT_PROP_USER_PROPERTY) continue;
    char* name = nullptr;
    mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, nullptr, false);
    const bool stamp = name == nullptr || IsStampPropertyName(name);  // unreadable: rewrite to be safe
    std::free(name);
    if (stamp) return true;
  }
  return false;
}

// Appends a copy of property `p` to *out, unless it is a user property in
// the stamp's namespace. The readers allocate with malloc. False if it
// cannot be copied (out of memory, or a property a PUBLISH never carries).
bool CopyUnlessStamp(const mosquitto_property* p, mosquitto_property** out) {
  const int id = mosquitto_property_identifier(p);
  switch (id) {
    case MQTT_PROP_PAYLOAD_FORMAT_INDICATOR: {
      uint8_t v = 0;
      return mosquitto_property_read_byte(p, id, &v, false) && mosquitto_property_add_byte(out, id, v) == MOSQ_ERR_SUCCESS;
    }
    case MQTT_PROP_TOPIC_ALIAS: {
      uint16_t v = 0;
      return mosquitto_property_read_int16(p, id, &v, false) && mosquitto_property_add_int16(out, id, v) == MOSQ_ERR_SUCCESS;
    }
    case MQTT_PROP_MESSAGE_EXPIRY_INTERVAL: {
      uint32_t v = 0;
      return mosquitto_property_read_int32(p, id, &v, false) && mosquitto_property_add_int32(out, id, v) == MOSQ_ERR_SUCCESS;
    }
    case MQTT_PROP_SUBSCRIPTION_IDENTIFIER: {
      uint32_t v = 0;
      return mosquitto_property_read_varint(p, id, &v, false) && mosquitto_property_add_varint(out, id, v) == MOSQ_ERR_SUCCESS;
    }
    case MQTT_PROP_CORRELATION_DATA: {
      void* v = nullptr;
      uint16_t len = 0;
      const bool ok = mosquitto_property_read_binary(p, id, &v, &len, false) &&
                      mosquitto_property_add_binary(out, id, v, len) == MOSQ_ERR_SUCCESS;
      std::free(v);
      return ok;
    }
    case MQTT_PROP_CONTENT_TYPE:
    case MQTT_PROP_RESPONSE_TOPIC: {
      char* v = nullptr;
      const bool ok = mosquitto_property_read_string(p, id, &v, false) &&
                      mosquitto_property_add_string(out, id, v) == MOSQ_ERR_SUCCESS;
      std::free(v);
      return ok;
    }
    case MQTT_PROP_USER_PROPERTY: {
      char* name = nullptr;
      char* value = nullptr;
      bool ok = mosquitto_property_read_string_pair(p, id, &name, &value, false) != nullptr;
      if (ok && !IsStampPropertyName(name)) ok = mosquitto_property_add_string_pair(out, id, name, value) == MOSQ_ERR_SUCCESS;
      std::free(name);
      std::free(value);
      return ok;
    }
    default:
      return false;
  }
}

// Replaces *list by a copy without the client's stamp-named user properties,
// plus `stamp` if given. Leaves a list that needs no change untouched.
// False (and *list unchanged) if the list cannot be rebuilt.
bool RewriteProperties(mosquitto_property** list, const Stamp* stamp) {
  if (stamp == nullptr && !HasStampProperty(*list)) return true;
  mosquitto_property* out = nullptr;
  bool ok = true;
  for (const mosquitto_property* p = *list; ok && p != nullptr; p = mosquitto_property_next(p)) {
    ok = CopyUnlessStamp(p, &out);
  }
  if (ok && stamp != nullptr) {
    ok = mosquitto_property_add_string_pair(&out, MQTT_PROP_USER_PROPERTY, kStampIdentity, stamp->identity.c_str()) ==
             MOSQ_ERR_SUCCESS &&
         mosquitto_property_add_string_pair(&out, MQTT_PROP_USER_PROPERTY, kStampClientId, stamp->client_id.c_str()) ==
             MOSQ_ERR_SUCCESS &&
         mosquitto_property_add_string_pair(&out, MQTT_PROP_USER_PROPERTY, kStampCertificate,
                                            stamp->certificate.c_str()) == MOSQ_ERR_SUCCESS;
  }
  if (!ok) {
    mosquitto_property_free_all(&out);
    return false;
  }
  mosquitto_property_free_all(list);
  *list = out;
  return true;
}

// Refusal reasons as counted and published: index -> $SYS name.
constexpr const char* kRefusalNames[] = {
    "no-certificate", "client-id-in-use", "deny-entry", "malformed-certificate",
    "no-role", "client-id-mismatch", "client-id-ambiguous", "client-id-unresolvable",
    "certificate-revoked", "revocation-unknown", "revocation-stale", "certificate-expired",
};
constexpr size_t kRefusalCount = sizeof(kRefusalNames) / sizeof(kRefusalNames[0]);

size_t RefusalIndex(Refusal why, const Session* s) {
  switch (why) {
    case Refusal::kNoCertificate: return 0;
    case Refusal::kClientIdInUse: return 1;
    case Refusal::kRevoked: return 8;
    case Refusal::kRevocationUnknown: return 9;
    case Refusal::kRevocationStale: return 10;
    case Refusal::kExpired: return 11;
    case Refusal::kPolicy: break;
  }
  switch (s->connect_result()) {
    case ConnectResult::kDeniedByDenyEntry: return 2;
    case ConnectResult::kMalformedCertificate: return 3;
    case ConnectResult::kNoRole: return 4;
    case ConnectResult::kClientIdMismatch: return 5;
    case ConnectResult::kClientIdAmbiguous: return 6;
    case ConnectResult::kClientIdUnresolvable: return 7;
    case ConnectResult::kAllowed: break;
  }
  return 4;
}

// Client ids and topics come from the network: escape anything that is not
// printable ASCII before it reaches the log.
std::string Printable(std::string_view s, size_t max = 200) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

std::string Der(X509* cert) { return ToDer<X509, i2d_X509>(cert); }
std::string NameDer(const X509_NAME* name) { return ToDer<const X509_NAME, i2d_X509_NAME>(name); }

// Who holds a client id: a digest of the certificate's subject and issuer,
// so a renewed certificate of the same device is the same owner. False if
// it cannot be computed (the caller then refuses: no owner, no session).
bool Owner(X509* cert, std::array<unsigned char, 32>* out) {
  return Sha256(NameDer(X509_get_subject_name(cert)) + '\0' + NameDer(X509_get_issuer_name(cert)), out);
}

// Loads the policy; one of kParseAsideBytes or more with RunAside (a
// 100,000-role policy is ~20 MB of TOML). A small one is parsed in place:
// starting a thread would switch glibc's malloc to its locked path for
// good (~0.6 % of the broker's instructions per connect, callgrind), and a
// policy without revocation, which has no worker threads, should not pay
// that for nothing.
constexpr uintmax_t kParseAsideBytes = 1 << 20;

std::shared_ptr<const Policy> LoadPolicy(const std::string& path, std::vector<Diagnostic>* diags) {
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec || size < kParseAsideBytes) return LoadPolicyFile(path, diags);  // errors are LoadPolicyFile's to report
  std::shared_ptr<const Policy> out;
  RunAside([&] { out = LoadPolicyFile(path, diags); });
  return out;
}

// A topic level for a URL in $SYS: '/', '+', '#' and anything unprintable
// percent-encoded.
std::string TopicLevel(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c > 0x20 && c < 0x7f && c != '/' && c != '+' && c != '#' && c != '%') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

X509Ptr FromDer(std::string_view der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  return X509Ptr(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

// The username certacl gives a device (logs, and Mosquitto's SIGHUP re-check
// keeps clients that have one): its CN when it has exactly one, otherwise a
// fingerprint prefix (cert.sha256's first 16 hex digits).
std::string UsernameFor(const Identity& id) {
  const std::vector<std::string>* cn = id.Values("subject.CN");
  if (cn && cn->size() == 1 && !(*cn)[0].empty()) return (*cn)[0];
  if (const std::vector<std::string>* fp = id.Values("cert.sha256")) return "sha256:" + fp->front().substr(0, 16);
  // Not computed: the policy does not name it.
  const std::vector<std::string>* fp = Identity::FromCertificate(id.certificate(), kComputedSha256).Values("cert.sha256");
  return "sha256:" + (fp ? fp->front().substr(0, 16) : std::string("unknown"));
}

// MQTT 3.1.1 with clean session: the session ends with the connection.
// MQTT 5 sessions may outlive it (session expiry), which plugins cannot read
// in Mosquitto 2.0: keep those unless the operator says the fleet never
// combines clean start with an expiry.
bool MayPersist(mosquitto* client, bool keep_mqtt5_clean_sessions) {
  if (!mosquitto_client_clean_session(client)) return true;
  return keep_mqtt5_clean_sessions && mosquitto_client_protocol_version(client) == 5;
}

}  // namespace

Instance::Instance(Options options)
    : options_(std::move(options)), refusal_log_(options_.log_refusals_per_minute) {}

Instance::~Instance() {
  // The state file's last lines go now, and what its writer did at the end
  // (a non-zero exit, a thread taking over) is logged: nothing polls later.
  if (!state_file_) return;
  try {
    state_file_->Flush();
    const std::string w = state_file_->Poll();
    if (!w.empty()) mosquitto_log_printf(MOSQ_LOG_WARNING, "certacl: %s", w.c_str());
  } catch (const std::exception& e) {
    mosquitto_log_printf(MOSQ_LOG_WARNING, "certacl: the state file at shutdown: %s", e.what());
  }
}

int64_t Instance::Now() { return static_cast<int64_t>(std::time(nullptr)); }

int64_t Instance::MonotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string Instance::Start() {
  std::vector<Diagnostic> diags;
  policy_ = LoadPolicy(options_.policy, &diags);
  if (!policy_) {
    std::string all;
    for (const Diagnostic& d : diags) {
      mosquitto_log_printf(MOSQ_LOG_ERR, "certacl: %s", d.ToString().c_str());
      if (all.empty()) all = d.ToString();
    }
    return "cannot load the policy " + options_.policy + ": " + all;
  }
  if (!options_.state_file.empty()) {
    state_file_ = std::make_unique<StateFile>();
    state_file_->SetWriter(options_.state_writer.empty() ? DefaultStateWriter() : options_.state_writer);
    std::vector<SignatureCache::Key> verified;
    std::string warning;
    std::string err = state_file_->Open(options_.state_file, &restored_, &verified, signatures_.max_entries(), &warning);
    if (!err.empty()) return err;
    if (!warning.empty()) mosquitto_log_printf(MOSQ_LOG_WARNING, "certacl: %s", warning.c_str());
    if (state_file_->writer_pid() > 0) {
      mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: %s is written by %s (pid %d)", options_.state_file.c_str(),
                           options_.state_writer.empty() ? "certacl-state-writer" : options_.state_writer.c_str(),
                           static_cast<int>(state_file_->writer_pid()));
    }
    for (const SignatureCache::Key& k : verified) signatures_.Restore(k);
    signatures_.EnableJournal();
    if (!verified.empty()) {
      mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: %zu signature checks restored from %s", verified.size(),
                           options_.state_file.c_str());
    }
  }
  mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: policy %s loaded: %zu roles, %zu deny entries%s",
                       options_.policy.c_str(), policy_->roles.size(), policy_->denies.size(),
                       restored_.empty() ? "" : (", " + std::to_string(restored_.size()) +
                                                 " persistent-session identities restored").c_str());
  LogEnroll();
  PrepareVerifiers();
  std::vector<std::string> log;
  revocation_.Configure(policy_, Now(), true, &log);
  for (const std::string& line : log) mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: %s", line.c_str());
  last_sys_publish_s_ = Now();
  return "";
}

void Instance::PrepareVerifiers() {
  // The CAs that roles and deny entries name in `ca`, in policy order (not
  // those named only as revocation issuers: no signature check uses them).
  std::vector<bool> seen(policy_->cas.size(), false);
  std::vector<const TrustAnchor*> named;
  auto add = [&](const Conditions& when) {
    for (uint32_t ca : when.cas) {
      if (ca >= seen.size() || seen[ca]) continue;
      seen[ca] = true;
      named.push_back(&policy_->cas[ca]);
    }
  };
  for (const Role& r : policy_->roles) add(r.when);
  for (const DenyEntry& d : policy_->denies) add(d.when);
  std::vector<SignatureCache::CaKey> keys;
  keys.reserve(named.size());
  for (const TrustAnchor* a : named) keys.push_back({a->key_sha256, X509_get0_pubkey(a->cert.get())});
  const int64_t start = MonotonicMs();
  const size_t built = signatures_.PrepareVerifiers(keys);
  if (built > 0) {
    mosquitto_log_printf(MOSQ_LOG_NOTICE,
                         "certacl: %zu `ca` key%s prepared for fast signature checks in %lld ms (~%zu KiB each); "
                         "%zu in use",
                         built, built == 1 ? "" : "s", static_cast<long long>(MonotonicMs() - start),
                         P256Verifier::kTableBytes / 1024, signatures_.verifiers());
  }
  // The others are checked with X509_verify: say which (the first few) and
  // why, so that an operator can tell what a device's first connect costs.
  constexpr size_t kListed = 8;
  size_t unprepared = 0;
  for (const TrustAnchor* a : named) {
    if (signatures_.VerifierFor(a->key_sha256) != nullptr) continue;
    if (++unprepared > kListed) continue;
    const std::string why = P256Verifier::Supports(X509_get0_pubkey(a->cert.get()))
                                ? "beyond the keys prepared (at most " +
                                      std::to_string(SignatureCache::kMaxVerifiers) + ")"
                                : "not a P-256 key";
    mosquitto_log_printf(MOSQ_LOG_NOTICE,
                         "certacl: `ca` %s (%s): %s, so its signature checks use X509_verify (~3x the CPU of a "
                         "prepared key, once per device and certificate)",
                         a->path.c_str(), a->description.c_str(), why.c_str());
  }
  if (unprepared > kListed) {
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: and %zu more `ca` keys checked with X509_verify",
                         unprepared - kListed);
  }
}

void Instance::PersistSignatures() {
  if (!state_file_) return;
  for (const SignatureCache::Key& k : signatures_.TakeAdded()) state_file_->PutSignature(k);
}

Instance::Entry* Instance::Find(std::string_view client_id) {
  auto it = entries_.find(client_id);
  return it == entries_.end() ? nullptr : &it->second;
}

Instance::Entry* Instance::FindOrRestore(std::string_view client_id) {
  if (Entry* e = Find(client_id)) return e;
  auto r = restored_.find(std::string(client_id));
  if (r == restored_.end()) return nullptr;
  // A persistent session Mosquitto restored after a restart: decide for it
  // with the certificate it last connected with.
  std::string der = std::move(r->second);
  restored_.erase(r);
  X509Ptr cert = FromDer(der);
  if (!cert) return nullptr;
  Digest owner;
  if (!Owner(cert.get(), &owner)) return nullptr;
  auto it = entries_.try_emplace(std::pmr::string(client_id, &memory_)).first;
  it->second.owner = owner;
  it->second.der = der;
  it->second.in_state_file = true;
  MarkOffline(it);
  return Find(client_id);
}

Instance::Entry* Instance::FindForCheck(const mosquitto* client, const char* client_id) {
  if (auto c = by_client_.find(client); c != by_client_.end()) {
    EntryRef ref = c->second;
    if (ref->second.connected && ref->second.client == client && ref->first == std::string_view(client_id)) {
      return &ref->second;
    }
  }
  return FindOrRestore(client_id);
}

// Every entry is re-resolved once after a policy reload, from the
// certificate it was admitted with (a restored one, which has no Session
// yet, at its first check).
void Instance::Refresh(std::string_view client_id, Entry* e) {
  if (e->session.policy() == policy_.get()) return;
  X509Ptr from_der;
  X509* cert = e->cert.get();  // connected: the admitted certificate
  if (!e->connected && !e->der.empty()) {
    from_der = FromDer(e->der);
    cert = from_der.get();
  }
  if (!cert) return;
  e->session = Session::Resolve(policy_, Identity::FromCertificate(cert, policy_->computed), client_id, Now(),
                                &signatures_, &memory_);
  // Connected entries are re-resolved by the broker's re-check (BASIC_AUTH)
  // after a reload, which keeps what it can; here nothing is assumed.
  e->reads_covered = false;
  PersistSignatures();
  if (e->rev_key.empty()) {
    e->rev_key = revocation_.KeyOf(cert);
    // Connected before revocation was configured: index it now, or a
    // revocation found later would not disconnect it.
    if (e->connected && !e->rev_key.empty()) {
      auto it = entries_.find(client_id);
      if (it != entries_.end() && &it->second == e) {
        connected_by_key_.emplace(e->rev_key, &*it);
        revocation_.NoteConnected(e->rev_key);
      }
    }
  }
}

// Known revoked? Re-evaluated only when the revocation data changed.
bool Instance::Revoked(Entry* e) {
  if (!revocation_.enabled() || e->rev_key.empty()) return false;
  if (e->rev_generation != revocation_.generation()) {
    e->revoked = revocation_.IsRevoked(e->rev_key);
    e->rev_generation = revocation_.generation();
  }
  return e->revoked;
}

void Instance::IndexConnected(EntryRef ref) {
  Entry* e = &ref->second;
  if (e->client) by_client_[e->client] = ref;
  if (!e->rev_key.empty()) {
    connected_by_key_.emplace(e->rev_key, ref);
    revocation_.NoteConnected(e->rev_key);
  }
  if (e->not_after > 0) {
    e->expiry_pos = expiry_.emplace(e->not_after, ref);
    e->in_expiry = true;
  }
}

void Instance::UnindexConnected(EntryRef ref) {
  Entry* e = &ref->second;
  if (auto c = by_client_.find(e->client); c != by_client_.end() && c->second == ref) by_client_.erase(c);
  if (e->in_expiry) {
    expiry_.erase(e->expiry_pos);
    e->in_expiry = false;
  }
  if (e->in_notices) {
    notices_.erase(e->notice_pos);
    e->in_notices = false;
  }
  if (e->rev_key.empty()) return;
  auto [b, end] = connected_by_key_.equal_range(e->rev_key);
  for (auto it = b; it != end; ++it) {
    if (it->second == ref) {
      connected_by_key_.erase(it);
      break;
    }
  }
  revocation_.NoteDisconnected(e->rev_key);
}

void Instance::Pump(int64_t now, bool may_kick) {
  if (state_file_ && state_file_->NeedsPoll()) {
    const std::string w = state_file_->Poll();
    if (!w.empty()) mosquitto_log_printf(MOSQ_LOG_WARNING, "certacl: %s", w.c_str());
  }
  if (revocation_.HasPending(now)) {
    revocation::Update u;
    const auto started = std::chrono::steady_clock::now();
    if (revocation_.Poll(now, &u)) {
      for (const std::string& l : u.log_info) mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: %s", l.c_str());
      for (const std::string& l : u.log_warning) mosquitto_log_printf(MOSQ_LOG_WARNING, "certacl: %s", l.c_str());
      if (u.recheck_all) {
        for (const auto& [key, ref] : connected_by_key_) {
          const std::pmr::string& rev_key = ref->second.rev_key;
          if (revocation_.IsRevoked(rev_key)) kicks_.push_back({std::string(ref->first), std::string(rev_key), 0, true});
        }
      } else {
        for (const std::string& key : u.revoked_keys) {
          auto [b, end] = connected_by_key_.equal_range(key);
          for (auto it = b; it != end; ++it) kicks_.push_back({std::string(it->second->first), key, 0, true});
        }
      }
      // The broker thread's whole share of a revocation update: worth
      // knowing when a CRL has a million entries.
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
      mosquitto_log_printf(MOSQ_LOG_DEBUG, "certacl: revocation update applied on the broker thread in %lld us",
                           static_cast<long long>(us.count()));
      if (!u.revoked_keys.empty() || u.recheck_all || !u.log_info.empty()) {
        mosquitto_log_printf(MOSQ_LOG_INFO, "certacl: revocation update applied in %lld us (%zu newly revoked%s)",
                             static_cast<long long>(us.count()), u.revoked_keys.size(),
                             u.recheck_all ? ", all connected devices re-checked" : "");
      }
    }
  }
  if (policy_->revocation.disconnect_expired) {
    for (auto it = expiry_.begin(); it != expiry_.end() && it->first < now;) {
      kicks_.push_back({std::string(it->second->first), {}, it->first, false});
      it->second->second.in_expiry = false;
      it = expiry_.erase(it);
    }
  }
  // Renewal windows that opened for connected devices. Bounded per event
  // like the kicks below: a batch of certificates issued together opens
  // its windows together.
  constexpr size_t kMaxNoticesPerEvent = 2000;
  for (size_t n = 0; n < kMaxNoticesPerEvent && !notices_.empty() && notices_.begin()->first <= now; ++n) {
    EntryRef ref = notices_.begin()->second;
    notices_.erase(notices_.begin());
    Entry* e = &ref->second;
    e->in_notices = false;
    if (e->connected && !e->notice_sent) SendNotice(ref->first, e);
  }
  if (!may_kick || kicks_.empty()) return;
  // At most kMaxKicksPerEvent disconnects per event (each closes a socket
  // and may end a session): a mass revocation is worked off over a few
  // ticks instead of stalling the broker for seconds.
  constexpr size_t kMaxKicksPerEvent = 2000;
  std::vector<Kick> kicks;
  if (kicks_.size() <= kMaxKicksPerEvent) {
    kicks = std::move(kicks_);
    kicks_.clear();
  } else {
    kicks.assign(std::make_move_iterator(kicks_.begin()), std::make_move_iterator(kicks_.begin() + kMaxKicksPerEvent));
    kicks_.erase(kicks_.begin(), kicks_.begin() + kMaxKicksPerEvent);
  }
  for (const Kick& k : kicks) {
    Entry* e = Find(k.client_id);
    if (!e || !e->connected) continue;
    if (k.revoked ? std::string_view(e->rev_key) != k.rev_key : e->not_after != k.not_after) continue;  // reconnected since
    if (k.revoked) {
      e->revoked = true;
      ++counters_.disconnected_revoked;
    } else {
      ++counters_.disconnected_expired;
    }
    uint64_t suppressed = 0;
    if (refusal_log_.Allow(now, &suppressed)) {
      if (suppressed) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: %llu refusal log lines suppressed in the last minute",
                             static_cast<unsigned long long>(suppressed));
      }
      mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: disconnecting client '%s': its certificate %s",
                           Printable(k.client_id).c_str(), k.revoked ? "has been revoked" : "has expired");
    }
    // Never a null id: that would disconnect every client.
    if (!k.client_id.empty()) mosquitto_kick_client_by_clientid(k.client_id.c_str(), false);
  }
  PublishSys();
}

int Instance::Refuse(mosquitto* client, Refusal why, const Session* session, const std::string& detail) {
  const size_t index = RefusalIndex(why, session);
  ++counters_.refused[index];
  uint64_t suppressed = 0;
  if (refusal_log_.Allow(Now(), &suppressed)) {
    if (suppressed) {
      mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: %llu refusal log lines suppressed in the last minute",
                           static_cast<unsigned long long>(suppressed));
    }
    const char* id = mosquitto_client_id(client);
    const char* address = mosquitto_client_address(client);
    std::string reason = session ? " [" + session->ExplainConnect() : "";
    if (session && !session->notes().empty()) reason += " (" + session->notes().back() + ")";
    if (session) reason += "]";
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: refused client '%s' from %s: %s%s; %s",
                         Printable(id ? id : "").c_str(), address ? address : "?", kRefusalNames[index],
                         Printable(reason, 400).c_str(), Printable(detail, 400).c_str());
  }
  return MOSQ_ERR_AUTH;
}

bool Instance::SameCertificateReconnect(const Entry& e, X509* cert, int64_t now) {
  if (e.connected || e.der.empty() || e.username.empty() || e.session.policy() != policy_.get() ||
      !e.session.connect_allowed() || now >= e.session.valid_until()) {
    return false;
  }
  // The whole DER, byte for byte, left in der_scratch_ for the caller: i2d
  // reuses the encoding OpenSSL kept from the handshake (~0.2 us, against
  // ~25 us to read and resolve it again).
  DerInto<X509, i2d_X509>(cert, &der_scratch_);
  return std::string_view(der_scratch_) == std::string_view(e.der);
}

int Instance::OnBasicAuth(mosquitto* client) {
  const char* id_c = mosquitto_client_id(client);
  const std::string client_id = id_c ? id_c : "";
  X509Ptr cert(static_cast<X509*>(mosquitto_client_certificate(client)));
  const bool recheck = MonotonicMs() < reload_recheck_until_ms_;
  if (!cert) {
    if (recheck) return RecheckWithoutCertificate(client, client_id);
    return Refuse(client, Refusal::kNoCertificate, nullptr, "no TLS client certificate (set require_certificate true)");
  }
  const int64_t now = Now();
  Pump(now, true);
  MaybePublishSys(now);
  auto it = entries_.find(std::string_view(client_id));
  // The common reconnect: the offline entry's own certificate again. Its
  // Session, owner, username and validity stand; expiry and revocation are
  // checked below as for any connect.
  const bool same_certificate = !recheck && it != entries_.end() && SameCertificateReconnect(it->second, cert.get(), now);
  Identity identity;
  // Only the computed attributes the policy names: formatting the others
  // is most of what reading a certificate costs.
  if (!same_certificate) identity = Identity::FromCertificate(cert.get(), policy_->computed);
  // What a refusal says about the certificate (read now if it was not).
  auto describe = [&]() -> std::string {
    if (same_certificate) return Identity::FromCertificate(cert.get()).Describe();
    return identity.Describe();
  };
  // Expiry and revocation first: a resumed TLS session skips the broker's
  // own certificate checks, and a revoked device learns nothing more.
  const int64_t not_after = same_certificate ? it->second.not_after : identity.not_after();
  if (not_after > 0 && not_after < now) {
    return Refuse(client, Refusal::kExpired, nullptr, describe() + "; notAfter has passed");
  }
  revocation::CheckResult rv = revocation_.Check(cert.get(), now);
  switch (rv.status) {
    case revocation::Status::kGood: break;
    case revocation::Status::kRevoked:
      return Refuse(client, Refusal::kRevoked, nullptr, describe() + "; " + rv.detail);
    case revocation::Status::kStale:
      // During the SIGHUP re-check only a revoked answer disconnects: a
      // reload must not drop the fleet for want of fresh data.
      if (!recheck) return Refuse(client, Refusal::kRevocationStale, nullptr, describe() + "; " + rv.detail);
      break;
    case revocation::Status::kUnknown:
      if (recheck) break;
      if (revocation_.mode() == RevocationConfig::Mode::kHardFail) {
        return Refuse(client, Refusal::kRevocationUnknown, nullptr,
                      describe() + "; " + rv.detail + " (hard-fail: a retry succeeds once it is known)");
      }
      ++counters_.soft_fail_admitted;  // soft-fail: disconnected if a revoked answer arrives
      break;
  }
  Session session;
  Digest owner;
  if (!same_certificate) {
    session = Session::Resolve(policy_, identity, client_id, now, &signatures_, &memory_);
    PersistSignatures();
    if (!session.connect_allowed()) return Refuse(client, Refusal::kPolicy, &session, identity.Describe());
    if (!Owner(cert.get(), &owner)) {
      return Refuse(client, Refusal::kClientIdInUse, nullptr,
                    identity.Describe() + "; cannot digest the certificate's names to bind the client id");
    }
    if (!recheck && !policy_->client_id) {
      // Without a client-id binding, another certificate must not take over
      // a session (and its queued messages) held by this client id.
      Digest holder;
      bool held = false;
      if (it != entries_.end()) {
        holder = it->second.owner;
        held = true;
      } else if (auto r = restored_.find(client_id); r != restored_.end()) {
        if (X509Ptr old = FromDer(r->second)) held = Owner(old.get(), &holder);
      }
      if (held && holder != owner) {
        return Refuse(client, Refusal::kClientIdInUse, nullptr,
                      identity.Describe() + "; the client id's session belongs to another certificate");
      }
    }
  }
  if (it == entries_.end()) it = entries_.try_emplace(std::pmr::string(client_id, &memory_)).first;
  Entry& e = it->second;
  // The SIGHUP re-check runs this again for the same connection; anything
  // else is a new one (a takeover of its own session included).
  const bool same_connection = e.connected && e.client == client;
  if (e.connected) UnindexConnected(&*it);
  if (e.in_offline_list) {
    offline_order_.erase(e.offline_pos);
    e.in_offline_list = false;
  }
  // What the connection's subscriptions are known to be (Entry::reads_covered).
  if (!same_connection && mosquitto_client_clean_session(client)) {
    e.reads_covered = true;  // a new MQTT session: no subscription yet
  } else if (!same_certificate) {
    // The subscriptions stay: those of this connection at the SIGHUP
    // re-check, or those of the MQTT session it resumes, if the broker kept
    // one (known only if that is the one this entry saw; a restored or new
    // entry knows nothing). What the entry knew of them holds under a new
    // Session that reads alike: a reload, or another certificate (a
    // renewal, typically). A same-certificate resume keeps the Session and
    // what is known.
    e.reads_covered = e.reads_covered && session.SameReadRules(e.session);
  }
  if (!same_certificate) {
    e.session = std::move(session);
    e.owner = owner;
    e.not_after = not_after;
    e.not_before = identity.not_before();
    e.username = UsernameFor(identity);
  }
  e.connected = true;
  e.client = client;
  e.rev_key = std::move(rv.key);
  e.rev_generation = revocation_.generation();
  e.revoked = false;
  if (!same_connection) e.notice_sent = false;
  IndexConnected(&*it);
  ScheduleNotice(&*it, now, /*may_send_now=*/!same_connection);
  auto restored = restored_.find(client_id);
  if (MayPersist(client, options_.keep_mqtt5_clean_sessions)) {
    // On disk now (a crash keeps it); in memory only once offline. After a
    // same-certificate reconnect der_scratch_ holds this DER already.
    if (state_file_) {
      if (!same_certificate) DerInto<X509, i2d_X509>(cert.get(), &der_scratch_);
      if (!e.in_state_file && restored != restored_.end() && restored->second == der_scratch_) {
        e.in_state_file = true;  // back after a restart with the certificate on disk: nothing to write
      } else if (!e.in_state_file || std::string_view(der_scratch_) != e.der) {
        state_file_->Put(client_id, der_scratch_);
        e.in_state_file = true;
      }
    }
  } else if (e.in_state_file || restored != restored_.end()) {
    if (state_file_) state_file_->Remove(client_id);
    e.in_state_file = false;
  }
  if (restored != restored_.end()) restored_.erase(restored);
  // Kept after a same-certificate reconnect: it is this connection's.
  if (!same_certificate) e.der.clear();
  e.cert = std::move(cert);
  if (mosquitto_set_username(client, e.username.c_str()) != MOSQ_ERR_SUCCESS) {
    mosquitto_log_printf(MOSQ_LOG_WARNING, "certacl: could not set the username of client '%s'",
                         Printable(client_id).c_str());
  }
  if (!recheck) {
    ++counters_.accepted;
    if (same_certificate) ++counters_.accepted_same_certificate;
  }
  return MOSQ_ERR_SUCCESS;
}

// During Mosquitto's SIGHUP re-check, offline persistent sessions have no
// TLS connection: decide with the certificate they last connected with.
int Instance::RecheckWithoutCertificate(mosquitto* client, std::string_view client_id) {
  Entry* e = FindOrRestore(client_id);
  if (!e || e->der.empty() || e->connected) {
    return Refuse(client, Refusal::kNoCertificate, nullptr, "no TLS client certificate");
  }
  Refresh(client_id, e);
  if (!e->session.connect_allowed()) return Refuse(client, Refusal::kPolicy, &e->session, "offline session");
  return MOSQ_ERR_SUCCESS;
}

int Instance::OnAclCheck(mosquitto* client, const char* topic, int access, int qos, bool retain) {
  reload_recheck_until_ms_ = 0;
  const int64_t now = Now();
  Pump(now, false);
  MaybePublishSys(now);
  if (access == MOSQ_ACL_UNSUBSCRIBE) return MOSQ_ERR_SUCCESS;
  const int kind = access == MOSQ_ACL_WRITE ? 0 : access == MOSQ_ACL_SUBSCRIBE ? 1 : 2;
  const char* id = mosquitto_client_id(client);
  Entry* e = id ? FindForCheck(client, id) : nullptr;
  if (!e || !topic) {
    ++counters_.acl[kind][1];
    return MOSQ_ERR_ACL_DENIED;
  }
  Refresh(id, e);
  // A revoked certificate gets nothing more, connected (until the next tick
  // disconnects it) or offline (its queued messages stop); an expired one
  // nothing while connected.
  if (Revoked(e) || (e->connected && e->not_after > 0 && e->not_after < now && policy_->revocation.disconnect_expired)) {
    ++counters_.acl[kind][1];
    return MOSQ_ERR_ACL_DENIED;
  }
  const bool own_connection = e->connected && e->client == client;
  if (access == MOSQ_ACL_READ && e->reads_covered && own_connection && topic[0] != '$') {
    // The broker delivers only what matched one of the connection's
    // subscriptions, and each of those passed ReadsCovered: CheckRead
    // would allow it (~250 instructions per delivery saved).
    ++counters_.acl[2][0];
    ++counters_.reads_covered;
    return MOSQ_ERR_SUCCESS;
  }
  Decision d;
  switch (access) {
    case MOSQ_ACL_WRITE: d = e->session.CheckPublish(topic, qos, retain); break;
    case MOSQ_ACL_SUBSCRIBE:
      d = e->session.CheckSubscribe(topic);
      if (d.allowed && e->reads_covered && !(own_connection && e->session.ReadsCovered(topic))) {
        e->reads_covered = false;  // its deliveries are checked one by one from now on
      }
      break;
    case MOSQ_ACL_READ: d = e->session.CheckRead(topic); break;
    default: break;
  }
  if (d.allowed && access == MOSQ_ACL_WRITE && !own_connection && policy_->enroll.enabled &&
      (ClassifyEnrollTopic(policy_->enroll.prefix, topic).kind != EnrollTopic::Kind::kOutside ||
       (policy_->enroll.relays() && TopicUnder(policy_->enroll.bridge_prefix, topic)))) {
    // A Will message, checked when it is due (the connection is gone):
    // Mosquitto 2.0 publishes Wills without MOSQ_EVT_MESSAGE, so under
    // {prefix}/ nothing would check or stamp it.
    ++counters_.acl[kind][1];
    return RefuseEnroll(EnrollRefusal::kNoIdentity, topic, id, "a Will message: only a live PUBLISH is vouched for");
  }
  ++counters_.acl[kind][d.allowed ? 0 : 1];
  if (d.allowed) return MOSQ_ERR_SUCCESS;
  if (access != MOSQ_ACL_READ) {
    // Deliveries are filtered silently (a wildcard subscriber meets denials
    // as a matter of course); a refused publish or subscribe is worth a line.
    uint64_t suppressed = 0;
    if (refusal_log_.Allow(now, &suppressed)) {
      mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: denied %s '%s' for client '%s': %s",
                           kind == 0 ? "publish to" : "subscribe to", Printable(topic).c_str(), Printable(id).c_str(),
                           e->session.Explain(d, kind == 0 ? Action::kPublish : Action::kSubscribe).c_str());
    }
  }
  return MOSQ_ERR_ACL_DENIED;
}

int Instance::OnMessage(mosquitto_evt_message* ev) {
  const EnrollConfig& ec = policy_->enroll;
  const char* topic = ev->topic != nullptr ? ev->topic : "";
  const EnrollTopic where = ec.enabled ? ClassifyEnrollTopic(ec.prefix, topic) : EnrollTopic{};
  const bool readable = PropertyReadersAvailable();
  if (where.kind == EnrollTopic::Kind::kOutside && ec.enabled && ec.relays() && TopicUnder(ec.bridge_prefix, topic)) {
    // Only certacl files requests there (below), stamped.
    return RefuseEnroll(EnrollRefusal::kBridgeTopic, topic, mosquitto_client_id(ev->client),
                        "only certacl re-files requests under '" + ec.bridge_prefix + "/'");
  }
  if (where.kind == EnrollTopic::Kind::kOutside) {
    // The stamp's names are certacl's on every topic: a client's are dropped.
    if (!readable || ev->properties == nullptr || RewriteProperties(&ev->properties, nullptr)) return MOSQ_ERR_SUCCESS;
    return RefuseEnroll(EnrollRefusal::kInternalError, topic, mosquitto_client_id(ev->client),
                        "its properties could not be copied");
  }
  const char* client_id = mosquitto_client_id(ev->client);
  if (ev->retain) return RefuseEnroll(EnrollRefusal::kRetained, topic, client_id, "retained");
  Stamp stamp;
  if (where.kind == EnrollTopic::Kind::kRequest) {
    Entry* e = client_id != nullptr ? Find(client_id) : nullptr;
    if (e == nullptr || !e->connected || e->client != ev->client || e->session.enroll_identity().empty()) {
      return RefuseEnroll(EnrollRefusal::kNoIdentity, topic, client_id,
                          e == nullptr || !e->connected || e->client != ev->client
                              ? "not a connection certacl admitted"
                              : "its certificate gives no enrollment identity");
    }
    const std::string& identity = e->session.enroll_identity();
    if (where.id != identity) {
      return RefuseEnroll(EnrollRefusal::kOtherIdentity, topic, client_id, "its enrollment identity is '" + identity + "'");
    }
    // The certificate the broker verified for this connection, and still
    // the one certacl admitted (a TLS 1.2 renegotiation could change it):
    // the very object, which the entry holds a reference to, so its address
    // cannot have been reused by another.
    X509Ptr cert(static_cast<X509*>(mosquitto_client_certificate(ev->client)));
    if (!cert || cert.get() != e->cert.get()) {
      return RefuseEnroll(EnrollRefusal::kNoIdentity, topic, client_id,
                          "the connection's certificate is not the one it connected with");
    }
    stamp = {identity, client_id, Base64Encode(Der(cert.get()))};
    if (stamp.certificate.empty()) {
      return RefuseEnroll(EnrollRefusal::kInternalError, topic, client_id, "its certificate cannot be encoded");
    }
  }
  const bool is_request = where.kind == EnrollTopic::Kind::kRequest;
  if (!readable && ev->properties != nullptr) {
    return RefuseEnroll(EnrollRefusal::kInternalError, topic, client_id,
                        "it has MQTT 5 properties and this broker does not export mosquitto_property_read_*");
  }
  if (!RewriteProperties(&ev->properties, is_request ? &stamp : nullptr)) {
    return RefuseEnroll(EnrollRefusal::kInternalError, topic, client_id, "its properties could not be rewritten");
  }
  if (is_request && ec.relays()) {
    // Re-filed where the bridges' shared subscription can see it (the broker
    // keeps whatever topic the event holds; the old one is ours to free).
    const std::string bridge_topic =
        ec.bridge_prefix + "/" + std::string(where.id) + "/" + std::string(where.op);
    char* copy = mosquitto_strdup(bridge_topic.c_str());
    if (copy == nullptr) return RefuseEnroll(EnrollRefusal::kInternalError, topic, client_id, "out of memory");
    mosquitto_free(ev->topic);
    ev->topic = copy;
  }
  if (is_request) ++counters_.enroll_stamped;
  return MOSQ_ERR_SUCCESS;
}

int Instance::RefuseEnroll(EnrollRefusal why, const char* topic, const char* client_id, const std::string& detail) {
  static_assert(std::size(kEnrollRefusalNames) == std::size(decltype(counters_.enroll_refused){}));
  const auto index = static_cast<size_t>(why);
  ++counters_.enroll_refused[index];
  uint64_t suppressed = 0;
  if (refusal_log_.Allow(Now(), &suppressed)) {
    if (suppressed) {
      mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: %llu refusal log lines suppressed in the last minute",
                           static_cast<unsigned long long>(suppressed));
    }
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: refused enrollment message to '%s' from client '%s': %s (%s)",
                         Printable(topic).c_str(), Printable(client_id != nullptr ? client_id : "").c_str(),
                         kEnrollRefusalNames[index], Printable(detail, 400).c_str());
  }
  return MOSQ_ERR_ACL_DENIED;
}

void Instance::LogEnroll() const {
  const EnrollConfig& ec = policy_->enroll;
  if (!ec.enabled) return;
  const std::string window = ec.window_seconds >= 0
                                 ? "the last " + std::to_string(ec.window_seconds) + " s"
                                 : "the last " + std::to_string(ec.window_num) + "/" + std::to_string(ec.window_den);
  mosquitto_log_printf(MOSQ_LOG_NOTICE,
                       "certacl: renewal over MQTT on '%s/': identity \"%s\", renewal window %s of a "
                       "certificate's lifetime, notices %s",
                       Printable(ec.prefix).c_str(), Printable(ec.identity.source).c_str(), window.c_str(),
                       ec.notice ? "on" : "off");
  if (!PropertyReadersAvailable()) {
    mosquitto_log_printf(MOSQ_LOG_WARNING,
                         "certacl: this broker does not export mosquitto_property_read_*: enrollment messages "
                         "with MQTT 5 properties are refused, and certacl- user properties elsewhere are kept");
  }
}

void Instance::ScheduleNotice(EntryRef ref, int64_t now, bool may_send_now) {
  Entry* e = &ref->second;
  const EnrollConfig& ec = policy_->enroll;
  if (!ec.enabled || !ec.notice || e->notice_sent || e->session.enroll_identity().empty() || e->not_after <= 0) {
    return;
  }
  const int64_t renew_from = ec.RenewFrom(e->not_before, e->not_after);
  if (renew_from <= now && may_send_now) {
    SendNotice(ref->first, e);
    return;
  }
  e->notice_pos = notices_.emplace(renew_from, ref);
  e->in_notices = true;
}

void Instance::SendNotice(std::string_view client_id, Entry* e) {
  const EnrollConfig& ec = policy_->enroll;
  const std::string& identity = e->session.enroll_identity();
  // Never a null or empty client id: null would send it to every client.
  if (!ec.enabled || !ec.notice || identity.empty() || client_id.empty()) return;
  e->notice_sent = true;
  const std::string topic = ec.prefix + "/" + identity + "/notice";
  const std::string payload = RenewalNoticePayload(ec, identity, e->not_before, e->not_after);
  // Delivered straight to this client (mosquitto 2.0 loop.c, queue_plugin_msgs:
  // no subscription, no ACL check) in the broker's next main-loop iteration,
  // after the CONNACK.
  mosquitto_property* props = nullptr;
  int rc = mosquitto_property_add_int32(&props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, 3600);
  if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_property_add_string(&props, MQTT_PROP_CONTENT_TYPE, "application/json");
  if (rc == MOSQ_ERR_SUCCESS) {
    rc = mosquitto_broker_publish_copy(std::string(client_id).c_str(), topic.c_str(), static_cast<int>(payload.size()),
                                       payload.data(), 1, false, props);
  }
  if (rc != MOSQ_ERR_SUCCESS) {
    mosquitto_property_free_all(&props);  // the broker owns them only on success
    mosquitto_log_printf(MOSQ_LOG_WARNING, "certacl: could not send the renewal notice to client '%s' (error %d)",
                         Printable(client_id).c_str(), rc);
    return;
  }
  ++counters_.enroll_notices;
}

void Instance::OnDisconnect(mosquitto* client) {
  reload_recheck_until_ms_ = 0;
  Pump(Now(), false);
  MaybePublishSys(Now());  // with per_listener_settings true there is no TICK
  const char* id = mosquitto_client_id(client);
  if (!id) return;
  auto it = entries_.find(std::string_view(id));
  // Only the connection that holds the entry ends it: a refused takeover
  // attempt with the same client id must not touch the holder's session.
  if (it == entries_.end() || !it->second.connected || it->second.client != client) return;
  UnindexConnected(&*it);
  Entry& e = it->second;
  if (MayPersist(client, options_.keep_mqtt5_clean_sessions)) {
    // Keep the admitted certificate for the offline session's READ checks
    // and for recognising its reconnect (already there after a
    // same-certificate reconnect). Encoded into the buffer of the last
    // copy: no allocation among the handshakes' transient ones.
    if (e.der.empty() && e.cert) DerInto<X509, i2d_X509>(e.cert.get(), &e.der);
    if (e.der.empty()) {
      mosquitto_log_printf(MOSQ_LOG_WARNING,
                           "certacl: cannot keep the certificate of client '%s' at its disconnect: its offline "
                           "session gets nothing until it reconnects",
                           Printable(it->first).c_str());
    }
    MarkOffline(it);
  } else {
    Erase(it);
  }
}

void Instance::MarkOffline(EntryMap::iterator it) {
  Entry& e = it->second;
  e.connected = false;
  e.client = nullptr;
  e.cert.reset();
  // The Session stays (it is the certificate in `der`'s): for the READ
  // checks of queued messages, and for a reconnect with the same
  // certificate. Without a certificate there is nothing to decide with.
  if (e.der.empty()) e.session = Session();
  if (!e.in_offline_list) {
    offline_order_.push_back(&*it);
    e.offline_pos = std::prev(offline_order_.end());
    e.in_offline_list = true;
  }
  // The list holds live entries only (Erase unlinks an entry first).
  while (offline_order_.size() > options_.max_offline_sessions) Erase(entries_.find(offline_order_.front()->first));
}

void Instance::Erase(EntryMap::iterator it) {
  Entry& e = it->second;
  if (e.connected) UnindexConnected(&*it);
  if (e.in_offline_list) offline_order_.erase(e.offline_pos);
  if (e.in_state_file && state_file_) state_file_->Remove(std::string(it->first));
  entries_.erase(it);
}

int Instance::OnReload() {
  std::vector<Diagnostic> diags;
  std::shared_ptr<const Policy> next = LoadPolicy(options_.policy, &diags);
  if (!next) {
    ++counters_.reload_failures;
    for (const Diagnostic& d : diags) mosquitto_log_printf(MOSQ_LOG_ERR, "certacl: %s", d.ToString().c_str());
    mosquitto_log_printf(MOSQ_LOG_ERR, "certacl: the new policy %s has errors: keeping the policy in force",
                         options_.policy.c_str());
    return MOSQ_ERR_PLUGIN_DEFER;
  }
  policy_ = std::move(next);
  ++counters_.reloads;
  // Offline Sessions were resolved against the old policy: none can be
  // reused now, and each would keep the old policy in memory. They are
  // rebuilt at their first check (Refresh).
  for (EntryRef ref : offline_order_) ref->second.session = Session();
  PrepareVerifiers();
  std::vector<std::string> log;
  revocation_.Configure(policy_, Now(), false, &log);
  for (const std::string& line : log) mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: %s", line.c_str());
  // Mosquitto re-checks every client right after this event (BASIC_AUTH
  // again); offline sessions have no certificate then, see
  // RecheckWithoutCertificate. The window closes at the next other event.
  reload_recheck_until_ms_ = MonotonicMs() + 2000;
  mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: policy %s reloaded: %zu roles, %zu deny entries",
                       options_.policy.c_str(), policy_->roles.size(), policy_->denies.size());
  LogEnroll();
  PublishSys();
  return MOSQ_ERR_PLUGIN_DEFER;  // let other plugins see the reload too
}

void Instance::OnTick() {
  reload_recheck_until_ms_ = 0;
  const int64_t now = Now();
  Pump(now, true);
  MaybePublishSys(now);
}

void Instance::MaybePublishSys(int64_t now_s) {
  if (options_.sys_interval <= 0 || now_s - last_sys_publish_s_ < options_.sys_interval) return;
  last_sys_publish_s_ = now_s;
  PublishSys();
}

void Instance::PublishSys() {
  const std::string prefix = options_.SysPrefix();
  auto publish = [&](const std::string& topic, uint64_t value) {
    const std::string payload = std::to_string(value);
    mosquitto_broker_publish_copy(nullptr, (prefix + topic).c_str(), static_cast<int>(payload.size()), payload.data(),
                                  0, true, nullptr);
  };
  publish("/connections/accepted", counters_.accepted);
  publish("/connections/accepted-same-certificate", counters_.accepted_same_certificate);
  publish("/signatures/verified", signatures_.verifications());
  for (size_t i = 0; i < kRefusalCount; ++i) publish(std::string("/connections/refused/") + kRefusalNames[i], counters_.refused[i]);
  const char* kinds[] = {"publish", "subscribe", "read"};
  for (int k = 0; k < 3; ++k) {
    publish(std::string("/acl/") + kinds[k] + "/allowed", counters_.acl[k][0]);
    publish(std::string("/acl/") + kinds[k] + "/denied", counters_.acl[k][1]);
  }
  publish("/acl/read/covered", counters_.reads_covered);
  publish("/sessions/connected", entries_.size() - offline_order_.size());
  publish("/sessions/offline", offline_order_.size());
  publish("/policy/reloads", counters_.reloads);
  publish("/policy/reload-failures", counters_.reload_failures);
  if (policy_->enroll.enabled) {
    publish("/enroll/stamped", counters_.enroll_stamped);
    for (size_t i = 0; i < std::size(kEnrollRefusalNames); ++i) {
      publish(std::string("/enroll/refused/") + kEnrollRefusalNames[i], counters_.enroll_refused[i]);
    }
    publish("/enroll/notices", counters_.enroll_notices);
  }
  if (!revocation_.enabled()) return;
  const revocation::RevocationCounters& rc = revocation_.counters();
  publish("/revocation/cache/hits", rc.cache_hits);
  publish("/revocation/cache/misses", rc.cache_misses);
  publish("/revocation/crl/adopted", rc.crl_adopted);
  publish("/revocation/crl/rejected", rc.crl_rejected);
  publish("/revocation/crl/entries", revocation_.crl_entries());
  publish("/revocation/ocsp/cached", revocation_.ocsp_entries());
  publish("/revocation/ocsp/queue-full", rc.ocsp_queue_full);
  publish("/revocation/disconnected/revoked", counters_.disconnected_revoked);
  publish("/revocation/disconnected/expired", counters_.disconnected_expired);
  publish("/revocation/soft-fail-admitted", counters_.soft_fail_admitted);
  for (const auto& [url, f] : rc.fetches) {
    publish("/revocation/fetch/" + TopicLevel(url) + "/succeeded", f.succeeded);
    publish("/revocation/fetch/" + TopicLevel(url) + "/failed", f.failed);
  }
}

}  // namespace certacl::plugin
