// Tests for Session: role matching, client-id binding, template expansion and
// the safety rules of docs/policy.md, each with the exact wrong outcome it
// prevents.
#include "policy/session.h"
#include "policy/signature_cache.h"
#include "policy/topic.h"

#include <gtest/gtest.h>
#include <openssl/x509v3.h>

#include <memory_resource>
#include <random>
#include <string>
#include <vector>


#include "tests/testing/cert_builder.h"
#include "tests/testing/random_filter.h"
#include "tests/testing/temp_dir.h"

namespace certacl {
namespace {

using testing::CertBuilder;
using testing::TestCa;

constexpr int64_t kNow = 1'800'000'000;  // 2027-01-15
constexpr int64_t kDay = 86400;

using testing::TempDir;

std::shared_ptr<const Policy> MustLoad(const std::string& text, const std::string& base_dir = "/") {
  std::vector<Diagnostic> diags;
  auto p = LoadPolicyString(text, "test.toml", base_dir, &diags);
  std::string all;
  for (const auto& d : diags) all += d.ToString() + "\n";
  EXPECT_NE(p, nullptr) << all;
  return p;
}

Identity IdentityOf(X509* cert) { return Identity::FromCertificate(cert); }

// A meter certificate with the usual fields; `cn` and `l` are configurable.
X509Ptr Meter(const std::string& cn, const std::string& l = "zurich") {
  return CertBuilder()
      .Subject("O", "Acme Utilities")
      .Subject("OU", "meter")
      .Subject("L", l)
      .Subject("CN", cn)
      .Validity(kNow - 10 * kDay, kNow + 365 * kDay)
      .Build();
}

const char* kMeterPolicy = R"(version = 1
[connect]
client_id = "${subject.CN}"

[[role]]
name = "meter"
match."subject.O" = "Acme Utilities"
match."subject.OU" = "meter"
match."subject.L" = { glob = "*" }
publish = ["meters/${subject.L}/${subject.CN}/reading",
           { topic = "meters/${subject.L}/${subject.CN}/alarm", max_qos = 1, retain = false }]
subscribe = ["meters/${subject.L}/${subject.CN}/cmd/#", "meters/broadcast/#", "config/${subject.CN}"]

[[deny]]
name = "no-sys"
publish = ["$SYS/#"]
subscribe = ["$SYS/#", "meters/broadcast/secret/#"]
)";

Session Resolve(const std::shared_ptr<const Policy>& p, X509* cert, const std::string& client_id) {
  return Session::Resolve(p, IdentityOf(cert), client_id, kNow);
}

TEST(Session, AllowsOwnTopicsAndNamesTheRule) {
  auto p = MustLoad(kMeterPolicy);
  X509Ptr cert = Meter("m-00000001");
  Session s = Resolve(p, cert.get(), "m-00000001");
  ASSERT_TRUE(s.connect_allowed()) << s.ExplainConnect();
  Decision d = s.CheckPublish("meters/zurich/m-00000001/reading", 0, false);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.source, Decision::Source::kRole);
  EXPECT_EQ(s.Explain(d, Action::kPublish),
            "role 'meter' (#0) publish[0] \"meters/${subject.L}/${subject.CN}/reading\"");
  EXPECT_TRUE(s.CheckRead("meters/zurich/m-00000001/cmd/reboot").allowed);
  EXPECT_TRUE(s.CheckSubscribe("meters/zurich/m-00000001/cmd/#").allowed);
}

TEST(Session, OtherDevicesTopicsAreDefaultDenied) {
  auto p = MustLoad(kMeterPolicy);
  X509Ptr cert = Meter("m-00000001");
  Session s = Resolve(p, cert.get(), "m-00000001");
  Decision d = s.CheckPublish("meters/zurich/m-00000002/reading", 0, false);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.source, Decision::Source::kDefault);
  EXPECT_EQ(s.Explain(d, Action::kPublish), "no rule: default deny");
  EXPECT_FALSE(s.CheckRead("meters/zurich/m-00000002/cmd/x").allowed);
}

TEST(Session, DenyWinsOverAllow) {
  auto p = MustLoad(kMeterPolicy);
  X509Ptr cert = Meter("m-00000001");
  Session s = Resolve(p, cert.get(), "m-00000001");
  // meters/broadcast/# is allowed, meters/broadcast/secret/# denied.
  EXPECT_TRUE(s.CheckRead("meters/broadcast/tariff").allowed);
  Decision d = s.CheckRead("meters/broadcast/secret/key");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.source, Decision::Source::kDeny);
  EXPECT_EQ(s.Explain(d, Action::kRead), "deny 'no-sys' (#0) subscribe[1] \"meters/broadcast/secret/#\"");
  EXPECT_FALSE(s.CheckSubscribe("meters/broadcast/secret/#").allowed);
  // The broader subscription is allowed, but deliveries under the deny are not.
  EXPECT_TRUE(s.CheckSubscribe("meters/broadcast/#").allowed);
}

TEST(Session, PublishQosAndRetainLimits) {
  auto p = MustLoad(kMeterPolicy);
  X509Ptr cert = Meter("m-00000001");
  Session s = Resolve(p, cert.get(), "m-00000001");
  const std::string alarm = "meters/zurich/m-00000001/alarm";
  EXPECT_TRUE(s.CheckPublish(alarm, 1, false).allowed);
  Decision d = s.CheckPublish(alarm, 2, false);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.source, Decision::Source::kLimit);
  EXPECT_EQ(s.Explain(d, Action::kPublish),
            "only role 'meter' (#0) publish[1] \"meters/${subject.L}/${subject.CN}/alarm\" matches, and it allows "
            "at most QoS 1 and no retained messages");
  EXPECT_FALSE(s.CheckPublish(alarm, 0, true).allowed);
  EXPECT_TRUE(s.CheckPublish("meters/zurich/m-00000001/reading", 2, true).allowed);
}

TEST(Session, SubscribeNeedsCoverageNotOverlap) {
  auto p = MustLoad(kMeterPolicy);
  X509Ptr cert = Meter("s-001");
  Session s = Resolve(p, cert.get(), "s-001");
  EXPECT_TRUE(s.CheckSubscribe("config/s-001").allowed);
  // config/s-001 does not grant config/# or config/+.
  EXPECT_FALSE(s.CheckSubscribe("config/#").allowed);
  EXPECT_FALSE(s.CheckSubscribe("config/+").allowed);
  EXPECT_FALSE(s.CheckSubscribe("#").allowed);
}

TEST(Session, SharedSubscriptionIsCheckedAsItsFilter) {
  auto p = MustLoad(kMeterPolicy);
  X509Ptr cert = Meter("s-001");
  Session s = Resolve(p, cert.get(), "s-001");
  EXPECT_TRUE(s.CheckSubscribe("$share/grp/config/s-001").allowed);
  EXPECT_FALSE(s.CheckSubscribe("$share/grp/config/#").allowed);
  EXPECT_EQ(s.CheckSubscribe("$share/grp").source, Decision::Source::kInvalid);
  EXPECT_EQ(s.CheckSubscribe("$share//config/s-001").source, Decision::Source::kInvalid);
}

