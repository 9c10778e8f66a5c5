// Tests for enroll-bridge/config.h: the documented bridge.toml loads with
// its defaults, and every mistake is a file:line:column error.
#include "enroll-bridge/config.h"

#include <gtest/gtest.h>

namespace certacl::enroll {
namespace {

constexpr char kIssueExample[] = R"(
[mqtt]      # the broker, and the bridge's own client certificate
host = "127.0.0.1"
port = 8883
cafile = "broker-ca.pem"
certfile = "bridge.crt"
keyfile = "bridge.key"
prefix = "$enroll"
[backend]
kind = "local-ca"      # or "est"
[local_ca]
certfile = "issuing-ca.crt"
keyfile = "issuing-ca.key"
days = 365
[est]
url = "https://127.0.0.1:8085/.well-known/est"
cafile = "est-server-ca.pem"
certfile = "ra.crt"    # optional: TLS client certificate (RA mode)
keyfile = "ra.key"
username = ""          # optional: HTTP Basic
password = ""
)";

std::optional<BridgeConfig> Load(const std::string& text, std::vector<std::string>* errors) {
  return LoadBridgeConfigString(text, "bridge.toml", "/etc/certacl", errors);
}

TEST(BridgeConfig, TheVersionOneContractLoadsWithDefaults) {
  std::vector<std::string> errors;
  std::optional<BridgeConfig> c = Load(kIssueExample, &errors);
  ASSERT_TRUE(c) << (errors.empty() ? "" : errors[0]);
  EXPECT_EQ(c->mqtt.host, "127.0.0.1");
  EXPECT_EQ(c->mqtt.port, 8883);
  EXPECT_EQ(c->mqtt.cafile, "/etc/certacl/broker-ca.pem");  // relative to the file
  EXPECT_EQ(c->mqtt.prefix, "$enroll");
  EXPECT_EQ(c->mqtt.share_group, "certacl-enroll");
  EXPECT_EQ(c->backend, "local-ca");
  EXPECT_EQ(c->local_ca.profile.days, 365);
  EXPECT_EQ(c->local_ca.profile.extended_key_usage, "clientAuth");
  EXPECT_EQ(c->est.url, "https://127.0.0.1:8085/.well-known/est");
  EXPECT_EQ(c->est.keyfile, "/etc/certacl/ra.key");
  EXPECT_EQ(c->limits.max_payload_bytes, 16384u);
  EXPECT_EQ(c->limits.per_device_per_hour, 10);
  EXPECT_FALSE(c->enroll.simpleenroll);
  EXPECT_FALSE(c->enroll.renewal_fraction);
  EXPECT_TRUE(c->keys.allow_ec_p256);
  EXPECT_EQ(c->keys.min_rsa_bits, 2048);
}

TEST(BridgeConfig, OptionalKeysParse) {
  std::vector<std::string> errors;
  std::optional<BridgeConfig> c = Load(std::string(kIssueExample) + R"(
[enroll]
simpleenroll = true
renewal_window = "33%"
workers = 2
max_pending = "1h"
[limits]
per_device_per_hour = 0
[keys]
rsa_min_bits = 0
)", &errors);
  ASSERT_TRUE(c) << (errors.empty() ? "" : errors[0]);
  EXPECT_TRUE(c->enroll.simpleenroll);
  ASSERT_TRUE(c->enroll.renewal_fraction);
  EXPECT_DOUBLE_EQ(*c->enroll.renewal_fraction, 0.33);
  EXPECT_EQ(c->enroll.workers, 2);
  EXPECT_EQ(c->enroll.max_pending_s, 3600);
  EXPECT_EQ(c->limits.per_device_per_hour, 0);
  EXPECT_EQ(c->keys.min_rsa_bits, 0);
}

TEST(BridgeConfig, EveryMistakeIsReportedWithItsPlace) {
  struct Case {
    std::string text;
    std::string error;
  } cases[] = {
      {"[mqtt]\nhost = 1\n", "bridge.toml:2:8: expected a string"},
      {"[mqtt]\nport = 0\n", "bridge.toml:2:8: must be between 1 and 65535"},
      {"[mqtt]\nprefix = \"$enroll/#\"\n", "bridge.toml:2:10: prefix must be a topic name without wildcards or a trailing '/'"},
      {"[mqtt]\nhots = \"x\"\n", "bridge.toml:2:8: unknown key 'hots' in [mqtt]"},
      {"[backend]\nkind = \"cmp\"\n", "[backend] kind must be \"local-ca\" or \"est\", not \"cmp\""},
      {"[est]\nurl = \"http://ca/.well-known/est\"\n", "bridge.toml:2:7: url must start with https://"},
      {"[enroll]\nrenewal_window = \"150%\"\n", "bridge.toml:2:18: renewal_window percentage must be in (0, 100]"},
      {"[keys]\nrsa_min_bits = 1024\n", "bridge.toml:2:16: rsa_min_bits must be 0 (no RSA) or at least 2048"},
      {"[local_ca]\nextended_key_usage = \"clientAuht\"\n",
       "[local_ca] extended_key_usage \"clientAuht\" is not valid OpenSSL extension syntax"},
      {"[mqtt\n", "bridge.toml:1:"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> errors;
    EXPECT_FALSE(Load(c.text, &errors)) << c.text;
    bool found = false;
    for (const std::string& e : errors) found = found || e.find(c.error) != std::string::npos;
    EXPECT_TRUE(found) << c.text << "\nwant: " << c.error << "\ngot: " << (errors.empty() ? "(none)" : errors[0]);
  }
}

TEST(BridgeConfig, MissingRequiredKeysAreNamed) {
  std::vector<std::string> errors;
  EXPECT_FALSE(Load("[backend]\nkind = \"est\"\n", &errors));
  std::string all;
  for (const std::string& e : errors) all += e + "\n";
  EXPECT_NE(all.find("missing [mqtt]"), std::string::npos) << all;
  EXPECT_NE(all.find("needs [est] url and cafile"), std::string::npos) << all;
}

TEST(BridgeConfig, AnUnreadableFileIsAClearError) {
  std::vector<std::string> errors;
  EXPECT_FALSE(LoadBridgeConfig("/nonexistent/bridge.toml", &errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "/nonexistent/bridge.toml: cannot read the configuration file: No such file or directory");
}

// The configurations shipped in examples/enroll-bridge/ load as written.
TEST(BridgeConfig, ExampleConfigurationsLoad) {
  for (const char* name : {"bridge-est.toml", "bridge-local-ca.toml"}) {
    std::vector<std::string> errors;
    std::optional<BridgeConfig> c =
        LoadBridgeConfig(std::string(CERTACL_SOURCE_DIR) + "/examples/enroll-bridge/" + name, &errors);
    EXPECT_TRUE(c) << name << ": " << (errors.empty() ? "" : errors[0]);
    if (c) {
      EXPECT_EQ(c->mqtt.bridge_prefix, "certacl/enroll-requests") << name;
    }
  }
}

}  // namespace
}  // namespace certacl::enroll
