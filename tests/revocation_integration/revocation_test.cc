// Revocation against real peers: a real mosquitto with the plugin, CRLs from
// files and from a real HTTP server, a real `openssl ocsp` responder and
// misbehaving servers (down, hanging, garbage, stale, wrong signer), each
// test process in its own network namespace (main.cc). Every test asserts
// exact outcomes: CONNACK codes, who is disconnected, what is delivered.
#include <gtest/gtest.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <ctime>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/broker.h"
#include "tests/integration/client.h"
#include "tests/integration/peers.h"
#include "tests/integration/pki.h"
#include "tests/testing/crl_builder.h"
#include "tests/testing/threads.h"

namespace certacl::integration {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr int kNotAuthorized = 0x87;
constexpr int kNotAuthorizedV311 = 5;
constexpr int kAdministrativeAction = 0x98;

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

// Devices publish on their own topic and may read everyone's; "operator"
// (OU=ops) may command any device.
constexpr const char* kPolicy = R"(version = 1
[connect]
client_id = "${subject.CN}"

[[role]]
name = "device"
match."subject.O" = "Acme Utilities"
match."subject.OU" = "meter"
ca = "pki/issuing-ca.pem"
publish = ["devices/${subject.CN}/up"]
subscribe = ["devices/${subject.CN}/down", "devices/+/up"]

[[role]]
name = "operator"
match."subject.O" = "Acme Utilities"
match."subject.OU" = "ops"
ca = "pki/issuing-ca.pem"
publish = ["devices/+/down", "devices/ops/up"]
subscribe = ["devices/+/up", "$SYS/broker/certacl/#"]
)";

class RevocationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (PluginPath().empty()) GTEST_SKIP() << "the plugin was not built";
    std::filesystem::create_directories(dir_.File("crl"));
  }

  void WritePolicy(const std::string& revocation) { WriteFile(dir_.File("policy.toml"), kPolicy + revocation); }

  bool StartBroker(bool per_listener_settings = false) {
    BrokerOptions o;
    o.dir = dir_.path();
    o.per_listener_settings = per_listener_settings;
    PluginOptions plugin{.path = PluginPath(), .policy = dir_.File("policy.toml")};
    o.listeners.push_back({.cafile = pki_.ca_bundle(), .certfile = pki_.server().cert, .keyfile = pki_.server().key});
    (per_listener_settings ? o.listeners[0].plugin : o.plugin) = plugin;
    broker_ = std::make_unique<Broker>(o);
    return broker_->Start();
  }

  CertFiles Meter(const std::string& cn, const std::string& ocsp_url = "", const std::string& crl_url = "") {
    return DeviceWithUrls(pki_, cn, {.cn = cn, .o = "Acme Utilities", .ou = "meter"}, ocsp_url, crl_url);
  }
  CertFiles Operator() { return pki_.Device("operator", {.cn = "operator", .o = "Acme Utilities", .ou = "ops"}); }

  std::unique_ptr<Client> MakeClient(const std::string& id, const CertFiles& f, Mqtt v = Mqtt::kV5,
                                     bool clean = true) {
    return std::make_unique<Client>(ClientOptions{.id = id, .port = broker_->port(), .cafile = pki_.ca_bundle(),
                                                  .certfile = f.cert, .keyfile = f.key, .version = v,
                                                  .clean_session = clean});
  }

  // Connects, retrying while refused (hard-fail: the first connect starts
  // the fetch); returns the last CONNACK code.
  int ConnectWithRetry(Client& c, milliseconds budget = milliseconds(5000)) {
    const auto end = Clock::now() + budget;
    int rc = c.Connect();
    while (rc != 0 && Clock::now() < end) {
      std::this_thread::sleep_for(milliseconds(200));
      rc = c.Connect();
    }
    return rc;
  }

  // The CRL directory's file, replaced atomically.
  void PublishCrl(const std::string& der) {
    WriteFile(dir_.File("crl/.issuing.tmp"), der);
    std::filesystem::rename(dir_.File("crl/.issuing.tmp"), dir_.File("crl/issuing.crl"));
  }

  // Proves a device is connected and served: it publishes, the operator sees it.
  bool Served(Client& device, Client& watcher, const std::string& cn) {
    const std::string payload = "ping-" + std::to_string(++pings_);
    if (device.Publish("devices/" + cn + "/up", payload, 1) != 0 && device.Publish("devices/" + cn + "/up", payload, 1) != 0x10) {
      return false;
    }
    return watcher.WaitForMessage([&](const Message& m) { return m.payload == payload; }).has_value();
  }

  // Threads of the broker process (/proc/<pid>/status); -1 if unknown. A
  // sanitizer's runtime in the plugin may add one once a first thread exists.
  int BrokerThreads() const {
    std::ifstream in("/proc/" + std::to_string(broker_->pid()) + "/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
    }
    return -1;
  }

  // certacl's revocation workers in the broker process, by their names.
  int BrokerWorkers() const { return static_cast<int>(certacl::testing::RevocationWorkers(broker_->pid())); }

  TempDir dir_;
  Pki pki_{dir_.path()};
  std::unique_ptr<Broker> broker_;
  int pings_ = 0;
};

