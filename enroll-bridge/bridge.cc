// bridge.cc: see bridge.h.
#include "enroll-bridge/bridge.h"

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

#include "enroll-bridge/csr_check.h"
#include "enroll-bridge/est_codec.h"
#include "enroll-bridge/local_ca.h"

namespace certacl::enroll {
namespace {

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

X509Ptr ParseDer(std::string_view der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  return X509Ptr(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

int64_t AsnToUnix(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

// A bare log field (an identity or operation from a topic): printable ASCII
// without blanks or quotes, bounded.
std::string Field(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 128)) out += (c > 0x20 && c < 0x7f && c != '"') ? c : '?';
  return out;
}

// Values for a log line: quoted, printable, bounded.
std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 300)) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c >= 0x20 && c < 0x7f) {
      out += c;
    } else {
      out += '?';
    }
  }
  return out + "\"";
}

std::string CommonName(const std::string& cert_file) {
  BioPtr bio(BIO_new_file(cert_file.c_str(), "r"));
  if (!bio) return "";
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return "";
  char buf[256];
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, buf, sizeof buf) <= 0) return "";
  return buf;
}

bool ReadPemCerts(const std::string& file, std::vector<std::string>* der, std::string* why) {
  BioPtr bio(BIO_new_file(file.c_str(), "r"));
  if (!bio) {
    *why = "cannot read " + file + ": " + std::strerror(errno);
    return false;
  }
  size_t before = der->size();
  while (X509Ptr cert{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) {
    der->push_back(ToDer<X509, i2d_X509>(cert.get()));
  }
  ERR_clear_error();
  if (der->size() == before) {
    *why = file + " holds no PEM certificate";
    return false;
  }
  return true;
}

bool CanRead(const std::string& file, std::string* why) {
  FILE* f = std::fopen(file.c_str(), "rb");
  if (f == nullptr) {
    *why = "cannot read " + file + ": " + std::strerror(errno);
    return false;
  }
  std::fclose(f);
  return true;
}

}  // namespace

Bridge::Bridge(BridgeConfig config, std::unique_ptr<Backend> backend, LogSink log)
    : config_(std::move(config)),
      backend_(std::move(backend)),
      log_(std::move(log)),
      jobs_(config_.limits.per_device_per_hour, config_.enroll.duplicate_ttl_s, config_.enroll.max_pending_s) {
  // Mosquitto 2.0 never delivers a `$` topic to a shared subscription: with
  // a `$` bridge_prefix (requests not re-filed) only a plain one works.
  const std::string requests = config_.mqtt.bridge_prefix + "/+/+";
  share_plain_ = !config_.mqtt.share_group.empty() && config_.mqtt.bridge_prefix.front() == '$';
  share_filter_ = config_.mqtt.share_group.empty() || share_plain_
                      ? requests
                      : "$share/" + config_.mqtt.share_group + "/" + requests;
  if (!config_.mqtt.state_topic.empty()) records_filter_ = config_.mqtt.state_topic + "/jobs/+";
}

Bridge::~Bridge() { Stop(); }

