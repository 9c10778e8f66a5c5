// Tests for the [enroll] table of the policy file (renewal over MQTT): its
// defaults, every key, the exact message for each kind of mistake, the
// enrollment identity a Session resolves, and the pure helpers the plugin
// uses (request topics, renewal window, notice payload).
#include <gtest/gtest.h>

#include "policy/enroll_config.h"
#include "policy/policy.h"
#include "policy/session.h"
#include "tests/testing/cert_builder.h"

namespace certacl {
namespace {

using testing::CertBuilder;

constexpr int64_t k2026 = 1'767'225'600;  // 2026-01-01T00:00:00Z
constexpr int64_t k2027 = 1'798'761'600;  // 2027-01-01T00:00:00Z
constexpr int64_t kDay = 86'400;

std::shared_ptr<const Policy> Load(const std::string& body, std::vector<Diagnostic>* diags) {
  return LoadPolicyString("version = 1\n" + body, "p.toml", "/nonexistent-dir", diags);
}

std::shared_ptr<const Policy> MustLoad(const std::string& body) {
  std::vector<Diagnostic> diags;
  auto p = Load(body, &diags);
  std::string all;
  for (const auto& d : diags) all += d.ToString() + "\n";
  EXPECT_NE(p, nullptr) << all;
  return p;
}

// Every error message for `body`, one per line; the policy must not load.
std::string Errors(const std::string& body) {
  std::vector<Diagnostic> diags;
  EXPECT_EQ(Load(body, &diags), nullptr);
  std::string all;
  for (const auto& d : diags) all += d.ToString() + "\n";
  return all;
}

TEST(EnrollConfig, BridgePrefixDefaultsToAPlainTopicForADollarPrefix) {
  auto p = MustLoad("[enroll]\n");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->enroll.bridge_prefix, "certacl/enroll-requests");
  EXPECT_TRUE(p->enroll.relays());
  auto plain = MustLoad("[enroll]\nprefix = \"acme/enroll\"\n");
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(plain->enroll.bridge_prefix, "acme/enroll");  // shareable as it is
  EXPECT_FALSE(plain->enroll.relays());
  auto in_place = MustLoad("[enroll]\nbridge_prefix = \"$enroll\"\n");  // one bridge, nothing re-filed
  ASSERT_NE(in_place, nullptr);
  EXPECT_FALSE(in_place->enroll.relays());
  auto custom = MustLoad("[enroll]\nbridge_prefix = \"ops/enroll-in\"\n");
  ASSERT_NE(custom, nullptr);
  EXPECT_EQ(custom->enroll.bridge_prefix, "ops/enroll-in");
}

TEST(EnrollConfig, AbsentTableMeansOff) {
  auto p = MustLoad("");
  ASSERT_NE(p, nullptr);
  EXPECT_FALSE(p->enroll.enabled);
}

TEST(EnrollConfig, EmptyTableTurnsItOnWithTheDefaults) {
  auto p = MustLoad("[enroll]\n");
  ASSERT_NE(p, nullptr);
  const EnrollConfig& ec = p->enroll;
  EXPECT_TRUE(ec.enabled);
  EXPECT_EQ(ec.prefix, "$enroll");
  EXPECT_EQ(ec.identity.source, "${subject.CN}");
  ASSERT_EQ(ec.identity.pieces.size(), 1u);
  EXPECT_TRUE(ec.identity.pieces[0].is_attribute);
  EXPECT_EQ(ec.identity.pieces[0].text, "subject.CN");
  EXPECT_EQ(ec.window_num, 1);
  EXPECT_EQ(ec.window_den, 3);
  EXPECT_EQ(ec.window_seconds, -1);
  EXPECT_TRUE(ec.notice);
  EXPECT_EQ(ec.line, 2u);
  EXPECT_EQ(ec.column, 1u);
}

TEST(EnrollConfig, IdentityDefaultsToTheClientIdTemplate) {
  auto p = MustLoad("[connect]\nclient_id = \"dev-${subject.serialNumber}\"\n[enroll]\n");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->enroll.identity.source, "dev-${subject.serialNumber}");
  ASSERT_EQ(p->enroll.identity.pieces.size(), 2u);
  EXPECT_EQ(p->enroll.identity.pieces[1].text, "subject.serialNumber");
}

TEST(EnrollConfig, LoadsEveryKey) {
  auto p = MustLoad(R"([connect]
client_id = "${subject.CN}"
[enroll]
prefix = "acme/enroll"
identity = "${subject.L}-${subject.CN}"
renewal_window = "12.5%"
notice = false
)");
  ASSERT_NE(p, nullptr);
  const EnrollConfig& ec = p->enroll;
  EXPECT_EQ(ec.prefix, "acme/enroll");
  EXPECT_EQ(ec.identity.source, "${subject.L}-${subject.CN}");
  EXPECT_EQ(ec.window_num, 125);
  EXPECT_EQ(ec.window_den, 1000);
  EXPECT_EQ(ec.window_seconds, -1);
  EXPECT_FALSE(ec.notice);
}

