// Tests for attribute value matchers.
#include "policy/matcher.h"

#include <gtest/gtest.h>

namespace certacl {
namespace {

TEST(ValueMatcher, ExactIsByteExact) {
  ValueMatcher m = ValueMatcher::Exact("Acme");
  EXPECT_TRUE(m.Matches("Acme"));
  EXPECT_FALSE(m.Matches("acme"));
  EXPECT_FALSE(m.Matches("Acme "));
  EXPECT_FALSE(m.Matches(""));
}

TEST(ValueMatcher, AnyOf) {
  ValueMatcher m = ValueMatcher::Any({"meter", "meter-3ph"});
  EXPECT_TRUE(m.Matches("meter"));
  EXPECT_TRUE(m.Matches("meter-3ph"));
  EXPECT_FALSE(m.Matches("meter-"));
}

TEST(ValueMatcher, Prefix) {
  ValueMatcher m = ValueMatcher::Prefix("Acme ");
  EXPECT_TRUE(m.Matches("Acme Devices CA"));
  EXPECT_FALSE(m.Matches("Acme"));
  EXPECT_FALSE(m.Matches("acme x"));
}

TEST(ValueMatcher, GlobStarQuestionEscape) {
  ValueMatcher m;
  std::string why;
  ASSERT_TRUE(ValueMatcher::Glob("*.meters.acme.example", &m, &why));
  EXPECT_TRUE(m.Matches("m1.meters.acme.example"));
  EXPECT_TRUE(m.Matches(".meters.acme.example"));
  EXPECT_FALSE(m.Matches("m1.meters.acme.example.evil"));
  ASSERT_TRUE(ValueMatcher::Glob("m-??", &m, &why));
  EXPECT_TRUE(m.Matches("m-12"));
  EXPECT_FALSE(m.Matches("m-123"));
  EXPECT_TRUE(m.Matches("m-\xc3\xbc" "1"));  // '?' is one UTF-8 character
  ASSERT_TRUE(ValueMatcher::Glob("a\\*b", &m, &why));
  EXPECT_TRUE(m.Matches("a*b"));
  EXPECT_FALSE(m.Matches("axb"));
  ASSERT_TRUE(ValueMatcher::Glob("a*b*c", &m, &why));
  EXPECT_TRUE(m.Matches("aXbYbZc"));
  EXPECT_FALSE(m.Matches("aXbYbZ"));
  EXPECT_FALSE(ValueMatcher::Glob("abc\\", &m, &why));
  EXPECT_EQ(why, "glob ends with a lone '\\' escape");
}

TEST(ValueMatcher, RegexIsAnchoredOnBothEnds) {
  ValueMatcher m;
  std::string why;
  ASSERT_TRUE(ValueMatcher::Regex("m-[0-9]{8}", &m, &why));
  EXPECT_TRUE(m.Matches("m-12345678"));
  EXPECT_FALSE(m.Matches("xm-12345678"));
  EXPECT_FALSE(m.Matches("m-123456789"));
  EXPECT_FALSE(ValueMatcher::Regex("m-(", &m, &why));
  EXPECT_NE(why.find("invalid regular expression: missing )"), std::string::npos) << why;
}

TEST(ValueMatcher, Describe) {
  EXPECT_EQ(ValueMatcher::Exact("a").Describe(), "= \"a\"");
  EXPECT_EQ(ValueMatcher::Any({"a", "b"}).Describe(), "any of [\"a\", \"b\"]");
  EXPECT_EQ(ValueMatcher::Prefix("p").Describe(), "prefix \"p\"");
}

}  // namespace
}  // namespace certacl
