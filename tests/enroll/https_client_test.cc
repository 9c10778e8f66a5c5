// https_client_test.cc: the HTTPS side of HttpFetch (plugin/revocation/
// http_client.h): server verification and identity, client certificates,
// TLS versions, deadlines and framing over TLS. Peers are the EST test
// server and, for exact byte sequences, a one-shot scripted TLS server, all
// on 127.0.0.1. No timing assertions.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "plugin/revocation/http_client.h"
#include "tests/testing/cert_builder.h"
#include "tests/testing/loopback_listener.h"
#include "tests/testing/est_server.h"
#include "tests/testing/temp_dir.h"

namespace certacl::revocation {
namespace {

using certacl::testing::CertBuilder;
using certacl::testing::DerOid;
using certacl::testing::DerSequence;
using certacl::testing::EstTestServer;
using certacl::testing::EstTestServerOptions;
using certacl::testing::KeyToPem;
using certacl::testing::TempDir;
using certacl::testing::TestCa;
using certacl::testing::ToPem;

// A listening socket on 127.0.0.1 (free port), optionally never accepting.
using Listener = certacl::testing::LoopbackListener;

// Serves one TLS connection with a certificate for 127.0.0.1 issued by
// `ca`: reads the request head, sends `response`, then closes, with a
// close_notify first only if `close_notify`.
class ScriptedTlsServer {
 public:
  ScriptedTlsServer(const TestCa& ca, std::string response, bool close_notify)
      : response_(std::move(response)), close_notify_(close_notify) {
    CertBuilder b = ca.Issue();
    b.Subject("CN", "127.0.0.1").SanIp("127.0.0.1");
    X509Ptr cert = b.Build();
    ctx_.reset(SSL_CTX_new(TLS_server_method()));
    EXPECT_EQ(SSL_CTX_use_certificate(ctx_.get(), cert.get()), 1);
    EXPECT_EQ(SSL_CTX_use_PrivateKey(ctx_.get(), b.key()), 1);
    thread_ = std::thread([this] { Run(); });
  }
  ~ScriptedTlsServer() { thread_.join(); }
  ScriptedTlsServer(const ScriptedTlsServer&) = delete;
  ScriptedTlsServer& operator=(const ScriptedTlsServer&) = delete;
  std::string url() const { return "https://127.0.0.1:" + std::to_string(listener_.port()) + "/x"; }
  std::string Peer() const { return listener_.Peer(); }

 private:
  void Run() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    pollfd p{listener_.fd(), POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return;
    const int fd = ::accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    {
      OpenSslPtr<SSL, SSL_free> ssl(SSL_new(ctx_.get()));
      SSL_set_fd(ssl.get(), fd);
      if (SSL_accept(ssl.get()) == 1) {
        std::string in;
        char buf[4096];
        size_t got = 0;
        while (in.find("\r\n\r\n") == std::string::npos && SSL_read_ex(ssl.get(), buf, sizeof buf, &got) == 1) {
          in.append(buf, got);
        }
        size_t written = 0;
        SSL_write_ex(ssl.get(), response_.data(), response_.size(), &written);
        if (close_notify_) SSL_shutdown(ssl.get());
      }
      ERR_clear_error();
    }
    ::close(fd);
  }

