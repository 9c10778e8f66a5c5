// service.h: revocation status of device certificates, kept fresh in the
// background, answered on the broker thread in O(1).
//
// The contract:
//  - Check(), IsRevoked(), Poll() and the Note*() calls run on ONE thread,
//    the broker's, and never wait: no network, no lock held by anyone for
//    longer than a queue push. Check() costs a few hash lookups.
//  - Slow work happens on background threads: CRL Distribution Points
//    (refreshed before nextUpdate with jitter, retried with backoff), OCSP
//    queries (de-duplicated, refreshed ahead of expiry for connected
//    devices, a per-responder circuit breaker), CRL files larger than
//    kInlineCrlBytes, and freeing old data.
//  - Threads are started only for that work. A configuration with local
//    CRL files of at most kInlineCrlBytes (~30,000 entries, a few ms to
//    parse) starts none: Poll() re-checks the files every crl_file_poll
//    (one stat each) and parses a changed one in place. The first thread a
//    process creates switches glibc to locked malloc for good, which costs
//    the broker ~4 % per delivered message (bench/RESULTS.md). Once a
//    worker is started (a file grew, a reload turned OCSP on) it keeps
//    the files for the life of the process. Workers are named
//    "certacl-crl" and "certacl-ocsp" (top -H, /proc/<pid>/task/*/comm).
//  - Results reach the broker thread only through Poll(): a new CRL set is
//    adopted as one pointer swap, OCSP answers as a small batch. Poll() uses
//    try_lock and returns at once if a worker holds the lock.
//  - Never widens access on error: a failed fetch keeps the data in force; a
//    revoked answer is never replaced by a failure; a CRL is adopted only if
//    its signature verifies against a configured issuer and it is not older
//    (cRLNumber, thisUpdate) than the one in force.
//
// The answer for a certificate combines every source: revoked by any source
// is revoked; otherwise good from any fresh source (a CRL within nextUpdate,
// or within stale_grace / stale = "allow"; an OCSP "good" within its
// validity) is good; otherwise kStale (only a stale CRL) or kUnknown. The
// caller applies the policy's mode to kUnknown/kStale.
#ifndef CERTACL_PLUGIN_REVOCATION_SERVICE_H_
#define CERTACL_PLUGIN_REVOCATION_SERVICE_H_

#include <openssl/x509.h>
#include <sys/stat.h>

#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "plugin/revocation/crl.h"
#include "plugin/revocation/ocsp.h"
#include "plugin/string_hash.h"
#include "policy/policy.h"

namespace certacl::revocation {

enum class Status : uint8_t {
  kGood,
  kRevoked,
  kUnknown,  // no fresh answer (yet): the mode decides
  kStale,    // only a CRL past nextUpdate + stale_grace, and stale = "deny"
};
const char* StatusName(Status s);  // "good", "revoked", "unknown", "stale"

struct CheckResult {
  Status status = Status::kUnknown;
  std::string key;     // issuer id + serial; empty if the issuer is not configured
  std::string detail;  // one line, for the refusal log
};

// Counters, cumulative; read on the broker thread.
struct RevocationCounters {
  uint64_t cache_hits = 0;    // checks answered from a CRL or a fresh OCSP answer
  uint64_t cache_misses = 0;  // checks with no fresh answer
  uint64_t crl_adopted = 0;
  uint64_t crl_rejected = 0;  // bad signature, rollback, unparsable
  uint64_t ocsp_queue_full = 0;
  struct Fetch {
    uint64_t succeeded = 0;
    uint64_t failed = 0;
  };
  std::map<std::string, Fetch> fetches;  // by URL (at most kMaxTrackedUrls)
};

// What Poll() hands back to the broker thread.
struct Update {
  std::vector<std::string> revoked_keys;  // now revoked: disconnect their devices
  bool recheck_all = false;               // too many to list: re-check every connected key
  std::vector<std::string> log_info;      // lines for the broker log
  std::vector<std::string> log_warning;
};

class Service {
 public:
  static constexpr size_t kMaxTrackedUrls = 64;
  static constexpr size_t kMaxOcspQueue = 10000;
  static constexpr size_t kMaxDiffKeys = 100000;
  static constexpr size_t kMaxOcspEntries = 1000000;  // OCSP answers cached on the broker thread
  // CRL files up to this size are parsed on the broker thread when no worker
  // runs (~30,000 entries; the parser takes ~0.1 us per entry).
  static constexpr uint64_t kInlineCrlBytes = 1 << 20;

  Service();
  ~Service();  // stops and joins the background threads (bounded by ~100 ms)
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Applies the policy's [revocation] table. At start-up (`initial`), before
  // the broker serves anyone, local CRL files are loaded synchronously so
  // devices are not refused for want of data; on a reload every file is
  // re-read at once (by the worker, or at the next Poll() when none runs)
  // and the result arrives through Poll().
  // Lines to log are appended to *log.
  void Configure(std::shared_ptr<const Policy> policy, int64_t now, bool initial, std::vector<std::string>* log);

