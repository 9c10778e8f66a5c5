// service.cc: see service.h for the threading contract.
#include "plugin/revocation/service.h"

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <malloc.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <system_error>

#include "plugin/revocation/cert_urls.h"
#include "plugin/revocation/http_client.h"
#include "plugin/revocation/serial_set.h"
#include "plugin/run_aside.h"
#include "policy/sha256.h"

namespace certacl::revocation {
namespace {

constexpr int kCertificateHold = 6;
constexpr int kBreakerThreshold = 3;
constexpr size_t kMaxCrlUrlsPerIssuer = 8;

int64_t WallNow() { return static_cast<int64_t>(std::time(nullptr)); }

std::string Sha256(std::string_view data) {
  std::array<unsigned char, 32> md;
  if (!certacl::Sha256(data, &md)) return std::string(data);
  return std::string(reinterpret_cast<const char*>(md.data()), md.size());
}

std::string Hex(std::string_view bytes) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out.empty() ? "0" : out;
}

std::string TimeText(int64_t t) {
  if (t == 0) return "none";
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

double Jitter(double lo, double hi) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(lo, hi)(rng);
}

bool ReadWholeFile(const std::string& path, size_t max, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = std::string("cannot read: ") + std::strerror(errno);
    return false;
  }
  out->clear();
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    out->append(buf, static_cast<size_t>(in.gcount()));
    if (out->size() > max) {
      *error = "larger than crl_max_size_mb (" + std::to_string(max >> 20) + " MiB)";
      return false;
    }
  }
  return true;
}

// Every CRL file the configuration names: the files, the files in the
// directories (sorted; dot files, such as the .tmp of an atomic write,
// skipped) and the cache of fetched CRLs.
std::vector<std::string> CrlPaths(const RevocationConfig& rc) {
  std::vector<std::string> paths;
  std::vector<std::string> dirs = rc.crl_files;
  if (!rc.crl_cache_dir.empty()) dirs.push_back(rc.crl_cache_dir);  // CRLs fetched before a restart
  for (const std::string& p : dirs) {
    std::error_code ec;
    if (std::filesystem::is_directory(p, ec)) {
      std::vector<std::string> in_dir;
      for (const auto& entry : std::filesystem::directory_iterator(p, ec)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || name[0] == '.' || !entry.is_regular_file(ec)) continue;
        in_dir.push_back(entry.path().string());
      }
      std::sort(in_dir.begin(), in_dir.end());
      paths.insert(paths.end(), in_dir.begin(), in_dir.end());
    } else {
      paths.push_back(p);
    }
  }
  return paths;
}

// Sources that only a worker thread may wait on.
bool NeedsNetwork(const RevocationConfig& rc) {
  return rc.ocsp != RevocationConfig::Ocsp::kOff || rc.crl_from_certificate;
}

// Names a worker (at most 15 characters) for `top -H`, `ps -L` and
// /proc/<pid>/task/*/comm. Set by the creating thread, so the name is there
// as soon as the thread exists.
void NameThread(std::thread* t, const char* name) { (void)::pthread_setname_np(t->native_handle(), name); }

// Background threads run at a lower priority than the broker's thread, so
// parsing a million-entry CRL on a small machine takes CPU from nobody but
// idle time. Linux nice values are per thread.
void LowerThreadPriority() {
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  (void)::setpriority(PRIO_PROCESS, tid, 10);
}

}  // namespace

const char* StatusName(Status s) {
  switch (s) {
    case Status::kGood: return "good";
    case Status::kRevoked: return "revoked";
    case Status::kUnknown: return "unknown";
    case Status::kStale: return "stale";
  }
  return "unknown";
}

Service::Service() = default;

Service::~Service() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cancel_.store(true);
  work_cv_.notify_all();
  ocsp_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

// ---------------------------------------------------------------------------
// Configuration.

std::shared_ptr<const Service::Snapshot> Service::BuildSnapshot(const std::shared_ptr<const Policy>& policy,
                                                                  const Snapshot* previous,
                                                                  std::vector<std::string>* log) const {
  auto snap = std::make_shared<Snapshot>();
  snap->policy = policy;
  for (const RevocationConfig::Issuer& in : policy->revocation.issuers) {
    IssuerState st;
    // A copy of its own: OpenSSL objects are never shared between the
    // broker thread (which frees the policy's) and the workers.
    X509* copy = X509_dup(in.cert.get());
    if (!copy) continue;
    st.cert = SharedX509(copy, X509_free);
    st.id = Sha256(ToDer<X509, i2d_X509>(in.cert.get()));
    if (snap->by_id.count(st.id)) continue;
    if (const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(in.cert.get())) {
      st.ski.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(ski)),
                    static_cast<size_t>(ASN1_STRING_length(ski)));
    }
    st.name_der = ToDer<const X509_NAME, i2d_X509_NAME>(X509_get_subject_name(in.cert.get()));
    st.description = in.description;
    if (previous) {
      auto it = previous->by_id.find(st.id);
      if (it != previous->by_id.end()) {
        st.crl = previous->issuers[it->second].crl;  // revocations stay in force across reloads
        st.crl_source = previous->issuers[it->second].crl_source;
      }
    }
    const uint32_t index = static_cast<uint32_t>(snap->issuers.size());
    snap->by_id.emplace(st.id, index);
    if (!st.ski.empty()) snap->by_ski.emplace(st.ski, index);
    snap->by_name.emplace(st.name_der, index);
    snap->issuers.push_back(std::move(st));
  }
  if (log && policy->revocation.enabled()) {
    const RevocationConfig& rc = policy->revocation;
    std::string sources;
    if (!rc.crl_files.empty()) sources += std::to_string(rc.crl_files.size()) + " CRL path(s)";
    if (rc.crl_from_certificate) sources += std::string(sources.empty() ? "" : ", ") + "CRL distribution points";
    if (rc.ocsp != RevocationConfig::Ocsp::kOff) {
      sources += std::string(sources.empty() ? "" : ", ") + "OCSP " +
                 (rc.ocsp == RevocationConfig::Ocsp::kUrl ? rc.ocsp_url : std::string("from the certificates"));
    }
    log->push_back("revocation " + std::string(RevocationModeName(rc.mode)) + ": " +
                   std::to_string(snap->issuers.size()) + " issuer(s); sources: " + sources);
  }
  return snap;
}

