// plugin.cc: the Mosquitto 2.0 plugin API v5 entry points of
// mosquitto_certacl.so. Thin: each callback hands its event to the Instance
// and turns any exception into a refusal, so nothing crosses the C boundary
// and an error never widens access.
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include <exception>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "plugin/instance.h"

namespace {

using certacl::plugin::Instance;

struct Loaded {
  mosquitto_plugin_id_t* identifier;
  Instance instance;
};

// Runs `f`; on an exception logs it and returns `on_error`.
template <typename F>
int Guard(const char* what, int on_error, F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    mosquitto_log_printf(MOSQ_LOG_ERR, "certacl: internal error in %s: %s", what, e.what());
  } catch (...) {
    mosquitto_log_printf(MOSQ_LOG_ERR, "certacl: internal error in %s", what);
  }
  return on_error;
}

int OnBasicAuth(int, void* event_data, void* userdata) {
  auto* ev = static_cast<mosquitto_evt_basic_auth*>(event_data);
  auto* loaded = static_cast<Loaded*>(userdata);
  return Guard("connect", MOSQ_ERR_AUTH, [&] { return loaded->instance.OnBasicAuth(ev->client); });
}

int OnAclCheck(int, void* event_data, void* userdata) {
  auto* ev = static_cast<mosquitto_evt_acl_check*>(event_data);
  auto* loaded = static_cast<Loaded*>(userdata);
  return Guard("ACL check", MOSQ_ERR_ACL_DENIED, [&] {
    return loaded->instance.OnAclCheck(ev->client, ev->topic, ev->access, ev->qos, ev->retain);
  });
}

int OnMessage(int, void* event_data, void* userdata) {
  auto* ev = static_cast<mosquitto_evt_message*>(event_data);
  auto* loaded = static_cast<Loaded*>(userdata);
  return Guard("message", MOSQ_ERR_ACL_DENIED, [&] { return loaded->instance.OnMessage(ev); });
}

int OnDisconnect(int, void* event_data, void* userdata) {
  auto* ev = static_cast<mosquitto_evt_disconnect*>(event_data);
  auto* loaded = static_cast<Loaded*>(userdata);
  return Guard("disconnect", MOSQ_ERR_SUCCESS, [&] {
    loaded->instance.OnDisconnect(ev->client);
    return MOSQ_ERR_SUCCESS;
  });
}

int OnReload(int, void*, void* userdata) {
  auto* loaded = static_cast<Loaded*>(userdata);
  return Guard("reload", MOSQ_ERR_PLUGIN_DEFER, [&] { return loaded->instance.OnReload(); });
}

int OnTick(int, void*, void* userdata) {
  auto* loaded = static_cast<Loaded*>(userdata);
  return Guard("tick", MOSQ_ERR_SUCCESS, [&] {
    loaded->instance.OnTick();
    return MOSQ_ERR_SUCCESS;
  });
}

struct Registration {
  int event;
  MOSQ_FUNC_generic_callback cb;
};
constexpr Registration kCallbacks[] = {
    {MOSQ_EVT_BASIC_AUTH, OnBasicAuth}, {MOSQ_EVT_ACL_CHECK, OnAclCheck}, {MOSQ_EVT_MESSAGE, OnMessage},
    {MOSQ_EVT_DISCONNECT, OnDisconnect}, {MOSQ_EVT_RELOAD, OnReload},     {MOSQ_EVT_TICK, OnTick},
};

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int mosquitto_plugin_version(int supported_version_count,
                                                                     const int* supported_versions) {
  for (int i = 0; i < supported_version_count; ++i) {
    if (supported_versions[i] == 5) return 5;
  }
  return -1;
}

__attribute__((visibility("default"))) int mosquitto_plugin_init(mosquitto_plugin_id_t* identifier, void** userdata,
                                                                  struct mosquitto_opt* options, int option_count) {
  return Guard("start-up", MOSQ_ERR_UNKNOWN, [&]() -> int {
    std::vector<std::pair<std::string, std::string>> pairs;
    for (int i = 0; i < option_count; ++i) {
      pairs.emplace_back(options[i].key ? options[i].key : "", options[i].value ? options[i].value : "");
    }
    certacl::plugin::Options parsed;
    std::string err = certacl::plugin::ParseOptions(pairs, &parsed);
    if (!err.empty()) {
      mosquitto_log_printf(MOSQ_LOG_ERR, "certacl: %s", err.c_str());
      return MOSQ_ERR_INVAL;
    }
    auto* loaded = new Loaded{identifier, Instance(std::move(parsed))};
    err = loaded->instance.Start();
    if (!err.empty()) {
      mosquitto_log_printf(MOSQ_LOG_ERR, "certacl: not starting: %s", err.c_str());
      delete loaded;
      return MOSQ_ERR_INVAL;
    }
    for (const Registration& r : kCallbacks) {
      int rc = mosquitto_callback_register(identifier, r.event, r.cb, nullptr, loaded);
      if (rc != MOSQ_ERR_SUCCESS) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "certacl: cannot register for event %d (error %d)", r.event, rc);
        for (const Registration& u : kCallbacks) mosquitto_callback_unregister(identifier, u.event, u.cb, nullptr);
        delete loaded;
        return rc;
      }
    }
    *userdata = loaded;
    return MOSQ_ERR_SUCCESS;
  });
}

__attribute__((visibility("default"))) int mosquitto_plugin_cleanup(void* userdata, struct mosquitto_opt*, int) {
  auto* loaded = static_cast<Loaded*>(userdata);
  if (!loaded) return MOSQ_ERR_SUCCESS;
  for (const Registration& r : kCallbacks) mosquitto_callback_unregister(loaded->identifier, r.event, r.cb, nullptr);
  delete loaded;
  return MOSQ_ERR_SUCCESS;
}

}  // extern "C"