// ReadsCovered lets the plugin skip CheckRead for the deliveries of a
// connection whose every subscription passed it: it must never say so of a
// filter one of whose topics CheckRead denies.
TEST(SessionReadsCovered, OnlyWhatNoDenyEntryCanReach) {
  auto p = MustLoad(kMeterPolicy);
  X509Ptr cert = Meter("s-001");
  Session s = Resolve(p, cert.get(), "s-001");
  EXPECT_TRUE(s.ReadsCovered("config/s-001"));
  EXPECT_TRUE(s.ReadsCovered("meters/broadcast/tariff"));
  EXPECT_TRUE(s.ReadsCovered("meters/zurich/s-001/cmd/#"));
  EXPECT_TRUE(s.ReadsCovered("$share/grp/config/s-001"));
  // Allowed to subscribe, but deny no-sys subscribe[1] takes some of it.
  EXPECT_TRUE(s.CheckSubscribe("meters/broadcast/#").allowed);
  EXPECT_FALSE(s.ReadsCovered("meters/broadcast/#"));
  EXPECT_FALSE(s.ReadsCovered("meters/broadcast/+/key"));  // meters/broadcast/secret/key
  EXPECT_TRUE(s.ReadsCovered("meters/broadcast/tariff/+"));
  // Not allowed, invalid, or malformed share.
  EXPECT_FALSE(s.ReadsCovered("config/#"));
  EXPECT_FALSE(s.ReadsCovered("config/s-001#"));
  EXPECT_FALSE(s.ReadsCovered("$share//config/s-001"));
  // A refused connect covers nothing.
  Session refused = Resolve(p, cert.get(), "someone-else");
  ASSERT_FALSE(refused.connect_allowed());
  EXPECT_FALSE(refused.ReadsCovered("config/s-001"));
}

TEST(SessionReadsCovered, NeverCoversATopicCheckReadDenies) {
  std::mt19937 rng(20261128);
  const char* kLevels[] = {"", "a", "b", "ab"};
  auto random_filter = [&] {
    std::string f = testing::RandomFilter(rng, 3, [&](std::mt19937& r) { return std::string(kLevels[r() % 4]); });
    return f.empty() ? std::string("a") : f;  // "" is no filter
  };
  // Every topic of 1 to 4 levels over those levels (and a '$' one).
  std::vector<std::string> topics, frontier = {""};
  for (int depth = 1; depth <= 4; ++depth) {
    std::vector<std::string> next;
    for (const std::string& t : frontier) {
      for (const char* l : {"", "a", "b", "ab", "c"}) next.push_back(depth == 1 ? std::string(l) : t + "/" + l);
    }
    topics.insert(topics.end(), next.begin(), next.end());
    frontier = std::move(next);
  }
  topics.push_back("$a/b");
  auto list = [&](int n) {
    std::string out = "[";
    for (int i = 0; i < n; ++i) out += std::string(i ? ", " : "") + "\"" + random_filter() + "\"";
    return out + "]";
  };
  X509Ptr cert = Meter("s-001");
  int covered = 0, not_covered = 0;
  for (int round = 0; round < 40; ++round) {
    std::string text = "version = 1\n[[role]]\nname = \"r\"\nmatch.\"subject.OU\" = \"meter\"\nsubscribe = " +
                       list(1 + static_cast<int>(rng() % 3)) + "\n";
    if (rng() % 4 != 0) text += "[[deny]]\nname = \"d\"\nsubscribe = " + list(1 + static_cast<int>(rng() % 2)) + "\n";
    auto p = MustLoad(text);
    ASSERT_NE(p, nullptr) << text;
    Session s = Resolve(p, cert.get(), "s-001");
    ASSERT_TRUE(s.connect_allowed()) << text;
    for (int k = 0; k < 100; ++k) {
      const std::string f = random_filter();
      if (!s.ReadsCovered(f)) {
        ++not_covered;
        continue;
      }
      ++covered;
      ASSERT_TRUE(s.CheckSubscribe(f).allowed) << text << f;
      for (const std::string& t : topics) {
        if (t[0] != '$' && topic::Matches(f, t)) {
          ASSERT_TRUE(s.CheckRead(t).allowed) << text << "filter '" << f << "' topic '" << t << "'";
        }
      }
    }
  }
  EXPECT_GT(covered, 200);
  EXPECT_GT(not_covered, 200);
}

TEST(SessionReadsCovered, SameReadRulesComparesTheSubscribeRulesOnly) {
  auto p = MustLoad(kMeterPolicy);
  X509Ptr a = Meter("s-001"), b = Meter("s-002"), a_geneva = Meter("s-001", "geneva");
  Session sa = Resolve(p, a.get(), "s-001");
  EXPECT_TRUE(sa.SameReadRules(Resolve(p, a.get(), "s-001")));
  // Another policy object with the same text: the same rules.
  EXPECT_TRUE(sa.SameReadRules(Resolve(MustLoad(kMeterPolicy), a.get(), "s-001")));
  EXPECT_FALSE(sa.SameReadRules(Resolve(p, b.get(), "s-002")));        // config/s-002
  EXPECT_FALSE(sa.SameReadRules(Resolve(p, a_geneva.get(), "s-001")));  // meters/geneva/...
  EXPECT_FALSE(sa.SameReadRules(Resolve(p, a.get(), "other")));         // refused
  // Publish rules do not matter.
  std::string more = kMeterPolicy;
  more.replace(more.find("publish = ["), 11, "publish = [\"extra/topic\", ");
  EXPECT_TRUE(sa.SameReadRules(Resolve(MustLoad(more), a.get(), "s-001")));
  std::string fewer = kMeterPolicy;
  fewer.replace(fewer.find(", \"meters/broadcast/secret/#\""), 29, "");
  EXPECT_FALSE(sa.SameReadRules(Resolve(MustLoad(fewer), a.get(), "s-001")));
}

TEST(Session, InvalidSubscribeFilterIsDenied) {
  auto p = MustLoad(kMeterPolicy);
  X509Ptr cert = Meter("s-001");
  Session s = Resolve(p, cert.get(), "s-001");
  Decision d = s.CheckSubscribe("config/s-001#");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.source, Decision::Source::kInvalid);
}

// The classic wildcard injection: a CN of "+" must not grant config/+.
TEST(SessionSafety, PlusInCnGrantsNothing) {
  auto p = MustLoad(kMeterPolicy);
  X509Ptr cert = Meter("+");
  Session s = Resolve(p, cert.get(), "+");
  ASSERT_TRUE(s.connect_allowed());
  EXPECT_FALSE(s.CheckSubscribe("config/+").allowed);
  EXPECT_FALSE(s.CheckRead("config/anything").allowed);
  EXPECT_FALSE(s.CheckSubscribe("meters/zurich/+/cmd/#").allowed);
  EXPECT_FALSE(s.CheckRead("meters/zurich/m-00000002/cmd/x").allowed);
  EXPECT_FALSE(s.CheckPublish("meters/zurich/x/reading", 0, false).allowed);
  // Every entry naming the CN is void, and says so; the others still work.
  for (const auto& f : s.Filters()) EXPECT_EQ(f.filter.find("+"), std::string_view::npos) << f.filter;
  EXPECT_TRUE(s.CheckRead("meters/broadcast/x").allowed);
  ASSERT_FALSE(s.notes().empty());
  EXPECT_EQ(s.notes()[0],
            "role 'meter' (#0) publish[0] \"meters/${subject.L}/${subject.CN}/reading\" is void for this device: "
            "subject.CN value \"+\" contains '+'");
}