std::string SerialKeyOf(X509* cert) {
  unsigned char* der = nullptr;
  int len = i2d_ASN1_INTEGER(X509_get0_serialNumber(cert), &der);
  std::string out(reinterpret_cast<char*>(der) + 2, static_cast<size_t>(len - 2));  // short serials: 1-byte length
  OPENSSL_free(der);
  return out;
}

std::string CrlTable(const std::string& extra = "", const std::string& poll = "1s") {
  return "\n[revocation]\nissuers = [\"pki/issuing-ca.pem\"]\ncrl_files = [\"crl\"]\ncrl_file_poll = \"" + poll +
         "\"\n" + extra;
}

// ---------------------------------------------------------------------------
// CRLs from files.

TEST_F(RevocationTest, CrlFileRefusesRevokedAdmitsGood) {
  CertFiles good = Meter("m-good"), bad = Meter("m-bad");
  PublishCrl(MakeCrlDer(pki_.issuing(), {{SerialHex(LoadCert(bad.cert).get())}}));
  WritePolicy(CrlTable());
  ASSERT_TRUE(StartBroker()) << broker_->Log();
  EXPECT_EQ(MakeClient("m-good", good)->Connect(), 0);
  EXPECT_EQ(MakeClient("m-bad", bad)->Connect(), kNotAuthorized);
  EXPECT_EQ(MakeClient("m-bad", bad, Mqtt::kV311)->Connect(), kNotAuthorizedV311);
  EXPECT_TRUE(broker_->WaitForLog("certificate-revoked")) << broker_->Log();
  EXPECT_TRUE(broker_->WaitForLog("adopted the CRL of")) << broker_->Log();
}

TEST_F(RevocationTest, DeviceRevokedWhileConnectedIsDisconnectedAndCannotReconnect) {
  CertFiles dev = Meter("m-1"), ops = Operator();
  PublishCrl(MakeCrlDer(pki_.issuing(), {}, 0, 0, 1));
  WritePolicy(CrlTable());
  ASSERT_TRUE(StartBroker()) << broker_->Log();
  auto watcher = MakeClient("operator", ops);
  ASSERT_EQ(watcher->Connect(), 0);
  ASSERT_EQ(watcher->Subscribe("devices/+/up", 1), 1);
  auto device = MakeClient("m-1", dev);
  ASSERT_EQ(device->Connect(), 0);
  ASSERT_TRUE(Served(*device, *watcher, "m-1"));

  const size_t mark = broker_->LogSize();
  PublishCrl(MakeCrlDer(pki_.issuing(), {{SerialHex(LoadCert(dev.cert).get())}}, 0, 0, 2));
  const auto published = Clock::now();
  ASSERT_TRUE(device->WaitForDisconnect(milliseconds(4000))) << broker_->Log();
  const auto ms = std::chrono::duration_cast<milliseconds>(Clock::now() - published).count();
  // crl_file_poll 1 s + adoption at the next tick.
  EXPECT_LT(ms, 2500) << "disconnected after " << ms << " ms";
  EXPECT_EQ(device->disconnect_reason(), kAdministrativeAction);
  EXPECT_TRUE(broker_->WaitForLog("its certificate has been revoked", kStartTimeout, mark)) << broker_->Log();
  EXPECT_EQ(device->Connect(), kNotAuthorized);
  // The rest of the fleet is untouched.
  EXPECT_TRUE(watcher->connected());
  // Small local CRLs are watched and parsed on the broker thread: Mosquitto
  // stays single-threaded (a thread would cost it ~4 % per message).
  EXPECT_EQ(BrokerThreads(), 1);
  std::printf("[ measured ] revoked by a new CRL file -> disconnected in %lld ms\n", static_cast<long long>(ms));
}

// Mosquitto 2.0 sends plugins no TICK with per_listener_settings true: the
// update is adopted at the next event, and the revoked device, denied
// everything at once, is disconnected at the next connect of anyone.
TEST_F(RevocationTest, WithoutTickRevocationStillTakesEffect) {
  CertFiles dev = Meter("m-1"), ops = Operator();
  PublishCrl(MakeCrlDer(pki_.issuing(), {}, 0, 0, 1));
  WritePolicy(CrlTable());
  ASSERT_TRUE(StartBroker(/*per_listener_settings=*/true)) << broker_->Log();
  auto device = MakeClient("m-1", dev);
  ASSERT_EQ(device->Connect(), 0);
  ASSERT_EQ(device->Publish("devices/m-1/up", "a", 1), 0x10);  // allowed, no subscriber
  PublishCrl(MakeCrlDer(pki_.issuing(), {{SerialHex(LoadCert(dev.cert).get())}}, 0, 0, 2));
  std::this_thread::sleep_for(milliseconds(2000));  // crl_file_poll 1 s
  EXPECT_EQ(device->Publish("devices/m-1/up", "b", 1), kNotAuthorized);
  auto op = MakeClient("operator", ops);
  ASSERT_EQ(op->Connect(), 0);
  EXPECT_TRUE(device->WaitForDisconnect(milliseconds(2000))) << broker_->Log();
  EXPECT_EQ(device->Connect(), kNotAuthorized);
}

