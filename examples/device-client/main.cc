// main.cc: certacl-device-renew, the example device client of docs/enroll.md.
// It renews the device's certificate over the MQTT connection the way a
// firmware should:
//   1. connect over mutual TLS with the current pair, subscribe to
//      {prefix}/{id}/# before publishing anything;
//   2. decide: a renewal notice from the broker, 2/3 of the lifetime gone,
//      or --mode now;
//   3. make a new key and a CSR with the issued certificate's own Subject and
//      subjectAltName DER (kept on disk until answered: a retry, even after a
//      restart, sends the same CSR);
//   4. publish the request; wait out RequestPending and retryable errors;
//   5. check the new certificate and write it beside the current pair;
//   6. connect with it, and only once the broker accepts it put it in place
//      (the old pair stays as .prev).
// README.md has the command line, the exit codes and what to copy into a
// firmware.
#include <signal.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "crypto.h"
#include "json.h"
#include "mqtt_link.h"
#include "store.h"

namespace device_renew {
namespace {

enum ExitCode : int {
  kRenewed = 0,
  kUsageError = 1,      // bad command line, unreadable or unusable files
  kCannotConnect = 2,   // no connection or subscription with the current certificate
  kNotDue = 3,          // --mode notice/auto: no notice and not past 2/3 of the lifetime
  kRejected = 4,        // the bridge (or the broker) refused the request for good
  kGaveUp = 5,          // retries or --max-wait used up; the next run resumes the same CSR
  kBadCertificate = 6,  // the new certificate failed verification, or a key, CSR or certificate could not be stored
  kBrokerRefused = 7,   // the broker did not accept the new certificate; the old pair is in place
};

constexpr const char kUsage[] = R"(usage: certacl-device-renew --host H [--port 8883] --cafile F --cert F --key F
           [--client-id ID] [--id ID] [--prefix $enroll] [--mqtt 5|311]
           [--mode auto|notice|now] [--wait 10] [--timeout 30] [--max-wait 600]
           [--attempts 5] [--jitter 0] [--key-type ec-p256|ec-p384|rsa-2048]
           [--out-cert F] [--out-key F]

Renews this device's certificate over MQTT ({prefix}/{id}/simplereenroll,
docs/enroll.md): connects with --cert/--key, sends a CSR for a new key with
the certificate's own Subject and subjectAltName, checks the certificate that
comes back, checks the broker accepts it, then replaces --out-cert/--out-key
(default: --cert/--key), keeping the previous pair as <file>.prev.

