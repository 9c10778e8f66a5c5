// Tests for MQTT topic/filter validation, matching and coverage.
#include "policy/topic.h"

#include <gtest/gtest.h>

namespace certacl::topic {
namespace {

TEST(TopicMatches, ExactLevelsOnly) {
  EXPECT_TRUE(Matches("a/b", "a/b"));
  EXPECT_FALSE(Matches("a/b", "a/bc"));
  EXPECT_FALSE(Matches("a/bc", "a/b"));
  EXPECT_FALSE(Matches("a/b", "a/b/c"));
  EXPECT_FALSE(Matches("a/b/c", "a/b"));
}

TEST(TopicMatches, TrailingSlashIsNotNormalised) {
  EXPECT_FALSE(Matches("a/b", "a/b/"));
  EXPECT_FALSE(Matches("a/b/", "a/b"));
  EXPECT_TRUE(Matches("a/b/+", "a/b/"));  // '+' matches the empty level
}

TEST(TopicMatches, PlusIsExactlyOneLevel) {
  EXPECT_TRUE(Matches("a/+/c", "a/b/c"));
  EXPECT_TRUE(Matches("a/+/c", "a//c"));
  EXPECT_FALSE(Matches("a/+/c", "a/b/x/c"));
  EXPECT_FALSE(Matches("a/+", "a"));
  EXPECT_TRUE(Matches("+", "a"));
  EXPECT_FALSE(Matches("+", "a/b"));
}

TEST(TopicMatches, HashIsTheRestIncludingParent) {
  EXPECT_TRUE(Matches("a/#", "a"));
  EXPECT_TRUE(Matches("a/#", "a/b/c"));
  EXPECT_FALSE(Matches("a/#", "ab"));
  EXPECT_TRUE(Matches("#", "x/y"));
}

TEST(TopicMatches, LeadingWildcardDoesNotMatchDollarTopics) {
  EXPECT_FALSE(Matches("#", "$SYS/broker"));
  EXPECT_FALSE(Matches("+/broker", "$SYS/broker"));
  EXPECT_TRUE(Matches("$SYS/#", "$SYS/broker"));
  EXPECT_TRUE(Matches("a/+", "a/$x"));
}

TEST(TopicValidity, Filters) {
  std::string why;
  EXPECT_TRUE(IsValidFilter("a/+/#", &why));
  EXPECT_FALSE(IsValidFilter("a/b+", &why));
  EXPECT_EQ(why, "a wildcard ('+' or '#') must occupy a whole topic level");
  EXPECT_FALSE(IsValidFilter("a/#/b", &why));
  EXPECT_EQ(why, "'#' is only allowed as the last level");
  EXPECT_FALSE(IsValidFilter("", &why));
  EXPECT_FALSE(IsValidFilter(std::string("a\0b", 3), &why));
  EXPECT_EQ(why, "topic filter contains a NUL byte");
}

TEST(TopicValidity, Names) {
  std::string why;
  EXPECT_TRUE(IsValidName("a/b", &why));
  EXPECT_FALSE(IsValidName("a/+", &why));
  EXPECT_FALSE(IsValidName("#", &why));
  EXPECT_FALSE(IsValidName("", &why));
  EXPECT_FALSE(IsValidName(std::string(65536, 'a'), &why));
}

TEST(TopicCovers, SpecificFilterDoesNotGrantWildcard) {
  EXPECT_FALSE(Covers("config/s-001", "config/#"));
  EXPECT_FALSE(Covers("config/s-001", "config/+"));
  EXPECT_TRUE(Covers("config/s-001", "config/s-001"));
}

TEST(TopicCovers, WildcardCoverage) {
  EXPECT_TRUE(Covers("a/#", "a/+"));
  EXPECT_TRUE(Covers("a/#", "a/#"));
  EXPECT_TRUE(Covers("a/#", "a"));
  EXPECT_TRUE(Covers("a/#", "a/b/c"));
  EXPECT_TRUE(Covers("+/+", "a/+"));
  EXPECT_FALSE(Covers("a/+", "a/#"));
  EXPECT_FALSE(Covers("a/+", "a"));
  EXPECT_FALSE(Covers("a/+", "a/b/c"));
  EXPECT_FALSE(Covers("a/#", "#"));
  EXPECT_TRUE(Covers("#", "#"));
  EXPECT_FALSE(Covers("#", "$SYS/#"));
  EXPECT_FALSE(Covers("+/x", "$SYS/x"));
  EXPECT_TRUE(Covers("$SYS/#", "$SYS/broker/+"));
  EXPECT_TRUE(Covers("a/b/#", "a/b"));
  EXPECT_TRUE(Covers("+/#", "a"));
  EXPECT_FALSE(Covers("+/#", "$SYS"));
  EXPECT_TRUE(Covers("a//b", "a//b"));
  EXPECT_TRUE(Covers("a/+/b", "a//b"));
  EXPECT_FALSE(Covers("a/b", "a/b/"));
  EXPECT_TRUE(Covers("a/b/+", "a/b/"));
  EXPECT_FALSE(Covers("a/b/", "a/b"));
}

TEST(TopicShare, StripsGroup) {
  bool bad = true;
  EXPECT_EQ(StripShare("$share/g/a/b", &bad), "a/b");
  EXPECT_FALSE(bad);
  EXPECT_EQ(StripShare("a/b", &bad), "a/b");
  EXPECT_FALSE(bad);
  StripShare("$share//a", &bad);
  EXPECT_TRUE(bad);
  StripShare("$share/g", &bad);
  EXPECT_TRUE(bad);
  StripShare("$share/g/", &bad);
  EXPECT_TRUE(bad);
  StripShare("$share/+/a", &bad);
  EXPECT_TRUE(bad);
}

}  // namespace
}  // namespace certacl::topic
