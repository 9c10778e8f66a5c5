// identity_test.cc: Identity::FromCertificate / FromPem / Describe and
// CheckValue, on certificates built in-process with cert_builder.h. Every
// attribute kind of attributes.h, the string encodings, and each reason a
// value is left out.
#include "policy/identity.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <string>
#include <vector>

#include "policy/attributes.h"
#include "tests/testing/cert_builder.h"

namespace {

namespace ct = certacl::testing;
using certacl::CheckValue;
using certacl::Identity;
using certacl::X509Ptr;
using Strings = std::vector<std::string>;

constexpr char kCustomOid[] = "1.3.6.1.4.1.99999.1";
constexpr char kMatterVendorId[] = "1.3.6.1.4.1.37244.2.1";

Identity Read(ct::CertBuilder& builder) {
  X509Ptr cert = builder.Build();
  return Identity::FromCertificate(cert.get());
}

Identity Read(ct::CertBuilder&& builder) { return Read(builder); }

// The values of `name`, or an empty vector when the attribute is absent
// (absent attributes are also checked with Values() == nullptr).
std::vector<std::string> ValuesOf(const Identity& id, std::string_view name) {
  const std::vector<std::string>* v = id.Values(name);
  return v != nullptr ? *v : std::vector<std::string>();
}

// A self-signed certificate with a fixed serial and validity, so that
// expectations can be exact.
ct::CertBuilder Fixed() {
  ct::CertBuilder b;
  b.Serial("01AB").Validity(1700000000, 1800000000);
  return b;
}

std::string Sha256Hex(const std::string& der) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EXPECT_EQ(EVP_Digest(der.data(), der.size(), md, &len, EVP_sha256(), nullptr), 1);
  std::string hex;
  char buf[3];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", md[i]);
    hex += buf;
  }
  return hex;
}

// ---------------------------------------------------------------------------
// Distinguished names.

struct ShortNameCase {
  const char* field;
  const char* value;
};

// One value per short name of attributes.h (C must be two letters).
const std::vector<ShortNameCase>& AllShortNames() {
  static const std::vector<ShortNameCase> cases = {
      {"CN", "m-00000001"},       {"O", "Acme Utilities"},     {"OU", "meter"},
      {"L", "Berlin"},            {"ST", "Berlin State"},      {"C", "DE"},
      {"serialNumber", "SN-42"},  {"DC", "example"},           {"emailAddress", "ops@acme.example"},
      {"street", "Main St 1"},    {"title", "Meter"},          {"givenName", "Ada"},
      {"surname", "Lovelace"},    {"initials", "AL"},          {"pseudonym", "ada"},
      {"UID", "u-1"},             {"postalCode", "10115"},     {"organizationIdentifier", "VATDE-123"},
  };
  return cases;
}

TEST(IdentityDn, ExtractsEveryShortNameFromTheSubject) {
  ct::CertBuilder b = Fixed();
  for (const ShortNameCase& c : AllShortNames()) b.Subject(c.field, c.value);
  Identity id = Read(b);
  EXPECT_EQ(id.rejected(), Strings{});
  for (const ShortNameCase& c : AllShortNames()) {
    EXPECT_EQ(ValuesOf(id, std::string("subject.") + c.field), (Strings{c.value})) << c.field;
  }
}

TEST(IdentityDn, ExtractsEveryShortNameFromAnIssuerOverride) {
  ct::CertBuilder b = Fixed();
  b.Subject("CN", "leaf");
  for (const ShortNameCase& c : AllShortNames()) b.Issuer(c.field, c.value);
  Identity id = Read(b);
  EXPECT_EQ(id.rejected(), Strings{});
  for (const ShortNameCase& c : AllShortNames()) {
    EXPECT_EQ(ValuesOf(id, std::string("issuer.") + c.field), (Strings{c.value})) << c.field;
  }
  EXPECT_EQ(ValuesOf(id, "subject.CN"), (Strings{"leaf"}));
}

TEST(IdentityDn, SelfSignedIssuerEqualsSubject) {
  Identity id = Read(Fixed().Subject("CN", "self").Subject("O", "Acme"));
  EXPECT_EQ(ValuesOf(id, "issuer.CN"), (Strings{"self"}));
  EXPECT_EQ(ValuesOf(id, "issuer.O"), (Strings{"Acme"}));
}

TEST(IdentityDn, IssuerComesFromTheSigningCa) {
  ct::TestCa ca = ct::TestCa::Create("Acme Issuing CA");
  Identity id = Read(ca.Issue().Subject("CN", "m-1"));
  EXPECT_EQ(ValuesOf(id, "issuer.CN"), (Strings{"Acme Issuing CA"}));
  EXPECT_EQ(ValuesOf(id, "subject.CN"), (Strings{"m-1"}));
}

TEST(IdentityDn, CustomOidUsesTheDottedName) {
  Identity id = Read(Fixed()
                         .Subject(kMatterVendorId, "FFF1")
                         .Issuer(kMatterVendorId, "FFF2")
                         .Issuer("CN", "Matter PAI"));
  EXPECT_EQ(id.rejected(), Strings{});
  EXPECT_EQ(ValuesOf(id, "subject.1.3.6.1.4.1.37244.2.1"), (Strings{"FFF1"}));
  EXPECT_EQ(ValuesOf(id, "issuer.1.3.6.1.4.1.37244.2.1"), (Strings{"FFF2"}));
}

TEST(IdentityDn, OidOpenSslKnowsButCertaclHasNoShortNameForStaysDotted) {
  Identity id = Read(Fixed().Subject("businessCategory", "utilities"));  // 2.5.4.15
  EXPECT_EQ(ValuesOf(id, "subject.2.5.4.15"), (Strings{"utilities"}));
  EXPECT_EQ(id.Values("subject.businessCategory"), nullptr);
}

TEST(IdentityDn, DottedOidWithAShortNameIsStoredUnderTheShortName) {
  Identity id = Read(Fixed().Subject("2.5.4.3", "by-oid").Subject("2.5.4.11", "unit"));
  EXPECT_EQ(ValuesOf(id, "subject.CN"), (Strings{"by-oid"}));
  EXPECT_EQ(ValuesOf(id, "subject.OU"), (Strings{"unit"}));
  EXPECT_EQ(id.Values("subject.2.5.4.3"), nullptr);
}

