// crl_test.cc: Crl::Parse (DER walker, signature, issuer and extension
// checks) against CRLs from tests/testing/crl_builder.h and from OpenSSL's
// own X509_CRL API, plus malformed and hostile inputs.
#include "plugin/revocation/crl.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <vector>

#include "plugin/revocation/serial_set.h"
#include "policy/openssl_ptr.h"
#include "tests/testing/cert_builder.h"
#include "tests/testing/crl_builder.h"

namespace certacl::revocation {
namespace {

using ::testing::HasSubstr;
using testing::CachedKey;
using testing::CertBuilder;
using testing::CrlExtensionSpec;
using testing::CrlSpec;
using testing::DerNull;
using testing::DerOctetString;
using testing::DerSequence;
using testing::DerTlv;
using testing::FromHex;
using testing::IdpSpec;
using testing::KeyType;
using testing::SerialFromUint64;
using testing::TestCa;
using testing::ToPemCrl;

using Asn1TimePtr = OpenSslPtr<ASN1_TIME, ASN1_TIME_free>;

constexpr int64_t kNow = 1'800'000'000;  // 2027-01-15T08:00:00Z
constexpr int64_t kSkew = 300;

// A CA whose key is cached (CachedKey) so RSA costs one keygen per process.
TestCa MakeCa(std::string_view cn, KeyType type, int slot = 0) {
  TestCa ca;
  ca.key = CachedKey(type, slot);
  ca.cert = CertBuilder().Key(ca.key.get()).Subject("CN", cn).Ca().SubjectKeyIdFromKey().Build();
  return ca;
}

const TestCa& Ca() {
  static const TestCa* ca = new TestCa(MakeCa("Acme Devices Issuing CA", KeyType::kEcP256));
  return *ca;
}

CrlSpec BasicSpec() {
  CrlSpec spec;
  spec.this_update = kNow - 3600;
  spec.next_update = kNow + 6 * 86400;
  spec.revocation_date = kNow - 7200;
  spec.serials = {SerialFromUint64(0x1001), SerialFromUint64(0x1002), SerialFromUint64(0x80F1)};
  spec.crl_number = SerialFromUint64(42);
  return spec;
}

IdpSpec Idp(void (*set)(IdpSpec&)) {
  IdpSpec idp;
  set(idp);
  return idp;
}

std::unique_ptr<const Crl> ParseOk(std::string_view data, X509* issuer = nullptr) {
  std::string error;
  auto crl = Crl::Parse(data, issuer != nullptr ? issuer : Ca().cert.get(), kNow, kSkew, &error);
  EXPECT_NE(crl, nullptr) << error;
  EXPECT_EQ(error, "");
  return crl;
}

std::string ParseError(std::string_view data, X509* issuer = nullptr) {
  std::string error;
  auto crl = Crl::Parse(data, issuer != nullptr ? issuer : Ca().cert.get(), kNow, kSkew, &error);
  EXPECT_EQ(crl, nullptr);
  EXPECT_NE(error, "");
  return error;
}

// ---------------------------------------------------------------------------
// Lookups.

TEST(CrlParse, RevokedAndNotRevoked) {
  auto crl = ParseOk(BuildCrlDer(Ca(), BasicSpec()));
  ASSERT_NE(crl, nullptr);
  EXPECT_EQ(crl->size(), 3u);
  EXPECT_TRUE(crl->IsRevoked(SerialFromUint64(0x1001)));
  EXPECT_TRUE(crl->IsRevoked(SerialFromUint64(0x1002)));
  EXPECT_TRUE(crl->IsRevoked(FromHex("0080F1")));  // 0x00 pad: top bit set
  EXPECT_FALSE(crl->IsRevoked(FromHex("80F1")));
  EXPECT_FALSE(crl->IsRevoked(SerialFromUint64(0x1003)));
  EXPECT_FALSE(crl->IsRevoked(""));
  EXPECT_EQ(crl->this_update(), kNow - 3600);
  EXPECT_EQ(crl->next_update(), kNow + 6 * 86400);
  EXPECT_EQ(crl->number(), SerialFromUint64(42));
  EXPECT_EQ(&crl->serials(), &crl->serials());
  EXPECT_TRUE(crl->serials().Contains(SerialFromUint64(0x1001)));
  EXPECT_GT(crl->MemoryUsage(), crl->serials().MemoryUsage());
}

TEST(CrlParse, CertificateSerialMatchesEntry) {
  X509Ptr revoked = Ca().Issue().Subject("CN", "dev-1").Build();
  X509Ptr padded = Ca().Issue().Subject("CN", "dev-2").Serial("80AB01").Build();
  X509Ptr good = Ca().Issue().Subject("CN", "dev-3").Build();
  CrlSpec spec = BasicSpec();
  spec.serials = {SerialKey(X509_get0_serialNumber(revoked.get())), SerialKey(X509_get0_serialNumber(padded.get()))};
  EXPECT_EQ(spec.serials[1], FromHex("0080AB01"));
  auto crl = ParseOk(BuildCrlDer(Ca(), spec));
  ASSERT_NE(crl, nullptr);
  EXPECT_TRUE(crl->IsRevoked(SerialKey(X509_get0_serialNumber(revoked.get()))));
  EXPECT_TRUE(crl->IsRevoked(SerialKey(X509_get0_serialNumber(padded.get()))));
  EXPECT_FALSE(crl->IsRevoked(SerialKey(X509_get0_serialNumber(good.get()))));
}

// A CA that pads serials (non-minimal INTEGER) still matches the certificate.
TEST(CrlParse, NonMinimalEntrySerialIsCanonicalised) {
  CrlSpec spec = BasicSpec();
  spec.serials = {FromHex("00001001"), FromHex("FFFF80")};
  auto crl = ParseOk(BuildCrlDer(Ca(), spec));
  ASSERT_NE(crl, nullptr);
  EXPECT_TRUE(crl->IsRevoked(SerialFromUint64(0x1001)));
  EXPECT_TRUE(crl->IsRevoked(FromHex("80")));  // -128
  EXPECT_FALSE(crl->IsRevoked(FromHex("FF80")));
  EXPECT_FALSE(crl->IsRevoked(FromHex("00001001")));
}

TEST(CrlParse, PemAndDerAgree) {
  std::string der = BuildCrlDer(Ca(), BasicSpec());
  std::string pem = ToPemCrl(der);
  ASSERT_THAT(pem, HasSubstr("-----BEGIN X509 CRL-----"));
  auto from_pem = ParseOk(pem);
  auto from_padded_pem = ParseOk("\n  " + pem + "\n\n");
  auto from_der = ParseOk(der);
  ASSERT_TRUE(from_pem && from_padded_pem && from_der);
  EXPECT_EQ(from_pem->size(), from_der->size());
  EXPECT_TRUE(from_pem->IsRevoked(SerialFromUint64(0x1002)));
  EXPECT_EQ(from_pem->number(), from_der->number());
  EXPECT_EQ(from_pem->this_update(), from_der->this_update());
}

TEST(CrlParse, PemErrors) {
  std::string pem = ToPemCrl(BuildCrlDer(Ca(), BasicSpec()));
  EXPECT_THAT(ParseError(pem + "junk"), HasSubstr("unexpected data after the PEM block"));
  EXPECT_THAT(ParseError(testing::ToPem(Ca().cert.get())), HasSubstr("PEM block is \"CERTIFICATE\", not \"X509 CRL\""));
  EXPECT_THAT(ParseError("-----BEGIN X509 CRL-----\n!!!!\n-----END X509 CRL-----\n"), HasSubstr("malformed PEM"));
  EXPECT_THAT(ParseError("-----BEGIN X509 CRL-----\nMAA=\n"), HasSubstr("malformed PEM"));
  EXPECT_THAT(ParseError("-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n"),
              HasSubstr("malformed CRL: tbsCertList: missing element"));
}

TEST(CrlParse, EmptyCrl) {
  CrlSpec spec = BasicSpec();
  spec.serials.clear();
  spec.next_update.reset();
  spec.crl_number.reset();
  auto crl = ParseOk(BuildCrlDer(Ca(), spec));
  ASSERT_NE(crl, nullptr);
  EXPECT_EQ(crl->size(), 0u);
  EXPECT_FALSE(crl->IsRevoked(SerialFromUint64(0x1001)));
  EXPECT_EQ(crl->next_update(), 0);
  EXPECT_EQ(crl->number(), "");
  EXPECT_EQ(crl->serials().MemoryUsage(), 0u);
}

// An explicit but empty revokedCertificates SEQUENCE (not RFC 5280, but seen).
TEST(CrlParse, EmptyRevokedSequenceAccepted) {
  CrlSpec spec = BasicSpec();
  spec.serials.clear();
  spec.empty_revoked_list = true;
  std::string der = BuildCrlDer(Ca(), spec);
  ASSERT_NE(der.find(std::string("\x30\x00\xA0", 3)), std::string::npos);
  auto a = ParseOk(der);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->size(), 0u);
}

TEST(CrlParse, StaleCrlStillParses) {
  CrlSpec spec = BasicSpec();
  spec.this_update = kNow - 30 * 86400;
  spec.next_update = kNow - 20 * 86400;
  auto crl = ParseOk(BuildCrlDer(Ca(), spec));
  ASSERT_NE(crl, nullptr);
  EXPECT_EQ(crl->next_update(), kNow - 20 * 86400);
}

TEST(CrlParse, GeneralizedTimes) {
  CrlSpec spec = BasicSpec();
  spec.generalized_time = true;
  spec.next_update = 2'600'000'000;  // 2052: GeneralizedTime anyway
  auto crl = ParseOk(BuildCrlDer(Ca(), spec));
  ASSERT_NE(crl, nullptr);
  EXPECT_EQ(crl->this_update(), kNow - 3600);
  EXPECT_EQ(crl->next_update(), 2'600'000'000);
  spec.generalized_time = false;
  spec.this_update = 2'524'607'999;  // 2049-12-31T23:59:59Z, last UTCTime second
  spec.next_update = 2'524'608'000;  // 2050-01-01T00:00:00Z, GeneralizedTime
  std::string error;
  auto later = Crl::Parse(BuildCrlDer(Ca(), spec), Ca().cert.get(), 2'524'607'999, 0, &error);
  ASSERT_NE(later, nullptr) << error;
  EXPECT_EQ(later->this_update(), 2'524'607'999);
  EXPECT_EQ(later->next_update(), 2'524'608'000);
}

// ---------------------------------------------------------------------------
// OpenSSL cross-checks.

// A CRL made with OpenSSL's X509_CRL API: the walker sees the same entries.
TEST(CrlParse, OpenSslGeneratedCrlAgrees) {
  OpenSslPtr<X509_CRL, X509_CRL_free> crl(X509_CRL_new());
  ASSERT_TRUE(crl);
  ASSERT_TRUE(X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2));
  ASSERT_TRUE(X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(Ca().cert.get())));
  Asn1TimePtr last(ASN1_TIME_set(nullptr, static_cast<time_t>(kNow - 60)));
  Asn1TimePtr next(ASN1_TIME_set(nullptr, static_cast<time_t>(kNow + 86400)));
  ASSERT_TRUE(X509_CRL_set1_lastUpdate(crl.get(), last.get()));
  ASSERT_TRUE(X509_CRL_set1_nextUpdate(crl.get(), next.get()));
  for (int i = 0; i < 60; ++i) {
    BignumPtr bn(BN_new());
    ASSERT_TRUE(BN_rand(bn.get(), 8 + 2 * i, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY));
    if (i % 7 == 3) BN_set_negative(bn.get(), 1);
    IntegerPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
    X509_REVOKED* rev = X509_REVOKED_new();
    ASSERT_TRUE(X509_REVOKED_set_serialNumber(rev, serial.get()));
    ASSERT_TRUE(X509_REVOKED_set_revocationDate(rev, last.get()));
    if (i % 2 == 0) {
      OpenSslPtr<ASN1_ENUMERATED, ASN1_ENUMERATED_free> reason(ASN1_ENUMERATED_new());
      ASSERT_TRUE(ASN1_ENUMERATED_set(reason.get(), i % 4 == 0 ? 1 : 4));
      ASSERT_TRUE(X509_REVOKED_add1_ext_i2d(rev, NID_crl_reason, reason.get(), 0, 0));
    }
    ASSERT_TRUE(X509_CRL_add0_revoked(crl.get(), rev));
  }
  IntegerPtr number(ASN1_INTEGER_new());
  ASSERT_TRUE(ASN1_INTEGER_set(number.get(), 0x1234));
  ASSERT_TRUE(X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, 0));
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, Ca().cert.get(), nullptr, nullptr, crl.get(), 0);
  ExtensionPtr aki(X509V3_EXT_conf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always"));
  ASSERT_TRUE(aki);
  ASSERT_TRUE(X509_CRL_add_ext(crl.get(), aki.get(), -1));
  ASSERT_TRUE(X509_CRL_sort(crl.get()));
  ASSERT_GT(X509_CRL_sign(crl.get(), Ca().key.get(), EVP_sha256()), 0);
  unsigned char* der_raw = nullptr;
  int len = i2d_X509_CRL(crl.get(), &der_raw);
  OpenSslBytes der_holder(der_raw);
  ASSERT_GT(len, 0);
  std::string der(reinterpret_cast<const char*>(der_raw), static_cast<size_t>(len));

  auto parsed = ParseOk(der);
  ASSERT_NE(parsed, nullptr);
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl.get());
  EXPECT_EQ(parsed->size(), static_cast<size_t>(sk_X509_REVOKED_num(revoked)));
  for (int i = 0; i < sk_X509_REVOKED_num(revoked); ++i) {
    const ASN1_INTEGER* s = X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revoked, i));
    EXPECT_TRUE(parsed->IsRevoked(SerialKey(s))) << i;
  }
  EXPECT_FALSE(parsed->IsRevoked(SerialFromUint64(0x1001)));
  EXPECT_EQ(parsed->number(), FromHex("1234"));
  EXPECT_EQ(parsed->this_update(), kNow - 60);
  EXPECT_EQ(parsed->next_update(), kNow + 86400);
}

