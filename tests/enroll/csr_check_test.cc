// Tests of the enroll bridge's CSR checks: each refusal with its exact error
// code, and the forms a valid renewal CSR may take.
#include "enroll-bridge/csr_check.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include <string>
#include <vector>

#include "tests/testing/cert_builder.h"

namespace certacl::enroll {
namespace {

using certacl::testing::CachedKey;
using certacl::testing::GenerateKey;
using certacl::testing::KeyType;
using certacl::testing::TestCa;

struct CsrSpec {
  std::vector<std::pair<std::string, std::string>> subject;  // field, value
  std::vector<std::string> san_dns;
  EVP_PKEY* key = nullptr;      // the CSR's public key
  EVP_PKEY* sign_with = nullptr;  // default: key
  std::string challenge_password;
  bool change_subject_name = false;
};

X509ReqPtr MakeCsr(const CsrSpec& spec) {
  X509ReqPtr req(X509_REQ_new());
  X509_REQ_set_version(req.get(), 0);
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  for (const auto& [field, value] : spec.subject) {
    X509_NAME_add_entry_by_txt(name, field.c_str(), MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.c_str()),
                               -1, -1, 0);
  }
  X509_REQ_set_pubkey(req.get(), spec.key);
  if (!spec.san_dns.empty()) {
    GENERAL_NAMES* names = sk_GENERAL_NAME_new_null();
    for (const std::string& d : spec.san_dns) {
      GENERAL_NAME* g = GENERAL_NAME_new();
      ASN1_IA5STRING* s = ASN1_IA5STRING_new();
      ASN1_STRING_set(s, d.data(), static_cast<int>(d.size()));
      GENERAL_NAME_set0_value(g, GEN_DNS, s);
      sk_GENERAL_NAME_push(names, g);
    }
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    X509V3_add1_i2d(&exts, NID_subject_alt_name, names, 0, 0);
    X509_REQ_add_extensions(req.get(), exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    GENERAL_NAMES_free(names);
  }
  if (!spec.challenge_password.empty()) {
    X509_REQ_add1_attr_by_NID(req.get(), NID_pkcs9_challengePassword, MBSTRING_UTF8,
                              reinterpret_cast<const unsigned char*>(spec.challenge_password.c_str()), -1);
  }
  if (spec.change_subject_name) {
    ASN1_OBJECT* oid = OBJ_txt2obj("1.3.6.1.5.5.7.7.36", 1);
    X509_REQ_add1_attr_by_OBJ(req.get(), oid, V_ASN1_UTF8STRING, reinterpret_cast<const unsigned char*>("x"), 1);
    ASN1_OBJECT_free(oid);
  }
  X509_REQ_sign(req.get(), spec.sign_with ? spec.sign_with : spec.key, EVP_sha256());
  return req;
}

std::string Pem(X509_REQ* req) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), req);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

// Base64 DER broken into 60-character lines, as EST peers send it.
std::string Base64Der(X509_REQ* req) {
  unsigned char* der = nullptr;
  const int len = i2d_X509_REQ(req, &der);
  std::string b64(static_cast<size_t>((len + 2) / 3 * 4 + 1), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), der, len);
  OPENSSL_free(der);
  b64.resize(static_cast<size_t>(n));
  std::string out;
  for (size_t i = 0; i < b64.size(); i += 60) out += b64.substr(i, 60) + "\r\n";
  return out;
}

class CsrCheckTest : public ::testing::Test {
 protected:
  CsrCheckTest() {
    device_ = ca_.Issue()
                  .Subject("O", "Acme Utilities")
                  .Subject("OU", "meter")
                  .Subject("CN", "m-00000001")
                  .SanDns("m-00000001.meters.acme.example")
                  .SanDns("m1.acme.example")
                  .Build();
    key_ = GenerateKey(KeyType::kEcP256);
  }
  CsrSpec Renewal() {
    CsrSpec s;
    s.subject = {{"O", "Acme Utilities"}, {"OU", "meter"}, {"CN", "m-00000001"}};
    s.san_dns = {"m1.acme.example", "m-00000001.meters.acme.example"};  // another order: a set
    s.key = key_.get();
    return s;
  }
  CsrCheckResult Check(const std::string& text, const CsrCheckOptions& o = {}) {
    return CheckRenewalCsr(text, device_.get(), o);
  }