  --host, --port    the broker (mutual TLS); --cafile verifies it
  --client-id       MQTT client id (default: the certificate's CN)
  --id              enrollment identity in the topics (default: the CN)
  --prefix          topic prefix, one or more levels (default $enroll)
  --mqtt            protocol version, 5 (default) or 311
  --mode            auto (default): renew on a notice or past 2/3 of the lifetime
                    notice: renew only if a notice arrives within --wait
                    now: renew at once
  --wait S          how long notice/auto wait for a notice (default 10)
  --timeout S       for each network step and for each answer (default 30)
  --max-wait S      for the whole exchange, RequestPending included (default 600)
  --attempts N      sends of the request counted against retryable errors
                    and missing answers (default 5; RequestPending resends
                    are bounded by --max-wait instead)
  --jitter S        sleep a random 0..S seconds first (fleet-wide timers)
  --key-type        the new key (default ec-p256)

Exit codes:
  0  renewed (one summary line on stdout)
  1  usage or configuration error
  2  cannot connect or subscribe with the current certificate
  3  not due (notice/auto mode; one line on stdout)
  4  rejected by the bridge or the broker (errorCode: errorMessage on stdout)
  5  gave up after --attempts or --max-wait (the next run sends the same CSR)
  6  the new certificate failed verification, or the new key, CSR or
     certificate could not be made or stored
  7  the broker refused the new certificate (the old pair is still in place)

Files beside --out-cert / --out-key:
  <key>.pending <cert>.csr  the new key (0600) and its CSR until answered;
                            the next run resumes them
  <key>.new <cert>.new      the new pair until the broker has accepted it
  <key>.prev <cert>.prev    the pair in use before the last renewal
)";

enum class Mode { kAuto, kNotice, kNow };

struct Config {
  MqttOptions mqtt;
  std::string id;
  std::string prefix = "$enroll";
  Mode mode = Mode::kAuto;
  int wait_s = 10;
  int timeout_s = 30;
  int max_wait_s = 600;
  int attempts = 5;
  int jitter_s = 0;
  KeyType key_type = KeyType::kEcP256;
  std::string out_cert;
  std::string out_key;
};

struct Topics {
  std::string subscription;  // {prefix}/{id}/#
  std::string request;       // {prefix}/{id}/simplereenroll
  std::string accepted;
  std::string rejected;
  std::string notice;
  std::string reply_prefix;  // MQTT 5 Response Topics: {prefix}/{id}/reply/<requestId>
};

// The request being renewed: the new key, its CSR and what goes on the wire.
struct Request {
  EvpPkeyPtr key;
  X509ReqPtr csr;
  std::string id;  // requestId, derived from the CSR
  std::string payload;
  std::string response_topic;  // MQTT 5
  std::string correlation;     // MQTT 5, random for this run
};

void Log(const std::string& line) { std::fprintf(stderr, "certacl-device-renew: %s\n", line.c_str()); }

std::string Seconds(long long s) { return std::to_string(s) + " s"; }

// One topic level that is safe in every topic we build: no wildcard, no '/'.
bool TopicSafe(std::string_view level) {
  return !level.empty() && level.find_first_of(std::string_view("/+#\0", 4)) == std::string_view::npos;
}

// The prefix may have several levels ("certacl/enroll"), none empty.
bool PrefixSafe(std::string_view prefix) {
  for (size_t start = 0;;) {
    const size_t slash = prefix.find('/', start);
    if (!TopicSafe(prefix.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start))) {
      return false;
    }
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

bool ParseInt(std::string_view text, int lo, int hi, int& out) {
  int v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi) return false;
  out = v;
  return true;
}

// nullopt after printing why on a usage error; `help` for --help.
std::optional<Config> ParseArgs(int argc, char** argv, bool& help) {
  Config c;
  bool have_host = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view opt = argv[i];
    if (opt == "-h" || opt == "--help") {
      help = true;
      return c;
    }
    if (i + 1 >= argc) {
      Log("missing value for " + std::string(opt) + " (see --help)");
      return std::nullopt;
    }
    const std::string value = argv[++i];
    bool ok = true;
    if (opt == "--host") {
      c.mqtt.host = value;
      have_host = !value.empty();
    } else if (opt == "--port") {
      ok = ParseInt(value, 1, 65535, c.mqtt.port);
    } else if (opt == "--cafile") {
      c.mqtt.cafile = value;
    } else if (opt == "--cert") {
      c.mqtt.certfile = value;
    } else if (opt == "--key") {
      c.mqtt.keyfile = value;
    } else if (opt == "--client-id") {
      c.mqtt.client_id = value;
    } else if (opt == "--id") {
      c.id = value;
      ok = TopicSafe(value);
    } else if (opt == "--prefix") {
      c.prefix = value;
      ok = PrefixSafe(value);
    } else if (opt == "--mqtt") {
      ok = value == "5" || value == "311";
      c.mqtt.v5 = value == "5";
    } else if (opt == "--mode") {
      ok = value == "auto" || value == "notice" || value == "now";
      c.mode = value == "now" ? Mode::kNow : value == "notice" ? Mode::kNotice : Mode::kAuto;
    } else if (opt == "--wait") {
      ok = ParseInt(value, 0, 86400, c.wait_s);
    } else if (opt == "--timeout") {
      ok = ParseInt(value, 1, 3600, c.timeout_s);
    } else if (opt == "--max-wait") {
      ok = ParseInt(value, 1, 7 * 86400, c.max_wait_s);
    } else if (opt == "--attempts") {
      ok = ParseInt(value, 1, 100, c.attempts);
    } else if (opt == "--jitter") {
      ok = ParseInt(value, 0, 86400, c.jitter_s);
    } else if (opt == "--key-type") {
      const auto type = ParseKeyType(value);
      ok = type.has_value();
      if (ok) c.key_type = *type;
    } else if (opt == "--out-cert") {
      c.out_cert = value;
    } else if (opt == "--out-key") {
      c.out_key = value;
    } else {
      Log("unknown option " + std::string(opt) + " (see --help)");
      return std::nullopt;
    }
    if (!ok) {
      Log("bad value for " + std::string(opt) + ": '" + value + "' (see --help)");
      return std::nullopt;
    }
  }
  if (!have_host || c.mqtt.cafile.empty() || c.mqtt.certfile.empty() || c.mqtt.keyfile.empty()) {
    Log("--host, --cafile, --cert and --key are required (see --help)");
    return std::nullopt;
  }
  if (c.out_cert.empty()) c.out_cert = c.mqtt.certfile;
  if (c.out_key.empty()) c.out_key = c.mqtt.keyfile;
  return c;
}