// The builder's CRLs are ones OpenSSL itself accepts and verifies.
TEST(CrlParse, BuilderOutputVerifiesWithOpenSsl) {
  CrlSpec spec = BasicSpec();
  spec.reason_code = 1;
  std::string der = BuildCrlDer(Ca(), spec);
  testing::X509CrlPtr crl = testing::ParseCrlWithOpenSsl(der);
  EXPECT_EQ(X509_CRL_verify(crl.get(), X509_get0_pubkey(Ca().cert.get())), 1);
  EXPECT_EQ(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl.get())), 3);
  for (const std::string& s : spec.serials) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data());
    BignumPtr bn(BN_bin2bn(p, static_cast<int>(s.size()), nullptr));
    IntegerPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
    X509_REVOKED* rev = nullptr;
    EXPECT_EQ(X509_CRL_get0_by_serial(crl.get(), &rev, serial.get()), 1);
  }
  IntegerPtr number(static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(crl.get(), NID_crl_number, nullptr, nullptr)));
  ASSERT_NE(number, nullptr);
  EXPECT_EQ(ASN1_INTEGER_get(number.get()), 42);
}

// ---------------------------------------------------------------------------
// Issuers of each key type.

struct IssuerCase {
  const char* name;
  KeyType type;
  const char* digest;
};