  Listener listener_;
  OpenSslPtr<SSL_CTX, SSL_CTX_free> ctx_;
  const std::string response_;
  const bool close_notify_;
  std::thread thread_;
};

struct Result {
  bool ok = false;
  HttpResponse response;
  std::string error;
};

class HttpsTest : public ::testing::Test {
 protected:
  std::unique_ptr<TlsClientContext> Tls(TlsClientOptions options) {
    std::string error;
    std::unique_ptr<TlsClientContext> tls = TlsClientContext::Create(options, &error);
    EXPECT_NE(tls, nullptr) << error;
    return tls;
  }
  // Trusting `pem` as the only anchor.
  std::unique_ptr<TlsClientContext> TlsTrusting(const std::string& pem, bool accept_cmc_ra = false) {
    TlsClientOptions options;
    options.ca_file = dir_.Write("anchor.pem", pem);
    options.accept_cmc_ra = accept_cmc_ra;
    return Tls(options);
  }
  Result Get(const std::string& url, const TlsClientContext* tls, int timeout_ms = 5000,
             const std::atomic<bool>* cancel = nullptr) {
    HttpRequest request;
    request.url = url;
    request.tls = tls;
    request.timeout_ms = timeout_ms;
    request.cancel = cancel;
    Result r;
    r.ok = HttpFetch(request, &r.response, &r.error);
    return r;
  }
  EstTestServer& Start(EstTestServerOptions options = {}) {
    server_ = std::make_unique<EstTestServer>(est_ca_.cert.get(), est_ca_.key.get(), std::move(options));
    std::string error;
    EXPECT_TRUE(server_->Start(&error)) << error;
    return *server_;
  }
  std::string Peer() const { return "127.0.0.1:" + std::to_string(server_->port()); }

  TempDir dir_;
  TestCa est_ca_ = TestCa::Create("Acme EST CA");
  std::unique_ptr<EstTestServer> server_;
};

TEST_F(HttpsTest, GetOverVerifiedTls) {
  EstTestServer& server = Start();
  auto tls = TlsTrusting(server.TlsCaPem());
  Result r = Get(server.url() + "/cacerts", tls.get());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.reason, "OK");
  ASSERT_NE(r.response.Header("content-type"), nullptr);
  EXPECT_EQ(*r.response.Header("content-type"), "application/pkcs7-mime");
  EXPECT_FALSE(r.response.body.empty());
  EXPECT_EQ(server.last_request().sni, "");  // no SNI for an IP literal (RFC 6066 section 3)
  EXPECT_EQ(server.last_request().tls_version, TLS1_3_VERSION);
}

TEST_F(HttpsTest, TrustAnchorsFromAStore) {
  EstTestServer& server = Start();
  X509StorePtr store(X509_STORE_new());
  ASSERT_EQ(X509_STORE_add_cert(store.get(), server.tls_ca()), 1);
  TlsClientOptions options;
  options.ca_store = store.get();
  auto tls = Tls(options);
  store.reset();  // the context holds its own reference
  Result r = Get(server.url() + "/cacerts", tls.get());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.response.status, 200);
}

TEST_F(HttpsTest, Tls12OnlyServer) {
  EstTestServerOptions options;
  options.max_tls_version = TLS1_2_VERSION;
  EstTestServer& server = Start(options);
  auto tls = TlsTrusting(server.TlsCaPem());
  Result r = Get(server.url() + "/cacerts", tls.get());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(server.last_request().tls_version, TLS1_2_VERSION);
}

TEST_F(HttpsTest, DnsNameVerifiedAndSentAsSni) {
  EstTestServerOptions options;
  options.tls_cn = "localhost";
  options.tls_ip_sans = {};
  options.tls_dns_sans = {"localhost"};
  EstTestServer& server = Start(options);
  auto tls = TlsTrusting(server.TlsCaPem());
  Result r = Get("https://localhost:" + std::to_string(server.port()) + "/.well-known/est/cacerts", tls.get());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(server.last_request().sni, "localhost");
}

TEST_F(HttpsTest, DnsNameMismatchRefused) {
  EstTestServerOptions options;
  options.tls_cn = "localhost";  // the CN does not count when there are SANs
  options.tls_ip_sans = {"127.0.0.1"};
  options.tls_dns_sans = {"est.example"};
  EstTestServer& server = Start(options);
  auto tls = TlsTrusting(server.TlsCaPem());
  Result r = Get("https://localhost:" + std::to_string(server.port()) + "/.well-known/est/cacerts", tls.get());
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error, "TLS handshake with " + Peer() + " failed: server certificate does not match localhost");
  EXPECT_EQ(server.requests("/.well-known/est/cacerts"), 0);
}

