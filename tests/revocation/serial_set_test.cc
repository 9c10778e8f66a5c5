// serial_set_test.cc: canonical serial keys and SerialSet (exactness,
// collisions, limits, memory at 1M entries).
#include "plugin/revocation/serial_set.h"

#include <gtest/gtest.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>

#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "policy/openssl_ptr.h"
#include "tests/testing/cert_builder.h"
#include "tests/testing/crl_builder.h"

namespace certacl::revocation {
namespace {

using certacl::testing::FromHex;
using certacl::testing::RandomSerials;

SerialSet Make(const std::vector<std::string>& serials) {
  SerialSet::Builder b;
  b.Reserve(serials.size());
  for (const std::string& s : serials) b.Add(s);
  return std::move(b).Build();
}

certacl::IntegerPtr IntegerFromHex(const char* hex) {
  BIGNUM* bn = nullptr;
  EXPECT_GT(BN_hex2bn(&bn, hex), 0);
  certacl::BignumPtr holder(bn);
  return certacl::IntegerPtr(BN_to_ASN1_INTEGER(bn, nullptr));
}

TEST(SerialSetCanonical, StripsRedundantPadding) {
  EXPECT_EQ(CanonicalSerial(FromHex("0001")), FromHex("01"));
  EXPECT_EQ(CanonicalSerial(FromHex("00000001")), FromHex("01"));
  EXPECT_EQ(CanonicalSerial(FromHex("0080")), FromHex("0080"));      // pad needed
  EXPECT_EQ(CanonicalSerial(FromHex("000080")), FromHex("0080"));
  EXPECT_EQ(CanonicalSerial(FromHex("FFFF")), FromHex("FF"));        // -1
  EXPECT_EQ(CanonicalSerial(FromHex("FF7F")), FromHex("FF7F"));      // -129
  EXPECT_EQ(CanonicalSerial(FromHex("FFFF80")), FromHex("80"));  // -128
  EXPECT_EQ(CanonicalSerial(FromHex("FF80")), FromHex("80"));
  EXPECT_EQ(CanonicalSerial(FromHex("00")), FromHex("00"));
  EXPECT_EQ(CanonicalSerial(FromHex("0000")), FromHex("00"));
  EXPECT_EQ(CanonicalSerial(""), "");
}

TEST(SerialSetCanonical, SerialKeyMatchesDerContent) {
  EXPECT_EQ(SerialKey(IntegerFromHex("01").get()), FromHex("01"));
  EXPECT_EQ(SerialKey(IntegerFromHex("80").get()), FromHex("0080"));
  EXPECT_EQ(SerialKey(IntegerFromHex("0").get()), FromHex("00"));
  EXPECT_EQ(SerialKey(IntegerFromHex("-1").get()), FromHex("FF"));
  EXPECT_EQ(SerialKey(IntegerFromHex("-80").get()), FromHex("80"));
  EXPECT_EQ(SerialKey(IntegerFromHex("-81").get()), FromHex("FF7F"));
  EXPECT_EQ(SerialKey(IntegerFromHex("7F112233445566778899AABBCCDDEEFF").get()),
            FromHex("7F112233445566778899AABBCCDDEEFF"));
  EXPECT_EQ(SerialKey(IntegerFromHex("FF112233445566778899AABBCCDDEEFF").get()),
            FromHex("00FF112233445566778899AABBCCDDEEFF"));
  EXPECT_EQ(SerialKey(nullptr), "");
  EXPECT_EQ(certacl::testing::SerialFromUint64(0x80), FromHex("0080"));
  EXPECT_EQ(certacl::testing::SerialFromUint64(0), FromHex("00"));
}

TEST(SerialSet, Empty) {
  SerialSet empty;
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_EQ(empty.MemoryUsage(), 0u);
  EXPECT_FALSE(empty.Contains(""));
  EXPECT_FALSE(empty.Contains(FromHex("01")));
  SerialSet built = SerialSet::Builder().Build();
  EXPECT_EQ(built.size(), 0u);
  EXPECT_FALSE(built.Contains(FromHex("01")));
}

TEST(SerialSet, One) {
  SerialSet set = Make({FromHex("01")});
  EXPECT_EQ(set.size(), 1u);
  EXPECT_TRUE(set.Contains(FromHex("01")));
  EXPECT_FALSE(set.Contains(FromHex("02")));
  EXPECT_FALSE(set.Contains(FromHex("0001")));  // callers canonicalise
  EXPECT_FALSE(set.Contains(""));
  EXPECT_GT(set.MemoryUsage(), 0u);
}

TEST(SerialSet, EmptyAndLongSerials) {
  std::string longest(SerialSet::kMaxSerialLength, '\x42');
  SerialSet set = Make({"", longest, std::string(126, '\x11')});
  EXPECT_TRUE(set.Contains(""));
  EXPECT_TRUE(set.Contains(longest));
  EXPECT_TRUE(set.Contains(std::string(126, '\x11')));
  EXPECT_FALSE(set.Contains(std::string(125, '\x11')));
  EXPECT_FALSE(set.Contains(std::string(SerialSet::kMaxSerialLength - 1, '\x42')));
  SerialSet::Builder b;
  EXPECT_THROW(b.Add(std::string(SerialSet::kMaxSerialLength + 1, '\x01')), std::length_error);
}

TEST(SerialSet, DuplicatesStoredOnce) {
  SerialSet set = Make({FromHex("0102"), FromHex("0103"), FromHex("0102"), FromHex("0102")});
  EXPECT_EQ(set.size(), 2u);
  EXPECT_TRUE(set.Contains(FromHex("0102")));
  EXPECT_TRUE(set.Contains(FromHex("0103")));
}

TEST(SerialSet, ManyMixedLengthsExact) {
  std::vector<std::string> in;
  for (size_t len = 1; len <= 40; ++len) {
    for (std::string& s : RandomSerials(2500, 1000 + len, len)) in.push_back(std::move(s));
  }
  SerialSet set = Make(in);
  for (const std::string& s : in) ASSERT_TRUE(set.Contains(s)) << s.size();
  std::unordered_set<std::string> members(in.begin(), in.end());
  EXPECT_EQ(set.size(), members.size());
  size_t false_positives = 0;
  for (size_t len = 1; len <= 40; ++len) {
    for (const std::string& s : RandomSerials(2500, 5000 + len, len)) {
      // Short lengths collide with the inserted ones for real: check exactly.
      bool really = members.count(s) != 0;
      if (set.Contains(s) != really) ++false_positives;
    }
  }
  EXPECT_EQ(false_positives, 0u);
  // Prefixes and extensions of members are not members.
  EXPECT_FALSE(set.Contains(in[in.size() - 1].substr(1)));
  EXPECT_FALSE(set.Contains(in[in.size() - 1] + "x"));
}

// Serials whose hashes share the 32-bit tag: only the byte comparison tells
// them apart.
TEST(SerialSet, TagCollisions) {
  std::map<uint32_t, std::string> by_tag;
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const std::string& s : RandomSerials(400000, 77, 8)) {
    auto tag = static_cast<uint32_t>(SerialSet::Hash(s) >> 32);
    auto [it, inserted] = by_tag.emplace(tag, s);
    if (!inserted && it->second != s) pairs.emplace_back(it->second, s);
  }
  ASSERT_GE(pairs.size(), 3u) << "birthday bound: ~18 expected";
  for (const auto& [a, b] : pairs) {
    SerialSet only_a = Make({a});
    EXPECT_TRUE(only_a.Contains(a));
    EXPECT_FALSE(only_a.Contains(b));
    SerialSet both = Make({a, b});
    EXPECT_EQ(both.size(), 2u);
    EXPECT_TRUE(both.Contains(a));
    EXPECT_TRUE(both.Contains(b));
  }
  // Dense small tables: every key probes past others.
  std::vector<std::string> small;
  for (const auto& [a, b] : pairs) {
    small.push_back(a);
    small.push_back(b);
  }
  SerialSet dense = Make(small);
  for (const std::string& s : small) EXPECT_TRUE(dense.Contains(s));
  EXPECT_FALSE(dense.Contains(pairs[0].first.substr(0, 7)));
}

TEST(SerialSet, MoveLeavesSourceEmpty) {
  SerialSet a = Make({FromHex("01")});
  SerialSet b = std::move(a);
  EXPECT_TRUE(b.Contains(FromHex("01")));
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move): documented
  EXPECT_FALSE(a.Contains(FromHex("01")));
  a = std::move(b);
  EXPECT_TRUE(a.Contains(FromHex("01")));
}