Topics MakeTopics(const std::string& prefix, const std::string& id) {
  const std::string base = prefix + "/" + id + "/";
  return Topics{base + "#",
                base + "simplereenroll",
                base + "simplereenroll/accepted",
                base + "simplereenroll/rejected",
                base + "notice",
                base + "reply/"};
}

// Seconds to wait before the n-th retry when the bridge named no retryAfter:
// 5, 10, 20 ... at most 300, each with random jitter (half to all of it) so a
// fleet does not retry in step.
long long Backoff(int n) {
  static std::mt19937 rng(std::random_device{}());
  const double base = std::min(300.0, 5.0 * std::pow(2.0, std::max(0, n - 1)));
  return static_cast<long long>(std::ceil(base * std::uniform_real_distribution<double>(0.5, 1.0)(rng)));
}

Clock::time_point After(long long seconds) { return Clock::now() + std::chrono::seconds(seconds); }

bool ConnectAndSubscribe(MqttLink& link, const Topics& t, Clock::time_point deadline) {
  const int connack = link.Connect(deadline);
  if (connack != 0) {
    Log("cannot connect: " + link.error());
    return false;
  }
  // Before any publish: the answers are not retained.
  if (!link.Subscribe(t.subscription, deadline)) {
    Log("cannot subscribe: " + link.error());
    return false;
  }
  Log("connected, subscribed to " + t.subscription);
  return true;
}

// --- 2. deciding -------------------------------------------------------------

enum class Decision { kRenew, kNotDue, kConnectionLost };

Decision Decide(MqttLink& link, const Config& cfg, const Topics& t, X509* current, std::string& why_not) {
  if (cfg.mode == Mode::kNow) {
    Log("--mode now: renewing");
    return Decision::kRenew;
  }
  const double elapsed = ElapsedLifetime(current);
  const std::string percent = std::to_string(static_cast<int>(elapsed * 100)) + "%";
  if (cfg.mode == Mode::kAuto && elapsed >= 2.0 / 3.0) {
    Log(percent + " of the certificate's lifetime has passed (2/3 or more): renewing");
    return Decision::kRenew;
  }
  // The plugin sends the notice once per connection, directly to us: it may
  // have arrived before the SUBACK and already be waiting in the inbox.
  Log("waiting up to " + Seconds(cfg.wait_s) + " for a renewal notice on " + t.notice);
  const auto until = After(cfg.wait_s);
  while (std::optional<MqttMessage> m = link.Receive(until)) {
    if (m->topic != t.notice) continue;
    const std::optional<JsonObject> notice = ParseJsonObject(m->payload);
    Log("renewal notice: renewFrom " + (notice ? notice->String("renewFrom") : "?") + ", notAfter " +
        (notice ? notice->String("notAfter") : "?") + ": renewing");
    return Decision::kRenew;
  }
  if (!link.connected()) {
    Log("connection lost while waiting for a notice: " + link.error());
    return Decision::kConnectionLost;
  }
  why_not = "no renewal notice within " + Seconds(cfg.wait_s) + ", " + percent + " of the lifetime passed";
  return Decision::kNotDue;
}

