// config.cc: see config.h.
#include "enroll-bridge/config.h"

#include <toml++/toml.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <string_view>

#include "policy/policy.h"

namespace certacl::enroll {
namespace {

class Loader {
 public:
  Loader(std::string name, std::string base_dir, std::vector<std::string>* errors)
      : name_(std::move(name)), base_dir_(std::move(base_dir)), errors_(errors) {}

  std::optional<BridgeConfig> Load(const std::string& text) {
    toml::table root;
    try {
      root = toml::parse(text, name_);
    } catch (const toml::parse_error& e) {
      const auto& b = e.source().begin;
      errors_->push_back(name_ + ":" + std::to_string(b.line) + ":" + std::to_string(b.column) + ": " +
                         std::string(e.description()));
      return std::nullopt;
    }
    BridgeConfig c;
    c.file = name_;
    Keys(root, "the top level",
         {{"mqtt", [&](const toml::node& n) { Table(n, "[mqtt]", [&](const toml::table& t) { Mqtt(t, &c.mqtt); }); }},
          {"backend", [&](const toml::node& n) {
             Table(n, "[backend]", [&](const toml::table& t) {
               Keys(t, "[backend]", {{"kind", [&](const toml::node& v) { String(v, &c.backend); }}});
             });
           }},
          {"local_ca", [&](const toml::node& n) {
             Table(n, "[local_ca]", [&](const toml::table& t) { LocalCa(t, &c.local_ca); });
           }},
          {"est", [&](const toml::node& n) { Table(n, "[est]", [&](const toml::table& t) { Est(t, &c.est); }); }},
          {"enroll", [&](const toml::node& n) {
             Table(n, "[enroll]", [&](const toml::table& t) { Enroll(t, &c.enroll); });
           }},
          {"limits", [&](const toml::node& n) {
             Table(n, "[limits]", [&](const toml::table& t) { Limits(t, &c.limits); });
           }},
          {"keys", [&](const toml::node& n) { Table(n, "[keys]", [&](const toml::table& t) { KeysTable(t, &c.keys); }); }}});

    const toml::source_region top{};
    if (!root.contains("mqtt")) Error(top, "missing [mqtt]: the broker and the bridge's own certificate");
    for (auto [key, value] : {std::pair{"cafile", &c.mqtt.cafile}, std::pair{"certfile", &c.mqtt.certfile},
                              std::pair{"keyfile", &c.mqtt.keyfile}}) {
      if (root.contains("mqtt") && value->empty()) Error(Where(root, "mqtt"), std::string("[mqtt] ") + key + " is required");
    }
    if (c.backend.empty()) {
      Error(Where(root, "backend"), "[backend] kind is required: \"local-ca\" or \"est\"");
    } else if (c.backend == "local-ca") {
      if (c.local_ca.certfile.empty() || c.local_ca.keyfile.empty()) {
        Error(Where(root, "local_ca"), "[backend] kind = \"local-ca\" needs [local_ca] certfile and keyfile");
      }
    } else if (c.backend == "est") {
      if (c.est.url.empty() || c.est.cafile.empty()) {
        Error(Where(root, "est"), "[backend] kind = \"est\" needs [est] url and cafile");
      }
      if (c.est.certfile.empty() != c.est.keyfile.empty()) {
        Error(Where(root, "est"), "[est] certfile and keyfile go together");
      }
      if (c.est.username.empty() && !c.est.password.empty()) {
        Error(Where(root, "est"), "[est] password without username");
      }
    } else {
      Error(Where(root, "backend"), "[backend] kind must be \"local-ca\" or \"est\", not \"" + c.backend + "\"");
    }
    if (c.mqtt.bridge_prefix.empty()) {
      c.mqtt.bridge_prefix = c.mqtt.prefix.front() == '$' ? "certacl/enroll-requests" : c.mqtt.prefix;
    }
    if (!errors_->empty()) return std::nullopt;
    return c;
  }

 private:
  using Handler = std::function<void(const toml::node&)>;