TEST(IdentityDn, MultiValuedRdnKeepsEveryValue) {
  Identity id = Read(Fixed()
                         .SubjectMultiValued({{"CN", "alice"}, {"UID", "42"}})
                         .SubjectMultiValued({{"OU", "b-team"}, {"OU", "a-team"}}));
  EXPECT_EQ(id.rejected(), Strings{});
  EXPECT_EQ(ValuesOf(id, "subject.CN"), (Strings{"alice"}));
  EXPECT_EQ(ValuesOf(id, "subject.UID"), (Strings{"42"}));
  Strings ous = ValuesOf(id, "subject.OU");  // DER sorts the AVAs of one RDN
  std::sort(ous.begin(), ous.end());
  EXPECT_EQ(ous, (Strings{"a-team", "b-team"}));
  // Really one RDN each: two sets of two entries.
  const X509_NAME* name = X509_get_subject_name(id.certificate());
  ASSERT_EQ(X509_NAME_entry_count(name), 4);
  EXPECT_EQ(X509_NAME_ENTRY_set(X509_NAME_get_entry(name, 0)),
            X509_NAME_ENTRY_set(X509_NAME_get_entry(name, 1)));
  EXPECT_NE(X509_NAME_ENTRY_set(X509_NAME_get_entry(name, 1)),
            X509_NAME_ENTRY_set(X509_NAME_get_entry(name, 2)));
}

TEST(IdentityDn, MultiValuedRdnSurvivesAPemRoundTrip) {
  X509Ptr cert = Fixed().SubjectMultiValued({{"CN", "alice"}, {"UID", "42"}}).Build();
  Identity id;
  std::string error;
  ASSERT_TRUE(Identity::FromPem(ct::ToPem(cert.get()), &id, &error)) << error;
  EXPECT_EQ(ValuesOf(id, "subject.CN"), (Strings{"alice"}));
  EXPECT_EQ(ValuesOf(id, "subject.UID"), (Strings{"42"}));
}

TEST(IdentityDn, RepeatedAttributeKeepsCertificateOrder) {
  Identity id = Read(Fixed().Subject("OU", "zeta").Subject("CN", "x").Subject("OU", "alpha"));
  EXPECT_EQ(ValuesOf(id, "subject.OU"), (Strings{"zeta", "alpha"}));
}

// ---------------------------------------------------------------------------
// String encodings.

TEST(IdentityEncoding, BmpStringIsConvertedToUtf8) {
  // "Aé€" in UTF-16BE.
  Identity id = Read(Fixed().SubjectRaw("CN", V_ASN1_BMPSTRING, ct::FromHex("0041 00E9 20AC")));
  EXPECT_EQ(id.rejected(), Strings{});
  EXPECT_EQ(ValuesOf(id, "subject.CN"), (Strings{"A\xC3\xA9\xE2\x82\xAC"}));
}

TEST(IdentityEncoding, UniversalStringCarriesCharactersOutsideTheBmp) {
  // U+1F600 and "x" in UTF-32BE.
  Identity id =
      Read(Fixed().SubjectRaw("CN", V_ASN1_UNIVERSALSTRING, ct::FromHex("0001F600 00000078")));
  EXPECT_EQ(id.rejected(), Strings{});
  EXPECT_EQ(ValuesOf(id, "subject.CN"), (Strings{"\xF0\x9F\x98\x80x"}));
}

TEST(IdentityEncoding, OneByteStringTypesAreRead) {
  Identity id = Read(Fixed()
                         .SubjectRaw("CN", V_ASN1_PRINTABLESTRING, "Acme Meter 1")
                         .SubjectRaw("O", V_ASN1_T61STRING, "Caf\xE9")  // Latin-1 e-acute
                         .SubjectRaw("OU", V_ASN1_IA5STRING, "ops@acme")
                         .SubjectRaw("serialNumber", V_ASN1_NUMERICSTRING, "0042"));
  EXPECT_EQ(id.rejected(), Strings{});
  EXPECT_EQ(ValuesOf(id, "subject.CN"), (Strings{"Acme Meter 1"}));
  EXPECT_EQ(ValuesOf(id, "subject.O"), (Strings{"Caf\xC3\xA9"}));
  EXPECT_EQ(ValuesOf(id, "subject.OU"), (Strings{"ops@acme"}));
  EXPECT_EQ(ValuesOf(id, "subject.serialNumber"), (Strings{"0042"}));
}

TEST(IdentityEncoding, Utf8StringIsKeptByteForByte) {
  Identity id = Read(Fixed().Subject("CN", "M\xC3\xBCller \xE6\x97\xA5\xE6\x9C\xAC"));
  EXPECT_EQ(ValuesOf(id, "subject.CN"), (Strings{"M\xC3\xBCller \xE6\x97\xA5\xE6\x9C\xAC"}));
}

TEST(IdentityEncoding, EmptyValueIsKept) {
  Identity id = Read(Fixed().SubjectRaw("OU", V_ASN1_UTF8STRING, ""));
  EXPECT_EQ(id.rejected(), Strings{});
  EXPECT_EQ(ValuesOf(id, "subject.OU"), (Strings{""}));
}

// OpenSSL 3.0 itself refuses a DN with a BMP surrogate (even a valid pair)
// or invalid UTF-8: such certificates do not parse, so the converter is
// exercised below through custom extensions, which OpenSSL does not check.
TEST(IdentityEncoding, OpenSslRefusesDnWithBmpSurrogatesOrInvalidUtf8) {
  const std::string bmp_pair = ct::DerSequence({ct::DerTlv(
      0x31, ct::DerSequence({ct::DerOid("2.5.4.3"), ct::DerString(V_ASN1_BMPSTRING, ct::FromHex("D83DDE00"))}))});
  const std::string bad_utf8 = ct::DerSequence({ct::DerTlv(
      0x31, ct::DerSequence({ct::DerOid("2.5.4.3"), ct::DerUtf8String("a\xFF")}))});
  for (const std::string& der : {bmp_pair, bad_utf8}) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
    X509_NAME* name = d2i_X509_NAME(nullptr, &p, static_cast<long>(der.size()));
    EXPECT_EQ(name, nullptr);
    X509_NAME_free(name);
  }
  ERR_clear_error();
}

TEST(IdentityEncoding, BmpSurrogatePairIsCombined) {
  Identity id = Read(Fixed().Extension(
      kCustomOid, ct::DerString(V_ASN1_BMPSTRING, ct::FromHex("0041 D83D DE00 0042"))));
  EXPECT_EQ(id.rejected(), Strings{});
  EXPECT_EQ(ValuesOf(id, "ext.1.3.6.1.4.1.99999.1"), (Strings{"A\xF0\x9F\x98\x80" "B"}));
}

TEST(IdentityEncoding, UnpairedHighSurrogateInBmpStringIsRejected) {
  Identity id = Read(Fixed().Extension(
      kCustomOid, ct::DerString(V_ASN1_BMPSTRING, ct::FromHex("0041 D83D 0042"))));
  EXPECT_EQ(id.Values("ext.1.3.6.1.4.1.99999.1"), nullptr);
  EXPECT_EQ(id.rejected(), (Strings{"ext.1.3.6.1.4.1.99999.1: unpaired surrogate U+D83D in BMPString at offset 2"}));
}

