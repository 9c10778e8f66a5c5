// client.h: a small synchronous MQTT client over libmosquitto for
// integration tests: every call waits (bounded) for the broker's answer and
// returns the exact code the broker sent.
//
//   Client meter({.id = "m-00000001", .port = broker.port(), .cafile = pki.ca_bundle(),
//                 .certfile = f.cert, .keyfile = f.key, .version = Mqtt::kV5});
//   ASSERT_EQ(meter.Connect(), 0);                      // CONNACK code
//   EXPECT_EQ(meter.Subscribe("meters/zurich/m-00000001/cmd/#", 1), 1);  // granted QoS / reason
//   EXPECT_EQ(meter.Publish("meters/zurich/m-00000001/reading", "42", 1), 0);  // PUBACK reason (v5)
//   auto m = meter.WaitForMessage("meters/zurich/m-00000001/cmd/tariff");
//
// MQTT 5 properties: Publish() takes a PublishProperties (user properties,
// response topic, correlation data, content type), and a received Message
// carries those of the PUBLISH that delivered it. ClientOptions::will sets a
// Will; Disconnect(0x04) makes the broker publish it.
//
// Each Client owns one `struct mosquitto` and drives it from its own
// network thread (mosquitto_threaded_set + mosquitto_loop), never
// reconnecting on its own: a refused or dropped connection stays down until
// the test calls Connect() again. Callbacks only record what arrived; the
// test thread waits on a condition variable. Methods are for one test thread.
#ifndef CERTACL_TESTS_INTEGRATION_CLIENT_H_
#define CERTACL_TESTS_INTEGRATION_CLIENT_H_

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace certacl::integration {

// How long a client waits for any one answer from the broker.
inline constexpr std::chrono::milliseconds kWait{3000};

enum class Mqtt { kV311, kV5 };

// User properties, in the order they were sent (names may repeat).
using UserProperties = std::vector<std::pair<std::string, std::string>>;

// The MQTT 5 properties a test sets on a PUBLISH (or a Will). Unset fields
// are not sent.
struct PublishProperties {
  UserProperties user_properties;
  std::optional<std::string> response_topic;
  std::optional<std::string> correlation_data;  // binary
  std::optional<std::string> content_type;
};

// A Will message, sent with CONNECT.
struct WillMessage {
  std::string topic;
  std::string payload;
  int qos = 1;
  bool retain = false;
  PublishProperties properties;  // MQTT 5 only
};

struct ClientOptions {
  std::string id;  // client id; empty: let the library/broker choose (clean sessions only)
  int port = 0;    // on 127.0.0.1
  std::string cafile;
  std::string certfile;  // empty: no client certificate
  std::string keyfile;
  Mqtt version = Mqtt::kV5;
  bool clean_session = true;     // MQTT 3.1.1 clean session / MQTT 5 clean start
  uint32_t session_expiry = 0;   // MQTT 5 only: Session Expiry Interval; 0: not sent
  std::string tls_version;       // "tlsv1.2", "tlsv1.3"; empty: library default
  std::string username;          // empty: none sent
  std::string password;
  int keepalive = 60;
  std::optional<WillMessage> will;  // none: no Will
};

struct Message {
  std::string topic;
  std::string payload;
  int qos = 0;
  bool retain = false;
  // MQTT 5 properties of the PUBLISH (none for an MQTT 3.1.1 client).
  UserProperties user_properties;
  std::optional<std::string> response_topic;
  std::optional<std::string> correlation_data;
  std::optional<std::string> content_type;
  std::optional<uint32_t> message_expiry;  // the remaining Message Expiry Interval
  std::optional<int> payload_format;       // Payload Format Indicator

  // The values of the user properties named `name`, in order.
  std::vector<std::string> UserProperty(const std::string& name) const;
};

class Client {
 public:
  // Connect() result when no CONNACK arrived (TLS handshake failed, the
  // connection was closed, or the wait timed out); see last_error().
  static constexpr int kNoConnack = -1;
  // Publish()/Subscribe() result when the request could not be sent or no
  // answer arrived in time.
  static constexpr int kNoAnswer = -1;

  explicit Client(ClientOptions options);
  ~Client();  // disconnects (bounded) and frees everything
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects (TCP + TLS + CONNECT) and waits for CONNACK: returns its return
  // code (3.1.1) or reason code (5), 0 meaning accepted, or kNoConnack. May
  // be called again after a disconnect (same client id and session flags).
  int Connect(std::chrono::milliseconds timeout = kWait);
  // Sends DISCONNECT and waits until the connection is closed (an MQTT 5
  // session keeps the expiry interval sent with CONNECT).
  bool Disconnect(std::chrono::milliseconds timeout = kWait);
  // The same with an MQTT 5 reason code, e.g. 0x04 "disconnect with Will
  // message" (the broker then publishes the Will).
  bool Disconnect(int reason_code, std::chrono::milliseconds timeout = kWait);
  bool connected() const;
  // Waits until the connection is closed (by the broker); true if it was.
  bool WaitForDisconnect(std::chrono::milliseconds timeout = kWait);
  // The reason libmosquitto gave for the last disconnect (MOSQ_ERR_* or an
  // MQTT 5 reason code), -1 if none yet.
  int disconnect_reason() const;

  // SUBSCRIBE; returns the SUBACK code for each filter (granted QoS 0..2, or
  // 0x80 for 3.1.1 / an MQTT 5 reason code such as 0x87), or an empty
  // vector if no SUBACK arrived.
  std::vector<int> Subscribe(const std::vector<std::string>& filters, int qos = 1,
                             std::chrono::milliseconds timeout = kWait);
  // One filter: its SUBACK code, or kNoAnswer.
  int Subscribe(const std::string& filter, int qos = 1, std::chrono::milliseconds timeout = kWait);
  int Unsubscribe(const std::string& filter, std::chrono::milliseconds timeout = kWait);

  // PUBLISH and wait until it is done: QoS 0 -> 0 once written to the
  // socket; QoS 1/2 -> the PUBACK/PUBREC reason code (MQTT 5; 0x87 = not
  // authorized) or 0 (3.1.1, which has no reason codes). kNoAnswer if the
  // library refused it or nothing came back in time.
  int Publish(const std::string& topic, std::string_view payload, int qos = 0, bool retain = false,
              std::chrono::milliseconds timeout = kWait);
  // The same with MQTT 5 properties (an MQTT 3.1.1 client cannot send
  // them: kNoAnswer, and last_error() says so).
  int Publish(const std::string& topic, std::string_view payload, int qos, bool retain,
              const PublishProperties& properties, std::chrono::milliseconds timeout = kWait);

  // Received messages, in arrival order.
  std::vector<Message> Messages() const;
  std::vector<Message> MessagesOn(const std::string& topic) const;
  size_t MessageCount() const;
  void ClearMessages();
  // Waits until at least `n` messages have arrived in total.
  bool WaitForMessages(size_t n, std::chrono::milliseconds timeout = kWait) const;
  // Waits for a message on exactly `topic` (already received ones count).
  std::optional<Message> WaitForMessage(const std::string& topic,
                                        std::chrono::milliseconds timeout = kWait) const;
  // Waits for a message satisfying `pred` (already received ones count).
  std::optional<Message> WaitForMessage(const std::function<bool(const Message&)>& pred,
                                        std::chrono::milliseconds timeout = kWait) const;

  const std::string& last_error() const { return last_error_; }
  const ClientOptions& options() const { return options_; }

 private:
  static void OnConnect(struct mosquitto*, void* self, int rc, int flags, const mosquitto_property*);
  static void OnDisconnect(struct mosquitto*, void* self, int rc, const mosquitto_property*);
  static void OnSubscribe(struct mosquitto*, void* self, int mid, int count, const int* granted,
                          const mosquitto_property*);
  static void OnUnsubscribe(struct mosquitto*, void* self, int mid, const mosquitto_property*);
  static void OnPublish(struct mosquitto*, void* self, int mid, int reason, const mosquitto_property*);
  static void OnMessage(struct mosquitto*, void* self, const struct mosquitto_message* msg,
                        const mosquitto_property*);

  void StartLoop();
  void StopLoop();  // joins the network thread
  void Loop();

  ClientOptions options_;
  struct mosquitto* mosq_ = nullptr;
  std::thread thread_;
  std::string last_error_;
  bool setup_ok_ = true;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool stop_ = false;              // guarded by mu_
  bool loop_running_ = false;      // guarded by mu_
  bool connected_ = false;         // guarded by mu_
  std::optional<int> connack_;     // guarded by mu_
  bool closed_ = false;            // guarded by mu_: the connection went down
  int disconnect_reason_ = -1;     // guarded by mu_
  std::map<int, std::vector<int>> subacks_;  // guarded by mu_: mid -> codes
  std::map<int, int> unsubacks_;             // guarded by mu_
  std::map<int, int> publish_done_;          // guarded by mu_: mid -> reason
  std::vector<Message> messages_;            // guarded by mu_
};

}  // namespace certacl::integration

#endif  // CERTACL_TESTS_INTEGRATION_CLIENT_H_
