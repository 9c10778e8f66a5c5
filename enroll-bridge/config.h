// config.h: bridge.toml, the enroll bridge's configuration (docs/enroll.md
// has every key with its default; README shows a complete file).
//
// LoadBridgeConfig() reads and checks the whole file once: unknown keys,
// wrong types, out-of-range values and missing required keys are errors
// with file:line:column, all reported at once, and nothing is returned, so
// the program can exit non-zero with a clear message. Relative file names
// are resolved against the directory of the configuration file. Files are
// only named here; the backends read them (and report unreadable ones).
//
// The keys of the version 1 contract ([mqtt] host port cafile certfile
// keyfile prefix, [backend] kind, [local_ca] certfile keyfile days, [est]
// url cafile certfile keyfile username password) are never renamed.
#ifndef CERTACL_ENROLL_BRIDGE_CONFIG_H_
#define CERTACL_ENROLL_BRIDGE_CONFIG_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "enroll-bridge/csr_check.h"
#include "enroll-bridge/est_backend.h"  // EstConfig, the [est] table
#include "enroll-bridge/local_ca.h"     // CertProfile, the [local_ca] profile

namespace certacl::enroll {

struct MqttConfig {
  std::string host = "127.0.0.1";
  int port = 8883;
  std::string cafile;    // required: the broker's CA
  std::string certfile;  // required: the bridge's own client certificate
  std::string keyfile;   // required
  std::string prefix = "$enroll";
  // Where the plugin re-files stamped requests ([enroll] bridge_prefix in the
  // policy; keep them equal). Default: "certacl/enroll-requests" for a `$`
  // prefix (Mosquitto 2.0 cannot share `$` topics), else the prefix.
  std::string bridge_prefix;
  std::string client_id;  // default: the CN of certfile
  std::string share_group = "certacl-enroll";  // "" = plain subscription (one bridge)
  // Where bridges tell each other about their jobs (retained records under
  // {state_topic}/jobs/), so a duplicate landing on another bridge never
  // reaches the CA again; "" = off (one bridge).
  std::string state_topic = "certacl/enroll-bridges";
  int keepalive_s = 30;
  int64_t session_expiry_s = 3600;  // requests queue in the broker while the bridge restarts
  int64_t response_expiry_s = 3600;  // Message Expiry Interval of every answer
};

struct LocalCaConfig {
  std::string certfile;
  std::string keyfile;
  CertProfile profile;  // days, backdate, key_usage, extended_key_usage
};

struct EnrollPolicyConfig {
  bool simpleenroll = false;   // first enrollment through a bootstrap role
  // Renew only inside the last `renewal_window` of the current certificate:
  // a fraction of its lifetime (0 < f <= 1), or absent (any time).
  std::optional<double> renewal_fraction;
  std::optional<int64_t> renewal_seconds;
  std::vector<std::string> expected_ca;  // files: issued certificates must chain to one; default: the CA's /cacerts
  int workers = 4;
  int64_t max_pending_s = 24 * 3600;     // give up on a CA that keeps answering 202
  int64_t duplicate_ttl_s = 24 * 3600;   // answers kept for duplicates
  int64_t upstream_retry_after_s = 30;   // retryAfter told to devices when the CA is unavailable
};

struct LimitsConfig {
  size_t max_payload_bytes = 16 * 1024;
  int per_device_per_hour = 10;  // new requests (not duplicates); 0 = no limit
  size_t queue = 1000;           // requests waiting for a worker
};

struct BridgeConfig {
  std::string file;
  MqttConfig mqtt;
  std::string backend;  // "local-ca" or "est"
  LocalCaConfig local_ca;
  EstConfig est;
  EnrollPolicyConfig enroll;
  LimitsConfig limits;
  KeyPolicy keys;
};

// Parses and checks `path`. On failure returns nullopt and appends one
// "file:line:column: message" line per problem to *errors.
std::optional<BridgeConfig> LoadBridgeConfig(const std::string& path, std::vector<std::string>* errors);
std::optional<BridgeConfig> LoadBridgeConfigString(const std::string& text, const std::string& name,
                                                   const std::string& base_dir, std::vector<std::string>* errors);

}  // namespace certacl::enroll

#endif  // CERTACL_ENROLL_BRIDGE_CONFIG_H_