TEST(EnrollConfig, RenewalWindowForms) {
  auto window = [](const std::string& v) {
    auto p = MustLoad("[enroll]\nrenewal_window = \"" + v + "\"\n");
    return p ? std::to_string(p->enroll.window_num) + "/" + std::to_string(p->enroll.window_den) + " " +
                   std::to_string(p->enroll.window_seconds)
             : std::string("not loaded");
  };
  EXPECT_EQ(window("100%"), "100/100 -1");
  EXPECT_EQ(window("33%"), "33/100 -1");
  EXPECT_EQ(window("0.000001%"), "1/100000000 -1");
  EXPECT_EQ(window("30d"), "1/3 2592000");
  EXPECT_EQ(window("12h"), "1/3 43200");
  EXPECT_EQ(window("3600"), "1/3 3600");
}

TEST(EnrollConfig, RenewFrom) {
  EnrollConfig ec;  // the last third
  // docs/enroll.md's example: a one-year certificate from 2026-01-01.
  EXPECT_EQ(ec.RenewFrom(k2026, k2027), 1'788'249'600);  // 2026-09-01T08:00:00Z
  ec.window_num = 100;
  ec.window_den = 100;
  EXPECT_EQ(ec.RenewFrom(k2026, k2027), k2026);
  ec.window_num = 1;
  ec.window_den = 100'000'000;
  EXPECT_EQ(ec.RenewFrom(0, 253'402'300'799), 253'402'300'799 - 2534);  // year 9999: no overflow
  ec.window_seconds = 30 * kDay;
  EXPECT_EQ(ec.RenewFrom(k2026, k2027), k2027 - 30 * kDay);
  ec.window_seconds = 400 * kDay;  // longer than the lifetime: open from the start (and before)
  EXPECT_EQ(ec.RenewFrom(k2026, k2027), k2027 - 400 * kDay);
}

TEST(EnrollConfig, ErrorsSayWhereAndWhat) {
  EXPECT_EQ(Errors("enroll = 1\n"), "p.toml:2:10: error: [enroll] must be a table, found an integer\n");
  EXPECT_EQ(Errors("[enroll]\nprefx = \"x\"\n"),
            "p.toml:3:1: error: unknown key \"prefx\" in [enroll] (did you mean \"prefix\"?); expected one of: "
            "prefix, bridge_prefix, identity, renewal_window, notice\n");
  const std::string bridge_error = "p.toml:3:17: error: enroll.bridge_prefix must be a topic name such as "
                                   "\"certacl/enroll-requests\": ";
  EXPECT_EQ(Errors("[enroll]\nbridge_prefix = 1\n"), bridge_error + "found an integer\n");
  EXPECT_EQ(Errors("[enroll]\nbridge_prefix = \"a/\"\n"), bridge_error + "it ends with '/'\n");
  EXPECT_EQ(Errors("[enroll]\nbridge_prefix = \"$bridges\"\n"),
            bridge_error + "Mosquitto 2.0 cannot share a '$' topic between bridges; use a plain topic, or the prefix "
                           "itself (no re-filing, one bridge)\n");
  EXPECT_NE(Errors("[enroll]\nbridge_prefix = \"$enroll/requests\"\n").find("cannot share"), std::string::npos);
  EXPECT_EQ(Errors("[enroll]\nprefix = \"acme/enroll\"\nbridge_prefix = \"acme/enroll/requests\"\n"),
            "p.toml:4:17: error: enroll.bridge_prefix must be a topic name such as \"certacl/enroll-requests\": it "
            "overlaps enroll.prefix \"acme/enroll\"\n");
  const std::string prefix_error = "p.toml:3:10: error: enroll.prefix must be a topic name such as \"$enroll\" (no "
                                   "wildcards, no trailing '/'): ";
  EXPECT_EQ(Errors("[enroll]\nprefix = 1\n"), prefix_error + "found an integer\n");
  EXPECT_EQ(Errors("[enroll]\nprefix = \"\"\n"), prefix_error + "topic is empty\n");
  EXPECT_EQ(Errors("[enroll]\nprefix = \"$enroll/\"\n"), prefix_error + "it ends with '/'\n");
  EXPECT_NE(Errors("[enroll]\nprefix = \"$enroll/+\"\n").find(prefix_error), std::string::npos);
  EXPECT_NE(Errors("[enroll]\nprefix = \"$enroll/#\"\n").find(prefix_error), std::string::npos);

  EXPECT_EQ(Errors("[enroll]\nidentity = 7\n"),
            "p.toml:3:12: error: enroll.identity must be a string template such as \"${subject.CN}\", found an "
            "integer\n");
  EXPECT_EQ(Errors("[enroll]\nidentity = \"${subject.O}/${subject.CN}\"\n"),
            "p.toml:3:12: error: enroll.identity \"${subject.O}/${subject.CN}\" has '/' in its literal text: an "
            "identity is one topic level\n");
  EXPECT_EQ(Errors("[enroll]\nidentity = \"+${subject.CN}\"\n"),
            "p.toml:3:12: error: enroll.identity \"+${subject.CN}\" has '+' in its literal text: an identity is one "
            "topic level\n");
  EXPECT_EQ(Errors("[enroll]\nidentity = \"meter\"\n"),
            "p.toml:3:12: error: enroll.identity \"meter\" names no ${attribute}: every device would have the same "
            "identity\n");
  EXPECT_EQ(Errors("[enroll]\nidentity = \"\"\n"),
            "p.toml:3:12: error: enroll.identity \"\" names no ${attribute}: every device would have the same "
            "identity\n");
  EXPECT_NE(Errors("[enroll]\nidentity = \"${subject.XX}\"\n").find("p.toml:3:12: error: template \"${subject.XX}\""),
            std::string::npos);
  EXPECT_EQ(Errors("[enroll]\nidentity = \"${subject.CN\"\n"),
            "p.toml:3:12: error: template \"${subject.CN\": \"${\" at offset 0 has no closing \"}\"\n");
  EXPECT_EQ(Errors("[connect]\nclient_id = \"fleet/${subject.CN}\"\n[enroll]\n"),
            "p.toml:4:1: error: [enroll] identity defaults to connect.client_id \"fleet/${subject.CN}\", which has "
            "'/' in its literal text: an identity is one topic level: set enroll.identity, e.g. identity = "
            "\"${subject.CN}\"\n");

  const std::string window_error =
      "p.toml:3:18: error: enroll.renewal_window must be a share of the certificate's lifetime, more than 0% and "
      "at most 100% (such as \"33%\" or \"12.5%\"), or a duration such as \"30d\"\n";
  for (const char* bad : {"\"0%\"", "\"0.0%\"", "\"100.1%\"", "\"101%\"", "\"1000%\"", "\"-5%\"", "\"33.%\"",
                          "\".5%\"", "\"1.1234567%\"", "\"%\"", "\"5 %\"", "\"0d\"", "\"0\"", "\"thirty days\"",
                          "\"\"", "30", "0.5", "true"}) {
    EXPECT_EQ(Errors(std::string("[enroll]\nrenewal_window = ") + bad + "\n"), window_error) << bad;
  }

  EXPECT_EQ(Errors("[enroll]\nnotice = \"yes\"\n"),
            "p.toml:3:10: error: enroll.notice must be true or false, found a string\n");
}

TEST(EnrollConfig, ClassifiesTopics) {
  auto kind = [](std::string_view prefix, std::string_view topic) {
    EnrollTopic t = ClassifyEnrollTopic(prefix, topic);
    switch (t.kind) {
      case EnrollTopic::Kind::kOutside: return std::string("outside");
      case EnrollTopic::Kind::kOther: return std::string("other");
      case EnrollTopic::Kind::kRequest: return "request id=" + std::string(t.id) + " op=" + std::string(t.op);
    }
    return std::string("?");
  };
  EXPECT_EQ(kind("$enroll", "$enroll/m-1/simplereenroll"), "request id=m-1 op=simplereenroll");
  EXPECT_EQ(kind("$enroll", "$enroll/m-1/notice"), "request id=m-1 op=notice");
  EXPECT_EQ(kind("$enroll", "$enroll//x"), "request id= op=x");
  EXPECT_EQ(kind("$enroll", "$enroll/m-1/"), "request id=m-1 op=");
  EXPECT_EQ(kind("$enroll", "$enroll/m-1/simplereenroll/accepted"), "other");
  EXPECT_EQ(kind("$enroll", "$enroll/m-1"), "other");
  EXPECT_EQ(kind("$enroll", "$enroll/"), "other");
  EXPECT_EQ(kind("$enroll", "$enroll"), "outside");
  EXPECT_EQ(kind("$enroll", "$enrollx/m-1/simplereenroll"), "outside");
  EXPECT_EQ(kind("$enroll", "x/$enroll/m-1/simplereenroll"), "outside");
  EXPECT_EQ(kind("acme/enroll", "acme/enroll/m-1/cacerts"), "request id=m-1 op=cacerts");
}

TEST(EnrollConfig, StampPropertyNames) {
  EXPECT_TRUE(IsStampPropertyName("certacl-identity"));
  EXPECT_TRUE(IsStampPropertyName("certacl-"));
  EXPECT_TRUE(IsStampPropertyName("CertACL-Certificate"));
  EXPECT_FALSE(IsStampPropertyName("certacl"));
  EXPECT_FALSE(IsStampPropertyName("x-certacl-identity"));
  EXPECT_FALSE(IsStampPropertyName("certacl_identity"));
}

TEST(EnrollConfig, NoticePayloadIsTheDocumentedJson) {
  EnrollConfig ec;
  EXPECT_EQ(RenewalNoticePayload(ec, "m-00000001", k2026, k2027),
            "{\"identity\": \"m-00000001\", \"notBefore\": \"2026-01-01T00:00:00Z\", "
            "\"notAfter\": \"2027-01-01T00:00:00Z\", \"renewFrom\": \"2026-09-01T08:00:00Z\", "
            "\"topic\": \"$enroll/m-00000001/simplereenroll\"}");
  ec.prefix = "acme/enroll";
  ec.window_seconds = kDay;
  EXPECT_EQ(RenewalNoticePayload(ec, "a\"b\\c", k2026, k2027),
            "{\"identity\": \"a\\\"b\\\\c\", \"notBefore\": \"2026-01-01T00:00:00Z\", "
            "\"notAfter\": \"2027-01-01T00:00:00Z\", \"renewFrom\": \"2026-12-31T00:00:00Z\", "
            "\"topic\": \"acme/enroll/a\\\"b\\\\c/simplereenroll\"}");
}

// ---- the identity a Session resolves --------------------------------------

Session Resolve(const std::shared_ptr<const Policy>& p, CertBuilder b, const std::string& client_id) {
  X509Ptr cert = b.Validity(k2026, k2027).Build();
  return Session::Resolve(p, Identity::FromCertificate(cert.get()), client_id, k2026 + kDay);
}

constexpr const char* kAnyDevice = R"(
[connect]
require_role = false
[enroll]
identity = "${subject.CN}"
)";

TEST(EnrollIdentity, ResolvesToTheDevicesValue) {
  auto p = MustLoad(kAnyDevice);
  ASSERT_NE(p, nullptr);
  Session s = Resolve(p, std::move(CertBuilder().Subject("CN", "m-00000001")), "c");
  EXPECT_EQ(s.enroll_identity(), "m-00000001");
  EXPECT_TRUE(s.notes().empty());
}

TEST(EnrollIdentity, CanUseTheClientIdAndLiterals) {
  auto p = MustLoad("[connect]\nrequire_role = false\n[enroll]\nidentity = \"c-${mqtt.client_id}\"\n");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(Resolve(p, std::move(CertBuilder().Subject("CN", "x")), "dev-7").enroll_identity(), "c-dev-7");
}

TEST(EnrollIdentity, NoneWithoutEnroll) {
  auto p = MustLoad("[connect]\nrequire_role = false\n");
  ASSERT_NE(p, nullptr);
  Session s = Resolve(p, std::move(CertBuilder().Subject("CN", "m-1")), "c");
  EXPECT_EQ(s.enroll_identity(), "");
  EXPECT_TRUE(s.notes().empty());
}

TEST(EnrollIdentity, NoneWhenNotExactlyOneTopicSafeValue) {
  auto p = MustLoad(kAnyDevice);
  ASSERT_NE(p, nullptr);
  struct Case {
    const char* what;
    CertBuilder cert;
    std::string note;
  };
  std::vector<Case> cases;
  cases.push_back({"two CNs", std::move(CertBuilder().Subject("CN", "a").Subject("CN", "b")), "it resolves to 2 values"});
  cases.push_back({"no CN", std::move(CertBuilder().Subject("O", "Acme")), "subject.CN is missing"});
  cases.push_back({"slash", std::move(CertBuilder().Subject("CN", "a/b")), "subject.CN value \"a/b\" contains '/'"});
  cases.push_back({"plus", std::move(CertBuilder().Subject("CN", "+")), "subject.CN value \"+\" contains '+'"});
  cases.push_back({"hash", std::move(CertBuilder().Subject("CN", "m-1#")), "subject.CN value \"m-1#\" contains '#'"});
  for (Case& c : cases) {
    Session s = Resolve(p, std::move(c.cert), "c");
    EXPECT_EQ(s.enroll_identity(), "") << c.what;
    ASSERT_EQ(s.notes().size(), 1u) << c.what;
    EXPECT_EQ(s.notes()[0], "[enroll] identity \"${subject.CN}\" cannot be resolved (" + c.note +
                                "): this device has no enrollment identity and its renewal requests are refused")
        << c.what;
    EXPECT_TRUE(s.connect_allowed()) << c.what << ": the identity is for renewal only, not for connecting";
  }
}

}  // namespace
}  // namespace certacl
