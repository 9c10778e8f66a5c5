// client.cc: see client.h.
#include "tests/integration/client.h"

#include <cerrno>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <utility>

namespace certacl::integration {
namespace {

void LibInit() {
  static std::once_flag once;
  std::call_once(once, [] { mosquitto_lib_init(); });
}

std::string ErrorText(int rc) {
  std::string text = mosquitto_strerror(rc);
  if (rc == MOSQ_ERR_ERRNO) text += std::string(" (") + std::strerror(errno) + ")";
  return text;
}

Client* Self(void* p) { return static_cast<Client*>(p); }

// `properties` as a libmosquitto property list (nullptr if empty); the
// caller frees it. MOSQ_ERR_* in *rc.
mosquitto_property* ToPropertyList(const PublishProperties& properties, int* rc) {
  mosquitto_property* props = nullptr;
  *rc = MOSQ_ERR_SUCCESS;
  for (const auto& [name, value] : properties.user_properties) {
    if (*rc == MOSQ_ERR_SUCCESS) {
      *rc = mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, name.c_str(), value.c_str());
    }
  }
  if (*rc == MOSQ_ERR_SUCCESS && properties.response_topic) {
    *rc = mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, properties.response_topic->c_str());
  }
  if (*rc == MOSQ_ERR_SUCCESS && properties.correlation_data) {
    *rc = mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, properties.correlation_data->data(),
                                        static_cast<uint16_t>(properties.correlation_data->size()));
  }
  if (*rc == MOSQ_ERR_SUCCESS && properties.content_type) {
    *rc = mosquitto_property_add_string(&props, MQTT_PROP_CONTENT_TYPE, properties.content_type->c_str());
  }
  return props;
}

// The properties of a received PUBLISH into *m. The library's readers copy
// into malloc'ed buffers.
void ReadProperties(const mosquitto_property* props, Message* m) {
  for (const mosquitto_property* p = props; p != nullptr; p = mosquitto_property_next(p)) {
    const int id = mosquitto_property_identifier(p);
    switch (id) {
      case MQTT_PROP_USER_PROPERTY: {
        char* name = nullptr;
        char* value = nullptr;
        if (mosquitto_property_read_string_pair(p, id, &name, &value, false) != nullptr) {
          m->user_properties.emplace_back(name, value);
        }
        std::free(name);
        std::free(value);
        break;
      }
      case MQTT_PROP_RESPONSE_TOPIC:
      case MQTT_PROP_CONTENT_TYPE: {
        char* value = nullptr;
        if (mosquitto_property_read_string(p, id, &value, false) != nullptr) {
          (id == MQTT_PROP_RESPONSE_TOPIC ? m->response_topic : m->content_type) = value;
        }
        std::free(value);
        break;
      }
      case MQTT_PROP_CORRELATION_DATA: {
        void* value = nullptr;
        uint16_t len = 0;
        if (mosquitto_property_read_binary(p, id, &value, &len, false) != nullptr) {
          m->correlation_data = std::string(static_cast<const char*>(value), len);
        }
        std::free(value);
        break;
      }
      case MQTT_PROP_MESSAGE_EXPIRY_INTERVAL: {
        uint32_t value = 0;
        if (mosquitto_property_read_int32(p, id, &value, false) != nullptr) m->message_expiry = value;
        break;
      }
      case MQTT_PROP_PAYLOAD_FORMAT_INDICATOR: {
        uint8_t value = 0;
        if (mosquitto_property_read_byte(p, id, &value, false) != nullptr) m->payload_format = value;
        break;
      }
      default:
        break;
    }
  }
}

}  // namespace

