// Tests of the local-CA backend and of the checks on a CA's answer.
#include "enroll-bridge/local_ca.h"

#include <gtest/gtest.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <string>
#include <vector>

#include "enroll-bridge/csr_check.h"
#include "tests/testing/cert_builder.h"
#include "tests/testing/temp_dir.h"

namespace certacl::enroll {
namespace {

using certacl::testing::GenerateKey;
using certacl::testing::KeyToPem;
using certacl::testing::KeyType;
using certacl::testing::Ref;
using certacl::testing::TempDir;
using certacl::testing::TestCa;
using certacl::testing::ToPem;
using certacl::testing::WriteFile;

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

// A CSR with `current`'s subject and SANs for `key`.
X509ReqPtr RenewalCsr(X509* current, EVP_PKEY* key) {
  X509ReqPtr req(X509_REQ_new());
  X509_REQ_set_subject_name(req.get(), X509_get_subject_name(current));
  X509_REQ_set_pubkey(req.get(), key);
  STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
  const int at = X509_get_ext_by_NID(current, NID_subject_alt_name, -1);
  if (at >= 0) sk_X509_EXTENSION_push(exts, X509_EXTENSION_dup(X509_get_ext(current, at)));
  X509_REQ_add_extensions(req.get(), exts);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  X509_REQ_sign(req.get(), key, EVP_sha256());
  return req;
}

class LocalCaTest : public ::testing::Test {
 protected:
  LocalCaTest() {
    current_ = ca_.Issue().Subject("O", "Acme Utilities").Subject("CN", "m-1").SanDns("m-1.acme.example").Build();
    key_ = GenerateKey(KeyType::kEcP256);
    csr_ = RenewalCsr(current_.get(), key_.get());
    std::string error;
    local_ = LocalCa::FromObjects(ca_.cert.get(), ca_.key.get(), &error);
  }
  TestCa ca_ = TestCa::Create("Acme Devices Issuing CA");
  X509Ptr current_;
  EvpPkeyPtr key_;
  X509ReqPtr csr_;
  std::unique_ptr<LocalCa> local_;
};

TEST_F(LocalCaTest, IssuesACertificateThatPassesEveryCheck) {
  ASSERT_NE(local_, nullptr);
  std::string error;
  X509Ptr issued = local_->Issue(csr_.get(), {.days = 30}, Now(), &error);
  ASSERT_NE(issued, nullptr) << error;
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(issued.get()), X509_get_subject_name(current_.get())), 0);
  EXPECT_EQ(X509_check_ca(issued.get()), 0);
  EXPECT_NE(X509_get_extended_key_usage(issued.get()) & XKU_SSL_CLIENT, 0u);
  int days = 0, seconds = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, X509_get0_notBefore(issued.get()), X509_get0_notAfter(issued.get())), 1);
  EXPECT_EQ(days, 30);
  EXPECT_EQ(seconds, 300);  // backdated 5 minutes
  std::vector<X509Ptr> answer;
  answer.push_back(Ref(ca_.cert.get()));  // the CA first: the leaf is found by key, not position
  answer.push_back(Ref(issued.get()));
  X509* leaf = PickLeafByKey(answer, key_.get());
  ASSERT_EQ(leaf, issued.get());
  std::string why;
  EXPECT_TRUE(VerifyIssued(leaf, answer, {ca_.cert.get()}, csr_.get(), current_.get(), Now(), &why)) << why;
}

TEST_F(LocalCaTest, RefusesWhatTheDeviceMustNotReceive) {
  std::string error, why;
  X509Ptr issued = local_->Issue(csr_.get(), {}, Now(), &error);
  ASSERT_NE(issued, nullptr) << error;
  std::vector<X509Ptr> answer;
  answer.push_back(Ref(issued.get()));
  // Another key than the CSR's.
  EvpPkeyPtr other = GenerateKey(KeyType::kEcP256);
  X509ReqPtr other_csr = RenewalCsr(current_.get(), other.get());
  EXPECT_EQ(PickLeafByKey(answer, other.get()), nullptr);
  EXPECT_FALSE(VerifyIssued(issued.get(), answer, {ca_.cert.get()}, other_csr.get(), current_.get(), Now(), &why));
  EXPECT_EQ(why, "the issued certificate does not carry the CSR's public key");
  // Another CA.
  TestCa other_ca = TestCa::Create("Acme Devices Issuing CA");
  EXPECT_FALSE(VerifyIssued(issued.get(), answer, {other_ca.cert.get()}, csr_.get(), current_.get(), Now(), &why));
  EXPECT_NE(why.find("does not chain to the expected CA"), std::string::npos) << why;
  // Another identity.
  X509Ptr someone = ca_.Issue().Subject("O", "Acme Utilities").Subject("CN", "m-2").SanDns("m-1.acme.example").Build();
  EXPECT_FALSE(VerifyIssued(issued.get(), answer, {ca_.cert.get()}, csr_.get(), someone.get(), Now(), &why));
  EXPECT_EQ(why, "the issued certificate's subject differs from the device's current certificate");
  X509Ptr other_san = ca_.Issue().Subject("O", "Acme Utilities").Subject("CN", "m-1").SanDns("x.example").Build();
  EXPECT_FALSE(VerifyIssued(issued.get(), answer, {ca_.cert.get()}, csr_.get(), other_san.get(), Now(), &why));
  EXPECT_EQ(why, "the issued certificate's subjectAltName differs from the device's current certificate");
  // Not yet valid / expired at `now`.
  EXPECT_FALSE(VerifyIssued(issued.get(), answer, {ca_.cert.get()}, csr_.get(), current_.get(), Now() + 400 * 86400,
                            &why));
}

TEST(LocalCaLoad, ChecksTheFiles) {
  TempDir dir;
  TestCa ca = TestCa::Create("Acme Devices Issuing CA");
  WriteFile(dir.File("ca.pem"), ToPem(ca.cert.get()));
  WriteFile(dir.File("ca.key"), KeyToPem(ca.key.get()));
  EvpPkeyPtr other = GenerateKey(KeyType::kEcP256);
  WriteFile(dir.File("other.key"), KeyToPem(other.get()));
  X509Ptr leaf = ca.Issue().Subject("CN", "not-a-ca").Key(other.get()).Build();
  WriteFile(dir.File("leaf.pem"), ToPem(leaf.get()));
  std::string error;
  EXPECT_NE(LocalCa::Load(dir.File("ca.pem"), dir.File("ca.key"), &error), nullptr) << error;
  EXPECT_EQ(LocalCa::Load(dir.File("missing.pem"), dir.File("ca.key"), &error), nullptr);
  EXPECT_NE(error.find("cannot read the CA certificate"), std::string::npos) << error;
  EXPECT_EQ(LocalCa::Load(dir.File("ca.pem"), dir.File("other.key"), &error), nullptr);
  EXPECT_EQ(error, "the CA key does not match the CA certificate");
  EXPECT_EQ(LocalCa::Load(dir.File("leaf.pem"), dir.File("other.key"), &error), nullptr);
  EXPECT_EQ(error, "the CA certificate is not a CA (basicConstraints CA:TRUE)");
}

}  // namespace
}  // namespace certacl::enroll