TEST(SessionSafety, HashInCnGrantsNothing) {
  auto p = MustLoad(kMeterPolicy);
  X509Ptr cert = Meter("#");
  Session s = Resolve(p, cert.get(), "#");
  EXPECT_FALSE(s.CheckSubscribe("config/#").allowed);
  EXPECT_FALSE(s.CheckRead("config/x").allowed);
  EXPECT_FALSE(s.CheckSubscribe("meters/zurich/#").allowed);
}

TEST(SessionSafety, SlashInCnCannotAddLevels) {
  auto p = MustLoad(kMeterPolicy);
  X509Ptr cert = Meter("a/#");
  Session s = Resolve(p, cert.get(), "a/#");
  EXPECT_FALSE(s.CheckSubscribe("config/a/#").allowed);
  EXPECT_FALSE(s.CheckRead("config/a/b").allowed);
  X509Ptr cert2 = Meter("m-1/reading");
  Session s2 = Resolve(p, cert2.get(), "m-1/reading");
  // "meters/zurich/m-1/reading/reading" would be a different topic shape.
  EXPECT_FALSE(s2.CheckPublish("meters/zurich/m-1/reading/reading", 0, false).allowed);
  EXPECT_NE(s2.notes()[0].find("contains '/'"), std::string::npos);
}

TEST(SessionSafety, SlashInLocationCannotEscapeTheSite) {
  auto p = MustLoad(kMeterPolicy);
  X509Ptr cert = Meter("m-1", "zurich/m-2");
  Session s = Resolve(p, cert.get(), "m-1");
  EXPECT_FALSE(s.CheckPublish("meters/zurich/m-2/m-1/reading", 0, false).allowed);
  EXPECT_FALSE(s.CheckRead("meters/zurich/m-2/m-1/cmd/x").allowed);
}

TEST(SessionSafety, MissingAttributeVoidsTheEntry) {
  auto p = MustLoad(R"(version = 1
[[role]]
name = "r"
publish = ["site/${subject.L}/x", "open/${cert.serial}"]
)");
  X509Ptr cert = CertBuilder().Subject("CN", "a").Serial("1A").Build();
  Session s = Resolve(p, cert.get(), "a");
  EXPECT_FALSE(s.CheckPublish("site//x", 0, false).allowed);
  EXPECT_FALSE(s.CheckPublish("site/x", 0, false).allowed);
  EXPECT_TRUE(s.CheckPublish("open/1A", 0, false).allowed);
  ASSERT_EQ(s.notes().size(), 1u);
  EXPECT_EQ(s.notes()[0], "role 'r' (#0) publish[0] \"site/${subject.L}/x\" is void for this device: subject.L is missing");
}

TEST(SessionSafety, EmptyValueVoidsTheEntry) {
  auto p = MustLoad("version = 1\n[[role]]\nname = \"r\"\npublish = [\"site/${subject.L}/x\"]\n");
  X509Ptr cert = CertBuilder().Subject("CN", "a").SubjectRaw("L", V_ASN1_UTF8STRING, "").Build();
  Session s = Resolve(p, cert.get(), "a");
  EXPECT_FALSE(s.CheckPublish("site//x", 0, false).allowed);
  ASSERT_EQ(s.notes().size(), 1u);
  EXPECT_NE(s.notes()[0].find("is empty"), std::string::npos) << s.notes()[0];
}

TEST(SessionSafety, UnresolvableDenyDeniesTheWholeAction) {
  auto p = MustLoad(R"(version = 1
[[role]]
name = "r"
publish = ["devices/#"]
subscribe = ["devices/#"]
[[deny]]
name = "own-admin"
publish = ["devices/${subject.CN}/admin"]
)");
  X509Ptr ok = CertBuilder().Subject("CN", "d1").Build();
  Session s = Resolve(p, ok.get(), "d1");
  EXPECT_FALSE(s.CheckPublish("devices/d1/admin", 0, false).allowed);
  EXPECT_TRUE(s.CheckPublish("devices/d1/data", 0, false).allowed);
  // A CN with '/' would void the deny; instead every publish is denied.
  X509Ptr evil = CertBuilder().Subject("CN", "x/y").Build();
  Session e = Resolve(p, evil.get(), "x/y");
  Decision d = e.CheckPublish("devices/x/y/admin", 0, false);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.source, Decision::Source::kDenyAll);
  EXPECT_FALSE(e.CheckPublish("devices/d1/data", 0, false).allowed);
  EXPECT_EQ(e.Explain(d, Action::kPublish),
            "deny 'own-admin' (#0) could not be resolved for this device, so every publish is denied");
  // Subscribe is unaffected by a publish deny.
  EXPECT_TRUE(e.CheckRead("devices/d1/data").allowed);
  // A device without a CN at all: same.
  X509Ptr none = CertBuilder().Subject("O", "x").Build();
  EXPECT_FALSE(Resolve(p, none.get(), "").CheckPublish("devices/d1/data", 0, false).allowed);
}

TEST(SessionMultiValue, TemplateExpandsOncePerValue) {
  auto p = MustLoad("version = 1\n[[role]]\nname = \"r\"\nsubscribe = [\"team/${subject.OU}/#\"]\n");
  X509Ptr cert = CertBuilder().Subject("CN", "a").Subject("OU", "red").Subject("OU", "blue").Build();
  Session s = Resolve(p, cert.get(), "a");
  EXPECT_TRUE(s.CheckRead("team/red/x").allowed);
  EXPECT_TRUE(s.CheckRead("team/blue/x").allowed);
  EXPECT_FALSE(s.CheckRead("team/red,blue/x").allowed);
  EXPECT_FALSE(s.CheckRead("team/green/x").allowed);
}

TEST(SessionMultiValue, CombinationsAcrossAttributes) {
  auto p = MustLoad("version = 1\n[[role]]\nname = \"r\"\npublish = [\"${subject.OU}/${subject.L}\"]\n");
  X509Ptr cert = CertBuilder().Subject("OU", "a").Subject("OU", "b").Subject("L", "x").Subject("L", "y").Build();
  Session s = Resolve(p, cert.get(), "c");
  for (const char* t : {"a/x", "a/y", "b/x", "b/y"}) EXPECT_TRUE(s.CheckPublish(t, 0, false).allowed) << t;
  EXPECT_FALSE(s.CheckPublish("a/b", 0, false).allowed);
}