  static toml::source_region Where(const toml::table& t, std::string_view key) {
    if (const toml::node* n = t.get(key)) return n->source();
    return t.source();
  }

  void Error(const toml::source_region& where, const std::string& message) {
    errors_->push_back(name_ + ":" + std::to_string(where.begin.line) + ":" + std::to_string(where.begin.column) +
                       ": " + message);
  }

  void Keys(const toml::table& t, std::string_view where, const std::map<std::string_view, Handler>& handlers) {
    for (const auto& [key, node] : t) {
      auto it = handlers.find(key.str());
      if (it == handlers.end()) {
        std::string known;
        for (const auto& [k, h] : handlers) known += (known.empty() ? "" : ", ") + std::string(k);
        Error(node.source(), "unknown key '" + std::string(key.str()) + "' in " + std::string(where) +
                                 " (known: " + known + ")");
        continue;
      }
      it->second(node);
    }
  }

  void Table(const toml::node& n, std::string_view where, const std::function<void(const toml::table&)>& f) {
    if (const toml::table* t = n.as_table()) {
      f(*t);
    } else {
      Error(n.source(), std::string(where) + " must be a table");
    }
  }

  void String(const toml::node& n, std::string* out) {
    if (const auto* s = n.as_string()) {
      *out = s->get();
    } else {
      Error(n.source(), "expected a string");
    }
  }

  void Path(const toml::node& n, std::string* out) {
    String(n, out);
    if (!out->empty() && (*out)[0] != '/' && !base_dir_.empty()) *out = base_dir_ + "/" + *out;
  }

  void Bool(const toml::node& n, bool* out) {
    if (const auto* b = n.as_boolean()) {
      *out = b->get();
    } else {
      Error(n.source(), "expected true or false");
    }
  }

  template <typename T>
  void Integer(const toml::node& n, T* out, int64_t min, int64_t max) {
    const auto* i = n.as_integer();
    if (i == nullptr) {
      Error(n.source(), "expected an integer");
      return;
    }
    if (i->get() < min || i->get() > max) {
      Error(n.source(), "must be between " + std::to_string(min) + " and " + std::to_string(max));
      return;
    }
    *out = static_cast<T>(i->get());
  }

  // "30s", "5m", "24h", "7d", or an integer number of seconds.
  void Duration(const toml::node& n, int64_t* out, int64_t min_s, int64_t max_s) {
    std::optional<int64_t> v;
    if (const auto* i = n.as_integer()) {
      v = i->get();
    } else if (const auto* s = n.as_string()) {
      v = ParseDuration(s->get());
      if (!v) {
        Error(n.source(), "expected a duration such as \"30s\", \"5m\", \"24h\" or \"7d\"");
        return;
      }
    } else {
      Error(n.source(), "expected a duration (\"30s\", \"5m\", \"24h\", \"7d\") or seconds");
      return;
    }
    if (*v < min_s || *v > max_s) {
      Error(n.source(), "must be between " + std::to_string(min_s) + " and " + std::to_string(max_s) + " seconds");
      return;
    }
    *out = *v;
  }

