// job_table.h: the enroll bridge's memory of enrollment requests, so that
// duplicates (QoS 1 redelivery, a device retrying, a device re-sending the
// same CSR after RequestPending) never cause a second issuance, and so that
// one device cannot flood the CA.
//
// A job is keyed by (identity, SHA-256 of the CSR's DER) — JobKey(). Its
// life: Admit() starts it (kStart: the caller runs it) or attaches the
// request to it as one more waiter; the runner ends it with Finish() (the
// answer, kept for duplicate_ttl when `keep`) or parks it with Pend() (the
// CA said 202: TakeDue() hands it back to a runner when Retry-After has
// passed). Every waiter gets the final answer (Finish returns them).
//
// Several bridges: each tells the others what it is doing (bridge.cc shares
// job records through retained messages); Elsewhere() and DoneElsewhere()
// record another bridge's job, so a duplicate that lands on this bridge is
// told RequestPending or gets the other bridge's answer instead of
// reaching the CA a second time.
//
// Pure: time is passed in (Unix seconds), no I/O. Thread-safe (one mutex).
#ifndef CERTACL_ENROLL_BRIDGE_JOB_TABLE_H_
#define CERTACL_ENROLL_BRIDGE_JOB_TABLE_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "enroll-bridge/payloads.h"

namespace certacl::enroll {

// Where one request's answer goes.
struct ReplyTo {
  std::string accepted_topic;
  std::string rejected_topic;
  bool has_correlation = false;
  std::string correlation;  // MQTT 5 Correlation Data, echoed unchanged
  std::string request_id;
  bool operator==(const ReplyTo& o) const {
    return accepted_topic == o.accepted_topic && rejected_topic == o.rejected_topic &&
           has_correlation == o.has_correlation && correlation == o.correlation && request_id == o.request_id;
  }
};

// What a runner needs to (re)send a job upstream.
struct JobInput {
  Op op = Op::kSimpleReenroll;
  std::string identity;
  std::string client_id;
  std::string csr_der;
  std::string current_der;  // the stamped certificate the device is connected with
};

// A final answer.
struct Outcome {
  bool accepted = false;
  Issued issued;        // when accepted
  Rejection rejection;  // otherwise
};

// identity + "/" + hex SHA-256 of the CSR DER.
std::string JobKey(std::string_view identity, std::string_view csr_der);

class JobTable {
 public:
  JobTable(int per_device_per_hour, int64_t duplicate_ttl_s, int64_t max_pending_s);

  enum class Kind {
    kStart,        // a new job: the caller must run it
    kJoined,       // a job in flight: this request gets its answer
    kPending,      // the CA said 202 and is asked again later: tell RequestPending (retry_after_s); the answer follows
    kDone,         // answered before: `outcome` is the answer
    kRateLimited,  // too many new jobs for this identity: retry_after_s
  };
  struct Admission {
    Kind kind = Kind::kStart;
    int64_t retry_after_s = 0;
    std::shared_ptr<const Outcome> outcome;
  };
  Admission Admit(const std::string& key, const JobInput& input, const ReplyTo& reply, int64_t now);

  // The job's input, or null if it is gone.
  std::shared_ptr<const JobInput> Input(const std::string& key) const;

  // Ends a job; returns its waiters. `keep`: duplicates get `outcome` for
  // duplicate_ttl (only answers that issued something need this; a failure
  // that issued nothing may simply be tried again).
  std::vector<ReplyTo> Finish(const std::string& key, Outcome outcome, bool keep, int64_t now);

  struct Parked {
    bool gave_up = false;          // pending longer than max_pending: Finish() it
    std::vector<ReplyTo> to_tell;  // waiters not yet told RequestPending
  };
  Parked Pend(const std::string& key, int64_t due, int64_t now);

  // Pending jobs whose time has come, now running again.
  std::vector<std::string> TakeDue(int64_t now);
  // The earliest due time of a pending job (INT64_MAX if none).
  int64_t NextDue() const;

  // Another bridge runs or parks job `key` until `until`: a duplicate here
  // is told RequestPending until then (after that, it is started here: the
  // other bridge may be gone). Ignored if this bridge has the job itself.
  void Elsewhere(const std::string& key, int64_t until, int64_t now);
  // Another bridge answered job `key` at `done_at`.
  void DoneElsewhere(const std::string& key, Outcome outcome, int64_t done_at);
  // Another bridge gave job `key` up (it issued nothing).
  void GoneElsewhere(const std::string& key);

  // Forgets answers older than duplicate_ttl and old rate-limit records.
  void Expire(int64_t now);

  size_t jobs() const;

 private:
  struct Waiter {
    ReplyTo reply;
    bool told_pending = false;
  };
  struct Job {
    std::shared_ptr<const JobInput> input;
    enum class State { kRunning, kPending, kDone, kElsewhere } state = State::kRunning;
    int64_t first_seen = 0;
    int64_t due = 0;         // kPending; kElsewhere: until when
    int64_t done_at = 0;     // kDone
    std::vector<Waiter> waiters;
    std::shared_ptr<const Outcome> outcome;  // kDone
  };

  mutable std::mutex mu_;
  const int per_hour_;
  const int64_t ttl_s_;
  const int64_t max_pending_s_;
  std::unordered_map<std::string, Job> jobs_;
  std::unordered_map<std::string, std::deque<int64_t>> starts_;  // identity -> start times in the last hour
};

}  // namespace certacl::enroll

#endif  // CERTACL_ENROLL_BRIDGE_JOB_TABLE_H_