TEST(IdentityEncoding, LoneLowSurrogateAndTrailingHighSurrogateAreRejected) {
  Identity id = Read(Fixed()
                         .Extension("1.3.6.1.4.1.99999.1",
                                    ct::DerString(V_ASN1_BMPSTRING, ct::FromHex("DE00 0041")))
                         .Extension("1.3.6.1.4.1.99999.2",
                                    ct::DerString(V_ASN1_BMPSTRING, ct::FromHex("0041 D83D"))));
  EXPECT_EQ(id.rejected(), (Strings{"ext.1.3.6.1.4.1.99999.1: unpaired surrogate U+DE00 in BMPString at offset 0",
                          "ext.1.3.6.1.4.1.99999.2: unpaired surrogate U+D83D in BMPString at offset 2"}));
}

TEST(IdentityEncoding, UniversalStringOutOfRangeIsRejected) {
  Identity id = Read(Fixed()
                         .Extension("1.3.6.1.4.1.99999.1",
                                    ct::DerString(V_ASN1_UNIVERSALSTRING, ct::FromHex("00000041 00110000")))
                         .Extension("1.3.6.1.4.1.99999.2",
                                    ct::DerString(V_ASN1_UNIVERSALSTRING, ct::FromHex("0000D800"))));
  EXPECT_EQ(id.rejected(), (Strings{"ext.1.3.6.1.4.1.99999.1: invalid code point U+110000 in UniversalString at offset 4",
                          "ext.1.3.6.1.4.1.99999.2: invalid code point U+D800 in UniversalString at offset 0"}));
}

TEST(IdentityEncoding, InvalidUtf8InUtf8StringIsRejected) {
  Identity id = Read(Fixed()
                         .Extension("1.3.6.1.4.1.99999.1", ct::DerUtf8String("ab\xC3("))
                         .Extension("1.3.6.1.4.1.99999.2", ct::DerUtf8String("\xC0\xAF"))       // overlong '/'
                         .Extension("1.3.6.1.4.1.99999.3", ct::DerUtf8String("x\xED\xA0\x80"))  // surrogate
                         .Extension("1.3.6.1.4.1.99999.4", ct::DerUtf8String("ok")));
  EXPECT_EQ(id.rejected(), (Strings{"ext.1.3.6.1.4.1.99999.1: invalid UTF-8 at byte 2",
                                         "ext.1.3.6.1.4.1.99999.2: invalid UTF-8 at byte 0",
                                         "ext.1.3.6.1.4.1.99999.3: invalid UTF-8 at byte 1"}));
  EXPECT_EQ(ValuesOf(id, "ext.1.3.6.1.4.1.99999.4"), (Strings{"ok"}));
}

// ---------------------------------------------------------------------------
// Values left out.

TEST(IdentityRejected, EmbeddedNulIsKeptOutWithItsOffset) {
  Identity id = Read(Fixed().SubjectRaw("CN", V_ASN1_UTF8STRING, std::string("abc\0def", 7)));
  EXPECT_EQ(id.Values("subject.CN"), nullptr);
  EXPECT_EQ(id.Values("issuer.CN"), nullptr);  // self-signed: same bytes
  EXPECT_EQ(id.rejected(), (Strings{"subject.CN: embedded NUL byte at offset 3",
                                         "issuer.CN: embedded NUL byte at offset 3"}));
}

TEST(IdentityRejected, EmbeddedNulIsFoundInEveryStringType) {
  Identity id =
      Read(Fixed()
               .Issuer("CN", "ca")
               .SubjectRaw("CN", V_ASN1_BMPSTRING, ct::FromHex("0041 0000 0042"))
               .SubjectRaw("O", V_ASN1_PRINTABLESTRING, std::string("ab\0", 3))
               .SubjectRaw("OU", V_ASN1_UNIVERSALSTRING, ct::FromHex("00000041 00000000"))
               .SanRaw(ct::SanKind::kDns, std::string("good.example\0.evil.example", 26)));
  EXPECT_EQ(id.rejected(), (Strings{"subject.CN: embedded NUL byte at offset 2",
                                         "subject.O: embedded NUL byte at offset 2",
                                         "subject.OU: embedded NUL byte at offset 4",
                                         "san.dns: embedded NUL byte at offset 12"}));
  EXPECT_EQ(id.Values("san.dns"), nullptr);
  EXPECT_EQ(id.Values("subject.CN"), nullptr);
}

TEST(IdentityRejected, C0ControlCharactersAreRejected) {
  Identity id = Read(Fixed()
                         .Issuer("CN", "ca")
                         .Subject("CN", "a\x1B[31m")
                         .Subject("O", "tab\there")
                         .Subject("OU", "del\x7F")
                         .San(ct::SanKind::kUri, "urn:x\ny"));
  EXPECT_EQ(id.rejected(), (Strings{"subject.CN: control character U+001B at offset 1",
                                         "subject.O: control character U+0009 at offset 3",
                                         "subject.OU: control character U+007F at offset 3",
                                         "san.uri: control character U+000A at offset 5"}));
  EXPECT_EQ(id.Values("subject.CN"), nullptr);
  EXPECT_EQ(id.Values("san.uri"), nullptr);
}

TEST(IdentityRejected, C1ControlCharactersAreRejected) {
  Identity id = Read(Fixed()
                         .Issuer("CN", "ca")
                         .Subject("CN", "x\xC2\x85y")                         // U+0085 NEL in UTF-8
                         .SubjectRaw("O", V_ASN1_T61STRING, "ab\x9B")          // 0x9B as Latin-1
                         .SubjectRaw("OU", V_ASN1_BMPSTRING, ct::FromHex("0080")));
  EXPECT_EQ(id.rejected(), (Strings{"subject.CN: control character U+0085 at offset 1",
                                         "subject.O: control character U+009B at offset 2",
                                         "subject.OU: control character U+0080 at offset 0"}));
}

TEST(IdentityRejected, OtherValuesOfTheSameAttributeStay) {
  Identity id = Read(Fixed()
                         .Issuer("CN", "ca")
                         .Subject("OU", "good-1")
                         .SubjectRaw("OU", V_ASN1_UTF8STRING, std::string("b\0d", 3))
                         .Subject("OU", "good-2"));
  EXPECT_EQ(ValuesOf(id, "subject.OU"), (Strings{"good-1", "good-2"}));
  EXPECT_EQ(id.rejected(), (Strings{"subject.OU: embedded NUL byte at offset 1"}));
}

TEST(IdentityRejected, ValueLongerThanTheLimitIsRejected) {
  std::string max(Identity::kMaxValueBytes, 'a');
  std::string over(Identity::kMaxValueBytes + 1, 'b');
  Identity id = Read(Fixed()
                         .Issuer("CN", "ca")
                         .SubjectRaw("OU", V_ASN1_UTF8STRING, max)
                         .SubjectRaw("O", V_ASN1_UTF8STRING, over));
  EXPECT_EQ(ValuesOf(id, "subject.OU"), (Strings{max}));
  EXPECT_EQ(id.Values("subject.O"), nullptr);
  EXPECT_EQ(id.rejected(), (Strings{"subject.O: value is 4097 bytes, more than the limit of 4096"}));
}

