// Self-tests of the integration harness (Broker, Pki, Client) against a
// plain mosquitto without the plugin: if these fail, a plugin test failure
// says nothing about the plugin.
#include <gtest/gtest.h>

#include <chrono>

#include "tests/integration/broker.h"
#include "tests/integration/client.h"
#include "tests/integration/pki.h"

namespace certacl::integration {
namespace {

class HarnessTest : public ::testing::Test {
 protected:
  HarnessTest() : pki_(dir_.path()) {}

  void TearDown() override {
    if (HasFailure()) {
      dir_.Keep();
      if (broker_) std::fprintf(stderr, "---- broker log ----\n%s\n", broker_->Log().c_str());
    }
  }

  Broker& StartBroker(bool persistence = false, size_t listeners = 1) {
    BrokerOptions o;
    o.dir = dir_.path();
    o.allow_anonymous = true;  // no plugin: the certificate alone lets a client in
    o.persistence = persistence;
    for (size_t i = 0; i < listeners; ++i) {
      o.listeners.push_back({.port = 0,
                             .cafile = pki_.ca_bundle(),
                             .certfile = pki_.server().cert,
                             .keyfile = pki_.server().key,
                             .require_certificate = true,
                             .tls_version = "tlsv1.2",
                             .plugin = {}});
    }
    broker_ = std::make_unique<Broker>(o);
    EXPECT_TRUE(broker_->Start()) << broker_->Log();
    return *broker_;
  }

  ClientOptions Options(const std::string& id, const CertFiles& f, Mqtt v = Mqtt::kV5, size_t listener = 0) {
    ClientOptions o;
    o.id = id;
    o.port = broker_->port(listener);
    o.cafile = pki_.ca_bundle();
    o.certfile = f.cert;
    o.keyfile = f.key;
    o.version = v;
    return o;
  }

