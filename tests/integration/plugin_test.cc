// Integration tests of mosquitto_certacl.so in a real mosquitto 2.0 broker:
// a PKI generated per test, a policy written per test (modelled on
// examples/policies/smart-meters.toml), libmosquitto clients speaking MQTT
// 3.1.1 and 5. Every test has its own broker, port and directory, and
// asserts exact outcomes: CONNACK / SUBACK / PUBACK codes, and which
// messages arrive where.
//
// "Not delivered" is never proven by waiting and seeing nothing: after the
// denied publishes, an allowed marker is published and awaited. The broker
// decides on (and drops) a PUBLISH when it handles it, handles packets in
// order on one thread, and delivers to one subscriber in order: once the
// marker has arrived, anything published before it would have arrived too.
//
// The plugin path comes from CMake (CERTACL_PLUGIN) or the environment
// (CERTACL_PLUGIN_PATH); without it these tests skip.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "plugin/state_file.h"
#include "policy/identity.h"
#include "tests/integration/broker.h"
#include "tests/integration/client.h"
#include "tests/integration/pki.h"

namespace certacl::integration {
namespace {

using std::chrono::milliseconds;

constexpr int kNotAuthorized = 0x87;      // MQTT 5 CONNACK / SUBACK / PUBACK reason code
constexpr int kNotAuthorizedV311 = 5;     // MQTT 3.1.1 CONNACK return code
constexpr int kSubackFailureV311 = 0x80;  // MQTT 3.1.1 SUBACK failure
// MQTT 5 PUBACK reason: accepted, but nobody is subscribed.
constexpr int kNoMatchingSubscribers = 0x10;

// Modelled on examples/policies/smart-meters.toml. Test-only additions are
// marked: a "lab-meter" role that does not constrain the CN (so that hostile
// CNs get in and must still gain nothing), a privileged observer, and a
// deny-subscribe under meters/broadcast/ for the retained-message test.
constexpr const char* kMetersPolicy = R"(version = 1

[connect]
client_id = "${subject.CN}"
require_role = true
allow_malformed = false

[[role]]
name = "smart-meter"
match."subject.O"  = "Acme Utilities"
match."subject.OU" = { any = ["meter", "meter-3ph"] }
match."subject.CN" = { glob = "m-*" }
match."subject.L"  = { regex = "^[a-z]+(-[a-z]+)*$" }
ca = "pki/issuing-ca.pem"
max_qos = 1
retain = false
publish = [
  "meters/${subject.L}/${subject.CN}/reading",
  { topic = "meters/${subject.L}/${subject.CN}/alarm", max_qos = 2 },
  { topic = "meters/${subject.L}/${subject.CN}/status", retain = true },
]
subscribe = [
  "meters/${subject.L}/${subject.CN}/cmd/#",
  "meters/broadcast/#",
]

[[role]]
name = "lab-meter"                 # test-only: any CN at all
match."subject.O"  = "Acme Utilities"
match."subject.OU" = "lab"
match."subject.L"  = { glob = "*" }
match."subject.CN" = { glob = "*" }
ca = "pki/issuing-ca.pem"
publish   = ["meters/${subject.L}/${subject.CN}/reading"]
subscribe = ["meters/${subject.L}/${subject.CN}/cmd/#"]

[[role]]
name = "head-end"
match."subject.O" = "Acme Utilities"
match."san.dns"   = { glob = "*.headend.acme.example" }
match."issuer.CN" = { prefix = "Acme Devices Issuing CA" }
ca = "pki/issuing-ca.pem"
max_qos = 2
publish = [
  { topic = "meters/+/+/cmd/#", retain = false },
  "meters/broadcast/#",
]
subscribe = ["meters/+/+/reading", "meters/+/+/alarm", "meters/+/+/status"]

[[role]]
name = "observer"                  # test-only: sees everything
match."subject.O"  = "Acme Operations"
match."subject.OU" = "ops"
ca = "pki/issuing-ca.pem"
subscribe = ["#", "$SYS/#", "$enroll/#"]

[[deny]]
name = "no-sys"
match."subject.O" = "Acme Utilities"
publish   = ["$SYS/#"]
subscribe = ["$SYS/#"]

[[deny]]
name = "meters-never-command"
match."subject.OU" = { any = ["meter", "meter-3ph", "lab"] }
publish = ["meters/broadcast/#", "meters/+/+/cmd/#"]

[[deny]]
name = "no-key-material"           # test-only
match."subject.OU" = { any = ["meter", "meter-3ph"] }
subscribe = ["meters/broadcast/keys/#"]

[[deny]]
name = "quarantined-meters"
match."subject.CN" = { any = ["m-00000013", "m-00004711"] }
connect = true
)";

// The bootstrap listener's policy: every device of the issuing CA may only
// talk on $enroll/<CN>/.
constexpr const char* kBootstrapPolicy = R"(version = 1

[connect]
client_id = "${subject.CN}"

[[role]]
name = "bootstrap"
match."issuer.CN" = "Acme Devices Issuing CA"
match."subject.CN" = { glob = "*" }
ca = "pki/issuing-ca.pem"
max_qos = 1
retain = false
publish   = ["$enroll/${subject.CN}/+"]
subscribe = ["$enroll/${subject.CN}/#"]
)";

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  if (at == std::string::npos) {
    std::fprintf(stderr, "test bug: '%s' not in the policy\n", from.c_str());
    std::abort();
  }
  return text.replace(at, from.size(), to);
}

// Topics.
const std::string kM1 = "m-00000001";
const std::string kM2 = "m-00000002";
const std::string kM1Reading = "meters/zurich/m-00000001/reading";
const std::string kM1Alarm = "meters/zurich/m-00000001/alarm";
const std::string kM1Status = "meters/zurich/m-00000001/status";
const std::string kM1Cmd = "meters/zurich/m-00000001/cmd/#";
const std::string kM2Reading = "meters/zurich/m-00000002/reading";
const std::string kM2Cmd = "meters/zurich/m-00000002/cmd/#";
const std::string kSys = "$SYS/broker/certacl/";

std::vector<std::string> Topics(const Client& c) {
  std::vector<std::string> out;
  for (const Message& m : c.Messages()) out.push_back(m.topic);
  return out;
}

std::vector<std::string> TopicsExcept(const Client& c, const std::string& prefix) {
  std::vector<std::string> out;
  for (const Message& m : c.Messages()) {
    if (m.topic.rfind(prefix, 0) != 0) out.push_back(m.topic);
  }
  return out;
}

long long ToNumber(const std::string& s) {
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  return (end == s.c_str()) ? -1 : v;
}

// How a test's broker is set up.
struct BrokerSetup {
  bool per_listener = false;
  bool persistence = false;
  bool state_file = false;
  std::string state_writer;  // plugin_opt_state_writer, if not empty
  bool require_certificate = true;
};

class CertaclTest : public ::testing::Test {
 protected:
  void SetUp() override {
    plugin_ = PluginPath();
    if (plugin_.empty() || access(plugin_.c_str(), R_OK) != 0) {
      GTEST_SKIP() << "mosquitto_certacl.so not built (CERTACL_PLUGIN / CERTACL_PLUGIN_PATH)";
    }
    pki_ = std::make_unique<Pki>(dir_.path());
    observer_cert_ = pki_->Observer();
    headend_cert_ = pki_->HeadEnd();
    m1_cert_ = pki_->Meter(kM1);
    m2_cert_ = pki_->Meter(kM2);
  }

  void TearDown() override {
    // Every broker must shut down cleanly (under ASan this is also where the
    // plugin's leaks are reported).
    if (broker_ && broker_->running()) {
      EXPECT_TRUE(broker_->Stop()) << "broker exit status " << broker_->exit_status();
    }
    if (HasFailure()) {
      dir_.Keep();
      if (broker_) {
        std::string log = broker_->Log();
        if (log.size() > 20000) log = "...\n" + log.substr(log.size() - 20000);
        std::fprintf(stderr, "---- broker log (%s) ----\n%s\n", broker_->log_path().c_str(), log.c_str());
      }
    }
  }

  std::string WritePolicy(const std::string& text, const std::string& name = "policy.toml") {
    return dir_.Write(name, text);
  }

  PluginOptions Plugin(const std::string& policy, const std::string& name, const BrokerSetup& s) {
    PluginOptions p;
    p.path = plugin_;
    p.policy = policy;
    p.sys_interval = 1;
    p.name = name;
    if (s.state_file) p.state_file = dir_.File(name.empty() ? "certacl-sessions" : "certacl-sessions-" + name);
    if (!s.state_writer.empty()) p.extra.emplace_back("state_writer", s.state_writer);
    return p;
  }

  ListenerOptions Listener(const BrokerSetup& s) {
    ListenerOptions l;
    l.cafile = pki_->ca_bundle();
    l.certfile = pki_->server().cert;
    l.keyfile = pki_->server().key;
    l.require_certificate = s.require_certificate;
    return l;
  }

  // One listener, one policy (policy.toml, kMetersPolicy unless written before).
  BrokerOptions Options(const BrokerSetup& s) {
    std::string policy = dir_.File("policy.toml");
    if (access(policy.c_str(), R_OK) != 0) WritePolicy(kMetersPolicy);
    BrokerOptions o;
    o.dir = dir_.path();
    o.per_listener_settings = s.per_listener;
    o.persistence = s.persistence;
    ListenerOptions l = Listener(s);
    if (s.per_listener) {
      l.plugin = Plugin(policy, "", s);
    } else {
      o.plugin = Plugin(policy, "", s);
    }
    o.listeners.push_back(l);
    return o;
  }

  bool StartBroker(const BrokerOptions& o) {
    broker_ = std::make_unique<Broker>(o);
    return broker_->Start();
  }
  bool StartBroker(const BrokerSetup& s) { return StartBroker(Options(s)); }
  Broker& broker() { return *broker_; }

  ClientOptions Opts(const CertFiles& f, const std::string& id, Mqtt v = Mqtt::kV5, size_t listener = 0) {
    ClientOptions o;
    o.id = id;
    o.port = broker_->port(listener);
    o.cafile = pki_->ca_bundle();
    o.certfile = f.cert;
    o.keyfile = f.key;
    o.version = v;
    return o;
  }
  // A persistent session: 3.1.1 clean session false / 5 clean start false
  // with a one-hour session expiry.
  ClientOptions Persistent(const CertFiles& f, const std::string& id, Mqtt v, size_t listener = 0) {
    ClientOptions o = Opts(f, id, v, listener);
    o.clean_session = false;
    o.session_expiry = v == Mqtt::kV5 ? 3600 : 0;
    return o;
  }
  std::unique_ptr<Client> NewClient(const ClientOptions& o) { return std::make_unique<Client>(o); }
  std::unique_ptr<Client> NewClient(const CertFiles& f, const std::string& id, Mqtt v = Mqtt::kV5,
                                    size_t listener = 0) {
    return NewClient(Opts(f, id, v, listener));
  }

  // The privileged observer, connected and subscribed to `filters`.
  std::unique_ptr<Client> Observer(const std::vector<std::string>& filters = {"#"}, size_t listener = 0) {
    auto c = NewClient(observer_cert_, "observer", Mqtt::kV5, listener);
    int rc = c->Connect();
    EXPECT_EQ(rc, 0) << "observer: " << c->last_error();
    if (rc == 0) {
      EXPECT_EQ(c->Subscribe(filters, 1), std::vector<int>(filters.size(), 1)) << "observer subscribe";
    }
    return c;
  }

  // True once `observer` (subscribed to $SYS/broker/certacl/#) has received
  // counter `name` with exactly `want`, within 4 s. With `poke`, it
  // re-subscribes every 250 ms: with per_listener_settings true the
  // counters go out only with some event (there is no TICK).
  static bool SysValue(Client& observer, const std::string& name, long long want, bool poke = false) {
    auto pred = [&](const Message& m) { return m.topic == kSys + name && ToNumber(m.payload) == want; };
    const auto deadline = std::chrono::steady_clock::now() + milliseconds(4000);
    do {
      if (observer.WaitForMessage(pred, poke ? milliseconds(250) : milliseconds(4000))) return true;
      if (poke) observer.Subscribe(kSys + "#", 1);
    } while (std::chrono::steady_clock::now() < deadline);
    return false;
  }
  // The last value of counter `name` that `observer` received (-1: none).
  static long long LatestSys(const Client& observer, const std::string& name) {
    long long v = -1;
    for (const Message& m : observer.Messages()) {
      if (m.topic == kSys + name) v = ToNumber(m.payload);
    }
    return v;
  }

