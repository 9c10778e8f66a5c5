// est_backend.h: the EST backend of the enroll bridge (RFC 7030, as
// clarified by RFC 8951): a Backend (backend.h) that asks an EST server over
// HTTPS to sign the CSRs the bridge has checked.
//
// Contract:
//  - Requests: POST <url>/simplereenroll or <url>/simpleenroll with
//    Content-Type application/pkcs10 and the base64 (one line, no PEM
//    armour, no Content-Transfer-Encoding) of the CSR's DER, sent
//    unchanged; GET <url>/cacerts and <url>/csrattrs. One request per call,
//    never retried here (the bridge owns retries; a 401 is never repeated).
//  - TLS: >= 1.2 (libest caps at 1.2); the server is verified against
//    `cafile` and by RFC 6125 against the URL's host, or (RFC 7030 3.6.1,
//    when accept_cmc_ra_server) by id-kp-cmcRA in its certificate. An
//    optional client certificate: with id-kp-cmcRA it makes the bridge an RA
//    (ra_mode()). HTTP Basic credentials only ever travel over that
//    verified TLS.
//  - Answers: 200 + application/pkcs7-mime (media type compared without
//    case or parameters; lenient base64, Content-Transfer-Encoding ignored)
//    -> kOk with the certificates in the server's order (the bridge picks
//    the leaf by key). 202 on enroll -> kPending with Retry-After
//    (ParseRetryAfter). /csrattrs: 200 application/csrattrs -> kOk with the
//    DER; 204 or 404 -> kOk with der "". 4xx -> kRejected with http_status
//    and the first line of a text body (printable ASCII, <= 200 chars), or
//    the reason phrase. 5xx -> kUnavailable naming the status (503 keeps
//    its Retry-After). Refused connection, timeout, TLS failure, another
//    status, a wrong media type or a body that does not decode ->
//    kUnavailable with a specific one-line message.
//
// Thread-safe: immutable after Create(); the SSL_CTX is built once and
// shared by concurrent requests.
#ifndef CERTACL_ENROLL_BRIDGE_EST_BACKEND_H_
#define CERTACL_ENROLL_BRIDGE_EST_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "enroll-bridge/backend.h"
#include "plugin/revocation/http_client.h"

namespace certacl::enroll {

struct EstConfig {
  // https://host[:port]/.well-known/est, or .../.well-known/est/<label>.
  std::string url;
  std::string cafile;    // PEM trust anchor(s) for the EST server (required)
  std::string certfile;  // optional TLS client certificate (PEM, chain after the leaf)
  std::string keyfile;   // its unencrypted PEM key (with certfile)
  std::string username;  // optional HTTP Basic credentials (both or neither)
  std::string password;
  int timeout_ms = 10000;  // per request: connect + TLS + send + receive
  bool accept_cmc_ra_server = true;  // RFC 7030 3.6.1: a server cert with id-kp-cmcRA needs no name match
};

class EstBackend final : public Backend {
 public:
  // Null with a one-line *error for a bad configuration: a URL that is not
  // https or not under /.well-known/est, an unreadable or empty cafile, a
  // certfile without keyfile (or the reverse), a key that does not match its
  // certificate, a username without password (or with ':'), a timeout <= 0.
  static std::unique_ptr<EstBackend> Create(const EstConfig& config, std::string* error);

  std::string Describe() const override;  // "est https://.../.well-known/est[ as RA]"
  BackendResult Enroll(EnrollOp op, X509_REQ* csr, std::string_view csr_der) override;
  BackendResult CaCerts() override;
  BackendResult CsrAttrs() override;
  bool ra_mode() const override { return ra_mode_; }

 private:
  EstBackend() = default;
  // One request to <url>/<op>; the answer as a BackendResult.
  BackendResult Call(std::string_view op, const std::string& method, std::string body) const;

  std::string url_;  // without a trailing slash
  std::string authorization_;  // "Basic ..." or ""
  int timeout_ms_ = 0;
  bool ra_mode_ = false;
  std::unique_ptr<revocation::TlsClientContext> tls_;
};

// The seconds a Retry-After header value asks for (RFC 9110 10.2.3):
// delta-seconds, or an HTTP-date (IMF-fixdate, RFC 850 or asctime form)
// taken relative to `now` (Unix seconds). Missing (null) or unparseable:
// 60. The result is clamped to [1, 86400].
int64_t ParseRetryAfter(const std::string* value, int64_t now);

// The first line of `text` with every byte outside printable ASCII replaced
// by '?', blanks trimmed, cut to 200 characters.
std::string SanitizeLine(std::string_view text);

}  // namespace certacl::enroll

#endif  // CERTACL_ENROLL_BRIDGE_EST_BACKEND_H_
