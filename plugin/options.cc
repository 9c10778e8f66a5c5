// options.cc: plugin_opt_* parsing.
#include "plugin/options.h"

#include <charconv>

namespace certacl::plugin {
namespace {

bool ParseInt(const std::string& v, long long min, long long max, long long* out) {
  long long n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || n < min || n > max) return false;
  *out = n;
  return true;
}

}  // namespace

std::string Options::SysPrefix() const {
  return name.empty() ? "$SYS/broker/certacl" : "$SYS/broker/certacl/" + name;
}

std::string ParseOptions(const std::vector<std::pair<std::string, std::string>>& pairs, Options* out) {
  for (const auto& [key, value] : pairs) {
    long long n = 0;
    if (key == "policy") {
      out->policy = value;
    } else if (key == "state_file") {
      out->state_file = value;
    } else if (key == "state_writer") {
      if (value.empty() || value[0] != '/') return "plugin_opt_state_writer must be an absolute path, got \"" + value + "\"";
      out->state_writer = value;
    } else if (key == "name") {
      if (value.empty() || value.find_first_of("/+#") != std::string::npos) {
        return "plugin_opt_name \"" + value + "\" must be non-empty and contain no '/', '+' or '#'";
      }
      out->name = value;
    } else if (key == "sys_interval") {
      if (!ParseInt(value, 0, 86400, &n)) return "plugin_opt_sys_interval must be 0..86400 seconds, got \"" + value + "\"";
      out->sys_interval = static_cast<int>(n);
    } else if (key == "log_refusals_per_minute") {
      if (!ParseInt(value, 0, 1000000, &n)) {
        return "plugin_opt_log_refusals_per_minute must be 0..1000000, got \"" + value + "\"";
      }
      out->log_refusals_per_minute = static_cast<int>(n);
    } else if (key == "max_offline_sessions") {
      if (!ParseInt(value, 0, 100000000, &n)) {
        return "plugin_opt_max_offline_sessions must be 0..100000000, got \"" + value + "\"";
      }
      out->max_offline_sessions = static_cast<size_t>(n);
    } else if (key == "keep_mqtt5_clean_sessions") {
      if (value != "true" && value != "false") {
        return "plugin_opt_keep_mqtt5_clean_sessions must be true or false, got \"" + value + "\"";
      }
      out->keep_mqtt5_clean_sessions = value == "true";
    } else {
      return "unknown option plugin_opt_" + key +
             "; expected plugin_opt_policy, plugin_opt_state_file, plugin_opt_state_writer, plugin_opt_name, plugin_opt_sys_interval, "
             "plugin_opt_log_refusals_per_minute, plugin_opt_max_offline_sessions or "
             "plugin_opt_keep_mqtt5_clean_sessions";
    }
  }
  if (out->policy.empty()) return "plugin_opt_policy is required: the path of the certacl policy file";
  return "";
}

}  // namespace certacl::plugin
