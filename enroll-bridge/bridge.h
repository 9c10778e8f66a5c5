// bridge.h: the MQTT side of certacl-enroll-bridge (docs/enroll.md).
//
// A Bridge is one MQTT 5 client (libmosquitto, mutual TLS with the bridge's
// own certificate) subscribed to the requests the plugin re-files under
// `{bridge_prefix}/+/+` (through `$share/{share_group}/` so several bridges
// split the work; answers go to `{prefix}/{id}/{op}/...`), plus
// a pool of worker threads that check each request, ask the Backend, check
// the answer and publish it:
//
//   network thread: receive -> topic, size, operation, identity stamp and
//                   JSON checks -> immediate rejection, or queue the request
//   workers:        CSR checks (csr_check.h) -> renewal window -> duplicates
//                   and rate limit (job_table.h) -> Backend -> leaf by key,
//                   VerifyIssued -> publish accepted / rejected to every
//                   waiter; 202 answers are asked again after Retry-After.
//
// Several bridges share job records (retained messages under
// `{state_topic}/jobs/`, readable only by bridges per the policy) so that a
// duplicate request landing on another bridge is answered from them, not
// sent to the CA again.
//
// The network thread reconnects on its own after any failure (1 s doubling
// to 30 s); a request is never lost inside the bridge once queued, and with
// session_expiry > 0 the broker keeps requests while the bridge is away.
// One log line per request outcome goes to the log sink (stderr by
// default). Start() and Stop() are for one controlling thread.
#ifndef CERTACL_ENROLL_BRIDGE_BRIDGE_H_
#define CERTACL_ENROLL_BRIDGE_BRIDGE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "enroll-bridge/backend.h"
#include "enroll-bridge/config.h"
#include "enroll-bridge/job_table.h"
#include "enroll-bridge/payloads.h"

struct mosquitto;
struct mqtt5__property;
struct mosquitto_message;

namespace certacl::enroll {

class Bridge {
 public:
  using LogSink = std::function<void(const std::string& line)>;

  Bridge(BridgeConfig config, std::unique_ptr<Backend> backend, LogSink log = nullptr);
  ~Bridge();  // Stop()
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  // Reads the bridge's TLS files and the expected CA files, starts the
  // network thread and the workers. Returns "" or what is wrong (the broker
  // being down is not an error: the bridge keeps trying).
  std::string Start();
  // Disconnects and joins every thread (bounded by the backend's timeout).
  void Stop();

  struct Counters {
    std::atomic<uint64_t> received{0};
    std::atomic<uint64_t> accepted{0};
    std::atomic<uint64_t> rejected{0};
    std::atomic<uint64_t> pending{0};
    std::atomic<uint64_t> duplicates{0};
    std::atomic<uint64_t> upstream_calls{0};
  };
  const Counters& counters() const { return counters_; }

 private:
  struct Task {
    Op op = Op::kSimpleReenroll;
    std::string id;
    std::string client_id;
    ReplyTo reply;
    std::string body;
    std::string certificate_b64;  // the stamp
  };

  static void OnConnect(mosquitto*, void* self, int rc, int flags, const mqtt5__property* props);
  static void OnDisconnect(mosquitto*, void* self, int rc, const mqtt5__property* props);
  static void OnSubscribe(mosquitto*, void* self, int mid, int count, const int* granted, const mqtt5__property* props);
  static void OnMessage(mosquitto*, void* self, const mosquitto_message* msg, const mqtt5__property* props);
  void HandleMessage(const mosquitto_message* msg, const mqtt5__property* props);

  void NetworkLoop();
  void WorkerLoop();
  void Process(const Task& task);
  void ProcessEnroll(const Task& task, const Request& request, int64_t now);
  void RunJob(const std::string& key);
  bool Verify(const BackendResult& result, X509_REQ* csr, X509* current, Issued* issued, std::string* why);
  bool Anchors(std::vector<std::string>* der, bool refresh, std::string* why);

  // Job records shared with the other bridges (job_table.h).
  enum class Record { kRunning, kPending, kDone, kGone };
  void PublishRecord(const std::string& key, Record state, int64_t until, const Outcome* outcome);
  void HandleRecord(const mosquitto_message* msg);

  void Accept(const ReplyTo& to, const std::string& json, const std::string& log_fields);
  void RejectTo(const ReplyTo& to, const Rejection& r, const std::string& log_fields);
  void Publish(const std::string& topic, const ReplyTo& to, int status, const std::string& json);
  void Log(const std::string& line);

  BridgeConfig config_;
  std::unique_ptr<Backend> backend_;
  LogSink log_;
  std::mutex log_mu_;
  JobTable jobs_;
  Counters counters_;
  std::string share_filter_;
  std::string records_filter_;  // "{state_topic}/jobs/+", or "" when off
  bool share_plain_ = false;

  mosquitto* mosq_ = nullptr;
  std::thread network_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> connected_{false};

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;   // guarded by mu_
  std::vector<std::thread> workers_;

  std::mutex anchors_mu_;
  std::vector<std::string> anchors_der_;  // guarded by anchors_mu_
  bool anchors_configured_ = false;
};

}  // namespace certacl::enroll

#endif  // CERTACL_ENROLL_BRIDGE_BRIDGE_H_