void Bridge::Log(const std::string& line) {
  std::lock_guard<std::mutex> lock(log_mu_);
  if (log_) {
    log_(line);
    return;
  }
  char ts[32];
  const time_t t = std::time(nullptr);
  struct tm tm {};
  gmtime_r(&t, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::fprintf(stderr, "%s certacl-enroll-bridge: %s\n", ts, line.c_str());
  std::fflush(stderr);
}

std::string Bridge::Start() {
  std::string why;
  for (const std::string* f : {&config_.mqtt.cafile, &config_.mqtt.certfile, &config_.mqtt.keyfile}) {
    if (!CanRead(*f, &why)) return "[mqtt] " + why;
  }
  for (const std::string& f : config_.enroll.expected_ca) {
    if (!ReadPemCerts(f, &anchors_der_, &why)) return "[enroll] expected_ca: " + why;
    anchors_configured_ = true;
  }
  std::string client_id = config_.mqtt.client_id;
  if (client_id.empty()) client_id = CommonName(config_.mqtt.certfile);
  if (client_id.empty()) return "[mqtt] client_id is not set and " + config_.mqtt.certfile + " has no CN to use";
  config_.mqtt.client_id = client_id;

  mosquitto_lib_init();
  const bool persistent = config_.mqtt.session_expiry_s > 0;
  mosq_ = mosquitto_new(client_id.c_str(), !persistent, this);
  if (mosq_ == nullptr) return "cannot create the MQTT client: " + std::string(std::strerror(errno));
  mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
  mosquitto_threaded_set(mosq_, true);
  int rc = mosquitto_tls_set(mosq_, config_.mqtt.cafile.c_str(), nullptr, config_.mqtt.certfile.c_str(),
                             config_.mqtt.keyfile.c_str(), nullptr);
  if (rc != MOSQ_ERR_SUCCESS) return "[mqtt] TLS files refused: " + std::string(mosquitto_strerror(rc));
  mosquitto_connect_v5_callback_set(mosq_, &Bridge::OnConnect);
  mosquitto_disconnect_v5_callback_set(mosq_, &Bridge::OnDisconnect);
  mosquitto_message_v5_callback_set(mosq_, &Bridge::OnMessage);
  mosquitto_subscribe_v5_callback_set(mosq_, &Bridge::OnSubscribe);

  if (share_plain_) {
    Log("warning: bridge_prefix \"" + config_.mqtt.bridge_prefix +
        "\" starts with '$', which Mosquitto 2.0 cannot share: subscribing without $share/, so run one bridge only");
  }
  Log("starting: broker " + config_.mqtt.host + ":" + std::to_string(config_.mqtt.port) + " as " + client_id +
      ", requests on " + share_filter_ + ", backend " + backend_->Describe() + ", " +
      std::to_string(config_.enroll.workers) + " workers");
  stop_ = false;
  network_ = std::thread([this] { NetworkLoop(); });
  for (int i = 0; i < config_.enroll.workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  return "";
}

void Bridge::Stop() {
  if (stop_.exchange(true)) return;
  cv_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
  if (network_.joinable()) network_.join();
  if (mosq_ != nullptr) {
    mosquitto_destroy(mosq_);
    mosq_ = nullptr;
    mosquitto_lib_cleanup();
  }
}

// --- network thread -------------------------------------------------------

void Bridge::NetworkLoop() {
  mosquitto_property* props = nullptr;
  if (config_.mqtt.session_expiry_s > 0) {
    mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                 static_cast<uint32_t>(config_.mqtt.session_expiry_s));
  }
  int64_t backoff_ms = 1000;
  bool ever_tried = false;
  bool reported_down = false;
  while (!stop_) {
    int rc;
    if (!ever_tried) {
      rc = mosquitto_connect_bind_v5(mosq_, config_.mqtt.host.c_str(), config_.mqtt.port, config_.mqtt.keepalive_s,
                                     nullptr, props);
      ever_tried = true;
    } else {
      rc = mosquitto_reconnect(mosq_);
    }
    bool was_connected = false;
    while (rc == MOSQ_ERR_SUCCESS && !stop_) {
      rc = mosquitto_loop(mosq_, 200, 1);
      if (connected_) was_connected = true;
    }
    if (stop_) break;
    connected_ = false;
    if (was_connected) {  // a new outage: report it, retry soon
      backoff_ms = 1000;
      reported_down = false;
    }
    if (!reported_down) {
      Log("broker " + config_.mqtt.host + ":" + std::to_string(config_.mqtt.port) + " unreachable or gone (" +
          (rc == MOSQ_ERR_ERRNO ? std::string(std::strerror(errno)) : std::string(mosquitto_strerror(rc))) +
          "): retrying every " + std::to_string(backoff_ms / 1000) + " s up to 30 s");
      reported_down = true;
    }
    for (int64_t waited = 0; waited < backoff_ms && !stop_; waited += 100) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    backoff_ms = std::min<int64_t>(backoff_ms * 2, 30000);
  }
  if (connected_) {
    mosquitto_disconnect_v5(mosq_, MQTT_RC_NORMAL_DISCONNECTION, nullptr);
    for (int i = 0; i < 10; ++i) {
      if (mosquitto_loop(mosq_, 50, 1) != MOSQ_ERR_SUCCESS) break;
    }
  }
  mosquitto_property_free_all(&props);
}

void Bridge::OnConnect(mosquitto* mosq, void* self, int rc, int, const mqtt5__property*) {
  auto* b = static_cast<Bridge*>(self);
  if (rc != 0) {
    b->Log("broker refused the bridge's connection: " + std::string(mosquitto_reason_string(rc)) +
           " (is the bridge's certificate allowed by the policy?)");
    return;
  }
  b->connected_ = true;
  // Job records first, so that they are known before the first request.
  std::vector<char*> filters;
  if (!b->records_filter_.empty()) filters.push_back(b->records_filter_.data());
  filters.push_back(b->share_filter_.data());
  const int sub = mosquitto_subscribe_multiple(mosq, nullptr, static_cast<int>(filters.size()), filters.data(), 1, 0,
                                               nullptr);
  b->Log("connected; subscribing to " + b->share_filter_ +
         (b->records_filter_.empty() ? "" : " and " + b->records_filter_) +
         (sub == MOSQ_ERR_SUCCESS ? "" : " failed: " + std::string(mosquitto_strerror(sub))));
}

void Bridge::OnSubscribe(mosquitto*, void* self, int, int count, const int* granted, const mqtt5__property*) {
  auto* b = static_cast<Bridge*>(self);
  const bool with_records = !b->records_filter_.empty();
  const int request_index = with_records ? 1 : 0;
  if (count != request_index + 1) return;
  if (with_records && !(granted[0] >= 0 && granted[0] <= 2)) {
    b->Log("warning: the broker refused the subscription to " + b->records_filter_ + " (reason " +
           std::to_string(granted[0]) +
           "): duplicates that reach another bridge may be issued twice; give the bridge subscribe and publish "
           "rights on " + b->config_.mqtt.state_topic + "/jobs/+ in the policy");
  }
  const int g = granted[request_index];
  if (g >= 0 && g <= 2) {
    b->Log("ready: subscribed to " + b->share_filter_ + " (QoS " + std::to_string(g) + ")");
  } else {
    b->Log("the broker refused the subscription to " + b->share_filter_ + " (reason " + std::to_string(g) +
           "): give the bridge's certificate subscribe rights on it in the policy");
  }
}

void Bridge::OnDisconnect(mosquitto*, void* self, int rc, const mqtt5__property*) {
  auto* b = static_cast<Bridge*>(self);
  if (b->connected_.exchange(false) && !b->stop_) {
    b->Log("disconnected from the broker (" + std::string(rc > 0 && rc < 0x80 ? mosquitto_strerror(rc) : mosquitto_reason_string(rc)) + "); reconnecting");
  }
}

void Bridge::OnMessage(mosquitto*, void* self, const mosquitto_message* msg, const mqtt5__property* props) {
  static_cast<Bridge*>(self)->HandleMessage(msg, props);
}

// Cheap checks on the network thread; everything else on a worker.
void Bridge::HandleMessage(const mosquitto_message* msg, const mqtt5__property* props) {
  const std::string topic = msg->topic != nullptr ? msg->topic : "";
  if (!records_filter_.empty() && topic.rfind(config_.mqtt.state_topic + "/jobs/", 0) == 0) {
    HandleRecord(msg);
    return;
  }
  counters_.received++;
  std::string id, op_name;
  if (!SplitRequestTopic(config_.mqtt.bridge_prefix, topic, &id, &op_name)) {
    Log("ignored a message on " + Quote(topic) + ": not a request topic");
    return;
  }
  if (msg->retain) {
    Log("id=" + Field(id) + " op=" + Field(op_name) + " outcome=ignored reason=\"retained message (a stale request)\"");
    return;
  }
  Task task;
  task.id = id;
  const std::string body(static_cast<const char*>(msg->payload), static_cast<size_t>(std::max(msg->payloadlen, 0)));

  // Where the answer goes: the defaults, or an MQTT 5 Response Topic inside
  // the device's own subtree.
  const std::string base = config_.mqtt.prefix + "/" + id + "/" + op_name;
  task.reply.accepted_topic = base + "/accepted";
  task.reply.rejected_topic = base + "/rejected";
  char* response_topic = nullptr;
  if (mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &response_topic, false) != nullptr) {
    if (ResponseTopicAllowed(config_.mqtt.prefix, id, response_topic)) {
      task.reply.accepted_topic = response_topic;
      task.reply.rejected_topic = response_topic;
    } else {
      Log("id=" + Field(id) + " ignoring response topic " + Quote(response_topic) + " outside " +
          Quote(config_.mqtt.prefix + "/" + id + "/"));
    }
    std::free(response_topic);
  }
  void* correlation = nullptr;
  uint16_t correlation_len = 0;
  if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &correlation, &correlation_len, false) !=
      nullptr) {
    task.reply.has_correlation = true;
    task.reply.correlation.assign(static_cast<const char*>(correlation), correlation_len);
    std::free(correlation);
  }

  const std::string log_base = "id=" + Field(id) + " op=" + Field(op_name);
  if (body.size() > config_.limits.max_payload_bytes) {
    RejectTo(task.reply, Reject(ErrorCode::kPayloadTooLarge,
                                "payload of " + std::to_string(body.size()) + " bytes exceeds " +
                                    std::to_string(config_.limits.max_payload_bytes)),
             log_base);
    return;
  }
  task.reply.request_id = SalvageRequestId(body);
  const std::optional<Op> op = ParseOp(op_name);
  if (!op || (*op == Op::kSimpleEnroll && !config_.enroll.simpleenroll)) {
    RejectTo(task.reply,
             Reject(ErrorCode::kUnsupportedOperation,
                    op ? "simpleenroll is switched off on this bridge ([enroll] simpleenroll)"
                       : "unknown operation '" + op_name + "' (simplereenroll, cacerts, csrattrs)"),
             log_base);
    return;
  }
  task.op = *op;

  // The plugin's stamp: exactly one identity and one certificate.
  int identities = 0, certificates = 0, client_ids = 0;
  std::string stamped_id;
  char* name = nullptr;
  char* value = nullptr;
  const mosquitto_property* p = mosquitto_property_read_string_pair(props, MQTT_PROP_USER_PROPERTY, &name, &value, false);
  while (p != nullptr) {
    const std::string_view n(name);
    if (n == "certacl-identity") {
      ++identities;
      stamped_id = value;
    } else if (n == "certacl-certificate") {
      ++certificates;
      task.certificate_b64 = value;
    } else if (n == "certacl-client-id") {
      ++client_ids;
      task.client_id = value;
    }
    std::free(name);
    std::free(value);
    name = value = nullptr;
    p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, true);
  }
  if (identities != 1 || certificates != 1 || client_ids > 1) {
    RejectTo(task.reply,
             Reject(ErrorCode::kInvalidRequest,
                    "the request carries no valid certacl identity stamp (is [enroll] on in the broker's policy, "
                    "with the same prefix?)"),
             log_base);
    return;
  }
  if (stamped_id != id) {
    RejectTo(task.reply,
             Reject(ErrorCode::kIdentityMismatch, "the request was stamped for '" + stamped_id + "', not '" + id + "'"),
             log_base);
    return;
  }
  task.body = body;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= config_.limits.queue) {
      RejectTo(task.reply, Reject(ErrorCode::kRateLimited, "the bridge is busy", config_.enroll.upstream_retry_after_s),
               log_base);
      return;
    }
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
}