// --- 3. the key and the CSR ------------------------------------------------------
// Kept in <out-key>.pending (0600) and <out-cert>.csr until the request is
// answered for good, so that a retry after a restart sends the same CSR: the
// bridge then joins the request in flight instead of issuing twice.

std::string PendingKeyPath(const Config& cfg) { return cfg.out_key + ".pending"; }
std::string PendingCsrPath(const Config& cfg) { return cfg.out_cert + ".csr"; }

void DiscardPending(const Config& cfg) {
  std::string error;
  if (!RemoveDurably(PendingKeyPath(cfg), error) || !RemoveDurably(PendingCsrPath(cfg), error)) Log(error);
}

void FinishRequest(Request& req, const Config& cfg, const Topics& t) {
  req.id = RequestIdFor(req.csr.get());
  req.payload = "{\"requestId\": " + JsonQuote(req.id) + ", \"csr\": " + JsonQuote(CsrPem(req.csr.get())) + "}";
  if (cfg.mqtt.v5) {
    req.response_topic = t.reply_prefix + req.id;
    req.correlation = RandomBytes(16);
  }
}

// The request of an earlier run, if its files are there and still fit the
// current certificate.
std::optional<Request> LoadPending(const Config& cfg, const Topics& t, X509* current) {
  if (!FileExists(PendingKeyPath(cfg)) && !FileExists(PendingCsrPath(cfg))) return std::nullopt;
  std::string error;
  const std::optional<std::string> key_pem = ReadFile(PendingKeyPath(cfg), error);
  const std::optional<std::string> csr_pem = ReadFile(PendingCsrPath(cfg), error);
  Request req;
  if (key_pem) req.key = ReadPrivateKeyPem(*key_pem);
  if (csr_pem) req.csr = ReadCsrPem(*csr_pem);
  if (req.key == nullptr || req.csr == nullptr || !CsrFits(req.csr.get(), current, req.key.get())) {
    Log("discarding the pending request files (" + PendingKeyPath(cfg) + ", " + PendingCsrPath(cfg) +
        "): incomplete or not for the current certificate");
    OpenSslErrors();
    DiscardPending(cfg);
    return std::nullopt;
  }
  if (SameKey(X509_get0_pubkey(current), req.key.get())) {
    Log("discarding the pending request files: their key is the current certificate's (already renewed)");
    DiscardPending(cfg);
    return std::nullopt;
  }
  FinishRequest(req, cfg, t);
  Log("resuming request " + req.id + " of an earlier run (same " + KeyDescription(req.key.get()) + " key, same CSR)");
  return req;
}

std::optional<Request> NewRequest(const Config& cfg, const Topics& t, X509* current) {
  Request req;
  req.key = GenerateKey(cfg.key_type);
  if (req.key == nullptr) {
    Log("cannot generate a key: " + OpenSslErrors());
    return std::nullopt;
  }
  req.csr = MakeRenewalCsr(current, req.key.get());
  if (req.csr == nullptr) {
    Log("cannot make the CSR: " + OpenSslErrors());
    return std::nullopt;
  }
  FinishRequest(req, cfg, t);
  std::string error;
  if (!WriteFileDurably(PendingKeyPath(cfg), PrivateKeyPem(req.key.get()), 0600, error) ||
      !WriteFileDurably(PendingCsrPath(cfg), CsrPem(req.csr.get()), 0644, error)) {
    Log("cannot store the new key and CSR: " + error);
    return std::nullopt;
  }
  Log("new " + KeyDescription(req.key.get()) + " key and CSR (Subject and subjectAltName of the current certificate), request " +
      req.id + "; kept in " + PendingKeyPath(cfg) + " and " + PendingCsrPath(cfg) + " until answered");
  return req;
}