TEST_F(RevocationTest, CrlWithBadSignatureIsIgnored) {
  CertFiles dev = Meter("m-1");
  PublishCrl(MakeCrlDer(pki_.issuing(), {}, 0, 0, 1));
  WritePolicy(CrlTable());
  ASSERT_TRUE(StartBroker()) << broker_->Log();
  auto device = MakeClient("m-1", dev);
  ASSERT_EQ(device->Connect(), 0);
  // Same issuer name, another key: must not revoke anyone.
  const size_t mark = broker_->LogSize();
  testing::TestCa forger = testing::TestCa::Create("Acme Devices Issuing CA");
  PublishCrl(MakeCrlDer(forger, {{SerialHex(LoadCert(dev.cert).get())}}, 0, 0, 5));
  EXPECT_TRUE(broker_->WaitForLog("not used", milliseconds(4000), mark)) << broker_->Log();
  EXPECT_FALSE(device->WaitForDisconnect(milliseconds(1500)));
  EXPECT_TRUE(device->Disconnect());
  EXPECT_EQ(device->Connect(), 0);
}

TEST_F(RevocationTest, HardFailRefusesWhileNoValidCrlIsLoaded) {
  CertFiles dev = Meter("m-1");
  testing::TestCa forger = testing::TestCa::Create("Acme Devices Issuing CA");
  PublishCrl(MakeCrlDer(forger, {}, 0, 0, 1));
  WritePolicy(CrlTable());
  ASSERT_TRUE(StartBroker()) << broker_->Log();
  EXPECT_EQ(MakeClient("m-1", dev)->Connect(), kNotAuthorized);
  EXPECT_TRUE(broker_->WaitForLog("revocation-unknown")) << broker_->Log();
  // A valid CRL arrives: the device gets in without a SIGHUP.
  PublishCrl(MakeCrlDer(pki_.issuing(), {}, 0, 0, 2));
  auto device = MakeClient("m-1", dev);
  EXPECT_EQ(ConnectWithRetry(*device), 0) << broker_->Log();
}

TEST_F(RevocationTest, StaleCrlDeniedOrAllowedAsConfigured) {
  CertFiles good = Meter("m-good"), bad = Meter("m-bad");
  // thisUpdate two days ago, nextUpdate one day ago.
  PublishCrl(MakeCrlDer(pki_.issuing(), {{SerialHex(LoadCert(bad.cert).get())}}, Now() - 2 * 86400, Now() - 86400));
  WritePolicy(CrlTable("stale = \"deny\"\nstale_grace = \"1h\"\n"));
  ASSERT_TRUE(StartBroker()) << broker_->Log();
  EXPECT_EQ(MakeClient("m-good", good)->Connect(), kNotAuthorized);
  EXPECT_TRUE(broker_->WaitForLog("revocation-stale")) << broker_->Log();
  EXPECT_EQ(MakeClient("m-bad", bad)->Connect(), kNotAuthorized);

  // A longer grace and then stale = "allow", each through SIGHUP.
  WritePolicy(CrlTable("stale = \"deny\"\nstale_grace = \"2d\"\n"));
  ASSERT_TRUE(broker_->Reload());
  auto device = MakeClient("m-good", good);
  EXPECT_EQ(ConnectWithRetry(*device, milliseconds(2000)), 0) << broker_->Log();
  ASSERT_TRUE(device->Disconnect());
  WritePolicy(CrlTable("stale = \"allow\"\nstale_grace = \"0s\"\n"));
  ASSERT_TRUE(broker_->Reload());
  EXPECT_EQ(ConnectWithRetry(*device, milliseconds(2000)), 0) << broker_->Log();
  // Still honoured: the revoked device stays out.
  EXPECT_EQ(MakeClient("m-bad", bad)->Connect(), kNotAuthorized);
}

TEST_F(RevocationTest, CrlChangeAppliesAtOnceOnSighup) {
  CertFiles dev = Meter("m-1");
  PublishCrl(MakeCrlDer(pki_.issuing(), {}, 0, 0, 1));
  WritePolicy(CrlTable("", "10s"));
  ASSERT_TRUE(StartBroker()) << broker_->Log();
  auto device = MakeClient("m-1", dev);
  ASSERT_EQ(device->Connect(), 0);
  PublishCrl(MakeCrlDer(pki_.issuing(), {{SerialHex(LoadCert(dev.cert).get())}}, 0, 0, 2));
  const auto sent = Clock::now();
  ASSERT_TRUE(broker_->Reload());
  ASSERT_TRUE(device->WaitForDisconnect(milliseconds(3000))) << broker_->Log();
  const auto ms = std::chrono::duration_cast<milliseconds>(Clock::now() - sent).count();
  EXPECT_LT(ms, 2000) << "SIGHUP -> disconnected in " << ms << " ms (file poll is 10 s)";
  EXPECT_EQ(device->Connect(), kNotAuthorized);
}

