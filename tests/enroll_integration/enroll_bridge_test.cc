// End-to-end tests of certificate renewal over MQTT (docs/enroll.md): a real
// mosquitto with the certacl plugin ([enroll] on), the real
// certacl-enroll-bridge program, a real EST server (tests/testing/
// est_server.h) or the bridge's local CA, and libmosquitto devices speaking
// MQTT 3.1.1 and 5. Every test asserts exact outcomes: which answer arrives
// on which topic with which errorCode, how many certificates the CA issued,
// and that a renewed device connects with its new certificate and keeps its
// permissions.
//
// Everything binds 127.0.0.1 only and every wait is bounded.
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/broker.h"
#include "tests/integration/client.h"
#include "tests/integration/peers.h"
#include "tests/integration/pki.h"
#include "tests/testing/est_server.h"

namespace certacl::integration {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using testing::EstTestServer;
using testing::EstTestServerOptions;
using X509ReqPtr = OpenSslPtr<X509_REQ, X509_REQ_free>;

constexpr int kNotAuthorized = 0x87;
// How long a device waits for the bridge's answer (a TLS round trip to the
// CA and back; generous for sanitizer builds).
constexpr milliseconds kAnswer{15000};

std::string BridgeBinary() {
#ifdef CERTACL_ENROLL_BRIDGE
  return CERTACL_ENROLL_BRIDGE;
#else
  return "";
#endif
}

constexpr const char* kPolicy = R"(version = 1

[connect]
client_id = "${subject.CN}"

[enroll]
prefix = "$enroll"

[[role]]
name = "smart-meter"
match."subject.O"  = "Acme Utilities"
match."subject.OU" = "meter"
publish   = ["meters/${subject.L}/${subject.CN}/reading", "$enroll/${subject.CN}/+"]
subscribe = ["meters/${subject.L}/${subject.CN}/cmd/#", "$enroll/${subject.CN}/#"]

[[role]]
name = "enroll-bridge"
match."subject.O"  = "Acme Utilities"
match."subject.OU" = "enroll-bridge"
subscribe = ["certacl/enroll-requests/+/+", "certacl/enroll-bridges/jobs/+"]
publish   = ["$enroll/+/+/#", "certacl/enroll-bridges/jobs/+"]
)";

std::string ToPem(X509_REQ* req) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), req);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string KeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

X509Ptr ReadCert(const std::string& file) {
  BioPtr bio(BIO_new_file(file.c_str(), "r"));
  return X509Ptr(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
}

X509Ptr CertFromPem(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

// A renewal CSR as a device builds it: Subject and subjectAltName copied from
// its current certificate. `subject_from` overrides the names' source;
// `sign_with` signs with another key than the CSR's (no proof of possession).
std::string RenewalCsr(X509* current, EVP_PKEY* key, X509* subject_from = nullptr, EVP_PKEY* sign_with = nullptr) {
  X509* names = subject_from ? subject_from : current;
  X509ReqPtr req(X509_REQ_new());
  X509_REQ_set_version(req.get(), 0);
  X509_REQ_set_subject_name(req.get(), X509_get_subject_name(names));
  X509_REQ_set_pubkey(req.get(), key);
  const int idx = X509_get_ext_by_NID(names, NID_subject_alt_name, -1);
  if (idx >= 0) {
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    sk_X509_EXTENSION_push(exts, X509_EXTENSION_dup(X509_get_ext(names, idx)));
    X509_REQ_add_extensions(req.get(), exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  }
  X509_REQ_sign(req.get(), sign_with ? sign_with : key, EVP_sha256());
  return ToPem(req.get());
}

// The DER of an extendedKeyUsage extension value with these OIDs.
std::string EkuDer(const std::vector<const char*>& oids) {
  EXTENDED_KEY_USAGE* eku = sk_ASN1_OBJECT_new_null();
  for (const char* oid : oids) sk_ASN1_OBJECT_push(eku, OBJ_txt2obj(oid, 1));
  unsigned char* der = nullptr;
  const int n = i2d_EXTENDED_KEY_USAGE(eku, &der);
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(n > 0 ? n : 0));
  OPENSSL_free(der);
  sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
  return out;
}

std::string Request(const std::string& request_id, const std::string& csr) {
  return json{{"requestId", request_id}, {"csr", csr}}.dump();
}

// The bridge program under a guardian, its log in the test directory.
class BridgeProcess {
 public:
  BridgeProcess(std::string config, std::string log) : config_(std::move(config)), log_(std::move(log)) {}

  bool Start(std::string* error) { return process_.Spawn({BridgeBinary(), "--config", config_}, log_, error); }
  void Stop() { process_.Stop(); }
  bool running() { return process_.running(); }
  int exit_status() const { return process_.exit_status(); }
  std::string Log() const { return ReadFile(log_); }
  // Occurrences of `needle` in the log so far.
  int Count(const std::string& needle) const {
    const std::string log = Log();
    int n = 0;
    for (size_t pos = log.find(needle); pos != std::string::npos; pos = log.find(needle, pos + 1)) ++n;
    return n;
  }
  bool WaitForLog(const std::string& needle, int times = 1, milliseconds timeout = kAnswer) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (Count(needle) >= times) return true;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return false;
  }
  // SIGTERM, as systemd stops it: the bridge must exit 0 (under the
  // sanitizers, after LeakSanitizer's check). Its exit status, or -1.
  int Terminate(milliseconds timeout = kAnswer) {
    if (!process_.running()) return process_.exit_status();
    kill(process_.pid(), SIGTERM);
    return WaitExit(timeout);
  }
  // Reports of a sanitizer build of the bridge in its log ("" if none).
  std::string SanitizerReports() const {
    const std::string log = Log();
    for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer",
                               "runtime error:"}) {
      if (const size_t at = log.find(marker); at != std::string::npos) return log.substr(at, 4000);
    }
    return "";
  }
  // Waits for the program to exit on its own; its exit status, or -1.
  int WaitExit(milliseconds timeout = kAnswer) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!process_.running()) return process_.exit_status();
      std::this_thread::sleep_for(milliseconds(20));
    }
    return -1;
  }

 private:
  std::string config_;
  std::string log_;
  GuardedProcess process_;
};

class EnrollBridgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (PluginPath().empty() || access(PluginPath().c_str(), R_OK) != 0 || BridgeBinary().empty()) {
      GTEST_SKIP() << "the plugin or the bridge is not built";
    }
    pki_ = std::make_unique<Pki>(dir_.path());
    ca_key_file_ = dir_.path() + "/pki/issuing-ca-key.pem";
    WriteFile(ca_key_file_, KeyPem(pki_->issuing().key.get()));
    WriteFile(dir_.path() + "/policy.toml", kPolicy);
    BrokerOptions o;
    o.dir = dir_.path();
    o.plugin = {.path = PluginPath(), .policy = dir_.path() + "/policy.toml"};
    ListenerOptions l;
    l.cafile = pki_->ca_bundle();
    l.certfile = pki_->server().cert;
    l.keyfile = pki_->server().key;
    o.listeners.push_back(l);
    broker_ = std::make_unique<Broker>(o);
    ASSERT_TRUE(broker_->Start()) << broker_->Log();
  }

  void TearDown() override {
    for (const auto& b : bridges_) {
      if (b->running()) {
        EXPECT_EQ(b->Terminate(), 0) << b->Log();
      }
      EXPECT_EQ(b->SanitizerReports(), "");
    }
    bridges_.clear();
    if (HasFailure() && broker_) std::fprintf(stderr, "--- broker log ---\n%s\n", broker_->Log().c_str());
  }

  CertFiles BridgeCert(const std::string& cn) {
    return pki_->Device(cn, {.cn = cn, .o = "Acme Utilities", .ou = "enroll-bridge"});
  }

  // bridge.toml with the [mqtt] table for `cn` plus `backend` (the rest).
  std::string BridgeConfig(const std::string& cn, const std::string& backend, const std::string& extra = "") {
    const CertFiles cert = BridgeCert(cn);
    std::ostringstream s;
    s << "[mqtt]\nhost = \"127.0.0.1\"\nport = " << broker_->port() << "\ncafile = \"" << pki_->ca_bundle()
      << "\"\ncertfile = \"" << cert.cert << "\"\nkeyfile = \"" << cert.key << "\"\nprefix = \"$enroll\"\n"
      << backend << extra;
    const std::string path = dir_.path() + "/" + cn + ".toml";
    WriteFile(path, s.str());
    return path;
  }
  std::string LocalCaBackend() const {
    return "[backend]\nkind = \"local-ca\"\n[local_ca]\ncertfile = \"" + pki_->issuing_ca() + "\"\nkeyfile = \"" +
           ca_key_file_ + "\"\ndays = 30\n";
  }
  std::string EstBackend(EstTestServer& est) {
    const std::string ca = dir_.path() + "/est-server-ca.pem";
    WriteFile(ca, est.TlsCaPem());
    return "[backend]\nkind = \"est\"\n[est]\nurl = \"" + est.url() + "\"\ncafile = \"" + ca + "\"\ntimeout = \"5s\"\n";
  }

  BridgeProcess& StartBridge(const std::string& config) {
    const std::string name = "bridge-" + std::to_string(bridges_.size() + 1);
    bridges_.push_back(std::make_unique<BridgeProcess>(config, dir_.path() + "/" + name + ".log"));
    BridgeProcess& b = *bridges_.back();
    std::string error;
    EXPECT_TRUE(b.Start(&error)) << error;
    EXPECT_TRUE(b.WaitForLog("ready: subscribed")) << b.Log();
    return b;
  }

  std::unique_ptr<EstTestServer> StartEst(EstTestServerOptions options = {}) {
    auto est = std::make_unique<EstTestServer>(pki_->issuing().cert.get(), pki_->issuing().key.get(), options);
    std::string error;
    EXPECT_TRUE(est->Start(&error)) << error;
    return est;
  }

  ClientOptions Opts(const CertFiles& f, const std::string& id, Mqtt v) {
    ClientOptions o;
    o.id = id;
    o.port = broker_->port();
    o.cafile = pki_->ca_bundle();
    o.certfile = f.cert;
    o.keyfile = f.key;
    o.version = v;
    return o;
  }

  // A connected device subscribed to its own enroll subtree.
  std::unique_ptr<Client> Device(const CertFiles& f, const std::string& cn, Mqtt v) {
    auto c = std::make_unique<Client>(Opts(f, cn, v));
    EXPECT_EQ(c->Connect(), 0) << c->last_error();
    EXPECT_EQ(c->Subscribe("$enroll/" + cn + "/#", 1), 1);
    return c;
  }

  // Sends a request and waits for the answer on .../accepted or .../rejected.
  std::optional<json> Ask(Client& device, const std::string& cn, const std::string& body,
                          const std::string& op = "simplereenroll", int expected_puback = 0) {
    device.ClearMessages();
    EXPECT_EQ(device.Publish("$enroll/" + cn + "/" + op, body, 1), expected_puback);
    return NextAnswer(device, cn, op);
  }

  // Waits for the next answer (after ClearMessages()).
  std::optional<json> NextAnswer(Client& device, const std::string& cn, const std::string& op = "simplereenroll") {
    const std::string accepted = "$enroll/" + cn + "/" + op + "/accepted";
    const std::string rejected = "$enroll/" + cn + "/" + op + "/rejected";
    std::optional<Message> m = device.WaitForMessage(
        [&](const Message& msg) { return msg.topic == accepted || msg.topic == rejected; }, kAnswer);
    if (!m) return std::nullopt;
    device.ClearMessages();
    json j = json::parse(m->payload, nullptr, false);
    j["_topic"] = m->topic;
    return j;
  }

  // Checks an accepted answer against the CSR key and the old certificate,
  // writes the new pair to <stem>-new.pem / -new-key.pem and returns them.
  CertFiles CheckAccepted(const json& a, X509* old_cert, EVP_PKEY* new_key, const std::string& stem) {
    CertFiles out;
    EXPECT_EQ(a.value("_topic", ""), "$enroll/" + stem + "/simplereenroll/accepted") << a.dump();
    X509Ptr leaf = CertFromPem(a.value("certificatePem", ""));
    EXPECT_TRUE(leaf) << a.dump();
    if (!leaf) return out;
    EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(leaf.get()), new_key), 1);
    EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(leaf.get()), X509_get_subject_name(old_cert)), 0);
    EXPECT_EQ(X509_NAME_cmp(X509_get_issuer_name(leaf.get()), X509_get_subject_name(pki_->issuing().cert.get())), 0);
    EXPECT_EQ(X509_verify(leaf.get(), X509_get0_pubkey(pki_->issuing().cert.get())), 1);
    EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(leaf.get()), X509_get0_serialNumber(old_cert)), 0);
    EXPECT_FALSE(a.value("serialNumber", "").empty());
    EXPECT_FALSE(a.value("notAfter", "").empty());
    out.cert = dir_.path() + "/pki/" + stem + "-new.pem";
    out.key = dir_.path() + "/pki/" + stem + "-new-key.pem";
    WriteFile(out.cert, a.value("certificatePem", "") + a.value("chainPem", ""));
    WriteFile(out.key, KeyPem(new_key));
    return out;
  }

  TempDir dir_;
  std::unique_ptr<Pki> pki_;
  std::string ca_key_file_;
  std::unique_ptr<Broker> broker_;
  std::vector<std::unique_ptr<BridgeProcess>> bridges_;
};