class CrlIssuerTest : public ::testing::TestWithParam<IssuerCase> {};

TEST_P(CrlIssuerTest, SignedByEachKeyType) {
  TestCa ca = MakeCa(std::string("CA ") + GetParam().name, GetParam().type);
  CrlSpec spec = BasicSpec();
  spec.digest = GetParam().digest;
  spec.reason_code = 1;
  auto crl = ParseOk(BuildCrlDer(ca, spec), ca.cert.get());
  ASSERT_NE(crl, nullptr);
  EXPECT_TRUE(crl->IsRevoked(SerialFromUint64(0x1001)));
  EXPECT_FALSE(crl->IsRevoked(SerialFromUint64(0x1003)));
  spec.corrupt_signature = true;
  EXPECT_THAT(ParseError(BuildCrlDer(ca, spec), ca.cert.get()),
              HasSubstr("CRL signature does not verify with the issuer's key"));
  // Signed by another key of the same type, right name and AKI.
  spec.corrupt_signature = false;
  EvpPkeyPtr other = CachedKey(GetParam().type, 1);
  spec.sign_with = other.get();
  EXPECT_THAT(ParseError(BuildCrlDer(ca, spec), ca.cert.get()),
              HasSubstr("CRL signature does not verify with the issuer's key"));
}