TEST_F(RevocationTest, RevokedPersistentSessionStopsReceivingQueuedMessages) {
  CertFiles dev = Meter("m-1"), ops = Operator();
  PublishCrl(MakeCrlDer(pki_.issuing(), {}, 0, 0, 1));
  WritePolicy(CrlTable());
  ASSERT_TRUE(StartBroker()) << broker_->Log();
  auto op = MakeClient("operator", ops);
  ASSERT_EQ(op->Connect(), 0);
  auto device = MakeClient("m-1", dev, Mqtt::kV311, /*clean=*/false);
  ASSERT_EQ(device->Connect(), 0);
  ASSERT_EQ(device->Subscribe("devices/m-1/down", 1), 1);
  ASSERT_TRUE(device->Disconnect());
  // Queued while good: kept.
  ASSERT_EQ(op->Publish("devices/m-1/down", "before", 1), 0);
  // Revoked (on hold): whatever is queued now must not reach it.
  size_t mark = broker_->LogSize();
  PublishCrl(MakeCrlDer(pki_.issuing(), {{SerialHex(LoadCert(dev.cert).get()), 6}}, 0, 0, 2));
  ASSERT_TRUE(broker_->WaitForLog("adopted the CRL", milliseconds(4000), mark)) << broker_->Log();
  ASSERT_EQ(op->Publish("devices/m-1/down", "while-revoked", 1), 0);
  EXPECT_EQ(device->Connect(), kNotAuthorizedV311);
  // Taken off hold: it reconnects and finds only what was queued before.
  mark = broker_->LogSize();
  PublishCrl(MakeCrlDer(pki_.issuing(), {}, 0, 0, 3));
  ASSERT_TRUE(broker_->WaitForLog("adopted the CRL", milliseconds(4000), mark)) << broker_->Log();
  ASSERT_EQ(device->Connect(), 0) << broker_->Log();
  ASSERT_TRUE(device->WaitForMessage("devices/m-1/down").has_value());
  ASSERT_EQ(op->Publish("devices/m-1/down", "marker", 1), 0);
  ASSERT_TRUE(device->WaitForMessage([](const Message& m) { return m.payload == "marker"; }).has_value());
  std::vector<std::string> got;
  for (const Message& m : device->MessagesOn("devices/m-1/down")) got.push_back(m.payload);
  EXPECT_EQ(got, (std::vector<std::string>{"before", "marker"}));
}

// ---------------------------------------------------------------------------
// CRLs from the certificates' distribution points, over real HTTP.

TEST_F(RevocationTest, CrlFromDistributionPointOverHttp) {
  std::filesystem::create_directories(dir_.File("www"));
  HttpFileServer http(dir_.File("www"));
  std::string error;
  ASSERT_TRUE(http.Start(&error)) << error;
  const std::string url = http.url("issuing.crl");
  CertFiles good = Meter("m-good", "", url), bad = Meter("m-bad", "", url), ops = Operator();
  HttpFileServer::PublishAtomically(dir_.File("www"), "issuing.crl",
                                    MakeCrlDer(pki_.issuing(), {{SerialHex(LoadCert(bad.cert).get())}}));
  WritePolicy("\n[revocation]\nissuers = [\"pki/issuing-ca.pem\"]\ncrl_from_certificate = true\n");
  ASSERT_TRUE(StartBroker()) << broker_->Log();
  // hard-fail: the first connect has no CRL yet and starts the fetch.
  auto device = MakeClient("m-good", good);
  EXPECT_EQ(device->Connect(), kNotAuthorized);
  EXPECT_EQ(ConnectWithRetry(*device), 0) << broker_->Log();
  EXPECT_EQ(MakeClient("m-bad", bad)->Connect(), kNotAuthorized);
  EXPECT_TRUE(broker_->WaitForLog("certificate-revoked")) << broker_->Log();
  EXPECT_EQ(BrokerWorkers(), 1);  // the CRL worker: no OCSP workers
  // The fetch is counted per URL on $SYS.
  auto op = MakeClient("operator", ops);
  ASSERT_EQ(op->Connect(), 0);
  ASSERT_EQ(op->Subscribe("$SYS/broker/certacl/revocation/#", 0), 0);
  auto ok = op->WaitForMessage([](const Message& m) {
    return m.topic.find("/revocation/fetch/http:%2F%2F127.0.0.1:") != std::string::npos &&
           m.topic.find("issuing.crl/succeeded") != std::string::npos && m.payload != "0";
  });
  EXPECT_TRUE(ok.has_value());
}

// ---------------------------------------------------------------------------
// OCSP: a real `openssl ocsp` responder, and responders that misbehave.

// A signed OCSP response for `leaf`, made here (for answers a real
// responder will not give: stale ones).
std::string MakeOcspResponse(X509* leaf, X509* issuer, const CertFiles& signer, int status, int64_t this_update,
                             int64_t next_update) {
  X509Ptr signer_cert = LoadCert(signer.cert);
  certacl::BioPtr bio(BIO_new_file(signer.key.c_str(), "r"));
  certacl::EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  OCSP_CERTID* id = OCSP_cert_to_id(nullptr, leaf, issuer);
  OCSP_BASICRESP* basic = OCSP_BASICRESP_new();
  ASN1_TIME* tu = ASN1_TIME_set(nullptr, static_cast<time_t>(this_update));
  ASN1_TIME* nu = ASN1_TIME_set(nullptr, static_cast<time_t>(next_update));
  OCSP_basic_add1_status(basic, id, status, 0, nullptr, tu, nu);
  OCSP_basic_sign(basic, signer_cert.get(), key.get(), EVP_sha256(), nullptr, 0);
  OCSP_RESPONSE* resp = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, basic);
  unsigned char* der = nullptr;
  int len = i2d_OCSP_RESPONSE(resp, &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  OCSP_RESPONSE_free(resp);
  OCSP_BASICRESP_free(basic);
  OCSP_CERTID_free(id);
  ASN1_TIME_free(tu);
  ASN1_TIME_free(nu);
  return out;
}