// --- workers --------------------------------------------------------------

void Bridge::WorkerLoop() {
  int64_t last_expire = 0;
  while (true) {
    std::optional<Task> task;
    std::vector<std::string> due;
    {
      std::unique_lock<std::mutex> lock(mu_);
      const int64_t next = jobs_.NextDue();
      const auto wait_until = std::chrono::system_clock::now() +
                              std::chrono::milliseconds(next == INT64_MAX ? 1000 : std::clamp<int64_t>((next - Now()) * 1000, 50, 1000));
      cv_.wait_until(lock, wait_until, [&] { return stop_.load() || !queue_.empty(); });
      if (stop_) return;
      if (!queue_.empty()) {
        task = std::move(queue_.front());
        queue_.pop_front();
      }
    }
    if (task) {
      try {
        Process(*task);
      } catch (const std::exception& e) {
        RejectTo(task->reply, Reject(ErrorCode::kInternalError, e.what()), "id=" + Field(task->id) + " op=" + OpName(task->op));
      }
    }
    const int64_t now = Now();
    for (const std::string& key : jobs_.TakeDue(now)) RunJob(key);
    if (now - last_expire >= 60) {
      jobs_.Expire(now);
      last_expire = now;
    }
  }
}

void Bridge::Process(const Task& task) {
  const std::string log_base = "id=" + Field(task.id) + " op=" + OpName(task.op) +
                               (task.reply.request_id.empty() ? "" : " requestId=" + Quote(task.reply.request_id));
  Request request;
  std::string why;
  const bool needs_csr = task.op == Op::kSimpleEnroll || task.op == Op::kSimpleReenroll;
  if (!ParseRequest(task.body, needs_csr, &request, &why)) {
    RejectTo(task.reply, Reject(ErrorCode::kInvalidRequest, why), log_base);
    return;
  }
  if (needs_csr) {
    ProcessEnroll(task, request, Now());
    return;
  }
  counters_.upstream_calls++;
  BackendResult r = task.op == Op::kCaCerts ? backend_->CaCerts() : backend_->CsrAttrs();
  switch (r.status) {
    case BackendResult::Status::kOk: {
      if (task.op == Op::kCaCerts) {
        std::vector<X509*> certs;
        for (const X509Ptr& c : r.certs) certs.push_back(c.get());
        Accept(task.reply, CaCertsJson(task.reply.request_id, certs), log_base + " certificates=" + std::to_string(certs.size()));
      } else {
        Accept(task.reply, CsrAttrsJson(task.reply.request_id, r.der), log_base + " bytes=" + std::to_string(r.der.size()));
      }
      return;
    }
    case BackendResult::Status::kPending:
    case BackendResult::Status::kUnavailable:
      RejectTo(task.reply,
               Reject(ErrorCode::kUpstreamUnavailable, r.message,
                      r.retry_after_s > 0 ? r.retry_after_s : config_.enroll.upstream_retry_after_s),
               log_base);
      return;
    case BackendResult::Status::kRejected: {
      Rejection rej = Reject(ErrorCode::kUpstreamRejected, r.message);
      if (r.http_status >= 400 && r.http_status <= 599) rej.status = r.http_status;
      RejectTo(task.reply, rej, log_base);
      return;
    }
  }
}

