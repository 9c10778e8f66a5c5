// csr_check.h: the checks the enroll bridge makes on a renewal CSR before
// any CA sees it (issue 5), in this order: size, parse, proof of possession
// (the CSR's signature), key policy, and RFC 7030 section 4.2.2 — the CSR's
// Subject and subjectAltName must equal the current certificate's (subject
// compared canonically, SANs as a set) — plus no ChangeSubjectName and no
// challengePassword unless the bridge runs as an RA. Real EST servers do not
// all enforce 4.2.2 (libest's example server does not): the bridge must.
//
// Pure (OpenSSL only), thread-safe, no I/O. Every refusal has a stable
// error code from the bridge's documented set and a one-line reason.
#ifndef CERTACL_ENROLL_BRIDGE_CSR_CHECK_H_
#define CERTACL_ENROLL_BRIDGE_CSR_CHECK_H_

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "policy/openssl_ptr.h"

namespace certacl::enroll {

using X509ReqPtr = OpenSslPtr<X509_REQ, X509_REQ_free>;

// Error codes of the `rejected` payload that come from CSR checks.
enum class CsrError {
  kNone,
  kInvalidCsr,       // too large, not PEM/base64 DER, not a CSR, bad signature
  kKeyPolicy,        // key type or size not allowed
  kSubjectMismatch,  // subject/SAN differ from the current certificate, or ChangeSubjectName
};
const char* CsrErrorName(CsrError e);  // "InvalidCsr", "KeyPolicy", "SubjectMismatch"

struct KeyPolicy {
  bool allow_ec_p256 = true;
  bool allow_ec_p384 = true;
  bool allow_ed25519 = false;
  int min_rsa_bits = 2048;  // 0: RSA not allowed
};

struct CsrCheckOptions {
  size_t max_bytes = 16 * 1024;  // of the CSR text as received
  KeyPolicy keys;
  bool ra_mode = false;  // challengePassword allowed (passed through to an EST RA)
};

struct CsrCheckResult {
  CsrError error = CsrError::kNone;
  std::string reason;  // one line; empty when accepted
  X509ReqPtr csr;      // the parsed CSR when accepted
  bool ok() const { return error == CsrError::kNone; }
};

// Decodes a CSR given as PEM ("-----BEGIN CERTIFICATE REQUEST-----", also
// "NEW CERTIFICATE REQUEST") or as base64 DER (whitespace and line breaks
// ignored, RFC 8951 leniency). Returns null and sets *why on failure.
X509ReqPtr DecodeCsr(std::string_view text, size_t max_bytes, std::string* why);

// Whether two sets of subjectAltNames are equal as sets (order and
// duplicates do not count); null is the empty set.
bool SameNameSet(const GENERAL_NAMES* a, const GENERAL_NAMES* b);

// All checks against `current`, the certificate the device is connected
// with (the one the broker verified).
CsrCheckResult CheckRenewalCsr(std::string_view text, X509* current, const CsrCheckOptions& options);

}  // namespace certacl::enroll

#endif  // CERTACL_ENROLL_BRIDGE_CSR_CHECK_H_
