// Tests of the EST body decoders: lenient where RFC 8951 says so, strict
// everywhere else.
#include "enroll-bridge/est_codec.h"

#include <gtest/gtest.h>
#include <openssl/pkcs7.h>

#include <string>
#include <vector>

#include "tests/testing/cert_builder.h"

namespace certacl::enroll {
namespace {

using certacl::testing::TestCa;

// A certs-only SignedData, as `openssl crl2pkcs7 -nocrl` writes it.
std::string CertsOnlyDer(const std::vector<X509*>& certs) {
  PKCS7* p7 = PKCS7_new();
  PKCS7_set_type(p7, NID_pkcs7_signed);
  PKCS7_content_new(p7, NID_pkcs7_data);
  for (X509* c : certs) PKCS7_add_certificate(p7, c);
  unsigned char* der = nullptr;
  const int len = i2d_PKCS7(p7, &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  PKCS7_free(p7);
  return out;
}

std::string Base64Lines(const std::string& bytes, size_t width) {
  std::string b64(((bytes.size() + 2) / 3) * 4 + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  b64.resize(static_cast<size_t>(n));
  std::string out;
  for (size_t i = 0; i < b64.size(); i += width) out += b64.substr(i, width) + "\r\n";
  return out;
}

TEST(EstCodec, Base64IsLenientAboutWhitespaceOnly) {
  std::string out;
  EXPECT_TRUE(DecodeEstBase64("aGVs\r\nbG8=\n", &out));
  EXPECT_EQ(out, "hello");
  EXPECT_TRUE(DecodeEstBase64("  aGVsbG8h  ", &out));
  EXPECT_EQ(out, "hello!");
  EXPECT_FALSE(DecodeEstBase64("aGVs*G8=", &out));   // not base64
  EXPECT_FALSE(DecodeEstBase64("aGVsbG8", &out));    // not a multiple of 4
  EXPECT_FALSE(DecodeEstBase64("aG=sbG8=", &out));   // padding inside
  EXPECT_FALSE(DecodeEstBase64("", &out));
}

TEST(EstCodec, CertsOnlyResponsesInEveryEncoding) {
  TestCa ca = TestCa::Create("Acme Devices Issuing CA");
  X509Ptr leaf = ca.Issue().Subject("CN", "m-1").Build();
  const std::string der = CertsOnlyDer({ca.cert.get(), leaf.get()});
  for (const std::string& body : {der, Base64Lines(der, 64), Base64Lines(der, 76)}) {
    std::vector<X509Ptr> certs;
    std::string why;
    ASSERT_TRUE(CertsFromPkcs7(body, &certs, &why)) << why;
    ASSERT_EQ(certs.size(), 2u);
    EXPECT_EQ(X509_cmp(certs[0].get(), ca.cert.get()), 0);
    EXPECT_EQ(X509_cmp(certs[1].get(), leaf.get()), 0);
  }
}

TEST(EstCodec, RefusesWhatIsNotACertsOnlyResponse) {
  std::vector<X509Ptr> certs;
  std::string why;
  EXPECT_FALSE(CertsFromPkcs7("<html>503</html>", &certs, &why));
  EXPECT_EQ(why, "the body is neither base64 nor DER");
  EXPECT_FALSE(CertsFromPkcs7("AAAA", &certs, &why));
  EXPECT_EQ(why, "the body is not a DER PKCS#7 structure");
  EXPECT_FALSE(CertsFromPkcs7(CertsOnlyDer({}), &certs, &why));
  EXPECT_NE(why.find("holds no certificates"), std::string::npos) << why;
  TestCa ca = TestCa::Create("CA");
  std::string der = CertsOnlyDer({ca.cert.get()});
  EXPECT_FALSE(CertsFromPkcs7(der + "x", &certs, &why));  // trailing bytes
}

TEST(EstCodec, MediaTypeIgnoresParametersAndCase) {
  EXPECT_EQ(MediaType("application/pkcs7-mime; smime-type=certs-only"), "application/pkcs7-mime");
  EXPECT_EQ(MediaType("Application/PKCS7-MIME"), "application/pkcs7-mime");
  EXPECT_EQ(MediaType("  application/csrattrs ;charset=x"), "application/csrattrs");
  EXPECT_EQ(MediaType(""), "");
}

}  // namespace
}  // namespace certacl::enroll