void Bridge::ProcessEnroll(const Task& task, const Request& request, int64_t now) {
  const std::string log_base = "id=" + Field(task.id) + " op=" + OpName(task.op) +
                               (task.reply.request_id.empty() ? "" : " requestId=" + Quote(task.reply.request_id));

  std::string current_der;
  X509Ptr current;
  if (DecodeEstBase64(task.certificate_b64, &current_der)) current = ParseDer(current_der);
  if (!current) {
    RejectTo(task.reply, Reject(ErrorCode::kInvalidRequest, "the identity stamp's certificate does not parse"), log_base);
    return;
  }
  CsrCheckOptions options;
  options.max_bytes = config_.limits.max_payload_bytes;
  options.keys = config_.keys;
  options.ra_mode = backend_->ra_mode();
  CsrCheckResult check = CheckRenewalCsr(request.csr, current.get(), options);
  if (!check.ok()) {
    const ErrorCode code = check.error == CsrError::kKeyPolicy        ? ErrorCode::kKeyPolicy
                           : check.error == CsrError::kSubjectMismatch ? ErrorCode::kSubjectMismatch
                                                                       : ErrorCode::kInvalidCsr;
    RejectTo(task.reply, Reject(code, check.reason), log_base);
    return;
  }

  // The bridge's own renewal window (off unless configured).
  if (config_.enroll.renewal_fraction || config_.enroll.renewal_seconds) {
    const int64_t not_before = AsnToUnix(X509_get0_notBefore(current.get()));
    const int64_t not_after = AsnToUnix(X509_get0_notAfter(current.get()));
    const int64_t window = config_.enroll.renewal_seconds
                               ? *config_.enroll.renewal_seconds
                               : static_cast<int64_t>(static_cast<double>(not_after - not_before) * *config_.enroll.renewal_fraction);
    if (now < not_after - window) {
      RejectTo(task.reply,
               Reject(ErrorCode::kNotYetRenewable, "renewal opens at " + Rfc3339(not_after - window),
                      not_after - window - now),
               log_base);
      return;
    }
  }

  JobInput input;
  input.op = task.op;
  input.identity = task.id;
  input.client_id = task.client_id;
  input.csr_der = ToDer<X509_REQ, i2d_X509_REQ>(check.csr.get());
  input.current_der = current_der;
  const std::string key = JobKey(task.id, input.csr_der);
  JobTable::Admission a = jobs_.Admit(key, input, task.reply, now);
  switch (a.kind) {
    case JobTable::Kind::kDone:
      counters_.duplicates++;
      if (a.outcome->accepted) {
        Accept(task.reply, AcceptedJson(task.reply.request_id, a.outcome->issued),
               log_base + " duplicate=answered-again serial=" + a.outcome->issued.serial);
      } else {
        RejectTo(task.reply, a.outcome->rejection, log_base + " duplicate=answered-again");
      }
      return;
    case JobTable::Kind::kJoined:
      counters_.duplicates++;
      Log(log_base + " outcome=joined (the same CSR is being processed)");
      return;
    case JobTable::Kind::kPending:
      counters_.duplicates++;
      RejectTo(task.reply, Reject(ErrorCode::kRequestPending, "the CA has not issued the certificate yet", a.retry_after_s),
               log_base);
      return;
    case JobTable::Kind::kRateLimited:
      RejectTo(task.reply,
               Reject(ErrorCode::kRateLimited,
                      "more than " + std::to_string(config_.limits.per_device_per_hour) + " new requests in an hour",
                      a.retry_after_s),
               log_base);
      return;
    case JobTable::Kind::kStart:
      RunJob(key);
      return;
  }
}

