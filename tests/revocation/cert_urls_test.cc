// cert_urls_test.cc: OcspUrls (authorityInfoAccess) and CrlUrls
// (cRLDistributionPoints) on certificates carrying hand-encoded extensions.
#include "plugin/revocation/cert_urls.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/x509v3.h>

#include <string>
#include <vector>

#include "policy/openssl_ptr.h"
#include "tests/testing/cert_builder.h"

namespace certacl::revocation {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using testing::CertBuilder;
using testing::DerOid;
using testing::DerSequence;
using testing::DerTlv;
using testing::DerUtf8String;
using testing::TestCa;

constexpr char kAiaOid[] = "1.3.6.1.5.5.7.1.1";
constexpr char kCdpOid[] = "2.5.29.31";
constexpr char kOcspMethod[] = "1.3.6.1.5.5.7.48.1";
constexpr char kCaIssuersMethod[] = "1.3.6.1.5.5.7.48.2";

// GeneralName choices (implicit tags).
std::string Uri(std::string_view s) { return DerTlv(0x86, s); }
std::string Dns(std::string_view s) { return DerTlv(0x82, s); }

std::string AccessDescription(const char* method, const std::string& location) {
  return DerSequence({DerOid(method), location});
}

// DistributionPoint with distributionPoint fullName = `names`.
std::string FullNamePoint(const std::vector<std::string>& names, const std::string& crl_issuer = "") {
  std::string general_names;
  for (const std::string& n : names) general_names += n;
  std::string point = DerTlv(0xA0, DerTlv(0xA0, general_names));  // [0] DistributionPointName, [0] fullName
  if (!crl_issuer.empty()) point += DerTlv(0xA2, crl_issuer);      // [2] cRLIssuer GeneralNames
  return DerTlv(0x30, point);
}

// DistributionPoint with nameRelativeToCRLIssuer (CN=crl).
std::string RelativeNamePoint() {
  const std::string atv = DerSequence({DerOid("2.5.4.3"), DerUtf8String("crl")});
  return DerTlv(0x30, DerTlv(0xA0, DerTlv(0xA1, atv)));
}

X509Ptr WithExtension(const char* oid, const std::string& der) {
  return CertBuilder().Subject("CN", "dev").Extension(oid, der).Build();
}

TEST(CertUrls, NoExtensions) {
  X509Ptr cert = CertBuilder().Subject("CN", "dev").Build();
  EXPECT_THAT(OcspUrls(cert.get()), IsEmpty());
  EXPECT_THAT(CrlUrls(cert.get()), IsEmpty());
  EXPECT_THAT(OcspUrls(nullptr), IsEmpty());
  EXPECT_THAT(CrlUrls(nullptr), IsEmpty());
}

TEST(CertUrls, OcspFromAia) {
  X509Ptr cert = WithExtension(
      kAiaOid, DerSequence({AccessDescription(kCaIssuersMethod, Uri("http://ca.example/ca.crt")),
                            AccessDescription(kOcspMethod, Uri("http://127.0.0.1:8888/")),
                            AccessDescription(kOcspMethod, Dns("not-a-uri.example")),
                            AccessDescription(kOcspMethod, Uri("ldap://ocsp.example/x"))}));
  EXPECT_THAT(OcspUrls(cert.get()), ElementsAre("http://127.0.0.1:8888/", "ldap://ocsp.example/x"));
  EXPECT_THAT(CrlUrls(cert.get()), IsEmpty());
}

TEST(CertUrls, CrlFromDistributionPoints) {
  X509Ptr cert = WithExtension(
      kCdpOid, DerSequence({FullNamePoint({Uri("http://127.0.0.1:8080/ca.crl"), Dns("x.example"),
                                           Uri("ldap://dir.example/cn=CA?certificateRevocationList")}),
                            RelativeNamePoint(),
                            FullNamePoint({Uri("http://indirect.example/other.crl")}, Dns("crl-issuer.example")),
                            FullNamePoint({Uri("http://mirror.example/ca.crl")})}));
  EXPECT_THAT(CrlUrls(cert.get()),
              ElementsAre("http://127.0.0.1:8080/ca.crl", "ldap://dir.example/cn=CA?certificateRevocationList",
                          "http://mirror.example/ca.crl"));
  EXPECT_THAT(OcspUrls(cert.get()), IsEmpty());
}

TEST(CertUrls, FromOpensslConfigSyntax) {
  // The same extensions as `openssl ca` would write them from a config file.
  TestCa ca = TestCa::Create("Url CA");
  auto ext_der = [](int nid, const char* value) {
    OpenSslPtr<X509_EXTENSION, X509_EXTENSION_free> ext(X509V3_EXT_conf_nid(nullptr, nullptr, nid, value));
    EXPECT_TRUE(ext) << value;
    const ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(ext.get());
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                       static_cast<size_t>(ASN1_STRING_length(data)));
  };
  X509Ptr cert = ca.Issue()
                     .Subject("CN", "dev")
                     .Extension(kAiaOid, ext_der(NID_info_access, "OCSP;URI:http://ocsp.example:8888/,"
                                                                  "caIssuers;URI:http://ca.example/ca.crt"))
                     .Extension(kCdpOid, ext_der(NID_crl_distribution_points,
                                                 "URI:http://crl.example/ca.crl,URI:http://crl2.example/ca.crl"))
                     .Build();
  EXPECT_THAT(OcspUrls(cert.get()), ElementsAre("http://ocsp.example:8888/"));
  EXPECT_THAT(CrlUrls(cert.get()), ElementsAre("http://crl.example/ca.crl", "http://crl2.example/ca.crl"));
}

TEST(CertUrls, Bounds) {
  std::vector<std::string> descriptions;
  for (int i = 0; i < 12; ++i) {
    descriptions.push_back(AccessDescription(kOcspMethod, Uri("http://r" + std::to_string(i) + ".example/")));
  }
  X509Ptr many = WithExtension(kAiaOid, DerSequence(descriptions));
  std::vector<std::string> urls = OcspUrls(many.get());
  ASSERT_EQ(urls.size(), kMaxCertUrls);
  EXPECT_EQ(urls.front(), "http://r0.example/");
  EXPECT_EQ(urls.back(), "http://r7.example/");

  const std::string longest = "http://h/" + std::string(kMaxCertUrlLength - 9, 'a');
  const std::string too_long = longest + "a";
  X509Ptr lengths = WithExtension(
      kCdpOid, DerSequence({FullNamePoint({Uri(too_long), Uri(longest), Uri(std::string("http://n\0/", 10)),
                                           Uri("http://sp ace/"), Uri("")})}));
  EXPECT_THAT(CrlUrls(lengths.get()), ElementsAre(longest));
}

TEST(CertUrls, MalformedExtensionGivesNothing) {
  X509Ptr cert = WithExtension(kAiaOid, DerTlv(0x04, "junk"));
  EXPECT_THAT(OcspUrls(cert.get()), IsEmpty());
  X509Ptr cdp = WithExtension(kCdpOid, DerTlv(0x30, "\x01\x02"));
  EXPECT_THAT(CrlUrls(cdp.get()), IsEmpty());
}

}  // namespace
}  // namespace certacl::revocation