TEST_F(HttpsTest, IpMismatchRefused) {
  EstTestServerOptions options;
  options.tls_cn = "127.0.0.1";
  options.tls_ip_sans = {"127.0.0.2"};
  EstTestServer& server = Start(options);
  auto tls = TlsTrusting(server.TlsCaPem());
  Result r = Get(server.url() + "/cacerts", tls.get());
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error, "TLS handshake with " + Peer() + " failed: server certificate does not match 127.0.0.1");
}

TEST_F(HttpsTest, UntrustedServerRefused) {
  EstTestServer& server = Start();
  auto tls = TlsTrusting(ToPem(TestCa::Create("Unrelated Root").cert.get()));
  Result r = Get(server.url() + "/cacerts", tls.get());
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error, "TLS handshake with " + Peer() +
                         " failed: certificate verify failed (unable to get local issuer certificate)");
}

TEST_F(HttpsTest, CmcRaServerCertificateOnlyWithTheOption) {
  EstTestServerOptions options;
  options.tls_cn = "est-ra";
  options.tls_ip_sans = {};
  options.tls_cmc_ra = true;
  EstTestServer& server = Start(options);
  auto strict = TlsTrusting(server.TlsCaPem(), /*accept_cmc_ra=*/false);
  Result r = Get(server.url() + "/cacerts", strict.get());
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error, "TLS handshake with " + Peer() + " failed: server certificate does not match 127.0.0.1");
  auto lenient = TlsTrusting(server.TlsCaPem(), /*accept_cmc_ra=*/true);
  r = Get(server.url() + "/cacerts", lenient.get());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.response.status, 200);
}

TEST_F(HttpsTest, CmcRaDoesNotExcuseAnUntrustedChain) {
  EstTestServerOptions options;
  options.tls_ip_sans = {};
  options.tls_cmc_ra = true;
  EstTestServer& server = Start(options);
  auto lenient = TlsTrusting(ToPem(TestCa::Create("Unrelated Root").cert.get()), /*accept_cmc_ra=*/true);
  Result r = Get(server.url() + "/cacerts", lenient.get());
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error, "TLS handshake with " + Peer() +
                         " failed: certificate verify failed (unable to get local issuer certificate)");
}

TEST_F(HttpsTest, NameMismatchWithoutCmcRaStaysRefusedWithTheOption) {
  EstTestServerOptions options;
  options.tls_ip_sans = {"127.0.0.2"};
  EstTestServer& server = Start(options);
  auto lenient = TlsTrusting(server.TlsCaPem(), /*accept_cmc_ra=*/true);
  Result r = Get(server.url() + "/cacerts", lenient.get());
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error, "TLS handshake with " + Peer() + " failed: server certificate does not match 127.0.0.1");
}

TEST_F(HttpsTest, ClientCertificateSentWhenRequired) {
  EstTestServerOptions options;
  options.client_certs = EstTestServerOptions::ClientCerts::kRequire;
  EstTestServer& server = Start(options);
  CertBuilder b = est_ca_.Issue();
  b.Subject("CN", "enroll-bridge-ra").Extension("2.5.29.37", DerSequence({DerOid("1.3.6.1.5.5.7.3.2")}));
  X509Ptr cert = b.Build();
  TlsClientOptions with_cert;
  with_cert.ca_file = dir_.Write("anchor.pem", server.TlsCaPem());
  with_cert.cert_file = dir_.Write("client.pem", ToPem(cert.get()));
  with_cert.key_file = dir_.Write("client.key", KeyToPem(b.key()));
  auto tls = Tls(with_cert);
  ASSERT_NE(tls->client_cert(), nullptr);
  EXPECT_EQ(X509_cmp(tls->client_cert(), cert.get()), 0);
  Result r = Get(server.url() + "/cacerts", tls.get());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(server.last_request().client_cert);
}