INSTANTIATE_TEST_SUITE_P(CrlKeys, CrlIssuerTest,
                         ::testing::Values(IssuerCase{"P256", KeyType::kEcP256, "sha256"},
                                           IssuerCase{"P384", KeyType::kEcP384, "sha384"},
                                           IssuerCase{"RSA2048", KeyType::kRsa2048, "sha256"},
                                           IssuerCase{"RSA2048_SHA512", KeyType::kRsa2048, "sha512"},
                                           IssuerCase{"Ed25519", KeyType::kEd25519, ""}),
                         [](const ::testing::TestParamInfo<IssuerCase>& p) { return std::string(p.param.name); });

// ---------------------------------------------------------------------------
// Issuer and signature failures.

TEST(CrlParse, BadSignature) {
  CrlSpec spec = BasicSpec();
  spec.corrupt_signature = true;
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)), "CRL signature does not verify with the issuer's key");
}

TEST(CrlParse, WrongIssuerName) {
  TestCa other = MakeCa("Some Other CA", KeyType::kEcP256, 2);
  CrlSpec spec = BasicSpec();
  spec.issuer_name = X509_get_subject_name(other.cert.get());
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)), "CRL issuer name does not match the issuer certificate's subject");
  // A CRL of another CA, checked against ours.
  EXPECT_EQ(ParseError(BuildCrlDer(other, BasicSpec())),
            "CRL issuer name does not match the issuer certificate's subject");
}

TEST(CrlParse, WrongKeySameNameNoAki) {
  EvpPkeyPtr other = CachedKey(KeyType::kEcP256, 3);
  CrlSpec spec = BasicSpec();
  spec.sign_with = other.get();
  spec.authority_key_id = false;
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)), "CRL signature does not verify with the issuer's key");
}

TEST(CrlParse, AkiMismatch) {
  CrlSpec spec = BasicSpec();
  spec.authority_key_id_override = std::string(20, '\x5A');
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)),
            "CRL authorityKeyIdentifier does not match the issuer's subjectKeyIdentifier");
  // No AKI at all is fine.
  spec.authority_key_id_override.reset();
  spec.authority_key_id = false;
  EXPECT_NE(ParseOk(BuildCrlDer(Ca(), spec)), nullptr);
}

