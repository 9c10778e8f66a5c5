// mqtt_link.h: one MQTT connection over mutual TLS, driven by libmosquitto
// from the calling thread (no network thread, no locks). Every call that
// waits for the broker takes a deadline and returns when it passes.
//
// The TCP connect itself is blocking inside libmosquitto (bounded by the
// kernel: net.ipv4.tcp_syn_retries, about two minutes); the TLS handshake
// and everything after it are bounded by the deadlines.
#ifndef CERTACL_EXAMPLES_DEVICE_CLIENT_MQTT_LINK_H_
#define CERTACL_EXAMPLES_DEVICE_CLIENT_MQTT_LINK_H_

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace device_renew {

using Clock = std::chrono::steady_clock;

// mosquitto_lib_init() for the lifetime of the object (one in main()).
class MosquittoLibrary {
 public:
  MosquittoLibrary() { mosquitto_lib_init(); }
  ~MosquittoLibrary() { mosquitto_lib_cleanup(); }
  MosquittoLibrary(const MosquittoLibrary&) = delete;
  MosquittoLibrary& operator=(const MosquittoLibrary&) = delete;
};

struct MqttOptions {
  std::string host;
  int port = 8883;
  std::string cafile;
  std::string certfile;
  std::string keyfile;
  std::string client_id;
  bool v5 = true;  // else MQTT 3.1.1
  int keepalive_s = 60;
};

struct MqttMessage {
  std::string topic;
  std::string payload;
  std::string correlation;  // MQTT 5 Correlation Data, "" if none
};

class MqttLink {
 public:
  static constexpr int kNoAnswer = -1;

  explicit MqttLink(MqttOptions options);
  MqttLink(const MqttLink&) = delete;
  MqttLink& operator=(const MqttLink&) = delete;
  ~MqttLink();

  // Connects (clean session) and waits for the CONNACK. Returns its reason
  // code (0: accepted) or kNoAnswer with error() set (TCP or TLS failure,
  // connection closed, deadline).
  int Connect(Clock::time_point deadline);
  // Subscribes at QoS 1; true once the SUBACK grants it.
  bool Subscribe(const std::string& filter, Clock::time_point deadline);
  // Publishes at QoS 1, not retained, and waits for the PUBACK. With MQTT 5
  // and a non-empty `response_topic` / `correlation`, sends those
  // properties (and Content Type application/json). Returns the PUBACK
  // reason code (always 0 with 3.1.1) or kNoAnswer.
  int Publish(const std::string& topic, const std::string& payload, const std::string& response_topic,
              const std::string& correlation, Clock::time_point deadline);
  // The next message received, waiting for one until `deadline`; nullopt at
  // the deadline or when the connection is lost (connected() tells).
  std::optional<MqttMessage> Receive(Clock::time_point deadline);
  // Sends DISCONNECT and waits (until `deadline`) for the socket to close.
  void Disconnect(Clock::time_point deadline);

  bool connected() const { return connected_; }
  const std::string& error() const { return error_; }

 private:
  // Runs the network loop until done() is true, the connection is gone or
  // the deadline passes; returns done().
  bool Serve(Clock::time_point deadline, const std::function<bool()>& done);

  static void OnConnect(struct mosquitto*, void* self, int rc, int flags, const mosquitto_property* props);
  static void OnDisconnect(struct mosquitto*, void* self, int rc, const mosquitto_property* props);
  static void OnSubscribe(struct mosquitto*, void* self, int mid, int count, const int* granted,
                          const mosquitto_property* props);
  static void OnPublish(struct mosquitto*, void* self, int mid, int reason, const mosquitto_property* props);
  static void OnMessage(struct mosquitto*, void* self, const struct mosquitto_message* msg,
                        const mosquitto_property* props);
  static void OnLog(struct mosquitto*, void* self, int level, const char* text);

  struct Destroy {
    void operator()(struct mosquitto* m) const { mosquitto_destroy(m); }
  };

  MqttOptions options_;
  std::unique_ptr<struct mosquitto, Destroy> mosq_;
  bool setup_ok_ = false;
  bool socket_open_ = false;  // between a successful connect call and the loop failing
  bool connected_ = false;    // CONNACK 0 received and not disconnected since
  std::optional<int> connack_;
  std::map<int, std::vector<int>> subacks_;  // mid -> granted QoS / reason codes
  std::map<int, int> pubacks_;               // mid -> reason code
  std::deque<MqttMessage> inbox_;
  std::string error_;
};

}  // namespace device_renew

#endif  // CERTACL_EXAMPLES_DEVICE_CLIENT_MQTT_LINK_H_