std::string OcspTable(const std::string& url, const std::string& mode, const std::string& extra = "",
                      const std::string& timeout = "1s") {
  return "\n[revocation]\nmode = \"" + mode + "\"\nissuers = [\"pki/issuing-ca.pem\"]\nocsp = \"" + url +
         "\"\nocsp_timeout = \"" + timeout + "\"\nfailure_backoff = \"1s\"\n" + extra;
}

class OcspTest : public RevocationTest {
 protected:
  void SetUp() override {
    RevocationTest::SetUp();
    if (IsSkipped()) return;
    CERTACL_SKIP_UNLESS_PRIVATE_NETNS();
  }
  bool StartResponder(const CertFiles& signer, int next_update_minutes = 60) {
    responder_ = std::make_unique<OcspResponder>(OcspResponderOptions{
        .dir = dir_.File("ocsp"), .ca_cert = pki_.issuing_ca(), .rsigner_cert = signer.cert,
        .rsigner_key = signer.key, .next_update_minutes = next_update_minutes});
    std::string error;
    const bool ok = responder_->Start(&error);
    EXPECT_TRUE(ok) << error;
    return ok;
  }
  std::unique_ptr<OcspResponder> responder_;
};

TEST_F(OcspTest, HardFailAdmitsGoodOnRetryAndRefusesRevoked) {
  ASSERT_TRUE(StartResponder(ResponderCert(pki_)));
  CertFiles good = Meter("m-good", responder_->url()), bad = Meter("m-bad", responder_->url());
  responder_->SetStatus(LoadCert(good.cert).get(), CertStatus::kGood);
  responder_->SetStatus(LoadCert(bad.cert).get(), CertStatus::kRevoked, "keyCompromise");
  ASSERT_TRUE(responder_->WaitForStatus(LoadCert(bad.cert).get(), pki_.issuing().cert.get(), CertStatus::kRevoked));
  WritePolicy(OcspTable("from-certificate", "hard-fail"));
  ASSERT_TRUE(StartBroker()) << broker_->Log();
  auto device = MakeClient("m-good", good);
  EXPECT_EQ(device->Connect(), kNotAuthorized);  // no answer yet: refused, fetch started
  EXPECT_TRUE(broker_->WaitForLog("revocation-unknown")) << broker_->Log();
  EXPECT_EQ(ConnectWithRetry(*device), 0) << broker_->Log();
  auto revoked = MakeClient("m-bad", bad);
  EXPECT_EQ(ConnectWithRetry(*revoked, milliseconds(1500)), kNotAuthorized);
  EXPECT_TRUE(broker_->WaitForLog("certificate-revoked")) << broker_->Log();
  EXPECT_EQ(BrokerWorkers(), 3);  // the CRL worker (OCSP refreshes) and two OCSP workers
}

TEST_F(OcspTest, DeviceRevokedWhileConnectedIsDisconnectedAtTheNextRefresh) {
  ASSERT_TRUE(StartResponder(ResponderCert(pki_)));
  CertFiles dev = Meter("m-1", responder_->url());
  X509Ptr cert = LoadCert(dev.cert);
  responder_->SetStatus(cert.get(), CertStatus::kGood);
  WritePolicy(OcspTable("from-certificate", "soft-fail", "ocsp_max_age = \"2s\"\n"));
  ASSERT_TRUE(StartBroker()) << broker_->Log();
  auto device = MakeClient("m-1", dev);
  ASSERT_EQ(device->Connect(), 0);  // soft-fail: in at once
  std::this_thread::sleep_for(milliseconds(500));
  responder_->SetStatus(cert.get(), CertStatus::kRevoked, "keyCompromise");
  ASSERT_TRUE(responder_->WaitForStatus(cert.get(), pki_.issuing().cert.get(), CertStatus::kRevoked));
  ASSERT_TRUE(device->WaitForDisconnect(milliseconds(5000))) << broker_->Log();
  EXPECT_EQ(device->disconnect_reason(), kAdministrativeAction);
  EXPECT_EQ(device->Connect(), kNotAuthorized);
}

TEST_F(OcspTest, SoftFailAdmitsThenDisconnectsWhenTheAnswerIsRevoked) {
  ASSERT_TRUE(StartResponder(ResponderCert(pki_)));
  CertFiles dev = Meter("m-1", responder_->url());
  X509Ptr cert = LoadCert(dev.cert);
  responder_->SetStatus(cert.get(), CertStatus::kRevoked, "keyCompromise");
  ASSERT_TRUE(responder_->WaitForStatus(cert.get(), pki_.issuing().cert.get(), CertStatus::kRevoked));
  WritePolicy(OcspTable("from-certificate", "soft-fail"));
  ASSERT_TRUE(StartBroker()) << broker_->Log();
  auto device = MakeClient("m-1", dev);
  ASSERT_EQ(device->Connect(), 0);  // unknown yet: admitted
  ASSERT_TRUE(device->WaitForDisconnect(milliseconds(3000))) << broker_->Log();
  EXPECT_EQ(device->Connect(), kNotAuthorized);
}

