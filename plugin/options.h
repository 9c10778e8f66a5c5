// options.h: the plugin_opt_* settings of one certacl plugin instance, as
// given in mosquitto.conf. Parsed once at mosquitto_plugin_init; an unknown
// or malformed option stops the broker (never start with a setting ignored).
#ifndef CERTACL_PLUGIN_OPTIONS_H_
#define CERTACL_PLUGIN_OPTIONS_H_

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace certacl::plugin {

struct Options {
  std::string policy;            // plugin_opt_policy (required)
  std::string state_file;        // plugin_opt_state_file: identities of persistent sessions
  std::string state_writer;      // plugin_opt_state_writer: default certacl-state-writer beside the plugin
  std::string name;              // plugin_opt_name: $SYS/broker/certacl/<name>/...
  int sys_interval = 10;         // plugin_opt_sys_interval, seconds; 0 = never publish
  int log_refusals_per_minute = 60;  // plugin_opt_log_refusals_per_minute
  size_t max_offline_sessions = 100000;  // plugin_opt_max_offline_sessions
  // plugin_opt_keep_mqtt5_clean_sessions: Mosquitto 2.0 does not tell
  // plugins an MQTT 5 session's expiry, so a clean-start MQTT 5 client may
  // still have a session after it disconnects. true (default): keep its
  // certificate for READ checks of queued messages; false: the fleet never
  // combines clean start with a session expiry, forget it at disconnect.
  bool keep_mqtt5_clean_sessions = true;

  // "$SYS/broker/certacl" or "$SYS/broker/certacl/<name>".
  std::string SysPrefix() const;
};

// `pairs` are (key, value) without the "plugin_opt_" prefix, as Mosquitto
// passes them. Returns "" on success, otherwise the error sentence.
std::string ParseOptions(const std::vector<std::pair<std::string, std::string>>& pairs, Options* out);

}  // namespace certacl::plugin

#endif  // CERTACL_PLUGIN_OPTIONS_H_