  TestCa ca_ = TestCa::Create("Acme Devices Issuing CA");
  X509Ptr device_;
  EvpPkeyPtr key_;
};

TEST_F(CsrCheckTest, AcceptsARenewalAsPemAndAsBase64Der) {
  X509ReqPtr csr = MakeCsr(Renewal());
  CsrCheckResult pem = Check(Pem(csr.get()));
  EXPECT_TRUE(pem.ok()) << pem.reason;
  ASSERT_NE(pem.csr, nullptr);
  CsrCheckResult b64 = Check(Base64Der(csr.get()));
  EXPECT_TRUE(b64.ok()) << b64.reason;
  // The old PEM label some devices still write.
  std::string old = Pem(csr.get());
  old.replace(old.find("BEGIN CERTIFICATE REQUEST"), 25, "BEGIN NEW CERTIFICATE REQUEST");
  old.replace(old.find("END CERTIFICATE REQUEST"), 23, "END NEW CERTIFICATE REQUEST");
  EXPECT_TRUE(Check(old).ok());
}

TEST_F(CsrCheckTest, SizeAndFormat) {
  CsrCheckOptions small;
  small.max_bytes = 100;
  CsrCheckResult big = Check(Pem(MakeCsr(Renewal()).get()), small);
  EXPECT_EQ(big.error, CsrError::kInvalidCsr);
  EXPECT_NE(big.reason.find("more than the limit of 100"), std::string::npos) << big.reason;
  EXPECT_EQ(Check("hello").error, CsrError::kInvalidCsr);
  EXPECT_EQ(Check("").reason, "neither PEM nor base64 DER");
  EXPECT_EQ(Check("AAAA").reason, "the base64 text is not a DER certificate request");
  EXPECT_EQ(Check("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n").reason,
            "not a PEM certificate request");
  EXPECT_EQ(std::string(CsrErrorName(CsrError::kInvalidCsr)), "InvalidCsr");
}

TEST_F(CsrCheckTest, SignatureByAnotherKeyIsNoProofOfPossession) {
  EvpPkeyPtr other = GenerateKey(KeyType::kEcP256);
  CsrSpec s = Renewal();
  s.sign_with = other.get();
  CsrCheckResult r = Check(Pem(MakeCsr(s).get()));
  EXPECT_EQ(r.error, CsrError::kInvalidCsr);
  EXPECT_EQ(r.reason, "the CSR's signature does not verify with its own key (no proof of possession)");
}

TEST_F(CsrCheckTest, KeyPolicy) {
  CsrSpec s = Renewal();
  EvpPkeyPtr weak(EVP_RSA_gen(1024));
  s.key = weak.get();
  CsrCheckResult r = Check(Pem(MakeCsr(s).get()));
  EXPECT_EQ(r.error, CsrError::kKeyPolicy);
  EXPECT_EQ(r.reason, "a RSA-1024 key is not allowed (allowed: EC P-256, EC P-384, RSA >= 2048)");
  EvpPkeyPtr rsa = CachedKey(KeyType::kRsa2048);
  s.key = rsa.get();
  EXPECT_TRUE(Check(Pem(MakeCsr(s).get())).ok());
  EvpPkeyPtr p521 = GenerateKey(KeyType::kEcP521);
  s.key = p521.get();
  EXPECT_EQ(Check(Pem(MakeCsr(s).get())).reason,
            "a EC secp521r1 key is not allowed (allowed: EC P-256, EC P-384, RSA >= 2048)");
  EvpPkeyPtr ed = GenerateKey(KeyType::kEd25519);
  s.key = ed.get();
  X509ReqPtr ed_csr(X509_REQ_new());
  X509_REQ_set_subject_name(ed_csr.get(), X509_get_subject_name(device_.get()));
  X509_REQ_set_pubkey(ed_csr.get(), ed.get());
  X509_REQ_sign(ed_csr.get(), ed.get(), nullptr);
  EXPECT_EQ(Check(Pem(ed_csr.get())).error, CsrError::kKeyPolicy);
  CsrCheckOptions allow_ed;
  allow_ed.keys.allow_ed25519 = true;
  // Allowed now, but it lacks the SANs: the next check speaks.
  EXPECT_EQ(Check(Pem(ed_csr.get()), allow_ed).error, CsrError::kSubjectMismatch);
}