TEST_F(OcspTest, ResponderDownHardFailRefusesSoftFailAdmits) {
  const std::string url = "http://127.0.0.1:" + std::to_string(Blackhole::UnusedPort()) + "/";
  CertFiles dev = Meter("m-1");
  WritePolicy(OcspTable(url, "hard-fail"));
  ASSERT_TRUE(StartBroker()) << broker_->Log();
  auto device = MakeClient("m-1", dev);
  EXPECT_EQ(ConnectWithRetry(*device, milliseconds(2500)), kNotAuthorized) << broker_->Log();
  EXPECT_TRUE(broker_->WaitForLog("revocation: OCSP query to " + url + " failed")) << broker_->Log();
  WritePolicy(OcspTable(url, "soft-fail"));
  ASSERT_TRUE(broker_->Reload());
  EXPECT_EQ(device->Connect(), 0) << broker_->Log();
}

TEST_F(OcspTest, HangingResponderNeverStallsTheBroker) {
  ScriptedHttpServer hang(ScriptedBehaviour::Hang());
  std::string error;
  ASSERT_TRUE(hang.Start(&error)) << error;
  CertFiles dev = Meter("m-1"), other = Meter("m-2"), ops = Operator();
  // A 5 s timeout: every CONNACK below arrives long before it.
  WritePolicy(OcspTable(hang.url(), "hard-fail", "", "5s"));
  ASSERT_TRUE(StartBroker()) << broker_->Log();
  const auto t0 = Clock::now();
  EXPECT_EQ(MakeClient("m-1", dev)->Connect(milliseconds(3000)), kNotAuthorized);
  EXPECT_LT(Clock::now() - t0, milliseconds(3000));
  // soft-fail: admitted while the query hangs, and messages flow.
  WritePolicy(OcspTable(hang.url(), "soft-fail", "", "5s"));
  ASSERT_TRUE(broker_->Reload());
  auto watcher = MakeClient("operator", ops);
  ASSERT_EQ(watcher->Connect(), 0);
  ASSERT_EQ(watcher->Subscribe("devices/+/up", 1), 1);
  auto a = MakeClient("m-1", dev), b = MakeClient("m-2", other);
  ASSERT_EQ(a->Connect(), 0);
  ASSERT_EQ(b->Connect(), 0);
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(Served(*a, *watcher, "m-1"));
    EXPECT_TRUE(Served(*b, *watcher, "m-2"));
  }
  EXPECT_GE(hang.connections(), 1);
}

TEST_F(OcspTest, SlowResponderTimesOut) {
  // Answers, but only after 3 s; the timeout is 1 s.
  CertFiles signer = ResponderCert(pki_);
  CertFiles dev = Meter("m-1");
  X509Ptr cert = LoadCert(dev.cert);
  ScriptedHttpServer slow(ScriptedBehaviour::Delay(
      milliseconds(3000), 200, "application/ocsp-response",
      MakeOcspResponse(cert.get(), pki_.issuing().cert.get(), signer, V_OCSP_CERTSTATUS_GOOD, Now() - 60,
                       Now() + 3600)));
  std::string error;
  ASSERT_TRUE(slow.Start(&error)) << error;
  WritePolicy(OcspTable(slow.url(), "hard-fail"));
  ASSERT_TRUE(StartBroker()) << broker_->Log();
  auto device = MakeClient("m-1", dev);
  EXPECT_EQ(ConnectWithRetry(*device, milliseconds(2000)), kNotAuthorized);
  EXPECT_TRUE(broker_->WaitForLog("timed out after 1000 ms")) << broker_->Log();
  WritePolicy(OcspTable(slow.url(), "soft-fail"));
  ASSERT_TRUE(broker_->Reload());
  EXPECT_EQ(device->Connect(), 0);
}

TEST_F(OcspTest, GarbageAnswerIsNoAnswer) {
  ScriptedHttpServer junk(ScriptedBehaviour::Respond(200, "application/ocsp-response", "this is not DER"));
  std::string error;
  ASSERT_TRUE(junk.Start(&error)) << error;
  CertFiles dev = Meter("m-1");
  WritePolicy(OcspTable(junk.url(), "hard-fail"));
  ASSERT_TRUE(StartBroker()) << broker_->Log();
  auto device = MakeClient("m-1", dev);
  EXPECT_EQ(ConnectWithRetry(*device, milliseconds(2000)), kNotAuthorized);
  EXPECT_GE(junk.requests(), 1);
  EXPECT_TRUE(broker_->WaitForLog("failed: OCSP response is not DER")) << broker_->Log();
  WritePolicy(OcspTable(junk.url(), "soft-fail"));
  ASSERT_TRUE(broker_->Reload());
  EXPECT_EQ(device->Connect(), 0);
}

TEST_F(OcspTest, UnauthorizedSignerIsRejected) {
  // A responder certificate without the OCSP-signing EKU: its "good" counts for nothing.
  ASSERT_TRUE(StartResponder(ResponderCert(pki_, "no-eku", {.ocsp_signing_eku = false})));
  CertFiles dev = Meter("m-1", responder_->url());
  responder_->SetStatus(LoadCert(dev.cert).get(), CertStatus::kGood);
  WritePolicy(OcspTable("from-certificate", "hard-fail"));
  ASSERT_TRUE(StartBroker()) << broker_->Log();
  auto device = MakeClient("m-1", dev);
  EXPECT_EQ(ConnectWithRetry(*device, milliseconds(2000)), kNotAuthorized);
  EXPECT_TRUE(broker_->WaitForLog("failed: OCSP response signer is not authorized")) << broker_->Log();
  // soft-fail: no valid answer, so admitted.
  WritePolicy(OcspTable("from-certificate", "soft-fail"));
  ASSERT_TRUE(broker_->Reload());
  EXPECT_EQ(device->Connect(), 0);
}

