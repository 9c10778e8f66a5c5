// Tests for the TOML policy loader: what compiles, and the exact message for
// every kind of mistake.
#include <gtest/gtest.h>

#include "policy/attributes.h"
#include "policy/policy.h"

namespace certacl {
namespace {

std::shared_ptr<const Policy> Load(const std::string& text, std::vector<Diagnostic>* diags) {
  return LoadPolicyString(text, "p.toml", "/nonexistent-dir", diags);
}

// The single error message for `text` (asserts there is exactly one).
std::string OneError(const std::string& text) {
  std::vector<Diagnostic> diags;
  auto p = Load(text, &diags);
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(diags.size(), 1u);
  std::string all;
  for (const auto& d : diags) all += d.ToString() + "\n";
  if (!all.empty()) all.pop_back();
  return all;
}

TEST(PolicyLoader, CompilesTheDesignExample) {
  std::vector<Diagnostic> diags;
  auto p = Load(R"(version = 1
[connect]
client_id = "${subject.CN}"
require_role = true

[[role]]
name = "smart-meter"
match."subject.O"  = "Acme Utilities"
match."subject.OU" = "meter"
match."subject.CN" = { regex = "^m-[0-9]{8}$" }
publish   = ["meters/${subject.L}/${subject.CN}/reading"]
subscribe = ["meters/${subject.L}/${subject.CN}/cmd/#", "meters/broadcast/#"]

[[role]]
name = "bootstrap"
match."issuer.CN" = "Acme Manufacturing CA"
publish   = ["certacl/enroll/${subject.CN}/request"]
subscribe = ["certacl/enroll/${subject.CN}/response"]

[[deny]]
publish = ["$SYS/#"]
)", &diags);
  ASSERT_NE(p, nullptr) << (diags.empty() ? "" : diags[0].ToString());
  ASSERT_EQ(p->roles.size(), 2u);
  EXPECT_EQ(p->roles[0].name, "smart-meter");
  EXPECT_EQ(p->roles[0].when.match.size(), 3u);
  EXPECT_EQ(p->roles[0].publish[0].topic.source, "meters/${subject.L}/${subject.CN}/reading");
  ASSERT_EQ(p->roles[0].publish[0].topic.pieces.size(), 5u);
  EXPECT_TRUE(p->roles[0].publish[0].topic.pieces[1].is_attribute);
  EXPECT_EQ(p->roles[0].publish[0].topic.pieces[1].text, "subject.L");
  ASSERT_EQ(p->denies.size(), 1u);
  EXPECT_TRUE(p->client_id.has_value());
  // Both roles have exact conditions, so both are indexed.
  EXPECT_TRUE(p->unindexed_roles.empty());
}

// Policy::computed: the computed attributes (attributes.h) the policy
// names, wherever it names them; a certificate is read with only these.
TEST(PolicyLoader, ComputedHasEveryComputedAttributeThePolicyNames) {
  struct Case {
    const char* text;
    uint32_t computed;
  };
  for (const Case& c : std::vector<Case>{
           {"", 0},
           {"[[role]]\nname = \"r\"\nmatch.\"subject.CN\" = \"a\"\npublish = [\"x/${subject.CN}\"]\n", 0},
           {"[[role]]\nname = \"r\"\nmatch.\"cert.serial\" = \"0A\"\n", kComputedSerial},
           {"[[role]]\nname = \"r\"\nmatch.\"cert.key\" = { any = [\"ec-p256\"] }\n", kComputedKey},
           {"[[deny]]\nmatch.\"cert.not_after\" = { glob = \"2027-*\" }\nconnect = true\n", kComputedTimes},
           {"[[deny]]\nmatch.\"cert.not_before\" = { regex = \"^2026\" }\npublish = [\"#\"]\n", kComputedTimes},
           {"[[role]]\nname = \"r\"\npublish = [\"d/${cert.sha256}\"]\n", kComputedSha256},
           {"[[role]]\nname = \"r\"\nsubscribe = [{ topic = \"d/${cert.key}/#\" }]\n", kComputedKey},
           {"[[deny]]\nsubscribe = [\"d/${cert.serial}/#\"]\n", kComputedSerial},
           {"[connect]\nclient_id = \"${cert.serial}\"\n", kComputedSerial},
           {"[enroll]\nidentity = \"${cert.sha256}\"\n", kComputedSha256},
           {"[connect]\nclient_id = \"${cert.sha256}\"\n[enroll]\n", kComputedSha256},
           {"[[role]]\nname = \"r\"\nmatch.\"cert.serial\" = \"0A\"\nmatch.\"cert.not_after\" = \"x\"\n"
            "publish = [\"${cert.key}/${cert.sha256}\"]\n",
            kComputedAll},
       }) {
    std::vector<Diagnostic> diags;
    const std::string text = std::string("version = 1\n") + c.text;
    auto p = Load(text, &diags);
    ASSERT_NE(p, nullptr) << text << (diags.empty() ? "" : diags[0].ToString());
    EXPECT_EQ(p->computed, c.computed) << text;
  }
}

TEST(PolicyLoader, PublishLimitsAndDefaults) {
  std::vector<Diagnostic> diags;
  auto p = Load(R"(version = 1
[[role]]
name = "r"
max_qos = 1
retain = false
publish = ["a", { topic = "b", max_qos = 2, retain = true }, { topic = "c", max_qos = 0 }]
)", &diags);
  ASSERT_NE(p, nullptr);
  const auto& pub = p->roles[0].publish;
  EXPECT_EQ(pub[0].max_qos, 1);
  EXPECT_FALSE(pub[0].retain);
  EXPECT_EQ(pub[1].max_qos, 2);
  EXPECT_TRUE(pub[1].retain);
  EXPECT_EQ(pub[2].max_qos, 0);
  EXPECT_FALSE(pub[2].retain);
}

TEST(PolicyLoader, DottedOidIsCanonicalised) {
  std::vector<Diagnostic> diags;
  auto p = Load("version = 1\n[[role]]\nname = \"r\"\nmatch.\"subject.2.5.4.3\" = \"x\"\n", &diags);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->roles[0].when.match[0].attribute, "subject.CN");
}

TEST(PolicyLoader, Durations) {
  EXPECT_EQ(ParseDuration("30d"), 30 * 86400);
  EXPECT_EQ(ParseDuration("12h"), 12 * 3600);
  EXPECT_EQ(ParseDuration("90m"), 90 * 60);
  EXPECT_EQ(ParseDuration("3600s"), 3600);
  EXPECT_EQ(ParseDuration("3600"), 3600);
  EXPECT_EQ(ParseDuration("d"), std::nullopt);
  EXPECT_EQ(ParseDuration("-1d"), std::nullopt);
  EXPECT_EQ(ParseDuration("1w"), std::nullopt);
}

TEST(PolicyLoaderErrors, TomlSyntax) {
  EXPECT_EQ(OneError("version = 1\n[[role]\n"),
            "p.toml:2:8: error: TOML syntax error: Error while parsing table header: expected ']', saw '\\n'");
}

TEST(PolicyLoaderErrors, MissingVersion) {
  EXPECT_EQ(OneError("[[role]]\nname = \"r\"\n"),
            "p.toml:1:1: error: missing \"version = 1\" at the top of the policy");
}

TEST(PolicyLoaderErrors, WrongVersion) {
  EXPECT_EQ(OneError("version = 2\n"),
            "p.toml:1:11: error: \"version\" must be the integer 1 (the only policy version so far), found an integer 2");
}

TEST(PolicyLoaderErrors, UnknownTopLevelKeyWithSuggestion) {
  EXPECT_EQ(OneError("version = 1\n[[roles]]\nname = \"r\"\n"),
            "p.toml:2:3: error: unknown key \"roles\" in the top level (did you mean \"role\"?); expected one of: "
            "version, connect, role, deny, revocation, enroll");
}

TEST(PolicyLoaderErrors, UnknownRoleKey) {
  EXPECT_EQ(OneError("version = 1\n[[role]]\nname = \"r\"\npubish = [\"a\"]\n"),
            "p.toml:4:1: error: unknown key \"pubish\" in [[role]] #0 (did you mean \"publish\"?); expected one of: "
            "name, match, ca, expires_within, not_expiring_within, max_qos, retain, publish, subscribe");
}

TEST(PolicyLoaderErrors, UnknownConnectKey) {
  EXPECT_EQ(OneError("version = 1\n[connect]\nclientid = \"x\"\n"),
            "p.toml:3:1: error: unknown key \"clientid\" in [connect] (did you mean \"client_id\"?); expected one of: "
            "client_id, require_role, allow_malformed");
}

TEST(PolicyLoaderErrors, RoleWithoutName) {
  EXPECT_EQ(OneError("version = 1\n[[role]]\npublish = [\"a\"]\n"),
            "p.toml:2:1: error: [[role]] #0 has no \"name\": every role needs a unique name");
}

TEST(PolicyLoaderErrors, DuplicateRoleName) {
  EXPECT_EQ(OneError("version = 1\n[[role]]\nname = \"r\"\n[[role]]\nname = \"r\"\n"),
            "p.toml:5:8: error: duplicate role name \"r\" (first defined at line 2): role names must be unique");
}

TEST(PolicyLoaderErrors, UnknownAttributeInMatch) {
  std::string e = OneError("version = 1\n[[role]]\nname = \"r\"\nmatch.\"subject.XX\" = \"a\"\n");
  EXPECT_EQ(e.rfind("p.toml:4:7: error: role \"r\".match: unknown attribute \"subject.XX\"", 0), 0u) << e;
}

TEST(PolicyLoaderErrors, UnknownAttributeInTemplate) {
  std::string e = OneError("version = 1\n[[role]]\nname = \"r\"\npublish = [\"a/${subject.cn}\"]\n");
  EXPECT_EQ(e.rfind("p.toml:4:12: error: template \"a/${subject.cn}\": unknown attribute \"subject.cn\"", 0), 0u) << e;
}

TEST(PolicyLoaderErrors, UnterminatedTemplate) {
  EXPECT_EQ(OneError("version = 1\n[[role]]\nname = \"r\"\npublish = [\"a/${subject.CN\"]\n"),
            "p.toml:4:12: error: template \"a/${subject.CN\": \"${\" at offset 2 has no closing \"}\"");
}

TEST(PolicyLoaderErrors, InvalidFilter) {
  EXPECT_EQ(OneError("version = 1\n[[role]]\nname = \"r\"\npublish = [\"a/#/b\"]\n"),
            "p.toml:4:12: error: role \"r\".publish[0] \"a/#/b\" is not a valid MQTT topic filter: "
            "'#' is only allowed as the last level");
}

TEST(PolicyLoaderErrors, TemplateNextToWildcard) {
  EXPECT_EQ(OneError("version = 1\n[[role]]\nname = \"r\"\nsubscribe = [\"a/${subject.CN}+\"]\n"),
            "p.toml:4:14: error: role \"r\".subscribe[0] \"a/${subject.CN}+\" is not a valid MQTT topic filter: "
            "a wildcard ('+' or '#') must occupy a whole topic level");
}

TEST(PolicyLoaderErrors, SharePrefixInPolicy) {
  EXPECT_EQ(OneError("version = 1\n[[role]]\nname = \"r\"\nsubscribe = [\"$share/g/a\"]\n"),
            "p.toml:4:14: error: role \"r\".subscribe[0] \"$share/g/a\": write the filter without $share/<group>/ "
            "(shared subscriptions are checked as the filter they share)");
}

TEST(PolicyLoaderErrors, BadRegex) {
  EXPECT_EQ(OneError("version = 1\n[[role]]\nname = \"r\"\nmatch.\"subject.CN\" = { regex = \"(\" }\n"),
            "p.toml:4:32: error: role \"r\".match.\"subject.CN\": invalid regular expression: missing ): (");
}

TEST(PolicyLoaderErrors, UnknownMatcher) {
  EXPECT_EQ(OneError("version = 1\n[[role]]\nname = \"r\"\nmatch.\"subject.CN\" = { like = \"x\" }\n"),
            "p.toml:4:24: error: role \"r\".match.\"subject.CN\": unknown matcher \"like\"; expected glob, regex, "
            "any or prefix (or a plain string for an exact match)");
}

TEST(PolicyLoaderErrors, MatcherTableWithTwoKeys) {
  EXPECT_EQ(OneError("version = 1\n[[role]]\nname = \"r\"\nmatch.\"subject.CN\" = { glob = \"x\", prefix = \"y\" }\n"),
            "p.toml:4:22: error: role \"r\".match.\"subject.CN\" must be a string or a table with exactly one of "
            "glob, regex, any, prefix; found 2 keys");
}

TEST(PolicyLoaderErrors, EmptyAnyList) {
  EXPECT_EQ(OneError("version = 1\n[[role]]\nname = \"r\"\nmatch.\"subject.CN\" = { any = [] }\n"),
            "p.toml:4:30: error: role \"r\".match.\"subject.CN\": any must be a non-empty array of strings");
}

TEST(PolicyLoaderErrors, SameAttributeTwice) {
  EXPECT_EQ(OneError("version = 1\n[[role]]\nname = \"r\"\nmatch.\"subject.CN\" = \"a\"\nmatch.\"subject.2.5.4.3\" = \"b\"\n"),
            "p.toml:5:7: error: role \"r\".match names subject.CN twice (line 4): combine them with { any = [...] } "
            "or a regex");
}

TEST(PolicyLoaderErrors, MissingCaFile) {
  EXPECT_EQ(OneError("version = 1\n[[role]]\nname = \"r\"\nca = \"nope.pem\"\n"),
            "p.toml:4:6: error: role \"r\".ca: cannot read \"/nonexistent-dir/nope.pem\" (No such file or directory); "
            "relative paths are resolved against the policy file's directory");
}

TEST(PolicyLoaderErrors, BadDuration) {
  EXPECT_EQ(OneError("version = 1\n[[role]]\nname = \"r\"\nexpires_within = \"a month\"\n"),
            "p.toml:4:18: error: role \"r\".expires_within must be a duration such as \"30d\", \"12h\", \"90m\" or \"3600s\"");
}

TEST(PolicyLoaderErrors, BadQos) {
  EXPECT_EQ(OneError("version = 1\n[[role]]\nname = \"r\"\npublish = [{ topic = \"a\", max_qos = 3 }]\n"),
            "p.toml:4:37: error: role \"r\".publish[0].max_qos must be 0, 1 or 2");
}

TEST(PolicyLoaderErrors, LimitsOnSubscribe) {
  EXPECT_EQ(OneError("version = 1\n[[role]]\nname = \"r\"\nsubscribe = [{ topic = \"a\", retain = false }]\n"),
            "p.toml:4:29: error: unknown key \"retain\" in role \"r\".subscribe[0]; expected one of: topic");
}

TEST(PolicyLoaderErrors, TopicNotAString) {
  EXPECT_EQ(OneError("version = 1\n[[role]]\nname = \"r\"\nsubscribe = [1]\n"),
            "p.toml:4:14: error: role \"r\".subscribe[0] must be a topic filter string, found an integer");
}

TEST(PolicyLoaderErrors, DenyThatDeniesNothing) {
  EXPECT_EQ(OneError("version = 1\n[[deny]]\nname = \"d\"\n"),
            "p.toml:2:1: error: deny \"d\" denies nothing: give it publish, subscribe or connect = true");
}

TEST(PolicyLoaderErrors, RoleMustBeArrayOfTables) {
  EXPECT_EQ(OneError("version = 1\nrole = \"x\"\n"),
            "p.toml:2:8: error: \"role\" must be an array of tables, written [[role]], found a string");
}

TEST(PolicyLoaderErrors, ConnectBoolean) {
  EXPECT_EQ(OneError("version = 1\n[connect]\nrequire_role = \"yes\"\n"),
            "p.toml:3:16: error: connect.require_role must be true or false, found a string");
}

TEST(PolicyLoaderErrors, AllErrorsAreReportedAtOnce) {
  std::vector<Diagnostic> diags;
  auto p = Load("version = 1\n[[role]]\nname = \"a\"\nfoo = 1\n[[role]]\nname = \"b\"\nbar = 2\n", &diags);
  EXPECT_EQ(p, nullptr);
  ASSERT_EQ(diags.size(), 2u);
  EXPECT_EQ(diags[0].line, 4u);
  EXPECT_EQ(diags[1].line, 7u);
}

TEST(PolicyLoaderErrors, UnreadableFile) {
  std::vector<Diagnostic> diags;
  EXPECT_EQ(LoadPolicyFile("/nonexistent/policy.toml", &diags), nullptr);
  ASSERT_EQ(diags.size(), 1u);
  EXPECT_EQ(diags[0].ToString(),
            "/nonexistent/policy.toml: error: cannot read the policy file: No such file or directory");
}

}  // namespace
}  // namespace certacl