TEST(IdentityRejected, MoreValuesThanTheLimitDropTheWholeAttribute) {
  ct::CertBuilder b = Fixed();
  b.Issuer("CN", "ca").Subject("CN", "kept");
  for (size_t i = 0; i <= Identity::kMaxValuesPerAttribute; ++i) {  // 65 OUs
    b.Subject("OU", "ou-" + std::to_string(i));
  }
  for (size_t i = 0; i < Identity::kMaxValuesPerAttribute; ++i) {  // 64 SANs: fine
    b.SanDns("d" + std::to_string(i) + ".example");
  }
  Identity id = Read(b);
  EXPECT_EQ(id.Values("subject.OU"), nullptr);
  EXPECT_EQ(id.rejected(), (Strings{"subject.OU: 65 values, more than the limit of 64: attribute left out"}));
  EXPECT_EQ(ValuesOf(id, "subject.CN"), (Strings{"kept"}));
  ASSERT_NE(id.Values("san.dns"), nullptr);
  EXPECT_EQ(id.Values("san.dns")->size(), 64u);
  EXPECT_EQ(id.Values("san.dns")->back(), "d63.example");
}

TEST(IdentityRejected, TooManySansDropSanDns) {
  ct::CertBuilder b = Fixed();
  for (int i = 0; i < 70; ++i) b.SanDns("d" + std::to_string(i) + ".example");
  b.SanIp("192.0.2.1");
  Identity id = Read(b);
  EXPECT_EQ(id.Values("san.dns"), nullptr);
  EXPECT_EQ(ValuesOf(id, "san.ip"), (Strings{"192.0.2.1"}));
  EXPECT_EQ(id.rejected(), (Strings{"san.dns: 70 values, more than the limit of 64: attribute left out"}));
}

// ---------------------------------------------------------------------------
// subjectAltName.

TEST(IdentitySan, EveryKindIsExtractedInOrder) {
  Identity id = Read(Fixed()
                         .SanDns("a.example")
                         .SanUri("urn:dev:ABC")
                         .SanEmail("ops@acme.example")
                         .SanIp("192.0.2.7")
                         .SanDns("b.example")
                         .SanIp("2001:db8::1"));
  EXPECT_EQ(id.rejected(), Strings{});
  EXPECT_EQ(ValuesOf(id, "san.dns"), (Strings{"a.example", "b.example"}));
  EXPECT_EQ(ValuesOf(id, "san.uri"), (Strings{"urn:dev:ABC"}));
  EXPECT_EQ(ValuesOf(id, "san.email"), (Strings{"ops@acme.example"}));
  EXPECT_EQ(ValuesOf(id, "san.ip"), (Strings{"192.0.2.7", "2001:db8::1"}));
}

TEST(IdentitySan, DnsNamesAreLowercased) {
  Identity id = Read(Fixed().SanDns("Device-1.Meters.ACME.Example"));
  EXPECT_EQ(ValuesOf(id, "san.dns"), (Strings{"device-1.meters.acme.example"}));
}

TEST(IdentitySan, EmailDomainIsLowercasedButNotTheLocalPart) {
  Identity id = Read(Fixed().SanEmail("Alice.Smith@Example.COM"));
  EXPECT_EQ(ValuesOf(id, "san.email"), (Strings{"Alice.Smith@example.com"}));
}

TEST(IdentitySan, UriIsNotNormalised) {
  Identity id = Read(Fixed().SanUri("HTTPS://Example.COM/Path"));
  EXPECT_EQ(ValuesOf(id, "san.uri"), (Strings{"HTTPS://Example.COM/Path"}));
}

TEST(IdentitySan, Ipv6IsPrintedInRfc5952Form) {
  Identity id = Read(Fixed()
                         .SanRaw(ct::SanKind::kIp, ct::FromHex("20010DB8000000000000000000000001"))
                         .SanIp("2001:DB8:0:0:1:0:0:1")
                         .SanIp("::ffff:192.0.2.1"));
  EXPECT_EQ(ValuesOf(id, "san.ip"), (Strings{"2001:db8::1", "2001:db8::1:0:0:1", "::ffff:192.0.2.1"}));
}

TEST(IdentitySan, IpAddressOfWrongLengthIsRejected) {
  Identity id = Read(Fixed()
                         .SanRaw(ct::SanKind::kIp, ct::FromHex("C000020700"))
                         .SanRaw(ct::SanKind::kIp, ct::FromHex("C0000207")));
  EXPECT_EQ(ValuesOf(id, "san.ip"), (Strings{"192.0.2.7"}));
  EXPECT_EQ(id.rejected(), (Strings{"san.ip: address is 5 bytes, expected 4 or 16"}));
}

TEST(IdentitySan, OtherNameKindsAreIgnored) {
  Identity id = Read(Fixed().San(ct::SanKind::kRegisteredId, "1.3.6.1.4.1.99999.7").SanDns("x.example"));
  EXPECT_EQ(id.rejected(), Strings{});
  EXPECT_EQ(ValuesOf(id, "san.dns"), (Strings{"x.example"}));
  for (const Identity::Attribute& a : id.attributes()) {
    EXPECT_TRUE(a.name.rfind("san.", 0) != 0 || a.name == "san.dns") << a.name;
  }
}

TEST(IdentitySan, NoSanExtensionMeansNoSanAttributes) {
  Identity id = Read(Fixed().Subject("CN", "x"));
  EXPECT_EQ(id.Values("san.dns"), nullptr);
  EXPECT_EQ(id.Values("san.ip"), nullptr);
}

// ---------------------------------------------------------------------------
// cert.*

struct SerialCase {
  const char* in;
  const char* expected;
};

TEST(IdentityCert, SerialIsUppercaseHex) {
  for (const SerialCase& c : std::vector<SerialCase>{
           {"01AB", "01AB"},
           {"00FF", "FF"},  // leading zero bytes are not part of the number
           {"0ABC", "0ABC"},
           {"ff", "FF"},
           {"80", "80"},  // DER needs a 00 byte here; the value has none
           {"-05", "-05"},
           {"-0100", "-0100"},
           {"0", "0"},
           {"7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", "7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"},
       }) {
    Identity id = Read(ct::CertBuilder().Serial(c.in));
    EXPECT_EQ(ValuesOf(id, "cert.serial"), (Strings{c.expected})) << c.in;
  }
}

TEST(IdentityCert, Sha256MatchesAnIndependentDigestOfTheDer) {
  X509Ptr cert = Fixed().Subject("CN", "x").Build();
  Identity id = Identity::FromCertificate(cert.get());
  std::string expected = Sha256Hex(ct::ToDer(cert.get()));
  ASSERT_EQ(expected.size(), 64u);
  EXPECT_EQ(ValuesOf(id, "cert.sha256"), (Strings{expected}));
}

struct KeyCase {
  ct::KeyType type;
  const char* expected;
};