  bool enabled() const { return enabled_; }
  RevocationConfig::Mode mode() const { return mode_; }

  // The status of a device certificate. May queue background fetches (OCSP
  // for this certificate, its CRL Distribution Points).
  CheckResult Check(X509* leaf, int64_t now);
  // The key Check() would give this certificate ("" if its issuer is not
  // configured); no fetches.
  std::string KeyOf(X509* leaf) const;
  // Whether the certificate with this key is known revoked (no fetches).
  bool IsRevoked(std::string_view key) const;

  // A device with this key connected / disconnected (keys from Check). OCSP
  // answers of connected devices are refreshed before they expire.
  void NoteConnected(std::string_view key);
  void NoteDisconnected(std::string_view key);

  // Adopts background results, and without a worker re-checks the CRL files
  // when due. Returns false, quickly, if there is nothing new or a worker
  // holds the lock. `generation()` changes when it adopts.
  bool Poll(int64_t now, Update* out);
  // Whether Poll(now) has anything to do: one comparison and one load.
  bool HasPending(int64_t now) const {
    return now >= local_due_ || pending_flag_.load(std::memory_order_acquire);
  }
  uint64_t generation() const { return generation_; }
  const RevocationCounters& counters() const { return counters_; }

  // For tests and $SYS: CRL entries in force, OCSP answers cached.
  size_t crl_entries() const;
  size_t ocsp_entries() const { return ocsp_.size(); }

 private:
  using SharedX509 = std::shared_ptr<X509>;
  struct IssuerState {
    SharedX509 cert;
    std::string id;        // SHA-256 of the certificate DER
    std::string ski;       // subject key identifier bytes
    std::string name_der;  // subject DN DER
    std::string description;
    std::shared_ptr<const Crl> crl;
    std::string crl_source;
  };
  struct Snapshot {
    uint64_t config_generation = 0;
    std::shared_ptr<const Policy> policy;
    std::vector<IssuerState> issuers;
    std::unordered_map<std::string, uint32_t, plugin::StringHash, std::equal_to<>> by_id;
    std::unordered_map<std::string, uint32_t> by_ski;
    std::unordered_map<std::string, uint32_t> by_name;
  };
  struct OcspEntry {
    CertStatus status = CertStatus::kUnknown;
    int reason = -1;
    int64_t valid_until = 0;
  };
  struct OcspResult {
    std::string key;
    bool ok = false;
    OcspEntry entry;
  };
  struct OcspJob {
    std::string key;
    std::string url;
    std::string leaf_der;                    // first query: the request is built from it
    SharedX509 issuer;
    std::shared_ptr<OcspRequest> request;    // refreshes reuse the first request
  };
  struct CrlUrlJob {
    std::string issuer_id;
    std::string url;
  };
  // Background state of one CRL source (a file, or an issuer's CDP URL).
  struct FileState {
    int64_t mtime_ns = -1;
    int64_t size = -1;
    uint64_t inode = 0;
  };
  struct UrlState {
    std::string issuer_id;
    int64_t due = 0;
    int failures = 0;
    std::string etag;
    std::string last_modified;
  };
  struct Breaker {
    int consecutive_failures = 0;
    int64_t open_until = 0;
  };
  struct Refresh {
    std::string url;
    SharedX509 issuer;
    std::shared_ptr<OcspRequest> request;
    int64_t due = 0;
  };

  // --- broker thread ---
  std::shared_ptr<const Snapshot> current_;
  std::unordered_map<std::string, OcspEntry, plugin::StringHash, std::equal_to<>> ocsp_;
  std::unordered_set<std::string> ocsp_pending_;
  std::unordered_map<std::string, int64_t> ocsp_failed_until_;
  std::unordered_set<std::string> crl_urls_sent_;
  bool enabled_ = false;
  RevocationConfig::Mode mode_ = RevocationConfig::Mode::kOff;
  static constexpr int64_t kNever = INT64_MAX;
  bool configured_ = false;          // Configure() has built a snapshot once
  bool crl_worker_started_ = false;  // from then on the worker owns the CRL state
  int ocsp_workers_ = 0;
  int64_t local_due_ = kNever;       // without a worker: when Poll() re-checks the files
  std::shared_ptr<const Policy> local_policy_;  // without a worker: a reload to apply at that pass
  uint64_t generation_ = 0;
  RevocationCounters counters_;

  int32_t FindIssuer(const Snapshot& snap, X509* leaf) const;
  void QueueOcsp(const Snapshot& snap, uint32_t issuer, X509* leaf, const std::string& key, int64_t now);
  void QueueCrlUrls(const Snapshot& snap, uint32_t issuer, X509* leaf);
  void CountFetch(const std::string& url, bool ok);

