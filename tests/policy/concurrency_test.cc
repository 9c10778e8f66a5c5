// A compiled Policy is shared by every connection (and, in the plugin, by
// the broker thread and background workers): resolving and checking from
// several threads at once must give the same answers. Run under TSan by
// `./dev sanitize-thread`.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "policy/session.h"
#include "tests/testing/cert_builder.h"

namespace certacl {
namespace {

TEST(Concurrency, SharedPolicyResolvesAndChecksFromManyThreads) {
  std::vector<Diagnostic> diags;
  auto policy = LoadPolicyString(R"(version = 1
[connect]
client_id = "${subject.CN}"
[[role]]
name = "meter"
match."subject.OU" = "meter"
match."subject.CN" = { regex = "m-[0-9]+" }
match."san.dns" = { glob = "*.acme.example" }
publish = ["meters/${subject.CN}/reading"]
subscribe = ["meters/${subject.CN}/cmd/#", "broadcast/#"]
[[deny]]
subscribe = ["broadcast/secret/#"]
)", "c.toml", "/", &diags);
  ASSERT_NE(policy, nullptr);
  std::vector<X509Ptr> certs;
  for (int i = 0; i < 8; ++i) {
    std::string cn = "m-" + std::to_string(i);
    certs.push_back(testing::CertBuilder().Subject("OU", "meter").Subject("CN", cn).SanDns(cn + ".acme.example").Build());
  }
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 50; ++round) {
        int i = (t + round) % 8;
        std::string cn = "m-" + std::to_string(i);
        Identity id = Identity::FromCertificate(certs[i].get());
        Session s = Session::Resolve(policy, id, cn, 1'800'000'000);
        if (!s.connect_allowed()) ++wrong;
        if (!s.CheckPublish("meters/" + cn + "/reading", 1, false).allowed) ++wrong;
        if (s.CheckPublish("meters/m-99/reading", 1, false).allowed) ++wrong;
        if (!s.CheckRead("broadcast/x").allowed) ++wrong;
        if (s.CheckRead("broadcast/secret/x").allowed) ++wrong;
        if (s.CheckSubscribe("meters/+/cmd/#").allowed) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace certacl