  std::string plugin_;
  TempDir dir_;
  std::unique_ptr<Pki> pki_;
  std::unique_ptr<Broker> broker_;
  CertFiles observer_cert_, headend_cert_, m1_cert_, m2_cert_;
};

#define ASSERT_CONNECTS(client) ASSERT_EQ((client)->Connect(), 0) << (client)->last_error()

// ---------------------------------------------------------------------------
// Core allow/deny checks, run with per_listener_settings false and true.

std::string SettingsName(const ::testing::TestParamInfo<bool>& p) {
  return p.param ? "PerListenerSettings" : "GlobalSettings";
}

class CertaclCoreTest : public CertaclTest, public ::testing::WithParamInterface<bool> {
 protected:
  BrokerSetup Base() const {
    BrokerSetup s;
    s.per_listener = GetParam();
    return s;
  }

  // m1's MQTT 5 session, begun with a clean start (it outlives the
  // connection by an hour) and subscribed to m1's commands, left offline.
  void LeaveM1SessionSubscribedToItsCommands() {
    ClientOptions o = Opts(m1_cert_, kM1, Mqtt::kV5);
    o.session_expiry = 3600;
    auto m1 = NewClient(o);
    ASSERT_CONNECTS(m1);
    ASSERT_EQ(m1->Subscribe(kM1Cmd, 1), 1);
    ASSERT_TRUE(m1->Disconnect());
  }

  // After LeaveM1SessionSubscribedToItsCommands: the head end queues
  // .../cmd/queued for m1, then m1's session is resumed with another of
  // its certificates, in `city`: its CN (the client-id binding holds), O,
  // OU and SAN, another key. Null `*resumed` if something failed.
  void QueueAndResumeM1In(const std::string& city, std::unique_ptr<Client>* headend,
                          std::unique_ptr<Client>* resumed) {
    *headend = NewClient(headend_cert_, "head-end-1");
    ASSERT_CONNECTS(*headend);
    // Checked topic by topic when it is queued (the session is offline),
    // and again when the resumed session is sent it.
    ASSERT_EQ((*headend)->Publish("meters/zurich/m-00000001/cmd/queued", "x", 1), 0);
    const CertFiles other = pki_->Device("m1-" + city, {.cn = kM1,
                                                        .o = "Acme Utilities",
                                                        .ou = "meter",
                                                        .l = city,
                                                        .san_dns = {kM1 + ".meters.acme.example"},
                                                        .san_uri = {}});
    *resumed = NewClient(Persistent(other, kM1, Mqtt::kV5));
    ASSERT_CONNECTS(*resumed);
  }
};

INSTANTIATE_TEST_SUITE_P(Settings, CertaclCoreTest, ::testing::Bool(), SettingsName);

TEST_P(CertaclCoreTest, AllowedPublishIsDeliveredToAllowedSubscriber) {
  ASSERT_TRUE(StartBroker(Base())) << broker().Log();
  auto observer = Observer();
  auto headend = NewClient(headend_cert_, "head-end-1");
  auto m1 = NewClient(m1_cert_, kM1, Mqtt::kV5);
  auto m2 = NewClient(m2_cert_, kM2, Mqtt::kV311);
  ASSERT_CONNECTS(headend);
  ASSERT_CONNECTS(m1);
  ASSERT_CONNECTS(m2);
  EXPECT_EQ(headend->Subscribe(std::vector<std::string>{"meters/+/+/reading", "meters/+/+/alarm"}, 1),
            (std::vector<int>{1, 1}));
  EXPECT_EQ(m1->Subscribe(kM1Cmd, 1), 1);
  EXPECT_EQ(m2->Subscribe(std::vector<std::string>{kM2Cmd, "meters/broadcast/#"}, 1), (std::vector<int>{1, 1}));

  // Meter -> head-end (MQTT 5 and 3.1.1 publishers).
  EXPECT_EQ(m1->Publish(kM1Reading, "1.5 kWh", 1), 0);
  EXPECT_EQ(m2->Publish(kM2Reading, "2.5 kWh", 1), 0);
  EXPECT_EQ(m1->Publish(kM1Alarm, "tamper", 2), 0);  // alarm allows QoS 2
  ASSERT_TRUE(headend->WaitForMessages(3)) << ::testing::PrintToString(Topics(*headend));
  std::vector<Message> got = headend->Messages();
  EXPECT_EQ(got[0].topic, kM1Reading);
  EXPECT_EQ(got[0].payload, "1.5 kWh");
  EXPECT_EQ(got[1].topic, kM2Reading);
  EXPECT_EQ(got[2].topic, kM1Alarm);

  // Head-end -> meters: each meter gets only its own commands, both get the broadcast.
  EXPECT_EQ(headend->Publish("meters/zurich/m-00000001/cmd/tariff", "night", 1), 0);
  EXPECT_EQ(headend->Publish("meters/zurich/m-00000002/cmd/disconnect", "now", 1), 0);
  EXPECT_EQ(headend->Publish("meters/broadcast/tariffs", "v7", 1), 0);
  ASSERT_TRUE(m1->WaitForMessage("meters/zurich/m-00000001/cmd/tariff").has_value());
  ASSERT_TRUE(m2->WaitForMessage("meters/broadcast/tariffs").has_value());
  EXPECT_EQ(Topics(*m1), (std::vector<std::string>{"meters/zurich/m-00000001/cmd/tariff"}));
  EXPECT_EQ(Topics(*m2), (std::vector<std::string>{"meters/zurich/m-00000002/cmd/disconnect",
                                                   "meters/broadcast/tariffs"}));
  // The observer saw all six.
  ASSERT_TRUE(observer->WaitForMessages(6)) << ::testing::PrintToString(Topics(*observer));
}

TEST_P(CertaclCoreTest, DeniedPublishIsDeliveredNowhere) {
  ASSERT_TRUE(StartBroker(Base())) << broker().Log();
  auto observer = Observer({"#", "$SYS/broker/x/#"});
  auto headend = NewClient(headend_cert_, "head-end-1");
  auto m1 = NewClient(m1_cert_, kM1, Mqtt::kV5);
  auto m2 = NewClient(m2_cert_, kM2, Mqtt::kV311);
  ASSERT_CONNECTS(headend);
  ASSERT_CONNECTS(m1);
  ASSERT_CONNECTS(m2);
  ASSERT_EQ(headend->Subscribe(std::vector<std::string>{"meters/+/+/reading", "meters/+/+/status"}, 1),
            (std::vector<int>{1, 1}));
  ASSERT_EQ(m2->Subscribe(std::vector<std::string>{kM2Cmd, "meters/broadcast/#"}, 1), (std::vector<int>{1, 1}));

  // MQTT 5 QoS 1/2: the publisher is told (PUBACK / PUBREC 0x87).
  EXPECT_EQ(m1->Publish(kM2Reading, "forged", 1), kNotAuthorized) << "another meter's topic";
  EXPECT_EQ(m1->Publish("meters/broadcast/tariffs", "forged", 1), kNotAuthorized) << "deny meters-never-command";
  EXPECT_EQ(m1->Publish("meters/zurich/m-00000002/cmd/disconnect", "x", 1), kNotAuthorized) << "command";
  EXPECT_EQ(m1->Publish("meters/zurich/m-00000001/cmd/x", "x", 1), kNotAuthorized) << "own command topic";
  EXPECT_EQ(m1->Publish(kM1Reading, "retained", 1, /*retain=*/true), kNotAuthorized) << "retain = false";
  EXPECT_EQ(m1->Publish(kM1Reading, "qos2", 2), kNotAuthorized) << "max_qos = 1";
  EXPECT_EQ(m1->Publish("$SYS/broker/x/y", "x", 1), kNotAuthorized) << "deny no-sys";
  EXPECT_EQ(m1->Publish("meters/zurich/m-00000001/readings", "x", 1), kNotAuthorized) << "no rule";
  EXPECT_EQ(m1->Publish("meters/zurich/m-00000001/reading/", "x", 1), kNotAuthorized) << "no normalisation";
  EXPECT_EQ(m1->Publish("meters/zurich/m-00000002/reading", "qos0", 0), 0) << "QoS 0: sent, silently dropped";
  // MQTT 3.1.1 has no reason codes: PUBACK as usual, message dropped.
  EXPECT_EQ(m2->Publish(kM1Reading, "forged", 1), 0);
  EXPECT_EQ(m2->Publish("meters/broadcast/tariffs", "forged", 0), 0);
  // Head-end: commands must not be retained.
  EXPECT_EQ(headend->Publish("meters/zurich/m-00000002/cmd/retained", "x", 1, /*retain=*/true), kNotAuthorized);

  // The 3.1.1 publisher of denied QoS 0/1 messages is still connected.
  EXPECT_TRUE(m2->connected());
  // Markers: allowed messages published after all of the above.
  ASSERT_EQ(m1->Publish(kM1Reading, "marker", 1), 0);
  ASSERT_EQ(headend->Publish("meters/zurich/m-00000002/cmd/marker", "marker", 1), 0);
  ASSERT_TRUE(observer->WaitForMessage("meters/zurich/m-00000002/cmd/marker").has_value());
  ASSERT_TRUE(headend->WaitForMessage(kM1Reading).has_value());
  ASSERT_TRUE(m2->WaitForMessage("meters/zurich/m-00000002/cmd/marker").has_value());
  EXPECT_EQ(Topics(*observer), (std::vector<std::string>{kM1Reading, "meters/zurich/m-00000002/cmd/marker"}));
  EXPECT_EQ(Topics(*headend), (std::vector<std::string>{kM1Reading}));
  EXPECT_EQ(Topics(*m2), (std::vector<std::string>{"meters/zurich/m-00000002/cmd/marker"}));
  EXPECT_EQ(headend->Messages()[0].payload, "marker");
}

TEST_P(CertaclCoreTest, DeniedSubscribeGetsTheFailureCodeInBothVersions) {
  ASSERT_TRUE(StartBroker(Base())) << broker().Log();
  auto headend = NewClient(headend_cert_, "head-end-1");
  ASSERT_CONNECTS(headend);
  const std::vector<std::string> denied = {
      kM2Cmd,                                   // another meter's commands
      "meters/zurich/+/cmd/#",                  // everybody's commands
      "meters/#",
      "#",
      "+/+/+/reading",
      "meters/zurich/m-00000001/reading",       // may publish it, not read it
      "$SYS/#",                                 // deny no-sys
      "meters/broadcast/keys/#",                // deny no-key-material
      "$share/g/meters/zurich/m-00000002/cmd/#",
  };
  const std::vector<std::string> allowed = {
      kM1Cmd, "meters/zurich/m-00000001/cmd/tariff", "meters/broadcast/#", "$share/g/meters/zurich/m-00000001/cmd/#"};
  std::vector<std::string> all = denied;
  all.insert(all.end(), allowed.begin(), allowed.end());

  for (Mqtt v : {Mqtt::kV5, Mqtt::kV311}) {
    SCOPED_TRACE(v == Mqtt::kV5 ? "MQTT 5" : "MQTT 3.1.1");
    auto m1 = NewClient(m1_cert_, kM1, v);
    ASSERT_CONNECTS(m1);
    std::vector<int> want(denied.size(), v == Mqtt::kV5 ? kNotAuthorized : kSubackFailureV311);
    want.insert(want.end(), allowed.size(), 1);
    EXPECT_EQ(m1->Subscribe(all, 1), want);
    // One at a time too (a SUBACK per filter).
    EXPECT_EQ(m1->Subscribe("meters/zurich/m-00000002/cmd/#", 1), want[0]);
    EXPECT_EQ(m1->Subscribe(kM1Cmd, 0), 0);  // granted at the QoS asked for

    // Nothing arrives through a denied subscription.
    ASSERT_EQ(headend->Publish("meters/zurich/m-00000002/cmd/x", "not for m1", 1), kNoMatchingSubscribers);
    ASSERT_EQ(headend->Publish("meters/zurich/m-00000001/cmd/marker", "marker", 1), 0);
    ASSERT_TRUE(m1->WaitForMessage("meters/zurich/m-00000001/cmd/marker").has_value());
    for (const std::string& t : Topics(*m1)) EXPECT_EQ(t, "meters/zurich/m-00000001/cmd/marker");
    EXPECT_TRUE(m1->Disconnect());
  }
}