TEST_F(OcspTest, StaleAnswerIsRejected) {
  CertFiles signer = ResponderCert(pki_);
  CertFiles dev = Meter("m-1");
  X509Ptr cert = LoadCert(dev.cert);
  ScriptedHttpServer stale(ScriptedBehaviour::Respond(
      200, "application/ocsp-response",
      MakeOcspResponse(cert.get(), pki_.issuing().cert.get(), signer, V_OCSP_CERTSTATUS_GOOD, Now() - 7200,
                       Now() - 3600)));
  std::string error;
  ASSERT_TRUE(stale.Start(&error)) << error;
  WritePolicy(OcspTable(stale.url(), "hard-fail"));
  ASSERT_TRUE(StartBroker()) << broker_->Log();
  auto device = MakeClient("m-1", dev);
  EXPECT_EQ(ConnectWithRetry(*device, milliseconds(2000)), kNotAuthorized);
  EXPECT_TRUE(broker_->WaitForLog("stale")) << broker_->Log();
  // soft-fail admits it while the answers are stale.
  WritePolicy(OcspTable(stale.url(), "soft-fail"));
  ASSERT_TRUE(broker_->Reload());
  EXPECT_EQ(device->Connect(), 0);
  ASSERT_TRUE(device->Disconnect());
  WritePolicy(OcspTable(stale.url(), "hard-fail"));
  ASSERT_TRUE(broker_->Reload());
  // The same responder with a fresh answer lets it in.
  stale.SetBehaviour(ScriptedBehaviour::Respond(
      200, "application/ocsp-response",
      MakeOcspResponse(cert.get(), pki_.issuing().cert.get(), signer, V_OCSP_CERTSTATUS_GOOD, Now() - 60,
                       Now() + 3600)));
  EXPECT_EQ(ConnectWithRetry(*device, milliseconds(5000)), 0) << broker_->Log();
}

TEST_F(RevocationTest, FetchedCrlIsKeptAcrossARestartWhileTheCaIsDown) {
  std::filesystem::create_directories(dir_.File("www"));
  std::filesystem::create_directories(dir_.File("crl-cache"));
  auto http = std::make_unique<HttpFileServer>(dir_.File("www"));
  std::string error;
  ASSERT_TRUE(http->Start(&error)) << error;
  const std::string url = http->url("issuing.crl");
  CertFiles good = Meter("m-good", "", url), bad = Meter("m-bad", "", url);
  HttpFileServer::PublishAtomically(dir_.File("www"), "issuing.crl",
                                    MakeCrlDer(pki_.issuing(), {{SerialHex(LoadCert(bad.cert).get())}}));
  WritePolicy("\n[revocation]\nissuers = [\"pki/issuing-ca.pem\"]\ncrl_from_certificate = true\n"
              "crl_cache_dir = \"crl-cache\"\n");
  ASSERT_TRUE(StartBroker()) << broker_->Log();
  auto device = MakeClient("m-good", good);
  EXPECT_EQ(ConnectWithRetry(*device), 0) << broker_->Log();
  ASSERT_TRUE(device->Disconnect());
  // The CA goes away, the broker restarts: the kept CRL is in force at once.
  http.reset();
  ASSERT_TRUE(broker_->Restart()) << broker_->Log();
  EXPECT_EQ(device->Connect(), 0) << broker_->Log();
  EXPECT_EQ(MakeClient("m-bad", bad)->Connect(), kNotAuthorized);
}

TEST_F(RevocationTest, DistributionPointOutageIsRetriedAndTheCrlInForceStays) {
  ScriptedHttpServer cdp(ScriptedBehaviour::Respond(503, "text/plain", "down for maintenance"));
  std::string error;
  ASSERT_TRUE(cdp.Start(&error)) << error;
  CertFiles good = Meter("m-good", "", cdp.url("/issuing.crl")), bad = Meter("m-bad", "", cdp.url("/issuing.crl"));
  WritePolicy("\n[revocation]\nissuers = [\"pki/issuing-ca.pem\"]\ncrl_from_certificate = true\n"
              "failure_backoff = \"1s\"\ncrl_refresh = \"2s\"\n");
  ASSERT_TRUE(StartBroker()) << broker_->Log();
  auto device = MakeClient("m-good", good);
  EXPECT_EQ(ConnectWithRetry(*device, milliseconds(2500)), kNotAuthorized);  // no CRL: hard-fail
  EXPECT_TRUE(broker_->WaitForLog("failed: HTTP status 503")) << broker_->Log();
  const int failed_requests = cdp.requests();
  EXPECT_GE(failed_requests, 2);  // retried
  // The CA is back: the retry with backoff picks the CRL up.
  cdp.SetBehaviour(ScriptedBehaviour::Respond(200, "application/pkix-crl",
                                              MakeCrlDer(pki_.issuing(), {{SerialHex(LoadCert(bad.cert).get())}})));
  EXPECT_EQ(ConnectWithRetry(*device, milliseconds(6000)), 0) << broker_->Log();
  EXPECT_EQ(MakeClient("m-bad", bad)->Connect(), kNotAuthorized);
  // Down again, and garbage after that: the CRL in force stays.
  cdp.SetBehaviour(ScriptedBehaviour::Respond(200, "application/pkix-crl", "garbage"));
  const int before = cdp.requests();
  const auto end = Clock::now() + milliseconds(6000);
  while (cdp.requests() < before + 2 && Clock::now() < end) std::this_thread::sleep_for(milliseconds(100));
  EXPECT_GE(cdp.requests(), before + 2);
  EXPECT_EQ(MakeClient("m-bad", bad)->Connect(), kNotAuthorized);
  ASSERT_TRUE(device->Disconnect());
  EXPECT_EQ(device->Connect(), 0);
}