// The whole renewal with the local CA, for an MQTT 3.1.1 device: the
// certificate that comes back is for the same identity and the new key, the
// device reconnects with it, and it keeps exactly its permissions.
TEST_F(EnrollBridgeTest, Mqtt311DeviceRenewsReconnectsAndKeepsItsPermissions) {
  BridgeProcess& bridge = StartBridge(BridgeConfig("bridge-1", LocalCaBackend()));
  const CertFiles m1 = pki_->Meter("m-00000001");
  X509Ptr old_cert = ReadCert(m1.cert);
  auto device = Device(m1, "m-00000001", Mqtt::kV311);
  EvpPkeyPtr new_key = certacl::testing::GenerateKey(certacl::testing::KeyType::kEcP256);

  std::optional<json> a = Ask(*device, "m-00000001", Request("r-1", RenewalCsr(old_cert.get(), new_key.get())));
  ASSERT_TRUE(a) << bridge.Log();
  EXPECT_EQ(a->value("requestId", ""), "r-1");
  const CertFiles renewed = CheckAccepted(*a, old_cert.get(), new_key.get(), "m-00000001");
  EXPECT_EQ(bridge.Count("outcome=accepted"), 1) << bridge.Log();
  device.reset();

  Client again(Opts(renewed, "m-00000001", Mqtt::kV5));
  ASSERT_EQ(again.Connect(), 0) << again.last_error() << broker_->Log();
  EXPECT_EQ(again.Subscribe("meters/zurich/m-00000001/cmd/#", 1), 1);
  EXPECT_EQ(again.Subscribe("meters/zurich/m-00000002/cmd/#", 1), kNotAuthorized);
  EXPECT_EQ(again.Publish("meters/zurich/m-00000001/reading", "42", 1), 0x10);  // allowed, nobody listens
  EXPECT_EQ(again.Publish("meters/zurich/m-00000002/reading", "42", 1), kNotAuthorized);
  EXPECT_EQ(again.Publish("$enroll/m-00000002/simplereenroll", "{}", 1), kNotAuthorized);
}