TEST(IdentityCert, KeyTypeIsNamed) {
  for (const KeyCase& c : std::vector<KeyCase>{
           {ct::KeyType::kEcP256, "ec-p256"},
           {ct::KeyType::kEcP384, "ec-p384"},
           {ct::KeyType::kEcP521, "ec-p521"},
           {ct::KeyType::kRsa2048, "rsa-2048"},
           {ct::KeyType::kEd25519, "ed25519"},
       }) {
    ct::EvpPkeyPtr key = ct::CachedKey(c.type);
    Identity id = Read(Fixed().Key(key.get()));
    EXPECT_EQ(ValuesOf(id, "cert.key"), (Strings{c.expected}));
  }
}

TEST(IdentityCert, OtherEcCurveUsesItsShortName) {
  ct::EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "secp256k1"));
  ASSERT_NE(key, nullptr);
  Identity id = Read(Fixed().Key(key.get()));
  EXPECT_EQ(ValuesOf(id, "cert.key"), (Strings{"ec-secp256k1"}));
}

TEST(IdentityCert, ValidityAsRfc3339AndEpoch) {
  Identity id = Read(ct::CertBuilder().Validity(1700000000, 1800000000));
  EXPECT_EQ(ValuesOf(id, "cert.not_before"), (Strings{"2023-11-14T22:13:20Z"}));
  EXPECT_EQ(ValuesOf(id, "cert.not_after"), (Strings{"2027-01-15T08:00:00Z"}));
  EXPECT_EQ(id.not_before(), 1700000000);
  EXPECT_EQ(id.not_after(), 1800000000);
}

TEST(IdentityCert, ValidityBeyond2049UsesGeneralizedTime) {
  Identity id = Read(ct::CertBuilder().Validity(0, 4102444800));
  EXPECT_EQ(ValuesOf(id, "cert.not_before"), (Strings{"1970-01-01T00:00:00Z"}));
  EXPECT_EQ(ValuesOf(id, "cert.not_after"), (Strings{"2100-01-01T00:00:00Z"}));
  EXPECT_EQ(id.not_before(), 0);
  EXPECT_EQ(id.not_after(), 4102444800);
}

TEST(IdentityCert, PoliciesAreDottedInOrder) {
  Identity id = Read(Fixed().Policy("2.23.140.1.2.1").Policy("1.3.6.1.4.1.99999.5.1").Policy("2.5.29.32.0"));
  EXPECT_EQ(id.rejected(), Strings{});
  EXPECT_EQ(ValuesOf(id, "cert.policy"), (Strings{"2.23.140.1.2.1", "1.3.6.1.4.1.99999.5.1", "2.5.29.32.0"}));
}

TEST(IdentityCert, AlwaysPresentAttributesArePresent) {
  Identity id = Read(ct::CertBuilder());
  for (const char* name : {"cert.serial", "cert.sha256", "cert.key", "cert.not_before", "cert.not_after"}) {
    EXPECT_TRUE(certacl::AlwaysPresent(name)) << name;
    ASSERT_NE(id.Values(name), nullptr) << name;
    EXPECT_EQ(id.Values(name)->size(), 1u) << name;
  }
  EXPECT_EQ(id.Values("cert.policy"), nullptr);
  EXPECT_EQ(id.Values("mqtt.client_id"), nullptr);  // from the connection, not the certificate
}

// Each computed attribute is formatted only when its bit is asked for; the
// rest of the identity (and so what a malformed value refuses) is the same.
TEST(IdentityComputed, OnlyTheAskedComputedAttributesArePresent) {
  X509Ptr cert = Fixed()
                     .Subject("CN", "m-1")
                     .Subject("OU", "meter")
                     .SanDns("m-1.example")
                     .Policy("2.23.140.1.2.1")
                     .Extension("1.3.6.1.4.1.99999.1", ct::DerUtf8String("gold"))
                     .Validity(1700000000, 1800000000)
                     .Build();
  const Identity full = Identity::FromCertificate(cert.get());
  EXPECT_EQ(full.computed(), certacl::kComputedAll);
  struct Bit {
    uint32_t bit;
    std::vector<const char*> names;
  };
  const std::vector<Bit> bits = {{certacl::kComputedSerial, {"cert.serial"}},
                                 {certacl::kComputedSha256, {"cert.sha256"}},
                                 {certacl::kComputedKey, {"cert.key"}},
                                 {certacl::kComputedTimes, {"cert.not_before", "cert.not_after"}}};
  for (uint32_t mask = 0; mask <= certacl::kComputedAll; ++mask) {
    const Identity id = Identity::FromCertificate(cert.get(), mask);
    EXPECT_EQ(id.computed(), mask);
    size_t computed_names = 0;
    for (const Bit& b : bits) {
      for (const char* name : b.names) {
        EXPECT_EQ(certacl::ComputedBit(name), b.bit) << name;
        if (mask & b.bit) {
          ++computed_names;
          EXPECT_EQ(ValuesOf(id, name), ValuesOf(full, name)) << name << " mask " << mask;
        } else {
          EXPECT_EQ(id.Values(name), nullptr) << name << " mask " << mask;
        }
      }
    }
    // Everything that is not computed is there, value for value.
    ASSERT_EQ(id.attributes().size() + (5 - computed_names), full.attributes().size()) << mask;
    for (const Identity::Attribute& a : full.attributes()) {
      if (certacl::ComputedBit(a.name) != 0) continue;
      EXPECT_EQ(ValuesOf(id, a.name), a.values) << a.name << " mask " << mask;
    }
    EXPECT_EQ(id.not_before(), 1700000000);
    EXPECT_EQ(id.not_after(), 1800000000);
    EXPECT_EQ(id.authority_key_id(), full.authority_key_id());
    EXPECT_EQ(id.rejected(), full.rejected());
    EXPECT_EQ(id.Describe(), full.Describe());  // the serial is read for it
  }
}

TEST(IdentityComputed, RejectedValuesDoNotDependOnWhatIsComputed) {
  X509Ptr cert = Fixed()
                     .SubjectRaw("CN", V_ASN1_UTF8STRING, std::string("a\0b", 3))
                     .Extension("1.3.6.1.4.1.99999.1", ct::DerUtf8String("x\x1By"))
                     .Build();
  const Identity full = Identity::FromCertificate(cert.get());
  const Identity none = Identity::FromCertificate(cert.get(), 0);
  ASSERT_EQ(full.rejected().size(), 3u);  // subject.CN, issuer.CN (self-signed), the extension
  EXPECT_EQ(none.rejected(), full.rejected());
}

TEST(IdentityComputed, ACopyKeepsWhatWasComputed) {
  X509Ptr cert = Fixed().Subject("CN", "x").Build();
  const Identity id = Identity::FromCertificate(cert.get(), certacl::kComputedKey);
  const Identity copy(id);
  EXPECT_EQ(copy.computed(), certacl::kComputedKey);
  EXPECT_EQ(copy.Values("cert.sha256"), nullptr);
  EXPECT_EQ(ValuesOf(copy, "cert.key"), (Strings{"ec-p256"}));
}

// ---------------------------------------------------------------------------
// ext.<oid>