void Bridge::RunJob(const std::string& key) {
  std::shared_ptr<const JobInput> input = jobs_.Input(key);
  if (!input) return;
  const std::string log_base = "id=" + Field(input->identity) + " op=" + OpName(input->op);
  const unsigned char* p = reinterpret_cast<const unsigned char*>(input->csr_der.data());
  X509ReqPtr csr(d2i_X509_REQ(nullptr, &p, static_cast<long>(input->csr_der.size())));
  X509Ptr current = ParseDer(input->current_der);
  auto finish = [&](Outcome outcome, bool keep, const std::string& fields) {
    PublishRecord(key, keep ? Record::kDone : Record::kGone, 0, &outcome);
    for (const ReplyTo& to : jobs_.Finish(key, outcome, keep, Now())) {
      const std::string f = log_base + (to.request_id.empty() ? "" : " requestId=" + Quote(to.request_id)) + fields;
      if (outcome.accepted) {
        Accept(to, AcceptedJson(to.request_id, outcome.issued), f);
      } else {
        RejectTo(to, outcome.rejection, f);
      }
    }
  };
  if (!csr || !current) {
    finish(Outcome{false, {}, Reject(ErrorCode::kInternalError, "lost the request's CSR")}, false, "");
    return;
  }

  // Other bridges: a duplicate reaching them waits for this answer.
  PublishRecord(key, Record::kRunning, Now() + std::max<int64_t>(120, config_.est.timeout_ms / 1000 + 30), nullptr);
  counters_.upstream_calls++;
  const auto started = std::chrono::steady_clock::now();
  BackendResult r = backend_->Enroll(input->op == Op::kSimpleEnroll ? EnrollOp::kSimpleEnroll : EnrollOp::kSimpleReenroll,
                                     csr.get(), input->csr_der);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  const std::string timing = " upstream_ms=" + std::to_string(ms);
  const int64_t now = Now();
  switch (r.status) {
    case BackendResult::Status::kOk: {
      Issued issued;
      std::string why;
      if (!Verify(r, csr.get(), current.get(), &issued, &why)) {
        // The CA issued something: keep the refusal so a duplicate does not
        // make it issue again.
        finish(Outcome{false, {}, Reject(ErrorCode::kIssuedCertificateInvalid, "the CA's certificate was refused: " + why)},
               true, timing);
        return;
      }
      finish(Outcome{true, std::move(issued), {}}, true, timing);
      return;
    }
    case BackendResult::Status::kPending: {
      const int64_t retry = std::clamp<int64_t>(r.retry_after_s, 1, 86400);
      JobTable::Parked parked = jobs_.Pend(key, now + retry, now);
      if (parked.gave_up) {
        finish(Outcome{false, {}, Reject(ErrorCode::kUpstreamUnavailable,
                                         "the CA did not issue within max_pending; send the request again",
                                         config_.enroll.upstream_retry_after_s)},
               false, timing);
        return;
      }
      counters_.pending++;
      PublishRecord(key, Record::kPending, now + retry + 60, nullptr);
      for (const ReplyTo& to : parked.to_tell) {
        RejectTo(to, Reject(ErrorCode::kRequestPending, "the CA accepted the request and has not issued yet; " + r.message, retry),
                 log_base + (to.request_id.empty() ? "" : " requestId=" + Quote(to.request_id)) + timing);
      }
      return;
    }
    case BackendResult::Status::kRejected: {
      Rejection rej = Reject(ErrorCode::kUpstreamRejected, r.message);
      if (r.http_status >= 400 && r.http_status <= 599) rej.status = r.http_status;
      finish(Outcome{false, {}, rej}, false, timing);
      return;
    }
    case BackendResult::Status::kUnavailable:
      finish(Outcome{false, {}, Reject(ErrorCode::kUpstreamUnavailable, r.message,
                                        r.retry_after_s > 0 ? r.retry_after_s : config_.enroll.upstream_retry_after_s)},
             false, timing);
      return;
  }
}