TEST(SessionMultiValue, MoreThanTheCapVoidsTheEntryInsteadOfTruncating) {
  auto p = MustLoad("version = 1\n[[role]]\nname = \"r\"\npublish = [\"u/${san.uri}\"]\nsubscribe = [\"all\"]\n");
  CertBuilder b;
  b.Subject("CN", "a");
  for (int i = 0; i < 17; ++i) b.SanUri("urn:dev:" + std::to_string(i));
  X509Ptr cert = b.Build();
  Session s = Resolve(p, cert.get(), "a");
  EXPECT_FALSE(s.CheckPublish("u/urn:dev:0", 0, false).allowed);  // the first is not silently kept
  EXPECT_FALSE(s.CheckPublish("u/urn:dev:16", 0, false).allowed);
  EXPECT_TRUE(s.CheckRead("all").allowed);
  ASSERT_EQ(s.notes().size(), 1u);
  EXPECT_EQ(s.notes()[0],
            "role 'r' (#0) publish[0] \"u/${san.uri}\" is void for this device: its values give more than 16 "
            "combinations (the limit; values are never truncated)");
  // 16 values are fine.
  CertBuilder b16;
  for (int i = 0; i < 16; ++i) b16.SanUri("urn:dev:" + std::to_string(i));
  X509Ptr c16 = b16.Build();
  Session s16 = Resolve(p, c16.get(), "a");
  EXPECT_TRUE(s16.CheckPublish("u/urn:dev:0", 0, false).allowed);
  EXPECT_TRUE(s16.CheckPublish("u/urn:dev:15", 0, false).allowed);
}

TEST(SessionMultiValue, OneUnsafeValueVoidsTheWholeEntry) {
  auto p = MustLoad("version = 1\n[[role]]\nname = \"r\"\nsubscribe = [\"team/${subject.OU}/#\"]\n");
  X509Ptr cert = CertBuilder().Subject("OU", "red").Subject("OU", "#").Build();
  Session s = Resolve(p, cert.get(), "a");
  EXPECT_FALSE(s.CheckRead("team/red/x").allowed);
  EXPECT_FALSE(s.CheckSubscribe("team/#").allowed);
}

TEST(SessionClientId, MustEqualTheBinding) {
  auto p = MustLoad(kMeterPolicy);
  X509Ptr cert = Meter("m-00000001");
  EXPECT_TRUE(Resolve(p, cert.get(), "m-00000001").connect_allowed());
  Session other = Resolve(p, cert.get(), "m-00000002");
  EXPECT_EQ(other.connect_result(), ConnectResult::kClientIdMismatch);
  EXPECT_FALSE(other.CheckPublish("meters/zurich/m-00000001/reading", 0, false).allowed);
  EXPECT_EQ(other.CheckPublish("meters/zurich/m-00000001/reading", 0, false).source,
            Decision::Source::kNotConnected);
  EXPECT_EQ(Resolve(p, cert.get(), "").connect_result(), ConnectResult::kClientIdMismatch);
}

TEST(SessionClientId, TwoCnsAreAnAmbiguousBindingNotTheFirst) {
  auto p = MustLoad(kMeterPolicy);
  X509Ptr cert = CertBuilder()
                     .Subject("O", "Acme Utilities")
                     .Subject("OU", "meter")
                     .Subject("L", "zurich")
                     .Subject("CN", "m-1")
                     .Subject("CN", "m-2")
                     .Build();
  for (const char* id : {"m-1", "m-2", "m-1,m-2"}) {
    Session s = Resolve(p, cert.get(), id);
    EXPECT_EQ(s.connect_result(), ConnectResult::kClientIdAmbiguous) << id;
  }
  std::string bound, why;
  EXPECT_FALSE(Session::BoundClientId(*p, IdentityOf(cert.get()), &bound, &why));
  EXPECT_EQ(why, "connect.client_id \"${subject.CN}\" is ambiguous: it resolves to 2 values");
}

TEST(SessionClientId, MissingAttributeIsRefused) {
  auto p = MustLoad("version = 1\n[connect]\nclient_id = \"dev-${subject.serialNumber}\"\n[[role]]\nname = \"r\"\n");
  X509Ptr none = CertBuilder().Subject("CN", "a").Build();
  EXPECT_EQ(Resolve(p, none.get(), "dev-").connect_result(), ConnectResult::kClientIdUnresolvable);
  X509Ptr with = CertBuilder().Subject("CN", "a").Subject("serialNumber", "123").Build();
  EXPECT_TRUE(Resolve(p, with.get(), "dev-123").connect_allowed());
}

TEST(SessionConnect, NoRoleIsRefusedUnlessRequireRoleIsFalse) {
  auto p = MustLoad(kMeterPolicy);
  X509Ptr stranger = CertBuilder().Subject("O", "Other").Subject("CN", "x").Build();
  Session s = Resolve(p, stranger.get(), "x");
  EXPECT_EQ(s.connect_result(), ConnectResult::kNoRole);
  EXPECT_EQ(s.ExplainConnect(), "refused: no role matches this certificate (connect.require_role)");
  auto open = MustLoad("version = 1\n[connect]\nrequire_role = false\n[[role]]\nname = \"r\"\nmatch.\"subject.O\" = \"A\"\n");
  Session o = Resolve(open, stranger.get(), "x");
  EXPECT_TRUE(o.connect_allowed());
  EXPECT_FALSE(o.CheckPublish("x", 0, false).allowed);  // connected, but may do nothing
}

TEST(SessionConnect, DenyEntryCanRefuseTheConnect) {
  auto p = MustLoad(R"(version = 1
[[role]]
name = "r"
[[deny]]
name = "recalled-batch"
match."subject.serialNumber" = { prefix = "B17-" }
connect = true
)");
  X509Ptr bad = CertBuilder().Subject("CN", "a").Subject("serialNumber", "B17-0042").Build();
  X509Ptr good = CertBuilder().Subject("CN", "a").Subject("serialNumber", "B18-0001").Build();
  Session s = Resolve(p, bad.get(), "a");
  EXPECT_EQ(s.connect_result(), ConnectResult::kDeniedByDenyEntry);
  EXPECT_EQ(s.ExplainConnect(), "refused by deny 'recalled-batch' (#0) (connect = true)");
  EXPECT_TRUE(Resolve(p, good.get(), "a").connect_allowed());
}

TEST(SessionConnect, MalformedCertificateIsRefusedByDefault) {
  X509Ptr cert = CertBuilder()
                     .Subject("O", "Acme Utilities")
                     .SubjectRaw("CN", V_ASN1_UTF8STRING, std::string("m-1\0evil", 8))
                     .Build();
  auto strict = MustLoad("version = 1\n[[role]]\nname = \"r\"\nmatch.\"subject.O\" = \"Acme Utilities\"\n");
  Session s = Resolve(strict, cert.get(), "m-1");
  EXPECT_EQ(s.connect_result(), ConnectResult::kMalformedCertificate);
  auto lax = MustLoad(
      "version = 1\n[connect]\nallow_malformed = true\n[[role]]\nname = \"r\"\nmatch.\"subject.O\" = \"Acme Utilities\"\n"
      "publish = [\"d/${subject.CN}\"]\n");
  Session l = Resolve(lax, cert.get(), "m-1");
  EXPECT_TRUE(l.connect_allowed());
  // The NUL-carrying CN is not in the identity, so it cannot be substituted.
  EXPECT_FALSE(l.CheckPublish("d/m-1", 0, false).allowed);
}