void Service::Configure(std::shared_ptr<const Policy> policy, int64_t now, bool initial,
                        std::vector<std::string>* log) {
  const RevocationConfig& rc = policy->revocation;
  enabled_ = rc.enabled();
  mode_ = rc.mode;
  ocsp_failed_until_.clear();
  crl_urls_sent_.clear();
  if (!enabled_ && !configured_) return;
  if (crl_worker_started_) {  // the worker owns the CRL state: it applies the policy
    const bool ocsp = rc.ocsp != RevocationConfig::Ocsp::kOff;
    {
      std::lock_guard<std::mutex> lock(mu_);
      next_policy_ = std::move(policy);
    }
    work_cv_.notify_all();
    if (ocsp) StartOcspWorkers(log);
    return;
  }
  if (!configured_) {
    configured_ = true;
    worker_snapshot_ = BuildSnapshot(policy, nullptr, log);
    worker_policy_ = policy;
    current_ = worker_snapshot_;
    ++generation_;
    if (initial) {
      // At start-up, before the broker serves anyone, the local CRLs are
      // loaded here so the first devices find them.
      std::shared_ptr<Snapshot> snap;
      std::vector<std::string> info, warn, revoked;
      bool recheck = false;
      const std::vector<std::string> paths = CrlPaths(rc);
      auto scan = [&] { ScanFiles(paths, &snap, now, true, &info, &warn, &revoked, &recheck); };
      // A 1,000,000-entry CRL is ~47 MB of PEM and as much again of
      // transient buffers: aside (plugin/run_aside.h). Small ones in place,
      // which keeps the process single-threaded.
      if (LargeFileToRead(paths, true)) {
        plugin::RunAside(scan);
      } else {
        scan();
      }
      if (snap) current_ = worker_snapshot_ = snap;
      for (std::string& l : info) log->push_back(std::move(l));
      for (std::string& l : warn) log->push_back("warning: " + l);
      policy.reset();  // applied
    }
  }
  if (NeedsNetwork(rc)) {
    StartWorkers(std::move(policy), now, log);
    return;
  }
  // No network: the broker thread keeps the files itself (LocalPass), so
  // no thread is started. A reload's files are read at the next Poll.
  local_policy_ = policy;
  local_due_ = policy ? now : now + rc.crl_file_poll_s;
}

void Service::StartWorkers(std::shared_ptr<const Policy> policy, int64_t now, std::vector<std::string>* warn) {
  const RevocationConfig& rc = (policy ? policy : worker_policy_)->revocation;
  const bool ocsp = rc.ocsp != RevocationConfig::Ocsp::kOff;
  const int64_t backoff = rc.failure_backoff_s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (policy) {
      worker_policy_ = policy;  // the OCSP workers' view until the CRL worker applies it
      next_policy_ = policy;
    }
  }
  try {
    threads_.emplace_back([this] { CrlWorker(); });
    NameThread(&threads_.back(), "certacl-crl");
  } catch (const std::system_error& e) {
    warn->push_back(std::string("revocation: cannot start the worker thread (") + e.what() + "); retrying in " +
                    std::to_string(backoff) + "s");
    {
      std::lock_guard<std::mutex> lock(mu_);
      next_policy_.reset();
    }
    if (policy) local_policy_ = std::move(policy);
    local_due_ = now + backoff;
    return;
  }
  crl_worker_started_ = true;
  local_due_ = kNever;
  local_policy_.reset();
  if (ocsp) StartOcspWorkers(warn);
}

void Service::StartOcspWorkers(std::vector<std::string>* warn) {
  constexpr int kOcspWorkers = 2;
  while (ocsp_workers_ < kOcspWorkers) {
    try {
      threads_.emplace_back([this] { OcspWorker(); });
      NameThread(&threads_.back(), "certacl-ocsp");
    } catch (const std::system_error& e) {
      if (ocsp_workers_ == 0) {
        warn->push_back(std::string("revocation: cannot start an OCSP worker thread (") + e.what() +
                        "); queries wait until the next reload");
      }
      return;
    }
    ++ocsp_workers_;
  }
}

