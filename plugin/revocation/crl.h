// crl.h: one verified X.509 CRL (RFC 5280 section 5), reduced to what a
// revocation check needs: the set of revoked serials and the CRL's times and
// number.
//
// Contract:
//  - Crl::Parse() takes the CRL as downloaded (DER, or PEM with a
//    "-----BEGIN X509 CRL-----" block) and the CA certificate that must have
//    issued it. It returns a Crl only if every check below passes; otherwise
//    nullptr, with *error set to a specific one-line reason. It never
//    decodes the CRL into an X509_CRL: a strict DER walker reads the
//    CertificateList in place (definite minimal lengths, every element
//    inside its parent, nothing trailing, tbs and outer
//    AlgorithmIdentifiers byte-identical, serials at most 126 octets), and
//    the signature is verified once over the raw tbsCertList bytes. At 1M
//    entries this takes ~0.1 s (Release) and keeps only the SerialSet
//    (~44 bytes per serial); a PEM input is first decoded to a DER
//    copy. Bounds-checked throughout: safe on hostile input.
//  - Checks: the CRL's issuer Name equals the issuer's subject
//    (X509_NAME_cmp); a CRL authorityKeyIdentifier keyIdentifier, when the
//    issuer has a subjectKeyIdentifier, matches it; the issuer's keyUsage,
//    if present, has cRLSign; the signature verifies with the issuer's key;
//    thisUpdate <= now + skew_s; nextUpdate, if present, >= thisUpdate.
//    nextUpdate is NOT compared with `now`: staleness is the caller's policy.
//  - Signature algorithms: ECDSA and RSA PKCS#1 v1.5 with SHA-256/384/512,
//    Ed25519, Ed448. Anything else (RSA-PSS, SHA-1, SHA-224, ...) fails with
//    "unsupported signature algorithm <name>" (no X509_CRL fallback).
//  - Only complete, direct CRLs are accepted: v2 (or v1 with no extensions
//    at all); a deltaCRLIndicator is rejected ("delta CRLs are not
//    supported"); an issuingDistributionPoint is accepted only without
//    distributionPoint, onlySomeReasons, indirectCRL, onlyContainsCACerts and
//    onlyContainsAttributeCerts ("partitioned/indirect CRLs are not
//    supported"); any other critical CRL extension is rejected, naming its
//    OID. Entry extensions: reasonCode (must be a valid code; removeFromCRL
//    is rejected) and invalidityDate are accepted, certificateIssuer and any
//    other critical entry extension are rejected. Every listed serial
//    (including certificateHold entries) counts as revoked.
//  - Times are UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ),
//    as RFC 5280 requires; any other form is rejected.
//  - A Crl is immutable; its const methods may be called from any thread.
#ifndef CERTACL_PLUGIN_REVOCATION_CRL_H_
#define CERTACL_PLUGIN_REVOCATION_CRL_H_

#include <openssl/x509.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "plugin/revocation/serial_set.h"

namespace certacl::revocation {

class Crl {
 public:
  // Longest serial (content octets) accepted in a CRL entry.
  static constexpr size_t kMaxSerialLength = 126;

  // data: DER, or PEM. issuer: the CA certificate that must have signed it.
  // now / skew_s: Unix seconds. nullptr + *error on any failure.
  static std::unique_ptr<const Crl> Parse(std::string_view data, X509* issuer, int64_t now, int64_t skew_s,
                                          std::string* error);

  // `canonical_serial`: SerialKey() of the certificate's serial.
  bool IsRevoked(std::string_view canonical_serial) const { return serials_.Contains(canonical_serial); }
  int64_t this_update() const { return this_update_; }
  int64_t next_update() const { return next_update_; }  // 0 when the CRL has none
  const std::string& number() const { return number_; }  // cRLNumber, canonical; "" when absent
  size_t size() const { return serials_.size(); }       // distinct revoked serials
  size_t MemoryUsage() const { return sizeof(*this) + number_.capacity() + serials_.MemoryUsage(); }
  const SerialSet& serials() const { return serials_; }

  Crl(const Crl&) = delete;
  Crl& operator=(const Crl&) = delete;

 private:
  Crl() = default;

  SerialSet serials_;
  int64_t this_update_ = 0;
  int64_t next_update_ = 0;
  std::string number_;
};

// Compares two canonical non-negative integers (cRLNumber values): <0, 0, >0.
// "" compares as 0.
int CompareCrlNumbers(std::string_view a, std::string_view b);

}  // namespace certacl::revocation

#endif  // CERTACL_PLUGIN_REVOCATION_CRL_H_