TEST(SessionMatch, NulValueNeverMatchesATruncatedPattern) {
  auto p = MustLoad("version = 1\n[connect]\nallow_malformed = true\n[[role]]\nname = \"r\"\n"
                    "match.\"subject.CN\" = \"admin\"\nsubscribe = [\"#\"]\n");
  X509Ptr cert = CertBuilder().SubjectRaw("CN", V_ASN1_UTF8STRING, std::string("admin\0.evil", 11)).Build();
  Session s = Resolve(p, cert.get(), "x");
  EXPECT_TRUE(s.roles().empty());
  EXPECT_FALSE(s.CheckRead("anything").allowed);
}

TEST(SessionMatch, AnyValueOfAMultiValuedAttributeMatches) {
  auto p = MustLoad("version = 1\n[[role]]\nname = \"r\"\nmatch.\"subject.OU\" = \"ops\"\nsubscribe = [\"ops/#\"]\n");
  X509Ptr cert = CertBuilder().Subject("OU", "dev").Subject("OU", "ops").Build();
  EXPECT_TRUE(Resolve(p, cert.get(), "x").CheckRead("ops/a").allowed);
}

TEST(SessionMatch, ClientIdAttribute) {
  auto p = MustLoad("version = 1\n[[role]]\nname = \"r\"\nmatch.\"mqtt.client_id\" = { prefix = \"gw-\" }\n"
                    "publish = [\"gw/${mqtt.client_id}/up\"]\n");
  X509Ptr cert = CertBuilder().Subject("CN", "a").Build();
  Session s = Resolve(p, cert.get(), "gw-7");
  EXPECT_TRUE(s.CheckPublish("gw/gw-7/up", 0, false).allowed);
  EXPECT_TRUE(Resolve(p, cert.get(), "other").roles().empty());
  // A client id with a wildcard gains nothing.
  EXPECT_FALSE(Resolve(p, cert.get(), "gw-+").CheckPublish("gw/gw-x/up", 0, false).allowed);
}

// Until 30 days before notAfter "normal"; from 7 days before, "renew-only".
const char* kExpiryPolicy = R"(version = 1
[[role]]
name = "normal"
not_expiring_within = "30d"
publish = ["data/${subject.CN}"]
[[role]]
name = "renew-only"
expires_within = "7d"
publish = ["$enroll/${subject.CN}/simplereenroll"]
)";

TEST(SessionExpiry, ExpiresWithinSelectsARestrictedRole) {
  auto p = MustLoad(kExpiryPolicy);
  X509Ptr fresh = CertBuilder().Subject("CN", "a").Validity(kNow - kDay, kNow + 90 * kDay).Build();
  X509Ptr old = CertBuilder().Subject("CN", "a").Validity(kNow - kDay, kNow + 5 * kDay).Build();
  Session f = Resolve(p, fresh.get(), "a");
  Session o = Resolve(p, old.get(), "a");
  EXPECT_TRUE(f.CheckPublish("data/a", 0, false).allowed);
  EXPECT_FALSE(f.CheckPublish("$enroll/a/simplereenroll", 0, false).allowed);
  EXPECT_FALSE(o.CheckPublish("data/a", 0, false).allowed);
  EXPECT_TRUE(o.CheckPublish("$enroll/a/simplereenroll", 0, false).allowed);
  ASSERT_EQ(o.roles().size(), 1u);
  EXPECT_EQ(o.roles()[0], 1u);
}

TEST(SessionExpiry, ValidUntilIsTheFirstTimeAnEvaluatedTimeConditionFlips) {
  auto p = MustLoad(std::string(kExpiryPolicy) + R"(
[[role]]
name = "other-fleet"
match."subject.O" = "Other"
expires_within = "1d"
publish = ["other/#"]
)");
  const int64_t not_after = kNow + 90 * kDay;
  X509Ptr cert = CertBuilder().Subject("CN", "a").Validity(kNow - kDay, not_after).Build();
  Identity id = IdentityOf(cert.get());
  // "normal" stops holding 30 days before notAfter, "renew-only" starts 7
  // days before; "other-fleet" does not match the subject, so its time
  // condition is not the device's.
  Session s = Session::Resolve(p, id, "a", kNow);
  EXPECT_EQ(s.valid_until(), not_after - 30 * kDay);
  // Resolving again just before gives the same answer, at valid_until a
  // different one (which is why a broker must not reuse it from then on).
  Session before = Session::Resolve(p, id, "a", s.valid_until() - 1);
  Session at = Session::Resolve(p, id, "a", s.valid_until());
  EXPECT_TRUE(before.CheckPublish("data/a", 0, false).allowed);
  EXPECT_FALSE(at.CheckPublish("data/a", 0, false).allowed);
  EXPECT_EQ(at.valid_until(), not_after - 7 * kDay);
  Session last = Session::Resolve(p, id, "a", not_after - 7 * kDay);
  EXPECT_TRUE(last.CheckPublish("$enroll/a/simplereenroll", 0, false).allowed);
  EXPECT_EQ(last.valid_until(), INT64_MAX);  // both conditions have flipped for good

  // Nothing time-dependent: valid forever.
  EXPECT_EQ(Resolve(MustLoad(kMeterPolicy), Meter("m-1").get(), "m-1").valid_until(), INT64_MAX);
}

class SessionCa : public ::testing::Test {
 protected:
  void SetUp() override {
    meters_ = TestCa::Create("Acme Meters Issuing CA");
    other_ = TestCa::Create("Other Tenant CA");
    dir_.Write("meters-ca.pem", testing::ToPem(meters_.cert.get()));
    policy_ = MustLoad(R"(version = 1
[[role]]
name = "meter"
ca = "meters-ca.pem"
match."issuer.CN" = "Acme Meters Issuing CA"
subscribe = ["meters/#"]
)", dir_.path());
  }
  // Issued by the other CA with the meters CA's DN and key identifier.
  X509Ptr Forged() const {
    const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(meters_.cert.get());
    std::string meters_ski(reinterpret_cast<const char*>(ASN1_STRING_get0_data(ski)),
                           static_cast<size_t>(ASN1_STRING_length(ski)));
    return other_.Issue()
        .Subject("CN", "m-1")
        .IssuerName(X509_get_subject_name(meters_.cert.get()))
        .AuthorityKeyId(meters_ski)
        .Build();
  }
  TempDir dir_;
  TestCa meters_, other_;
  std::shared_ptr<const Policy> policy_;
};

TEST_F(SessionCa, CertificateSignedByTheCaKeyMatches) {
  X509Ptr leaf = meters_.Issue().Subject("CN", "m-1").Build();
  Session s = Resolve(policy_, leaf.get(), "m-1");
  EXPECT_TRUE(s.CheckRead("meters/x").allowed);
}