void Service::LocalPass(int64_t now) {
  std::shared_ptr<const Policy> policy = std::move(local_policy_);
  local_policy_.reset();
  const std::shared_ptr<const Policy> in_force = policy ? policy : worker_snapshot_->policy;
  const RevocationConfig& rc = in_force->revocation;
  std::vector<std::string> info, warn, revoked;
  const std::vector<std::string> paths = CrlPaths(rc);
  if (NeedsNetwork(rc) || LargeFileToRead(paths, policy != nullptr)) {
    // A CRL too large to parse here without stalling the broker: from now
    // on a worker keeps the files (it re-reads what changed).
    StartWorkers(std::move(policy), now, &warn);
    Publish(nullptr, {}, std::move(warn), {}, false);
    return;
  }
  std::shared_ptr<Snapshot> snap;
  bool recheck_all = false;
  if (policy) {
    ApplyPolicy(policy, &snap, &info);
    recheck_all = true;
  }
  if (rc.enabled()) ScanFiles(paths, &snap, now, policy != nullptr, &info, &warn, &revoked, &recheck_all);
  if (snap) worker_snapshot_ = snap;
  Publish(std::move(snap), std::move(info), std::move(warn), std::move(revoked), recheck_all);
  local_due_ = rc.enabled() ? now + rc.crl_file_poll_s : kNever;
}

void Service::ApplyPolicy(const std::shared_ptr<const Policy>& policy, std::shared_ptr<Snapshot>* snap,
                          std::vector<std::string>* info) {
  std::shared_ptr<const Snapshot> built = BuildSnapshot(policy, worker_snapshot_.get(), info);
  worker_snapshot_ = built;
  *snap = std::make_shared<Snapshot>(*built);
  {
    std::lock_guard<std::mutex> l(mu_);
    worker_policy_ = policy;
  }
  // Forget CDP URLs of issuers that are gone.
  for (auto it = urls_.begin(); it != urls_.end();) {
    it = built->by_id.count(it->second.issuer_id) ? std::next(it) : urls_.erase(it);
  }
}

// ---------------------------------------------------------------------------
// Broker thread.

int32_t Service::FindIssuer(const Snapshot& snap, X509* leaf) const {
  if (const ASN1_OCTET_STRING* aki = X509_get0_authority_key_id(leaf)) {
    std::string_view id(reinterpret_cast<const char*>(ASN1_STRING_get0_data(aki)),
                        static_cast<size_t>(ASN1_STRING_length(aki)));
    auto it = snap.by_ski.find(std::string(id));
    if (it != snap.by_ski.end()) return static_cast<int32_t>(it->second);
  }
  auto it = snap.by_name.find(ToDer<const X509_NAME, i2d_X509_NAME>(X509_get_issuer_name(leaf)));
  if (it != snap.by_name.end()) return static_cast<int32_t>(it->second);
  return -1;
}

CheckResult Service::Check(X509* leaf, int64_t now) {
  CheckResult r;
  if (!enabled_) {
    r.status = Status::kGood;
    return r;
  }
  const Snapshot* snap = current_.get();
  if (!snap) {
    r.detail = "revocation data not loaded yet";
    return r;
  }
  const RevocationConfig& rc = snap->policy->revocation;
  const int32_t index = FindIssuer(*snap, leaf);
  if (index < 0) {
    char buf[256];
    X509_NAME_oneline(X509_get_issuer_name(leaf), buf, sizeof buf);
    r.detail = std::string("its issuer ") + buf + " is not among revocation.issuers: no way to check it";
    ++counters_.cache_misses;
    return r;
  }
  const IssuerState& issuer = snap->issuers[static_cast<size_t>(index)];
  const std::string serial = SerialKey(X509_get0_serialNumber(leaf));
  r.key = issuer.id + serial;

  bool good = false;
  bool stale = false;
  std::string why_not;
  auto ocsp = ocsp_.find(r.key);
  if (ocsp != ocsp_.end() && ocsp->second.status == CertStatus::kRevoked) {
    r.status = Status::kRevoked;
    r.detail = "revoked (OCSP, serial " + Hex(serial) + ")";
    ++counters_.cache_hits;
    return r;
  }
  if (const Crl* crl = issuer.crl.get()) {
    if (crl->IsRevoked(serial)) {
      r.status = Status::kRevoked;
      r.detail = "serial " + Hex(serial) + " is on the CRL of " + issuer.description + " (from " + issuer.crl_source +
                 ")";
      ++counters_.cache_hits;
      return r;
    }
    const int64_t next = crl->next_update();
    if (next == 0 || now <= next + rc.clock_skew_s) {
      good = true;
    } else if (rc.stale == RevocationConfig::Stale::kAllow || now <= next + rc.stale_grace_s) {
      good = true;  // stale, but the policy allows it (the list is still honoured)
    } else {
      stale = true;
      why_not = "the CRL of " + issuer.description + " is stale (nextUpdate " + TimeText(next) + ", grace " +
                std::to_string(rc.stale_grace_s) + "s, stale = \"deny\")";
    }
  } else if (!rc.crl_files.empty() || rc.crl_from_certificate) {
    why_not = "no CRL of " + issuer.description + " loaded yet";
  }
  if (rc.ocsp != RevocationConfig::Ocsp::kOff) {
    if (ocsp != ocsp_.end() && ocsp->second.status == CertStatus::kGood && now < ocsp->second.valid_until) {
      good = true;
    } else {
      if (ocsp != ocsp_.end() && ocsp->second.status == CertStatus::kUnknown && now < ocsp->second.valid_until) {
        why_not += std::string(why_not.empty() ? "" : "; ") + "the OCSP responder does not know it";
      } else {
        QueueOcsp(*snap, static_cast<uint32_t>(index), leaf, r.key, now);
        auto failed = ocsp_failed_until_.find(r.key);
        why_not += std::string(why_not.empty() ? "" : "; ") +
                   (failed != ocsp_failed_until_.end() && now < failed->second ? "the OCSP query failed"
                                                                                 : "no OCSP answer yet");
      }
    }
  }
  if (rc.crl_from_certificate && (!issuer.crl || stale)) QueueCrlUrls(*snap, static_cast<uint32_t>(index), leaf);
  if (good) {
    r.status = Status::kGood;
    ++counters_.cache_hits;
    return r;
  }
  ++counters_.cache_misses;
  r.status = stale ? Status::kStale : Status::kUnknown;
  r.detail = why_not.empty() ? "no revocation source covers it" : why_not;
  return r;
}

