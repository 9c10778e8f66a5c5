// cert_builder.h: build X.509 certificates in-process (OpenSSL 3 API) for
// tests and benchmarks. No files, no openssl CLI, no fixtures to regenerate.
//
// Quick start:
//
//   using namespace certacl::testing;
//
//   // A self-signed leaf, EC P-256 key generated for it:
//   certacl::X509Ptr cert = CertBuilder()
//       .Subject("CN", "m-00000001")
//       .Subject("O", "Acme Utilities")
//       .Subject("OU", "meter").Subject("OU", "meter-3ph")    // repeated OU
//       .Subject("1.3.6.1.4.1.37244.2.1", "FFF1")              // any dotted OID
//       .SanDns("m-00000001.meters.acme.example")
//       .SanIp("2001:db8::1")
//       .Validity(1700000000, 1800000000)                       // epoch seconds
//       .Build();
//   certacl::Identity id = certacl::Identity::FromCertificate(cert.get());
//
//   // A CA and a leaf it issued (issuer DN = CA subject, AKI = CA SKI):
//   TestCa ca = TestCa::Create("Acme Meters Issuing CA");
//   certacl::X509Ptr leaf = ca.Issue().Subject("CN", "m-1").Build();
//   TestCa sub = ca.CreateIntermediate("Acme Sub CA");           // chains work too
//   std::string pem = ToPem(ca.cert.get());                      // for policy files
//
//   // Exact bytes, for the odd cases (NUL, BMP/Universal strings, ...):
//   CertBuilder().SubjectRaw("CN", V_ASN1_UTF8STRING, std::string("a\0b", 3));
//   CertBuilder().SubjectRaw("CN", V_ASN1_BMPSTRING, std::string("\x00\x41", 2));
//   CertBuilder().SubjectMultiValued({{"CN", "alice"}, {"UID", "42"}});  // one RDN
//   CertBuilder().Extension("1.3.6.1.4.1.99999.1", DerUtf8String("gold"));
//
// Rules of the road:
//  - Every setter returns *this; Build() can be called several times.
//  - Without Key(), Build() generates a fresh EC P-256 key (cheap). Without
//    SignedBy(), the certificate is self-signed and its issuer DN is its
//    subject DN (unless overridden with Issuer*/IssuerName).
//  - Without Serial(), a random positive 64-bit serial is used. Without
//    Validity(), the certificate is valid from one hour ago for 365 days.
//  - RSA key generation is slow (worse under sanitizers): use
//    CachedKey(KeyType::kRsa2048, slot) in tests, which generates each
//    (type, slot) key once per process; same slot = same key, different
//    slots = different keys. GenerateKey() always makes a fresh key.
//  - Misuse (an unknown field name, an OID OpenSSL rejects, a SAN IP that
//    does not parse) and OpenSSL failures print a message and abort(): they
//    are bugs in the test, not conditions to test for.
//  - Subject()/Issuer() with the default MBSTRING_UTF8 let OpenSSL pick the
//    ASN.1 type and enforce X.520 size limits (CN at most 64 characters, C
//    exactly 2): use SubjectRaw() for anything outside them.
//  - OpenSSL 3.0 refuses to encode (and to parse) a DN holding a UTF8String
//    with invalid UTF-8 or a BMPString with any surrogate: Build() aborts on
//    those. Put such bytes in a custom Extension() instead.
//
// Thread-safe: builders are independent; CachedKey() is synchronised.
#ifndef CERTACL_TESTS_TESTING_CERT_BUILDER_H_
#define CERTACL_TESTS_TESTING_CERT_BUILDER_H_

#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>  // for users: X509_get0_subject_key_id, GEN_*, ...

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/identity.h"

namespace certacl::testing {

using certacl::EvpPkeyPtr;
using certacl::X509NamePtr;

// ---------------------------------------------------------------------------
// Keys.

enum class KeyType { kEcP256, kEcP384, kEcP521, kRsa2048, kEd25519 };

// A freshly generated key (RSA: slow, prefer CachedKey).
EvpPkeyPtr GenerateKey(KeyType type);

// A process-wide cached key: the same (type, slot) always returns (a new
// reference to) the same key, different slots give different keys.
EvpPkeyPtr CachedKey(KeyType type, int slot = 0);

// A new reference to `key` / `cert` (EVP_PKEY_up_ref / X509_up_ref).
EvpPkeyPtr Ref(EVP_PKEY* key);
certacl::X509Ptr Ref(X509* cert);

// ---------------------------------------------------------------------------
// DER encoders for Extension() values. Each returns one complete TLV.

std::string DerTlv(unsigned char tag, std::string_view contents);  // any tag, raw contents
std::string DerUtf8String(std::string_view s);                     // tag 0x0C, bytes as given
std::string DerString(int asn1_string_type, std::string_view raw);  // e.g. V_ASN1_BMPSTRING
std::string DerInteger(int64_t v);
std::string DerBoolean(bool v);
std::string DerOctetString(std::string_view bytes);
std::string DerOid(std::string_view dotted);
std::string DerNull();
std::string DerSequence(const std::vector<std::string>& elements);  // elements already DER

// ---------------------------------------------------------------------------
// Text helpers.

std::string ToPem(const X509* cert);
std::string ToDer(const X509* cert);
std::string KeyToPem(const EVP_PKEY* key);  // unencrypted PKCS#8
// "a\0b" etc. from a hex string such as "61 00 62" or "610062" (test data).
std::string FromHex(std::string_view hex);

// ---------------------------------------------------------------------------
// CertBuilder.

// One attribute-value assertion of a DN. `type` is MBSTRING_UTF8 (OpenSSL
// picks the ASN.1 type, e.g. PrintableString for C) or a V_ASN1_* string
// type, in which case `value` is stored as the raw content bytes.
struct Ava {
  std::string field;  // short name ("CN", "UID", ...) or dotted OID
  std::string value;
  int type = MBSTRING_UTF8;
};

enum class SanKind { kDns, kUri, kEmail, kIp, kRegisteredId };

class CertBuilder {
 public:
  CertBuilder();
  ~CertBuilder();
  CertBuilder(CertBuilder&&) noexcept;
  CertBuilder& operator=(CertBuilder&&) noexcept;
  CertBuilder(const CertBuilder&) = delete;
  CertBuilder& operator=(const CertBuilder&) = delete;