// The example device client (examples/device-client/) does the whole flow
// against the real bridge and plugin: new key, CSR from its certificate,
// request, answer, broker check with the new pair, then the switch.
TEST_F(EnrollBridgeTest, ExampleDeviceClientRenewsAndTheBrokerAcceptsTheNewCertificate) {
#ifndef CERTACL_DEVICE_RENEW
  GTEST_SKIP() << "examples/device-client not built";
#else
  BridgeProcess& bridge = StartBridge(BridgeConfig("bridge-1", LocalCaBackend()));
  const CertFiles m1 = pki_->Meter("m-00000001");
  X509Ptr old_cert = ReadCert(m1.cert);
  for (const char* version : {"5", "311"}) {
    GuardedProcess client;
    const std::string log = dir_.path() + "/device-client-" + version + ".log";
    std::string error;
    ASSERT_TRUE(client.Spawn({CERTACL_DEVICE_RENEW, "--host", "127.0.0.1", "--port", std::to_string(broker_->port()),
                              "--cafile", pki_->ca_bundle(), "--cert", m1.cert, "--key", m1.key, "--mode", "now",
                              "--mqtt", version, "--timeout", "15"},
                             log, &error))
        << error;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (client.running() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(milliseconds(20));
    ASSERT_FALSE(client.running()) << ReadFile(log);
    ASSERT_EQ(client.exit_status(), 0) << ReadFile(log) << bridge.Log();
    X509Ptr renewed = ReadCert(m1.cert);
    ASSERT_TRUE(renewed);
    EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(renewed.get()), X509_get0_serialNumber(old_cert.get())), 0);
    EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(renewed.get()), X509_get_subject_name(old_cert.get())), 0);
    old_cert = std::move(renewed);
  }
  EXPECT_EQ(bridge.Count("outcome=accepted"), 2) << bridge.Log();
  Client again(Opts(m1, "m-00000001", Mqtt::kV5));
  ASSERT_EQ(again.Connect(), 0) << again.last_error();
  EXPECT_EQ(again.Publish("meters/zurich/m-00000001/reading", "42", 1), 0x10);
  EXPECT_EQ(again.Publish("meters/zurich/m-00000002/reading", "42", 1), kNotAuthorized);
#endif
}

// MQTT 5: the answer goes to the device's Response Topic with its
// Correlation Data; a Response Topic outside its own subtree is ignored and
// the default topic used instead.
TEST_F(EnrollBridgeTest, Mqtt5ResponseTopicAndCorrelationData) {
  BridgeProcess& bridge = StartBridge(BridgeConfig("bridge-1", LocalCaBackend()));
  const CertFiles m1 = pki_->Meter("m-00000001");
  X509Ptr c1 = ReadCert(m1.cert);
  auto device = Device(m1, "m-00000001", Mqtt::kV5);
  EvpPkeyPtr key = certacl::testing::GenerateKey(certacl::testing::KeyType::kEcP256);
  PublishProperties props;
  props.response_topic = "$enroll/m-00000001/reply/x1";
  props.correlation_data = std::string("\x00\x01corr\xff", 7);
  EXPECT_EQ(device->Publish("$enroll/m-00000001/simplereenroll", Request("r-1", RenewalCsr(c1.get(), key.get())), 1,
                            false, props),
            0);
  std::optional<Message> answer = device->WaitForMessage("$enroll/m-00000001/reply/x1", kAnswer);
  ASSERT_TRUE(answer) << bridge.Log();
  ASSERT_TRUE(answer->correlation_data.has_value());
  EXPECT_EQ(*answer->correlation_data, std::string("\x00\x01corr\xff", 7));
  EXPECT_EQ(answer->qos, 1);
  EXPECT_FALSE(answer->retain);
  EXPECT_NE(std::find(answer->user_properties.begin(), answer->user_properties.end(),
                      std::pair<std::string, std::string>{"status", "200"}),
            answer->user_properties.end());
  json a = json::parse(answer->payload);
  a["_topic"] = "$enroll/m-00000001/simplereenroll/accepted";
  CheckAccepted(a, c1.get(), key.get(), "m-00000001");

  device->ClearMessages();
  props.response_topic = "$enroll/m-00000002/reply/x2";  // another device's subtree
  EvpPkeyPtr key2 = certacl::testing::GenerateKey(certacl::testing::KeyType::kEcP256);
  EXPECT_EQ(device->Publish("$enroll/m-00000001/simplereenroll", Request("r-2", RenewalCsr(c1.get(), key2.get())), 1,
                            false, props),
            0);
  std::optional<json> fallback = NextAnswer(*device, "m-00000001");
  ASSERT_TRUE(fallback) << bridge.Log();
  EXPECT_EQ(fallback->value("_topic", ""), "$enroll/m-00000001/simplereenroll/accepted");
  EXPECT_EQ(fallback->value("requestId", ""), "r-2");
  EXPECT_EQ(bridge.Count("ignoring response topic"), 1) << bridge.Log();
}

