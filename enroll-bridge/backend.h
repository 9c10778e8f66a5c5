// backend.h: what the enroll bridge asks of a CA, whatever protocol reaches
// it. The MQTT side (bridge.h) only ever sees this interface; the local CA
// (local_ca_backend.h) and EST (est_backend.h) implement it, and a CMP
// backend (OpenSSL's OSSL_CMP_exec_P10CR_ses) would too, without touching
// the MQTT side.
//
// Every method blocks (network I/O, up to the backend's own timeouts) and is
// called from the bridge's worker threads, possibly several at once: an
// implementation must be thread-safe. No method throws.
#ifndef CERTACL_ENROLL_BRIDGE_BACKEND_H_
#define CERTACL_ENROLL_BRIDGE_BACKEND_H_

#include <openssl/x509.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/openssl_ptr.h"

namespace certacl::enroll {

enum class EnrollOp : uint8_t { kSimpleEnroll, kSimpleReenroll };

struct BackendResult {
  enum class Status : uint8_t {
    kOk,           // certs / der hold the answer
    kPending,      // accepted, not issued yet: repeat the same request after retry_after_s
    kRejected,     // the CA said no (http_status, message)
    kUnavailable,  // could not get an answer (down, timeout, TLS, garbage)
  };
  Status status = Status::kUnavailable;
  std::vector<X509Ptr> certs;  // kOk for Enroll/CaCerts: the CA's answer, any order
  std::string der;             // kOk for CsrAttrs: DER CsrAttrs ("" = none)
  int64_t retry_after_s = 0;   // kPending (from Retry-After); kUnavailable: 0 = unknown
  int http_status = 0;         // kRejected: the CA's status code (e.g. 400, 401)
  std::string message;         // one line, for logs and the device's errorMessage
};

class Backend {
 public:
  virtual ~Backend() = default;

  // For logs: "local-ca CN=Acme Issuing CA", "est https://127.0.0.1:8085/.well-known/est".
  virtual std::string Describe() const = 0;

  // Signs `csr` (already checked by CheckRenewalCsr; `csr_der` is its DER,
  // sent upstream unchanged). kOk: `certs` holds the new certificate and
  // whatever chain the CA sent; the bridge picks the leaf by key and
  // verifies it (VerifyIssued) before delivering anything.
  virtual BackendResult Enroll(EnrollOp op, X509_REQ* csr, std::string_view csr_der) = 0;

  // The CA certificates (EST /cacerts).
  virtual BackendResult CaCerts() = 0;

  // The CSR attributes the CA wants (EST /csrattrs); kOk with der = "" when
  // it has none (EST 204 or 404).
  virtual BackendResult CsrAttrs() = 0;

  // True if a challengePassword in a device CSR may be passed upstream
  // (EST in RA mode, RFC 7030 section 3.7).
  virtual bool ra_mode() const { return false; }
};

}  // namespace certacl::enroll

#endif  // CERTACL_ENROLL_BRIDGE_BACKEND_H_