TEST_F(CsrCheckTest, SubjectMustEqualTheCurrentCertificate) {
  CsrSpec s = Renewal();
  s.subject = {{"O", "Acme Utilities"}, {"OU", "meter"}, {"CN", "m-00000002"}};
  CsrCheckResult r = Check(Pem(MakeCsr(s).get()));
  EXPECT_EQ(r.error, CsrError::kSubjectMismatch);
  EXPECT_EQ(r.reason, "the CSR's subject \"CN=m-00000002,OU=meter,O=Acme Utilities\" differs from the certificate's "
                      "\"CN=m-00000001,OU=meter,O=Acme Utilities\"");
  s.subject = {{"O", "Acme Utilities"}, {"OU", "meter"}};  // CN dropped
  EXPECT_EQ(Check(Pem(MakeCsr(s).get())).error, CsrError::kSubjectMismatch);
  s.subject = {{"OU", "meter"}, {"O", "Acme Utilities"}, {"CN", "m-00000001"}};  // another RDN order
  EXPECT_EQ(Check(Pem(MakeCsr(s).get())).error, CsrError::kSubjectMismatch);
  // Canonical comparison: case and inner spaces of string values do not count.
  s.subject = {{"O", "ACME  utilities"}, {"OU", "Meter"}, {"CN", "M-00000001"}};
  EXPECT_TRUE(Check(Pem(MakeCsr(s).get())).ok());
}

TEST_F(CsrCheckTest, SubjectAltNamesMustBeTheSameSet) {
  CsrSpec s = Renewal();
  s.san_dns = {"m1.acme.example"};
  CsrCheckResult r = Check(Pem(MakeCsr(s).get()));
  EXPECT_EQ(r.error, CsrError::kSubjectMismatch);
  EXPECT_EQ(r.reason, "the CSR's subjectAltName differs from the certificate's (compared as a set)");
  s.san_dns = {"m1.acme.example", "m-00000001.meters.acme.example", "evil.example"};
  EXPECT_EQ(Check(Pem(MakeCsr(s).get())).error, CsrError::kSubjectMismatch);
  s.san_dns = {};
  EXPECT_EQ(Check(Pem(MakeCsr(s).get())).error, CsrError::kSubjectMismatch);
  s.san_dns = {"m1.acme.example", "m1.acme.example", "m-00000001.meters.acme.example"};  // duplicates: same set
  EXPECT_TRUE(Check(Pem(MakeCsr(s).get())).ok());
}

TEST_F(CsrCheckTest, NoChangeSubjectNameAndNoChallengePasswordOutsideRaMode) {
  CsrSpec s = Renewal();
  s.change_subject_name = true;
  CsrCheckResult r = Check(Pem(MakeCsr(s).get()));
  EXPECT_EQ(r.error, CsrError::kSubjectMismatch);
  EXPECT_EQ(r.reason, "the CSR asks for ChangeSubjectName: a renewal keeps the identity");
  s = Renewal();
  s.challenge_password = "tls-unique-value";
  r = Check(Pem(MakeCsr(s).get()));
  EXPECT_EQ(r.error, CsrError::kInvalidCsr);
  EXPECT_EQ(r.reason, "the CSR carries a challengePassword, which is only passed on in RA mode");
  CsrCheckOptions ra;
  ra.ra_mode = true;
  EXPECT_TRUE(Check(Pem(MakeCsr(s).get()), ra).ok());
}

}  // namespace
}  // namespace certacl::enroll
