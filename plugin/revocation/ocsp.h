// ocsp.h: build an OCSP request for one certificate and verify the answer
// (RFC 6960, RFC 5019 profile). No I/O: the caller POSTs der() with
// HttpFetch (Content-Type application/ocsp-request) and hands the body to
// VerifyOcspResponse.
//
// VerifyOcspResponse accepts a response only when all of these hold:
//  - it is DER (nothing trailing), responseStatus is successful (otherwise
//    the error names the status: "OCSP responder says tryLater"), and it is
//    a basic response;
//  - it is signed by `issuer` itself or by a delegated responder certificate
//    issued directly by `issuer` with EKU id-kp-OCSPSigning (verified with a
//    private X509_STORE holding only `issuer` as trust anchor, partial chains
//    allowed so an intermediate issuer works; the responder certificate's
//    validity is checked against the real clock, everything else against
//    `now`);
//  - it holds a SingleResponse for exactly the request's CertID;
//  - thisUpdate <= now + skew_s; if nextUpdate is present, nextUpdate >=
//    now - skew_s (and >= thisUpdate); if absent, thisUpdate >= now -
//    max_age_s (max_age_s < 0 disables that check; the caller must then
//    bound the cache lifetime itself);
//  - when the request carried a nonce, the response carries the same one or
//    none (pre-signed responses have none; freshness covers them).
// The answer's status may still be kUnknown (the responder does not know the
// certificate): treat it as "not good".
//
// Thread-safe: an OcspRequest is immutable after Create() and may be used by
// several VerifyOcspResponse calls at once; `issuer` is only read (its
// reference count is touched). Cost (EC P-256, 2-vCPU box under load): about
// 0.4-0.8 ms per VerifyOcspResponse (two signature checks and a chain build
// in a fresh X509_STORE), ~10 us per Create(). Both clear the calling
// thread's OpenSSL error queue.
#ifndef CERTACL_PLUGIN_REVOCATION_OCSP_H_
#define CERTACL_PLUGIN_REVOCATION_OCSP_H_

#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "policy/openssl_ptr.h"

namespace certacl::revocation {

enum class CertStatus : uint8_t { kGood, kRevoked, kUnknown };

// "good", "revoked", "unknown".
const char* CertStatusName(CertStatus status);

struct OcspAnswer {
  CertStatus status = CertStatus::kUnknown;
  int reason = -1;          // CRLReason when revoked and given, else -1
  int64_t revoked_at = 0;   // Unix seconds, when revoked
  int64_t this_update = 0;  // Unix seconds
  int64_t next_update = 0;  // Unix seconds, 0 when absent
};

// One CertID (SHA-1, as RFC 5019 responders expect) for (leaf, issuer).
class OcspRequest {
 public:
  // `issuer` must be the certificate whose subject is the leaf's issuer
  // name (checked; its signature over the leaf is not). With `nonce`, a
  // random 16-byte nonce extension is added (defeats responder caching).
  static std::unique_ptr<OcspRequest> Create(const X509* leaf, const X509* issuer, bool nonce,
                                              std::string* error);
  ~OcspRequest();
  OcspRequest(const OcspRequest&) = delete;
  OcspRequest& operator=(const OcspRequest&) = delete;

  const std::string& der() const { return der_; }  // the DER OCSPRequest to POST
  const OCSP_CERTID* cert_id() const { return id_.get(); }
  bool has_nonce() const { return !nonce_.empty(); }
  // The nonce extension's value (the DER inside extnValue), "" without one.
  const std::string& nonce() const { return nonce_; }

 private:
  OcspRequest() = default;
  OpenSslPtr<OCSP_CERTID, OCSP_CERTID_free> id_;
  std::string der_;
  std::string nonce_;
};

// See the contract above. `now`, thisUpdate etc. are Unix seconds. On
// success fills *out; on failure *error is one line such as "OCSP response
// is not DER", "OCSP responder says tryLater", "OCSP response signer is not
// authorized: ...", "OCSP response has no answer for this certificate",
// "OCSP response is stale: nextUpdate ... is before now ...", "OCSP response
// thisUpdate ... is in the future ...", "OCSP response nonce does not match
// the request".
bool VerifyOcspResponse(std::string_view der, const OcspRequest& request, X509* issuer, int64_t now,
                        int64_t skew_s, int64_t max_age_s, OcspAnswer* out, std::string* error);

}  // namespace certacl::revocation

#endif  // CERTACL_PLUGIN_REVOCATION_OCSP_H_
