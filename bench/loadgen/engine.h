// engine.h: the connection engine of certacl-loadgen. One thread, one
// epoll set (level-triggered), non-blocking TCP sockets with TCP_NODELAY,
// OpenSSL on the fd (TLS 1.2+, the fleet's CA bundle verifies the broker,
// each connection presents its own device certificate), and MQTT on top
// (mqtt.h). A mode (connect / pubsub / deny) implements Handler and drives
// Poll() until its phase is done or its deadline passes.
//
// A connection goes kTcp -> kTls -> kMqtt (CONNECT sent) -> kReady (CONNACK
// 0) or is closed with a reason (refused / failed). At most `concurrency`
// connections are between Launch and their CONNACK at any time; one that
// takes longer than the connect timeout fails ("timeout").
#ifndef CERTACL_BENCH_LOADGEN_ENGINE_H_
#define CERTACL_BENCH_LOADGEN_ENGINE_H_

#include <netinet/in.h>
#include <openssl/ssl.h>

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/loadgen/mqtt.h"
#include "policy/openssl_ptr.h"

namespace certacl::loadgen {

using SslCtxPtr = OpenSslPtr<SSL_CTX, SSL_CTX_free>;
using SslPtr = OpenSslPtr<SSL, SSL_free>;

uint64_t NowNs();  // CLOCK_MONOTONIC

// A latency histogram: log-linear buckets (64 per power of two, < 1.6 %
// error), fixed size, no allocation when recording.
class Histogram {
 public:
  void Record(uint64_t ns);
  uint64_t count() const { return count_; }
  double PercentileMs(double p) const;  // 0 if empty

 private:
  static constexpr int kBuckets = 128 + 57 * 64;
  static int Index(uint64_t v);
  static uint64_t Value(int index);
  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
};

// One certificate + key from devices.pem / collectors.pem.
struct Credential {
  std::string cn;
  X509Ptr cert;
  EvpPkeyPtr key;
};

// Reads up to `max` (certificate, key) pairs; the CN from the certificate.
bool LoadCredentials(const std::string& path, size_t max, std::vector<Credential>* out);

enum class State { kIdle, kTcp, kTls, kMqtt, kReady, kClosed };

struct Conn {
  const Credential* cred = nullptr;
  int index = 0;           // the device / collector number
  bool collector = false;  // a collector certificate
  State state = State::kIdle;
  int fd = -1;
  SslPtr ssl;
  uint32_t interest = 0;
  bool tls_wants_write = false;
  bool want_writable = false;  // call Handler::OnWritable when the socket can take more
  uint64_t t0 = 0;             // Launch time
  std::vector<uint8_t> rbuf;
  size_t rlen = 0;
  std::string wbuf;
  size_t woff = 0;
  // Mode data.
  int inflight = 0;
  unsigned next_pid = 1;
  uint32_t seq = 0;
  uint64_t sent = 0;
  int subacks_pending = 0;
  std::array<uint8_t, 64> pid_kind{};  // what the publish with packet id p (mod 64) was
  std::string own_topic, other_topic, other_cmd;
};

class Handler {
 public:
  virtual ~Handler() = default;
  virtual void OnReady(Conn&) {}                   // CONNACK success
  virtual void OnConnectDone(Conn&, bool) {}       // CONNACK success (true), refusal or failure (false)
  virtual void OnLost(Conn&) {}                    // an established connection closed by the broker / an error
  virtual void OnSuback(Conn&, unsigned, uint8_t) {}  // packet id, first reason code
  virtual void OnPuback(Conn&, unsigned, uint8_t) {}  // packet id, reason code (0 if absent)
  virtual void OnPublish(Conn&, const mqtt::Publish&) {}
  virtual void OnWritable(Conn&) {}  // want_writable and the output buffer is empty
};

struct EngineConfig {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string ca_bundle;
  bool v5 = true;
  unsigned keepalive = 60;
  int concurrency = 50;
  uint64_t connect_timeout_ns = 15'000'000'000ULL;
};

class Engine {
 public:
  Engine(EngineConfig config, Handler* handler);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  bool Init();  // epoll, SSL_CTX, address; prints why on failure

  Conn* NewConn(const Credential* cred, int index, bool collector);
  void Launch(Conn* c);  // queued; started when fewer than `concurrency` are connecting
  void CancelPending() { pending_.clear(); }  // drops the connections not started yet
  // One epoll_wait (at most timeout_ms) and the events it returns.
  void Poll(int timeout_ms);

  void Flush(Conn* c);                 // writes what the output buffer holds
  void SetWantWritable(Conn* c, bool on);
  void Disconnect(Conn* c);            // DISCONNECT, close_notify, close
  bool v5() const { return config_.v5; }
  const std::vector<std::unique_ptr<Conn>>& conns() const { return conns_; }
  size_t connecting() const { return pending_.size() + static_cast<size_t>(in_progress_); }

  // Connect-phase statistics.
  uint64_t accepted = 0;
  uint64_t failed = 0;
  uint64_t lost = 0;  // established connections that closed unasked
  std::map<int, uint64_t> refused;           // CONNACK code -> count
  std::map<std::string, uint64_t> failures;  // category -> count
  Histogram connect_latency;

 private:
  void Pump();  // starts queued connections up to `concurrency`
  void Start(Conn* c);
  void OnEvent(Conn* c, uint32_t events);
  void Handshake(Conn* c);
  void ReadAll(Conn* c);
  void Dispatch(Conn* c, const mqtt::Packet& p);
  void UpdateInterest(Conn* c);
  void Fail(Conn* c, const std::string& category, const std::string& detail);
  void Close(Conn* c);
  void ConnectFinished(Conn* c, bool ok);
  void CheckTimeouts(uint64_t now);

  EngineConfig config_;
  Handler* handler_;
  int epfd_ = -1;
  SslCtxPtr ctx_;
  sockaddr_in addr_{};
  bool host_is_ip_ = false;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::deque<Conn*> pending_;
  int in_progress_ = 0;
  uint64_t last_timeout_scan_ = 0;
  int failures_printed_ = 0;
};

}  // namespace certacl::loadgen

#endif  // CERTACL_BENCH_LOADGEN_ENGINE_H_