// --- 4. the exchange -------------------------------------------------------------

bool Retryable(const std::string& error_code) {
  return error_code == "UpstreamUnavailable" || error_code == "RateLimited" || error_code == "NotYetRenewable" ||
         error_code == "InternalError";
}

// The body of `m` if it answers `req`. MQTT 5: by Correlation Data when the
// answer carries one. Otherwise (MQTT 3.1.1, or an answer without it) by
// requestId on the answer topics.
std::optional<JsonObject> MatchAnswer(const MqttMessage& m, const Topics& t, const Request& req) {
  if (m.topic == t.request || m.topic == t.notice) return std::nullopt;  // our own request (MQTT 3.1.1), a notice
  const bool by_correlation = !req.correlation.empty() && !m.correlation.empty();
  if (by_correlation && m.correlation != req.correlation) return std::nullopt;
  if (!by_correlation && m.topic != t.accepted && m.topic != t.rejected && m.topic != req.response_topic) {
    return std::nullopt;
  }
  std::optional<JsonObject> body = ParseJsonObject(m.payload);
  if (!body) {
    Log("ignoring a message that is not a JSON object on " + m.topic);
    return std::nullopt;
  }
  if (!by_correlation && body->String("requestId") != req.id) return std::nullopt;
  if (body->String("certificatePem").empty() && body->String("errorCode").empty()) {
    Log("ignoring an answer with neither certificatePem nor errorCode on " + m.topic);
    return std::nullopt;
  }
  return body;
}