TEST(CrlParse, IssuerWithoutCrlSign) {
  TestCa ca;
  ca.key = CachedKey(KeyType::kEcP256, 4);
  // keyUsage = keyCertSign only (bit 5).
  ca.cert = CertBuilder()
                .Key(ca.key.get())
                .Subject("CN", "Cert-only CA")
                .SubjectKeyIdFromKey()
                .Extension("2.5.29.15", DerTlv(0x03, std::string("\x02\x04", 2)), true)
                .Build();
  EXPECT_EQ(ParseError(BuildCrlDer(ca, BasicSpec()), ca.cert.get()),
            "issuer certificate's keyUsage does not allow cRLSign");
  // No keyUsage at all: allowed.
  TestCa bare;
  bare.key = CachedKey(KeyType::kEcP256, 5);
  bare.cert = CertBuilder().Key(bare.key.get()).Subject("CN", "Bare CA").SubjectKeyIdFromKey().Build();
  EXPECT_NE(ParseOk(BuildCrlDer(bare, BasicSpec()), bare.cert.get()), nullptr);
}

TEST(CrlParse, NoIssuer) {
  std::string error;
  EXPECT_EQ(Crl::Parse(BuildCrlDer(Ca(), BasicSpec()), nullptr, kNow, kSkew, &error), nullptr);
  EXPECT_EQ(error, "no issuer certificate");
}

TEST(CrlParse, UnsupportedSignatureAlgorithms) {
  TestCa rsa = MakeCa("RSA CA", KeyType::kRsa2048);
  CrlSpec spec = BasicSpec();
  spec.digest = "sha1";
  EXPECT_EQ(ParseError(BuildCrlDer(rsa, spec), rsa.cert.get()),
            "unsupported signature algorithm sha1WithRSAEncryption");
  // RSASSA-PSS (claimed): no X509_CRL fallback.
  spec.digest = "sha256";
  spec.alg_der_override = DerSequence({testing::DerOid("1.2.840.113549.1.1.10"), DerSequence({})});
  EXPECT_EQ(ParseError(BuildCrlDer(rsa, spec), rsa.cert.get()), "unsupported signature algorithm rsassaPss");
  // An OID OpenSSL does not know.
  spec.alg_der_override = DerSequence({testing::DerOid("1.2.3.4.5")});
  EXPECT_EQ(ParseError(BuildCrlDer(rsa, spec), rsa.cert.get()), "unsupported signature algorithm 1.2.3.4.5");
}

TEST(CrlParse, AlgorithmDoesNotMatchKey) {
  CrlSpec spec = BasicSpec();
  // sha256WithRSAEncryption, NULL parameters, on an EC issuer.
  spec.alg_der_override = FromHex("300D06092A864886F70D01010B0500");
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)),
            "CRL signature algorithm sha256WithRSAEncryption does not match the issuer's key type");
  // ECDSA with parameters present.
  spec.alg_der_override = FromHex("300C06082A8648CE3D0403020500");
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)),
            "malformed CRL: unexpected parameters for signature algorithm ecdsa-with-SHA256");
}

TEST(CrlParse, MismatchedInnerAndOuterAlgorithm) {
  CrlSpec spec = BasicSpec();
  spec.inner_alg_der_override = FromHex("300A06082A8648CE3D040303");  // ecdsa-with-SHA384
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)),
            "malformed CRL: tbsCertList signature algorithm differs from the outer signatureAlgorithm");
}

// ---------------------------------------------------------------------------
// Time.

TEST(CrlParse, ThisUpdateInFuture) {
  CrlSpec spec = BasicSpec();
  spec.this_update = kNow + kSkew + 1;
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)), "CRL thisUpdate 1800000301 is in the future (now 1800000000, skew 300 s)");
  spec.this_update = kNow + kSkew;
  EXPECT_NE(ParseOk(BuildCrlDer(Ca(), spec)), nullptr);
}

TEST(CrlParse, NextUpdateBeforeThisUpdate) {
  CrlSpec spec = BasicSpec();
  spec.next_update = spec.this_update - 1;
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)), "malformed CRL: nextUpdate is before thisUpdate");
}

// Rewrites the first UTCTime (thisUpdate) of `der` in place (same length).
std::string WithThisUpdate(std::string der, std::string_view utc) {
  size_t at = der.find(std::string("\x17\x0D", 2));
  EXPECT_NE(at, std::string::npos);
  der.replace(at + 2, 13, utc);
  return der;
}

TEST(CrlParse, StrictTimeFormats) {
  std::string der = BuildCrlDer(Ca(), BasicSpec());
  for (const char* bad : {"270115080000+", "2701150800000", "270230080000Z", "500229000000Z", "271315080000Z",
                          "270115240000Z", "270115086000Z", "270115080060Z", "2701150800 0Z", "27011508000aZ"}) {
    EXPECT_EQ(ParseError(WithThisUpdate(der, bad)), "malformed CRL: bad thisUpdate time") << bad;
  }
  // Valid but re-written: the signature no longer matches.
  EXPECT_EQ(ParseError(WithThisUpdate(der, "270101000000Z")), "CRL signature does not verify with the issuer's key");
}