Client::Client(ClientOptions options) : options_(std::move(options)) {
  LibInit();
  mosq_ = mosquitto_new(options_.id.empty() ? nullptr : options_.id.c_str(), options_.clean_session, this);
  if (mosq_ == nullptr) {
    setup_ok_ = false;
    last_error_ = "mosquitto_new failed (a persistent session needs a client id)";
    return;
  }
  // Our own network thread drives mosquitto_loop(): the library must only
  // queue packets from other threads and wake that thread.
  mosquitto_threaded_set(mosq_, true);
  mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION,
                       options_.version == Mqtt::kV5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
  // Small packets go out at once (Nagle + delayed ACK would add ~40 ms to
  // every CONNECT).
  mosquitto_int_option(mosq_, MOSQ_OPT_TCP_NODELAY, 1);
  const char* cert = options_.certfile.empty() ? nullptr : options_.certfile.c_str();
  const char* key = options_.keyfile.empty() ? nullptr : options_.keyfile.c_str();
  int rc = mosquitto_tls_set(mosq_, options_.cafile.c_str(), nullptr, cert, key, nullptr);
  if (rc == MOSQ_ERR_SUCCESS && !options_.tls_version.empty()) {
    rc = mosquitto_tls_opts_set(mosq_, 1, options_.tls_version.c_str(), nullptr);
  }
  if (rc != MOSQ_ERR_SUCCESS) {
    setup_ok_ = false;
    last_error_ = "TLS setup: " + ErrorText(rc);
  }
  if (!options_.username.empty()) {
    mosquitto_username_pw_set(mosq_, options_.username.c_str(),
                              options_.password.empty() ? nullptr : options_.password.c_str());
  }
  if (options_.will && setup_ok_) {
    const WillMessage& w = *options_.will;
    mosquitto_property* props = ToPropertyList(w.properties, &rc);
    if (rc == MOSQ_ERR_SUCCESS) {
      rc = mosquitto_will_set_v5(mosq_, w.topic.c_str(), static_cast<int>(w.payload.size()), w.payload.data(), w.qos,
                                 w.retain, props);
    }
    if (rc == MOSQ_ERR_SUCCESS) {
      props = nullptr;  // the library owns them now
    } else {
      setup_ok_ = false;
      last_error_ = "Will: " + ErrorText(rc);
    }
    mosquitto_property_free_all(&props);
  }
  mosquitto_connect_v5_callback_set(mosq_, &Client::OnConnect);
  mosquitto_disconnect_v5_callback_set(mosq_, &Client::OnDisconnect);
  mosquitto_subscribe_v5_callback_set(mosq_, &Client::OnSubscribe);
  mosquitto_unsubscribe_v5_callback_set(mosq_, &Client::OnUnsubscribe);
  mosquitto_publish_v5_callback_set(mosq_, &Client::OnPublish);
  mosquitto_message_v5_callback_set(mosq_, &Client::OnMessage);
}

Client::~Client() {
  if (mosq_ == nullptr) return;
  Disconnect(std::chrono::milliseconds(1000));
  StopLoop();
  mosquitto_destroy(mosq_);
}

// ---------------------------------------------------------------------------
// The network thread.

void Client::StartLoop() {
  {
    std::lock_guard lock(mu_);
    stop_ = false;
    loop_running_ = true;
  }
  thread_ = std::thread([this] { Loop(); });
}

void Client::StopLoop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void Client::Loop() {
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stop_) break;
    }
    // Wakes up at least every 50 ms (and at once when a packet is queued).
    int rc = mosquitto_loop(mosq_, 50, 1);
    if (rc != MOSQ_ERR_SUCCESS) {
      std::lock_guard lock(mu_);
      connected_ = false;
      closed_ = true;
      if (disconnect_reason_ < 0) disconnect_reason_ = rc;
      break;
    }
  }
  std::lock_guard lock(mu_);
  loop_running_ = false;
  cv_.notify_all();
}

// ---------------------------------------------------------------------------
// Callbacks (network thread).

void Client::OnConnect(struct mosquitto*, void* self, int rc, int, const mosquitto_property*) {
  Client* c = Self(self);
  std::lock_guard lock(c->mu_);
  c->connack_ = rc;
  c->connected_ = rc == 0;
  c->cv_.notify_all();
}

void Client::OnDisconnect(struct mosquitto*, void* self, int rc, const mosquitto_property*) {
  Client* c = Self(self);
  std::lock_guard lock(c->mu_);
  c->connected_ = false;
  c->closed_ = true;
  c->disconnect_reason_ = rc;
  c->cv_.notify_all();
}

void Client::OnSubscribe(struct mosquitto*, void* self, int mid, int count, const int* granted,
                         const mosquitto_property*) {
  Client* c = Self(self);
  std::lock_guard lock(c->mu_);
  c->subacks_[mid] = std::vector<int>(granted, granted + count);
  c->cv_.notify_all();
}

void Client::OnUnsubscribe(struct mosquitto*, void* self, int mid, const mosquitto_property*) {
  Client* c = Self(self);
  std::lock_guard lock(c->mu_);
  c->unsubacks_[mid] = 0;
  c->cv_.notify_all();
}