// Sends `req` until it is accepted (kRenewed, `accepted` set) or refused
// for good (kRejected), or the retries run out (kGaveUp).
int Exchange(MqttLink& link, const Config& cfg, const Topics& t, const Request& req, JsonObject& accepted) {
  const auto give_up_at = After(cfg.max_wait_s);
  int counted = 0;          // sends counted against --attempts
  bool next_counts = true;  // false for the resend after RequestPending
  bool awaiting = false;    // sent, no answer yet: at next_send it is overdue
  auto next_send = Clock::now();
  std::string last_problem = "none";
  for (;;) {
    if (Clock::now() >= give_up_at) {
      Log("giving up: no certificate within --max-wait " + Seconds(cfg.max_wait_s) + " (last: " + last_problem + ")");
      return kGaveUp;
    }
    if (Clock::now() >= next_send) {
      if (next_counts && counted >= cfg.attempts) {
        Log("giving up after " + std::to_string(counted) + " attempts (last: " + last_problem + ")");
        return kGaveUp;
      }
      if (next_counts) ++counted;
      const auto step_deadline = std::min(After(cfg.timeout_s), give_up_at);
      if (!link.connected()) {
        Log("reconnecting");
        if (!ConnectAndSubscribe(link, t, step_deadline)) {
          last_problem = "reconnect: " + link.error();
          next_send = After(Backoff(counted));
          next_counts = true;
          continue;
        }
      }
      Log("sending request " + req.id + " on " + t.request +
          (next_counts ? " (attempt " + std::to_string(counted) + " of " + std::to_string(cfg.attempts) + ")"
                       : " (same CSR, after RequestPending)") +
          (req.response_topic.empty() ? "" : ", answer to " + req.response_topic));
      const int puback = link.Publish(t.request, req.payload, req.response_topic, req.correlation, step_deadline);
      if (puback == MqttLink::kNoAnswer) {
        last_problem = "publish: " + link.error();
        Log(last_problem);
        next_send = After(Backoff(counted));
        next_counts = true;
        continue;
      }
      if (puback >= 0x80) {
        Log("is " + t.request + " this device's own request topic (--id, --prefix)?");
        std::printf("rejected: the broker refused the request: PUBACK %d (%s)\n", puback, mosquitto_reason_string(puback));
        return kRejected;
      }
      next_send = After(cfg.timeout_s);  // no answer by then: send again
      next_counts = true;
      awaiting = true;
      last_problem = "no answer within " + Seconds(cfg.timeout_s);
    }

    if (!link.connected()) {
      // Nothing to listen to: wait for the next send, which reconnects first.
      std::this_thread::sleep_until(std::min(next_send, give_up_at));
      continue;
    }
    std::optional<MqttMessage> m = link.Receive(std::min(next_send, give_up_at));
    if (!m) {
      if (!link.connected()) {
        last_problem = link.error();
        Log("connection lost while waiting for the answer: " + last_problem);
        next_send = std::min(next_send, After(Backoff(counted)));
      } else if (awaiting && Clock::now() >= next_send) {
        Log(last_problem);
      }
      awaiting = false;
      continue;
    }
    std::optional<JsonObject> body = MatchAnswer(*m, t, req);
    if (!body) continue;
    awaiting = false;
    if (!body->String("certificatePem").empty()) {
      Log("accepted: certificate " + body->String("serialNumber") + ", notAfter " + body->String("notAfter"));
      accepted = std::move(*body);
      return kRenewed;
    }
    const std::string code = body->String("errorCode");
    const long long retry_after =
        static_cast<long long>(std::clamp(body->Number("retryAfter").value_or(0.0), 0.0, 30.0 * 86400));
    Log("answer: " + code + " (" + std::to_string(static_cast<int>(body->Number("statusCode").value_or(0))) + "): " +
        body->String("errorMessage") + (retry_after > 0 ? ", retryAfter " + Seconds(retry_after) : ""));
    if (code == "RequestPending") {
      // The bridge also delivers the certificate by itself when the CA
      // issues it: keep listening, and send the same CSR at retryAfter.
      const long long wait = retry_after > 0 ? retry_after : 60;
      next_send = After(wait);
      next_counts = false;
      last_problem = "RequestPending";
      Log("the CA has not issued yet: listening, same CSR again in " + Seconds(wait) +
          (next_send > give_up_at ? " (beyond --max-wait: listening until --max-wait runs out)" : ""));
      continue;
    }
    if (Retryable(code)) {
      const long long wait = retry_after > 0 ? retry_after : Backoff(counted);
      last_problem = code;
      if (counted >= cfg.attempts) {
        Log("giving up after " + std::to_string(counted) + " attempts (last: " + code + ")");
        return kGaveUp;
      }
      if (After(wait) > give_up_at) {
        Log("giving up: the next try, in " + Seconds(wait) + ", would be after --max-wait");
        return kGaveUp;
      }
      Log("retrying in " + Seconds(wait));
      next_send = After(wait);
      next_counts = true;
      continue;
    }
    std::printf("rejected: %s: %s\n", code.c_str(), body->String("errorMessage").c_str());
    return kRejected;
  }
}

// --- 5. and 6. checking, storing, switching -------------------------------------------