TEST_P(CertaclCoreTest, RetainedMessageOnADeniedTopicIsNotDeliveredOnSubscribe) {
  ASSERT_TRUE(StartBroker(Base())) << broker().Log();
  auto headend = NewClient(headend_cert_, "head-end-1");
  ASSERT_CONNECTS(headend);
  ASSERT_EQ(headend->Publish("meters/broadcast/keys/k1", "secret", 1, /*retain=*/true), kNoMatchingSubscribers);
  ASSERT_EQ(headend->Publish("meters/broadcast/tariffs", "v7", 1, /*retain=*/true), kNoMatchingSubscribers);
  // The retained secret exists: the observer gets it on subscribe.
  auto observer = Observer({"meters/broadcast/#"});
  ASSERT_TRUE(observer->WaitForMessages(2));

  for (Mqtt v : {Mqtt::kV5, Mqtt::kV311}) {
    auto m1 = NewClient(m1_cert_, kM1, v);
    ASSERT_CONNECTS(m1);
    ASSERT_EQ(m1->Subscribe("meters/broadcast/#", 1), 1);  // allowed as a whole...
    ASSERT_EQ(headend->Publish("meters/broadcast/marker", "m", 1), 0);
    ASSERT_TRUE(m1->WaitForMessage("meters/broadcast/marker").has_value());
    // ...but the retained message under the denied keys/ never arrives.
    EXPECT_EQ(Topics(*m1), (std::vector<std::string>{"meters/broadcast/tariffs", "meters/broadcast/marker"}));
    EXPECT_TRUE(m1->Messages()[0].retain);
    EXPECT_TRUE(m1->Disconnect());
  }
}

TEST_P(CertaclCoreTest, ADeviceCannotTakeOverAnotherDevicesClientId) {
  ASSERT_TRUE(StartBroker(Base())) << broker().Log();
  auto headend = NewClient(headend_cert_, "head-end-1");
  ASSERT_CONNECTS(headend);
  auto victim = NewClient(m1_cert_, kM1, Mqtt::kV5);
  ASSERT_CONNECTS(victim);
  ASSERT_EQ(victim->Subscribe(kM1Cmd, 1), 1);

  // m-00000002's certificate with m-00000001's client id.
  auto thief5 = NewClient(m2_cert_, kM1, Mqtt::kV5);
  EXPECT_EQ(thief5->Connect(), kNotAuthorized);
  auto thief3 = NewClient(m2_cert_, kM1, Mqtt::kV311);
  EXPECT_EQ(thief3->Connect(), kNotAuthorizedV311);
  // Nor any other client id than its own CN.
  auto other = NewClient(m2_cert_, "something-else", Mqtt::kV5);
  EXPECT_EQ(other->Connect(), kNotAuthorized);

  // The victim is still connected and still gets its commands.
  EXPECT_TRUE(victim->connected());
  ASSERT_EQ(headend->Publish("meters/zurich/m-00000001/cmd/tariff", "night", 1), 0);
  ASSERT_TRUE(victim->WaitForMessage("meters/zurich/m-00000001/cmd/tariff").has_value());
  EXPECT_FALSE(thief5->connected());
  EXPECT_EQ(thief5->MessageCount(), 0U);
}

TEST_P(CertaclCoreTest, ADeviceReconnectingOverItsOwnConnectionKeepsExactlyItsPermissions) {
  // Each takeover closes the old connection, whose memory the broker may
  // reuse for the next client: deliveries are decided per connection, and
  // must follow the entry to the new connection and never to another client.
  ASSERT_TRUE(StartBroker(Base())) << broker().Log();
  auto headend = NewClient(headend_cert_, "head-end-1");
  ASSERT_CONNECTS(headend);
  std::unique_ptr<Client> previous;
  for (int round = 0; round < 20; ++round) {  // a stale index showed within 6 rounds
    SCOPED_TRACE("round " + std::to_string(round));
    auto m1 = NewClient(m1_cert_, kM1, Mqtt::kV5);
    ASSERT_CONNECTS(m1);
    if (previous) {
      EXPECT_TRUE(previous->WaitForDisconnect()) << "the old connection was not taken over";
    }
    ASSERT_EQ(m1->Subscribe(kM1Cmd, 1), 1);
    auto m2 = NewClient(m2_cert_, kM2, Mqtt::kV5);
    ASSERT_CONNECTS(m2);
    ASSERT_EQ(m2->Subscribe("meters/zurich/m-00000002/cmd/#", 1), 1);
    const std::string tag = std::to_string(round);
    ASSERT_EQ(headend->Publish("meters/zurich/m-00000001/cmd/r" + tag, "for m1", 1), 0);
    ASSERT_EQ(headend->Publish("meters/zurich/m-00000002/cmd/r" + tag, "for m2", 1), 0);
    ASSERT_TRUE(m1->WaitForMessage("meters/zurich/m-00000001/cmd/r" + tag).has_value());
    ASSERT_TRUE(m2->WaitForMessage("meters/zurich/m-00000002/cmd/r" + tag).has_value());
    EXPECT_EQ(Topics(*m1), (std::vector<std::string>{"meters/zurich/m-00000001/cmd/r" + tag}));
    EXPECT_EQ(Topics(*m2), (std::vector<std::string>{"meters/zurich/m-00000002/cmd/r" + tag}));
    EXPECT_TRUE(m2->Disconnect());
    previous = std::move(m1);
  }
}

TEST_P(CertaclCoreTest, ADeviceCannotTakeOverAnotherDevicesOfflineSession) {
  ASSERT_TRUE(StartBroker(Base())) << broker().Log();
  for (Mqtt v : {Mqtt::kV311, Mqtt::kV5}) {
    SCOPED_TRACE(v == Mqtt::kV5 ? "MQTT 5" : "MQTT 3.1.1");
    {
      auto victim = NewClient(Persistent(m1_cert_, kM1, v));
      ASSERT_CONNECTS(victim);
      ASSERT_EQ(victim->Subscribe(kM1Cmd, 1), 1);
      ASSERT_TRUE(victim->Disconnect());
    }
    auto headend = NewClient(headend_cert_, "head-end-1");
    ASSERT_CONNECTS(headend);
    ASSERT_EQ(headend->Publish("meters/zurich/m-00000001/cmd/tariff", "queued", 1), 0);

    auto thief = NewClient(Persistent(m2_cert_, kM1, v));
    EXPECT_EQ(thief->Connect(), v == Mqtt::kV5 ? kNotAuthorized : kNotAuthorizedV311);
    EXPECT_EQ(thief->MessageCount(), 0U);

    auto victim = NewClient(Persistent(m1_cert_, kM1, v));
    ASSERT_CONNECTS(victim);
    auto m = victim->WaitForMessage("meters/zurich/m-00000001/cmd/tariff");
    ASSERT_TRUE(m.has_value()) << "the queued command was lost";
    EXPECT_EQ(m->payload, "queued");
    // Clean up the session for the next round.
    EXPECT_TRUE(victim->Disconnect());
    auto clean = NewClient(m1_cert_, kM1, v);
    ASSERT_CONNECTS(clean);
  }
}

TEST_P(CertaclCoreTest, HostileCommonNamesGainNothing) {
  ASSERT_TRUE(StartBroker(Base())) << broker().Log();
  auto observer = Observer();
  auto m1 = NewClient(m1_cert_, kM1);
  ASSERT_CONNECTS(m1);
  ASSERT_EQ(m1->Subscribe(kM1Cmd, 1), 1);
  auto headend = NewClient(headend_cert_, "head-end-1");
  ASSERT_CONNECTS(headend);

  struct Hostile {
    std::string cn;
    std::string ou;
  };
  // "lab" matches a role whatever the CN; "m-a/#" passes the smart-meter glob.
  for (const Hostile& h : {Hostile{"+", "lab"}, Hostile{"#", "lab"}, Hostile{"a/#", "lab"}, Hostile{"m-+", "meter"},
                           Hostile{"m-a/#", "meter"}}) {
    SCOPED_TRACE("CN " + h.cn + " OU " + h.ou);
    auto evil = NewClient(pki_->Meter(h.cn, "zurich", h.ou), h.cn);
    // Its role matches (its topics are void): it may connect, with nothing to do.
    ASSERT_CONNECTS(evil);
    const std::vector<std::string> filters = {"meters/zurich/+/cmd/#", "meters/zurich/#", "#", "meters/zurich/a/#",
                                              "meters/+/+/cmd/#", kM1Cmd, "meters/zurich/+/reading"};
    EXPECT_EQ(evil->Subscribe(filters, 1), std::vector<int>(filters.size(), kNotAuthorized));
    for (const std::string& t : {kM1Reading, std::string("meters/zurich/a/reading"),
                                 std::string("meters/zurich/a/b/reading"), std::string("meters/zurich/x/reading"),
                                 std::string("meters/zurich/m-/reading")}) {
      EXPECT_EQ(evil->Publish(t, "forged", 1), kNotAuthorized) << t;
    }
    // A command for m1 does not reach it either.
    ASSERT_EQ(headend->Publish("meters/zurich/m-00000001/cmd/x", "for m1 only", 1), 0);
    ASSERT_TRUE(m1->WaitForMessage("meters/zurich/m-00000001/cmd/x").has_value());
    EXPECT_EQ(evil->MessageCount(), 0U);
    m1->ClearMessages();
  }
  // The observer saw only the head-end's commands, none of the forged readings.
  ASSERT_EQ(m1->Publish(kM1Reading, "marker", 1), 0);
  ASSERT_TRUE(observer->WaitForMessage(kM1Reading).has_value());
  for (const Message& m : observer->Messages()) {
    EXPECT_TRUE(m.topic == "meters/zurich/m-00000001/cmd/x" || (m.topic == kM1Reading && m.payload == "marker"))
        << m.topic << " " << m.payload;
  }
}

TEST_P(CertaclCoreTest, DeviceWithoutCertificateOrFromAnotherCaIsRefused) {
  ASSERT_TRUE(StartBroker(Base())) << broker().Log();
  const size_t log_from = broker().LogSize();
  const CertFiles foreign = pki_->ForeignDevice(
      "foreign-m1", {.cn = kM1, .o = "Acme Utilities", .ou = "meter", .l = "zurich", .san_dns = {}, .san_uri = {}});
  for (const std::string& tls : {std::string(), std::string("tlsv1.2")}) {
    SCOPED_TRACE("client TLS " + (tls.empty() ? std::string("default") : tls));
    ClientOptions o = Opts({"", ""}, kM1);
    o.tls_version = tls;
    auto nocert = NewClient(o);
    EXPECT_EQ(nocert->Connect(), Client::kNoConnack);
    // The same subject as m-00000001, issued by a CA with the same name but
    // another key, which the broker does not trust.
    ClientOptions fo = Opts(foreign, kM1);
    fo.tls_version = tls;
    auto impostor = NewClient(fo);
    EXPECT_EQ(impostor->Connect(), Client::kNoConnack);
  }
  std::string log = broker().Log().substr(log_from);
  EXPECT_NE(log.find("peer did not return a certificate"), std::string::npos) << log;
  EXPECT_NE(log.find("certificate verify failed"), std::string::npos) << log;
  // The real m-00000001 still gets in.
  auto m1 = NewClient(m1_cert_, kM1);
  ASSERT_CONNECTS(m1);
}

TEST_P(CertaclCoreTest, WithoutRequireCertificateTheListenerRefusesDevicesWithoutOne) {
  // A misconfigured listener (require_certificate false): the broker lets
  // TLS clients without a certificate through; certacl must refuse them.
  BrokerSetup s = Base();
  s.require_certificate = false;
  ASSERT_TRUE(StartBroker(s)) << broker().Log();
  auto v5 = NewClient(Opts({"", ""}, kM1, Mqtt::kV5));
  EXPECT_EQ(v5->Connect(), kNotAuthorized);
  auto v3 = NewClient(Opts({"", ""}, kM1, Mqtt::kV311));
  EXPECT_EQ(v3->Connect(), kNotAuthorizedV311);
}