void Client::OnPublish(struct mosquitto*, void* self, int mid, int reason, const mosquitto_property*) {
  Client* c = Self(self);
  std::lock_guard lock(c->mu_);
  c->publish_done_[mid] = reason;
  c->cv_.notify_all();
}

void Client::OnMessage(struct mosquitto*, void* self, const struct mosquitto_message* msg,
                       const mosquitto_property* props) {
  Client* c = Self(self);
  Message m;
  m.topic = msg->topic != nullptr ? msg->topic : "";
  if (msg->payload != nullptr && msg->payloadlen > 0) {
    m.payload.assign(static_cast<const char*>(msg->payload), static_cast<size_t>(msg->payloadlen));
  }
  m.qos = msg->qos;
  m.retain = msg->retain;
  ReadProperties(props, &m);
  std::lock_guard lock(c->mu_);
  c->messages_.push_back(std::move(m));
  c->cv_.notify_all();
}

// ---------------------------------------------------------------------------
// Requests (test thread).

int Client::Connect(std::chrono::milliseconds timeout) {
  if (!setup_ok_) return kNoConnack;
  StopLoop();
  {
    std::lock_guard lock(mu_);
    connack_.reset();
    connected_ = false;
    closed_ = false;
    disconnect_reason_ = -1;
  }
  mosquitto_property* props = nullptr;
  if (options_.version == Mqtt::kV5 && options_.session_expiry > 0) {
    mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, options_.session_expiry);
  }
  // Blocking TCP connect and (with TLS 1.2) the whole handshake.
  // libmosquitto 2.0.11 initialises its TLS globals (an OpenSSL UI method)
  // on the first TLS connect without a lock; two threads connecting first
  // at the same time leak one. Serialise connects until one has done it.
  static std::mutex first_connect_mu;
  static std::atomic<bool> tls_initialised{false};
  int rc;
  if (tls_initialised.load()) {
    rc = mosquitto_connect_bind_v5(mosq_, "127.0.0.1", options_.port, options_.keepalive, nullptr, props);
  } else {
    std::lock_guard first(first_connect_mu);
    rc = mosquitto_connect_bind_v5(mosq_, "127.0.0.1", options_.port, options_.keepalive, nullptr, props);
    if (rc == MOSQ_ERR_SUCCESS) tls_initialised.store(true);
  }
  mosquitto_property_free_all(&props);
  if (rc != MOSQ_ERR_SUCCESS) {
    last_error_ = "connect: " + ErrorText(rc);
    return kNoConnack;
  }
  StartLoop();
  int result = kNoConnack;
  bool closed = false;
  {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return connack_.has_value() || closed_; });
    if (connack_.has_value()) {
      result = *connack_;
      if (result == 0) return 0;
      last_error_ = "CONNACK " + std::to_string(result);
    } else if (closed_) {
      last_error_ = "connection closed before CONNACK: " + ErrorText(disconnect_reason_);
    } else {
      last_error_ = "no CONNACK within " + std::to_string(timeout.count()) + " ms";
    }
    closed = closed_;
  }
  if (!closed) mosquitto_disconnect(mosq_);
  StopLoop();
  return result;
}

bool Client::Disconnect(std::chrono::milliseconds timeout) { return Disconnect(0, timeout); }

bool Client::Disconnect(int reason_code, std::chrono::milliseconds timeout) {
  bool ok = true;
  if (connected()) {
    mosquitto_disconnect_v5(mosq_, reason_code, nullptr);
    std::unique_lock lock(mu_);
    ok = cv_.wait_for(lock, timeout, [&] { return closed_ || !loop_running_; });
  }
  StopLoop();
  return ok;
}

bool Client::connected() const {
  std::lock_guard lock(mu_);
  return connected_;
}

bool Client::WaitForDisconnect(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return closed_; });
}

int Client::disconnect_reason() const {
  std::lock_guard lock(mu_);
  return disconnect_reason_;
}