// ---------------------------------------------------------------------------
// Extensions.

TEST(CrlParse, DeltaCrlRejected) {
  CrlSpec spec = BasicSpec();
  spec.delta_base = SerialFromUint64(41);
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)), "delta CRLs are not supported");
}

TEST(CrlParse, IssuingDistributionPoint) {
  const std::string kError = "partitioned/indirect CRLs are not supported (issuingDistributionPoint)";
  CrlSpec spec = BasicSpec();
  spec.idp = Idp([](IdpSpec& i) { i.distribution_point_uri = "http://crl.example/part-1.crl"; });
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)), kError);
  spec.idp = Idp([](IdpSpec& i) { i.only_ca = true; });
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)), kError);
  spec.idp = Idp([](IdpSpec& i) { i.only_some_reasons = true; });
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)), kError);
  spec.idp = Idp([](IdpSpec& i) { i.indirect = true; });
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)), kError);
  spec.idp = Idp([](IdpSpec& i) { i.only_attr = true; });
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)), kError);
  // Complete CRL for end-entity certificates: fine.
  spec.idp = Idp([](IdpSpec& i) { i.only_user = true; });
  auto crl = ParseOk(BuildCrlDer(Ca(), spec));
  ASSERT_NE(crl, nullptr);
  EXPECT_TRUE(crl->IsRevoked(SerialFromUint64(0x1001)));
  spec.idp = IdpSpec{};
  EXPECT_NE(ParseOk(BuildCrlDer(Ca(), spec)), nullptr);
}

TEST(CrlParse, UnknownCriticalCrlExtension) {
  CrlSpec spec = BasicSpec();
  spec.extensions.push_back({"1.3.6.1.4.1.99999.7", DerNull(), true});
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)), "unsupported critical CRL extension 1.3.6.1.4.1.99999.7");
  spec.extensions[0].critical = false;
  EXPECT_NE(ParseOk(BuildCrlDer(Ca(), spec)), nullptr);
}

TEST(CrlParse, DuplicateCrlExtension) {
  CrlSpec spec = BasicSpec();
  spec.extensions.push_back({"2.5.29.20", testing::DerInteger(43), false});  // a second cRLNumber
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)), "malformed CRL: duplicate CRL extension 2.5.29.20");
}

TEST(CrlParse, CrlNumberValues) {
  CrlSpec spec = BasicSpec();
  spec.crl_number = FromHex("00001234");  // padded: canonicalised
  auto crl = ParseOk(BuildCrlDer(Ca(), spec));
  ASSERT_NE(crl, nullptr);
  EXPECT_EQ(crl->number(), FromHex("1234"));
  spec.crl_number = FromHex("00FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF");  // 20 octets
  crl = ParseOk(BuildCrlDer(Ca(), spec));
  ASSERT_NE(crl, nullptr);
  EXPECT_EQ(crl->number(), FromHex("00FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"));
  spec.crl_number = FromHex("FF");
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)), "malformed CRL: negative cRLNumber");
  spec.crl_number = "";
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)), "malformed CRL: bad cRLNumber");
}

TEST(CrlParse, UnknownCriticalEntryExtension) {
  CrlSpec spec = BasicSpec();
  spec.entry_extensions.push_back({"1.3.6.1.4.1.99999.8", DerNull(), true});
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)),
            "CRL entry 0 (serial 1001): unsupported critical CRL entry extension 1.3.6.1.4.1.99999.8");
  spec.entry_extensions[0].critical = false;
  EXPECT_NE(ParseOk(BuildCrlDer(Ca(), spec)), nullptr);
}

TEST(CrlParse, CertificateIssuerEntryExtension) {
  CrlSpec spec = BasicSpec();
  // GeneralNames { dNSName "other.example" }
  spec.entry_extensions.push_back({"2.5.29.29", DerSequence({DerTlv(0x82, "other.example")}), true});
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)),
            "CRL entry 0 (serial 1001): certificateIssuer entry extension (indirect CRL) is not supported");
}

TEST(CrlParse, ReasonCodesAndInvalidityDate) {
  CrlSpec spec = BasicSpec();
  spec.entry_extensions.push_back({"2.5.29.24", DerTlv(0x18, "20270101000000Z"), false});
  for (int reason : {0, 1, 2, 3, 4, 5, 6, 9, 10}) {
    spec.reason_code = reason;
    auto crl = ParseOk(BuildCrlDer(Ca(), spec));
    ASSERT_NE(crl, nullptr) << reason;
    EXPECT_TRUE(crl->IsRevoked(SerialFromUint64(0x1002))) << reason;  // incl. certificateHold
  }
  spec.reason_code = 8;
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)),
            "CRL entry 0 (serial 1001): removeFromCRL in a complete CRL (delta CRLs are not supported)");
  spec.reason_code = 7;
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)), "malformed CRL: CRL entry 0 (serial 1001): bad reasonCode 7");
  spec.reason_code = 1;
  spec.entry_extensions[0].der_value = DerTlv(0x17, "270101000000Z");  // must be GeneralizedTime
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)), "malformed CRL: CRL entry 0 (serial 1001): bad invalidityDate");
}