bool Bridge::Anchors(std::vector<std::string>* der, bool refresh, std::string* why) {
  {
    std::lock_guard<std::mutex> lock(anchors_mu_);
    if (!anchors_der_.empty() && (!refresh || anchors_configured_)) {
      *der = anchors_der_;
      return true;
    }
  }
  BackendResult r = backend_->CaCerts();
  if (r.status != BackendResult::Status::kOk || r.certs.empty()) {
    *why = "cannot get the CA certificates to check against: " + r.message;
    return false;
  }
  std::vector<std::string> fresh;
  for (const X509Ptr& c : r.certs) fresh.push_back(ToDer<X509, i2d_X509>(c.get()));
  std::lock_guard<std::mutex> lock(anchors_mu_);
  anchors_der_ = fresh;
  *der = std::move(fresh);
  return true;
}

bool Bridge::Verify(const BackendResult& result, X509_REQ* csr, X509* current, Issued* issued, std::string* why) {
  EVP_PKEY* key = X509_REQ_get0_pubkey(csr);
  X509* leaf = PickLeafByKey(result.certs, key);
  if (leaf == nullptr) {
    *why = "no certificate in the CA's answer carries the CSR's public key";
    return false;
  }
  for (bool refresh : {false, true}) {
    std::vector<std::string> der;
    if (!Anchors(&der, refresh, why)) return false;
    std::vector<X509Ptr> owned;
    std::vector<X509*> anchors;
    for (const std::string& d : der) {
      if (X509Ptr a = ParseDer(d)) {
        anchors.push_back(a.get());
        owned.push_back(std::move(a));
      }
    }
    if (VerifyIssued(leaf, result.certs, anchors, csr, current, Now(), why)) {
      std::vector<X509*> chain;
      for (const X509Ptr& c : result.certs) {
        if (c.get() != leaf) chain.push_back(c.get());
      }
      *issued = DescribeIssued(leaf, chain);
      return true;
    }
    if (anchors_configured_) return false;
  }
  return false;
}