TEST(IdentityExt, StringIntegerAndBooleanValues) {
  Identity id = Read(Fixed()
                         .Extension("1.3.6.1.4.1.99999.1", ct::DerUtf8String("gold"))
                         .Extension("1.3.6.1.4.1.99999.2", ct::DerInteger(42))
                         .Extension("1.3.6.1.4.1.99999.3", ct::DerInteger(-7))
                         .Extension("1.3.6.1.4.1.99999.4", ct::DerBoolean(true))
                         .Extension("1.3.6.1.4.1.99999.5", ct::DerBoolean(false))
                         .Extension("1.3.6.1.4.1.99999.6", ct::DerString(V_ASN1_PRINTABLESTRING, "Tier 2"))
                         .Extension("1.3.6.1.4.1.99999.7", ct::DerString(V_ASN1_IA5STRING, "a@b"), true)
                         .Extension("1.3.6.1.4.1.99999.9", ct::DerString(V_ASN1_VISIBLESTRING, "Town"))
                         .Extension("1.3.6.1.4.1.99999.8",
                                    ct::DerTlv(V_ASN1_INTEGER, ct::FromHex("00FFFFFFFFFFFFFFFFFF"))));
  EXPECT_EQ(id.rejected(), Strings{});
  EXPECT_EQ(ValuesOf(id, "ext.1.3.6.1.4.1.99999.1"), (Strings{"gold"}));
  EXPECT_EQ(ValuesOf(id, "ext.1.3.6.1.4.1.99999.2"), (Strings{"42"}));
  EXPECT_EQ(ValuesOf(id, "ext.1.3.6.1.4.1.99999.3"), (Strings{"-7"}));
  EXPECT_EQ(ValuesOf(id, "ext.1.3.6.1.4.1.99999.4"), (Strings{"true"}));
  EXPECT_EQ(ValuesOf(id, "ext.1.3.6.1.4.1.99999.5"), (Strings{"false"}));
  EXPECT_EQ(ValuesOf(id, "ext.1.3.6.1.4.1.99999.6"), (Strings{"Tier 2"}));
  EXPECT_EQ(ValuesOf(id, "ext.1.3.6.1.4.1.99999.7"), (Strings{"a@b"}));
  EXPECT_EQ(ValuesOf(id, "ext.1.3.6.1.4.1.99999.8"), (Strings{"4722366482869645213695"}));
  EXPECT_EQ(ValuesOf(id, "ext.1.3.6.1.4.1.99999.9"), (Strings{"Town"}));
}

TEST(IdentityExt, NonScalarValuesAreRejected) {
  Identity id = Read(Fixed()
                         .Extension("1.2.3", ct::DerSequence({ct::DerUtf8String("a")}))
                         .Extension("1.3.6.1.4.1.99999.2", ct::DerOctetString("raw"))
                         .Extension("1.3.6.1.4.1.99999.3", ct::DerNull())
                         .Extension("1.3.6.1.4.1.99999.4", ct::DerUtf8String("a") + "junk")  // trailing bytes
                         .Extension("1.3.6.1.4.1.99999.5", "not DER")
                         .Extension("1.3.6.1.4.1.99999.6", ""));
  EXPECT_EQ(id.rejected(), (Strings{"ext.1.2.3: value is not a string, integer or boolean",
                          "ext.1.3.6.1.4.1.99999.2: value is not a string, integer or boolean",
                          "ext.1.3.6.1.4.1.99999.3: value is not a string, integer or boolean",
                          "ext.1.3.6.1.4.1.99999.4: value is not a string, integer or boolean",
                          "ext.1.3.6.1.4.1.99999.5: value is not a string, integer or boolean",
                          "ext.1.3.6.1.4.1.99999.6: value is not a string, integer or boolean"}));
  for (const Identity::Attribute& a : id.attributes()) EXPECT_NE(a.name.rfind("ext.", 0), 0u) << a.name;
}

TEST(IdentityExt, StringValuesAreValidatedLikeDnValues) {
  Identity id = Read(Fixed().Extension(kCustomOid, ct::DerUtf8String(std::string("a\0", 2))));
  EXPECT_EQ(id.rejected(), (Strings{"ext.1.3.6.1.4.1.99999.1: embedded NUL byte at offset 1"}));
}

TEST(IdentityExt, StandardExtensionsAreSkippedSilently) {
  ct::TestCa ca = ct::TestCa::Create("CA");
  Identity id = Read(ca.Issue()
                         .Subject("CN", "x")
                         .SubjectKeyIdFromKey()
                         .SanDns("x.example")
                         .Policy("2.23.140.1.2.1")
                         .Extension("2.16.840.1.113730.1.13", ct::DerString(V_ASN1_IA5STRING, "comment"))
                         .Extension(kCustomOid, ct::DerUtf8String("custom")));
  EXPECT_EQ(id.rejected(), Strings{});
  std::vector<std::string> ext_names;
  for (const Identity::Attribute& a : id.attributes()) {
    if (a.name.rfind("ext.", 0) == 0) ext_names.push_back(a.name);
  }
  EXPECT_EQ(ext_names, (Strings{"ext.1.3.6.1.4.1.99999.1"}));
}

TEST(IdentityExt, CaExtensionsAreStandard) {
  ct::TestCa ca = ct::TestCa::Create("CA");
  Identity id = Identity::FromCertificate(ca.cert.get());
  EXPECT_EQ(id.rejected(), Strings{});
  for (const Identity::Attribute& a : id.attributes()) EXPECT_NE(a.name.rfind("ext.", 0), 0u) << a.name;
}

// ---------------------------------------------------------------------------
// Authority key identifier.

TEST(IdentityAki, RawKeyIdentifierBytes) {
  Identity id = Read(Fixed().AuthorityKeyId(ct::FromHex("00 01 FE FF")));
  EXPECT_EQ(id.authority_key_id(), ct::FromHex("0001FEFF"));
}

TEST(IdentityAki, IssuedCertificateCarriesTheCaSubjectKeyId) {
  ct::TestCa ca = ct::TestCa::Create("CA");
  Identity leaf = Read(ca.Issue().Subject("CN", "leaf"));
  const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(ca.cert.get());
  ASSERT_NE(ski, nullptr);
  EXPECT_EQ(leaf.authority_key_id().size(), 20u);
  EXPECT_EQ(leaf.authority_key_id(),
            std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(ski)),
                        static_cast<size_t>(ASN1_STRING_length(ski))));
}

TEST(IdentityAki, AbsentIsEmpty) {
  Identity id = Read(Fixed());
  EXPECT_EQ(id.authority_key_id(), "");
}

// ---------------------------------------------------------------------------
// FromPem, copies, lookups, Describe.

