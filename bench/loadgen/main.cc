// main.cc: certacl-loadgen's command line and its three load modes
// (connect / pubsub / deny). The contract is in loadgen.h; the engine in
// engine.h.
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "bench/loadgen/engine.h"
#include "bench/loadgen/loadgen.h"
#include "bench/loadgen/mqtt.h"

namespace certacl::loadgen {
namespace {

volatile std::sig_atomic_t g_stop = 0;  // the signal that asked us to stop
volatile std::sig_atomic_t g_stop_sender = 0;  // its sender's pid (0: unknown)
void OnSignal(int sig, siginfo_t* info, void*) {
  g_stop_sender = info != nullptr ? static_cast<std::sig_atomic_t>(info->si_pid) : 0;
  g_stop = sig;
}
// Says so when a run was cut short by a signal (its figures are partial).
void ReportStop(const char* phase) {
  if (g_stop == 0) return;
  std::fprintf(stderr, "certacl-loadgen: %s stopped by signal %d from pid %d\n", phase, static_cast<int>(g_stop),
               static_cast<int>(g_stop_sender));
}

constexpr uint64_t kSecond = 1'000'000'000ULL;
constexpr int kWindow = 16;           // QoS 1 publishes in flight per connection
constexpr size_t kPayloadHeader = 24;  // send time, sender, sequence, tag
constexpr char kTagAllowed[8] = {'a', 'l', 'l', 'o', 'w', 'e', 'd', 0};
constexpr char kTagDeny[8] = {'d', 'e', 'n', 'y', 0, 0, 0, 0};

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void RaiseFileLimit(size_t needed) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  const rlim_t want = static_cast<rlim_t>(needed + 64);
  if (rl.rlim_cur >= want) return;
  if (rl.rlim_max < want) {
    const rlimit raised{want, want};  // root may raise the hard limit too
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) return;
  }
  rl.rlim_cur = std::min(want, rl.rlim_max);
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want) {
    std::fprintf(stderr, "certacl-loadgen: warning: only %llu file descriptors for %zu connections\n",
                 static_cast<unsigned long long>(rl.rlim_cur), needed);
  }
}

// ---------------------------------------------------------------------------
// The one JSON line.

class Json {
 public:
  Json& Str(const char* key, std::string_view v) {
    Key(key);
    s_ += '"';
    for (char ch : v) {
      if (ch == '"' || ch == '\\') {
        s_ += '\\';
        s_ += ch;
      } else if (static_cast<unsigned char>(ch) < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(ch)));
        s_ += buf;
      } else {
        s_ += ch;
      }
    }
    s_ += '"';
    return *this;
  }
  Json& Int(const char* key, uint64_t v) {
    Key(key);
    s_ += std::to_string(v);
    return *this;
  }
  Json& Num(const char* key, double v, int decimals = 3) {
    Key(key);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    s_ += buf;
    return *this;
  }
  Json& Raw(const char* key, const std::string& raw) {
    Key(key);
    s_ += raw;
    return *this;
  }
  void Print() { std::printf("%s}\n", s_.c_str()); std::fflush(stdout); }

 private:
  void Key(const char* key) {
    s_ += s_.empty() ? "{" : ",";
    s_ += '"';
    s_ += key;
    s_ += "\":";
  }
  std::string s_;
};

std::string RefusedJson(const std::map<int, uint64_t>& refused, bool v5) {
  std::map<int, uint64_t> all = refused;
  all.emplace(v5 ? 0x87 : 0x05, 0);  // "not authorized" always present
  std::string s = "{";
  for (const auto& [code, n] : all) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%s\"0x%02x\":%llu", s.size() > 1 ? "," : "", code, static_cast<unsigned long long>(n));
    s += buf;
  }
  return s + "}";
}

std::string FailuresText(const Engine& e) {
  std::string s;
  for (const auto& [what, n] : e.failures) s += " " + what + "=" + std::to_string(n);
  return s.empty() ? " none" : s;
}

// ---------------------------------------------------------------------------
// Options.

struct Options {
  std::string mode;
  std::map<std::string, std::string> values;
  bool hold = false;
};

[[noreturn]] void Usage(const std::string& why) {
  if (!why.empty()) std::fprintf(stderr, "certacl-loadgen: %s\n", why.c_str());
  std::fputs(
      "usage:\n"
      "  certacl-loadgen fleet --dir DIR --devices N [--collectors M (4)] [--crl-entries K (0)] [--roles R (0)]\n"
      "  certacl-loadgen connect --port P --fleet DIR [--host 127.0.0.1] [--count N (all devices)]\n"
      "      [--concurrency C (50)] [--mqtt 5|311 (5)] [--hold] [--hold-seconds S (30)] [--label X]\n"
      "  certacl-loadgen pubsub --port P --fleet DIR [--publishers N (50)] [--subscribers M (all collectors)]\n"
      "      [--qos 0|1 (0)] [--seconds T (10)] [--rate R (0)] [--payload BYTES (64)] [--mqtt 5|311] [--label X]\n"
      "  certacl-loadgen deny --port P --fleet DIR [--devices N (20)] [--seconds T (5)] [--mqtt 5|311] [--label X]\n",
      stderr);
  std::exit(2);
}