  // Subject DN: each call appends one RDN with one AVA.
  CertBuilder& Subject(std::string_view field, std::string_view value, int type = MBSTRING_UTF8);
  // Exact content bytes with an explicit ASN.1 type (V_ASN1_UTF8STRING,
  // V_ASN1_BMPSTRING (UTF-16BE), V_ASN1_UNIVERSALSTRING (UTF-32BE),
  // V_ASN1_PRINTABLESTRING, V_ASN1_IA5STRING, V_ASN1_T61STRING, ...).
  CertBuilder& SubjectRaw(std::string_view field, int asn1_type, std::string_view bytes);
  // One RDN holding several AVAs (e.g. "CN=alice+UID=42").
  CertBuilder& SubjectMultiValued(const std::vector<Ava>& avas);

  // Issuer DN override: the same three forms. Once any is called, the
  // issuer DN is built from these calls only (not from the subject or the
  // signing CA). The signature is unaffected.
  CertBuilder& Issuer(std::string_view field, std::string_view value, int type = MBSTRING_UTF8);
  CertBuilder& IssuerRaw(std::string_view field, int asn1_type, std::string_view bytes);
  CertBuilder& IssuerMultiValued(const std::vector<Ava>& avas);
  CertBuilder& IssuerName(const X509_NAME* name);  // replaces any Issuer* so far

  // subjectAltName entries, in order. kIp takes text ("10.0.0.1",
  // "2001:db8::1"); kRegisteredId a dotted OID; the others IA5 text.
  CertBuilder& San(SanKind kind, std::string_view value);
  // Raw content bytes: the address bytes for kIp (any length), the IA5String
  // bytes for kDns/kUri/kEmail.
  CertBuilder& SanRaw(SanKind kind, std::string_view bytes);
  CertBuilder& SanDns(std::string_view v) { return San(SanKind::kDns, v); }
  CertBuilder& SanUri(std::string_view v) { return San(SanKind::kUri, v); }
  CertBuilder& SanEmail(std::string_view v) { return San(SanKind::kEmail, v); }
  CertBuilder& SanIp(std::string_view v) { return San(SanKind::kIp, v); }

  // Serial number as hex ("01AB", "-05" for negative, any leading zeros are
  // ignored: "00FF" is 255) or as a BIGNUM (copied).
  CertBuilder& Serial(std::string_view hex);
  CertBuilder& Serial(const BIGNUM* bn);

  // Validity as seconds since the Unix epoch (UTC).
  CertBuilder& Validity(int64_t not_before, int64_t not_after);

  // certificatePolicies: one PolicyInformation per call, in order.
  CertBuilder& Policy(std::string_view dotted_oid);

  // Any extension: `der_value` is the DER placed in the extnValue OCTET
  // STRING (use the Der* helpers). Added after the standard extensions.
  CertBuilder& Extension(std::string_view dotted_oid, std::string der_value, bool critical = false);

  // authorityKeyIdentifier keyIdentifier / subjectKeyIdentifier bytes.
  // SignedBy() sets the AKI to the issuer's SKI unless AuthorityKeyId() or
  // NoAuthorityKeyId() was called.
  CertBuilder& AuthorityKeyId(std::string_view bytes);
  CertBuilder& NoAuthorityKeyId();
  CertBuilder& SubjectKeyId(std::string_view bytes);
  CertBuilder& SubjectKeyIdFromKey();  // SHA-1 of the public key (RFC 5280 4.2.1.2)

  // basicConstraints CA:TRUE (critical) and keyUsage keyCertSign|cRLSign.
  CertBuilder& Ca(int path_len = -1);

  // The certificate's key pair (a new reference is taken).
  CertBuilder& Key(EVP_PKEY* key);
  // Signed by `issuer_key`; issuer DN = subject of `issuer_cert` (unless
  // overridden). Without this call the certificate is self-signed.
  CertBuilder& SignedBy(X509* issuer_cert, EVP_PKEY* issuer_key);

  // Builds and signs (SHA-256; no digest for Ed25519/Ed448). Never null.
  certacl::X509Ptr Build();

  // The key Build() uses: the one given to Key(), else one generated once
  // on first use (so a cert and its key can be written out together).
  EVP_PKEY* key();

 private:
  struct State;
  void AddStandardExtensions(X509* x);
  std::unique_ptr<State> s_;
};

// ---------------------------------------------------------------------------
// TestCa: a CA certificate and its key.

struct TestCa {
  certacl::X509Ptr cert;
  EvpPkeyPtr key;

  // A self-signed root: subject CN=`common_name`, CA:TRUE, SKI from key.
  static TestCa Create(std::string_view common_name, KeyType type = KeyType::kEcP256);
  // A CA signed by this one (issuer = this CA's subject, AKI = this SKI).
  TestCa CreateIntermediate(std::string_view common_name,
                            KeyType type = KeyType::kEcP256) const;
  // A builder for a certificate issued by this CA: SignedBy(cert, key)
  // preset, so the AKI is this CA's SKI. Add subject etc. and Build().
  CertBuilder Issue() const;
};

}  // namespace certacl::testing

#endif  // CERTACL_TESTS_TESTING_CERT_BUILDER_H_