TEST_P(CertaclCoreTest, DeviceMatchingNoRoleOrADenyConnectIsRefused) {
  ASSERT_TRUE(StartBroker(Base())) << broker().Log();
  CertFiles nobody = pki_->Device("nobody", {.cn = "m-00000099",
                                             .o = "Someone Else",
                                             .ou = "meter",
                                             .l = "zurich",
                                             .san_dns = {},
                                             .san_uri = {}});
  CertFiles capital = pki_->Meter("m-00000098", "Zurich");  // L must be lowercase
  CertFiles quarantined = pki_->Meter("m-00000013");
  for (const auto& [cert, id] : {std::pair{nobody, std::string("m-00000099")},
                                 std::pair{capital, std::string("m-00000098")},
                                 std::pair{quarantined, std::string("m-00000013")}}) {
    auto v5 = NewClient(cert, id, Mqtt::kV5);
    EXPECT_EQ(v5->Connect(), kNotAuthorized) << id;
    auto v3 = NewClient(cert, id, Mqtt::kV311);
    EXPECT_EQ(v3->Connect(), kNotAuthorizedV311) << id;
    // A username and password change nothing.
    ClientOptions o = Opts(cert, id, Mqtt::kV5);
    o.username = "m-00000001";
    o.password = "admin";
    auto with_password = NewClient(o);
    EXPECT_EQ(with_password->Connect(), kNotAuthorized) << id;
  }
  // Nor do they for an accepted device: m-00000001 calling itself
  // m-00000002 is still m-00000001.
  ClientOptions o = Opts(m1_cert_, kM1);
  o.username = kM2;
  o.password = "secret";
  auto m1 = NewClient(o);
  ASSERT_CONNECTS(m1);
  EXPECT_EQ(m1->Publish(kM2Reading, "x", 1), kNotAuthorized);
  EXPECT_EQ(m1->Publish(kM1Reading, "x", 1), kNoMatchingSubscribers);
}

TEST_P(CertaclCoreTest, RefusalsAreLoggedWithSubjectSerialAndReasonRateLimited) {
  BrokerOptions o = Options(Base());
  PluginOptions& p = o.per_listener_settings ? o.listeners[0].plugin : o.plugin;
  p.extra.emplace_back("log_refusals_per_minute", "5");
  ASSERT_TRUE(StartBroker(o)) << broker().Log();
  certacl::testing::CertBuilder b = pki_->issuing().Issue();
  b.Subject("O", "Someone Else").Subject("CN", "m-00000099").Serial("5EC0DE01");
  CertFiles nobody = pki_->Write("nobody", b);
  const size_t from = broker().LogSize();
  for (int i = 0; i < 40; ++i) {
    auto c = NewClient(nobody, "m-00000099", i % 2 == 0 ? Mqtt::kV5 : Mqtt::kV311);
    ASSERT_EQ(c->Connect(), i % 2 == 0 ? kNotAuthorized : kNotAuthorizedV311);
  }
  // A device that gets in afterwards is not affected by the storm.
  auto m1 = NewClient(m1_cert_, kM1);
  ASSERT_CONNECTS(m1);
  const std::string log = broker().Log().substr(from);
  size_t lines = 0;
  size_t first = std::string::npos;
  for (size_t at = log.find("certacl: refused"); at != std::string::npos; at = log.find("certacl: refused", at + 1)) {
    if (first == std::string::npos) first = at;
    ++lines;
  }
  ASSERT_NE(first, std::string::npos) << log;
  const std::string line = log.substr(first, log.find('\n', first) - first);
  EXPECT_NE(line.find("m-00000099"), std::string::npos) << line;  // who
  EXPECT_NE(line.find("5EC0DE01"), std::string::npos) << line;    // certificate serial
  EXPECT_NE(line.find("no-role"), std::string::npos) << line;     // why
  EXPECT_GE(lines, 1U);
  EXPECT_LE(lines, 6U) << "40 refusals at 5 per minute:\n" << log;
}

// ---------------------------------------------------------------------------
// SIGHUP.

TEST_P(CertaclCoreTest, ReloadNarrowsAccessOfConnectedDevicesImmediately) {
  ASSERT_TRUE(StartBroker(Base())) << broker().Log();
  auto headend = NewClient(headend_cert_, "head-end-1");
  ASSERT_CONNECTS(headend);
  ASSERT_EQ(headend->Subscribe(std::vector<std::string>{"meters/+/+/reading", "meters/+/+/alarm"}, 1),
            (std::vector<int>{1, 1}));
  auto m1 = NewClient(m1_cert_, kM1);
  ASSERT_CONNECTS(m1);
  ASSERT_EQ(m1->Subscribe(std::vector<std::string>{kM1Cmd, "meters/broadcast/#"}, 1), (std::vector<int>{1, 1}));
  ASSERT_EQ(m1->Publish(kM1Reading, "before", 1), 0);
  ASSERT_TRUE(headend->WaitForMessage(kM1Reading).has_value());
  ASSERT_EQ(headend->Publish("meters/broadcast/tariffs", "before", 1), 0);
  ASSERT_TRUE(m1->WaitForMessage("meters/broadcast/tariffs").has_value());

  // Readings are no longer allowed; neither are broadcasts.
  std::string narrower = Replace(kMetersPolicy, "  \"meters/${subject.L}/${subject.CN}/reading\",\n", "");
  narrower = Replace(narrower, "  \"meters/broadcast/#\",\n]", "]");
  WritePolicy(narrower);
  ASSERT_TRUE(broker().Reload()) << broker().Log();

  // The same connection, still up: its access is the new one at once.
  EXPECT_TRUE(m1->connected());
  EXPECT_EQ(m1->Publish(kM1Reading, "after", 1), kNotAuthorized);
  EXPECT_EQ(m1->Publish(kM1Alarm, "marker", 1), 0);
  ASSERT_TRUE(headend->WaitForMessage(kM1Alarm).has_value());
  EXPECT_EQ(Topics(*headend), (std::vector<std::string>{kM1Reading, kM1Alarm}));
  EXPECT_EQ(headend->Messages()[0].payload, "before");
  // Its existing broadcast subscription delivers nothing now (READ re-check).
  ASSERT_EQ(headend->Publish("meters/broadcast/tariffs", "after", 1), 0);
  ASSERT_EQ(headend->Publish("meters/zurich/m-00000001/cmd/marker", "marker", 1), 0);
  ASSERT_TRUE(m1->WaitForMessage("meters/zurich/m-00000001/cmd/marker").has_value());
  EXPECT_EQ(Topics(*m1), (std::vector<std::string>{"meters/broadcast/tariffs", "meters/zurich/m-00000001/cmd/marker"}));
  EXPECT_EQ(m1->Subscribe("meters/broadcast/#", 1), kNotAuthorized);
  EXPECT_TRUE(m1->connected());
  EXPECT_TRUE(headend->connected());
}

// A connection whose every subscription lies wholly inside what it may
// read gets its deliveries without a per-message check (Entry::reads_covered
// in plugin/instance.h). These are the ways that can stop being true.
TEST_P(CertaclCoreTest, DeliveriesAreCheckedAgainOnceASubscriptionReachesADeniedTopic) {
  ASSERT_TRUE(StartBroker(Base())) << broker().Log();
  auto headend = NewClient(headend_cert_, "head-end-1");
  ASSERT_CONNECTS(headend);
  auto m1 = NewClient(m1_cert_, kM1, Mqtt::kV5);
  auto m2 = NewClient(m2_cert_, kM2, Mqtt::kV311);
  ASSERT_CONNECTS(m1);
  ASSERT_CONNECTS(m2);
  // Wholly readable, then one that deny no-key-material cuts into.
  ASSERT_EQ(m1->Subscribe(kM1Cmd, 1), 1);
  ASSERT_EQ(m1->Subscribe("meters/broadcast/#", 1), 1);
  // Wholly readable only (m2's deliveries may skip the check).
  ASSERT_EQ(m2->Subscribe(std::vector<std::string>{"meters/broadcast/tariffs/#", kM2Cmd}, 1),
            (std::vector<int>{1, 1}));
  ASSERT_EQ(headend->Publish("meters/broadcast/keys/k1", "secret", 1), 0);
  ASSERT_EQ(headend->Publish("meters/broadcast/tariffs/night", "v1", 1), 0);
  ASSERT_EQ(headend->Publish("meters/zurich/m-00000001/cmd/marker", "marker", 1), 0);
  ASSERT_TRUE(m1->WaitForMessage("meters/zurich/m-00000001/cmd/marker").has_value());
  ASSERT_TRUE(m2->WaitForMessage("meters/broadcast/tariffs/night").has_value());
  EXPECT_EQ(Topics(*m1), (std::vector<std::string>{"meters/broadcast/tariffs/night",
                                                   "meters/zurich/m-00000001/cmd/marker"}));

  // A reload that takes the broadcasts away: m2's subscription, wholly
  // readable before, delivers nothing now.
  WritePolicy(Replace(kMetersPolicy, "  \"meters/broadcast/#\",\n]", "]"));
  ASSERT_TRUE(broker().Reload()) << broker().Log();
  ASSERT_EQ(headend->Publish("meters/broadcast/tariffs/day", "v2", 1), 0);
  ASSERT_EQ(headend->Publish("meters/zurich/m-00000002/cmd/marker", "marker", 1), 0);
  ASSERT_TRUE(m2->WaitForMessage("meters/zurich/m-00000002/cmd/marker").has_value());
  EXPECT_EQ(Topics(*m2), (std::vector<std::string>{"meters/broadcast/tariffs/night",
                                                   "meters/zurich/m-00000002/cmd/marker"}));
  // A reload that changes nothing m1 reads: still exactly its own.
  WritePolicy(Replace(kMetersPolicy, "  \"meters/broadcast/#\",\n]", "]") + "\n# touched\n");
  ASSERT_TRUE(broker().Reload()) << broker().Log();
  ASSERT_EQ(headend->Publish("meters/zurich/m-00000002/cmd/second", "x", 1), 0);
  ASSERT_EQ(headend->Publish("meters/zurich/m-00000001/cmd/second", "x", 1), 0);
  ASSERT_TRUE(m1->WaitForMessage("meters/zurich/m-00000001/cmd/second").has_value());
  EXPECT_EQ(Topics(*m1), (std::vector<std::string>{"meters/broadcast/tariffs/night",
                                                   "meters/zurich/m-00000001/cmd/marker",
                                                   "meters/zurich/m-00000001/cmd/second"}));
  EXPECT_TRUE(m1->connected());
  EXPECT_TRUE(m2->connected());
}

// An MQTT 5 session begun with a clean start, resumed by a renewed
// certificate that may read less: the subscription it inherits was wholly
// readable for the old certificate, not for the new one.
TEST_P(CertaclCoreTest, ASessionResumedWithAnotherCertificateGetsOnlyWhatThatOneMayRead) {
  ASSERT_TRUE(StartBroker(Base())) << broker().Log();
  ASSERT_NO_FATAL_FAILURE(LeaveM1SessionSubscribedToItsCommands());
  // Moved to Geneva: other topics.
  std::unique_ptr<Client> headend, moved;
  ASSERT_NO_FATAL_FAILURE(QueueAndResumeM1In("geneva", &headend, &moved));
  ASSERT_EQ(headend->Publish("meters/zurich/m-00000001/cmd/live", "x", 1), 0);
  ASSERT_EQ(moved->Subscribe("meters/geneva/m-00000001/cmd/#", 1), 1);
  ASSERT_EQ(headend->Publish("meters/geneva/m-00000001/cmd/marker", "marker", 1), 0);
  ASSERT_TRUE(moved->WaitForMessage("meters/geneva/m-00000001/cmd/marker").has_value());
  EXPECT_EQ(Topics(*moved), (std::vector<std::string>{"meters/geneva/m-00000001/cmd/marker"}));
}