// Another trusted CA writes the meters CA's DN and key identifier into its
// certificate: the DN text and the AKI agree, but the signature does not.
TEST_F(SessionCa, ForgedIssuerNameAndKeyIdDoNotMatch) {
  X509Ptr forged = Forged();
  Identity id = IdentityOf(forged.get());
  ASSERT_EQ((*id.Values("issuer.CN"))[0], "Acme Meters Issuing CA");
  Session s = Session::Resolve(policy_, id, "m-1", kNow);
  EXPECT_TRUE(s.roles().empty());
  EXPECT_FALSE(s.CheckRead("meters/x").allowed);
}

TEST_F(SessionCa, IssuedByAnotherCaDoesNotMatch) {
  X509Ptr leaf = other_.Issue().Subject("CN", "m-1").Build();
  EXPECT_TRUE(Resolve(policy_, leaf.get(), "m-1").roles().empty());
}

// The plugin's SignatureCache: a reconnecting device is not verified again,
// and the cache only ever remembers "yes" for these exact certificate bytes
// and this CA key, so it cannot make a forged or foreign certificate match.
TEST_F(SessionCa, SignatureCacheRemembersOnlyVerifiedCertificates) {
  SignatureCache cache;
  X509Ptr leaf = meters_.Issue().Subject("CN", "m-1").Build();
  Identity id = IdentityOf(leaf.get());
  EXPECT_TRUE(Session::Resolve(policy_, id, "m-1", kNow, &cache).CheckRead("meters/x").allowed);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_TRUE(Session::Resolve(policy_, id, "m-1", kNow, &cache).CheckRead("meters/x").allowed);  // a hit
  EXPECT_EQ(cache.size(), 1u);

  X509Ptr forged = Forged();
  EXPECT_TRUE(Session::Resolve(policy_, IdentityOf(forged.get()), "m-1", kNow, &cache).roles().empty());
  EXPECT_TRUE(Session::Resolve(policy_, IdentityOf(forged.get()), "m-1", kNow, &cache).roles().empty());
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.verifications(), 3u);  // the leaf once, the forgery each time ("no" is not kept)
}

// What the plugin writes to its state file: the keys of verifications done
// (journaled), not the ones read back from it (restored), and a restored key
// answers like a verification done in this process.
TEST_F(SessionCa, SignatureCacheJournalsOnlyNewVerifications) {
  X509Ptr leaf = meters_.Issue().Subject("CN", "m-1").Build();
  X509Ptr other = meters_.Issue().Subject("CN", "m-2").Build();
  SignatureCache first;
  first.EnableJournal();
  EXPECT_TRUE(Session::Resolve(policy_, IdentityOf(leaf.get()), "m-1", kNow, &first).CheckRead("meters/x").allowed);
  EXPECT_TRUE(Session::Resolve(policy_, IdentityOf(leaf.get()), "m-1", kNow, &first).CheckRead("meters/x").allowed);
  EXPECT_TRUE(Session::Resolve(policy_, IdentityOf(Forged().get()), "m-1", kNow, &first).roles().empty());
  const std::vector<SignatureCache::Key> added = first.TakeAdded();
  ASSERT_EQ(added.size(), 1u);  // the leaf, once; never the forgery
  EXPECT_TRUE(first.TakeAdded().empty());

  SignatureCache restarted;  // a new process, reading the state file
  restarted.EnableJournal();
  restarted.Restore(added[0]);
  EXPECT_TRUE(Session::Resolve(policy_, IdentityOf(leaf.get()), "m-1", kNow, &restarted).CheckRead("meters/x").allowed);
  EXPECT_EQ(restarted.verifications(), 0u);
  EXPECT_TRUE(restarted.TakeAdded().empty());
  EXPECT_TRUE(Session::Resolve(policy_, IdentityOf(other.get()), "m-2", kNow, &restarted).CheckRead("meters/x").allowed);
  EXPECT_EQ(restarted.verifications(), 1u);
  const std::vector<SignatureCache::Key> more = restarted.TakeAdded();
  ASSERT_EQ(more.size(), 1u);
  EXPECT_NE(more[0], added[0]);
}

// With the CA's key prepared, as the plugin does (SignatureCache::
// PrepareVerifiers, policy/p256_verifier.h), the answers are the same: yes
// for the CA's certificate, no for the forgery and the other CA's.
TEST_F(SessionCa, PreparedVerifiersGiveTheSameAnswers) {
  SignatureCache cache;
  const TrustAnchor& ca = policy_->cas[0];
  const std::vector<SignatureCache::CaKey> keys = {{ca.key_sha256, X509_get0_pubkey(ca.cert.get())}};
  ASSERT_EQ(cache.PrepareVerifiers(keys), 1u);
  ASSERT_NE(cache.VerifierFor(ca.key_sha256), nullptr);
  for (int i = 0; i < 20; ++i) {
    X509Ptr leaf = meters_.Issue().Subject("CN", "m-" + std::to_string(i)).Build();
    EXPECT_TRUE(Session::Resolve(policy_, IdentityOf(leaf.get()), "m", kNow, &cache).CheckRead("meters/x").allowed);
  }
  X509Ptr forged = Forged();
  EXPECT_TRUE(Session::Resolve(policy_, IdentityOf(forged.get()), "m-1", kNow, &cache).roles().empty());
  X509Ptr foreign = other_.Issue().Subject("CN", "m-1").Build();
  EXPECT_TRUE(Session::Resolve(policy_, IdentityOf(foreign.get()), "m-1", kNow, &cache).roles().empty());
  EXPECT_EQ(cache.size(), 20u);  // the yeses only

  // A reload naming the same key keeps its verifier; one naming none drops it.
  EXPECT_EQ(cache.PrepareVerifiers(keys), 0u);
  EXPECT_EQ(cache.verifiers(), 1u);
  EXPECT_EQ(cache.PrepareVerifiers({}), 0u);
  EXPECT_EQ(cache.verifiers(), 0u);
  EXPECT_EQ(cache.VerifierFor(ca.key_sha256), nullptr);
}

// Only P-256 keys get one, at most kMaxVerifiers, each key once.
TEST(SignatureCacheVerifiers, OnlyP256KeysAndAtMostTheBound) {
  SignatureCache cache;
  std::vector<certacl::EvpPkeyPtr> p256;
  std::vector<std::string> ids;
  for (size_t i = 0; i < SignatureCache::kMaxVerifiers + 2; ++i) {
    p256.push_back(testing::CachedKey(testing::KeyType::kEcP256, static_cast<int>(i)));
    ids.push_back("key-" + std::to_string(i));
  }
  certacl::EvpPkeyPtr p384 = testing::CachedKey(testing::KeyType::kEcP384);
  std::vector<SignatureCache::CaKey> keys = {{"p384", p384.get()}, {ids[0], p256[0].get()}, {ids[0], p256[0].get()}};
  for (size_t i = 1; i < p256.size(); ++i) keys.push_back({ids[i], p256[i].get()});
  EXPECT_EQ(cache.PrepareVerifiers(keys), SignatureCache::kMaxVerifiers);
  EXPECT_EQ(cache.verifiers(), SignatureCache::kMaxVerifiers);
  EXPECT_EQ(cache.VerifierFor("p384"), nullptr);
  EXPECT_NE(cache.VerifierFor(ids[0]), nullptr);
  EXPECT_NE(cache.VerifierFor(ids[SignatureCache::kMaxVerifiers - 1]), nullptr);
  EXPECT_EQ(cache.VerifierFor(ids[SignatureCache::kMaxVerifiers]), nullptr);
}