std::vector<int> Client::Subscribe(const std::vector<std::string>& filters, int qos,
                                   std::chrono::milliseconds timeout) {
  std::vector<char*> subs;
  for (const std::string& f : filters) subs.push_back(const_cast<char*>(f.c_str()));
  int mid = 0;
  int rc = mosquitto_subscribe_multiple(mosq_, &mid, static_cast<int>(subs.size()), subs.data(), qos, 0, nullptr);
  if (rc != MOSQ_ERR_SUCCESS) {
    last_error_ = "subscribe: " + ErrorText(rc);
    return {};
  }
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return subacks_.count(mid) != 0 || closed_; }) ||
      subacks_.count(mid) == 0) {
    last_error_ = closed_ ? "connection closed before SUBACK" : "no SUBACK in time";
    return {};
  }
  std::vector<int> codes = std::move(subacks_[mid]);
  subacks_.erase(mid);
  return codes;
}

int Client::Subscribe(const std::string& filter, int qos, std::chrono::milliseconds timeout) {
  std::vector<int> codes = Subscribe(std::vector<std::string>{filter}, qos, timeout);
  return codes.size() == 1 ? codes[0] : kNoAnswer;
}

int Client::Unsubscribe(const std::string& filter, std::chrono::milliseconds timeout) {
  int mid = 0;
  int rc = mosquitto_unsubscribe(mosq_, &mid, filter.c_str());
  if (rc != MOSQ_ERR_SUCCESS) {
    last_error_ = "unsubscribe: " + ErrorText(rc);
    return kNoAnswer;
  }
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return unsubacks_.count(mid) != 0 || closed_; }) ||
      unsubacks_.count(mid) == 0) {
    return kNoAnswer;
  }
  int code = unsubacks_[mid];
  unsubacks_.erase(mid);
  return code;
}

int Client::Publish(const std::string& topic, std::string_view payload, int qos, bool retain,
                    std::chrono::milliseconds timeout) {
  return Publish(topic, payload, qos, retain, PublishProperties{}, timeout);
}

int Client::Publish(const std::string& topic, std::string_view payload, int qos, bool retain,
                    const PublishProperties& properties, std::chrono::milliseconds timeout) {
  int rc = MOSQ_ERR_SUCCESS;
  mosquitto_property* props = ToPropertyList(properties, &rc);
  int mid = 0;
  if (rc == MOSQ_ERR_SUCCESS) {
    rc = mosquitto_publish_v5(mosq_, &mid, topic.c_str(), static_cast<int>(payload.size()), payload.data(), qos,
                              retain, props);
  }
  mosquitto_property_free_all(&props);
  if (rc != MOSQ_ERR_SUCCESS) {
    last_error_ = "publish: " + ErrorText(rc);
    return kNoAnswer;
  }
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return publish_done_.count(mid) != 0 || closed_; }) ||
      publish_done_.count(mid) == 0) {
    last_error_ = closed_ ? "connection closed before the publish completed" : "publish not acknowledged in time";
    return kNoAnswer;
  }
  int reason = publish_done_[mid];
  publish_done_.erase(mid);
  return reason;
}

// ---------------------------------------------------------------------------
// Received messages.

std::vector<std::string> Message::UserProperty(const std::string& name) const {
  std::vector<std::string> values;
  for (const auto& [n, v] : user_properties) {
    if (n == name) values.push_back(v);
  }
  return values;
}

std::vector<Message> Client::Messages() const {
  std::lock_guard lock(mu_);
  return messages_;
}

std::vector<Message> Client::MessagesOn(const std::string& topic) const {
  std::lock_guard lock(mu_);
  std::vector<Message> out;
  for (const Message& m : messages_) {
    if (m.topic == topic) out.push_back(m);
  }
  return out;
}

size_t Client::MessageCount() const {
  std::lock_guard lock(mu_);
  return messages_.size();
}

void Client::ClearMessages() {
  std::lock_guard lock(mu_);
  messages_.clear();
}

bool Client::WaitForMessages(size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return messages_.size() >= n; });
}

std::optional<Message> Client::WaitForMessage(const std::string& topic, std::chrono::milliseconds timeout) const {
  return WaitForMessage([&](const Message& m) { return m.topic == topic; }, timeout);
}

std::optional<Message> Client::WaitForMessage(const std::function<bool(const Message&)>& pred,
                                              std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  std::optional<Message> found;
  cv_.wait_for(lock, timeout, [&] {
    for (const Message& m : messages_) {
      if (pred(m)) {
        found = m;
        return true;
      }
    }
    return false;
  });
  return found;
}

}  // namespace certacl::integration