  TempDir dir_;
  Pki pki_;
  std::unique_ptr<Broker> broker_;
};

TEST_F(HarnessTest, PublishIsDeliveredWithExactCodesInBothProtocolVersions) {
  StartBroker();
  for (Mqtt v : {Mqtt::kV311, Mqtt::kV5}) {
    Client sub(Options("sub", pki_.Observer(), v));
    Client pub(Options("pub", pki_.Meter("m-00000001"), v));
    ASSERT_EQ(sub.Connect(), 0) << sub.last_error();
    ASSERT_EQ(pub.Connect(), 0) << pub.last_error();
    EXPECT_EQ(sub.Subscribe(std::vector<std::string>{"a/#", "b/+"}, 1), (std::vector<int>{1, 1}));
    EXPECT_EQ(sub.Subscribe("c", 0), 0);
    EXPECT_EQ(pub.Publish("a/x", "one", 1), 0);
    EXPECT_EQ(pub.Publish("b/y", "two", 0), 0);
    ASSERT_TRUE(sub.WaitForMessages(2)) << sub.MessageCount();
    std::vector<Message> got = sub.Messages();
    EXPECT_EQ(got[0].topic, "a/x");
    EXPECT_EQ(got[0].payload, "one");
    EXPECT_EQ(got[0].qos, 1);
    EXPECT_EQ(got[1].topic, "b/y");
    EXPECT_TRUE(pub.Disconnect());
    EXPECT_FALSE(pub.connected());
    // A second connection on the same Client object.
    ASSERT_EQ(pub.Connect(), 0) << pub.last_error();
    EXPECT_EQ(pub.Publish("c", "three", 1), 0);
    EXPECT_TRUE(sub.WaitForMessage("c").has_value());
  }
}

TEST_F(HarnessTest, ClientWithoutCertificateOrFromAnotherCaNeverGetsConnack) {
  StartBroker();
  CertFiles none{"", ""};
  for (const std::string& tls : {std::string(""), std::string("tlsv1.2")}) {
    ClientOptions o = Options("nocert", none);
    o.tls_version = tls;
    Client nocert(o);
    EXPECT_EQ(nocert.Connect(), Client::kNoConnack) << tls;
    ClientOptions f = Options("foreign", pki_.ForeignDevice("foreign", {.cn = "m-00000001",
                                                                           .o = "Acme Utilities",
                                                                           .ou = "meter",
                                                                           .l = "zurich",
                                                                           .san_dns = {},
                                                                           .san_uri = {}}));
    f.tls_version = tls;
    Client foreign(f);
    EXPECT_EQ(foreign.Connect(), Client::kNoConnack) << tls;
    EXPECT_FALSE(foreign.connected());
  }
  // And the broker is still fine.
  Client ok(Options("ok", pki_.Meter("m-1")));
  EXPECT_EQ(ok.Connect(), 0) << ok.last_error();
}

TEST_F(HarnessTest, ReloadWaitsForTheBrokerAndClientsStayConnected) {
  Broker& b = StartBroker();
  Client c(Options("c", pki_.Meter("m-1")));
  ASSERT_EQ(c.Connect(), 0);
  ASSERT_TRUE(b.Reload()) << b.Log();
  ASSERT_TRUE(b.Reload()) << b.Log();
  EXPECT_TRUE(b.running());
  EXPECT_TRUE(c.connected());
  EXPECT_EQ(c.Subscribe("x", 1), 1);
}

TEST_F(HarnessTest, BrokerDeathDisconnectsClientsAndStopIsClean) {
  Broker& b = StartBroker();
  Client c(Options("c", pki_.Meter("m-1")));
  ASSERT_EQ(c.Connect(), 0);
  EXPECT_TRUE(b.Stop());
  EXPECT_EQ(b.exit_status(), 0);
  EXPECT_TRUE(c.WaitForDisconnect());
  EXPECT_EQ(c.Publish("x", "y", 1), Client::kNoAnswer);
}

TEST_F(HarnessTest, QueuedMessagesSurviveDisconnectAndRestartOfAPlainBroker) {
  Broker& b = StartBroker(/*persistence=*/true);
  for (Mqtt v : {Mqtt::kV311, Mqtt::kV5}) {
    const std::string id = v == Mqtt::kV5 ? "dev5" : "dev311";
    ClientOptions o = Options(id, pki_.Meter("m-1"), v);
    o.clean_session = false;
    o.session_expiry = v == Mqtt::kV5 ? 3600 : 0;
    {
      Client dev(o);
      ASSERT_EQ(dev.Connect(), 0) << dev.last_error();
      ASSERT_EQ(dev.Subscribe("cmd/" + id, 1), 1);
      ASSERT_TRUE(dev.Disconnect());
    }
    Client sender(Options("sender", pki_.HeadEnd()));
    ASSERT_EQ(sender.Connect(), 0);
    EXPECT_EQ(sender.Publish("cmd/" + id, "queued", 1), 0);
    sender.Disconnect();
    ASSERT_TRUE(b.Restart()) << b.Log();
    Client dev(o);
    ASSERT_EQ(dev.Connect(), 0) << dev.last_error();
    auto m = dev.WaitForMessage("cmd/" + id);
    ASSERT_TRUE(m.has_value()) << b.Log();
    EXPECT_EQ(m->payload, "queued");
  }
}

TEST_F(HarnessTest, TwoListenersWithPerListenerSettings) {
  BrokerOptions o;
  o.dir = dir_.path();
  o.allow_anonymous = true;
  o.per_listener_settings = true;
  for (int i = 0; i < 2; ++i) {
    o.listeners.push_back({.port = 0,
                           .cafile = pki_.ca_bundle(),
                           .certfile = pki_.server().cert,
                           .keyfile = pki_.server().key,
                           .require_certificate = true,
                           .tls_version = "tlsv1.2",
                           .plugin = {}});
  }
  broker_ = std::make_unique<Broker>(o);
  ASSERT_TRUE(broker_->Start()) << broker_->Log();
  EXPECT_NE(broker_->port(0), broker_->port(1));
  Client a(Options("a", pki_.Meter("m-1"), Mqtt::kV5, 0));
  Client b(Options("b", pki_.Meter("m-2"), Mqtt::kV311, 1));
  ASSERT_EQ(a.Connect(), 0);
  ASSERT_EQ(b.Connect(), 0);
  ASSERT_EQ(a.Subscribe("t", 1), 1);
  EXPECT_EQ(b.Publish("t", "x", 1), 0);
  EXPECT_TRUE(a.WaitForMessage("t").has_value());
}

TEST_F(HarnessTest, StartupFailureIsReportedWithTheExitStatus) {
  BrokerOptions o;
  o.dir = dir_.path();
  o.extra_lines = {"no_such_option true"};
  o.listeners.push_back({.port = 0,
                         .cafile = pki_.ca_bundle(),
                         .certfile = pki_.server().cert,
                         .keyfile = pki_.server().key,
                         .require_certificate = true,
                         .tls_version = "tlsv1.2",
                         .plugin = {}});
  Broker b(o);
  EXPECT_NE(b.StartExpectingExit(), 0);
  EXPECT_NE(b.Log().find("no_such_option"), std::string::npos) << b.Log();
  EXPECT_FALSE(b.Start());  // Start() reports the same failure, bounded
}

TEST_F(HarnessTest, RssIsReadable) {
  Broker& b = StartBroker();
  EXPECT_GT(b.RssKb(), 0);
}

}  // namespace
}  // namespace certacl::integration