TEST(IdentityFromPem, ReadsTheFirstCertificate) {
  X509Ptr first = Fixed().Subject("CN", "first").Build();
  X509Ptr second = Fixed().Subject("CN", "second").Build();
  ct::EvpPkeyPtr key = ct::GenerateKey(ct::KeyType::kEcP256);
  // A private key block before the certificates is skipped.
  std::string pem = ct::KeyToPem(key.get()) + ct::ToPem(first.get()) + ct::ToPem(second.get());
  Identity id;
  std::string error;
  ASSERT_TRUE(Identity::FromPem(pem, &id, &error)) << error;
  EXPECT_EQ(ValuesOf(id, "subject.CN"), (Strings{"first"}));
  ASSERT_NE(id.certificate(), nullptr);
  EXPECT_EQ(X509_cmp(id.certificate(), first.get()), 0);
  EXPECT_EQ(id.attributes().size(), Identity::FromCertificate(first.get()).attributes().size());
}

TEST(IdentityFromPem, NoCertificateIsAnError) {
  ct::EvpPkeyPtr key = ct::GenerateKey(ct::KeyType::kEcP256);
  for (const std::string& pem : {std::string(), std::string("hello"), ct::KeyToPem(key.get())}) {
    Identity id;
    std::string error;
    EXPECT_FALSE(Identity::FromPem(pem, &id, &error));
    EXPECT_EQ(error,
              "no certificate found: expected a PEM block starting with \"-----BEGIN CERTIFICATE-----\"");
    EXPECT_EQ(id.certificate(), nullptr);
  }
}

TEST(IdentityFromPem, BrokenCertificateIsAnError) {
  Identity id;
  std::string error;
  EXPECT_FALSE(Identity::FromPem("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", &id, &error));
  EXPECT_EQ(error, "the PEM block does not hold a valid X.509 certificate (DER decoding failed)");
  EXPECT_FALSE(Identity::FromPem("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", &id, &error));
  EXPECT_EQ(error, "the PEM certificate cannot be read: bad base64 decode");
  EXPECT_FALSE(Identity::FromPem("-----BEGIN CERTIFICATE-----\nMIIB\n", &id, &error));
  EXPECT_EQ(error, "the PEM certificate cannot be read: bad end line");
}

TEST(IdentityFromPem, LeavesTheCallersOpenSslErrorsAlone) {
  ERR_clear_error();
  ERR_raise(ERR_LIB_USER, 42);
  unsigned long before = ERR_peek_last_error();
  Identity id;
  std::string error;
  EXPECT_FALSE(Identity::FromPem("garbage", &id, &error));
  Identity other = Read(Fixed().Extension(kCustomOid, "not DER"));
  EXPECT_EQ(ERR_peek_last_error(), before);
  ERR_clear_error();
}

TEST(Identity, CopiesShareTheCertificate) {
  Identity original = Read(Fixed().Subject("CN", "x").AuthorityKeyId("k"));
  Identity copy(original);
  EXPECT_EQ(copy.certificate(), original.certificate());
  EXPECT_EQ(ValuesOf(copy, "subject.CN"), (Strings{"x"}));
  EXPECT_EQ(copy.authority_key_id(), "k");
  EXPECT_EQ(copy.not_after(), 1800000000);
  Identity assigned;
  assigned = original;
  Identity& alias = assigned;
  assigned = alias;  // self-assignment is harmless
  EXPECT_EQ(assigned.certificate(), original.certificate());
  original = Identity();  // the copies keep their own reference
  EXPECT_EQ(ValuesOf(assigned, "subject.CN"), (Strings{"x"}));
  EXPECT_EQ(X509_cmp(assigned.certificate(), copy.certificate()), 0);
}

TEST(Identity, AttributesAreSortedAndValuesFindsEachOne) {
  Identity id = Read(Fixed()
                         .Subject("OU", "u")
                         .Subject("CN", "c")
                         .Subject(kMatterVendorId, "FFF1")
                         .SanDns("d.example")
                         .Extension(kCustomOid, ct::DerInteger(1)));
  const std::vector<Identity::Attribute>& attrs = id.attributes();
  EXPECT_TRUE(std::is_sorted(attrs.begin(), attrs.end(),
                             [](const auto& a, const auto& b) { return a.name < b.name; }));
  for (const Identity::Attribute& a : attrs) {
    EXPECT_FALSE(a.values.empty()) << a.name;
    EXPECT_EQ(id.Values(a.name), &a.values) << a.name;
  }
  EXPECT_EQ(id.Values("subject.O"), nullptr);
  EXPECT_EQ(id.Values(""), nullptr);
  EXPECT_EQ(id.Values("zzz"), nullptr);
}

TEST(Identity, EveryExtractedNameIsCanonical) {
  Identity id = Read(Fixed()
                         .Subject("CN", "c")
                         .Subject("businessCategory", "b")
                         .Subject(kMatterVendorId, "FFF1")
                         .Subject("2.5.4.97", "VAT")
                         .SanDns("d.example")
                         .SanUri("urn:x")
                         .SanEmail("a@b")
                         .SanIp("192.0.2.1")
                         .Policy("1.2.3.4")
                         .Extension(kCustomOid, ct::DerInteger(1)));
  for (const Identity::Attribute& a : id.attributes()) {
    std::string why;
    EXPECT_EQ(certacl::CanonicalAttribute(a.name, &why), a.name) << why;
  }
}

TEST(Identity, NullCertificateGivesAnEmptyIdentity) {
  Identity id = Identity::FromCertificate(nullptr);
  EXPECT_EQ(id.certificate(), nullptr);
  EXPECT_TRUE(id.attributes().empty());
  EXPECT_EQ(id.rejected(), (Strings{"no certificate"}));
  EXPECT_EQ(id.Describe(), "(no certificate)");
}

TEST(IdentityDescribe, SubjectInRfc2253AndSerial) {
  Identity id = Read(Fixed().Subject("O", "Acme").Subject("CN", "m-1"));
  EXPECT_EQ(id.Describe(), "CN=m-1,O=Acme serial=01AB");
}

TEST(IdentityDescribe, ContainsNoControlCharacters) {
  Identity id = Read(Fixed()
                         .Issuer("CN", "ca")
                         .SubjectRaw("CN", V_ASN1_UTF8STRING, std::string("a\0b\x1B[2J\n\xC2\x85", 10))
                         .Subject("O", "M\xC3\xBCller, \"quoted\"+x")
                         .SubjectRaw("OU", V_ASN1_BMPSTRING, ct::FromHex("0041 00E9")));
  std::string d = id.Describe();
  for (char c : d) {
    unsigned char u = static_cast<unsigned char>(c);
    EXPECT_TRUE(u >= 0x20 && u < 0x7F) << "byte " << static_cast<int>(u) << " in " << d;
  }
  EXPECT_EQ(d, "OU=A\\C3\\A9,O=M\\C3\\BCller\\, \\\"quoted\\\"\\+x,CN=a\\00b\\1B[2J\\0A\\C2\\85 serial=01AB");
}

TEST(IdentityDescribe, EmptySubject) {
  Identity id = Read(Fixed().Issuer("CN", "ca"));
  EXPECT_EQ(id.Describe(), "(empty subject) serial=01AB");
}

// ---------------------------------------------------------------------------
// The test helper itself (cert_builder.h): the parts other suites rely on.