TEST_F(HttpsTest, MissingClientCertificateTls13) {
  EstTestServerOptions options;
  options.client_certs = EstTestServerOptions::ClientCerts::kRequire;
  EstTestServer& server = Start(options);
  auto tls = TlsTrusting(server.TlsCaPem());
  EXPECT_EQ(tls->client_cert(), nullptr);
  Result r = Get(server.url() + "/cacerts", tls.get());
  ASSERT_FALSE(r.ok);
  // TLS 1.3: the client's handshake is over before the server looks at its certificate.
  EXPECT_EQ(r.error, "TLS error while waiting for the response from " + Peer() + ": tlsv13 alert certificate required");
  server.Stop();  // joins the server's threads: its counters are final
  EXPECT_EQ(server.handshake_failures(), 1);
}

TEST_F(HttpsTest, MissingClientCertificateTls12) {
  EstTestServerOptions options;
  options.client_certs = EstTestServerOptions::ClientCerts::kRequire;
  options.max_tls_version = TLS1_2_VERSION;
  EstTestServer& server = Start(options);
  auto tls = TlsTrusting(server.TlsCaPem());
  Result r = Get(server.url() + "/cacerts", tls.get());
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error, "TLS handshake with " + Peer() + " failed: sslv3 alert handshake failure");
}

TEST_F(HttpsTest, SilentServerTimesOutInTheHandshake) {
  Listener silent;
  auto tls = TlsTrusting(ToPem(est_ca_.cert.get()));
  Result r = Get("https://" + silent.Peer() + "/", tls.get(), 300);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error, "timed out after 300 ms in the TLS handshake with " + silent.Peer());
}

TEST_F(HttpsTest, CancelStopsAHangingHandshake) {
  Listener silent;
  auto tls = TlsTrusting(ToPem(est_ca_.cert.get()));
  std::atomic<bool> cancel{false};
  std::thread canceller([&cancel] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel = true;
  });
  Result r = Get("https://" + silent.Peer() + "/", tls.get(), 30000, &cancel);
  canceller.join();
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error, "cancelled while in the TLS handshake with " + silent.Peer());
}

TEST_F(HttpsTest, RefusedPortFailsAtOnce) {
  uint16_t port = 0;
  {
    Listener closed;
    port = closed.port();
  }
  auto tls = TlsTrusting(ToPem(est_ca_.cert.get()));
  Result r = Get("https://127.0.0.1:" + std::to_string(port) + "/", tls.get(), 30000);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error, "connection refused by 127.0.0.1:" + std::to_string(port));
}

TEST_F(HttpsTest, PlainHttpPeerIsATlsFailure) {
  Listener plain;
  std::thread peer([&plain] {
    pollfd p{plain.fd(), POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return;
    const int fd = ::accept4(plain.fd(), nullptr, nullptr, SOCK_CLOEXEC);
    const std::string answer = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    ::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
    char sink[4096];
    while (::recv(fd, sink, sizeof sink, 0) > 0) {
    }
    ::close(fd);
  });
  auto tls = TlsTrusting(ToPem(est_ca_.cert.get()));
  Result r = Get("https://" + plain.Peer() + "/", tls.get());
  peer.join();
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error, "TLS handshake with " + plain.Peer() + " failed: wrong version number");
}

// --- Framing over TLS -----------------------------------------------------------------

TEST_F(HttpsTest, BodyUntilCloseNeedsACloseNotify) {
  TestCa ca = TestCa::Create("Scripted TLS Root");
  auto tls = TlsTrusting(ToPem(ca.cert.get()));
  {
    ScriptedTlsServer server(ca, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it", /*close_notify=*/true);
    Result r = Get(server.url(), tls.get());
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.response.body, "all of it");
  }
  {
    ScriptedTlsServer server(ca, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it?", /*close_notify=*/false);
    Result r = Get(server.url(), tls.get());
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.error, "connection closed by " + server.Peer() +
                           " without a TLS close_notify: the body may be truncated");
  }
}