std::string Service::KeyOf(X509* leaf) const {
  if (!enabled_ || !current_) return {};
  const int32_t index = FindIssuer(*current_, leaf);
  if (index < 0) return {};
  return current_->issuers[static_cast<size_t>(index)].id + SerialKey(X509_get0_serialNumber(leaf));
}

bool Service::IsRevoked(std::string_view key) const {
  if (!enabled_ || key.size() < 32 || !current_) return false;
  auto o = ocsp_.find(key);
  if (o != ocsp_.end() && o->second.status == CertStatus::kRevoked) return true;
  auto it = current_->by_id.find(key.substr(0, 32));
  if (it == current_->by_id.end()) return false;
  const Crl* crl = current_->issuers[it->second].crl.get();
  return crl && crl->IsRevoked(key.substr(32));
}

void Service::QueueOcsp(const Snapshot& snap, uint32_t issuer, X509* leaf, const std::string& key, int64_t now) {
  if (ocsp_pending_.count(key)) return;
  auto failed = ocsp_failed_until_.find(key);
  if (failed != ocsp_failed_until_.end()) {
    if (now < failed->second) return;
    ocsp_failed_until_.erase(failed);
  }
  const RevocationConfig& rc = snap.policy->revocation;
  std::string url = rc.ocsp_url;
  if (rc.ocsp == RevocationConfig::Ocsp::kFromCertificate) {
    url.clear();
    for (const std::string& u : OcspUrls(leaf)) {
      if (u.rfind("http://", 0) == 0) {
        url = u;
        break;
      }
    }
    if (url.empty()) return;
  }
  auto job = std::make_shared<OcspJob>();
  job->key = key;
  job->url = url;
  job->leaf_der = ToDer<X509, i2d_X509>(leaf);  // the worker parses its own copy
  job->issuer = snap.issuers[issuer].cert;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ocsp_jobs_.size() >= kMaxOcspQueue) {
      ++counters_.ocsp_queue_full;
      return;
    }
    if (!ocsp_queued_.insert(key).second) return;
    ocsp_jobs_.push_back(std::move(job));
  }
  ocsp_pending_.insert(key);
  ocsp_cv_.notify_one();
}

void Service::QueueCrlUrls(const Snapshot& snap, uint32_t issuer, X509* leaf) {
  std::vector<CrlUrlJob> jobs;
  for (const std::string& url : CrlUrls(leaf)) {
    if (url.rfind("http://", 0) != 0) continue;
    const std::string id = snap.issuers[issuer].id + url;
    if (crl_urls_sent_.count(id) || crl_urls_sent_.size() >= kMaxCrlUrlsPerIssuer * snap.issuers.size()) continue;
    crl_urls_sent_.insert(id);
    jobs.push_back({snap.issuers[issuer].id, url});
  }
  if (jobs.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (CrlUrlJob& j : jobs) crl_url_jobs_.push_back(std::move(j));
  }
  work_cv_.notify_all();
}

void Service::NoteConnected(std::string_view key) {
  if (!enabled_ || key.empty() || !current_ || current_->policy->revocation.ocsp == RevocationConfig::Ocsp::kOff) return;
  std::lock_guard<std::mutex> lock(mu_);
  connected_notes_.emplace_back(key, true);
}

void Service::NoteDisconnected(std::string_view key) {
  if (!enabled_ || key.empty() || !current_ || current_->policy->revocation.ocsp == RevocationConfig::Ocsp::kOff) return;
  std::lock_guard<std::mutex> lock(mu_);
  connected_notes_.emplace_back(key, false);
}

void Service::CountFetch(const std::string& url, bool ok) {
  auto it = counters_.fetches.find(url);
  if (it == counters_.fetches.end()) {
    if (counters_.fetches.size() >= kMaxTrackedUrls) return;
    it = counters_.fetches.emplace(url, RevocationCounters::Fetch{}).first;
  }
  ++(ok ? it->second.succeeded : it->second.failed);
}

