// identity.h: what certacl knows about a device, read once from its X.509
// certificate.
//
// Identity::FromCertificate() extracts every attribute named in
// attributes.h, except the computed ones (cert.serial, cert.sha256,
// cert.key, the cert.not_before/not_after text) it is not asked for.
// Values are UTF-8: every ASN.1 string type (UTF8String, PrintableString,
// IA5String, T61String, BMPString, UniversalString, ...) is converted. A
// value that cannot be represented safely (embedded NUL, invalid UTF-8 /
// unconvertible encoding, C0/C1 control characters, more than
// kMaxValuesPerAttribute values for one attribute) is kept OUT of the
// identity, so it can never match a rule, and a sentence saying which
// attribute and why is added to rejected(). A policy refuses such
// certificates at connect unless it sets `connect.allow_malformed = true`.
//
// Normalisation at extraction (never at match time): san.dns is lowercased
// (DNS names are case-insensitive); the domain part of san.email is
// lowercased; san.ip is printed by inet_ntop (IPv4 dotted quad, IPv6
// RFC 5952 form). Nothing else is normalised: matching is byte-exact UTF-8.
//
// An Identity is immutable after construction and safe to share between
// threads for reading. It holds a reference to the certificate (needed for
// the `ca = ...` signature check).
#ifndef CERTACL_POLICY_IDENTITY_H_
#define CERTACL_POLICY_IDENTITY_H_

#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/attributes.h"
#include "policy/openssl_ptr.h"

namespace certacl {

class Identity {
 public:
  static constexpr size_t kMaxValuesPerAttribute = 64;
  static constexpr size_t kMaxValueBytes = 4096;

  struct Attribute {
    std::string name;                 // canonical, see attributes.h
    std::vector<std::string> values;  // in certificate order, never empty
  };

  // Reads `cert` (does not take ownership; takes its own reference).
  // Never fails: what cannot be read is reported in rejected().
  // `computed` (ComputedAttribute bits, attributes.h) says which computed
  // attributes to format; the others are absent from Values() and
  // attributes(). Every other attribute, the validity times and the
  // authority key id are always read, so rejected() does not depend on it.
  static Identity FromCertificate(X509* cert, uint32_t computed = kComputedAll);

  // Parses the first PEM certificate in `pem`. On failure returns false and
  // sets *error to a sentence.
  static bool FromPem(std::string_view pem, Identity* out, std::string* error);

  Identity() = default;
  Identity(Identity&&) noexcept = default;
  Identity& operator=(Identity&&) noexcept = default;
  Identity(const Identity&);
  Identity& operator=(const Identity&);

  // Values of a canonical attribute, or nullptr if the certificate has none.
  const std::vector<std::string>* Values(std::string_view canonical) const;

  // The `computed` FromCertificate() was given (kComputedAll for an
  // identity read without a certificate).
  uint32_t computed() const { return computed_; }

  // All attributes, sorted by name.
  const std::vector<Attribute>& attributes() const { return attributes_; }

  // One sentence per value left out, e.g.
  //   "subject.CN: embedded NUL byte at offset 3".
  const std::vector<std::string>& rejected() const { return rejected_; }

  // Validity, seconds since the Unix epoch (UTC).
  int64_t not_before() const { return not_before_; }
  int64_t not_after() const { return not_after_; }

  // Raw authorityKeyIdentifier keyIdentifier bytes; empty if absent.
  const std::string& authority_key_id() const { return authority_key_id_; }

  // The certificate itself (never null for an identity read from one).
  X509* certificate() const { return cert_.get(); }

  // One line for logs: subject (RFC 2253, non-ASCII and controls escaped),
  // serial (read from the certificate if cert.serial was not computed).
  // Safe to print: contains no control characters.
  std::string Describe() const;

 private:
  friend class IdentityBuilder;
  std::vector<Attribute> attributes_;
  std::vector<std::string> rejected_;
  int64_t not_before_ = 0;
  int64_t not_after_ = 0;
  std::string authority_key_id_;
  uint32_t computed_ = kComputedAll;
  X509Ptr cert_;
};

// Validates a candidate attribute value: returns an empty string if `v` is
// acceptable (valid UTF-8, no NUL, no C0/C1 control characters, at most
// kMaxValueBytes), otherwise the reason ("embedded NUL byte at offset 3").
std::string CheckValue(std::string_view v);

}  // namespace certacl

#endif  // CERTACL_POLICY_IDENTITY_H_