TEST_F(HttpsTest, FramedBodiesDoNotNeedACloseNotify) {
  TestCa ca = TestCa::Create("Scripted TLS Root");
  auto tls = TlsTrusting(ToPem(ca.cert.get()));
  {
    ScriptedTlsServer server(ca, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", /*close_notify=*/false);
    Result r = Get(server.url(), tls.get());
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.response.body, "hello");
  }
  {
    ScriptedTlsServer server(ca, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                             /*close_notify=*/false);
    Result r = Get(server.url(), tls.get());
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.response.body, "hello");
  }
  {
    ScriptedTlsServer server(ca, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello", /*close_notify=*/false);
    Result r = Get(server.url(), tls.get());
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.error, "connection closed by " + server.Peer() + " after 5 of 100 body bytes");
  }
}

// --- Settings -------------------------------------------------------------------------

TEST_F(HttpsTest, TlsSettingsMeanHttpsOnly) {
  auto tls = TlsTrusting(ToPem(est_ca_.cert.get()));
  Result r = Get("http://127.0.0.1:9/x", tls.get());
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error, "TLS settings given for a plain http URL \"http://127.0.0.1:9/x\"");
  r = Get("https://127.0.0.1:9/x", nullptr);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error, "https is not supported for \"https://127.0.0.1:9/x\"");
}

TEST_F(HttpsTest, ContextErrors) {
  std::string error;
  TlsClientOptions none;
  EXPECT_EQ(TlsClientContext::Create(none, &error), nullptr);
  EXPECT_EQ(error, "TLS needs its trust anchors from exactly one of a CA file and a CA store");
  TlsClientOptions both;
  both.ca_file = dir_.Write("anchor.pem", ToPem(est_ca_.cert.get()));
  X509StorePtr store(X509_STORE_new());
  both.ca_store = store.get();
  EXPECT_EQ(TlsClientContext::Create(both, &error), nullptr);
  EXPECT_EQ(error, "TLS needs its trust anchors from exactly one of a CA file and a CA store");
  TlsClientOptions no_key;
  no_key.ca_file = both.ca_file;
  no_key.cert_file = both.ca_file;
  no_key.key_file = dir_.Write("bad.key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  EXPECT_EQ(TlsClientContext::Create(no_key, &error), nullptr);
  EXPECT_EQ(error, "client key " + no_key.key_file + " holds no unencrypted PEM private key");
}

TEST(ParseUrl, HttpsDefaultsTo443) {
  HttpUrl u;
  std::string error;
  ASSERT_TRUE(ParseUrl("HTTPS://est.example/.well-known/est", &u, &error)) << error;
  EXPECT_TRUE(u.https);
  EXPECT_EQ(u.port, 443);
  EXPECT_EQ(u.path_and_query, "/.well-known/est");
  ASSERT_TRUE(ParseUrl("http://h/", &u, &error)) << error;
  EXPECT_FALSE(u.https);
  EXPECT_EQ(u.port, 80);
  EXPECT_FALSE(ParseUrl("ftp://h/", &u, &error));
  EXPECT_FALSE(ParseHttpUrl("https://h/", &u, &error));
}

TEST(HasCmcRaEku, OnlyWithTheOid) {
  TestCa ca = TestCa::Create("Root");
  CertBuilder ra = ca.Issue();
  ra.Subject("CN", "ra").Extension("2.5.29.37",
                                   DerSequence({DerOid("1.3.6.1.5.5.7.3.2"), DerOid("1.3.6.1.5.5.7.3.28")}));
  CertBuilder client = ca.Issue();
  client.Subject("CN", "c").Extension("2.5.29.37", DerSequence({DerOid("1.3.6.1.5.5.7.3.2")}));
  EXPECT_TRUE(HasCmcRaEku(ra.Build().get()));
  EXPECT_FALSE(HasCmcRaEku(client.Build().get()));
  EXPECT_FALSE(HasCmcRaEku(ca.cert.get()));
  EXPECT_FALSE(HasCmcRaEku(nullptr));
}

}  // namespace
}  // namespace certacl::revocation