bool Service::Poll(int64_t now, Update* out) {
  if (now >= local_due_) LocalPass(now);
  if (!pending_flag_.load(std::memory_order_acquire)) return false;
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) return false;
  std::shared_ptr<const Snapshot> snap = std::move(out_snapshot_);
  out_snapshot_.reset();
  std::vector<OcspResult> results = std::move(out_ocsp_);
  out_ocsp_.clear();
  std::vector<std::pair<std::string, bool>> fetches = std::move(out_fetches_);
  out_fetches_.clear();
  out->revoked_keys = std::move(out_revoked_);
  out_revoked_.clear();
  out->recheck_all = out_recheck_all_;
  out_recheck_all_ = false;
  out->log_info = std::move(out_info_);
  out_info_.clear();
  out->log_warning = std::move(out_warning_);
  out_warning_.clear();
  counters_.crl_adopted += out_crl_adopted_;
  counters_.crl_rejected += out_crl_rejected_;
  out_crl_adopted_ = out_crl_rejected_ = 0;
  pending_flag_.store(false, std::memory_order_release);
  if (snap) {
    // The old snapshot (and its CRLs) is freed by the worker, not here.
    // Without a worker every CRL is small (kInlineCrlBytes): freed here.
    retired_.push_back(std::move(current_));
    current_ = std::move(snap);
    if (!crl_worker_started_) retired_.clear();
  }
  lock.unlock();
  work_cv_.notify_all();

  const int64_t backoff = current_ ? current_->policy->revocation.failure_backoff_s : 5;
  for (OcspResult& r : results) {
    ocsp_pending_.erase(r.key);
    if (!r.ok) {
      if (ocsp_failed_until_.size() >= kMaxOcspEntries) ocsp_failed_until_.clear();  // forget old backoffs
      ocsp_failed_until_[r.key] = now + backoff;
      continue;
    }
    ocsp_failed_until_.erase(r.key);
    if (ocsp_.size() >= kMaxOcspEntries && r.entry.status != CertStatus::kRevoked && !ocsp_.count(r.key)) {
      continue;  // full: good answers are not cached (re-asked), revoked ones always are
    }
    OcspEntry& e = ocsp_[r.key];
    // Revoked stays revoked: only a signed "good" may lift a certificateHold.
    if (e.status == CertStatus::kRevoked && r.entry.status != CertStatus::kRevoked &&
        !(e.reason == kCertificateHold && r.entry.status == CertStatus::kGood)) {
      continue;
    }
    e = r.entry;
  }
  for (auto& [url, ok] : fetches) CountFetch(url, ok);
  ++generation_;
  return true;
}

size_t Service::crl_entries() const {
  size_t n = 0;
  if (current_) {
    for (const IssuerState& i : current_->issuers) n += i.crl ? i.crl->size() : 0;
  }
  return n;
}

// ---------------------------------------------------------------------------
// Background: CRLs.

void Service::Publish(std::shared_ptr<const Snapshot> snap, std::vector<std::string> info,
                      std::vector<std::string> warn, std::vector<std::string> revoked, bool recheck_all) {
  if (!snap && info.empty() && warn.empty() && revoked.empty() && !recheck_all) return;
  std::shared_ptr<const Snapshot> replaced;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (snap) {
      replaced = std::move(out_snapshot_);  // never adopted: freed below, off the broker thread
      out_snapshot_ = std::move(snap);
    }
    for (std::string& l : info) out_info_.push_back(std::move(l));
    for (std::string& l : warn) out_warning_.push_back(std::move(l));
    if (out_revoked_.size() + revoked.size() > kMaxDiffKeys) {
      out_recheck_all_ = true;
      out_revoked_.clear();
    } else {
      for (std::string& k : revoked) out_revoked_.push_back(std::move(k));
    }
    out_recheck_all_ = out_recheck_all_ || recheck_all;
    pending_flag_.store(true, std::memory_order_release);
  }
}

bool Service::Adopt(std::string_view data, const std::string& source, const std::string& issuer_id,
                    std::shared_ptr<Snapshot>* snap, int64_t now, std::vector<std::string>* info,
                    std::vector<std::string>* /*warn*/, std::vector<std::string>* revoked, bool* recheck_all,
                    std::string* error) {
  const Snapshot& base = *snap ? **snap : *worker_snapshot_;
  const RevocationConfig& rc = base.policy->revocation;
  std::unique_ptr<const Crl> parsed;
  size_t index = 0;
  std::string first_error;
  for (size_t i = 0; i < base.issuers.size() && !parsed; ++i) {
    if (!issuer_id.empty() && base.issuers[i].id != issuer_id) continue;
    std::string err;
    parsed = Crl::Parse(data, base.issuers[i].cert.get(), now, rc.clock_skew_s, &err);
    if (parsed) {
      index = i;
    } else if (first_error.empty() || err.find("issuer name") == std::string::npos) {
      first_error = err;  // prefer an error other than "not this issuer"
    }
  }
  if (!parsed) {
    *error = first_error.empty() ? "no configured issuer for it" : first_error;
    return false;
  }
  const IssuerState& issuer = base.issuers[index];
  if (const Crl* current = issuer.crl.get()) {
    int cmp = 0;
    if (!parsed->number().empty() && !current->number().empty()) {
      cmp = CompareCrlNumbers(parsed->number(), current->number());
    }
    if (cmp == 0) cmp = parsed->this_update() < current->this_update() ? -1 : parsed->this_update() > current->this_update() ? 1 : 0;
    if (cmp < 0) {
      *error = "older than the CRL in force (number " + Hex(parsed->number()) + " < " + Hex(current->number()) +
               " or an earlier thisUpdate): a rollback is refused";
      return false;
    }
    if (cmp == 0) return false;  // the same CRL again
    // Newly revoked serials, for disconnecting their devices.
    size_t added = 0;
    parsed->serials().ForEach([&](std::string_view s) {
      if (*recheck_all || current->IsRevoked(s)) return;
      if (++added > kMaxDiffKeys) {
        *recheck_all = true;
        return;
      }
      revoked->push_back(issuer.id + std::string(s));
    });
  } else if (parsed->size() > 0) {
    *recheck_all = true;  // first CRL of this issuer: re-check its connected devices
  }
  if (!*snap) *snap = std::make_shared<Snapshot>(*worker_snapshot_);
  IssuerState& target = (*snap)->issuers[index];
  info->push_back("revocation: adopted the CRL of " + issuer.description + " from " + source + ": " +
                  std::to_string(parsed->size()) + " revoked, number " +
                  (parsed->number().empty() ? std::string("none") : Hex(parsed->number())) + ", nextUpdate " +
                  TimeText(parsed->next_update()));
  target.crl = std::shared_ptr<const Crl>(std::move(parsed));
  target.crl_source = source;
  return true;
}

