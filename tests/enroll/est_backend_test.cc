// est_backend_test.cc: EstBackend against the in-process EST server
// (tests/testing/est_server.h) on 127.0.0.1, plus its pure helpers. No
// timing assertions: timeouts are asserted by their message.
#include "enroll-bridge/est_backend.h"

#include <arpa/inet.h>
#include <openssl/pkcs7.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "enroll-bridge/csr_check.h"
#include "enroll-bridge/est_codec.h"
#include "enroll-bridge/local_ca.h"
#include "tests/testing/cert_builder.h"
#include "tests/testing/est_server.h"
#include "tests/testing/loopback_listener.h"
#include "tests/testing/temp_dir.h"

namespace certacl::enroll {
namespace {

using certacl::testing::CertBuilder;
using certacl::testing::DerOid;
using certacl::testing::DerSequence;
using certacl::testing::EstTestServer;
using certacl::testing::EstTestServerOptions;
using certacl::testing::GenerateKey;
using certacl::testing::KeyToPem;
using certacl::testing::KeyType;
using certacl::testing::TempDir;
using certacl::testing::TestCa;
using certacl::testing::ToPem;
using Status = BackendResult::Status;

constexpr char kClientAuth[] = "1.3.6.1.5.5.7.3.2";
constexpr char kCmcRa[] = "1.3.6.1.5.5.7.3.28";

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

// A CSR with `current`'s subject and SANs for `key`.
X509ReqPtr RenewalCsr(X509* current, EVP_PKEY* key) {
  X509ReqPtr req(X509_REQ_new());
  X509_REQ_set_subject_name(req.get(), X509_get_subject_name(current));
  X509_REQ_set_pubkey(req.get(), key);
  ExtensionStackPtr exts(sk_X509_EXTENSION_new_null());
  const int at = X509_get_ext_by_NID(current, NID_subject_alt_name, -1);
  if (at >= 0) sk_X509_EXTENSION_push(exts.get(), X509_EXTENSION_dup(X509_get_ext(current, at)));
  X509_REQ_add_extensions(req.get(), exts.get());
  X509_REQ_sign(req.get(), key, EVP_sha256());
  return req;
}

std::string CsrDer(X509_REQ* csr) { return ToDer<X509_REQ, i2d_X509_REQ>(csr); }

class EstBackendTest : public ::testing::Test {
 protected:
  EstBackendTest() {
    CertBuilder device = ca_.Issue();
    device.Subject("O", "Acme Utilities").Subject("CN", "m-1").SanDns("m-1.acme.example");
    current_ = device.Build();
    device_key_ = certacl::testing::Ref(device.key());
    key_ = GenerateKey(KeyType::kEcP256);
    csr_ = RenewalCsr(current_.get(), key_.get());
  }

  // Starts a server with `options`; the config then points at it.
  EstTestServer& StartServer(EstTestServerOptions options = {}) {
    server_ = std::make_unique<EstTestServer>(ca_.cert.get(), ca_.key.get(), std::move(options));
    std::string error;
    EXPECT_TRUE(server_->Start(&error)) << error;
    config_.url = server_->url();
    config_.cafile = dir_.Write("est-tls-ca.pem", server_->TlsCaPem());
    config_.timeout_ms = 5000;
    return *server_;
  }

  std::unique_ptr<EstBackend> Backend() {
    std::string error;
    std::unique_ptr<EstBackend> backend = EstBackend::Create(config_, &error);
    EXPECT_NE(backend, nullptr) << error;
    return backend;
  }

  BackendResult Reenroll(EstBackend& backend) {
    return backend.Enroll(EnrollOp::kSimpleReenroll, csr_.get(), CsrDer(csr_.get()));
  }

  // Writes an RA certificate (clientAuth + id-kp-cmcRA when `ra`) issued by
  // the EST CA, and sets it as the client certificate.
  void UseClientCert(bool ra) {
    std::vector<std::string> eku = {DerOid(kClientAuth)};
    if (ra) eku.push_back(DerOid(kCmcRa));
    CertBuilder b = ca_.Issue();
    b.Subject("CN", ra ? "enroll-bridge-ra" : "m-1").Extension("2.5.29.37", DerSequence(eku));
    X509Ptr cert = b.Build();
    config_.certfile = dir_.Write("client.pem", ToPem(cert.get()));
    config_.keyfile = dir_.Write("client.key", KeyToPem(b.key()));
  }

