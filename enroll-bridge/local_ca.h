// local_ca.h: the embedded local-CA backend of the enroll bridge (issue 5),
// and the checks the bridge makes on any certificate a CA hands back before
// it is delivered to a device.
//
// LocalCa signs a checked CSR with a CA key under a small profile (validity,
// client-auth extensions); the subject and subjectAltName are copied from
// the CSR, which CheckRenewalCsr() has already held to the device's current
// certificate. VerifyIssued() is backend-neutral: whatever EST (or, later,
// CMP) returns, the leaf is picked by public key (never by position), must
// chain to the expected CA, carry the CSR's key, and keep the device's
// identity (subject and SAN set of its current certificate).
//
// Pure (OpenSSL only), no I/O except LocalCa::Load(); a LocalCa is
// immutable and may be used from several threads.
#ifndef CERTACL_ENROLL_BRIDGE_LOCAL_CA_H_
#define CERTACL_ENROLL_BRIDGE_LOCAL_CA_H_

#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "policy/openssl_ptr.h"

namespace certacl::enroll {

struct CertProfile {
  int64_t days = 365;
  int64_t backdate_s = 300;  // notBefore this much before now (clock skew)
  // In OpenSSL's extension syntax (x509v3_config(5)); "" leaves it out.
  std::string key_usage = "critical,digitalSignature";
  std::string extended_key_usage = "clientAuth";
};

// Whether `profile`'s extension values are ones OpenSSL accepts; false with
// *why otherwise (checked when the bridge starts, not at the first request).
bool CheckProfile(const CertProfile& profile, std::string* why);

class LocalCa {
 public:
  // Reads a PEM CA certificate and its PEM private key. Fails (with a
  // specific *error) if either is unreadable, the key does not match the
  // certificate, or the certificate is not a CA (basicConstraints CA:TRUE).
  static std::unique_ptr<LocalCa> Load(const std::string& cert_file, const std::string& key_file, std::string* error);
  static std::unique_ptr<LocalCa> FromObjects(X509* cert, EVP_PKEY* key, std::string* error);  // takes references

  // A certificate for `csr` (already checked): its subject, key and SANs;
  // a random positive 16-octet serial; CA:FALSE, the profile's key usage
  // and extended key usage, SKI/AKI. `now` is Unix seconds.
  X509Ptr Issue(X509_REQ* csr, const CertProfile& profile, int64_t now, std::string* error) const;

  X509* cert() const { return cert_.get(); }

 private:
  LocalCa() = default;
  X509Ptr cert_;
  EvpPkeyPtr key_;
};

// The certificate among `certs` (a CA's answer, any order) whose public key
// is `key`; null if none.
X509* PickLeafByKey(const std::vector<X509Ptr>& certs, EVP_PKEY* key);

// Checks a certificate a CA issued for `csr` before it goes to the device:
// it chains (through `certs`, the rest of the CA's answer) to one of
// `anchors`, is valid at `now`, carries the CSR's public key, and has the
// same subject and SAN set as `current`. False with *why otherwise.
bool VerifyIssued(X509* leaf, const std::vector<X509Ptr>& certs, const std::vector<X509*>& anchors, X509_REQ* csr,
                  X509* current, int64_t now, std::string* why);

}  // namespace certacl::enroll

#endif  // CERTACL_ENROLL_BRIDGE_LOCAL_CA_H_
