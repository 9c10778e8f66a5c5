// attributes.h: the names of the certificate and connection attributes a
// policy can refer to, and their canonical spelling.
//
// Every attribute name that appears in a policy (in `match.` keys and in
// `${...}` topic templates) goes through CanonicalAttribute() once, at load
// time. Identity stores its values under the same canonical names, so the
// engine compares names as plain strings afterwards.
//
//   subject.<name> / issuer.<name>   distinguished-name attributes. <name> is
//       one of the short names below or a dotted OID; a dotted OID with a
//       short name is rewritten to it ("subject.2.5.4.3" -> "subject.CN").
//       Short names: CN O OU L ST C serialNumber DC emailAddress street
//       title givenName surname initials pseudonym UID postalCode
//       organizationIdentifier.
//   san.dns san.uri san.email san.ip   subjectAltName entries.
//   cert.serial      uppercase hex, no separators ("-" prefix if negative).
//   cert.sha256      lowercase hex SHA-256 of the DER certificate.
//   cert.key         "ec-p256" "ec-p384" "ec-p521" "rsa-<bits>" "ed25519"
//                    "ed448", or "<algorithm>-<bits>" for others.
//   cert.not_before, cert.not_after   RFC 3339 UTC, "2027-01-31T23:59:59Z".
//   cert.policy      certificatePolicies OIDs, dotted.
//   ext.<dotted OID> a custom extension whose value is an ASN.1 string,
//                    INTEGER (decimal) or BOOLEAN ("true"/"false").
//   mqtt.client_id   the client id the device presented (not from the cert).
//
// Thread-safe, pure functions.
#ifndef CERTACL_POLICY_ATTRIBUTES_H_
#define CERTACL_POLICY_ATTRIBUTES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace certacl {

// Returns the canonical spelling of `name`, or nullopt (and a sentence in
// *why, if non-null) when `name` is not an attribute a policy can use.
std::optional<std::string> CanonicalAttribute(std::string_view name, std::string* why);

// For a distinguished-name attribute OID given as an OpenSSL NID, the short
// name used after "subject." / "issuer.", or an empty view when certacl has
// no short name for it (the dotted OID is used instead).
std::string_view DnShortName(int nid);

// True for attributes that every certificate has (cert.serial, cert.sha256,
// cert.key, cert.not_before, cert.not_after) and for mqtt.client_id.
bool AlwaysPresent(std::string_view canonical);

// The attributes an Identity formats only when asked (Identity::
// FromCertificate's `computed`). Each is a value formatted from data every
// certificate has, so leaving one out can never hide a malformed value;
// formatting them all is most of what reading a certificate costs at
// connect. A policy asks for the ones it names (Policy::computed).
enum ComputedAttribute : uint32_t {
  kComputedSerial = 1u << 0,  // cert.serial
  kComputedSha256 = 1u << 1,  // cert.sha256
  kComputedKey = 1u << 2,     // cert.key
  kComputedTimes = 1u << 3,   // cert.not_before and cert.not_after (text)
  kComputedAll = (1u << 4) - 1,
};

// The ComputedAttribute bit of a canonical attribute name; 0 for an
// attribute every Identity holds (DN, SAN, cert.policy, ext.*) and for
// mqtt.client_id.
uint32_t ComputedBit(std::string_view canonical);

// True if `s` is a dotted OID such as "1.3.6.1.4.1.37244.2.1".
bool IsDottedOid(std::string_view s);

}  // namespace certacl

#endif  // CERTACL_POLICY_ATTRIBUTES_H_