// EST the way a production CA is reached: the bridge authenticates as an RA
// (TLS client certificate with id-kp-cmcRA) and with HTTP Basic, to a server
// capped at TLS 1.2 (like libest) that insists on both.
TEST_F(EnrollBridgeTest, EstAsAnRaWithBasicAuthOverTls12) {
  EstTestServerOptions o;
  o.max_tls_version = TLS1_2_VERSION;
  o.client_certs = EstTestServerOptions::ClientCerts::kRequire;
  o.client_ca = pki_->root().cert.get();
  o.require_ra = true;
  o.username = "estuser";
  o.password = "estpwd";
  auto est = StartEst(o);
  certacl::testing::CertBuilder ra = Pki::Builder({.cn = "enroll-bridge-ra", .o = "Acme Utilities"});
  ra.SignedBy(pki_->issuing().cert.get(), pki_->issuing().key.get());
  ra.Extension("2.5.29.37", EkuDer({"1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.28"}));  // clientAuth, id-kp-cmcRA
  const CertFiles ra_files = pki_->Write("ra", ra);
  // The RA sends its chain; the server trusts the root.
  WriteFile(ra_files.cert, ReadFile(ra_files.cert) + ReadFile(pki_->issuing_ca()));
  const std::string backend = EstBackend(*est) + "certfile = \"" + ra_files.cert + "\"\nkeyfile = \"" + ra_files.key +
                              "\"\nusername = \"estuser\"\npassword = \"estpwd\"\n";
  BridgeProcess& bridge = StartBridge(BridgeConfig("bridge-1", backend));
  EXPECT_EQ(bridge.Count("as RA"), 1) << bridge.Log();
  const CertFiles m1 = pki_->Meter("m-00000001");
  X509Ptr c1 = ReadCert(m1.cert);
  auto device = Device(m1, "m-00000001", Mqtt::kV311);
  EvpPkeyPtr key = certacl::testing::GenerateKey(certacl::testing::KeyType::kEcP256);
  std::optional<json> a = Ask(*device, "m-00000001", Request("r-1", RenewalCsr(c1.get(), key.get())));
  ASSERT_TRUE(a) << bridge.Log();
  CheckAccepted(*a, c1.get(), key.get(), "m-00000001");
  EXPECT_EQ(est->issued(), 1);
  const EstTestServer::Request last = est->last_request();
  EXPECT_EQ(last.tls_version, TLS1_2_VERSION);
  EXPECT_TRUE(last.client_cert);
  ASSERT_NE(last.Header("authorization"), nullptr);
  EXPECT_EQ(*last.Header("authorization"), "Basic ZXN0dXNlcjplc3Rwd2Q=");
}

TEST_F(EnrollBridgeTest, CaCertsAndCsrAttrsAnswerOverMqtt) {
  StartBridge(BridgeConfig("bridge-1", LocalCaBackend()));
  auto device = Device(pki_->Meter("m-00000001"), "m-00000001", Mqtt::kV5);
  std::optional<json> ca = Ask(*device, "m-00000001", R"({"requestId":"c-1"})", "cacerts");
  ASSERT_TRUE(ca);
  EXPECT_EQ(ca->value("_topic", ""), "$enroll/m-00000001/cacerts/accepted");
  EXPECT_EQ(ca->value("requestId", ""), "c-1");
  X509Ptr anchor = CertFromPem(ca->value("caCertificatesPem", ""));
  ASSERT_TRUE(anchor);
  EXPECT_EQ(X509_cmp(anchor.get(), pki_->issuing().cert.get()), 0);
  std::optional<json> attrs = Ask(*device, "m-00000001", "", "csrattrs");
  ASSERT_TRUE(attrs);
  EXPECT_EQ(attrs->value("_topic", ""), "$enroll/m-00000001/csrattrs/accepted");
  EXPECT_EQ(attrs->value("csrAttrs", "x"), "");
}

// Each refusal, with its exact errorCode and statusCode; nothing is issued.
TEST_F(EnrollBridgeTest, EachBadRequestIsRefusedWithItsCode) {
  auto est = StartEst();
  BridgeProcess& bridge = StartBridge(BridgeConfig("bridge-1", EstBackend(*est)));
  const CertFiles m1 = pki_->Meter("m-00000001");
  const CertFiles m2 = pki_->Meter("m-00000002");
  X509Ptr c1 = ReadCert(m1.cert);
  X509Ptr c2 = ReadCert(m2.cert);
  auto device = Device(m1, "m-00000001", Mqtt::kV5);
  EvpPkeyPtr key = certacl::testing::GenerateKey(certacl::testing::KeyType::kEcP256);
  EvpPkeyPtr other = certacl::testing::GenerateKey(certacl::testing::KeyType::kEcP256);
  EvpPkeyPtr weak(EVP_RSA_gen(1024));

  struct Case {
    std::string name;
    std::string body;
    std::string code;
    int status;
  } cases[] = {
      {"another subject", Request("s", RenewalCsr(c1.get(), key.get(), c2.get())), "SubjectMismatch", 403},
      {"bad signature", Request("p", RenewalCsr(c1.get(), key.get(), nullptr, other.get())), "InvalidCsr", 400},
      {"weak key", Request("k", RenewalCsr(c1.get(), weak.get())), "KeyPolicy", 400},
      {"not json", "garbage", "InvalidRequest", 400},
      {"no csr", R"({"requestId":"n"})", "InvalidRequest", 400},
      {"oversized", Request("o", std::string(20000, 'A')), "PayloadTooLarge", 413},
  };
  for (const Case& c : cases) {
    std::optional<json> a = Ask(*device, "m-00000001", c.body);
    ASSERT_TRUE(a) << c.name << "\n" << bridge.Log();
    EXPECT_EQ(a->value("_topic", ""), "$enroll/m-00000001/simplereenroll/rejected") << c.name;
    EXPECT_EQ(a->value("errorCode", ""), c.code) << c.name << ": " << a->dump();
    EXPECT_EQ(a->value("statusCode", 0), c.status) << c.name;
  }
  std::optional<json> unknown = Ask(*device, "m-00000001", "{}", "serverkeygen");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->value("errorCode", ""), "UnsupportedOperation");
  std::optional<json> off = Ask(*device, "m-00000001", Request("e", RenewalCsr(c1.get(), key.get())), "simpleenroll");
  ASSERT_TRUE(off);
  EXPECT_EQ(off->value("errorCode", ""), "UnsupportedOperation");
  EXPECT_EQ(est->issued(), 0);
  EXPECT_EQ(est->requests("/.well-known/est/simplereenroll"), 0);
}

