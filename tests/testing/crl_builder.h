// crl_builder.h: build signed X.509 CRLs in-process for tests and
// benchmarks, fast enough for 1,000,000 entries (about a second: the DER is
// written directly and the tbsCertList signed once with EVP_DigestSign; no
// X509_CRL, no X509_REVOKED per entry).
//
// Quick start:
//
//   using namespace certacl::testing;
//
//   TestCa ca = TestCa::Create("Acme Devices Issuing CA");
//   CrlSpec spec;
//   spec.serials = {SerialFromUint64(0x1001), SerialFromUint64(0x1002)};
//   spec.crl_number = SerialFromUint64(7);
//   std::string der = BuildCrlDer(ca, spec);       // v2, signed, AKI = CA SKI
//   std::string pem = ToPemCrl(der);
//
//   spec.serials = RandomSerials(1'000'000, /*seed=*/42);   // 16-byte serials
//   std::string big = BuildCrlDer(ca, spec);                 // ~35 MB
//
//   // Broken on purpose (each knob changes one thing):
//   spec.corrupt_signature = true;            // flips a bit of the signature
//   spec.sign_with = other_key.get();         // right name, wrong key
//   spec.delta_base = SerialFromUint64(6);    // deltaCRLIndicator
//   spec.idp = IdpSpec{.distribution_point_uri = "http://crl.example/1.crl"};
//   spec.extensions.push_back({"1.2.3.4", DerNull(), /*critical=*/true});
//
// Rules of the road:
//  - Serials are canonical serial keys (see plugin/revocation/serial_set.h):
//    the bytes are written verbatim as the INTEGER content, so a test can
//    also write a non-minimal (padded) encoding on purpose.
//  - Extensions come in the order AKI, cRLNumber, deltaCRLIndicator, IDP,
//    then spec.extensions. Entry extensions: reasonCode, then
//    spec.entry_extensions, the same on every entry.
//  - Times are UTCTime before 2050 (GeneralizedTime from 2050, or always
//    with generalized_time).
//  - The signature algorithm follows the key: ECDSA or RSA PKCS#1 v1.5 with
//    spec.digest, Ed25519/Ed448 pure.
//  - Misuse and OpenSSL failures print a message and abort() (test bugs).
// Thread-safe: no shared state.
#ifndef CERTACL_TESTS_TESTING_CRL_BUILDER_H_
#define CERTACL_TESTS_TESTING_CRL_BUILDER_H_

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/openssl_ptr.h"
#include "tests/testing/cert_builder.h"

namespace certacl::testing {

using X509CrlPtr = certacl::OpenSslPtr<X509_CRL, X509_CRL_free>;

// One extension: `der_value` is the DER placed in the extnValue OCTET STRING.
struct CrlExtensionSpec {
  std::string oid;  // dotted
  std::string der_value;
  bool critical = false;
};

// issuingDistributionPoint (always written critical, as RFC 5280 requires).
struct IdpSpec {
  std::string distribution_point_uri;  // "" = no distributionPoint
  bool only_user = false;
  bool only_ca = false;
  bool only_some_reasons = false;  // onlySomeReasons = {keyCompromise}
  bool indirect = false;
  bool only_attr = false;
};

struct CrlSpec {
  std::vector<std::string> serials;  // canonical serials, in this order
  int64_t this_update = 1'800'000'000;
  std::optional<int64_t> next_update = 1'800'000'000 + 7 * 86400;
  int64_t revocation_date = 1'800'000'000 - 86400;  // same on every entry
  std::optional<std::string> crl_number;            // canonical INTEGER content
  std::optional<int> reason_code;                   // reasonCode on every entry
  std::vector<CrlExtensionSpec> entry_extensions;   // on every entry
  std::vector<CrlExtensionSpec> extensions;         // extra crlExtensions
  std::optional<std::string> delta_base;            // deltaCRLIndicator BaseCRLNumber
  std::optional<IdpSpec> idp;
  bool authority_key_id = true;                 // AKI = issuer's SKI, if it has one
  std::optional<std::string> authority_key_id_override;  // AKI keyIdentifier bytes
  const X509_NAME* issuer_name = nullptr;       // not owned; default issuer subject
  bool version_absent = false;                  // v1 layout (no version field)
  bool empty_revoked_list = false;              // no serials: write an empty SEQUENCE
  bool generalized_time = false;                // GeneralizedTime for every time
  std::string digest = "sha256";                // ignored for Ed25519/Ed448
  EVP_PKEY* sign_with = nullptr;                // not owned; default the CA key
  bool corrupt_signature = false;               // flip one bit of the signature
  std::string alg_der_override;                 // both AlgorithmIdentifiers (DER)
  std::string inner_alg_der_override;           // tbsCertList's only (DER)
};

// A signed DER CRL issued by `ca` (or by `issuer` with `key`).
std::string BuildCrlDer(const TestCa& ca, const CrlSpec& spec);
std::string BuildCrlDer(X509* issuer, EVP_PKEY* key, const CrlSpec& spec);

// PEM "X509 CRL" text of a DER CRL.
std::string ToPemCrl(std::string_view der);

// d2i_X509_CRL of `der` (aborts if OpenSSL rejects it).
X509CrlPtr ParseCrlWithOpenSsl(std::string_view der);

// The canonical serial key of a non-negative integer (0 -> "\x00",
// 0x80 -> "\x00\x80").
std::string SerialFromUint64(uint64_t v);

// `n` deterministic pseudo-random positive serials of `length` octets
// (first octet 0x01..0x7F, so already canonical), the same for the same
// seed. Not deduplicated (collisions are negligible at 16 octets).
std::vector<std::string> RandomSerials(size_t n, uint64_t seed, size_t length = 16);

}  // namespace certacl::testing

#endif  // CERTACL_TESTS_TESTING_CRL_BUILDER_H_