  // --- shared (mu_) ---
  mutable std::mutex mu_;
  std::condition_variable work_cv_;   // crl worker
  std::condition_variable ocsp_cv_;   // ocsp workers
  bool stop_ = false;
  std::shared_ptr<const Policy> next_policy_;  // for the crl worker
  std::deque<CrlUrlJob> crl_url_jobs_;
  std::deque<std::shared_ptr<OcspJob>> ocsp_jobs_;
  std::unordered_set<std::string> ocsp_queued_;
  std::vector<std::pair<std::string, bool>> connected_notes_;  // key, connected
  std::vector<std::shared_ptr<const Snapshot>> retired_;
  // worker -> broker
  std::shared_ptr<const Snapshot> out_snapshot_;
  std::vector<OcspResult> out_ocsp_;
  std::vector<std::string> out_revoked_;
  bool out_recheck_all_ = false;
  std::vector<std::string> out_info_, out_warning_;
  std::vector<std::pair<std::string, bool>> out_fetches_;  // url, ok
  uint64_t out_crl_adopted_ = 0, out_crl_rejected_ = 0;
  std::atomic<bool> pending_flag_{false};
  std::atomic<bool> cancel_{false};

  // --- the CRL worker, or the broker thread while no worker runs ---
  std::shared_ptr<const Snapshot> worker_snapshot_;
  std::map<std::string, FileState> files_;
  std::map<std::string, UrlState> urls_;  // url -> state
  std::unordered_map<std::string, int> connected_keys_;  // key -> connections (from notes)
  std::mutex refresh_mu_;  // crl worker + ocsp workers; never the broker thread
  std::unordered_map<std::string, Refresh> refresh_;    // OCSP answers to refresh ahead of expiry
  std::unordered_map<std::string, Breaker> breakers_;   // by responder URL (under mu_)
  std::shared_ptr<const Policy> worker_policy_;         // crl worker's view of the config (under mu_ for ocsp workers)

  void CrlWorker();
  void OcspWorker();
  // Starts the CRL worker (handing it `policy` to apply, if any) and the
  // OCSP workers the configuration needs. On failure (no threads to be had)
  // the broker thread keeps the files and retries after failure_backoff.
  void StartWorkers(std::shared_ptr<const Policy> policy, int64_t now, std::vector<std::string>* warn);
  void StartOcspWorkers(std::vector<std::string>* warn);
  // Without a worker, on the broker thread: applies a pending reload and
  // re-reads changed CRL files; hands over to a worker if one is needed.
  void LocalPass(int64_t now);
  // Rebuilds the worker snapshot for `policy`; *snap becomes its copy.
  void ApplyPolicy(const std::shared_ptr<const Policy>& policy, std::shared_ptr<Snapshot>* snap,
                   std::vector<std::string>* info);
  static FileState StateOf(const struct stat& st);
  bool Unchanged(const std::string& path, const FileState& now_state) const;
  // Whether one of `paths` (the configuration's CRL files) larger than
  // kInlineCrlBytes is to be read (changed since the last scan, or any if
  // `force`).
  bool LargeFileToRead(const std::vector<std::string>& paths, bool force) const;
  // Loads the configuration into the worker state; returns the snapshot.
  std::shared_ptr<const Snapshot> BuildSnapshot(const std::shared_ptr<const Policy>& policy,
                                                const Snapshot* previous, std::vector<std::string>* log) const;
  // Scans the CRL files `paths` (the worker snapshot's configuration's);
  // `force` re-reads unchanged ones. Returns true if a CRL was adopted into
  // *snap (copy on write).
  bool ScanFiles(const std::vector<std::string>& paths, std::shared_ptr<Snapshot>* snap, int64_t now, bool force,
                 std::vector<std::string>* info, std::vector<std::string>* warn, std::vector<std::string>* revoked,
                 bool* recheck_all);
  bool FetchUrl(const std::string& url, UrlState* state, std::shared_ptr<Snapshot>* snap, int64_t now,
                std::vector<std::string>* info, std::vector<std::string>* warn, std::vector<std::string>* revoked,
                bool* recheck_all, bool* fetched_ok);
  // Verifies `data` as a CRL of one of the snapshot's issuers (of
  // `issuer_id` if given) and adopts it if newer. Returns true if adopted.
  bool Adopt(std::string_view data, const std::string& source, const std::string& issuer_id,
             std::shared_ptr<Snapshot>* snap, int64_t now, std::vector<std::string>* info,
             std::vector<std::string>* warn, std::vector<std::string>* revoked, bool* recheck_all, std::string* error);
  void Publish(std::shared_ptr<const Snapshot> snap, std::vector<std::string> info, std::vector<std::string> warn,
               std::vector<std::string> revoked, bool recheck_all);
  std::vector<std::thread> threads_;
};

}  // namespace certacl::revocation

#endif  // CERTACL_PLUGIN_REVOCATION_SERVICE_H_