// simpleenroll is off unless the bridge allows it; then it goes to the CA's
// /simpleenroll, with the same checks as a renewal.
TEST_F(EnrollBridgeTest, SimpleEnrollWhenSwitchedOn) {
  auto est = StartEst();
  BridgeProcess& bridge = StartBridge(BridgeConfig("bridge-1", EstBackend(*est), "[enroll]\nsimpleenroll = true\n"));
  const CertFiles m1 = pki_->Meter("m-00000001");
  X509Ptr c1 = ReadCert(m1.cert);
  auto device = Device(m1, "m-00000001", Mqtt::kV5);
  EvpPkeyPtr key = certacl::testing::GenerateKey(certacl::testing::KeyType::kEcP256);
  std::optional<json> a =
      Ask(*device, "m-00000001", Request("e-1", RenewalCsr(c1.get(), key.get())), "simpleenroll");
  ASSERT_TRUE(a) << bridge.Log();
  EXPECT_EQ(a->value("_topic", ""), "$enroll/m-00000001/simpleenroll/accepted") << a->dump();
  EXPECT_EQ(est->requests("/.well-known/est/simpleenroll"), 1);
  EXPECT_EQ(est->requests("/.well-known/est/simplereenroll"), 0);
  X509Ptr c2 = ReadCert(pki_->Meter("m-00000002").cert);
  std::optional<json> other =
      Ask(*device, "m-00000001", Request("e-2", RenewalCsr(c1.get(), key.get(), c2.get())), "simpleenroll");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->value("errorCode", ""), "SubjectMismatch");
  EXPECT_EQ(est->issued(), 1);
}

// A device cannot ask on another device's topic, nor leave a retained
// request: the broker refuses both (PUBACK 0x87) and the bridge never sees
// them, so the other device gets nothing.
TEST_F(EnrollBridgeTest, RequestsOnAnotherDevicesTopicOrRetainedNeverReachTheBridge) {
  BridgeProcess& bridge = StartBridge(BridgeConfig("bridge-1", LocalCaBackend()));
  const CertFiles m1 = pki_->Meter("m-00000001");
  const CertFiles m2 = pki_->Meter("m-00000002");
  X509Ptr c2 = ReadCert(m2.cert);
  auto attacker = Device(m1, "m-00000001", Mqtt::kV5);
  auto victim = Device(m2, "m-00000002", Mqtt::kV5);
  EvpPkeyPtr key = certacl::testing::GenerateKey(certacl::testing::KeyType::kEcP256);
  EXPECT_EQ(attacker->Publish("$enroll/m-00000002/simplereenroll", Request("x", RenewalCsr(c2.get(), key.get())), 1),
            kNotAuthorized);
  X509Ptr c1 = ReadCert(m1.cert);
  EXPECT_EQ(attacker->Publish("$enroll/m-00000001/simplereenroll", Request("r", RenewalCsr(c1.get(), key.get())), 1,
                              /*retain=*/true),
            kNotAuthorized);
  // A marker request from the victim itself: once its answer is in, the
  // refused ones would have been answered before it.
  std::optional<json> marker = Ask(*victim, "m-00000002", R"({"requestId":"marker"})", "cacerts");
  ASSERT_TRUE(marker);
  EXPECT_EQ(marker->value("requestId", ""), "marker");
  EXPECT_EQ(victim->MessageCount(), 0u);
  EXPECT_EQ(attacker->MessageCount(), 0u);
  EXPECT_EQ(bridge.Count("op=simplereenroll"), 0) << bridge.Log();
  // Nothing was retained either.
  auto late = Device(pki_->Meter("m-00000003"), "m-00000003", Mqtt::kV5);
  EXPECT_EQ(late->Subscribe("$enroll/m-00000001/#", 1), kNotAuthorized);
}