  void Mqtt(const toml::table& t, MqttConfig* m) {
    Keys(t, "[mqtt]",
         {{"host", [&](const toml::node& n) { String(n, &m->host); }},
          {"port", [&](const toml::node& n) { Integer(n, &m->port, 1, 65535); }},
          {"cafile", [&](const toml::node& n) { Path(n, &m->cafile); }},
          {"certfile", [&](const toml::node& n) { Path(n, &m->certfile); }},
          {"keyfile", [&](const toml::node& n) { Path(n, &m->keyfile); }},
          {"prefix", [&](const toml::node& n) {
             String(n, &m->prefix);
             if (m->prefix.empty() || m->prefix.back() == '/' ||
                 m->prefix.find_first_of(std::string_view("+#\0", 3)) != std::string::npos) {
               Error(n.source(), "prefix must be a topic name without wildcards or a trailing '/'");
             }
           }},
          {"bridge_prefix", [&](const toml::node& n) {
             String(n, &m->bridge_prefix);
             if (m->bridge_prefix.empty() || m->bridge_prefix.back() == '/' ||
                 m->bridge_prefix.find_first_of(std::string_view("+#\0", 3)) != std::string::npos) {
               Error(n.source(), "bridge_prefix must be a topic name without wildcards or a trailing '/'");
             }
           }},
          {"client_id", [&](const toml::node& n) { String(n, &m->client_id); }},
          {"state_topic", [&](const toml::node& n) {
             String(n, &m->state_topic);
             if (!m->state_topic.empty() && (m->state_topic.back() == '/' || m->state_topic.front() == '$' ||
                                             m->state_topic.find_first_of(std::string_view("+#\0", 3)) != std::string::npos)) {
               Error(n.source(), "state_topic must be \"\" or a plain topic name (no '$', wildcards or trailing '/')");
             }
           }},
          {"share_group", [&](const toml::node& n) {
             String(n, &m->share_group);
             if (m->share_group.find_first_of(std::string_view("/+#\0", 4)) != std::string::npos) {
               Error(n.source(), "share_group must not contain '/', '+' or '#'");
             }
           }},
          {"keepalive", [&](const toml::node& n) {
             int64_t s = m->keepalive_s;
             Duration(n, &s, 5, 3600);
             m->keepalive_s = static_cast<int>(s);
           }},
          {"session_expiry", [&](const toml::node& n) { Duration(n, &m->session_expiry_s, 0, 7 * 86400); }},
          {"response_expiry", [&](const toml::node& n) { Duration(n, &m->response_expiry_s, 1, 7 * 86400); }}});
  }

  void LocalCa(const toml::table& t, LocalCaConfig* l) {
    Keys(t, "[local_ca]",
         {{"certfile", [&](const toml::node& n) { Path(n, &l->certfile); }},
          {"keyfile", [&](const toml::node& n) { Path(n, &l->keyfile); }},
          {"days", [&](const toml::node& n) { Integer(n, &l->profile.days, 1, 36500); }},
          {"backdate", [&](const toml::node& n) { Duration(n, &l->profile.backdate_s, 0, 86400); }},
          {"key_usage", [&](const toml::node& n) { String(n, &l->profile.key_usage); }},
          {"extended_key_usage", [&](const toml::node& n) { String(n, &l->profile.extended_key_usage); }}});
    std::string why;
    if (!CheckProfile(l->profile, &why)) Error(t.source(), "[local_ca] " + why);
  }

  void Est(const toml::table& t, EstConfig* e) {
    Keys(t, "[est]",
         {{"url", [&](const toml::node& n) {
             String(n, &e->url);
             if (e->url.rfind("https://", 0) != 0) Error(n.source(), "url must start with https:// (RFC 7030 needs TLS)");
           }},
          {"cafile", [&](const toml::node& n) { Path(n, &e->cafile); }},
          {"certfile", [&](const toml::node& n) { Path(n, &e->certfile); }},
          {"keyfile", [&](const toml::node& n) { Path(n, &e->keyfile); }},
          {"username", [&](const toml::node& n) { String(n, &e->username); }},
          {"password", [&](const toml::node& n) { String(n, &e->password); }},
          {"timeout", [&](const toml::node& n) {
             int64_t s = e->timeout_ms / 1000;
             Duration(n, &s, 1, 600);
             e->timeout_ms = static_cast<int>(s * 1000);
           }}});
  }