// An MQTT 5 session begun with a clean start, resumed by a renewed
// certificate that reads alike (the same subject, another key): its
// subscription lies within the new certificate's read rules as it did
// within the old one's, so its live deliveries skip the topic match
// (acl/read/covered) as before the renewal. The case that reads less is
// the test above.
TEST_P(CertaclCoreTest, ASessionResumedByARenewedCertificateThatReadsAlikeSkipsTheTopicMatch) {
  ASSERT_TRUE(StartBroker(Base())) << broker().Log();
  auto observer = Observer({kSys + "acl/read/#"});
  const bool poke = GetParam();
  ASSERT_NO_FATAL_FAILURE(LeaveM1SessionSubscribedToItsCommands());
  ASSERT_TRUE(SysValue(*observer, "acl/read/covered", 0, poke)) << LatestSys(*observer, "acl/read/covered");
  // Renewed: same place, same topics.
  std::unique_ptr<Client> headend, m1;
  ASSERT_NO_FATAL_FAILURE(QueueAndResumeM1In("zurich", &headend, &m1));
  for (const char* leaf : {"a", "b", "c"}) {
    ASSERT_EQ(headend->Publish(std::string("meters/zurich/m-00000001/cmd/") + leaf, "x", 1), 0);
  }
  ASSERT_TRUE(m1->WaitForMessage("meters/zurich/m-00000001/cmd/c").has_value());
  EXPECT_EQ(Topics(*m1), (std::vector<std::string>{"meters/zurich/m-00000001/cmd/queued", "meters/zurich/m-00000001/cmd/a",
                                                   "meters/zurich/m-00000001/cmd/b", "meters/zurich/m-00000001/cmd/c"}));
  EXPECT_TRUE(SysValue(*observer, "acl/read/covered", 4, poke)) << LatestSys(*observer, "acl/read/covered");
}

TEST_P(CertaclCoreTest, ReloadDisconnectsDevicesThatNoLongerMatchAnyRole) {
  ASSERT_TRUE(StartBroker(Base())) << broker().Log();
  CertFiles three_phase = pki_->Meter("m-00000003", "basel", "meter-3ph");
  auto m3 = NewClient(three_phase, "m-00000003", Mqtt::kV5);
  auto m3old = NewClient(pki_->Meter("m-00000004", "basel", "meter-3ph"), "m-00000004", Mqtt::kV311);
  auto m1 = NewClient(m1_cert_, kM1);
  ASSERT_CONNECTS(m3);
  ASSERT_CONNECTS(m3old);
  ASSERT_CONNECTS(m1);

  // A reload that changes nothing keeps everybody connected.
  ASSERT_TRUE(broker().Reload()) << broker().Log();
  EXPECT_EQ(m1->Subscribe(kM1Cmd, 1), 1);
  EXPECT_EQ(m3->Subscribe("meters/basel/m-00000003/cmd/#", 1), 1);
  EXPECT_TRUE(m3->connected());
  EXPECT_TRUE(m3old->connected());

  WritePolicy(Replace(kMetersPolicy, R"(match."subject.OU" = { any = ["meter", "meter-3ph"] })",
                      R"(match."subject.OU" = "meter")"));
  ASSERT_TRUE(broker().Reload()) << broker().Log();
  EXPECT_TRUE(m3->WaitForDisconnect()) << "meter-3ph still connected after the reload";
  EXPECT_TRUE(m3old->WaitForDisconnect()) << "meter-3ph (3.1.1) still connected after the reload";
  EXPECT_TRUE(m1->connected());
  auto headend = NewClient(headend_cert_, "head-end-1");
  ASSERT_CONNECTS(headend);
  ASSERT_EQ(headend->Publish("meters/zurich/m-00000001/cmd/x", "still here", 1), 0);
  EXPECT_TRUE(m1->WaitForMessage("meters/zurich/m-00000001/cmd/x").has_value());
  // And it cannot come back.
  auto again = NewClient(three_phase, "m-00000003", Mqtt::kV5);
  EXPECT_EQ(again->Connect(), kNotAuthorized);
}

TEST_P(CertaclCoreTest, InvalidPolicyOnReloadKeepsTheOldOneAndTheLogSaysWhy) {
  ASSERT_TRUE(StartBroker(Base())) << broker().Log();
  auto headend = NewClient(headend_cert_, "head-end-1");
  ASSERT_CONNECTS(headend);
  ASSERT_EQ(headend->Subscribe("meters/+/+/reading", 1), 1);
  auto m1 = NewClient(m1_cert_, kM1);
  ASSERT_CONNECTS(m1);

  // A policy that would open everything, with one unknown attribute in it.
  std::string policy = dir_.File("policy.toml");
  const std::string broken = Replace(kMetersPolicy, R"(match."subject.L"  = { regex = "^[a-z]+(-[a-z]+)*$" })",
                                     R"(match."subject.XYZ" = "zurich")");
  const std::string broken_open = Replace(broken, "subscribe = [\"#\", \"$SYS/#\", \"$enroll/#\"]",
                                          "subscribe = [\"#\", \"$SYS/#\", \"$enroll/#\"]\npublish = [\"#\"]");
  struct Case {
    std::string what;
    std::string text;  // empty: the file is removed
  };
  for (const Case& c : {Case{"unknown attribute", broken_open}, Case{"TOML syntax error", "version = 1\n[[role]\n"},
                        Case{"missing file", ""}}) {
    SCOPED_TRACE(c.what);
    if (c.text.empty()) {
      std::remove(policy.c_str());
    } else {
      WritePolicy(c.text);
    }
    const size_t log_from = broker().LogSize();
    ASSERT_TRUE(broker().Reload()) << broker().Log();
    ASSERT_TRUE(broker().WaitForLog("certacl", kWait, log_from));
    std::string log = broker().Log().substr(log_from);
    EXPECT_NE(log.find(policy), std::string::npos) << "the log names the policy file:\n" << log;
    if (c.what == "unknown attribute") {
      EXPECT_NE(log.find("subject.XYZ"), std::string::npos) << log;
    }

    // The old policy is still in force, for connected and new devices alike.
    EXPECT_TRUE(m1->connected());
    headend->ClearMessages();
    EXPECT_EQ(m1->Publish(kM1Reading, c.what, 1), 0);
    ASSERT_TRUE(headend->WaitForMessage(kM1Reading).has_value());
    EXPECT_EQ(m1->Publish("meters/broadcast/x", "x", 1), kNotAuthorized);
    auto m2 = NewClient(m2_cert_, kM2);
    EXPECT_EQ(m2->Connect(), 0) << m2->last_error();
    auto observer = NewClient(observer_cert_, "observer");
    ASSERT_CONNECTS(observer);
    EXPECT_EQ(observer->Publish("meters/zurich/m-00000001/cmd/x", "x", 1), kNotAuthorized);
  }
  EXPECT_TRUE(broker().running());
}

// ---------------------------------------------------------------------------
// Queued messages for offline persistent sessions.

TEST_P(CertaclCoreTest, QueuedMessagesAreDeliveredWhenTheDeviceReconnects) {
  ASSERT_TRUE(StartBroker(Base())) << broker().Log();
  const std::vector<std::pair<Mqtt, std::string>> devices = {{Mqtt::kV311, kM1}, {Mqtt::kV5, kM2}};
  for (const auto& [v, id] : devices) {
    auto dev = NewClient(Persistent(id == kM1 ? m1_cert_ : m2_cert_, id, v));
    ASSERT_CONNECTS(dev);
    ASSERT_EQ(dev->Subscribe("meters/zurich/" + id + "/cmd/#", 1), 1);
    ASSERT_TRUE(dev->Disconnect());
  }
  auto headend = NewClient(headend_cert_, "head-end-1");
  ASSERT_CONNECTS(headend);
  for (const auto& [v, id] : devices) {
    ASSERT_EQ(headend->Publish("meters/zurich/" + id + "/cmd/tariff", "night", 1), 0);
    ASSERT_EQ(headend->Publish("meters/zurich/" + id + "/cmd/disconnect", "now", 1), 0);
  }
  for (const auto& [v, id] : devices) {
    SCOPED_TRACE(id);
    auto dev = NewClient(Persistent(id == kM1 ? m1_cert_ : m2_cert_, id, v));
    ASSERT_CONNECTS(dev);
    ASSERT_TRUE(dev->WaitForMessages(2)) << "queued messages lost";
    EXPECT_EQ(Topics(*dev), (std::vector<std::string>{"meters/zurich/" + id + "/cmd/tariff",
                                                      "meters/zurich/" + id + "/cmd/disconnect"}));
    EXPECT_EQ(dev->Messages()[0].qos, 1);
  }
}

TEST_P(CertaclCoreTest, QueuedMessagesSurviveABrokerRestart) {
  BrokerSetup s = Base();
  s.persistence = true;
  s.state_file = true;
  ASSERT_TRUE(StartBroker(s)) << broker().Log();
  const std::vector<std::pair<Mqtt, std::string>> devices = {{Mqtt::kV311, kM1}, {Mqtt::kV5, kM2}};
  auto cert = [&](const std::string& id) { return id == kM1 ? m1_cert_ : m2_cert_; };
  for (const auto& [v, id] : devices) {
    auto dev = NewClient(Persistent(cert(id), id, v));
    ASSERT_CONNECTS(dev);
    ASSERT_EQ(dev->Subscribe(std::vector<std::string>{"meters/zurich/" + id + "/cmd/#", "meters/broadcast/#"}, 1),
              (std::vector<int>{1, 1}));
    ASSERT_TRUE(dev->Disconnect());
  }
  {
    auto headend = NewClient(headend_cert_, "head-end-1");
    ASSERT_CONNECTS(headend);
    for (const auto& [v, id] : devices) {
      ASSERT_EQ(headend->Publish("meters/zurich/" + id + "/cmd/before-restart", "1", 1), 0);
    }
  }
  ASSERT_TRUE(broker().Restart()) << broker().Log();
  {
    // Published after the restart, while the devices are still offline: the
    // READ check for their queues needs their identities, which only the
    // state file kept -- and must still deny what they may not read.
    auto headend = NewClient(headend_cert_, "head-end-1");
    ASSERT_CONNECTS(headend);
    ASSERT_EQ(headend->Publish("meters/broadcast/keys/k2", "secret", 1), 0);
    ASSERT_EQ(headend->Publish("meters/broadcast/tariffs", "v8", 1), 0);
    for (const auto& [v, id] : devices) {
      ASSERT_EQ(headend->Publish("meters/zurich/" + id + "/cmd/after-restart", "2", 1), 0);
    }
  }
  auto headend = NewClient(headend_cert_, "head-end-1");
  ASSERT_CONNECTS(headend);
  for (const auto& [v, id] : devices) {
    SCOPED_TRACE(id);
    auto dev = NewClient(Persistent(cert(id), id, v));
    ASSERT_CONNECTS(dev);
    const std::string marker = "meters/zurich/" + id + "/cmd/marker";
    ASSERT_EQ(headend->Publish(marker, "live", 1), 0);
    ASSERT_TRUE(dev->WaitForMessage(marker).has_value()) << ::testing::PrintToString(Topics(*dev));
    EXPECT_EQ(Topics(*dev), (std::vector<std::string>{"meters/zurich/" + id + "/cmd/before-restart",
                                                      "meters/broadcast/tariffs",
                                                      "meters/zurich/" + id + "/cmd/after-restart", marker}));
  }
  // After the restart, another certificate still cannot take the session.
  auto thief = NewClient(Persistent(m2_cert_, kM1, Mqtt::kV311));
  EXPECT_EQ(thief->Connect(), kNotAuthorizedV311);
}