bool Service::ScanFiles(const std::vector<std::string>& paths, std::shared_ptr<Snapshot>* snap, int64_t now,
                        bool force, std::vector<std::string>* info, std::vector<std::string>* warn,
                        std::vector<std::string>* revoked, bool* recheck_all) {
  const RevocationConfig& rc = worker_snapshot_->policy->revocation;
  bool adopted = false;
  std::map<std::string, FileState> seen;
  for (const std::string& path : paths) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) {
      if (files_.count(path) && files_[path].size != -2) warn->push_back("revocation: CRL file " + path + ": " + std::strerror(errno) + "; the CRL in force stays");
      seen[path] = FileState{-2, -2, 0};
      continue;
    }
    const FileState now_state = StateOf(st);
    seen[path] = now_state;
    if (!force && Unchanged(path, now_state)) continue;
    std::string data, error;
    if (!ReadWholeFile(path, rc.crl_max_bytes, &data, &error) ||
        !Adopt(data, path, "", snap, now, info, warn, revoked, recheck_all, &error)) {
      if (!error.empty()) {
        warn->push_back("revocation: CRL file " + path + " not used: " + error);
        std::lock_guard<std::mutex> lock(mu_);
        ++out_crl_rejected_;
      }
      continue;
    }
    adopted = true;
    std::lock_guard<std::mutex> lock(mu_);
    ++out_crl_adopted_;
  }
  files_ = std::move(seen);
  return adopted;
}

Service::FileState Service::StateOf(const struct stat& st) {
  return FileState{static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                   static_cast<int64_t>(st.st_size), static_cast<uint64_t>(st.st_ino)};
}

bool Service::Unchanged(const std::string& path, const FileState& now_state) const {
  auto old = files_.find(path);
  return old != files_.end() && old->second.mtime_ns == now_state.mtime_ns && old->second.size == now_state.size &&
         old->second.inode == now_state.inode;
}

bool Service::LargeFileToRead(const std::vector<std::string>& paths, bool force) const {
  for (const std::string& path : paths) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0 || static_cast<uint64_t>(st.st_size) <= kInlineCrlBytes) continue;
    if (force || !Unchanged(path, StateOf(st))) return true;
  }
  return false;
}

