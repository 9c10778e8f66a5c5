// Tests for `certacl lint` warnings (LintPolicy).
#include "policy/lint.h"

#include <gtest/gtest.h>

namespace certacl {
namespace {

std::vector<std::string> Warnings(const std::string& text) {
  std::vector<Diagnostic> diags;
  auto p = LoadPolicyString(text, "l.toml", "/", &diags);
  EXPECT_NE(p, nullptr) << (diags.empty() ? "" : diags[0].ToString());
  std::vector<std::string> out;
  if (!p) return out;
  for (const Diagnostic& d : LintPolicy(*p)) out.push_back(d.ToString());
  return out;
}

TEST(Lint, CleanPolicyHasNoWarnings) {
  EXPECT_TRUE(Warnings(R"(version = 1
[[role]]
name = "meter"
match."subject.OU" = "meter"
match."subject.L" = { glob = "*" }
match."subject.CN" = { regex = "m-[0-9]+" }
publish = ["meters/${subject.L}/${subject.CN}/reading"]
subscribe = ["meters/${subject.L}/${cert.serial}/cmd/#"]
[[deny]]
publish = ["$SYS/#"]
)").empty());
}

TEST(Lint, TemplateAttributeNotGuaranteedByMatch) {
  auto w = Warnings("version = 1\n[[role]]\nname = \"r\"\nmatch.\"subject.O\" = \"A\"\npublish = [\"s/${subject.L}\"]\n");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0], "l.toml:5:12: warning: role 'r' (#0) publish[0] \"s/${subject.L}\" uses ${subject.L}, but the role's "
                  "match does not require subject.L: devices without it get nothing from this entry (add a match on "
                  "subject.L)");
}

TEST(Lint, AlwaysPresentAttributesAreNotWarned) {
  auto w = Warnings("version = 1\n[[role]]\nname = \"r\"\npublish = [\"s/${cert.serial}/${cert.sha256}/${mqtt.client_id}\"]\n");
  EXPECT_TRUE(w.empty()) << w[0];
}

TEST(Lint, DenyTemplateNotGuaranteed) {
  auto w = Warnings("version = 1\n[[deny]]\nname = \"d\"\npublish = [\"a/${subject.CN}/admin\"]\n");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("devices without it are denied every publish"), std::string::npos) << w[0];
}

TEST(Lint, RoleThatCanNeverMatch) {
  auto w = Warnings("version = 1\n[[role]]\nname = \"r\"\nmatch.\"san.dns\" = \"Meter.Acme.Example\"\n");
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0], "l.toml:4:7: warning: role 'r' (#0): match on san.dns value \"Meter.Acme.Example\" can never hold: "
                  "san.dns values are lowercase");
  EXPECT_EQ(w[1], "l.toml:2:1: warning: role 'r' (#0) can never match any certificate");
}

TEST(Lint, ImpossibleFormats) {
  for (const char* cond : {"match.\"cert.sha256\" = \"AB\"", "match.\"cert.serial\" = \"0a:1b\"",
                           "match.\"cert.not_after\" = \"2027-01-01\"", "match.\"san.ip\" = \"2001:DB8::1\"",
                           "match.\"cert.key\" = \"EC-P256\"", "match.\"subject.CN\" = \"a\\u0000b\"",
                           "expires_within = \"10d\"\nnot_expiring_within = \"30d\""}) {
    auto w = Warnings(std::string("version = 1\n[[role]]\nname = \"r\"\n") + cond + "\n");
    ASSERT_FALSE(w.empty()) << cond;
    EXPECT_NE(w.back().find("can never match any certificate"), std::string::npos) << cond << ": " << w.back();
  }
}

TEST(Lint, OneImpossibleValueInAnyListIsWarnedButRoleCanMatch) {
  auto w = Warnings("version = 1\n[[role]]\nname = \"r\"\nmatch.\"san.dns\" = { any = [\"a.example\", \"B.example\"] }\n");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("\"B.example\" can never hold"), std::string::npos);
}

TEST(Lint, AllowShadowedByUnconditionalDeny) {
  auto w = Warnings(R"(version = 1
[[role]]
name = "r"
match."subject.CN" = { glob = "*" }
publish = ["$SYS/broker/${subject.CN}", "data/x"]
[[deny]]
name = "no-sys"
publish = ["$SYS/#"]
)");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0], "l.toml:5:12: warning: role 'r' (#0) publish[0] \"$SYS/broker/${subject.CN}\" is always denied by "
                  "deny 'no-sys' (#0) publish[0] \"$SYS/#\": it grants nothing");
}

TEST(Lint, ConditionalDenyDoesNotShadow) {
  auto w = Warnings(R"(version = 1
[[role]]
name = "r"
publish = ["data/x"]
[[deny]]
match."subject.OU" = "quarantine"
publish = ["data/#"]
)");
  EXPECT_TRUE(w.empty()) << w[0];
}

TEST(Lint, OverlappingRoles) {
  auto w = Warnings(R"(version = 1
[[role]]
name = "a"
subscribe = ["broadcast/#"]
[[role]]
name = "b"
subscribe = ["broadcast/#", "broadcast/news", "other"]
)");
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0], "l.toml:7:14: warning: role 'b' (#1) subscribe[0] \"broadcast/#\" is also granted by role 'a' (#0) "
                  "subscribe[0] \"broadcast/#\" (the same filter): a device matching both roles gets it from either; "
                  "consider granting it in one place");
  EXPECT_NE(w[1].find("role 'b' (#1) subscribe[1] \"broadcast/news\" is also granted by role 'a' (#0) subscribe[0] "
                      "\"broadcast/#\" (a filter that covers it)"),
            std::string::npos)
      << w[1];
}

TEST(Lint, RolesThatCannotBothMatchDoNotOverlap) {
  auto w = Warnings(R"(version = 1
[[role]]
name = "meters"
match."subject.OU" = "meter"
subscribe = ["broadcast/#"]
[[role]]
name = "plcs"
match."subject.OU" = { any = ["plc", "rtu"] }
subscribe = ["broadcast/#"]
[[role]]
name = "fresh"
not_expiring_within = "30d"
publish = ["data/#"]
[[role]]
name = "expiring"
expires_within = "30d"
publish = ["data/#"]
)");
  EXPECT_TRUE(w.empty()) << w[0];
}

TEST(Lint, WarningsOfOneKindAreCapped) {
  std::string text = "version = 1\n";
  for (int i = 0; i < 40; ++i) {
    text += "[[role]]\nname = \"r" + std::to_string(i) + "\"\npublish = [\"x/${subject.L}\"]\n";
  }
  auto w = Warnings(text);
  // 25 listed per kind + one summary line each for two kinds (template, overlap).
  size_t summaries = 0;
  for (const auto& s : w) summaries += s.find("more warning(s) of the kind") != std::string::npos;
  EXPECT_EQ(summaries, 2u);
  EXPECT_EQ(w.size(), 25u + 25u + 2u);
}

}  // namespace
}  // namespace certacl