// The CA is down: UpstreamUnavailable with a retryAfter; when it is back,
// the same request succeeds.
TEST_F(EnrollBridgeTest, CaDownThenBack) {
  auto est = StartEst();
  BridgeProcess& bridge = StartBridge(BridgeConfig("bridge-1", EstBackend(*est)));
  est->Stop();
  const CertFiles m1 = pki_->Meter("m-00000001");
  X509Ptr c1 = ReadCert(m1.cert);
  auto device = Device(m1, "m-00000001", Mqtt::kV311);
  EvpPkeyPtr key = certacl::testing::GenerateKey(certacl::testing::KeyType::kEcP256);
  const std::string body = Request("r-1", RenewalCsr(c1.get(), key.get()));
  std::optional<json> down = Ask(*device, "m-00000001", body);
  ASSERT_TRUE(down) << bridge.Log();
  EXPECT_EQ(down->value("errorCode", ""), "UpstreamUnavailable") << down->dump();
  EXPECT_EQ(down->value("statusCode", 0), 503);
  EXPECT_GT(down->value("retryAfter", 0), 0);

  ASSERT_TRUE(est->Start());
  std::optional<json> up = Ask(*device, "m-00000001", body);
  ASSERT_TRUE(up) << bridge.Log();
  CheckAccepted(*up, c1.get(), key.get(), "m-00000001");
  EXPECT_EQ(est->issued(), 1);
}

// The CA answers 202 + Retry-After: the device is told RequestPending with
// retryAfter, the bridge asks again by itself and delivers the certificate.
TEST_F(EnrollBridgeTest, CaSlowGivesRequestPendingThenTheCertificate) {
  auto est = StartEst();
  est->SetPending(1, 1);
  BridgeProcess& bridge = StartBridge(BridgeConfig("bridge-1", EstBackend(*est)));
  const CertFiles m1 = pki_->Meter("m-00000001");
  X509Ptr c1 = ReadCert(m1.cert);
  auto device = Device(m1, "m-00000001", Mqtt::kV311);
  EvpPkeyPtr key = certacl::testing::GenerateKey(certacl::testing::KeyType::kEcP256);
  std::optional<json> pending = Ask(*device, "m-00000001", Request("r-1", RenewalCsr(c1.get(), key.get())));
  ASSERT_TRUE(pending) << bridge.Log();
  EXPECT_EQ(pending->value("errorCode", ""), "RequestPending") << pending->dump();
  EXPECT_EQ(pending->value("statusCode", 0), 202);
  EXPECT_EQ(pending->value("retryAfter", 0), 1);
  EXPECT_EQ(pending->value("requestId", ""), "r-1");
  std::optional<json> issued = NextAnswer(*device, "m-00000001");
  ASSERT_TRUE(issued) << bridge.Log();
  EXPECT_EQ(issued->value("requestId", ""), "r-1");
  CheckAccepted(*issued, c1.get(), key.get(), "m-00000001");
  EXPECT_EQ(est->issued(), 1);
  EXPECT_EQ(est->requests("/.well-known/est/simplereenroll"), 2);
}

// The same CSR sent again (a QoS 1 redelivery or a device retry) is answered
// with the same certificate: the CA issues once.
TEST_F(EnrollBridgeTest, DuplicateRequestIssuesOnce) {
  auto est = StartEst();
  BridgeProcess& bridge = StartBridge(BridgeConfig("bridge-1", EstBackend(*est)));
  const CertFiles m1 = pki_->Meter("m-00000001");
  X509Ptr c1 = ReadCert(m1.cert);
  auto device = Device(m1, "m-00000001", Mqtt::kV5);
  EvpPkeyPtr key = certacl::testing::GenerateKey(certacl::testing::KeyType::kEcP256);
  const std::string csr = RenewalCsr(c1.get(), key.get());
  std::optional<json> first = Ask(*device, "m-00000001", Request("r-1", csr));
  ASSERT_TRUE(first) << bridge.Log();
  std::optional<json> second = Ask(*device, "m-00000001", Request("r-2", csr));
  ASSERT_TRUE(second) << bridge.Log();
  EXPECT_EQ(first->value("_topic", ""), "$enroll/m-00000001/simplereenroll/accepted");
  EXPECT_EQ(second->value("_topic", ""), "$enroll/m-00000001/simplereenroll/accepted");
  EXPECT_EQ(second->value("requestId", ""), "r-2");
  EXPECT_EQ(first->value("serialNumber", "a"), second->value("serialNumber", "b"));
  EXPECT_EQ(est->issued(), 1);
  EXPECT_EQ(bridge.Count("duplicate=answered-again"), 1) << bridge.Log();
}

// Two bridges share the requests through $share/certacl-enroll/: every
// device is answered exactly once, and both bridges did some of the work.
TEST_F(EnrollBridgeTest, TwoBridgesShareTheLoad) {
  BridgeProcess& a = StartBridge(BridgeConfig("bridge-a", LocalCaBackend()));
  BridgeProcess& b = StartBridge(BridgeConfig("bridge-b", LocalCaBackend()));
  constexpr int kDevices = 8;
  std::vector<std::unique_ptr<Client>> devices;
  std::vector<X509Ptr> certs;
  std::vector<EvpPkeyPtr> keys;
  for (int i = 0; i < kDevices; ++i) {
    char cn[16];
    std::snprintf(cn, sizeof cn, "m-%08d", i + 1);
    const CertFiles f = pki_->Meter(cn);
    certs.push_back(ReadCert(f.cert));
    keys.push_back(certacl::testing::GenerateKey(certacl::testing::KeyType::kEcP256));
    devices.push_back(Device(f, cn, i % 2 == 0 ? Mqtt::kV311 : Mqtt::kV5));
    EXPECT_EQ(devices.back()->Publish(std::string("$enroll/") + cn + "/simplereenroll",
                                      Request("r", RenewalCsr(certs.back().get(), keys.back().get())), 1),
              0);
  }
  for (int i = 0; i < kDevices; ++i) {
    char cn[16];
    std::snprintf(cn, sizeof cn, "m-%08d", i + 1);
    std::optional<json> ans = NextAnswer(*devices[static_cast<size_t>(i)], cn);
    ASSERT_TRUE(ans) << cn << "\n" << a.Log() << b.Log();
    CheckAccepted(*ans, certs[static_cast<size_t>(i)].get(), keys[static_cast<size_t>(i)].get(), cn);
  }
  EXPECT_EQ(a.Count("outcome=accepted") + b.Count("outcome=accepted"), kDevices) << a.Log() << b.Log();
  EXPECT_GE(a.Count("outcome=accepted"), 1) << a.Log();
  EXPECT_GE(b.Count("outcome=accepted"), 1) << b.Log();
}