bool Service::FetchUrl(const std::string& url, UrlState* state, std::shared_ptr<Snapshot>* snap, int64_t now,
                       std::vector<std::string>* info, std::vector<std::string>* warn,
                       std::vector<std::string>* revoked, bool* recheck_all, bool* fetched_ok) {
  const RevocationConfig& rc = worker_snapshot_->policy->revocation;
  HttpRequest req;
  req.url = url;
  req.timeout_ms = static_cast<int>(rc.fetch_timeout_s * 1000);
  req.max_body = rc.crl_max_bytes;
  req.cancel = &cancel_;
  if (!state->etag.empty()) req.headers.emplace_back("If-None-Match", state->etag);
  if (!state->last_modified.empty()) req.headers.emplace_back("If-Modified-Since", state->last_modified);
  HttpResponse resp;
  std::string error;
  bool adopted = false;
  bool ok = HttpFetch(req, &resp, &error);
  if (ok && resp.status == 304) {
    // unchanged
  } else if (ok && resp.status == 200) {
    adopted = Adopt(resp.body, url, state->issuer_id, snap, now, info, warn, revoked, recheck_all, &error);
    if (!adopted && !error.empty()) {
      ok = false;
      std::lock_guard<std::mutex> lock(mu_);
      ++out_crl_rejected_;
    } else if (adopted) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++out_crl_adopted_;
      }
      if (!rc.crl_cache_dir.empty()) {
        // Kept for the next start: verified again when read back.
        const std::string name = Hex(Sha256(url)).substr(0, 32) + ".crl";
        const std::string tmp = rc.crl_cache_dir + "/." + name + ".tmp";
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out.write(resp.body.data(), static_cast<std::streamsize>(resp.body.size()));
        out.close();
        std::error_code ec;
        if (out) std::filesystem::rename(tmp, rc.crl_cache_dir + "/" + name, ec);
        if (!out || ec) {
          std::filesystem::remove(tmp, ec);
          warn->push_back("revocation: cannot keep the CRL from " + url + " in " + rc.crl_cache_dir + ": " +
                          (ec ? ec.message() : std::string(std::strerror(errno))));
        }
      }
    }
    if (ok) {
      const std::string* etag = resp.Header("etag");
      const std::string* lm = resp.Header("last-modified");
      state->etag = etag ? *etag : "";
      state->last_modified = lm ? *lm : "";
    }
  } else if (ok) {
    ok = false;
    error = "HTTP status " + std::to_string(resp.status);
  }
  *fetched_ok = ok;
  // Next fetch: before nextUpdate, at most crl_refresh away, with jitter so
  // a fleet of brokers does not fetch in step; after a failure, back off.
  if (ok) {
    if (state->failures > 0) info->push_back("revocation: CRL " + url + " fetched again after " + std::to_string(state->failures) + " failure(s)");
    state->failures = 0;
    int64_t horizon = rc.crl_refresh_s;
    const Snapshot& base = *snap ? **snap : *worker_snapshot_;
    auto it = base.by_id.find(state->issuer_id);
    if (it != base.by_id.end() && base.issuers[it->second].crl) {
      const int64_t next = base.issuers[it->second].crl->next_update();
      if (next > now) horizon = std::min(horizon, next - now);
      else if (next != 0) horizon = std::min(horizon, rc.failure_backoff_s);
    }
    state->due = now + std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(horizon) * Jitter(0.75, 0.95)));
  } else {
    if (state->failures == 0 || state->failures % 10 == 0) {
      warn->push_back("revocation: CRL " + url + " failed: " + error + "; the CRL in force stays, retrying with backoff");
    }
    ++state->failures;
    const int shift = std::min(state->failures - 1, 16);
    const int64_t backoff = std::min<int64_t>(rc.failure_backoff_s << shift, std::max<int64_t>(rc.crl_refresh_s, rc.failure_backoff_s));
    state->due = now + std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(backoff) * Jitter(0.8, 1.2)));
  }
  return adopted;
}

void Service::CrlWorker() {
  LowerThreadPriority();
  int64_t next_scan = 0;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    std::shared_ptr<const Policy> policy = std::move(next_policy_);
    next_policy_.reset();
    std::deque<CrlUrlJob> url_jobs = std::move(crl_url_jobs_);
    crl_url_jobs_.clear();
    std::vector<std::pair<std::string, bool>> notes = std::move(connected_notes_);
    connected_notes_.clear();
    std::vector<std::shared_ptr<const Snapshot>> retired = std::move(retired_);
    retired_.clear();
    lock.unlock();
    if (!retired.empty()) {
      retired.clear();  // old CRL tables are freed here, never on the broker thread
      ::malloc_trim(0);  // and given back to the system, not kept by this thread's arena
    }

    const int64_t now = WallNow();
    std::shared_ptr<Snapshot> snap;
    std::vector<std::string> info, warn, revoked;
    bool recheck_all = false;
    bool force = false;
    if (policy) {
      ApplyPolicy(policy, &snap, &info);
      force = true;  // re-read every file now
      recheck_all = true;
    }
    const RevocationConfig& rc = worker_snapshot_->policy->revocation;
    for (CrlUrlJob& j : url_jobs) {
      if (!urls_.count(j.url)) urls_[j.url] = UrlState{j.issuer_id, now, 0, {}, {}};
    }
    for (auto& [key, connected] : notes) {
      int& n = connected_keys_[key];
      n += connected ? 1 : -1;
      if (n <= 0) connected_keys_.erase(key);
    }
    if (rc.enabled()) {
      if (force || now >= next_scan) {
        ScanFiles(CrlPaths(rc), &snap, now, force, &info, &warn, &revoked, &recheck_all);
        next_scan = now + rc.crl_file_poll_s;
      }
      std::vector<std::pair<std::string, bool>> fetch_results;
      for (auto& [url, state] : urls_) {
        if (state.due > now || stop_) continue;
        bool ok = false;
        FetchUrl(url, &state, &snap, now, &info, &warn, &revoked, &recheck_all, &ok);
        fetch_results.emplace_back(url, ok);
      }
      if (!fetch_results.empty()) {
        std::lock_guard<std::mutex> l(mu_);
        for (auto& f : fetch_results) out_fetches_.push_back(std::move(f));
        pending_flag_.store(true, std::memory_order_release);
      }
      // OCSP answers of connected devices, refreshed ahead of expiry.
      std::vector<std::shared_ptr<OcspJob>> refreshes;
      {
        std::lock_guard<std::mutex> l(refresh_mu_);
        for (auto it = refresh_.begin(); it != refresh_.end();) {
          if (it->second.due > now) {
            ++it;
            continue;
          }
          if (connected_keys_.count(it->first)) {
            auto job = std::make_shared<OcspJob>();
            job->key = it->first;
            job->url = it->second.url;
            job->issuer = it->second.issuer;
            job->request = it->second.request;
            refreshes.push_back(std::move(job));
          }
          it = refresh_.erase(it);
        }
      }
      if (!refreshes.empty()) {
        std::lock_guard<std::mutex> l(mu_);
        for (auto& job : refreshes) {
          if (ocsp_jobs_.size() < kMaxOcspQueue && ocsp_queued_.insert(job->key).second) ocsp_jobs_.push_back(job);
        }
        ocsp_cv_.notify_all();
      }
    }
    if (snap) worker_snapshot_ = snap;
    const bool adopted = snap != nullptr;
    Publish(std::move(snap), std::move(info), std::move(warn), std::move(revoked), recheck_all);
    if (adopted) ::malloc_trim(0);  // a big CRL's transient buffers

    // Sleep until the next file scan or URL due, or new work.
    int64_t wake = rc.enabled() ? next_scan : now + 3600;
    for (const auto& [url, state] : urls_) wake = std::min(wake, state.due);
    wake = std::min(wake, now + 1);  // refreshes are checked every second
    lock.lock();
    work_cv_.wait_until(lock, std::chrono::system_clock::from_time_t(static_cast<std::time_t>(std::max(wake, now + 1))),
                        [&] { return stop_ || next_policy_ || !crl_url_jobs_.empty() || !retired_.empty(); });
  }
}