// The plugin reads a certificate with the computed attributes its policy
// names and no others (Policy::computed).
TEST_F(SessionCa, ACaCheckReadsTheCertificateDigestItIsCachedBy) {
  EXPECT_EQ(policy_->computed, kComputedSha256);
  SignatureCache cache;
  X509Ptr leaf = meters_.Issue().Subject("CN", "m-1").Build();
  for (int i = 0; i < 2; ++i) {
    Session s = Session::Resolve(policy_, Identity::FromCertificate(leaf.get(), policy_->computed), "m-1", kNow, &cache);
    EXPECT_TRUE(s.CheckRead("meters/x").allowed);
  }
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.verifications(), 1u);  // the second connect is a cache hit
}

// A CA named only as a revocation issuer checks no signature in a Session:
// the certificate's digest is not needed.
TEST_F(SessionCa, ARevocationIssuerAloneNeedsNoDigest) {
  auto p = MustLoad("version = 1\n[revocation]\nmode = \"soft-fail\"\nocsp = \"from-certificate\"\n"
                    "issuers = [\"meters-ca.pem\"]\n[[role]]\nname = \"r\"\nsubscribe = [\"x\"]\n",
                    dir_.path());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->cas.size(), 1u);
  EXPECT_EQ(p->computed, 0u);
}

// Everything a Session shows of its decisions, as one string.
std::string Outcome(const Session& s) {
  std::string out = std::string(ConnectResultName(s.connect_result())) + " | " + s.ExplainConnect() +
                    " | enroll " + s.enroll_identity();
  for (uint32_t r : s.roles()) out += " | role " + std::to_string(r);
  for (const Session::FilterView& f : s.Filters()) {
    out += std::string(" | ") + (f.action == Action::kPublish ? "pub " : "sub ") + (f.deny ? "deny " : "allow ") +
           std::string(f.filter) + " #" + std::to_string(f.owner) + "." + std::to_string(f.entry) + " q" +
           std::to_string(f.max_qos) + (f.retain ? " r" : "");
  }
  for (const std::string& n : s.notes()) out += " | note " + n;
  return out;
}

// Differential: for random policies naming computed and other attributes in
// role and deny matches, topic templates, connect.client_id and
// enroll.identity, the identity the plugin reads (only Policy::computed)
// resolves the same Session as the full identity. So does an identity with
// nothing computed: Session::Resolve reads the certificate again rather
// than let a missing value void a deny.
TEST(SessionComputed, WhatThePolicyNamesResolvesLikeTheFullIdentity) {
  std::mt19937 rng(20261128);
  std::vector<X509Ptr> certs;
  certs.push_back(Meter("m-1"));
  certs.push_back(Meter("m-2", "basel"));
  certs.push_back(CertBuilder()
                      .Subject("CN", "m-3")
                      .Subject("L", "zurich")
                      .Serial("0A0B")
                      .Key(testing::CachedKey(testing::KeyType::kEcP384).get())
                      .Validity(kNow - 400 * kDay, kNow + 5 * kDay)
                      .Build());
  std::vector<Identity> full;
  for (const X509Ptr& c : certs) full.push_back(Identity::FromCertificate(c.get()));
  const std::vector<std::string> kNames = {"subject.CN",  "subject.L",       "cert.serial",    "cert.sha256",
                                           "cert.key",    "cert.not_before", "cert.not_after"};
  auto name = [&] { return kNames[rng() % kNames.size()]; };
  // A matcher that holds for one of the certificates, or for none.
  auto matcher = [&](const std::string& attr) -> std::string {
    const std::vector<std::string>* v = full[rng() % full.size()].Values(attr);
    const std::string value = v != nullptr ? v->front() : "none";
    switch (rng() % 4) {
      case 0: return "\"" + value + "\"";
      case 1: return "{ glob = \"" + value.substr(0, value.size() / 2) + "*\" }";
      case 2: return "{ any = [\"" + value + "\", \"other\"] }";
      default: return "\"no-such-value\"";
    }
  };
  auto match = [&](int n) {
    std::string out;
    std::vector<std::string> used;
    for (int i = 0; i < n; ++i) {
      std::string attr = name();
      if (std::find(used.begin(), used.end(), attr) != used.end()) continue;
      used.push_back(attr);
      out += "match.\"" + attr + "\" = " + matcher(attr) + "\n";
    }
    return out;
  };
  auto topic = [&] { return "\"t/${" + name() + "}/" + std::to_string(rng() % 3) + "\""; };
  int allowed = 0, refused = 0, would_differ = 0;
  for (int round = 0; round < 150; ++round) {
    std::string text = "version = 1\n";
    const bool bind = rng() % 3 == 0;
    if (bind) text += "[connect]\nclient_id = \"${" + name() + "}\"\n";
    if (rng() % 4 == 0) text += "[enroll]\nidentity = \"${" + name() + "}\"\n";
    for (int r = 0, roles = 1 + static_cast<int>(rng() % 3); r < roles; ++r) {
      text += "[[role]]\nname = \"r" + std::to_string(r) + "\"\n" + match(static_cast<int>(rng() % 3)) +
              "publish = [" + topic() + "]\nsubscribe = [" + topic() + ", \"all/#\"]\n";
    }
    for (int d = 0, denies = static_cast<int>(rng() % 3); d < denies; ++d) {
      text += "[[deny]]\n" + match(1 + static_cast<int>(rng() % 2));
      text += rng() % 3 == 0 ? "connect = true\n" : "subscribe = [" + topic() + ", \"all/x\"]\npublish = [" + topic() + "]\n";
    }
    auto p = MustLoad(text);
    ASSERT_NE(p, nullptr) << text;
    for (size_t c = 0; c < certs.size(); ++c) {
      std::string client_id = "m-" + std::to_string(c + 1);
      auto bound_of = [&](const Identity& id) {
        std::string b;
        return Session::BoundClientId(*p, id, &b, nullptr) ? b : std::string("-");
      };
      if (bind) {
        const std::string b = bound_of(full[c]);
        EXPECT_EQ(bound_of(Identity::FromCertificate(certs[c].get(), p->computed)), b) << text;
        EXPECT_EQ(bound_of(Identity::FromCertificate(certs[c].get(), 0)), b) << text;
        if (b != "-") client_id = b;
      }
      const std::string expected = Outcome(Session::Resolve(p, full[c], client_id, kNow));
      const Identity narrow = Identity::FromCertificate(certs[c].get(), p->computed);
      ASSERT_EQ(Outcome(Session::Resolve(p, narrow, client_id, kNow)), expected) << text << "cert " << c;
      const Identity none = Identity::FromCertificate(certs[c].get(), 0);
      ASSERT_EQ(Outcome(Session::Resolve(p, none, client_id, kNow)), expected) << text << "cert " << c;
      // The failure this test exists to catch: a policy whose `computed`
      // misses what it names. Simulated on the policy object itself (made
      // non-const by the loader), it must change some outcomes.
      Policy& writable = const_cast<Policy&>(*p);
      const uint32_t named = writable.computed;
      writable.computed = 0;
      if (Outcome(Session::Resolve(p, none, client_id, kNow)) != expected) ++would_differ;
      writable.computed = named;
      (expected.rfind("allowed", 0) == 0 ? allowed : refused)++;
    }
  }
  EXPECT_GT(allowed, 50);
  EXPECT_GT(refused, 50);
  EXPECT_GT(would_differ, 50);
}