TEST(CrlParse, VersionRules) {
  CrlSpec spec = BasicSpec();
  spec.version_absent = true;
  spec.crl_number.reset();
  spec.authority_key_id = false;
  auto v1 = ParseOk(BuildCrlDer(Ca(), spec));  // v1: no extensions anywhere
  ASSERT_NE(v1, nullptr);
  EXPECT_TRUE(v1->IsRevoked(SerialFromUint64(0x1001)));
  spec.crl_number = SerialFromUint64(1);
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)), "v1 CRL (no version field) must not have extensions");
  spec.crl_number.reset();
  spec.reason_code = 1;
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)), "v1 CRL (no version field) must not have entry extensions");
}

TEST(CrlParse, SerialLengthLimit) {
  CrlSpec spec = BasicSpec();
  spec.serials = {std::string(126, '\x11')};
  auto crl = ParseOk(BuildCrlDer(Ca(), spec));
  ASSERT_NE(crl, nullptr);
  EXPECT_TRUE(crl->IsRevoked(std::string(126, '\x11')));
  spec.serials = {SerialFromUint64(5), std::string(127, '\x11')};
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)), "CRL entry 1: serial number longer than 126 octets");
  spec.serials = {std::string("\x00", 1) + std::string(126, '\x11')};  // padded 126: fine
  EXPECT_NE(ParseOk(BuildCrlDer(Ca(), spec)), nullptr);
  spec.serials = {""};
  EXPECT_EQ(ParseError(BuildCrlDer(Ca(), spec)), "malformed CRL: empty userCertificate serial in entry 0");
}

// ---------------------------------------------------------------------------
// Malformed DER.

// The outer SEQUENCE header of `der` re-encoded with `length_octets` extra
// leading zero length octets (non-minimal), or as indefinite length.
std::string ReencodeOuter(const std::string& der, bool indefinite) {
  size_t header = 2;
  const auto l0 = static_cast<unsigned char>(der[1]);
  if (l0 & 0x80) header += l0 & 0x7F;
  std::string body = der.substr(header);
  if (indefinite) return std::string("\x30\x80", 2) + body + std::string("\x00\x00", 2);
  std::string len_octets = der.substr(2, header - 2);
  return std::string(1, '\x30') + static_cast<char>(0x80 | (len_octets.size() + 1)) + std::string(1, '\0') +
         len_octets + body;
}

TEST(CrlParse, IndefiniteAndNonMinimalLengths) {
  std::string der = BuildCrlDer(Ca(), BasicSpec());
  EXPECT_EQ(ParseError(ReencodeOuter(der, true)), "malformed CRL: CertificateList: indefinite length");
  EXPECT_EQ(ParseError(ReencodeOuter(der, false)), "malformed CRL: CertificateList: non-minimal length");
  // A short length written in long form: 0x81 0x05.
  EXPECT_EQ(ParseError(FromHex("3081050201010500")), "malformed CRL: CertificateList: non-minimal length");
  EXPECT_EQ(ParseError(FromHex("308500000000")), "malformed CRL: CertificateList: length too large");
  EXPECT_EQ(ParseError(FromHex("1F8100")), "malformed CRL: CertificateList: multi-octet tag");
}

TEST(CrlParse, TrailingGarbage) {
  std::string der = BuildCrlDer(Ca(), BasicSpec());
  EXPECT_EQ(ParseError(der + std::string(1, '\0')), "malformed CRL: unexpected data after CertificateList");
  EXPECT_EQ(ParseError(der + der), "malformed CRL: unexpected data after CertificateList");
}

TEST(CrlParse, GarbageInputs) {
  EXPECT_EQ(ParseError(""), "malformed CRL: CertificateList: missing element");
  EXPECT_EQ(ParseError("hello"), "malformed CRL: CertificateList: truncated");
  EXPECT_EQ(ParseError(FromHex("0500")), "malformed CRL: CertificateList: unexpected tag 0x05");
  EXPECT_EQ(ParseError(FromHex("3000")), "malformed CRL: tbsCertList: missing element");
  EXPECT_EQ(ParseError(testing::ToDer(Ca().cert.get())), "malformed CRL: tbsCertList signature: unexpected tag 0xA0");
}