// --- job records shared between bridges ----------------------------------

namespace {

std::string RecordTopicLevel(const std::string& key) {
  // The key holds the identity and a '/': one topic level needs a hash of it.
  return JobKey("", key).substr(1);
}

}  // namespace

void Bridge::PublishRecord(const std::string& key, Record state, int64_t until, const Outcome* outcome) {
  if (records_filter_.empty()) return;
  const std::string topic = config_.mqtt.state_topic + "/jobs/" + RecordTopicLevel(key);
  const int64_t now = Now();
  std::string payload;
  int64_t expiry = 0;
  {
    nlohmann::json j = {{"bridge", config_.mqtt.client_id}, {"key", key}};
    if (state == Record::kGone) {
      j["state"] = "gone";  // ended without issuing anything: a duplicate may start afresh
      expiry = 60;
    } else if (state == Record::kDone && outcome != nullptr) {
      j["state"] = "done";
      j["doneAt"] = now;
      if (outcome->accepted) {
        j["issued"] = {{"certificatePem", outcome->issued.certificate_pem},
                       {"chainPem", outcome->issued.chain_pem},
                       {"serialNumber", outcome->issued.serial},
                       {"notBefore", outcome->issued.not_before},
                       {"notAfter", outcome->issued.not_after}};
      } else {
        j["rejection"] = {{"errorCode", ErrorCodeName(outcome->rejection.code)},
                          {"statusCode", outcome->rejection.status},
                          {"errorMessage", outcome->rejection.message}};
      }
      expiry = config_.enroll.duplicate_ttl_s;
    } else {
      j["state"] = state == Record::kRunning ? "running" : "pending";
      j["until"] = until;
      expiry = std::max<int64_t>(1, until - now);
    }
    payload = j.dump();
  }
  mosquitto_property* props = nullptr;
  if (expiry > 0) {
    mosquitto_property_add_int32(&props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, static_cast<uint32_t>(expiry));
  }
  const int rc = mosquitto_publish_v5(mosq_, nullptr, topic.c_str(), static_cast<int>(payload.size()),
                                      payload.data(), 1, true, props);
  mosquitto_property_free_all(&props);
  if (rc != MOSQ_ERR_SUCCESS) Log("could not share the job record on " + Quote(topic) + ": " + mosquitto_strerror(rc));
}