TEST(CertBuilderHelper, IssuedChainVerifies) {
  ct::TestCa root = ct::TestCa::Create("Root");
  ct::TestCa sub = root.CreateIntermediate("Sub", ct::KeyType::kEd25519);
  X509Ptr leaf = sub.Issue().Subject("CN", "leaf").Build();
  EXPECT_EQ(X509_check_ca(root.cert.get()), 1);
  EXPECT_EQ(X509_check_ca(sub.cert.get()), 1);
  EXPECT_EQ(X509_check_ca(leaf.get()), 0);
  EXPECT_EQ(X509_verify(root.cert.get(), X509_get0_pubkey(root.cert.get())), 1);
  EXPECT_EQ(X509_verify(sub.cert.get(), X509_get0_pubkey(root.cert.get())), 1);
  EXPECT_EQ(X509_verify(leaf.get(), X509_get0_pubkey(sub.cert.get())), 1);
  EXPECT_NE(X509_verify(leaf.get(), X509_get0_pubkey(root.cert.get())), 1);
  ERR_clear_error();
  Identity id = Identity::FromCertificate(leaf.get());
  EXPECT_EQ(ValuesOf(id, "issuer.CN"), (Strings{"Sub"}));
  EXPECT_EQ(ValuesOf(id, "cert.key"), (Strings{"ec-p256"}));
  const ASN1_OCTET_STRING* sub_ski = X509_get0_subject_key_id(sub.cert.get());
  ASSERT_NE(sub_ski, nullptr);
  EXPECT_EQ(id.authority_key_id(), std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(sub_ski)),
                                               static_cast<size_t>(ASN1_STRING_length(sub_ski))));
}

TEST(CertBuilderHelper, IssuerOverrides) {
  Identity id = Read(Fixed()
                         .Subject("CN", "s")
                         .IssuerMultiValued({{"CN", "ca"}, {"O", "Acme"}})
                         .IssuerRaw("OU", V_ASN1_BMPSTRING, ct::FromHex("0041")));
  EXPECT_EQ(ValuesOf(id, "issuer.CN"), (Strings{"ca"}));
  EXPECT_EQ(ValuesOf(id, "issuer.O"), (Strings{"Acme"}));
  EXPECT_EQ(ValuesOf(id, "issuer.OU"), (Strings{"A"}));
  X509Ptr other = Fixed().Subject("CN", "named").Build();
  Identity named = Read(Fixed().Issuer("CN", "replaced").IssuerName(X509_get_subject_name(other.get())));
  EXPECT_EQ(ValuesOf(named, "issuer.CN"), (Strings{"named"}));
}

TEST(CertBuilderHelper, KeyIdsAndBignumSerial) {
  BIGNUM* bn = BN_new();
  ASSERT_NE(bn, nullptr);
  ASSERT_EQ(BN_set_word(bn, 0x1234), 1);
  X509Ptr cert = ct::CertBuilder().Serial(bn).SubjectKeyId("\x01\x02").Build();
  BN_free(bn);
  EXPECT_EQ(ValuesOf(Identity::FromCertificate(cert.get()), "cert.serial"), (Strings{"1234"}));
  const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(cert.get());
  ASSERT_NE(ski, nullptr);
  EXPECT_EQ(ASN1_STRING_length(ski), 2);

  ct::TestCa ca = ct::TestCa::Create("CA");
  EXPECT_EQ(Read(ca.Issue().NoAuthorityKeyId()).authority_key_id(), "");
  EXPECT_EQ(Read(ca.Issue().AuthorityKeyId("xyz")).authority_key_id(), "xyz");
}

TEST(CertBuilderHelper, CachedKeysAreStablePerSlot) {
  ct::EvpPkeyPtr a = ct::CachedKey(ct::KeyType::kEcP256, 0);
  ct::EvpPkeyPtr b = ct::CachedKey(ct::KeyType::kEcP256, 0);
  ct::EvpPkeyPtr c = ct::CachedKey(ct::KeyType::kEcP256, 1);
  EXPECT_EQ(a.get(), b.get());
  EXPECT_NE(EVP_PKEY_eq(a.get(), c.get()), 1);
}

TEST(CertBuilderHelper, PemOutput) {
  ct::CertBuilder builder;
  X509Ptr cert = builder.Subject("CN", "x").Build();
  EXPECT_EQ(ct::ToPem(cert.get()).rfind("-----BEGIN CERTIFICATE-----\n", 0), 0u);
  EXPECT_EQ(ct::KeyToPem(builder.key()).rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0u);
  EXPECT_EQ(X509_check_private_key(cert.get(), builder.key()), 1);
}

// ---------------------------------------------------------------------------
// CheckValue.

struct CheckCase {
  std::string value;
  std::string reason;
};

TEST(CheckValue, AcceptsValidUtf8AndRejectsTheRest) {
  for (const CheckCase& c : std::vector<CheckCase>{
           {"", ""},
           {"plain ascii ~", ""},
           {"h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80", ""},
           {"\xC2\xA0", ""},           // U+00A0, first after C1
           {"\xEF\xBF\xBD", ""},       // U+FFFD
           {"\xF4\x8F\xBF\xBF", ""},  // U+10FFFF
           {std::string("a\0", 2), "embedded NUL byte at offset 1"},
           {"x\x1F", "control character U+001F at offset 1"},
           {"\x7F", "control character U+007F at offset 0"},
           {"ab\xC2\x80", "control character U+0080 at offset 2"},
           {"\xC2\x9F", "control character U+009F at offset 0"},
           {"\xC0\xAF", "invalid UTF-8 at byte 0"},           // overlong
           {"ab\xE0\x80\xAF", "invalid UTF-8 at byte 2"},     // overlong, 3 bytes
           {"\xF0\x80\x80\xAF", "invalid UTF-8 at byte 0"},   // overlong, 4 bytes
           {"a\xED\xA0\x80", "invalid UTF-8 at byte 1"},      // encoded surrogate
           {"\xF4\x90\x80\x80", "invalid UTF-8 at byte 0"},   // above U+10FFFF
           {"\xF5\x80\x80\x80", "invalid UTF-8 at byte 0"},
           {"abc\xE2\x82", "invalid UTF-8 at byte 3"},        // truncated
           {"a\x80", "invalid UTF-8 at byte 1"},              // lone continuation
           {"\xE2\x28\xA1", "invalid UTF-8 at byte 0"},       // bad continuation
           {"\xFF", "invalid UTF-8 at byte 0"},
       }) {
    EXPECT_EQ(CheckValue(c.value), c.reason) << ::testing::PrintToString(c.value);
  }
}

TEST(CheckValue, LengthLimit) {
  EXPECT_EQ(CheckValue(std::string(Identity::kMaxValueBytes, 'x')), "");
  EXPECT_EQ(CheckValue(std::string(Identity::kMaxValueBytes + 1, 'x')),
            "value is 4097 bytes, more than the limit of 4096");
}

}  // namespace