int StoreAndSwitch(const Config& cfg, X509* current, const Request& req, const JsonObject& answer,
                   std::string& summary) {
  // The leaf is the certificate with our key; the rest is chain.
  std::vector<X509Ptr> certs = ReadCertificatesPem(answer.String("certificatePem"));
  std::vector<X509Ptr> chain = ReadCertificatesPem(answer.String("chainPem"));
  X509Ptr issued;
  for (X509Ptr& c : certs) {
    if (issued == nullptr && SameKey(X509_get0_pubkey(c.get()), req.key.get())) {
      issued = std::move(c);
    } else {
      chain.push_back(std::move(c));
    }
  }
  if (issued == nullptr) {
    Log("the new certificate failed verification: certificatePem holds no certificate for our key");
    DiscardPending(cfg);
    return kBadCertificate;
  }
  const IssuedCheck check = CheckIssued(issued.get(), chain, req.key.get(), current, cfg.mqtt.cafile);
  for (const std::string& w : check.warnings) Log("warning: new certificate: " + w);
  if (!check.error.empty()) {
    Log("the new certificate failed verification: " + check.error);
    DiscardPending(cfg);
    return kBadCertificate;
  }
  const std::string serial = SerialHex(issued.get());
  if (!answer.String("serialNumber").empty() && answer.String("serialNumber") != serial) {
    Log("warning: serialNumber " + answer.String("serialNumber") + " of the answer is not the certificate's " + serial);
  }
  Log("new certificate verified: serial " + serial + ", notAfter " + NotAfterText(issued.get()));

  // Beside the current pair first; nothing in use is touched yet.
  const std::string new_cert = cfg.out_cert + ".new";
  const std::string new_key = cfg.out_key + ".new";
  std::string error;
  if (!WriteFileDurably(new_key, PrivateKeyPem(req.key.get()), 0600, error) ||
      !WriteFileDurably(new_cert, ClientCertificateFilePem(issued.get(), chain), 0644, error)) {
    Log("cannot store the new certificate: " + error + " (the request files are kept: the next run gets the same answer)");
    return kBadCertificate;
  }
  Log("wrote " + new_cert + " and " + new_key + " (0600)");

  // 6. The broker must take the new pair before it replaces the old one.
  MqttOptions probe = cfg.mqtt;
  probe.certfile = new_cert;
  probe.keyfile = new_key;
  {
    MqttLink link(probe);
    const int connack = link.Connect(After(cfg.timeout_s));
    if (connack != 0) {
      Log("the broker refused the new certificate: " + link.error() + "; the current pair stays in place, the new one is in " +
          new_cert + " and " + new_key);
      DiscardPending(cfg);
      return kBrokerRefused;
    }
    link.Disconnect(After(cfg.timeout_s));
    Log("the broker accepts the new certificate (CONNACK 0)");
  }

  // Keep the pair we connected with as .prev, then the key and the
  // certificate into place, each by an atomic rename (the key first: see
  // FinishInterruptedSwitch for a power cut between the two).
  const std::optional<std::string> old_cert = ReadFile(cfg.mqtt.certfile, error);
  const std::optional<std::string> old_key = old_cert ? ReadFile(cfg.mqtt.keyfile, error) : std::nullopt;
  if (!old_key || !WriteFileDurably(cfg.out_cert + ".prev", *old_cert, 0644, error) ||
      !WriteFileDurably(cfg.out_key + ".prev", *old_key, 0600, error) || !RenameDurably(new_key, cfg.out_key, error) ||
      !RenameDurably(new_cert, cfg.out_cert, error)) {
    Log("cannot put the new certificate in place: " + error);
    return kBadCertificate;
  }
  Log("installed " + cfg.out_cert + " and " + cfg.out_key + "; the previous pair is in " + cfg.out_cert + ".prev and " +
      cfg.out_key + ".prev");
  DiscardPending(cfg);
  summary = "renewed " + cfg.id + ": serial " + SerialHex(current) + " -> " + serial + ", notAfter " + NotAfterText(issued.get());
  return kRenewed;
}

// A power cut between the two renames above leaves the new key in place,
// the old certificate beside it and <out-cert>.new: finish the switch.
void FinishInterruptedSwitch(const Config& cfg) {
  const std::string new_cert = cfg.out_cert + ".new";
  if (!FileExists(new_cert) || FileExists(cfg.out_key + ".new")) return;
  std::string error;
  const std::optional<std::string> key_pem = ReadFile(cfg.out_key, error);
  const std::optional<std::string> new_pem = ReadFile(new_cert, error);
  const std::optional<std::string> cur_pem = ReadFile(cfg.out_cert, error);
  if (!key_pem || !new_pem) return;
  EvpPkeyPtr key = ReadPrivateKeyPem(*key_pem);
  std::vector<X509Ptr> fresh = ReadCertificatesPem(*new_pem);
  std::vector<X509Ptr> cur = cur_pem ? ReadCertificatesPem(*cur_pem) : std::vector<X509Ptr>();
  OpenSslErrors();
  if (key == nullptr || fresh.empty() || !SameKey(X509_get0_pubkey(fresh[0].get()), key.get())) return;
  if (!cur.empty() && SameKey(X509_get0_pubkey(cur[0].get()), key.get())) return;
  if (RenameDurably(new_cert, cfg.out_cert, error)) {
    Log("finished an interrupted switch: " + new_cert + " -> " + cfg.out_cert);
  } else {
    Log(error);
  }
}