// With a state file, the `ca` checks done survive a restart: a known device
// reconnecting to a restarted broker is not verified again (a restart storm
// costs a lookup per device), gets the same permissions, and a device never
// seen is still verified. A state file others can write is not trusted.
TEST_F(CertaclTest, SignatureChecksSurviveARestartOnlyInAPrivateStateFile) {
  WritePolicy(kMetersPolicy);
  BrokerSetup s;
  s.state_file = true;
  ASSERT_TRUE(StartBroker(s)) << broker().Log();
  const std::string verified = "signatures/verified";
  const std::string reading = "meters/zurich/" + kM1 + "/reading";
  {
    auto observer = Observer({"meters/#", kSys + "signatures/#"});
    auto m1 = NewClient(m1_cert_, kM1);
    ASSERT_CONNECTS(m1);
    EXPECT_TRUE(SysValue(*observer, verified, 2)) << LatestSys(*observer, verified);  // the observer and m1
  }
  ASSERT_TRUE(broker().Restart()) << broker().Log();
  EXPECT_NE(broker().Log().find("certacl: 2 signature checks restored from"), std::string::npos) << broker().Log();
  // Its writer is a child process: the broker runs no thread for it, even
  // once it has lines to write (m2's, below).
  EXPECT_NE(broker().Log().find(" is written by certacl-state-writer (pid "), std::string::npos) << broker().Log();
  const std::string tasks = "/proc/" + std::to_string(broker().pid()) + "/task";
  auto threads = [&] { return std::distance(std::filesystem::directory_iterator(tasks), {}); };
  const auto threads_before = threads();
  {
    auto observer = Observer({"meters/#", kSys + "signatures/#"});
    auto m1 = NewClient(m1_cert_, kM1);
    ASSERT_CONNECTS(m1);
    EXPECT_EQ(m1->Publish(reading, "1", 1), 0);
    EXPECT_TRUE(observer->WaitForMessage(reading).has_value());
    EXPECT_EQ(m1->Publish("meters/zurich/" + kM2 + "/reading", "1", 1), kNotAuthorized);
    EXPECT_TRUE(SysValue(*observer, verified, 0)) << LatestSys(*observer, verified);
    auto m2 = NewClient(m2_cert_, kM2);  // never seen: verified
    ASSERT_CONNECTS(m2);
    EXPECT_TRUE(SysValue(*observer, verified, 1)) << LatestSys(*observer, verified);
  }
  // m1 came back with the certificate the state file holds: not written
  // again (m2's line, queued after m1's would-be line, shows the writes).
  const std::string path = dir_.File("certacl-sessions");
  auto lines_for = [&](const std::string& id) {
    const std::string content = ReadFile(path), prefix = "P " + plugin::HexEncode(id) + " ";
    int n = 0;
    for (size_t at = content.find(prefix); at != std::string::npos; at = content.find(prefix, at + 1)) ++n;
    return n;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(4);
  while (lines_for(kM2) == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(lines_for(kM2), 1) << ReadFile(path) << broker().Log();
  EXPECT_EQ(lines_for(kM1), 1) << ReadFile(path) << broker().Log();
  EXPECT_EQ(threads(), threads_before) << broker().Log();
  ASSERT_EQ(::chmod(path.c_str(), 0666), 0);
  ASSERT_TRUE(broker().Restart()) << broker().Log();
  EXPECT_NE(broker().Log().find("certacl: ignored the 3 signature checks in the state file \"" + path +
                                "\": it is writable by group or others (chmod 600 it); devices are verified again"),
            std::string::npos)
      << broker().Log();
  auto observer = Observer({"meters/#", kSys + "signatures/#"});
  auto m1 = NewClient(m1_cert_, kM1);
  ASSERT_CONNECTS(m1);
  EXPECT_TRUE(SysValue(*observer, verified, 2)) << LatestSys(*observer, verified);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// A writer program that fails when the broker stops (here: one that reads
// every line, writes none and exits 3) is logged at shutdown, and its lines
// are still written, by a thread.
TEST_F(CertaclTest, AStateWriterThatFailsAtShutdownIsLoggedAndLosesNothing) {
  const std::string writer = dir_.Write("failing-writer", "#!/bin/sh\ncat > /dev/null\nexit 3\n");
  ASSERT_EQ(::chmod(writer.c_str(), 0755), 0);
  BrokerSetup s;
  s.state_file = true;
  s.state_writer = writer;
  ASSERT_TRUE(StartBroker(s)) << broker().Log();
  {
    auto m1 = NewClient(m1_cert_, kM1);  // MQTT 5, kept offline: a "P" line
    ASSERT_CONNECTS(m1);
  }
  ASSERT_TRUE(broker().Stop()) << broker().Log();
  const std::string log = broker().Log();
  EXPECT_NE(log.find("certacl: the state file writer (pid "), std::string::npos) << log;
  EXPECT_NE(log.find(") exited with status 3"), std::string::npos) << log;
  EXPECT_NE(log.find("a thread writes the state file from now on"), std::string::npos) << log;
  const std::string content = ReadFile(dir_.File("certacl-sessions"));
  EXPECT_NE(content.find("P " + plugin::HexEncode(kM1) + " "), std::string::npos) << content;
}

// ---------------------------------------------------------------------------
// Two listeners, two policies.

// A device that reconnects with the certificate its offline session holds
// keeps the Session resolved for it (counted as accepted-same-certificate);
// a renewed certificate, a policy reload, or a time condition that has
// flipped since makes it resolve afresh: the device gets exactly what a
// first connect would.
TEST_F(CertaclTest, AReconnectKeepsItsSessionOnlyForTheSameCertificateAndTheSameAnswer) {
  const std::string policy = R"(version = 1
[connect]
client_id = "${subject.CN}"

[[role]]
name = "fresh"
match."subject.O" = "Acme Utilities"
not_expiring_within = 30
publish = ["fleet/${san.dns}/up"]

[[role]]
name = "renew-only"
match."subject.O" = "Acme Utilities"
expires_within = 30
publish = ["renew/${subject.CN}"]

[[role]]
name = "observer"
match."subject.O" = "Acme Operations"
subscribe = ["#", "$SYS/#"]
)";
  WritePolicy(policy);
  ASSERT_TRUE(StartBroker(BrokerSetup{})) << broker().Log();
  auto observer = Observer({"fleet/#", "renew/#", kSys + "connections/#"});
  const std::string same = "connections/accepted-same-certificate";
  ASSERT_TRUE(SysValue(*observer, same, 0));
  auto device = [&](const std::string& stem, const std::string& cn, const std::string& dns) {
    return pki_->Device(stem, {.cn = cn, .o = "Acme Utilities", .ou = "", .l = "", .san_dns = {dns}, .san_uri = {}});
  };
  // Publishes `allowed` (delivered to the observer) and `denied` (0x87).
  auto check = [&](const CertFiles& cert, const std::string& id, const std::string& allowed,
                   const std::string& denied) {
    SCOPED_TRACE(id + " allowed " + allowed);
    auto c = NewClient(cert, id);  // MQTT 5, clean start: kept offline (keep_mqtt5_clean_sessions)
    ASSERT_CONNECTS(c);
    EXPECT_EQ(c->Publish(denied, "no", 1), kNotAuthorized);
    EXPECT_EQ(c->Publish(allowed, "yes", 1), 0);
    EXPECT_TRUE(observer->WaitForMessage(allowed).has_value());
    ASSERT_TRUE(c->Disconnect());
  };

  const CertFiles a = device("d1-a", "d-1", "a.example");
  check(a, "d-1", "fleet/a.example/up", "fleet/b.example/up");
  check(a, "d-1", "fleet/a.example/up", "fleet/b.example/up");
  EXPECT_TRUE(SysValue(*observer, same, 1)) << LatestSys(*observer, same);
  // Renewed: same subject and issuer, another SAN.
  const CertFiles b = device("d1-b", "d-1", "b.example");
  check(b, "d-1", "fleet/b.example/up", "fleet/a.example/up");
  check(b, "d-1", "fleet/b.example/up", "fleet/a.example/up");
  EXPECT_TRUE(SysValue(*observer, same, 2)) << LatestSys(*observer, same);
  // Back to the first certificate: read again, not taken for the second.
  check(a, "d-1", "fleet/a.example/up", "fleet/b.example/up");
  EXPECT_TRUE(SysValue(*observer, "connections/accepted", 6)) << LatestSys(*observer, "connections/accepted");
  EXPECT_EQ(LatestSys(*observer, same), 2);
  // A reload: the same certificate is resolved against the new policy.
  WritePolicy(Replace(policy, "publish = [\"fleet/${san.dns}/up\"]", "publish = [\"fleet/${san.dns}/v2\"]"));
  ASSERT_TRUE(broker().Reload()) << broker().Log();
  check(a, "d-1", "fleet/a.example/v2", "fleet/a.example/up");
  EXPECT_TRUE(SysValue(*observer, "connections/accepted", 7)) << LatestSys(*observer, "connections/accepted");
  EXPECT_EQ(LatestSys(*observer, same), 2);

  // "fresh" holds until 30 s before notAfter, 8 s from now (two connects
  // take well under that, sanitizers included); then only "renew-only"
  // does. The same certificate after that is resolved again.
  const int64_t start = static_cast<int64_t>(std::time(nullptr));
  testing::CertBuilder short_lived = pki_->issuing().Issue();
  short_lived.Subject("O", "Acme Utilities").Subject("CN", "d-2").SanDns("c.example").Validity(start - 60, start + 38);
  const CertFiles c = pki_->Write("d2", short_lived);
  check(c, "d-2", "fleet/c.example/v2", "renew/d-2");
  check(c, "d-2", "fleet/c.example/v2", "renew/d-2");
  ASSERT_LT(std::time(nullptr), start + 8) << "too slow to test the time condition";
  while (std::time(nullptr) <= start + 8) std::this_thread::sleep_for(milliseconds(100));
  EXPECT_TRUE(SysValue(*observer, same, 3)) << LatestSys(*observer, same);
  check(c, "d-2", "renew/d-2", "fleet/c.example/v2");
  EXPECT_TRUE(SysValue(*observer, "connections/accepted", 10)) << LatestSys(*observer, "connections/accepted");
  EXPECT_EQ(LatestSys(*observer, same), 3);
}

// The plugin reads a certificate's computed attributes (cert.serial,
// cert.sha256, cert.key, the cert.not_* texts) only when the policy names
// them (Policy::computed): each one named in a topic template or a deny
// decides what it should, also after a reload to a policy naming others.
TEST_F(CertaclTest, TheComputedAttributesAPolicyNamesDecideAtTheBroker) {
  const std::string policy = R"(version = 1
[[role]]
name = "device"
match."subject.O" = "Acme Utilities"
publish = ["serial/${cert.serial}", "key/${cert.key}"]

[[role]]
name = "observer"
match."subject.O" = "Acme Operations"
subscribe = ["#"]

[[deny]]
name = "retired"
match."cert.serial" = "0C02"
connect = true
)";
  WritePolicy(policy);
  ASSERT_TRUE(StartBroker(BrokerSetup{})) << broker().Log();
  auto observer = Observer({"serial/#", "key/#", "sha/#"});
  auto device = [&](const std::string& stem, const std::string& serial) {
    testing::CertBuilder b = pki_->issuing().Issue();
    b.Subject("O", "Acme Utilities").Subject("CN", stem).Serial(serial);
    return pki_->Write(stem, b);
  };
  const CertFiles a = device("c-1", "0C01");
  const CertFiles retired = device("c-2", "0C02");

  auto c1 = NewClient(a, "c-1");
  ASSERT_CONNECTS(c1);
  EXPECT_EQ(c1->Publish("serial/0C02", "no", 1), kNotAuthorized);
  EXPECT_EQ(c1->Publish("key/rsa-2048", "no", 1), kNotAuthorized);
  EXPECT_EQ(c1->Publish("serial/0C01", "yes", 1), 0);
  EXPECT_EQ(c1->Publish("key/ec-p256", "yes", 1), 0);
  EXPECT_TRUE(observer->WaitForMessage("serial/0C01").has_value());
  EXPECT_TRUE(observer->WaitForMessage("key/ec-p256").has_value());
  ASSERT_TRUE(c1->Disconnect());
  EXPECT_EQ(NewClient(retired, "c-2")->Connect(), kNotAuthorized) << "deny on cert.serial";

  // A policy that names cert.sha256 instead: the same certificates are read
  // for it (the offline session of c-1 included).
  auto sha256_of = [](const std::string& pem_file) {
    std::ifstream in(pem_file);
    std::stringstream pem;
    pem << in.rdbuf();
    Identity id;
    std::string error;
    EXPECT_TRUE(Identity::FromPem(pem.str(), &id, &error)) << error;
    const std::vector<std::string>* v = id.Values("cert.sha256");
    return v != nullptr ? v->front() : std::string("?");
  };
  const std::string sha = sha256_of(a.cert);
  WritePolicy(Replace(Replace(policy, "publish = [\"serial/${cert.serial}\", \"key/${cert.key}\"]",
                              "publish = [\"sha/${cert.sha256}\"]"),
                      "match.\"cert.serial\" = \"0C02\"", "match.\"cert.sha256\" = { prefix = \"" + sha + "\" }"));
  ASSERT_TRUE(broker().Reload()) << broker().Log();
  auto again = NewClient(a, "c-1");
  EXPECT_EQ(again->Connect(), kNotAuthorized) << "deny on cert.sha256 after the reload";
  auto c2 = NewClient(retired, "c-2");
  ASSERT_CONNECTS(c2);
  EXPECT_EQ(c2->Publish("serial/0C02", "no", 1), kNotAuthorized);
  EXPECT_EQ(c2->Publish("sha/" + sha, "no", 1), kNotAuthorized);
  const std::string sha2 = sha256_of(retired.cert);
  EXPECT_EQ(c2->Publish("sha/" + sha2, "yes", 1), 0);
  EXPECT_TRUE(observer->WaitForMessage("sha/" + sha2).has_value());
}

// `ca` at a real broker with the CA key prepared (policy/p256_verifier.h):
// meters of the issuing CA get their role; a meter with the same kind of
// subject and no authority key identifier, issued by the root that the
// broker's cafile also trusts, passes TLS and gets none (require_role: the
// CONNACK is 0x87). Each first connect checks one signature.
TEST_F(CertaclTest, ACaConditionAdmitsOnlyTheIssuingCaWithItsKeyPrepared) {
  WritePolicy(kMetersPolicy);
  ASSERT_TRUE(StartBroker(BrokerSetup{})) << broker().Log();
  EXPECT_NE(broker().Log().find("certacl: 1 `ca` key prepared for fast signature checks in "), std::string::npos)
      << broker().Log();
  const std::string verified = "signatures/verified";
  auto observer = Observer({"meters/#", kSys + "signatures/#"});
  constexpr int kMeters = 12;
  for (int i = 0; i < kMeters; ++i) {
    const std::string cn = "m-000001" + std::to_string(10 + i);
    auto m = NewClient(pki_->Meter(cn), cn);
    ASSERT_CONNECTS(m);
    const std::string reading = "meters/zurich/" + cn + "/reading";
    EXPECT_EQ(m->Publish(reading, "1", 1), 0);
    EXPECT_TRUE(observer->WaitForMessage(reading).has_value()) << reading;
  }
  DeviceSpec spec;
  spec.cn = "m-00000199";
  spec.o = "Acme Utilities";
  spec.ou = "meter";
  spec.l = "zurich";
  testing::CertBuilder b = Pki::Builder(spec);
  b.NoAuthorityKeyId().SignedBy(pki_->root().cert.get(), pki_->root().key.get());
  const CertFiles rogue = pki_->Write("rogue-meter", b);
  EXPECT_EQ(NewClient(rogue, "m-00000199")->Connect(), kNotAuthorized) << broker().Log();
  // The observer, the meters, and the rogue: each verified once.
  EXPECT_TRUE(SysValue(*observer, verified, 1 + kMeters + 1)) << LatestSys(*observer, verified);
}

// A `ca` key that gets no table (here P-384) is named in the log, with why;
// the P-256 one is prepared.
TEST_F(CertaclTest, ACaKeyWithoutATableIsNamedInTheLog) {
  const testing::TestCa p384 = testing::TestCa::Create("Acme P-384 CA", testing::KeyType::kEcP384);
  testing::WriteFile(dir_.File("pki/p384-ca.pem"), testing::ToPem(p384.cert.get()));
  WritePolicy(std::string(kMetersPolicy) +
              "\n[[role]]\nname = \"p384\"\nmatch.\"subject.O\" = \"Other\"\nca = \"pki/p384-ca.pem\"\n"
              "subscribe = [\"other/#\"]\n");
  ASSERT_TRUE(StartBroker(BrokerSetup{})) << broker().Log();
  const std::string log = broker().Log();
  EXPECT_NE(log.find("certacl: 1 `ca` key prepared for fast signature checks in "), std::string::npos) << log;
  const size_t named = log.find("certacl: `ca` pki/p384-ca.pem (");
  ASSERT_NE(named, std::string::npos) << log;
  EXPECT_NE(log.find("): not a P-256 key, so its signature checks use X509_verify", named), std::string::npos) << log;
  auto m1 = NewClient(m1_cert_, kM1);  // the P-256 key's role still decides
  ASSERT_CONNECTS(m1);
}

TEST_F(CertaclTest, PerListenerSettingsGiveEachListenerItsOwnPolicy) {
  const std::string meters = WritePolicy(kMetersPolicy);
  const std::string bootstrap = WritePolicy(kBootstrapPolicy, "bootstrap.toml");
  BrokerSetup s;
  s.per_listener = true;
  BrokerOptions o;
  o.dir = dir_.path();
  o.per_listener_settings = true;
  ListenerOptions main = Listener(s);
  main.plugin = Plugin(meters, "main", s);
  ListenerOptions boot = Listener(s);
  boot.plugin = Plugin(bootstrap, "bootstrap", s);
  o.listeners = {main, boot};
  ASSERT_TRUE(StartBroker(o)) << broker().Log();

  auto observer = Observer({"#", "$enroll/#"}, 0);
  // m-00000001 on the bootstrap listener: enrollment only.
  auto boot1 = NewClient(m1_cert_, kM1, Mqtt::kV5, 1);
  ASSERT_CONNECTS(boot1);
  EXPECT_EQ(boot1->Subscribe(std::vector<std::string>{"$enroll/m-00000001/#", kM1Cmd, "meters/broadcast/#"}, 1),
            (std::vector<int>{1, kNotAuthorized, kNotAuthorized}));
  EXPECT_EQ(boot1->Publish(kM1Reading, "not here", 1), kNotAuthorized);
  EXPECT_EQ(boot1->Publish("$enroll/m-00000002/simplereenroll", "not yours", 1), kNotAuthorized);
  EXPECT_EQ(boot1->Publish("$enroll/m-00000001/simplereenroll", "csr", 1), 0);
  // m-00000002 on the main listener: the meter policy, no enrollment topics.
  auto main2 = NewClient(m2_cert_, kM2, Mqtt::kV311, 0);
  ASSERT_CONNECTS(main2);
  EXPECT_EQ(main2->Subscribe(std::vector<std::string>{"$enroll/m-00000002/#", kM2Cmd}, 1),
            (std::vector<int>{kSubackFailureV311, 1}));
  EXPECT_EQ(main2->Publish("$enroll/m-00000002/simplereenroll", "csr", 1), 0);  // 3.1.1: dropped silently
  EXPECT_EQ(main2->Publish(kM2Reading, "marker", 1), 0);
  ASSERT_TRUE(observer->WaitForMessage(kM2Reading).has_value());
  EXPECT_EQ(TopicsExcept(*observer, "$SYS"),
            (std::vector<std::string>{"$enroll/m-00000001/simplereenroll", kM2Reading}));
  // The observer's privileges exist only on the main listener.
  auto observer_boot = NewClient(observer_cert_, "observer-boot", Mqtt::kV5, 1);
  EXPECT_EQ(observer_boot->Connect(), kNotAuthorized) << "client id must be the CN there too";
  // With its own CN as client id it gets in (taking over its own session
  // from the main listener), with the bootstrap policy's rights only.
  auto observer_boot2 = NewClient(observer_cert_, "observer", Mqtt::kV5, 1);
  ASSERT_CONNECTS(observer_boot2);
  EXPECT_EQ(observer_boot2->Subscribe(std::vector<std::string>{"#", "$enroll/#", "$enroll/observer/#"}, 1),
            (std::vector<int>{kNotAuthorized, kNotAuthorized, 1}));
  // A head-end on the bootstrap listener cannot command.
  auto headend_boot = NewClient(headend_cert_, "head-end-1", Mqtt::kV5, 1);
  ASSERT_CONNECTS(headend_boot);
  EXPECT_EQ(headend_boot->Publish("meters/zurich/m-00000002/cmd/x", "x", 1), kNotAuthorized);
}

// ---------------------------------------------------------------------------
// $SYS counters.

TEST_P(CertaclCoreTest, CountersArePublishedUnderSys) {
  ASSERT_TRUE(StartBroker(Base())) << broker().Log();
  auto observer = Observer({kSys + "#"});
  // With per_listener_settings true, Mosquitto 2.0 sends plugins no
  // MOSQ_EVT_TICK: the counters can only go out with the next event at
  // least sys_interval after the last publish. There, the observer makes
  // one (a repeated SUBSCRIBE) every 250 ms while it waits.
  const bool poke = GetParam();
  auto value = [&](const std::string& name, long long want) { return SysValue(*observer, name, want, poke); };
  auto latest = [&](const std::string& name) { return LatestSys(*observer, name); };
  ASSERT_TRUE(value("connections/refused/no-role", 0)) << ::testing::PrintToString(Topics(*observer));
  ASSERT_TRUE(value("connections/refused/client-id-in-use", 0));
  for (const char* name : {"connections/accepted", "connections/refused/no-role",
                           "connections/refused/client-id-mismatch", "connections/refused/client-id-ambiguous",
                           "connections/refused/client-id-unresolvable", "connections/refused/deny-entry",
                           "connections/refused/malformed-certificate", "connections/refused/no-certificate",
                           "connections/refused/client-id-in-use", "acl/publish/allowed", "acl/publish/denied",
                           "acl/subscribe/allowed", "acl/subscribe/denied", "acl/read/allowed", "acl/read/denied",
                           "acl/read/covered", "sessions/connected", "sessions/offline", "policy/reloads", "policy/reload-failures"}) {
    EXPECT_TRUE(observer->WaitForMessage(kSys + name, milliseconds(3000)).has_value()) << name;
  }

  CertFiles nobody = pki_->Device(
      "nobody", {.cn = "nobody", .o = "Someone Else", .ou = "", .l = "", .san_dns = {}, .san_uri = {}});
  auto n1 = NewClient(nobody, "nobody");
  EXPECT_EQ(n1->Connect(), kNotAuthorized);
  auto n2 = NewClient(nobody, "nobody", Mqtt::kV311);
  EXPECT_EQ(n2->Connect(), kNotAuthorizedV311);
  auto thief = NewClient(m2_cert_, kM1);
  EXPECT_EQ(thief->Connect(), kNotAuthorized);
  auto quarantined = NewClient(pki_->Meter("m-00000013"), "m-00000013");
  EXPECT_EQ(quarantined->Connect(), kNotAuthorized);
  auto m1 = NewClient(m1_cert_, kM1);
  ASSERT_CONNECTS(m1);
  EXPECT_EQ(m1->Publish(kM2Reading, "x", 1), kNotAuthorized);
  EXPECT_EQ(m1->Subscribe(kM2Cmd, 1), kNotAuthorized);

  EXPECT_TRUE(value("connections/refused/no-role", 2)) << latest("connections/refused/no-role");
  EXPECT_TRUE(value("connections/refused/client-id-mismatch", 1)) << latest("connections/refused/client-id-mismatch");
  EXPECT_TRUE(value("connections/refused/deny-entry", 1)) << latest("connections/refused/deny-entry");
  EXPECT_TRUE(value("connections/accepted", 2)) << latest("connections/accepted");  // observer + m1
  EXPECT_TRUE(value("sessions/connected", 2)) << latest("sessions/connected");
  EXPECT_TRUE(value("acl/publish/denied", 1)) << latest("acl/publish/denied");
  EXPECT_TRUE(value("acl/subscribe/denied", 1)) << latest("acl/subscribe/denied");

  ASSERT_TRUE(m1->Disconnect());
  ASSERT_TRUE(broker().Reload());
  EXPECT_TRUE(value("sessions/connected", 1)) << latest("sessions/connected");
  EXPECT_TRUE(value("policy/reloads", 1)) << latest("policy/reloads");
  WritePolicy("version = 1\n[[role]\n");
  ASSERT_TRUE(broker().Reload());
  EXPECT_TRUE(value("policy/reload-failures", 1)) << latest("policy/reload-failures");
}

TEST_F(CertaclTest, CountersGoUnderTheInstanceName) {
  BrokerOptions o = Options({});
  o.plugin.name = "meters";
  ASSERT_TRUE(StartBroker(o)) << broker().Log();
  auto observer = Observer({kSys + "#"});
  auto m = observer->WaitForMessage(kSys + "meters/connections/accepted", milliseconds(4000));
  ASSERT_TRUE(m.has_value()) << ::testing::PrintToString(Topics(*observer));
  for (const std::string& t : Topics(*observer)) EXPECT_EQ(t.rfind(kSys + "meters/", 0), 0U) << t;
}

// ---------------------------------------------------------------------------
// Start-up failures.

TEST_P(CertaclCoreTest, MissingOrBrokenPolicyStopsTheBrokerAtStartUp) {
  struct Case {
    std::string what;
    std::string policy_text;  // empty: no file at all
  };
  const std::string missing_ca = Replace(kMetersPolicy, "ca = \"pki/issuing-ca.pem\"\nmax_qos = 1",
                                         "ca = \"pki/no-such-ca.pem\"\nmax_qos = 1");
  for (const Case& c : {Case{"missing file", ""}, Case{"syntax error", "version = 1\n[[role]\nname = \"x\"\n"},
                        Case{"unknown key", "version = 1\n[[role]]\nname = \"r\"\npubish = []\n"},
                        Case{"missing ca file", missing_ca}}) {
    SCOPED_TRACE(c.what);
    std::string policy = dir_.File("policy.toml");
    std::remove(policy.c_str());
    if (!c.policy_text.empty()) WritePolicy(c.policy_text);
    BrokerOptions o = Options(Base());
    if (c.policy_text.empty()) std::remove(policy.c_str());  // Options() writes a default one
    Broker b(o);
    const size_t from = b.LogSize();
    int status = b.StartExpectingExit();
    EXPECT_NE(status, -1) << "still running: it started without a policy";
    EXPECT_NE(status, 0);
    std::string log = b.Log().substr(from);
    EXPECT_NE(log.find("certacl"), std::string::npos) << log;
    EXPECT_NE(log.find(policy), std::string::npos) << "the message names the policy file:\n" << log;
  }
  // No plugin_opt_policy at all.
  BrokerOptions o = Options(Base());
  if (o.per_listener_settings) {
    o.listeners[0].plugin.policy.clear();
  } else {
    o.plugin.policy.clear();
  }
  Broker b(o);
  const size_t from = b.LogSize();
  int status = b.StartExpectingExit();
  EXPECT_NE(status, -1);
  EXPECT_NE(status, 0);
  EXPECT_NE(b.Log().substr(from).find("certacl"), std::string::npos) << b.Log();
}

// ---------------------------------------------------------------------------
// Per-session state: no growth over many connect/disconnect cycles.

// Who connects in cycle i.
struct CycleClient {
  const CertFiles* cert;
  std::string id;
  Mqtt version;
};
using CyclePlan = std::function<CycleClient(int i)>;

// Runs cycles [first, first + count), each a full TLS connect, CONNACK and
// DISCONNECT, from `threads` threads; thread t takes the cycles i with
// i % threads == t, so a plan that derives the client id from i never has
// two threads on one id. Returns the number of cycles that failed.
int RunCycles(int first, int count, int threads, int port, const std::string& cafile, const CyclePlan& plan) {
  std::atomic<int> failed{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = first + t; i < first + count; i += threads) {
        CycleClient who = plan(i);
        ClientOptions o;
        o.id = who.id;
        o.port = port;
        o.cafile = cafile;
        o.certfile = who.cert->cert;
        o.keyfile = who.cert->key;
        o.version = who.version;
        Client c(o);
        if (c.Connect() != 0) {
          if (failed++ < 3) std::fprintf(stderr, "cycle %d (%s): %s\n", i, who.id.c_str(), c.last_error().c_str());
          continue;
        }
        if (!c.Disconnect()) ++failed;
      }
    });
  }
  for (std::thread& w : workers) w.join();
  return failed.load();
}

