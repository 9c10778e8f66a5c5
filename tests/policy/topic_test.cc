// Tests for MQTT topic/filter validation, matching and coverage.
#include "policy/topic.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "tests/testing/random_filter.h"

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

// MQTT 3.1.1 section 4.7, written the obvious way (split into levels), to
// check the in-place matcher against.
std::vector<std::string> SplitLevels(const std::string& s) {
  std::vector<std::string> out(1);
  for (char c : s) {
    if (c == '/') {
      out.emplace_back();
    } else {
      out.back() += c;
    }
  }
  return out;
}

bool ReferenceMatches(const std::string& filter, const std::string& topic) {
  if (!topic.empty() && topic[0] == '$' && (filter[0] == '+' || filter[0] == '#')) return false;
  const std::vector<std::string> f = SplitLevels(filter), t = SplitLevels(topic);
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") return true;  // the rest, including the parent level
    if (i >= t.size()) return false;
    if (f[i] != "+" && f[i] != t[i]) return false;
  }
  return f.size() == t.size();
}

// Random filters over a tiny alphabet (literal levels of 0-2 of 'a', 'b',
// '$'), so that equal, empty and prefix levels, '$' levels and wildcards
// meet often.
std::string RandomFilter(std::mt19937& rng) {
  return testing::RandomFilter(rng, 4, [](std::mt19937& r) {
    std::string level;
    const int n = static_cast<int>(r() % 3);
    for (int i = 0; i < n; ++i) level += "ab$"[r() % 3];
    return level;
  });
}

TEST(TopicMatches, AgreesWithTheLevelByLevelDefinition) {
  // Filters and topics over a tiny alphabet, so that equal, empty and
  // prefix levels, '$' topics and wildcards meet often. Fixed seed.
  std::mt19937 rng(20261127);
  const char kTopicChars[] = {'a', 'b', '/', '/', '$'};
  auto random_topic = [&] {
    std::string t;
    const int n = static_cast<int>(rng() % 7);
    for (int i = 0; i < n; ++i) t += kTopicChars[rng() % sizeof kTopicChars];
    return t;
  };
  auto random_filter = [&] { return RandomFilter(rng); };
  int matched = 0;
  for (int k = 0; k < 200000; ++k) {
    const std::string f = random_filter(), t = random_topic();
    if (!IsValidFilter(f, nullptr)) continue;
    const bool expected = ReferenceMatches(f, t);
    ASSERT_EQ(Matches(f, t), expected) << "filter '" << f << "' topic '" << t << "'";
    ASSERT_EQ(Matches(f, t, LiteralPrefix(f)), expected) << "(prefixed) filter '" << f << "' topic '" << t << "'";
    matched += expected;
  }
  EXPECT_GT(matched, 1000);  // the sample exercises matches, not only misses
}

TEST(TopicMatches, LiteralPrefix) {
  EXPECT_EQ(LiteralPrefix("bench/d-1/telemetry"), 19u);  // no wildcard: all of it
  EXPECT_EQ(LiteralPrefix("bench/+/telemetry"), 6u);
  EXPECT_EQ(LiteralPrefix("a/b/#"), 4u);
  EXPECT_EQ(LiteralPrefix("+/x"), 0u);
  EXPECT_EQ(LiteralPrefix("#"), 0u);
  EXPECT_EQ(LiteralPrefix("a//+"), 3u);
}

TEST(TopicMatches, WithALiteralPrefix) {
  // A '$' after the literal prefix is an ordinary level: only a filter's
  // first level excludes '$' topics.
  EXPECT_TRUE(Matches("bench/+/telemetry", "bench/$x/telemetry", 6));
  EXPECT_FALSE(Matches("+/x", "$SYS/x", 0));
  EXPECT_TRUE(Matches("a/b/#", "a/b", 4));     // the parent level
  EXPECT_FALSE(Matches("a/b/+", "a/b", 4));    // '+' needs a level
  EXPECT_TRUE(Matches("a/b/+", "a/b/", 4));    // an empty one will do
  EXPECT_FALSE(Matches("a/b", "a/bc", 3));     // no wildcard: equality
  EXPECT_FALSE(Matches("a/b", "a", 3));
  EXPECT_FALSE(Matches("a/+/c", "a/x/cd", 2));
  EXPECT_FALSE(Matches("a/+/c", "ab/x/c", 2));
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

TEST(TopicIntersects, Examples) {
  EXPECT_TRUE(Intersects("a/#", "a"));
  EXPECT_TRUE(Intersects("a", "a/#"));
  EXPECT_TRUE(Intersects("+/x", "a/+"));
  EXPECT_TRUE(Intersects("#", "+"));
  EXPECT_TRUE(Intersects("a/b", "a/b"));
  EXPECT_TRUE(Intersects("$SYS/#", "$SYS/+"));
  EXPECT_TRUE(Intersects("#", "/a"));  // an empty first level is not '$'
  EXPECT_FALSE(Intersects("a/+", "a"));
  EXPECT_FALSE(Intersects("a/b", "a/c"));
  EXPECT_FALSE(Intersects("a/b", "a/b/c"));
  EXPECT_FALSE(Intersects("#", "$SYS/x"));
  EXPECT_FALSE(Intersects("+/#", "$SYS"));
  EXPECT_FALSE(Intersects("a/+/c", "a/b/d"));
  EXPECT_FALSE(Intersects("+", "/#"));  // only in "", which is no topic name
  EXPECT_TRUE(Intersects("+", "x/#"));
  EXPECT_TRUE(Intersects("a/+/#", "a/b"));  // "a/b" matches both ("a/b/#" includes its parent)
}

// The topics that can witness an intersection of `a` and `b`: up to as
// many levels as the longer has ('#' also matches no level), each level
// one of the filters' literals there or "x" (what '+' and '#' take).
std::vector<std::string> Candidates(const std::string& a, const std::string& b) {
  const std::vector<std::string> la = SplitLevels(a), lb = SplitLevels(b);
  const size_t depth = std::max(la.size(), lb.size());
  std::vector<std::string> out, frontier = {""};
  for (size_t k = 0; k < depth; ++k) {
    std::vector<std::string> options = {"x"};
    for (const auto* l : {&la, &lb}) {
      if (k < l->size() && (*l)[k] != "+" && (*l)[k] != "#") options.push_back((*l)[k]);
    }
    std::vector<std::string> next;
    for (const std::string& t : frontier) {
      for (const std::string& o : options) next.push_back(k == 0 ? o : t + "/" + o);
    }
    out.insert(out.end(), next.begin(), next.end());
    frontier = std::move(next);
  }
  return out;
}

TEST(TopicIntersects, AgreesWithAWitnessSearch) {
  std::mt19937 rng(20261128);
  int met = 0, apart = 0;
  for (int k = 0; k < 8000; ++k) {
    const std::string a = RandomFilter(rng), b = RandomFilter(rng);
    if (!IsValidFilter(a, nullptr) || !IsValidFilter(b, nullptr)) continue;
    bool witness = false;
    for (const std::string& t : Candidates(a, b)) {
      if (IsValidName(t, nullptr) && ReferenceMatches(a, t) && ReferenceMatches(b, t)) {
        witness = true;
        break;
      }
    }
    ASSERT_EQ(Intersects(a, b), witness) << "'" << a << "' and '" << b << "'";
    ASSERT_EQ(Intersects(b, a), witness) << "'" << b << "' and '" << a << "'";
    (witness ? met : apart)++;
  }
  EXPECT_GT(met, 800);
  EXPECT_GT(apart, 800);
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