  void ExpectIssuedFor(const BackendResult& r) {
    ASSERT_EQ(r.status, Status::kOk) << r.message;
    ASSERT_EQ(r.certs.size(), 2u);
    // The server sends the CA first: a client taking the first certificate is wrong.
    EXPECT_EQ(X509_cmp(r.certs[0].get(), ca_.cert.get()), 0);
    X509* leaf = PickLeafByKey(r.certs, key_.get());
    ASSERT_EQ(leaf, r.certs[1].get());
    std::string why;
    EXPECT_TRUE(VerifyIssued(leaf, r.certs, {ca_.cert.get()}, csr_.get(), current_.get(), Now(), &why)) << why;
  }

  TestCa ca_ = TestCa::Create("Acme EST CA");
  X509Ptr current_;
  EvpPkeyPtr device_key_;
  EvpPkeyPtr key_;
  X509ReqPtr csr_;
  TempDir dir_;
  EstConfig config_;
  std::unique_ptr<EstTestServer> server_;
};

// --- Operations ------------------------------------------------------------------

TEST_F(EstBackendTest, CaCerts) {
  EstTestServer& server = StartServer();
  auto backend = Backend();
  BackendResult r = backend->CaCerts();
  ASSERT_EQ(r.status, Status::kOk) << r.message;
  ASSERT_EQ(r.certs.size(), 1u);
  EXPECT_EQ(X509_cmp(r.certs[0].get(), ca_.cert.get()), 0);
  EXPECT_EQ(server.requests("/.well-known/est/cacerts"), 1);
  EXPECT_EQ(server.last_request().method, "GET");
}

TEST_F(EstBackendTest, SimpleReenrollSendsBase64DerAndPicksTheLeafByKey) {
  EstTestServer& server = StartServer();
  auto backend = Backend();
  ExpectIssuedFor(Reenroll(*backend));
  EXPECT_EQ(server.issued(), 1);
  EXPECT_EQ(server.requests("/.well-known/est/simplereenroll"), 1);
  const EstTestServer::Request req = server.last_request();
  EXPECT_EQ(req.method, "POST");
  ASSERT_NE(req.Header("content-type"), nullptr);
  EXPECT_EQ(*req.Header("content-type"), "application/pkcs10");
  EXPECT_EQ(req.Header("content-transfer-encoding"), nullptr);
  EXPECT_EQ(req.Header("authorization"), nullptr);
  // One line of base64 of exactly the DER given: no PEM armour, no line breaks.
  EXPECT_EQ(req.body.find_first_of("\r\n -"), std::string::npos);
  std::string der;
  ASSERT_TRUE(DecodeEstBase64(req.body, &der));
  EXPECT_EQ(der, CsrDer(csr_.get()));
}

TEST_F(EstBackendTest, SimpleEnrollUsesItsOwnPath) {
  EstTestServer& server = StartServer();
  auto backend = Backend();
  ExpectIssuedFor(backend->Enroll(EnrollOp::kSimpleEnroll, csr_.get(), CsrDer(csr_.get())));
  EXPECT_EQ(server.requests("/.well-known/est/simpleenroll"), 1);
  EXPECT_EQ(server.requests("/.well-known/est/simplereenroll"), 0);
}

TEST_F(EstBackendTest, LabelIsPartOfThePath) {
  EstTestServer& server = StartServer();
  config_.url = server.url("iot-ca") + "/";  // a trailing slash is dropped
  auto backend = Backend();
  EXPECT_EQ(backend->Describe(), "est " + server.url("iot-ca"));
  ExpectIssuedFor(Reenroll(*backend));
  EXPECT_EQ(server.requests("/.well-known/est/iot-ca/simplereenroll"), 1);
}

TEST_F(EstBackendTest, PendingWithRetryAfterThenIssuedOnTheSameCsr) {
  EstTestServer& server = StartServer();
  server.SetPending(1, 7);
  auto backend = Backend();
  BackendResult first = Reenroll(*backend);
  EXPECT_EQ(first.status, Status::kPending) << first.message;
  EXPECT_EQ(first.retry_after_s, 7);
  EXPECT_TRUE(first.certs.empty());
  EXPECT_EQ(server.issued(), 0);
  ExpectIssuedFor(Reenroll(*backend));
  EXPECT_EQ(server.issued(), 1);
  EXPECT_EQ(server.requests("/.well-known/est/simplereenroll"), 2);
}

TEST_F(EstBackendTest, CsrAttrsNoneIsOkAndEmpty) {
  EstTestServer& server = StartServer();
  auto backend = Backend();
  BackendResult r = backend->CsrAttrs();
  EXPECT_EQ(r.status, Status::kOk) << r.message;
  EXPECT_EQ(r.der, "");
  EXPECT_EQ(server.requests("/.well-known/est/csrattrs"), 1);
}

TEST_F(EstBackendTest, CsrAttrsDer) {
  EstTestServerOptions options;
  options.csrattrs_der = DerSequence({DerOid("1.2.840.113549.1.9.7"), DerOid("1.2.840.10045.4.3.3")});
  StartServer(options);
  auto backend = Backend();
  BackendResult r = backend->CsrAttrs();
  EXPECT_EQ(r.status, Status::kOk) << r.message;
  EXPECT_EQ(r.der, options.csrattrs_der);
}

TEST_F(EstBackendTest, CsrAttrs404IsNone) {
  EstTestServer& server = StartServer();
  server.RejectAll(404, "Not Found");
  auto backend = Backend();
  BackendResult r = backend->CsrAttrs();
  EXPECT_EQ(r.status, Status::kOk) << r.message;
  EXPECT_EQ(r.der, "");
}

// --- Authentication ----------------------------------------------------------------

TEST_F(EstBackendTest, BasicAuthAccepted) {
  EstTestServerOptions options;
  options.username = "estuser";
  options.password = "estpwd";
  EstTestServer& server = StartServer(options);
  config_.username = "estuser";
  config_.password = "estpwd";
  auto backend = Backend();
  ExpectIssuedFor(Reenroll(*backend));
  ASSERT_NE(server.last_request().Header("authorization"), nullptr);
  EXPECT_EQ(*server.last_request().Header("authorization"), "Basic ZXN0dXNlcjplc3Rwd2Q=");
}

TEST_F(EstBackendTest, WrongPasswordIsRejected401Once) {
  EstTestServerOptions options;
  options.username = "estuser";
  options.password = "estpwd";
  EstTestServer& server = StartServer(options);
  config_.username = "estuser";
  config_.password = "wrong";
  auto backend = Backend();
  BackendResult r = Reenroll(*backend);
  EXPECT_EQ(r.status, Status::kRejected);
  EXPECT_EQ(r.http_status, 401);
  EXPECT_EQ(r.message, "The server was unable to authorize the request.");
  EXPECT_EQ(server.requests("/.well-known/est/simplereenroll"), 1);  // never retried
  EXPECT_EQ(server.issued(), 0);
}

TEST_F(EstBackendTest, RaCertificateRequiredAndGiven) {
  EstTestServerOptions options;
  options.client_certs = EstTestServerOptions::ClientCerts::kRequest;
  options.require_ra = true;
  EstTestServer& server = StartServer(options);
  UseClientCert(/*ra=*/true);
  auto backend = Backend();
  EXPECT_TRUE(backend->ra_mode());
  EXPECT_EQ(backend->Describe(), "est " + server.url() + " as RA");
  ExpectIssuedFor(Reenroll(*backend));
  EXPECT_TRUE(server.last_request().client_cert);
}

TEST_F(EstBackendTest, RaCertificateRequiredButAPlainClientCertGiven) {
  EstTestServerOptions options;
  options.client_certs = EstTestServerOptions::ClientCerts::kRequest;
  options.require_ra = true;
  EstTestServer& server = StartServer(options);
  UseClientCert(/*ra=*/false);
  auto backend = Backend();
  EXPECT_FALSE(backend->ra_mode());
  BackendResult r = Reenroll(*backend);
  EXPECT_EQ(r.status, Status::kRejected);
  EXPECT_EQ(r.http_status, 401);
  EXPECT_EQ(r.message, "An RA certificate (id-kp-cmcRA) is required.");
  EXPECT_TRUE(server.last_request().client_cert);
  EXPECT_EQ(server.issued(), 0);
}

TEST_F(EstBackendTest, RaCertificateRequiredButNoneGiven) {
  EstTestServerOptions options;
  options.client_certs = EstTestServerOptions::ClientCerts::kRequest;
  options.require_ra = true;
  EstTestServer& server = StartServer(options);
  auto backend = Backend();
  EXPECT_FALSE(backend->ra_mode());
  BackendResult r = Reenroll(*backend);
  EXPECT_EQ(r.status, Status::kRejected);
  EXPECT_EQ(r.http_status, 401);
  EXPECT_FALSE(server.last_request().client_cert);
  // /cacerts needs no client authentication.
  EXPECT_EQ(backend->CaCerts().status, Status::kOk);
}

// --- TLS --------------------------------------------------------------------------

TEST_F(EstBackendTest, ServerCappedAtTls12) {
  EstTestServerOptions options;
  options.max_tls_version = TLS1_2_VERSION;  // as libest
  EstTestServer& server = StartServer(options);
  auto backend = Backend();
  ExpectIssuedFor(Reenroll(*backend));
  EXPECT_EQ(server.last_request().tls_version, TLS1_2_VERSION);
}

TEST_F(EstBackendTest, Tls13WhenTheServerAllowsIt) {
  EstTestServer& server = StartServer();
  auto backend = Backend();
  ASSERT_EQ(backend->CaCerts().status, Status::kOk);
  EXPECT_EQ(server.last_request().tls_version, TLS1_3_VERSION);
}

TEST_F(EstBackendTest, WrongServerCaIsUnavailable) {
  EstTestServer& server = StartServer();
  TestCa other = TestCa::Create("Some Other Root");
  config_.cafile = dir_.Write("other.pem", ToPem(other.cert.get()));
  auto backend = Backend();
  BackendResult r = backend->CaCerts();
  EXPECT_EQ(r.status, Status::kUnavailable);
  EXPECT_EQ(r.message, "EST /cacerts: TLS handshake with 127.0.0.1:" + std::to_string(server.port()) +
                           " failed: certificate verify failed (unable to get local issuer certificate)");
  EXPECT_EQ(server.requests("/.well-known/est/cacerts"), 0);
}

TEST_F(EstBackendTest, HostMismatchIsRefused) {
  EstTestServerOptions options;
  options.tls_cn = "est.example";
  options.tls_ip_sans = {"127.0.0.2"};
  options.tls_dns_sans = {"est.example"};
  EstTestServer& server = StartServer(options);
  auto backend = Backend();
  BackendResult r = Reenroll(*backend);
  EXPECT_EQ(r.status, Status::kUnavailable);
  EXPECT_EQ(r.message, "EST /simplereenroll: TLS handshake with 127.0.0.1:" + std::to_string(server.port()) +
                           " failed: server certificate does not match 127.0.0.1");
  EXPECT_EQ(server.issued(), 0);
}

TEST_F(EstBackendTest, CmcRaServerCertificateNeedsNoNameMatch) {
  EstTestServerOptions options;
  options.tls_cn = "est-ra";
  options.tls_ip_sans = {};
  options.tls_cmc_ra = true;  // RFC 7030 3.6.1
  EstTestServer& server = StartServer(options);
  ExpectIssuedFor(Reenroll(*Backend()));
  config_.accept_cmc_ra_server = false;
  BackendResult r = Reenroll(*Backend());
  EXPECT_EQ(r.status, Status::kUnavailable);
  EXPECT_EQ(r.message, "EST /simplereenroll: TLS handshake with 127.0.0.1:" + std::to_string(server.port()) +
                           " failed: server certificate does not match 127.0.0.1");
  EXPECT_EQ(server.issued(), 1);
}

// --- The CA down, slow, or talking nonsense ------------------------------------------

TEST_F(EstBackendTest, ServerDownIsUnavailableThenBack) {
  EstTestServer& server = StartServer();
  auto backend = Backend();
  server.Stop();
  BackendResult r = Reenroll(*backend);
  EXPECT_EQ(r.status, Status::kUnavailable);
  EXPECT_EQ(r.message, "EST /simplereenroll: connection refused by 127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(r.retry_after_s, 0);
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;  // same port
  ExpectIssuedFor(Reenroll(*backend));
}

TEST_F(EstBackendTest, ServerThatNeverAnswersTimesOut) {
  certacl::testing::LoopbackListener silent;  // connects, never answers
  StartServer();
  config_.url = "https://127.0.0.1:" + std::to_string(silent.port()) + "/.well-known/est";
  config_.timeout_ms = 300;
  auto backend = Backend();
  BackendResult r = Reenroll(*backend);
  EXPECT_EQ(r.status, Status::kUnavailable);
  EXPECT_EQ(r.message, "EST /simplereenroll: timed out after 300 ms in the TLS handshake with 127.0.0.1:" +
                           std::to_string(silent.port()));
}

TEST_F(EstBackendTest, GarbageBodyIsUnavailable) {
  EstTestServer& server = StartServer();
  server.AnswerAll(200, "application/pkcs7-mime; smime-type=certs-only", "this is not base64 at all!\r\n");
  auto backend = Backend();
  BackendResult r = Reenroll(*backend);
  EXPECT_EQ(r.status, Status::kUnavailable);
  EXPECT_EQ(r.message, "EST /simplereenroll: malformed answer: the body is neither base64 nor DER");
  // Base64 of something that is not PKCS#7.
  server.AnswerAll(200, "application/pkcs7-mime", "aGVsbG8gd29ybGQ=");
  r = Reenroll(*backend);
  EXPECT_EQ(r.status, Status::kUnavailable);
  EXPECT_EQ(r.message, "EST /simplereenroll: malformed answer: the body is not a DER PKCS#7 structure");
}

TEST_F(EstBackendTest, WrongMediaTypeIsUnavailable) {
  EstTestServer& server = StartServer();
  server.AnswerAll(200, "text/html; charset=utf-8", "<html>login</html>");
  auto backend = Backend();
  BackendResult r = backend->CaCerts();
  EXPECT_EQ(r.status, Status::kUnavailable);
  EXPECT_EQ(r.message, "EST /cacerts: the answer is \"text/html\", not application/pkcs7-mime");
}

TEST_F(EstBackendTest, MediaTypeParametersCaseAndCrlfBase64Accepted) {
  // The server's own answers already carry "; smime-type=certs-only",
  // 64-character CRLF lines and Content-Transfer-Encoding: base64 (as libest);
  // this one is dressed more oddly still.
  EstTestServer& server = StartServer();
  OpenSslPtr<PKCS7, PKCS7_free> p7(PKCS7_new());
  ASSERT_EQ(PKCS7_set_type(p7.get(), NID_pkcs7_signed), 1);
  ASSERT_EQ(PKCS7_content_new(p7.get(), NID_pkcs7_data), 1);
  ASSERT_EQ(PKCS7_add_certificate(p7.get(), ca_.cert.get()), 1);
  const std::string der = ToDer<PKCS7, i2d_PKCS7>(p7.get());
  std::string flat(4 * ((der.size() + 2) / 3) + 1, '\0');
  flat.resize(static_cast<size_t>(EVP_EncodeBlock(reinterpret_cast<unsigned char*>(flat.data()),
                                                  reinterpret_cast<const unsigned char*>(der.data()),
                                                  static_cast<int>(der.size()))));
  std::string body;
  for (size_t i = 0; i < flat.size(); i += 76) body += flat.substr(i, 76) + " \r\n";
  server.AnswerAll(200, "Application/PKCS7-MIME ; smime-type=certs-only ; charset=x", body);
  auto backend = Backend();
  BackendResult r = backend->CaCerts();
  ASSERT_EQ(r.status, Status::kOk) << r.message;
  ASSERT_EQ(r.certs.size(), 1u);
  EXPECT_EQ(X509_cmp(r.certs[0].get(), ca_.cert.get()), 0);
  server.ServeNormally();
  ExpectIssuedFor(Reenroll(*backend));
}

// --- Refusals -----------------------------------------------------------------------

TEST_F(EstBackendTest, RejectionCarriesStatusAndFirstTextLine) {
  EstTestServer& server = StartServer();
  server.RejectAll(403, "Subject not allowed by CA policy\nsecond line");
  auto backend = Backend();
  BackendResult r = Reenroll(*backend);
  EXPECT_EQ(r.status, Status::kRejected);
  EXPECT_EQ(r.http_status, 403);
  EXPECT_EQ(r.message, "Subject not allowed by CA policy");
}

TEST_F(EstBackendTest, RejectionWithoutTextUsesTheReasonPhrase) {
  EstTestServer& server = StartServer();
  server.AnswerAll(400, "", "");
  auto backend = Backend();
  BackendResult r = Reenroll(*backend);
  EXPECT_EQ(r.status, Status::kRejected);
  EXPECT_EQ(r.http_status, 400);
  EXPECT_EQ(r.message, "Bad Request");
}

TEST_F(EstBackendTest, RejectionTextIsSanitised) {
  EstTestServer& server = StartServer();
  server.RejectAll(400, "bad\x01 \xc3\xa9" + std::string(300, 'x'));
  auto backend = Backend();
  BackendResult r = Reenroll(*backend);
  EXPECT_EQ(r.status, Status::kRejected);
  EXPECT_EQ(r.message, "bad? ??" + std::string(193, 'x'));
}

TEST_F(EstBackendTest, ServiceUnavailableKeepsRetryAfter) {
  EstTestServer& server = StartServer();
  server.RejectAll(503, "CA maintenance", 120);
  auto backend = Backend();
  BackendResult r = Reenroll(*backend);
  EXPECT_EQ(r.status, Status::kUnavailable);
  EXPECT_EQ(r.http_status, 503);
  EXPECT_EQ(r.retry_after_s, 120);
  EXPECT_EQ(r.message, "EST /simplereenroll: server error 503 Service Unavailable: CA maintenance");
}

TEST_F(EstBackendTest, ServerErrorIsUnavailable) {
  EstTestServer& server = StartServer();
  server.RejectAll(500, "database on fire", 30);
  auto backend = Backend();
  BackendResult r = Reenroll(*backend);
  EXPECT_EQ(r.status, Status::kUnavailable);
  EXPECT_EQ(r.http_status, 500);
  EXPECT_EQ(r.retry_after_s, 0);  // only 503 says when to come back
  EXPECT_EQ(r.message, "EST /simplereenroll: server error 500 Internal Server Error: database on fire");
}

TEST_F(EstBackendTest, UnexpectedStatusIsUnavailable) {
  EstTestServer& server = StartServer();
  server.AnswerAll(202, "text/plain", "later");
  auto backend = Backend();
  BackendResult r = backend->CaCerts();  // 202 only means something for enroll
  EXPECT_EQ(r.status, Status::kUnavailable);
  EXPECT_EQ(r.message, "EST /cacerts: unexpected HTTP status 202 Accepted");
}

// --- Concurrency --------------------------------------------------------------------

TEST_F(EstBackendTest, ConcurrentRequestsShareOneBackend) {
  EstTestServer& server = StartServer();
  auto backend = Backend();
  constexpr int kThreads = 8;
  std::vector<EvpPkeyPtr> keys;
  std::vector<X509ReqPtr> csrs;
  for (int i = 0; i < kThreads; ++i) {
    keys.push_back(GenerateKey(KeyType::kEcP256));
    csrs.push_back(RenewalCsr(current_.get(), keys.back().get()));
  }
  std::vector<BackendResult> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      results[i] = backend->Enroll(EnrollOp::kSimpleReenroll, csrs[i].get(), CsrDer(csrs[i].get()));
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) {
    ASSERT_EQ(results[i].status, Status::kOk) << results[i].message;
    EXPECT_NE(PickLeafByKey(results[i].certs, keys[i].get()), nullptr);
  }
  EXPECT_EQ(server.issued(), kThreads);
}

// --- Configuration ------------------------------------------------------------------

TEST_F(EstBackendTest, ConfigurationErrors) {
  StartServer();
  const EstConfig good = config_;
  struct Case {
    std::string name;
    EstConfig config;
    std::string error;
  };
  std::vector<Case> cases;
  auto with = [&](std::string name, auto change, std::string error) {
    EstConfig c = good;
    change(c);
    cases.push_back({std::move(name), c, std::move(error)});
  };
  with("http", [](EstConfig& c) { c.url = "http://127.0.0.1:1/.well-known/est"; },
       "the EST url must be https:// (got http://127.0.0.1:1/.well-known/est)");
  with("not well-known", [](EstConfig& c) { c.url = "https://127.0.0.1:1/est"; },
       "the EST url must be https://host[:port]/.well-known/est or .../.well-known/est/<label> (got "
       "https://127.0.0.1:1/est)");
  with("two labels", [](EstConfig& c) { c.url = "https://127.0.0.1:1/.well-known/est/a/b"; },
       "the EST url must be https://host[:port]/.well-known/est or .../.well-known/est/<label> (got "
       "https://127.0.0.1:1/.well-known/est/a/b)");
  with("query", [](EstConfig& c) { c.url = "https://127.0.0.1:1/.well-known/est?x=1"; },
       "the EST url must not have a query or fragment: https://127.0.0.1:1/.well-known/est?x=1");
  with("bad url", [](EstConfig& c) { c.url = "https://user@h/.well-known/est"; },
       "bad EST url: user info in URL is not supported: \"https://user@h/.well-known/est\"");
  with("no cafile", [](EstConfig& c) { c.cafile = ""; },
       "the EST backend needs a cafile (the EST server's trust anchor)");
  with("missing cafile", [](EstConfig& c) { c.cafile = "/nonexistent/ca.pem"; },
       "EST TLS settings: cannot read CA file /nonexistent/ca.pem: No such file or directory");
  with("empty cafile", [&](EstConfig& c) { c.cafile = dir_.Write("empty.pem", "not a pem\n"); },
       "EST TLS settings: CA file " + dir_.File("empty.pem") + " holds no PEM certificate");
  with("cert without key", [&](EstConfig& c) { c.certfile = c.cafile; },
       "EST TLS settings: a TLS client certificate needs both a certificate file and a key file");
  with("user without password", [](EstConfig& c) { c.username = "u"; }, "EST username and password go together");
  with("colon in user", [](EstConfig& c) {
    c.username = "a:b";
    c.password = "p";
  }, "the EST username must not contain ':' and neither may contain control characters");
  with("timeout", [](EstConfig& c) { c.timeout_ms = 0; }, "the EST timeout must be positive");
  for (const Case& c : cases) {
    std::string error;
    EXPECT_EQ(EstBackend::Create(c.config, &error), nullptr) << c.name;
    EXPECT_EQ(error, c.error) << c.name;
  }
}

TEST_F(EstBackendTest, ClientKeyMustMatchItsCertificate) {
  StartServer();
  UseClientCert(/*ra=*/true);
  config_.keyfile = dir_.Write("other.key", KeyToPem(GenerateKey(KeyType::kEcP256).get()));
  std::string error;
  EXPECT_EQ(EstBackend::Create(config_, &error), nullptr);
  EXPECT_EQ(error, "EST TLS settings: client key " + config_.keyfile + " does not match certificate " +
                       config_.certfile);
}

// --- Helpers ------------------------------------------------------------------------

TEST(ParseRetryAfter, DeltaSecondsDatesAndFallbacks) {
  const int64_t now = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT
  auto parse = [now](const char* v) {
    const std::string s = v;
    return ParseRetryAfter(&s, now);
  };
  EXPECT_EQ(ParseRetryAfter(nullptr, now), 60);
  EXPECT_EQ(parse("120"), 120);
  EXPECT_EQ(parse("0"), 1);
  EXPECT_EQ(parse("86401"), 86400);
  EXPECT_EQ(parse("99999999999999999999999"), 86400);
  EXPECT_EQ(parse(""), 60);
  EXPECT_EQ(parse("-5"), 60);
  EXPECT_EQ(parse("soon"), 60);
  EXPECT_EQ(parse("12 s"), 60);
  EXPECT_EQ(parse("Sun, 06 Nov 1994 08:51:07 GMT"), 90);
  EXPECT_EQ(parse("Sunday, 06-Nov-94 08:51:07 GMT"), 90);
  EXPECT_EQ(parse("Sun Nov  6 08:51:07 1994"), 90);
  EXPECT_EQ(parse("Sun, 06 Nov 1994 08:00:00 GMT"), 1);       // in the past
  EXPECT_EQ(parse("Mon, 06 Nov 1995 08:49:37 GMT"), 86400);   // a year away
  EXPECT_EQ(parse("Sun, 06 Nov 1994 08:51:07 UTC"), 60);      // not an HTTP-date
  EXPECT_EQ(parse("Sun, 06 Foo 1994 08:51:07 GMT"), 60);
  EXPECT_EQ(parse("Sun, 06 Nov 1994 08:51:07 GMT x"), 60);
}

TEST(SanitizeLine, FirstPrintableLineAtMost200) {
  EXPECT_EQ(SanitizeLine("  hello\tworld  \r\nmore"), "hello world");
  EXPECT_EQ(SanitizeLine("\nsecond"), "");
  EXPECT_EQ(SanitizeLine("a\x7f" "b\xff"), "a?b?");
  EXPECT_EQ(SanitizeLine(std::string(250, 'y')), std::string(200, 'y'));
}

}  // namespace
}  // namespace certacl::enroll