// A policy without the client-id binding, so that a handful of certificates
// can connect under any number of client ids.
std::string UnboundPolicy() { return Replace(kMetersPolicy, "client_id = \"${subject.CN}\"\n", ""); }

class CertaclCyclesTest : public CertaclTest {
 protected:
  void MakeMeters(int n) {
    for (int i = 0; i < n; ++i) {
      char cn[16];
      std::snprintf(cn, sizeof cn, "m-%08d", 100 + i);
      meters_.push_back(pki_->Meter(cn));
      meter_ids_.push_back(cn);
    }
  }
  // Client id = CN (the meter policy's binding), 16 meters, even ones MQTT 5.
  CycleClient Bound(int i) const {
    size_t k = static_cast<size_t>(i) % meters_.size();
    return {&meters_[k], meter_ids_[k], k % 2 == 0 ? Mqtt::kV5 : Mqtt::kV311};
  }
  // A new client id every cycle (UnboundPolicy()).
  CycleClient Unique(int i, Mqtt v) const {
    return {&meters_[static_cast<size_t>(i) % meters_.size()], "u-" + std::to_string(i), v};
  }

  // The latest value of $SYS counter `name` (after waiting for a publish
  // made after this call), or -1.
  long long CounterNow(const std::string& name) {
    auto observer = Observer({kSys + name});
    std::optional<Message> m;
    // The retained value may be up to sys_interval old: take the second one.
    const auto deadline = std::chrono::steady_clock::now() + milliseconds(4000);
    size_t seen = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!observer->WaitForMessages(seen + 1, milliseconds(500))) continue;
      seen = observer->MessageCount();
      if (seen >= 2) return ToNumber(observer->Messages().back().payload);
    }
    return -1;
  }

  // Warm-up, then `cycles` more: the broker's RSS may grow by < 512 KiB.
  // Under a sanitizer RSS says nothing (and cycles are slow): a few hundred
  // cycles run for the leak check at shutdown only.
  void ExpectNoGrowth(int warmup, int cycles, const CyclePlan& plan) {
    if (UnderSanitizer()) {
      warmup = 100;
      cycles = 200;
    }
    ASSERT_EQ(RunCycles(0, warmup, 2, broker().port(), pki_->ca_bundle(), plan), 0);
    const long before = broker().RssKb();
    const auto start = std::chrono::steady_clock::now();
    ASSERT_EQ(RunCycles(warmup, cycles, 2, broker().port(), pki_->ca_bundle(), plan), 0);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const long after = broker().RssKb();
    std::printf("broker VmRSS after %d warm-up cycles: %ld KiB; after %d more: %ld KiB (%+ld KiB, %.1f s)\n", warmup,
                before, cycles, after, after - before, seconds);
    if (UnderSanitizer()) return;
    // mosquitto alone grows by ~40 KiB per 1,000 cycles here (allocator);
    // 256 bytes kept per session would add 500 KiB.
    EXPECT_LT(after - before, 512) << "broker RSS grew by " << (after - before) << " KiB over " << cycles
                                   << " cycles";
  }

  std::vector<CertFiles> meters_;
  std::vector<std::string> meter_ids_;
};

