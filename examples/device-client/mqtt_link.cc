// mqtt_link.cc: see mqtt_link.h.
#include "mqtt_link.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace device_renew {
namespace {

MqttLink* Self(void* p) { return static_cast<MqttLink*>(p); }

std::string ErrorText(int rc) {
  // For MOSQ_ERR_ERRNO, mosquitto_strerror() is strerror(errno); libmosquitto
  // reports a failed TLS handshake (e.g. the broker does not trust our
  // certificate and closes) as EPROTO.
  const int saved = errno;
  std::string text = mosquitto_strerror(rc);
  if (rc == MOSQ_ERR_ERRNO && saved == EPROTO) text += " (TLS handshake failed)";
  return text;
}

// An encrypted key must fail, not prompt on a terminal that cron does not have.
int NoPassword(char*, int, int, void*) { return 0; }

// A property list freed on scope exit.
class Properties {
 public:
  Properties() = default;
  ~Properties() { mosquitto_property_free_all(&list_); }
  Properties(const Properties&) = delete;
  Properties& operator=(const Properties&) = delete;
  mosquitto_property** out() { return &list_; }
  const mosquitto_property* get() const { return list_; }

 private:
  mosquitto_property* list_ = nullptr;
};

struct FreeMalloced {
  void operator()(void* p) const { std::free(p); }
};

}  // namespace

MqttLink::MqttLink(MqttOptions options) : options_(std::move(options)) {
  mosq_.reset(mosquitto_new(options_.client_id.c_str(), true, this));
  if (mosq_ == nullptr) {
    error_ = "mosquitto_new failed";
    return;
  }
  struct mosquitto* m = mosq_.get();
  mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, options_.v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
  const int rc = mosquitto_tls_set(m, options_.cafile.c_str(), nullptr, options_.certfile.c_str(),
                                   options_.keyfile.c_str(), &NoPassword);
  if (rc != MOSQ_ERR_SUCCESS) {
    error_ = "TLS setup (" + options_.cafile + ", " + options_.certfile + ", " + options_.keyfile + "): " + ErrorText(rc);
    return;
  }
  mosquitto_connect_v5_callback_set(m, &MqttLink::OnConnect);
  mosquitto_disconnect_v5_callback_set(m, &MqttLink::OnDisconnect);
  mosquitto_subscribe_v5_callback_set(m, &MqttLink::OnSubscribe);
  mosquitto_publish_v5_callback_set(m, &MqttLink::OnPublish);
  mosquitto_message_v5_callback_set(m, &MqttLink::OnMessage);
  mosquitto_log_callback_set(m, &MqttLink::OnLog);
  setup_ok_ = true;
}

MqttLink::~MqttLink() {
  if (socket_open_) Disconnect(Clock::now() + std::chrono::seconds(2));
}

bool MqttLink::Serve(Clock::time_point deadline, const std::function<bool()>& done) {
  for (;;) {
    if (done()) return true;
    if (!socket_open_) return false;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    const int wait_ms = static_cast<int>(std::clamp<long long>(left, 1, 1000));
    const int rc = mosquitto_loop(mosq_.get(), wait_ms, 1);
    if (rc != MOSQ_ERR_SUCCESS && socket_open_) {
      socket_open_ = false;
      connected_ = false;
      error_ = "connection lost: " + ErrorText(rc);
    }
  }
}

int MqttLink::Connect(Clock::time_point deadline) {
  if (!setup_ok_) return kNoAnswer;
  connack_.reset();
  connected_ = false;
  error_.clear();
  const int rc = mosquitto_connect_bind_v5(mosq_.get(), options_.host.c_str(), options_.port, options_.keepalive_s,
                                           nullptr, nullptr);
  if (rc != MOSQ_ERR_SUCCESS) {
    error_ = "connect to " + options_.host + ":" + std::to_string(options_.port) + ": " + ErrorText(rc);
    return kNoAnswer;
  }
  socket_open_ = true;
  const bool answered = Serve(deadline, [this] { return connack_.has_value(); });
  if (answered && *connack_ == 0) return 0;
  if (!answered && error_.empty()) error_ = "no CONNACK in time (TLS handshake or CONNECT unanswered)";
  if (answered) {
    error_ = "CONNACK " + std::to_string(*connack_) + " (" +
             (options_.v5 ? mosquitto_reason_string(*connack_) : mosquitto_connack_string(*connack_)) + ")";
  }
  // Nothing more to say to this broker: the socket closes with the next
  // connect or mosquitto_destroy(), without waiting.
  mosquitto_disconnect(mosq_.get());
  socket_open_ = false;
  return answered ? *connack_ : kNoAnswer;
}