  void Enroll(const toml::table& t, EnrollPolicyConfig* e) {
    Keys(t, "[enroll]",
         {{"simpleenroll", [&](const toml::node& n) { Bool(n, &e->simpleenroll); }},
          {"renewal_window", [&](const toml::node& n) { Window(n, e); }},
          {"expected_ca", [&](const toml::node& n) {
             if (const toml::array* a = n.as_array()) {
               for (const toml::node& v : *a) {
                 std::string p;
                 Path(v, &p);
                 if (!p.empty()) e->expected_ca.push_back(p);
               }
             } else {
               std::string p;
               Path(n, &p);
               if (!p.empty()) e->expected_ca.push_back(p);
             }
           }},
          {"workers", [&](const toml::node& n) { Integer(n, &e->workers, 1, 64); }},
          {"max_pending", [&](const toml::node& n) { Duration(n, &e->max_pending_s, 1, 30 * 86400); }},
          {"duplicate_ttl", [&](const toml::node& n) { Duration(n, &e->duplicate_ttl_s, 60, 30 * 86400); }},
          {"upstream_retry_after", [&](const toml::node& n) { Duration(n, &e->upstream_retry_after_s, 1, 86400); }}});
  }

  // "off", "33%" (of the lifetime) or a duration ("30d").
  void Window(const toml::node& n, EnrollPolicyConfig* e) {
    const auto* s = n.as_string();
    if (s == nullptr) {
      Error(n.source(), "renewal_window must be a string: \"off\", a percentage such as \"33%\", or a duration such as \"30d\"");
      return;
    }
    const std::string& v = s->get();
    if (v == "off") return;
    if (!v.empty() && v.back() == '%') {
      char* end = nullptr;
      const std::string number = v.substr(0, v.size() - 1);
      const double pct = std::strtod(number.c_str(), &end);
      if (number.empty() || end != number.c_str() + number.size() || !(pct > 0.0 && pct <= 100.0)) {
        Error(n.source(), "renewal_window percentage must be in (0, 100]");
        return;
      }
      e->renewal_fraction = pct / 100.0;
      return;
    }
    std::optional<int64_t> d = ParseDuration(v);
    if (!d || *d <= 0) {
      Error(n.source(), "renewal_window must be \"off\", a percentage such as \"33%\", or a duration such as \"30d\"");
      return;
    }
    e->renewal_seconds = *d;
  }

  void Limits(const toml::table& t, LimitsConfig* l) {
    Keys(t, "[limits]",
         {{"max_payload_bytes", [&](const toml::node& n) { Integer(n, &l->max_payload_bytes, 1024, 1 << 20); }},
          {"per_device_per_hour", [&](const toml::node& n) { Integer(n, &l->per_device_per_hour, 0, 1000000); }},
          {"queue", [&](const toml::node& n) { Integer(n, &l->queue, 1, 1000000); }}});
  }

  void KeysTable(const toml::table& t, KeyPolicy* k) {
    Keys(t, "[keys]",
         {{"ec_p256", [&](const toml::node& n) { Bool(n, &k->allow_ec_p256); }},
          {"ec_p384", [&](const toml::node& n) { Bool(n, &k->allow_ec_p384); }},
          {"ed25519", [&](const toml::node& n) { Bool(n, &k->allow_ed25519); }},
          {"rsa_min_bits", [&](const toml::node& n) {
             Integer(n, &k->min_rsa_bits, 0, 16384);
             if (k->min_rsa_bits != 0 && k->min_rsa_bits < 2048) {
               Error(n.source(), "rsa_min_bits must be 0 (no RSA) or at least 2048");
             }
           }}});
  }

  std::string name_;
  std::string base_dir_;
  std::vector<std::string>* errors_;
};

}  // namespace

std::optional<BridgeConfig> LoadBridgeConfigString(const std::string& text, const std::string& name,
                                                   const std::string& base_dir, std::vector<std::string>* errors) {
  return Loader(name, base_dir, errors).Load(text);
}

std::optional<BridgeConfig> LoadBridgeConfig(const std::string& path, std::vector<std::string>* errors) {
  std::string text;
  {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) {
      errors->push_back(path + ": cannot read the configuration file: " + std::strerror(errno));
      return std::nullopt;
    }
    char buf[8192];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    std::fclose(f);
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  return LoadBridgeConfigString(text, path, dir, errors);
}

}  // namespace certacl::enroll
