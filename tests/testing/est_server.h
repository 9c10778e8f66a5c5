// est_server.h: an in-process EST server (RFC 7030, as clarified by RFC
// 8951) for tests: no EST server is packaged for Debian, so this one is ours.
// It behaves like libest's example server where the bridge must cope with
// real servers, and is honest to the RFC everywhere else:
//
//  - TLS only (OpenSSL), bound to 127.0.0.1 only. Port 0 picks a free port
//    on the first Start(); Stop() closes the listener and every connection
//    (the port then refuses), and Start() binds the same port again ("CA
//    down, then back").
//  - The server certificate is issued by tls_ca() (generated per server):
//    CN and iPAddress SAN 127.0.0.1 unless the options say otherwise. A
//    client trusts the server by putting TlsCaPem() in its CA file.
//  - Paths /.well-known/est/<op> and /.well-known/est/<label>/<op>:
//      cacerts         GET, no client authentication: the issuing CA as
//                      application/pkcs7-mime (certs-only)
//      csrattrs        GET, no client authentication: application/csrattrs
//                      (options.csrattrs_der), or 204 when it is ""
//      simpleenroll,   POST application/pkcs10, base64 DER (whitespace
//      simplereenroll  allowed); a bad body -> 400 text/plain, another
//                      Content-Type -> 415. Issued with LocalCa and answered
//                      as "application/pkcs7-mime; smime-type=certs-only" in
//                      base64 split into 64-character CRLF lines (like
//                      libest, with its Content-Transfer-Encoding header),
//                      holding the CA FIRST and the new leaf last.
//    Anything else: 404 (unknown path) or 405 (wrong method), text/plain.
//  - Authorization of the two enroll operations, in this order:
//      username set: HTTP Basic with these credentials, else 401 with
//        WWW-Authenticate: Basic realm="estrealm";
//      require_ra: the TLS client certificate must carry id-kp-cmcRA, else
//        401 text/plain without WWW-Authenticate (no certificate at all
//        counts as not an RA).
//    Client certificates (when requested or required) are verified against
//    options.client_ca, by default the issuing CA.
//  - Like libest, it does NOT enforce RFC 7030 4.2.2 (a renewal CSR may
//    name anyone) nor proof-of-possession linking: the bridge must.
//  - SetPending(n, s): the first n enroll requests for each distinct public
//    key get 202 with Retry-After: s (libest's manual-enroll simulation);
//    later ones are issued. RejectAll() / AnswerAll() answer every request
//    with a fixed response instead, until ServeNormally().
//
// Thread-safe: every method may be called from any thread while the server
// runs; each connection is served on its own thread (blocking I/O with a 5 s
// socket timeout). Misuse and OpenSSL failures while setting up abort the
// test process (a harness bug, not a condition under test).
#ifndef CERTACL_TESTS_TESTING_EST_SERVER_H_
#define CERTACL_TESTS_TESTING_EST_SERVER_H_

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "enroll-bridge/local_ca.h"
#include "policy/openssl_ptr.h"
#include "tests/testing/cert_builder.h"

namespace certacl::testing {

struct EstTestServerOptions {
  uint16_t port = 0;         // 0: a free port, chosen by the first Start()
  int max_tls_version = 0;   // e.g. TLS1_2_VERSION, as libest; 0: OpenSSL's highest
  // The server certificate (issued by tls_ca()).
  std::string tls_cn = "127.0.0.1";
  std::vector<std::string> tls_ip_sans = {"127.0.0.1"};
  std::vector<std::string> tls_dns_sans;
  bool tls_cmc_ra = false;   // EKU serverAuth + id-kp-cmcRA (RFC 7030 3.6.1)

  enum class ClientCerts { kNone, kRequest, kRequire };
  ClientCerts client_certs = ClientCerts::kNone;
  X509* client_ca = nullptr;  // anchor for client certificates (reference taken); null: the issuing CA

  bool require_ra = false;    // enroll only with a client certificate carrying id-kp-cmcRA
  std::string username;       // non-empty: enroll needs HTTP Basic username:password
  std::string password;

  std::string csrattrs_der;   // the /csrattrs answer (DER CsrAttrs); "": 204
  enroll::CertProfile profile;
};

class EstTestServer {
 public:
  // One request as the server saw it (header names lower-cased).
  struct Request {
    std::string method;
    std::string path;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    bool client_cert = false;  // a verified TLS client certificate came with it
    int tls_version = 0;       // SSL_version(): TLS1_2_VERSION, TLS1_3_VERSION
    std::string sni;           // the server name the client asked for ("" for none)
    const std::string* Header(std::string_view lower_name) const;
  };

  // Issues with `ca_cert` / `ca_key` (references taken). Does not listen
  // until Start().
  EstTestServer(X509* ca_cert, EVP_PKEY* ca_key, EstTestServerOptions options = {});
  ~EstTestServer();  // Stop()
  EstTestServer(const EstTestServer&) = delete;
  EstTestServer& operator=(const EstTestServer&) = delete;

  // Listens on 127.0.0.1:port(). False with *error if the port cannot be
  // bound (e.g. taken meanwhile after a Stop()). Starting twice is a no-op.
  bool Start(std::string* error = nullptr);
  // Closes the listener and cuts every open connection; waits for its threads.
  void Stop();

  uint16_t port() const;
  // "https://127.0.0.1:<port>/.well-known/est", plus "/<label>" if given.
  std::string url(std::string_view label = "") const;
  X509* tls_ca() const { return tls_ca_.cert.get(); }
  std::string TlsCaPem() const;  // for the client's CA file

  // The first n enroll requests for each distinct public key get 202 +
  // Retry-After: retry_after_s; forgets earlier counts. n = 0: off.
  void SetPending(int n, int64_t retry_after_s);
  // Every request (any path) gets `status` with `text` as text/plain (and
  // Retry-After when retry_after_s >= 0).
  void RejectAll(int status, std::string text, int64_t retry_after_s = -1);
  // Every request gets exactly this status, Content-Type and body.
  void AnswerAll(int status, std::string content_type, std::string body);
  void ServeNormally();

  int issued() const { return issued_.load(); }  // certificates issued so far
  int requests(std::string_view path) const;      // requests for this exact path so far
  int handshake_failures() const { return handshake_failures_.load(); }
  Request last_request() const;                   // the latest complete request

 private:
  struct Response {
    int status = 200;
    std::string content_type;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
  };

  void AcceptLoop(int listener);
  void Serve(int fd);
  Response Handle(const Request& request, bool client_ra);
  Response Enroll(const Request& request, bool client_ra);
  Response Text(int status, std::string text) const;

  const EstTestServerOptions options_;
  std::unique_ptr<enroll::LocalCa> ca_;
  TestCa tls_ca_;
  OpenSslPtr<SSL_CTX, SSL_CTX_free> ctx_;

  mutable std::mutex mu_;
  uint16_t port_ = 0;
  int listener_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::vector<std::thread> workers_;
  std::set<int> open_fds_;
  std::map<std::string, int, std::less<>> requests_;
  Request last_request_;
  int pending_n_ = 0;
  int64_t pending_retry_after_s_ = 0;
  std::map<std::string, int> pending_seen_;  // SHA-256 of the SPKI -> 202s given
  bool override_ = false;
  Response override_response_;
  std::atomic<int> issued_{0};
  std::atomic<int> handshake_failures_{0};
};

}  // namespace certacl::testing

#endif  // CERTACL_TESTS_TESTING_EST_SERVER_H_