TEST(CrlParse, TruncatedAtEveryOffset) {
  CrlSpec spec = BasicSpec();
  spec.reason_code = 1;
  std::string der = BuildCrlDer(Ca(), spec);
  ASSERT_NE(ParseOk(der), nullptr);
  for (size_t n = 0; n < der.size(); ++n) {
    std::string error;
    // A fresh copy of exactly n bytes, so ASan catches any read past it.
    std::unique_ptr<char[]> copy(new char[n + 1]);
    der.copy(copy.get(), n);
    EXPECT_EQ(Crl::Parse(std::string_view(copy.get(), n), Ca().cert.get(), kNow, kSkew, &error), nullptr) << n;
    EXPECT_THAT(error, HasSubstr("malformed CRL")) << n;
  }
}

// Every single-bit change of a signed CRL is caught (structure, algorithm
// comparison or signature), and never crashes.
TEST(CrlParse, EveryBitFlipRejected) {
  CrlSpec spec = BasicSpec();
  spec.reason_code = 1;
  spec.idp = Idp([](IdpSpec& i) { i.only_user = true; });
  std::string der = BuildCrlDer(Ca(), spec);
  for (size_t i = 0; i < der.size(); ++i) {
    for (int bit : {0, 7}) {
      std::string mutated = der;
      mutated[i] = static_cast<char>(mutated[i] ^ (1 << bit));
      std::string error;
      EXPECT_EQ(Crl::Parse(mutated, Ca().cert.get(), kNow, kSkew, &error), nullptr) << i << "/" << bit;
      EXPECT_NE(error, "") << i;
    }
  }
}

// Random overwrites, insertions and deletions (deterministic): no crash, no
// out-of-bounds read under ASan, and nothing accepted that changed.
TEST(CrlParse, RandomMutationsNeverCrash) {
  CrlSpec spec = BasicSpec();
  spec.reason_code = 1;
  spec.entry_extensions.push_back({"2.5.29.24", DerTlv(0x18, "20270101000000Z"), false});
  const std::string der = BuildCrlDer(Ca(), spec);
  uint64_t state = 12345;
  auto next = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state >> 33;
  };
  for (int round = 0; round < 3000; ++round) {
    std::string m = der;
    const int edits = 1 + static_cast<int>(next() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = next() % m.size();
      switch (next() % 3) {
        case 0:
          m[at] = static_cast<char>(next() & 0xFF);
          break;
        case 1:
          m.insert(m.begin() + static_cast<std::ptrdiff_t>(at), static_cast<char>(next() & 0xFF));
          break;
        default:
          m.erase(at, 1 + next() % 8);
          if (m.empty()) m = "0";
          break;
      }
    }
    std::unique_ptr<char[]> copy(new char[m.size()]);
    m.copy(copy.get(), m.size());
    std::string error;
    auto crl = Crl::Parse(std::string_view(copy.get(), m.size()), Ca().cert.get(), kNow, kSkew, &error);
    if (m != der) {
      EXPECT_EQ(crl, nullptr) << round;
      EXPECT_NE(error, "") << round;
    }
  }
}

// ---------------------------------------------------------------------------
// Scale and numbers.

TEST(CrlParse, LargeCrl) {
  CrlSpec spec = BasicSpec();
  spec.serials = testing::RandomSerials(200'000, 7);
  spec.reason_code = 1;
  auto crl = ParseOk(BuildCrlDer(Ca(), spec));
  ASSERT_NE(crl, nullptr);
  EXPECT_EQ(crl->size(), 200'000u);
  for (size_t i = 0; i < spec.serials.size(); i += 101) ASSERT_TRUE(crl->IsRevoked(spec.serials[i]));
  for (const std::string& s : testing::RandomSerials(1000, 8)) ASSERT_FALSE(crl->IsRevoked(s));
  EXPECT_LT(crl->MemoryUsage(), 200'000u * 56);  // ~44 B per serial, 2 MiB rounding
}

TEST(CrlNumbers, Compare) {
  EXPECT_LT(CompareCrlNumbers(FromHex("01"), FromHex("02")), 0);
  EXPECT_GT(CompareCrlNumbers(FromHex("02"), FromHex("01")), 0);
  EXPECT_EQ(CompareCrlNumbers(FromHex("1234"), FromHex("1234")), 0);
  EXPECT_GT(CompareCrlNumbers(FromHex("0080"), FromHex("7F")), 0);
  EXPECT_LT(CompareCrlNumbers(FromHex("7F"), FromHex("0080")), 0);
  EXPECT_GT(CompareCrlNumbers(FromHex("0100"), FromHex("FF")), 0);  // not canonical, still by value
  EXPECT_EQ(CompareCrlNumbers(FromHex("00"), ""), 0);
  EXPECT_LT(CompareCrlNumbers("", FromHex("01")), 0);
  EXPECT_LT(CompareCrlNumbers(FromHex("00FFFFFFFFFFFFFFFFFFFF"), FromHex("010000000000000000000000")), 0);
}

}  // namespace
}  // namespace certacl::revocation