Options Parse(int argc, char** argv) {
  if (argc < 2) Usage("");
  Options o;
  o.mode = argv[1];
  std::vector<std::string> allowed;
  const std::vector<std::string> net = {"port", "fleet", "host", "mqtt", "label"};
  if (o.mode == "fleet") {
    allowed = {"dir", "devices", "collectors", "crl-entries", "roles"};
  } else if (o.mode == "connect") {
    allowed = {"count", "concurrency", "hold-seconds"};
  } else if (o.mode == "pubsub") {
    allowed = {"publishers", "subscribers", "qos", "seconds", "rate", "payload"};
  } else if (o.mode == "deny") {
    allowed = {"devices", "seconds"};
  } else {
    Usage("unknown mode '" + o.mode + "'");
  }
  if (o.mode != "fleet") allowed.insert(allowed.end(), net.begin(), net.end());
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) Usage("unexpected argument '" + a + "'");
    a = a.substr(2);
    if (a == "hold" && o.mode == "connect") {
      o.hold = true;
      continue;
    }
    if (std::find(allowed.begin(), allowed.end(), a) == allowed.end()) Usage("unknown option --" + a + " for " + o.mode);
    if (i + 1 >= argc) Usage("--" + a + " needs a value");
    o.values[a] = argv[++i];
  }
  return o;
}

bool Has(const Options& o, const std::string& k) { return o.values.count(k) > 0; }

std::string Str(const Options& o, const std::string& k, const std::string& def) {
  auto it = o.values.find(k);
  return it == o.values.end() ? def : it->second;
}