// Duplicates that the shared subscription hands to the other bridge are
// answered from the job record the first bridge shared: still one issuance.
TEST_F(EnrollBridgeTest, DuplicatesOnTheOtherBridgeIssueOnce) {
  auto est = StartEst();
  BridgeProcess& a = StartBridge(BridgeConfig("bridge-a", EstBackend(*est)));
  BridgeProcess& b = StartBridge(BridgeConfig("bridge-b", EstBackend(*est)));
  const CertFiles m1 = pki_->Meter("m-00000001");
  X509Ptr c1 = ReadCert(m1.cert);
  auto device = Device(m1, "m-00000001", Mqtt::kV311);
  EvpPkeyPtr key = certacl::testing::GenerateKey(certacl::testing::KeyType::kEcP256);
  const std::string csr = RenewalCsr(c1.get(), key.get());
  std::optional<json> first = Ask(*device, "m-00000001", Request("r-1", csr));
  ASSERT_TRUE(first) << a.Log() << b.Log();
  const std::string serial = first->value("serialNumber", "");
  ASSERT_FALSE(serial.empty()) << first->dump();
  // Mosquitto hands a shared subscription's messages out in turn: of four
  // more copies, both bridges get some.
  for (int i = 2; i <= 5; ++i) {
    std::optional<json> again = Ask(*device, "m-00000001", Request("r-" + std::to_string(i), csr));
    ASSERT_TRUE(again) << i << "\n" << a.Log() << b.Log();
    EXPECT_EQ(again->value("_topic", ""), "$enroll/m-00000001/simplereenroll/accepted") << again->dump();
    EXPECT_EQ(again->value("serialNumber", ""), serial) << i;
  }
  EXPECT_EQ(est->issued(), 1) << a.Log() << b.Log();
  EXPECT_GE(a.Count("id=m-00000001"), 1) << a.Log();
  EXPECT_GE(b.Count("id=m-00000001"), 1) << b.Log();
  EXPECT_EQ(a.Count("duplicate=answered-again") + b.Count("duplicate=answered-again"), 4) << a.Log() << b.Log();
}

// The bridge survives a broker restart and serves again afterwards.
TEST_F(EnrollBridgeTest, BridgeReconnectsAfterTheBrokerRestarts) {
  BridgeProcess& bridge = StartBridge(BridgeConfig("bridge-1", LocalCaBackend()));
  ASSERT_TRUE(broker_->Restart()) << broker_->Log();
  ASSERT_TRUE(bridge.WaitForLog("ready: subscribed", 2, milliseconds(40000))) << bridge.Log();
  const CertFiles m1 = pki_->Meter("m-00000001");
  X509Ptr c1 = ReadCert(m1.cert);
  auto device = Device(m1, "m-00000001", Mqtt::kV5);
  EvpPkeyPtr key = certacl::testing::GenerateKey(certacl::testing::KeyType::kEcP256);
  std::optional<json> a = Ask(*device, "m-00000001", Request("r-1", RenewalCsr(c1.get(), key.get())));
  ASSERT_TRUE(a) << bridge.Log();
  CheckAccepted(*a, c1.get(), key.get(), "m-00000001");
}

TEST_F(EnrollBridgeTest, BadConfigurationExitsTwoWithTheReason) {
  const std::string path = dir_.path() + "/bad.toml";
  WriteFile(path, "[mqtt]\nport = 0\n[backend]\nkind = \"cmp\"\n");
  BridgeProcess bad(path, dir_.path() + "/bad.log");
  std::string error;
  ASSERT_TRUE(bad.Start(&error)) << error;
  EXPECT_EQ(bad.WaitExit(), 2);
  const std::string log = bad.Log();
  EXPECT_NE(log.find("bad.toml:2:8: must be between 1 and 65535"), std::string::npos) << log;
  EXPECT_NE(log.find("[backend] kind must be \"local-ca\" or \"est\", not \"cmp\""), std::string::npos) << log;

  WriteFile(path, std::string("[mqtt]\ncafile = \"x\"\ncertfile = \"y\"\nkeyfile = \"z\"\n") + LocalCaBackend());
  BridgeProcess missing(path, dir_.path() + "/missing.log");
  ASSERT_TRUE(missing.Start(&error)) << error;
  EXPECT_EQ(missing.WaitExit(), 2);
  EXPECT_EQ(missing.Count("not started"), 1) << missing.Log();
}

}  // namespace
}  // namespace certacl::integration
