// attributes_test.cc: CanonicalAttribute, DnShortName, AlwaysPresent and
// IsDottedOid (the attribute names a policy may use).
#include "policy/attributes.h"

#include <gtest/gtest.h>
#include <openssl/objects.h>

#include <optional>
#include <string>
#include <vector>

namespace {

using certacl::AlwaysPresent;
using certacl::CanonicalAttribute;
using certacl::DnShortName;
using certacl::IsDottedOid;

// gtest-only (the suite does not link gmock): `s` contains `sub`.
::testing::AssertionResult HasSubstr(const std::string& s, const std::string& sub) {
  if (s.find(sub) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << s << "\" does not contain \"" << sub << "\"";
}

// The canonical name, or "ERROR: <why>".
std::string Canon(std::string_view name) {
  std::string why;
  std::optional<std::string> c = CanonicalAttribute(name, &why);
  if (!c) return "ERROR: " + why;
  EXPECT_EQ(why, "") << "why set on success for " << name;
  return *c;
}

const std::vector<std::string>& ShortNames() {
  static const std::vector<std::string> names = {
      "CN",        "O",         "OU",       "L",         "ST",  "C",          "serialNumber",
      "DC",        "emailAddress", "street", "title",    "givenName", "surname", "initials",
      "pseudonym", "UID",       "postalCode", "organizationIdentifier"};
  return names;
}

TEST(CanonicalAttribute, FixedNamesAreThemselves) {
  for (const char* name : {"san.dns", "san.uri", "san.email", "san.ip", "cert.serial", "cert.sha256",
                           "cert.key", "cert.not_before", "cert.not_after", "cert.policy",
                           "mqtt.client_id"}) {
    EXPECT_EQ(Canon(name), name);
  }
}

TEST(CanonicalAttribute, EveryShortNameUnderSubjectAndIssuer) {
  for (const std::string& sn : ShortNames()) {
    EXPECT_EQ(Canon("subject." + sn), "subject." + sn);
    EXPECT_EQ(Canon("issuer." + sn), "issuer." + sn);
  }
}

struct OidCase {
  const char* in;
  const char* expected;
};

TEST(CanonicalAttribute, DottedOidWithAShortNameIsRewritten) {
  for (const OidCase& c : std::vector<OidCase>{
           {"subject.2.5.4.3", "subject.CN"},
           {"subject.2.5.4.10", "subject.O"},
           {"issuer.2.5.4.11", "issuer.OU"},
           {"subject.2.5.4.7", "subject.L"},
           {"subject.2.5.4.8", "subject.ST"},
           {"subject.2.5.4.6", "subject.C"},
           {"subject.2.5.4.5", "subject.serialNumber"},
           {"subject.0.9.2342.19200300.100.1.25", "subject.DC"},
           {"subject.1.2.840.113549.1.9.1", "subject.emailAddress"},
           {"subject.2.5.4.9", "subject.street"},
           {"subject.2.5.4.12", "subject.title"},
           {"subject.2.5.4.42", "subject.givenName"},
           {"subject.2.5.4.4", "subject.surname"},
           {"subject.2.5.4.43", "subject.initials"},
           {"subject.2.5.4.65", "subject.pseudonym"},
           {"subject.0.9.2342.19200300.100.1.1", "subject.UID"},
           {"subject.2.5.4.17", "subject.postalCode"},
           {"issuer.2.5.4.97", "issuer.organizationIdentifier"},
       }) {
    EXPECT_EQ(Canon(c.in), c.expected);
  }
}

TEST(CanonicalAttribute, DottedOidWithoutAShortNameStaysDotted) {
  EXPECT_EQ(Canon("subject.1.3.6.1.4.1.37244.2.1"), "subject.1.3.6.1.4.1.37244.2.1");  // Matter VID
  EXPECT_EQ(Canon("issuer.1.3.6.1.4.1.37244.2.1"), "issuer.1.3.6.1.4.1.37244.2.1");
  EXPECT_EQ(Canon("subject.2.5.4.15"), "subject.2.5.4.15");  // businessCategory
  EXPECT_EQ(Canon("subject.2.999.123456789012345678901234567890"),
            "subject.2.999.123456789012345678901234567890");
}

TEST(CanonicalAttribute, UnknownDnNameExplainsTheChoices) {
  EXPECT_EQ(Canon("subject.XX"),
            "ERROR: unknown attribute \"subject.XX\": expected "
            "subject.<CN|O|OU|L|ST|C|serialNumber|DC|emailAddress|street|title|givenName|surname|"
            "initials|pseudonym|UID|postalCode|organizationIdentifier|dotted OID>, issuer.<same>, "
            "san.<dns|uri|email|ip>, cert.<serial|sha256|key|not_before|not_after|policy>, "
            "ext.<dotted OID> or mqtt.client_id");
}

TEST(CanonicalAttribute, ShortNamesAreCaseSensitiveWithAHint) {
  std::string out = Canon("subject.cn");
  EXPECT_TRUE(HasSubstr(out, "unknown attribute \"subject.cn\": did you mean \"subject.CN\"?"));
  EXPECT_TRUE(HasSubstr(Canon("issuer.EMAILADDRESS"), "did you mean \"issuer.emailAddress\"?"));
}

TEST(CanonicalAttribute, LongNamesAreNotAccepted) {
  EXPECT_TRUE(HasSubstr(Canon("subject.commonName"), "unknown attribute \"subject.commonName\""));
  EXPECT_TRUE(HasSubstr(Canon("subject.businessCategory"), "unknown attribute"));
}

TEST(CanonicalAttribute, MalformedOidsAreRejected) {
  for (const char* name : {"subject.1.2..3", "subject.1.02.3", "subject.3.1", "subject.1.",
                           "subject.", "issuer.", "subject.1", "subject.1.2.x", "subject. 1.2"}) {
    EXPECT_TRUE(HasSubstr(Canon(name), "ERROR: unknown attribute")) << name;
  }
  // Well-formed text that OpenSSL refuses: under arcs 0 and 1 the second
  // arc must be below 40.
  EXPECT_EQ(Canon("subject.1.40"),
            "ERROR: malformed OID in attribute \"subject.1.40\": OpenSSL does not accept \"1.40\"");
  EXPECT_EQ(Canon("ext.0.99.1"),
            "ERROR: malformed OID in attribute \"ext.0.99.1\": OpenSSL does not accept \"0.99.1\"");
}

TEST(CanonicalAttribute, CustomExtensionsByDottedOid) {
  EXPECT_EQ(Canon("ext.1.3.6.1.4.1.99999.1"), "ext.1.3.6.1.4.1.99999.1");
  // An OID OpenSSL names but has no extension decoder for is custom too,
  // and stays dotted.
  EXPECT_EQ(Canon("ext.1.2.840.113549.1.9.1"), "ext.1.2.840.113549.1.9.1");
}

TEST(CanonicalAttribute, StandardExtensionsAreNotExt) {
  EXPECT_EQ(Canon("ext.2.5.29.17"),
            "ERROR: attribute \"ext.2.5.29.17\" names the standard extension X509v3 Subject "
            "Alternative Name, which certacl does not expose as ext.*: ext.<dotted OID> is for "
            "custom extensions (use san.* or cert.policy for the standard ones)");
  EXPECT_TRUE(HasSubstr(Canon("ext.2.5.29.19"), "standard extension X509v3 Basic Constraints"));
}

TEST(CanonicalAttribute, ExtNeedsADottedOid) {
  EXPECT_EQ(Canon("ext.subjectAltName"),
            "ERROR: unknown attribute \"ext.subjectAltName\": ext. must be followed by a dotted OID "
            "such as ext.1.3.6.1.4.1.99999.1");
  EXPECT_TRUE(HasSubstr(Canon("ext."), "ext. must be followed by a dotted OID"));
}

TEST(CanonicalAttribute, UnknownNamesAreRejected) {
  for (const char* name : {"", "subject", "san.DNS", "san.dns ", "san.dnsname", "cert.foo",
                           "cert.sha1", "mqtt.username", "mqtt.client_id.x", "CN", "Subject.CN",
                           "subject.CN.x"}) {
    EXPECT_TRUE(HasSubstr(Canon(name), "ERROR: unknown attribute")) << name;
  }
}

TEST(CanonicalAttribute, ControlCharactersInTheNameAreEscapedInWhy) {
  std::string out = Canon(std::string("subject.\x1B[2J\n\0", 14));
  EXPECT_TRUE(HasSubstr(out, "\"subject.\\x1B[2J\\x0A\\x00\""));
  for (char c : out) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << out;
}

TEST(CanonicalAttribute, WhyMayBeNull) {
  EXPECT_EQ(CanonicalAttribute("subject.XX", nullptr), std::nullopt);
  EXPECT_EQ(CanonicalAttribute("subject.2.5.4.3", nullptr), "subject.CN");
}

TEST(DnShortName, MapsEveryNidOfTheTable) {
  struct Case {
    int nid;
    const char* name;
  };
  for (const Case& c : std::vector<Case>{
           {NID_commonName, "CN"},
           {NID_organizationName, "O"},
           {NID_organizationalUnitName, "OU"},
           {NID_localityName, "L"},
           {NID_stateOrProvinceName, "ST"},
           {NID_countryName, "C"},
           {NID_serialNumber, "serialNumber"},
           {NID_domainComponent, "DC"},
           {NID_pkcs9_emailAddress, "emailAddress"},
           {NID_streetAddress, "street"},
           {NID_title, "title"},
           {NID_givenName, "givenName"},
           {NID_surname, "surname"},
           {NID_initials, "initials"},
           {NID_pseudonym, "pseudonym"},
           {NID_userId, "UID"},
           {NID_postalCode, "postalCode"},
           {NID_organizationIdentifier, "organizationIdentifier"},
       }) {
    EXPECT_EQ(DnShortName(c.nid), c.name) << c.nid;
  }
}

TEST(DnShortName, EmptyForOtherNids) {
  EXPECT_EQ(DnShortName(NID_undef), "");
  EXPECT_EQ(DnShortName(NID_businessCategory), "");
  EXPECT_EQ(DnShortName(NID_subject_alt_name), "");
  EXPECT_EQ(DnShortName(-1), "");
}

TEST(AlwaysPresent, CertificateBasicsAndClientId) {
  for (const char* name :
       {"cert.serial", "cert.sha256", "cert.key", "cert.not_before", "cert.not_after", "mqtt.client_id"}) {
    EXPECT_TRUE(AlwaysPresent(name)) << name;
  }
  for (const char* name : {"cert.policy", "subject.CN", "issuer.CN", "san.dns", "san.ip",
                           "ext.1.3.6.1.4.1.99999.1", "", "cert.serial.x"}) {
    EXPECT_FALSE(AlwaysPresent(name)) << name;
  }
}

TEST(IsDottedOid, AcceptsWellFormedOids) {
  for (const char* s : {"0.0", "1.2", "2.5.4.3", "1.3.6.1.4.1.37244.2.1", "1.0", "2.999",
                        "0.9.2342.19200300.100.1.25", "2.999.123456789012345678901234567890"}) {
    EXPECT_TRUE(IsDottedOid(s)) << s;
  }
}

TEST(IsDottedOid, RejectsEverythingElse) {
  for (const char* s : {"", "1", "2", "1.", ".1", "1..2", "1.2.", "3.1", "10.1", "01.2", "1.02",
                        "1.00", "1.2.3a", "1.-2", "1.+2", " 1.2", "1.2 ", "a.b", "1,2", "CN"}) {
    EXPECT_FALSE(IsDottedOid(s)) << s;
  }
}

}  // namespace