long Int(const Options& o, const std::string& k, long def, long min, long max) {
  auto it = o.values.find(k);
  if (it == o.values.end()) return def;
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(it->second.c_str(), &end, 10);
  if (errno != 0 || end == it->second.c_str() || *end != '\0' || v < min || v > max) {
    Usage("--" + k + " must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return v;
}

// Settings shared by connect / pubsub / deny.
struct Common {
  EngineConfig engine;
  std::string fleet;
  std::string label;
  int mqtt = 5;
};

Common ParseCommon(const Options& o) {
  Common c;
  if (!Has(o, "port")) Usage("--port is required");
  if (!Has(o, "fleet")) Usage("--fleet is required");
  c.engine.port = static_cast<int>(Int(o, "port", 0, 1, 65535));
  c.engine.host = Str(o, "host", "127.0.0.1");
  c.fleet = Str(o, "fleet", "");
  c.engine.ca_bundle = c.fleet + "/ca-bundle.pem";
  c.label = Str(o, "label", "");
  const std::string m = Str(o, "mqtt", "5");
  if (m == "5") {
    c.mqtt = 5;
  } else if (m == "311") {
    c.mqtt = 311;
  } else {
    Usage("--mqtt must be 5 or 311");
  }
  c.engine.v5 = c.mqtt == 5;
  return c;
}

void JsonHead(Json& j, const char* mode, const Common& c) {
  j.Str("mode", mode).Str("label", c.label).Int("mqtt", static_cast<uint64_t>(c.mqtt));
}

// Writes one publish of `payload_len` bytes (>= kPayloadHeader) into c's buffer.
void AppendPublish(Engine& e, Conn& c, const std::string& topic, int qos, const char (&tag)[8], size_t payload_len,
                   uint8_t kind) {
  unsigned pid = 0;
  if (qos > 0) {
    pid = c.next_pid;
    c.next_pid = c.next_pid == 65535 ? 1 : c.next_pid + 1;
    c.pid_kind[pid % c.pid_kind.size()] = kind;
    ++c.inflight;
  }
  mqtt::PublishHeader(c.wbuf, e.v5(), topic, qos, pid, payload_len);
  char head[kPayloadHeader];
  const uint64_t now = NowNs();
  const uint32_t sender = static_cast<uint32_t>(c.index);
  const uint32_t seq = c.seq++;
  std::memcpy(head, &now, 8);
  std::memcpy(head + 8, &sender, 4);
  std::memcpy(head + 12, &seq, 4);
  std::memcpy(head + 16, tag, 8);
  c.wbuf.append(head, kPayloadHeader);
  c.wbuf.append(payload_len - kPayloadHeader, 'x');
  ++c.sent;
}

struct PayloadInfo {
  uint64_t sent_ns = 0;
  uint32_t sender = 0;
  bool deny = false;
  bool valid = false;
};

PayloadInfo ReadPayload(const mqtt::Publish& p) {
  PayloadInfo info;
  if (p.payload_len < kPayloadHeader) return info;
  std::memcpy(&info.sent_ns, p.payload, 8);
  std::memcpy(&info.sender, p.payload + 8, 4);
  info.deny = std::memcmp(p.payload + 16, kTagDeny, 8) == 0;
  info.valid = info.deny || std::memcmp(p.payload + 16, kTagAllowed, 8) == 0;
  return info;
}

// Polls until `done()` or the deadline (or a signal).
template <typename Done>
void RunUntil(Engine& e, uint64_t deadline, int timeout_ms, Done done) {
  while (!done() && NowNs() < deadline && g_stop == 0) e.Poll(timeout_ms);
}

// ---------------------------------------------------------------------------
// connect

class ConnectMode : public Handler {
 public:
  explicit ConnectMode(bool hold) : hold_(hold) {}
  void Bind(Engine* e) { e_ = e; }
  void OnReady(Conn& c) override {
    if (!hold_) e_->Disconnect(&c);
  }
  void OnConnectDone(Conn&, bool) override { ++done; }
  uint64_t done = 0;

 private:
  bool hold_;
  Engine* e_ = nullptr;
};

int RunConnect(const Options& o) {
  Common c = ParseCommon(o);
  c.engine.concurrency = static_cast<int>(Int(o, "concurrency", 50, 1, 100000));
  const long hold_seconds = Int(o, "hold-seconds", 30, 0, 86400 * 7);
  std::vector<Credential> creds;
  const long count_opt = Int(o, "count", 0, 1, 10'000'000);
  if (!LoadCredentials(c.fleet + "/devices.pem", Has(o, "count") ? static_cast<size_t>(count_opt) : SIZE_MAX, &creds)) return 1;
  const size_t count = creds.size();
  if (count == 0) {
    std::fprintf(stderr, "certacl-loadgen: no devices in %s/devices.pem\n", c.fleet.c_str());
    return 1;
  }
  if (Has(o, "count") && count < static_cast<size_t>(count_opt)) {
    std::fprintf(stderr, "certacl-loadgen: the fleet has only %zu devices\n", count);
    return 2;
  }
  RaiseFileLimit(o.hold ? count : static_cast<size_t>(c.engine.concurrency));

  ConnectMode mode(o.hold);
  Engine e(c.engine, &mode);
  mode.Bind(&e);
  if (!e.Init()) return 1;

  const double cpu0 = CpuSeconds();
  const uint64_t t0 = NowNs();
  // Bounded: a run stops when no connection has been accepted or refused
  // for 30 s (a hung broker), and in any case after 30 s + 100 ms per connection.
  const uint64_t deadline = t0 + 30 * kSecond + count * 100'000'000ULL;
  for (size_t i = 0; i < count; ++i) e.Launch(e.NewConn(&creds[i], static_cast<int>(i), false));
  uint64_t answered = 0;
  uint64_t last_progress = t0;
  RunUntil(e, deadline, 100, [&] {
    uint64_t now_answered = e.accepted;
    for (const auto& [code, k] : e.refused) now_answered += k;
    const uint64_t now = NowNs();
    if (now_answered != answered) {
      answered = now_answered;
      last_progress = now;
    }
    if (mode.done < count && now - last_progress > 30 * kSecond) {
      std::fprintf(stderr, "certacl-loadgen: no connection accepted or refused for 30 s: giving up\n");
      return true;
    }
    return mode.done >= count;
  });
  const double seconds = static_cast<double>(NowNs() - t0) / 1e9;
  const double cpu = CpuSeconds() - cpu0;
  const uint64_t unfinished = count - std::min<uint64_t>(count, mode.done);  // given up on: failed
  if (unfinished > 0) {
    ReportStop("the connect storm was");
    e.failed += unfinished;
    e.failures["unfinished"] += unfinished;
    e.CancelPending();
    for (const auto& conn : e.conns()) {
      if (conn->state != State::kReady) e.Disconnect(conn.get());
    }
  }

  uint64_t held = 0;
  uint64_t lost_while_held = 0;
  if (o.hold) {
    for (const auto& conn : e.conns()) held += conn->state == State::kReady ? 1 : 0;
    std::fprintf(stderr, "holding %llu connections\n", static_cast<unsigned long long>(held));
    const uint64_t lost0 = e.lost;
    const uint64_t hold_end = NowNs() + static_cast<uint64_t>(hold_seconds) * kSecond;
    uint64_t next_ping = NowNs() + 30 * kSecond;
    while (g_stop == 0 && NowNs() < hold_end) {
      e.Poll(200);
      if (NowNs() >= next_ping) {  // keepalive 60: ping every 30 s
        next_ping += 30 * kSecond;
        for (const auto& conn : e.conns()) {
          if (conn->state != State::kReady) continue;
          mqtt::Pingreq(conn->wbuf);
          e.Flush(conn.get());
        }
      }
    }
    lost_while_held = e.lost - lost0;
  }
  for (const auto& conn : e.conns()) e.Disconnect(conn.get());

  const uint64_t refused_total = [&] {
    uint64_t n = 0;
    for (const auto& [code, k] : e.refused) n += k;
    return n;
  }();
  Json j;
  JsonHead(j, "connect", c);
  j.Int("connections", count)
      .Int("accepted", e.accepted)
      .Raw("refused", RefusedJson(e.refused, c.engine.v5))
      .Int("failed", e.failed)
      .Int("concurrency", static_cast<uint64_t>(c.engine.concurrency))
      .Num("seconds", seconds)
      .Num("connects_per_s", seconds > 0 ? static_cast<double>(e.accepted) / seconds : 0, 1)
      .Num("connect_ms_p50", e.connect_latency.PercentileMs(50))
      .Num("connect_ms_p99", e.connect_latency.PercentileMs(99))
      .Num("loadgen_cpu_s", cpu);
  if (o.hold) j.Int("held", held).Int("lost_while_held", lost_while_held).Int("hold_seconds", static_cast<uint64_t>(hold_seconds));
  j.Print();
  std::fprintf(stderr,
               "connect %s (MQTT %d, concurrency %d): %zu connections in %.2f s\n"
               "  accepted %llu, refused %llu, failed %llu (%s )\n"
               "  %.1f connects/s, connect latency p50 %.2f ms, p99 %.2f ms, load generator CPU %.2f s\n",
               c.label.c_str(), c.mqtt, c.engine.concurrency, count, seconds,
               static_cast<unsigned long long>(e.accepted), static_cast<unsigned long long>(refused_total),
               static_cast<unsigned long long>(e.failed), FailuresText(e).c_str(),
               seconds > 0 ? static_cast<double>(e.accepted) / seconds : 0, e.connect_latency.PercentileMs(50),
               e.connect_latency.PercentileMs(99), cpu);
  return e.accepted > 0 ? 0 : 1;
}

// ---------------------------------------------------------------------------
// pubsub

class PubSubMode : public Handler {
 public:
  PubSubMode(int qos, size_t payload) : qos_(qos), payload_(payload) {}
  void Bind(Engine* e) { e_ = e; }

  void OnReady(Conn& c) override {
    if (c.collector) {
      mqtt::Subscribe(c.wbuf, e_->v5(), 1, "bench/+/telemetry", qos_);
      c.subacks_pending = 1;
    } else {
      c.own_topic = "bench/" + c.cred->cn + "/telemetry";
      c.wbuf.reserve(64 * 1024);
    }
  }
  void OnConnectDone(Conn& c, bool ok) override {
    if (c.collector) {
      if (!ok) ++subscribers_done;
    } else {
      ++publishers_done;
    }
  }
  void OnLost(Conn& c) override {
    if (c.collector && c.subacks_pending > 0) {  // lost before its SUBACK: stop waiting for it
      c.subacks_pending = 0;
      ++subscribers_done;
    }
  }
  void OnSuback(Conn& c, unsigned, uint8_t code) override {
    if (c.subacks_pending == 0) return;
    c.subacks_pending = 0;
    ++subscribers_done;
    if (code < 0x80) {
      ++subscribed;
    } else {
      ++subscribe_refused;
    }
  }
  void OnPuback(Conn& c, unsigned, uint8_t code) override {
    if (c.inflight > 0) --c.inflight;
    ++acked;
    if (code >= 0x80) ++puback_refused;
    if (publishing && rate == 0 && c.inflight < kWindow) e_->SetWantWritable(&c, true);
  }
  void OnPublish(Conn&, const mqtt::Publish& p) override {
    const uint64_t now = NowNs();
    ++delivered;
    if (now <= window_end) ++delivered_in_window;
    const PayloadInfo info = ReadPayload(p);
    if (info.valid && now >= info.sent_ns) latency.Record(now - info.sent_ns);
    last_delivery = now;
  }
  void OnWritable(Conn& c) override {
    if (!publishing) {
      e_->SetWantWritable(&c, false);
      return;
    }
    for (int burst = 0; burst < 16; ++burst) {
      if (qos_ == 1 && c.inflight >= kWindow) break;
      AppendPublish(*e_, c, c.own_topic, qos_, kTagAllowed, payload_, 0);
      ++published;
    }
    if (qos_ == 1 && c.inflight >= kWindow) e_->SetWantWritable(&c, false);
  }
  // Rate mode: brings `c` up to `target` messages sent.
  void Tick(Conn& c, uint64_t target) {
    int burst = 0;
    while (c.sent < target && burst < 64 && (qos_ == 0 || c.inflight < kWindow)) {
      AppendPublish(*e_, c, c.own_topic, qos_, kTagAllowed, payload_, 0);
      ++published;
      ++burst;
    }
    if (burst > 0) e_->Flush(&c);
  }

  uint64_t subscribers_done = 0, subscribed = 0, subscribe_refused = 0, publishers_done = 0;
  uint64_t published = 0, acked = 0, puback_refused = 0, delivered = 0, delivered_in_window = 0;
  uint64_t window_end = UINT64_MAX, last_delivery = 0;
  long rate = 0;
  bool publishing = false;
  Histogram latency;

 private:
  int qos_;
  size_t payload_;
  Engine* e_ = nullptr;
};

int RunPubSub(const Options& o) {
  Common c = ParseCommon(o);
  const size_t publishers = static_cast<size_t>(Int(o, "publishers", 50, 1, 1'000'000));
  const int qos = static_cast<int>(Int(o, "qos", 0, 0, 1));
  const long seconds = Int(o, "seconds", 10, 1, 86400);
  const long rate = Int(o, "rate", 0, 0, 10'000'000);
  size_t payload = static_cast<size_t>(Int(o, "payload", 64, 1, 256 * 1024 * 1024));
  if (payload < kPayloadHeader) {
    std::fprintf(stderr, "certacl-loadgen: --payload raised to %zu bytes (timestamp, sender, sequence, tag)\n",
                 kPayloadHeader);
    payload = kPayloadHeader;
  }
  std::vector<Credential> devices, collectors;
  if (!LoadCredentials(c.fleet + "/devices.pem", publishers, &devices)) return 1;
  if (!LoadCredentials(c.fleet + "/collectors.pem", Has(o, "subscribers") ? static_cast<size_t>(Int(o, "subscribers", 0, 1, 100000)) : SIZE_MAX,
                 &collectors)) {
    return 1;
  }
  if (devices.size() < publishers || collectors.empty() ||
      (Has(o, "subscribers") && collectors.size() < static_cast<size_t>(Int(o, "subscribers", 0, 1, 100000)))) {
    std::fprintf(stderr, "certacl-loadgen: the fleet has %zu devices and %zu collectors: too few\n", devices.size(),
                 collectors.size());
    return 2;
  }
  RaiseFileLimit(devices.size() + collectors.size());
  c.engine.concurrency = 50;

  PubSubMode mode(qos, payload);
  mode.rate = rate;
  Engine e(c.engine, &mode);
  mode.Bind(&e);
  if (!e.Init()) return 1;
  const uint64_t t_begin = NowNs();
  const uint64_t deadline = t_begin + static_cast<uint64_t>(seconds) * kSecond + 30 * kSecond;

  std::vector<Conn*> subs, pubs;
  for (size_t i = 0; i < collectors.size(); ++i) {
    subs.push_back(e.NewConn(&collectors[i], static_cast<int>(i), true));
    e.Launch(subs.back());
  }
  RunUntil(e, deadline, 50, [&] { return mode.subscribers_done >= subs.size(); });
  for (size_t i = 0; i < devices.size(); ++i) {
    pubs.push_back(e.NewConn(&devices[i], static_cast<int>(i), false));
    e.Launch(pubs.back());
  }
  RunUntil(e, deadline, 50, [&] { return mode.publishers_done >= pubs.size(); });
  const uint64_t ready_publishers = static_cast<uint64_t>(
      std::count_if(pubs.begin(), pubs.end(), [](const Conn* p) { return p->state == State::kReady; }));

  double cpu = 0;
  double window_s = 0;
  if (mode.subscribed > 0 && ready_publishers > 0 && g_stop == 0) {
    const double cpu0 = CpuSeconds();
    const uint64_t start = NowNs();
    mode.window_end = start + static_cast<uint64_t>(seconds) * kSecond;
    mode.publishing = true;
    if (rate == 0) {
      for (Conn* p : pubs) e.SetWantWritable(p, true);
      RunUntil(e, mode.window_end, 50, [] { return false; });
    } else {
      while (NowNs() < mode.window_end && g_stop == 0) {
        const double elapsed = static_cast<double>(NowNs() - start) / 1e9;
        const uint64_t target = static_cast<uint64_t>(elapsed * static_cast<double>(rate)) + 1;
        for (Conn* p : pubs) {
          if (p->state == State::kReady) mode.Tick(*p, target);
        }
        e.Poll(1);
      }
    }
    mode.publishing = false;
    for (Conn* p : pubs) e.SetWantWritable(p, false);
    window_s = static_cast<double>(NowNs() - start) / 1e9;
    // Drain: every expected delivery in, or 1 s without any, at most 5 s.
    const uint64_t drain_end = std::min(deadline, NowNs() + 5 * kSecond);
    mode.last_delivery = NowNs();
    RunUntil(e, drain_end, 20, [&] {
      bool acked = true;
      for (Conn* p : pubs) acked = acked && (p->inflight == 0 || p->state != State::kReady);
      return (acked && mode.delivered >= mode.published * mode.subscribed) || NowNs() - mode.last_delivery > kSecond;
    });
    cpu = CpuSeconds() - cpu0;
  }
  for (const auto& conn : e.conns()) e.Disconnect(conn.get());

  const uint64_t expected = mode.published * mode.subscribed;
  const uint64_t lost = expected > mode.delivered ? expected - mode.delivered : 0;
  const double pub_s = window_s > 0 ? static_cast<double>(mode.published) / window_s : 0;
  const double del_s = window_s > 0 ? static_cast<double>(mode.delivered_in_window) / window_s : 0;
  Json j;
  JsonHead(j, "pubsub", c);
  j.Int("qos", static_cast<uint64_t>(qos))
      .Int("publishers", ready_publishers)
      .Int("subscribers", mode.subscribed)
      .Int("payload", payload)
      .Int("rate", static_cast<uint64_t>(rate))
      .Num("seconds", window_s)
      .Int("published", mode.published)
      .Int("delivered", mode.delivered)
      .Num("published_per_s", pub_s, 1)
      .Num("delivered_per_s", del_s, 1)
      .Num("latency_ms_p50", mode.latency.PercentileMs(50))
      .Num("latency_ms_p99", mode.latency.PercentileMs(99))
      .Int("lost", lost)
      .Int("connect_failed", e.failed)
      .Int("connections_lost", e.lost)
      .Num("loadgen_cpu_s", cpu);
  j.Print();
  std::fprintf(stderr,
               "pubsub %s (MQTT %d, QoS %d, %zu-byte payload, rate %s): %llu publishers -> %llu subscribers for %.2f s\n"
               "  published %llu (%.1f/s), delivered %llu (%.1f/s in the window), lost %llu of %llu expected\n"
               "  end-to-end latency p50 %.2f ms, p99 %.2f ms; connect failures %llu, connections lost %llu; "
               "load generator CPU %.2f s\n",
               c.label.c_str(), c.mqtt, qos, payload, rate == 0 ? "max" : std::to_string(rate).c_str(),
               static_cast<unsigned long long>(ready_publishers), static_cast<unsigned long long>(mode.subscribed), window_s,
               static_cast<unsigned long long>(mode.published), pub_s, static_cast<unsigned long long>(mode.delivered),
               del_s, static_cast<unsigned long long>(lost), static_cast<unsigned long long>(expected),
               mode.latency.PercentileMs(50), mode.latency.PercentileMs(99),
               static_cast<unsigned long long>(e.failed), static_cast<unsigned long long>(e.lost), cpu);
  if (qos == 1 && lost > 0) {
    std::fprintf(stderr, "  note: Mosquitto 2.0.11 drops a few %% of QoS 1 messages at saturation (reported, not an error)\n");
  }
  return mode.subscribed > 0 && ready_publishers > 0 && mode.published > 0 ? 0 : 1;
}

// ---------------------------------------------------------------------------
// deny

// Packet ids of the SUBSCRIBEs every device sends in deny mode.
enum : unsigned { kSubOwnCmd = 1, kSubAllTelemetry = 2, kSubOtherCmd = 3 };
// What a publish was (Conn::pid_kind).
enum : uint8_t { kPubOwn = 0, kPubOtherTelemetry = 1, kPubOtherCmd = 2 };

class DenyMode : public Handler {
 public:
  DenyMode(size_t devices, const std::vector<Credential>* creds) : devices_(devices), creds_(creds) {}
  void Bind(Engine* e) { e_ = e; }

  void OnReady(Conn& c) override {
    if (c.collector) {
      mqtt::Subscribe(c.wbuf, e_->v5(), 1, "bench/+/telemetry", 0);
      c.subacks_pending = 1;
      return;
    }
    const std::string& other = (*creds_)[(static_cast<size_t>(c.index) + 1) % devices_].cn;
    c.own_topic = "bench/" + c.cred->cn + "/telemetry";
    c.other_topic = "bench/" + other + "/telemetry";
    c.other_cmd = "bench/" + other + "/cmd/x";
    mqtt::Subscribe(c.wbuf, e_->v5(), kSubOwnCmd, "bench/" + c.cred->cn + "/cmd/#", 0);
    mqtt::Subscribe(c.wbuf, e_->v5(), kSubAllTelemetry, "bench/+/telemetry", 0);
    mqtt::Subscribe(c.wbuf, e_->v5(), kSubOtherCmd, "bench/" + other + "/cmd/#", 0);
    c.subacks_pending = 3;
  }
  void OnConnectDone(Conn&, bool) override { ++connect_done; }
  void OnSuback(Conn& c, unsigned pid, uint8_t code) override {
    if (c.subacks_pending > 0 && --c.subacks_pending == 0) ++subscribed_conns;
    const bool refused = code >= 0x80;
    if (c.collector || pid == kSubOwnCmd) {
      if (refused) ++allowed_subscribes_refused;
    } else if (refused) {
      ++denied_subscribes;
    } else {
      ++forbidden_subscribes_granted;
    }
  }
  void OnPuback(Conn& c, unsigned pid, uint8_t code) override {
    if (c.inflight > 0) --c.inflight;
    const uint8_t kind = c.pid_kind[pid % c.pid_kind.size()];
    if (code >= 0x80) {
      if (kind == kPubOwn) {
        ++allowed_publishes_refused;
      } else {
        ++denied_publishes;
      }
    }
    if (publishing && c.inflight < kWindow) e_->SetWantWritable(&c, true);
  }
  void OnPublish(Conn& c, const mqtt::Publish& p) override {
    const PayloadInfo info = ReadPayload(p);
    bool ok = info.valid && !info.deny && info.sender < devices_;
    if (ok) {
      const std::string& sender = (*creds_)[info.sender].cn;
      if (c.collector) {
        // May read bench/+/telemetry; senders may only write their own telemetry.
        ok = p.topic.size() == 6 + sender.size() + 10 && p.topic.substr(0, 6) == "bench/" &&
             p.topic.substr(6, sender.size()) == sender && p.topic.substr(6 + sender.size()) == "/telemetry";
      } else {
        // A device may read only bench/CN/cmd/#, which no device may write.
        ok = false;
      }
    }
    if (ok) {
      ++allowed_deliveries;
      return;
    }
    ++unauthorized;
    if (printed_ < 5) {
      ++printed_;
      std::fprintf(stderr, "certacl-loadgen: UNAUTHORIZED delivery to %s: topic %.*s (%s payload)\n", c.cred->cn.c_str(),
                   static_cast<int>(p.topic.size()), p.topic.data(), info.deny ? "deny-tagged" : "allowed-tagged");
    }
  }
  void OnWritable(Conn& c) override {
    if (!publishing || c.collector) {
      e_->SetWantWritable(&c, false);
      return;
    }
    while (c.inflight < kWindow) {
      switch (c.seq % 3) {
        case 0:
          AppendPublish(*e_, c, c.other_topic, 1, kTagDeny, 32, kPubOtherTelemetry);
          ++forbidden_publishes;
          break;
        case 1:
          AppendPublish(*e_, c, c.other_cmd, 1, kTagDeny, 32, kPubOtherCmd);
          ++forbidden_publishes;
          break;
        default:
          AppendPublish(*e_, c, c.own_topic, 1, kTagAllowed, 32, kPubOwn);
          ++allowed_publishes;
          break;
      }
    }
    e_->SetWantWritable(&c, false);
  }

  uint64_t connect_done = 0, subscribed_conns = 0;
  uint64_t denied_subscribes = 0, forbidden_subscribes_granted = 0, allowed_subscribes_refused = 0;
  uint64_t denied_publishes = 0, allowed_publishes_refused = 0, forbidden_publishes = 0, allowed_publishes = 0;
  uint64_t unauthorized = 0, allowed_deliveries = 0;
  bool publishing = false;

 private:
  size_t devices_;
  const std::vector<Credential>* creds_;
  Engine* e_ = nullptr;
  int printed_ = 0;
};

int RunDeny(const Options& o) {
  Common c = ParseCommon(o);
  const size_t n = static_cast<size_t>(Int(o, "devices", 20, 2, 1'000'000));
  const long seconds = Int(o, "seconds", 5, 1, 86400);
  std::vector<Credential> devices, collectors;
  if (!LoadCredentials(c.fleet + "/devices.pem", n, &devices) || !LoadCredentials(c.fleet + "/collectors.pem", 1, &collectors)) return 1;
  if (devices.size() < n || collectors.empty()) {
    std::fprintf(stderr, "certacl-loadgen: the fleet has %zu devices and %zu collectors: too few\n", devices.size(),
                 collectors.size());
    return 2;
  }
  RaiseFileLimit(n + 1);

  DenyMode mode(n, &devices);
  Engine e(c.engine, &mode);
  mode.Bind(&e);
  if (!e.Init()) return 1;
  const uint64_t deadline = NowNs() + static_cast<uint64_t>(seconds) * kSecond + 30 * kSecond;

  std::vector<Conn*> all;
  all.push_back(e.NewConn(&collectors[0], 0, true));
  for (size_t i = 0; i < n; ++i) all.push_back(e.NewConn(&devices[i], static_cast<int>(i), false));
  for (Conn* conn : all) e.Launch(conn);
  RunUntil(e, deadline, 50, [&] { return mode.connect_done >= all.size(); });
  const uint64_t ready = static_cast<uint64_t>(
      std::count_if(all.begin(), all.end(), [](const Conn* p) { return p->state == State::kReady; }));
  RunUntil(e, deadline, 50, [&] { return mode.subscribed_conns >= ready; });

  double cpu = 0;
  double window_s = 0;
  const bool collector_ok = all[0]->state == State::kReady;
  if (collector_ok && ready > 1 && g_stop == 0) {
    const double cpu0 = CpuSeconds();
    const uint64_t start = NowNs();
    mode.publishing = true;
    for (size_t i = 1; i < all.size(); ++i) e.SetWantWritable(all[i], true);
    RunUntil(e, start + static_cast<uint64_t>(seconds) * kSecond, 50, [] { return false; });
    mode.publishing = false;
    window_s = static_cast<double>(NowNs() - start) / 1e9;
    // Drain: the acknowledgements in flight, then half a second for late deliveries.
    RunUntil(e, std::min(deadline, NowNs() + 5 * kSecond), 20, [&] {
      for (size_t i = 1; i < all.size(); ++i) {
        if (all[i]->state == State::kReady && all[i]->inflight > 0) return false;
      }
      return true;
    });
    const uint64_t settle = std::min(deadline, NowNs() + kSecond / 2);
    RunUntil(e, settle, 20, [] { return false; });
    cpu = CpuSeconds() - cpu0;
  }
  for (const auto& conn : e.conns()) e.Disconnect(conn.get());

  const uint64_t denials = mode.denied_publishes + mode.denied_subscribes;
  const double denials_s = window_s > 0 ? static_cast<double>(denials) / window_s : 0;
  Json j;
  JsonHead(j, "deny", c);
  j.Int("devices", ready > 0 ? ready - (collector_ok ? 1 : 0) : 0)
      .Num("seconds", window_s)
      .Int("forbidden_publishes", mode.forbidden_publishes)
      .Int("denied_publishes", mode.denied_publishes)
      .Int("denied_subscribes", mode.denied_subscribes)
      .Int("forbidden_subscribes_granted", mode.forbidden_subscribes_granted)
      .Int("unauthorized_deliveries", mode.unauthorized)
      .Int("allowed_publishes", mode.allowed_publishes)
      .Int("allowed_deliveries", mode.allowed_deliveries)
      .Int("allowed_refused", mode.allowed_publishes_refused + mode.allowed_subscribes_refused)
      .Num("denials_per_s", denials_s, 1)
      .Int("connect_failed", e.failed)
      .Int("connections_lost", e.lost)
      .Num("loadgen_cpu_s", cpu);
  j.Print();
  std::fprintf(stderr,
               "deny %s (MQTT %d): %llu devices + 1 collector for %.2f s\n"
               "  forbidden publishes %llu, denied (PUBACK >= 0x80) %llu; forbidden subscribes denied %llu, granted %llu\n"
               "  UNAUTHORIZED DELIVERIES %llu; allowed publishes %llu, delivered to the collector %llu, "
               "allowed operations refused %llu\n"
               "  %.1f denials/s; connect failures %llu, connections lost %llu; load generator CPU %.2f s\n",
               c.label.c_str(), c.mqtt, static_cast<unsigned long long>(ready > 0 ? ready - (collector_ok ? 1 : 0) : 0),
               window_s, static_cast<unsigned long long>(mode.forbidden_publishes),
               static_cast<unsigned long long>(mode.denied_publishes),
               static_cast<unsigned long long>(mode.denied_subscribes),
               static_cast<unsigned long long>(mode.forbidden_subscribes_granted),
               static_cast<unsigned long long>(mode.unauthorized), static_cast<unsigned long long>(mode.allowed_publishes),
               static_cast<unsigned long long>(mode.allowed_deliveries),
               static_cast<unsigned long long>(mode.allowed_publishes_refused + mode.allowed_subscribes_refused), denials_s,
               static_cast<unsigned long long>(e.failed), static_cast<unsigned long long>(e.lost), cpu);
  if (c.mqtt == 311) std::fprintf(stderr, "  note: MQTT 3.1.1 has no PUBACK reason codes: denied publishes are not counted\n");
  if (mode.unauthorized > 0) return 3;
  return collector_ok && ready > 1 ? 0 : 1;
}

int RunFleetCommand(const Options& o) {
  FleetOptions f;
  if (!Has(o, "dir")) Usage("--dir is required");
  if (!Has(o, "devices")) Usage("--devices is required");
  f.dir = Str(o, "dir", "");
  f.devices = static_cast<int>(Int(o, "devices", 0, 1, 1'000'000));
  f.collectors = static_cast<int>(Int(o, "collectors", 4, 0, 1000));
  f.crl_entries = static_cast<int>(Int(o, "crl-entries", 0, 0, 100'000'000));
  f.roles = static_cast<int>(Int(o, "roles", 0, 0, 10'000'000));
  return RunFleet(f);
}

}  // namespace
}  // namespace certacl::loadgen

int main(int argc, char** argv) {
  using namespace certacl::loadgen;
  const Options o = Parse(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_sigaction = OnSignal;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  if (o.mode == "fleet") return RunFleetCommand(o);
  if (o.mode == "connect") return RunConnect(o);
  if (o.mode == "pubsub") return RunPubSub(o);
  return RunDeny(o);
}