int Run(Config cfg) {
  FinishInterruptedSwitch(cfg);

  // 1. Who we are, from the certificate the CA issued.
  std::string error;
  const std::optional<std::string> cert_pem = ReadFile(cfg.mqtt.certfile, error);
  if (!cert_pem) {
    Log(error);
    return kUsageError;
  }
  std::vector<X509Ptr> certs = ReadCertificatesPem(*cert_pem);
  if (certs.empty()) {
    Log("no certificate in " + cfg.mqtt.certfile);
    return kUsageError;
  }
  X509* current = certs[0].get();
  const std::string cn = CommonName(current);
  if (cfg.id.empty()) cfg.id = cn;
  if (cfg.mqtt.client_id.empty()) cfg.mqtt.client_id = cn;
  if (!TopicSafe(cfg.id) || cfg.mqtt.client_id.empty()) {
    Log("the certificate's CN '" + cn + "' cannot be the identity: give --id and --client-id");
    return kUsageError;
  }
  const Topics t = MakeTopics(cfg.prefix, cfg.id);
  Log("current certificate: CN " + cn + ", serial " + SerialHex(current) + ", notAfter " + NotAfterText(current) + ", " +
      std::to_string(static_cast<int>(ElapsedLifetime(current) * 100)) + "% of its lifetime passed; identity " + cfg.id);
  if (ElapsedLifetime(current) >= 1.0) {
    Log("warning: the certificate has expired: the broker will refuse it (the device needs its recovery path)");
  }

  if (cfg.jitter_s > 0) {
    std::mt19937 rng(std::random_device{}());
    const int delay = std::uniform_int_distribution<int>(0, cfg.jitter_s)(rng);
    Log("sleeping " + Seconds(delay) + " (--jitter)");
    std::this_thread::sleep_for(std::chrono::seconds(delay));
  }

  MqttLink link(cfg.mqtt);
  if (!ConnectAndSubscribe(link, t, After(cfg.timeout_s))) return kCannotConnect;

  // 2. and 3. An unanswered request of an earlier run is resumed as it is.
  std::optional<Request> req = LoadPending(cfg, t, current);
  if (!req) {
    std::string why_not;
    switch (Decide(link, cfg, t, current, why_not)) {
      case Decision::kRenew: break;
      case Decision::kConnectionLost: return kCannotConnect;
      case Decision::kNotDue:
        link.Disconnect(After(cfg.timeout_s));
        std::printf("not due: %s\n", why_not.c_str());
        return kNotDue;
    }
    req = NewRequest(cfg, t, current);
    if (!req) return kBadCertificate;
  }

  // 4.
  JsonObject accepted;
  const int rc = Exchange(link, cfg, t, *req, accepted);
  link.Disconnect(After(cfg.timeout_s));
  if (rc == kRejected) DiscardPending(cfg);
  if (rc == kGaveUp) {
    Log("the key and CSR stay in " + PendingKeyPath(cfg) + " and " + PendingCsrPath(cfg) +
        ": the next run sends the same request");
  }
  if (rc != kRenewed) return rc;

  // 5. and 6.
  std::string summary;
  const int stored = StoreAndSwitch(cfg, current, *req, accepted, summary);
  if (stored == kRenewed) std::printf("%s\n", summary.c_str());
  return stored;
}

}  // namespace
}  // namespace device_renew

int main(int argc, char** argv) {
  using namespace device_renew;
  bool help = false;
  std::optional<Config> cfg = ParseArgs(argc, argv, help);
  if (help) {
    std::fputs(kUsage, stdout);
    return kRenewed;
  }
  if (!cfg) return kUsageError;
  signal(SIGPIPE, SIG_IGN);  // a broker closing the socket must be an error code, not a signal
  MosquittoLibrary library;
  return Run(std::move(*cfg));
}