TEST(SerialSet, ConcurrentLookups) {
  std::vector<std::string> in = RandomSerials(20000, 9);
  std::vector<std::string> out = RandomSerials(20000, 10);
  SerialSet set = Make(in);
  std::vector<std::thread> threads;
  std::vector<size_t> errors(4, 0);
  for (size_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (const std::string& s : in) errors[t] += set.Contains(s) ? 0 : 1;
      for (const std::string& s : out) errors[t] += set.Contains(s) ? 1 : 0;
    });
  }
  for (std::thread& th : threads) th.join();
  for (size_t e : errors) EXPECT_EQ(e, 0u);
}

TEST(SerialSet, MemoryAtOneMillion) {
  constexpr size_t kN = 1'000'000;
  std::vector<std::string> in = RandomSerials(kN, 2024);
  SerialSet set = Make(in);
  EXPECT_EQ(set.size(), kN);
  std::printf("SerialSet: %zu serials of 16 octets hold %zu bytes (%.1f B/entry)\n", set.size(), set.MemoryUsage(),
              static_cast<double>(set.MemoryUsage()) / static_cast<double>(kN));
  EXPECT_LT(set.MemoryUsage(), 48u * 1000 * 1000);
  for (size_t i = 0; i < kN; i += 97) ASSERT_TRUE(set.Contains(in[i]));
  for (const std::string& s : RandomSerials(10000, 2025)) ASSERT_FALSE(set.Contains(s));
}

}  // namespace
}  // namespace certacl::revocation