TEST(SignatureCache, IsBoundedAndKeyedByBothHashes) {
  SignatureCache cache(2);
  const SignatureCache::Key a = SignatureCache::KeyOf("cert-a", "ca-1");
  const SignatureCache::Key b = SignatureCache::KeyOf("cert-b", "ca-1");
  const SignatureCache::Key c = SignatureCache::KeyOf("cert-a", "ca-2");
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  cache.Insert(a);
  cache.Insert(b);
  EXPECT_TRUE(cache.Contains(a));
  EXPECT_FALSE(cache.Contains(c));
  cache.Insert(c);  // full: emptied, then c
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_TRUE(cache.Contains(c));
  EXPECT_FALSE(cache.Contains(a));
}

// A broker's signature cache keeps its entries in the memory it is given
// (the plugin's own pool), none on the default heap.
TEST(SignatureCache, AllocatesFromTheGivenMemory) {
  struct Counting : std::pmr::memory_resource {
    size_t bytes = 0;
    void* do_allocate(size_t n, size_t align) override {
      bytes += n;
      return std::pmr::new_delete_resource()->allocate(n, align);
    }
    void do_deallocate(void* p, size_t n, size_t align) override {
      bytes -= n;
      std::pmr::new_delete_resource()->deallocate(p, n, align);
    }
    bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override { return this == &o; }
  } counting;
  {
    SignatureCache cache(SignatureCache::kDefaultMaxEntries, &counting);
    for (int i = 0; i < 100; ++i) cache.Insert(SignatureCache::KeyOf("cert-" + std::to_string(i), "ca"));
    EXPECT_EQ(cache.size(), 100u);
    EXPECT_GE(counting.bytes, 100 * sizeof(SignatureCache::Key));
  }
  EXPECT_EQ(counting.bytes, 0u);  // all of it given back
}

TEST(SessionIndex, ThousandsOfRolesResolveThroughTheIndex) {
  std::string text = "version = 1\n";
  for (int i = 0; i < 2000; ++i) {
    text += "[[role]]\nname = \"dev-" + std::to_string(i) + "\"\nmatch.\"subject.CN\" = \"dev-" + std::to_string(i) +
            "\"\nmatch.\"subject.O\" = \"Acme\"\npublish = [\"d/" + std::to_string(i) + "\"]\n";
  }
  text += "[[role]]\nname = \"everyone\"\nmatch.\"subject.CN\" = { prefix = \"dev-\" }\nsubscribe = [\"broadcast\"]\n";
  auto p = MustLoad(text);
  ASSERT_EQ(p->role_index.size(), 1u);
  EXPECT_EQ(p->role_index[0].attribute, "subject.CN");
  EXPECT_EQ(p->unindexed_roles, std::vector<uint32_t>{2000});
  X509Ptr cert = CertBuilder().Subject("O", "Acme").Subject("CN", "dev-1234").Build();
  Session s = Resolve(p, cert.get(), "dev-1234");
  EXPECT_EQ(s.roles(), (std::vector<uint32_t>{1234, 2000}));
  EXPECT_TRUE(s.CheckPublish("d/1234", 0, false).allowed);
  EXPECT_FALSE(s.CheckPublish("d/1235", 0, false).allowed);
  EXPECT_TRUE(s.CheckRead("broadcast").allowed);
  // The indexed condition is not the only one: O must still hold.
  X509Ptr wrong_o = CertBuilder().Subject("O", "Evil").Subject("CN", "dev-1234").Build();
  EXPECT_EQ(Resolve(p, wrong_o.get(), "dev-1234").roles(), (std::vector<uint32_t>{2000}));
}

TEST(SessionMemory, TypicalDeviceSessionIsUnderOneKiB) {
  auto p = MustLoad(kMeterPolicy);
  X509Ptr cert = Meter("m-00000001");
  Session s = Resolve(p, cert.get(), "m-00000001");
  EXPECT_EQ(s.Filters().size(), 8u);  // 2 publish + 3 subscribe + 1 deny publish + 2 deny subscribe
  EXPECT_LT(s.MemoryUsage(), 1024u);
}

// Counts what passes through it, on top of the default resource.
class CountingResource : public std::pmr::memory_resource {
 public:
  size_t allocations = 0, deallocations = 0, live_bytes = 0;

 private:
  void* do_allocate(size_t bytes, size_t align) override {
    ++allocations;
    live_bytes += bytes;
    return std::pmr::new_delete_resource()->allocate(bytes, align);
  }
  void do_deallocate(void* p, size_t bytes, size_t align) override {
    ++deallocations;
    live_bytes -= bytes;
    std::pmr::new_delete_resource()->deallocate(p, bytes, align);
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }
};

// The broker keeps sessions out of its malloc heap through `memory`: the
// session's one long-lived block must come from there, go back there (on
// destruction and when a move-assignment replaces it), and a moved session
// must keep working from it.
TEST(Session, LongLivedBlockComesFromTheGivenResource) {
  auto p = MustLoad(kMeterPolicy);
  X509Ptr cert = Meter("m-00000001");
  CountingResource memory;
  {
    Session s = Session::Resolve(p, IdentityOf(cert.get()), "m-00000001", kNow, nullptr, &memory);
    ASSERT_TRUE(s.connect_allowed()) << s.ExplainConnect();
    EXPECT_EQ(memory.allocations, 1u);
    EXPECT_EQ(memory.deallocations, 0u);
    EXPECT_EQ(memory.live_bytes + sizeof(Session), s.MemoryUsage());
    Session moved = std::move(s);
    EXPECT_TRUE(moved.CheckPublish("meters/zurich/m-00000001/reading", 0, false).allowed);
    EXPECT_FALSE(moved.CheckPublish("meters/zurich/m-00000002/reading", 0, false).allowed);
    moved = Session::Resolve(p, IdentityOf(cert.get()), "m-00000001", kNow, nullptr, &memory);
    EXPECT_EQ(memory.allocations, 2u);
    EXPECT_EQ(memory.deallocations, 1u);  // the replaced block
    EXPECT_TRUE(moved.CheckRead("meters/zurich/m-00000001/cmd/reboot").allowed);
  }
  EXPECT_EQ(memory.deallocations, 2u);
  EXPECT_EQ(memory.live_bytes, 0u);
  // Without a resource: the default one, and nothing through this one.
  Session plain = Resolve(p, cert.get(), "m-00000001");
  EXPECT_TRUE(plain.CheckPublish("meters/zurich/m-00000001/reading", 0, false).allowed);
  EXPECT_EQ(memory.allocations, 2u);
}

}  // namespace
}  // namespace certacl