void Bridge::HandleRecord(const mosquitto_message* msg) {
  const std::string body(static_cast<const char*>(msg->payload), static_cast<size_t>(std::max(msg->payloadlen, 0)));
  const std::string level = std::string(msg->topic).substr(config_.mqtt.state_topic.size() + 6);
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (body.empty()) return;  // a record removed by hand
  if (j.is_discarded() || !j.is_object() || !j.contains("key") || !j["key"].is_string() || !j.contains("state")) {
    Log("ignored a malformed job record on " + Quote(msg->topic));
    return;
  }
  const std::string key = j["key"].get<std::string>();
  if (RecordTopicLevel(key) != level || j.value("bridge", "") == config_.mqtt.client_id) return;
  const std::string state = j.value("state", "");
  if (state == "gone") {
    jobs_.GoneElsewhere(key);
  } else if (state == "running" || state == "pending") {
    jobs_.Elsewhere(key, j.value("until", static_cast<int64_t>(0)), Now());
  } else if (state == "done") {
    Outcome o;
    if (j.contains("issued") && j["issued"].is_object()) {
      const nlohmann::json& i = j["issued"];
      o.accepted = true;
      o.issued = Issued{i.value("certificatePem", ""), i.value("chainPem", ""), i.value("serialNumber", ""),
                        i.value("notBefore", ""), i.value("notAfter", "")};
      if (o.issued.certificate_pem.empty()) return;
    } else if (j.contains("rejection") && j["rejection"].is_object()) {
      const nlohmann::json& r = j["rejection"];
      std::optional<ErrorCode> code = ParseErrorCode(r.value("errorCode", ""));
      if (!code) return;
      o.rejection = Rejection{*code, r.value("statusCode", 500), r.value("errorMessage", ""), 0};
    } else {
      return;
    }
    jobs_.DoneElsewhere(key, std::move(o), j.value("doneAt", Now()));
  }
}

// --- answers --------------------------------------------------------------

void Bridge::Accept(const ReplyTo& to, const std::string& json, const std::string& log_fields) {
  counters_.accepted++;
  Publish(to.accepted_topic, to, 200, json);
  Log(log_fields + " outcome=accepted");
}

void Bridge::RejectTo(const ReplyTo& to, const Rejection& r, const std::string& log_fields) {
  if (r.code == ErrorCode::kRequestPending) {
    Log(log_fields + " outcome=pending retryAfter=" + std::to_string(r.retry_after_s));
  } else {
    counters_.rejected++;
    Log(log_fields + " outcome=rejected code=" + ErrorCodeName(r.code) + " status=" + std::to_string(r.status) +
        (r.retry_after_s > 0 ? " retryAfter=" + std::to_string(r.retry_after_s) : "") + " reason=" + Quote(r.message));
  }
  Publish(to.rejected_topic, to, r.status, RejectedJson(to.request_id, r));
}

void Bridge::Publish(const std::string& topic, const ReplyTo& to, int status, const std::string& json) {
  mosquitto_property* props = nullptr;
  mosquitto_property_add_byte(&props, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR, 1);
  mosquitto_property_add_string(&props, MQTT_PROP_CONTENT_TYPE, "application/json");
  mosquitto_property_add_int32(&props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL,
                               static_cast<uint32_t>(config_.mqtt.response_expiry_s));
  mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "status", std::to_string(status).c_str());
  if (to.has_correlation) {
    mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, to.correlation.data(),
                                  static_cast<uint16_t>(to.correlation.size()));
  }
  const int rc = mosquitto_publish_v5(mosq_, nullptr, topic.c_str(), static_cast<int>(json.size()), json.data(), 1,
                                      false, props);
  mosquitto_property_free_all(&props);
  if (rc != MOSQ_ERR_SUCCESS) Log("could not publish the answer on " + Quote(topic) + ": " + mosquitto_strerror(rc));
}

}  // namespace certacl::enroll