// ---------------------------------------------------------------------------
// Certificate expiry while connected (no [revocation] table needed).

TEST_F(RevocationTest, CertificateExpiringWhileConnectedIsDisconnected) {
  const int64_t start = Now();
  testing::CertBuilder b = pki_.issuing().Issue();
  b.Subject("O", "Acme Utilities").Subject("OU", "meter").Subject("CN", "m-short").Validity(start - 60, start + 4);
  CertFiles dev = pki_.Write("m-short", b);
  WritePolicy("");
  ASSERT_TRUE(StartBroker()) << broker_->Log();
  auto device = MakeClient("m-short", dev);
  ASSERT_EQ(device->Connect(), 0);
  ASSERT_TRUE(device->WaitForDisconnect(milliseconds(8000))) << broker_->Log();
  EXPECT_GE(Now(), start + 4);
  EXPECT_TRUE(broker_->WaitForLog("its certificate has expired")) << broker_->Log();
}

// ---------------------------------------------------------------------------
// Measurement (run by hand; figures go to bench/RESULTS.md):
//   build/tests/revocation_integration_tests --gtest_also_run_disabled_tests
//       --gtest_filter='*DISABLED_MillionEntryCrl*'
// A 1,000,000-entry CRL replaces a small one while a device and the operator
// ping-pong QoS 0 messages through the broker; reports the longest round
// trip before and during the load, the broker thread's own time to adopt it
// (from the plugin's log), the broker's RSS, and checks a revoked device.

TEST_F(RevocationTest, DISABLED_MillionEntryCrlLoadsWithoutStallingTheBroker) {
  CertFiles dev = Meter("m-1"), ops = Operator();
  PublishCrl(MakeCrlDer(pki_.issuing(), {}, 0, 0, 1));
  WritePolicy(CrlTable());
  ASSERT_TRUE(StartBroker()) << broker_->Log();
  auto watcher = MakeClient("operator", ops);
  ASSERT_EQ(watcher->Connect(), 0);
  ASSERT_EQ(watcher->Subscribe("devices/m-1/up", 0), 0);
  auto device = MakeClient("m-1", dev);
  ASSERT_EQ(device->Connect(), 0);

  certacl::testing::CrlSpec spec;
  spec.serials = certacl::testing::RandomSerials(1000000, 42);
  CertFiles victim = Meter("m-victim");
  spec.serials.push_back(std::string(SerialKeyOf(LoadCert(victim.cert).get())));
  spec.this_update = Now() - 60;
  spec.next_update = Now() + 86400;
  spec.crl_number = certacl::testing::SerialFromUint64(2);
  const std::string big = certacl::testing::BuildCrlDer(pki_.issuing(), spec);
  const long rss_before = broker_->RssKb();

  auto ping_max = [&](milliseconds window) {
    long long worst = 0;
    int n = 0;
    const auto end = Clock::now() + window;
    while (Clock::now() < end) {
      const std::string payload = "p" + std::to_string(n++);
      const auto t0 = Clock::now();
      device->Publish("devices/m-1/up", payload, 0);
      if (!watcher->WaitForMessage([&](const Message& m) { return m.payload == payload; })) return -1LL;
      worst = std::max<long long>(worst, std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
      if (n % 64 == 0) watcher->ClearMessages();
    }
    return worst;
  };
  const long long baseline = ping_max(milliseconds(3000));
  const size_t mark = broker_->LogSize();
  PublishCrl(big);
  const long long during = ping_max(milliseconds(6000));
  ASSERT_TRUE(broker_->WaitForLog("adopted the CRL", milliseconds(10000), mark)) << broker_->Log();
  ASSERT_TRUE(broker_->WaitForLog("revocation update applied in", milliseconds(10000), mark));
  std::string log = broker_->Log().substr(mark);
  long long applied_us = -1;
  for (size_t at = log.find("revocation update applied in "); at != std::string::npos;
       at = log.find("revocation update applied in ", at + 1)) {
    applied_us = std::max(applied_us, std::atoll(log.c_str() + at + 29));
  }
  const long rss_after = broker_->RssKb();
  EXPECT_EQ(MakeClient("m-victim", victim)->Connect(), kNotAuthorized);
  EXPECT_TRUE(watcher->connected());
  std::printf("[ measured ] 1,000,000-entry CRL (%zu bytes): longest ping round trip %lld us before, %lld us while "
              "it loads; broker thread applied it in %lld us; broker RSS %ld -> %ld KiB (+%ld KiB)\n",
              big.size(), baseline, during, applied_us, rss_before, rss_after, rss_after - rss_before);
}

}  // namespace
}  // namespace certacl::integration