TEST_F(CertaclCyclesTest, NoGrowthOverReconnectsOfAFleetWithBoundClientIds) {
  ASSERT_TRUE(StartBroker(BrokerSetup{})) << broker().Log();
  MakeMeters(16);
  ExpectNoGrowth(500, 2000, [&](int i) { return Bound(i); });
  EXPECT_EQ(CounterNow("sessions/connected"), 1);  // the observer asking
  EXPECT_LE(CounterNow("sessions/offline"), 8);    // at most the 8 MQTT 5 meters
}

TEST_F(CertaclCyclesTest, NoGrowthOverCleanSessionsWithNewClientIds) {
  WritePolicy(UnboundPolicy());
  ASSERT_TRUE(StartBroker(BrokerSetup{})) << broker().Log();
  MakeMeters(4);
  ExpectNoGrowth(500, 2000, [&](int i) { return Unique(i, Mqtt::kV311); });
  EXPECT_EQ(CounterNow("sessions/connected"), 1);
  EXPECT_EQ(CounterNow("sessions/offline"), 0) << "MQTT 3.1.1 clean sessions end with the connection";
}

// MQTT 5 sessions: Mosquitto 2.0 does not tell plugins a session's expiry
// interval, so certacl keeps the identity of every MQTT 5 session that
// disconnects (a queued message may need a READ check), up to
// plugin_opt_max_offline_sessions, oldest dropped first.
TEST_F(CertaclCyclesTest, OfflineMqtt5SessionsAreCappedByMaxOfflineSessions) {
  WritePolicy(UnboundPolicy());
  BrokerOptions o = Options({});
  o.plugin.extra.emplace_back("max_offline_sessions", "100");
  ASSERT_TRUE(StartBroker(o)) << broker().Log();
  MakeMeters(4);
  ASSERT_EQ(RunCycles(0, 600, 2, broker().port(), pki_->ca_bundle(), [&](int i) { return Unique(i, Mqtt::kV5); }),
            0);
  EXPECT_EQ(CounterNow("sessions/offline"), 100);
}

TEST_F(CertaclCyclesTest, CleanStartMqtt5ClientsAreForgottenWhenTheOperatorSaysSo) {
  WritePolicy(UnboundPolicy());
  BrokerOptions o = Options({});
  o.plugin.extra.emplace_back("keep_mqtt5_clean_sessions", "false");
  ASSERT_TRUE(StartBroker(o)) << broker().Log();
  MakeMeters(4);
  ASSERT_EQ(RunCycles(0, 300, 2, broker().port(), pki_->ca_bundle(), [&](int i) { return Unique(i, Mqtt::kV5); }),
            0);
  EXPECT_EQ(CounterNow("sessions/offline"), 0);
}

// The measurement behind "no growth over 100,000 connect/disconnect cycles".
// Not run by default (minutes). Run with
//   build-it/tests/integration_tests --gtest_also_run_disabled_tests
//       --gtest_filter='*DISABLED_Rss*'
// CERTACL_CYCLES sets the number of cycles (default 100000); the table goes
// to stdout. The variants: a fleet of 16 meters (client id = CN, half MQTT 5)
// reconnecting; a new client id every cycle with MQTT 3.1.1 clean sessions;
// the same with MQTT 5 (kept as offline sessions, see above); and mosquitto
// alone, without the plugin.
void MeasureCycles(Broker& broker, const std::string& cafile, const CyclePlan& plan, const char* label) {
  const char* env = std::getenv("CERTACL_CYCLES");
  const int total = env != nullptr ? std::atoi(env) : 100000;
  const int step = std::max(1000, total / 10);
  std::printf("%s: %d connect/disconnect cycles, 2 client threads, broker pid %d\n", label, total, broker.pid());
  std::printf("%10s %12s %10s\n", "cycles", "VmRSS KiB", "seconds");
  std::printf("%10d %12ld %10.1f\n", 0, broker.RssKb(), 0.0);
  const auto start = std::chrono::steady_clock::now();
  int failed = 0;
  for (int done = 0; done < total;) {
    int n = std::min(step, total - done);
    failed += RunCycles(done, n, 2, broker.port(), cafile, plan);
    done += n;
    std::printf("%10d %12ld %10.1f\n", done, broker.RssKb(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    std::fflush(stdout);
  }
  EXPECT_EQ(failed, 0);
}

BrokerOptions QuietLog(BrokerOptions o) {
  o.log_types = {"error", "warning"};
  return o;
}

TEST_F(CertaclCyclesTest, DISABLED_RssFleetWithBoundClientIds) {
  ASSERT_TRUE(StartBroker(QuietLog(Options({})))) << broker().Log();
  MakeMeters(16);
  MeasureCycles(broker(), pki_->ca_bundle(), [&](int i) { return Bound(i); }, "certacl, 16 meters, id = CN");
  std::printf("sessions/offline at the end: %lld\n", CounterNow("sessions/offline"));
}

TEST_F(CertaclCyclesTest, DISABLED_RssNewClientIdsMqtt311) {
  WritePolicy(UnboundPolicy());
  ASSERT_TRUE(StartBroker(QuietLog(Options({})))) << broker().Log();
  MakeMeters(4);
  MeasureCycles(broker(), pki_->ca_bundle(), [&](int i) { return Unique(i, Mqtt::kV311); },
                "certacl, new client id per cycle, MQTT 3.1.1 clean session");
  std::printf("sessions/offline at the end: %lld\n", CounterNow("sessions/offline"));
}

TEST_F(CertaclCyclesTest, DISABLED_RssNewClientIdsMqtt5) {
  WritePolicy(UnboundPolicy());
  ASSERT_TRUE(StartBroker(QuietLog(Options({})))) << broker().Log();
  MakeMeters(4);
  MeasureCycles(broker(), pki_->ca_bundle(), [&](int i) { return Unique(i, Mqtt::kV5); },
                "certacl, new client id per cycle, MQTT 5 clean start, session expiry 0");
  std::printf("sessions/offline at the end: %lld\n", CounterNow("sessions/offline"));
}

TEST_F(CertaclCyclesTest, DISABLED_RssWithoutPlugin) {
  BrokerOptions o = QuietLog(Options({}));
  o.plugin = {};
  o.allow_anonymous = true;
  ASSERT_TRUE(StartBroker(o)) << broker().Log();
  MakeMeters(4);
  MeasureCycles(broker(), pki_->ca_bundle(), [&](int i) { return Unique(i, i % 2 == 0 ? Mqtt::kV5 : Mqtt::kV311); },
                "mosquitto alone, new client id per cycle, MQTT 5 / 3.1.1 alternating");
}

}  // namespace
}  // namespace certacl::integration