bool MqttLink::Subscribe(const std::string& filter, Clock::time_point deadline) {
  int mid = 0;
  // MQTT 5: No Local, our own requests need not come back to us.
  const int rc = mosquitto_subscribe_v5(mosq_.get(), &mid, filter.c_str(), 1, options_.v5 ? MQTT_SUB_OPT_NO_LOCAL : 0,
                                        nullptr);
  if (rc != MOSQ_ERR_SUCCESS) {
    error_ = "subscribe: " + ErrorText(rc);
    return false;
  }
  if (!Serve(deadline, [&] { return subacks_.count(mid) != 0; })) {
    if (socket_open_) error_ = "no SUBACK in time";
    return false;
  }
  const std::vector<int> granted = std::move(subacks_[mid]);
  subacks_.erase(mid);
  if (granted.size() != 1 || granted[0] >= 0x80) {
    error_ = "subscription to " + filter + " refused (SUBACK " + (granted.empty() ? "empty" : std::to_string(granted[0])) + ")";
    return false;
  }
  return true;
}

int MqttLink::Publish(const std::string& topic, const std::string& payload, const std::string& response_topic,
                      const std::string& correlation, Clock::time_point deadline) {
  if (payload.size() > INT_MAX || correlation.size() > UINT16_MAX) {
    error_ = "payload too large";
    return kNoAnswer;
  }
  Properties props;
  if (options_.v5) {
    if (!response_topic.empty()) mosquitto_property_add_string(props.out(), MQTT_PROP_RESPONSE_TOPIC, response_topic.c_str());
    if (!correlation.empty()) {
      mosquitto_property_add_binary(props.out(), MQTT_PROP_CORRELATION_DATA, correlation.data(),
                                    static_cast<uint16_t>(correlation.size()));
    }
    mosquitto_property_add_string(props.out(), MQTT_PROP_CONTENT_TYPE, "application/json");
    mosquitto_property_add_byte(props.out(), MQTT_PROP_PAYLOAD_FORMAT_INDICATOR, 1);
  }
  int mid = 0;
  const int rc = mosquitto_publish_v5(mosq_.get(), &mid, topic.c_str(), static_cast<int>(payload.size()),
                                      payload.data(), 1, false, props.get());
  if (rc != MOSQ_ERR_SUCCESS) {
    error_ = "publish: " + ErrorText(rc);
    return kNoAnswer;
  }
  if (!Serve(deadline, [&] { return pubacks_.count(mid) != 0; })) {
    if (socket_open_) error_ = "no PUBACK in time";
    return kNoAnswer;
  }
  const int reason = pubacks_[mid];
  pubacks_.erase(mid);
  return reason;
}

std::optional<MqttMessage> MqttLink::Receive(Clock::time_point deadline) {
  if (!Serve(deadline, [this] { return !inbox_.empty(); })) return std::nullopt;
  MqttMessage m = std::move(inbox_.front());
  inbox_.pop_front();
  return m;
}

void MqttLink::Disconnect(Clock::time_point deadline) {
  if (!socket_open_) return;
  mosquitto_disconnect_v5(mosq_.get(), 0, nullptr);
  Serve(deadline, [this] { return !socket_open_; });
  connected_ = false;
}

// --- callbacks: called from mosquitto_loop(), on this thread ---------------------

void MqttLink::OnConnect(struct mosquitto*, void* self, int rc, int, const mosquitto_property*) {
  MqttLink* link = Self(self);
  link->connack_ = rc;
  link->connected_ = rc == 0;
}

void MqttLink::OnDisconnect(struct mosquitto*, void* self, int rc, const mosquitto_property*) {
  MqttLink* link = Self(self);
  if (rc != 0 && link->socket_open_) link->error_ = "disconnected: " + ErrorText(rc);
  link->socket_open_ = false;
  link->connected_ = false;
}

void MqttLink::OnSubscribe(struct mosquitto*, void* self, int mid, int count, const int* granted,
                           const mosquitto_property*) {
  Self(self)->subacks_[mid] = std::vector<int>(granted, granted + std::max(count, 0));
}

void MqttLink::OnPublish(struct mosquitto*, void* self, int mid, int reason, const mosquitto_property*) {
  Self(self)->pubacks_[mid] = reason;
}

void MqttLink::OnMessage(struct mosquitto*, void* self, const struct mosquitto_message* msg,
                         const mosquitto_property* props) {
  MqttMessage m;
  m.topic = msg->topic != nullptr ? msg->topic : "";
  if (msg->payload != nullptr && msg->payloadlen > 0) {
    m.payload.assign(static_cast<const char*>(msg->payload), static_cast<size_t>(msg->payloadlen));
  }
  void* value = nullptr;
  uint16_t len = 0;
  if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &value, &len, false) != nullptr) {
    std::unique_ptr<void, FreeMalloced> owned(value);
    if (value != nullptr) m.correlation.assign(static_cast<const char*>(value), len);
  }
  Self(self)->inbox_.push_back(std::move(m));
}

void MqttLink::OnLog(struct mosquitto*, void*, int level, const char* text) {
  if ((level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)) != 0 && text != nullptr) {
    std::fprintf(stderr, "certacl-device-renew: libmosquitto: %s\n", text);
  }
}

}  // namespace device_renew