// ---------------------------------------------------------------------------
// Background: OCSP.

void Service::OcspWorker() {
  LowerThreadPriority();
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    ocsp_cv_.wait(lock, [&] { return stop_ || !ocsp_jobs_.empty(); });
    if (stop_) return;
    std::shared_ptr<OcspJob> job = std::move(ocsp_jobs_.front());
    ocsp_jobs_.pop_front();
    std::shared_ptr<const Policy> policy = worker_policy_;
    const int64_t now = WallNow();
    Breaker& breaker = breakers_[job->url];
    const bool down = breaker.open_until > now;
    lock.unlock();

    const RevocationConfig& rc = policy->revocation;
    OcspResult result;
    result.key = job->key;
    std::string error;
    if (down) {
      error = "responder marked down after " + std::to_string(kBreakerThreshold) + " consecutive failures";
    } else {
      if (!job->request) {
        const unsigned char* p = reinterpret_cast<const unsigned char*>(job->leaf_der.data());
        X509Ptr leaf(d2i_X509(nullptr, &p, static_cast<long>(job->leaf_der.size())));
        if (!leaf) {
          error = "cannot parse the device certificate";
        } else {
          job->request = std::shared_ptr<OcspRequest>(
              OcspRequest::Create(leaf.get(), job->issuer.get(), rc.ocsp_nonce, &error).release());
        }
      }
      if (job->request) {
        HttpRequest req;
        req.method = "POST";
        req.url = job->url;
        req.content_type = "application/ocsp-request";
        req.body = job->request->der();
        req.timeout_ms = static_cast<int>(rc.ocsp_timeout_s * 1000);
        req.max_body = 1 << 20;
        req.cancel = &cancel_;
        HttpResponse resp;
        if (HttpFetch(req, &resp, &error)) {
          if (resp.status != 200) {
            error = "HTTP status " + std::to_string(resp.status);
          } else {
            OcspAnswer answer;
            const int64_t t = WallNow();
            if (VerifyOcspResponse(resp.body, *job->request, job->issuer.get(), t, rc.clock_skew_s, rc.ocsp_max_age_s,
                                   &answer, &error)) {
              result.ok = true;
              result.entry.status = answer.status;
              result.entry.reason = answer.reason;
              int64_t until = t + rc.ocsp_max_age_s;
              if (answer.next_update) until = std::min(until, answer.next_update + rc.clock_skew_s);
              result.entry.valid_until = std::max(until, t + 1);
              if (answer.status != CertStatus::kRevoked) {
                std::lock_guard<std::mutex> l(refresh_mu_);
                Refresh& r = refresh_[job->key];
                r.url = job->url;
                r.issuer = job->issuer;
                r.request = job->request;
                r.due = t + std::max<int64_t>(1, (result.entry.valid_until - t) * 3 / 4);
              }
            }
          }
        }
      }
    }
    job->leaf_der.clear();
    lock.lock();
    ocsp_queued_.erase(job->key);
    Breaker& b = breakers_[job->url];
    if (!down) {
      if (result.ok) {
        if (b.consecutive_failures >= kBreakerThreshold) out_info_.push_back("revocation: OCSP responder " + job->url + " answers again");
        b.consecutive_failures = 0;
        b.open_until = 0;
      } else {
        ++b.consecutive_failures;
        if (b.consecutive_failures == 1) {
          out_warning_.push_back("revocation: OCSP query to " + job->url + " failed: " + error);
        }
        if (b.consecutive_failures >= kBreakerThreshold) {
          b.open_until = now + rc.failure_backoff_s;
          if (b.consecutive_failures == kBreakerThreshold) {
            out_warning_.push_back("revocation: OCSP responder " + job->url + " marked down for " +
                                   std::to_string(rc.failure_backoff_s) + "s after " +
                                   std::to_string(kBreakerThreshold) + " failures (last: " + error + ")");
          }
        }
      }
      out_fetches_.emplace_back(job->url, result.ok);
    }
    if (result.ok && result.entry.status == CertStatus::kRevoked) {
      out_revoked_.push_back(job->key);
      out_info_.push_back("revocation: OCSP " + job->url + " says a certificate is revoked (reason " +
                          std::to_string(result.entry.reason) + ")");
    }
    out_ocsp_.push_back(std::move(result));
    pending_flag_.store(true, std::memory_order_release);
  }
}

}  // namespace certacl::revocation
