// broker.h: a real `mosquitto` process for integration tests, and the
// temporary directory a test keeps its files in.
//
// A Broker writes a mosquitto.conf from BrokerOptions into its directory,
// starts `mosquitto -c <conf>` (stdout and stderr appended to broker.log in
// the same directory) and waits until it listens. Everything is bounded in
// time and only ever touches 127.0.0.1. The process is killed when the
// Broker is destroyed, and also if the test process dies (PR_SET_PDEATHSIG).
//
//   TempDir dir;                                   // removed at the end
//   BrokerOptions o;
//   o.dir = dir.path();
//   o.plugin = {.path = CERTACL_PLUGIN, .policy = dir.path() + "/policy.toml"};
//   o.listeners.push_back({.cafile = ..., .certfile = ..., .keyfile = ...});
//   Broker broker(o);
//   ASSERT_TRUE(broker.Start()) << broker.Log();
//   ... broker.port() ...
//   broker.Reload();                               // SIGHUP, waits for the reload
//
// Ports: a listener with port 0 gets a free port at the first Start() (bind
// to port 0, read it, close) and keeps it across Restart(), so persistent
// sessions find their broker again.
//
// For use from one thread (the test's). Not copyable.
#ifndef CERTACL_TESTS_INTEGRATION_BROKER_H_
#define CERTACL_TESTS_INTEGRATION_BROKER_H_

#include <sys/types.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/testing/temp_dir.h"

namespace certacl::integration {

using Millis = std::chrono::milliseconds;

// How long any single wait in the harness may take by default.
inline constexpr Millis kStartTimeout{5000};

// Temporary directories and whole-file I/O come from tests/testing.
using certacl::testing::ReadFile;
using certacl::testing::TempDir;
using certacl::testing::WriteFile;

// The plugin under test: $CERTACL_PLUGIN_PATH, else the one CMake built
// (CERTACL_PLUGIN, defined for the test executables), else "" (tests skip).
inline std::string PluginPath() {
  if (const char* env = std::getenv("CERTACL_PLUGIN_PATH"); env != nullptr && *env != '\0') return env;
#ifdef CERTACL_PLUGIN
  return CERTACL_PLUGIN;
#else
  return "";
#endif
}

// The plugin and its plugin_opt_* lines.
struct PluginOptions {
  std::string path;        // the .so; empty: no plugin line at all
  std::string policy;      // plugin_opt_policy; empty: not written
  std::string state_file;  // plugin_opt_state_file; empty: not written
  int sys_interval = 1;    // plugin_opt_sys_interval; <= 0: not written
  std::string name;        // plugin_opt_name; empty: not written
  std::vector<std::pair<std::string, std::string>> extra;  // more plugin_opt_<k> <v>
};

struct ListenerOptions {
  int port = 0;  // 0: pick a free port at the first Start()
  std::string cafile;
  std::string certfile;
  std::string keyfile;
  bool require_certificate = true;
  std::string tls_version = "tlsv1.2";  // the minimum; empty: not written
  // With per_listener_settings true only: this listener's plugin.
  PluginOptions plugin;
};

struct BrokerOptions {
  std::string dir;  // where mosquitto.conf, broker.log and persistence go
  bool per_listener_settings = false;
  PluginOptions plugin;  // per_listener_settings false only (global)
  std::vector<ListenerOptions> listeners;
  bool allow_anonymous = false;
  bool persistence = false;  // persistence_location <dir>/persistence/
  // set_tcp_nodelay: without it Nagle + delayed ACK add ~40 ms to every
  // CONNACK (the TLS records of a connect are small).
  bool tcp_nodelay = true;
  // log_type lines; "all" includes the debug lines ("Denied PUBLISH ...").
  std::vector<std::string> log_types = {"all"};
  std::vector<std::string> extra_lines;  // appended verbatim before the listeners
};

class Broker {
 public:
  explicit Broker(BrokerOptions options);
  ~Broker();  // kills the process (SIGKILL) if it still runs
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Writes the config and starts mosquitto; true once every listener accepts
  // TCP connections and the log says "running" (within `timeout`). False if
  // the process exited or the timeout passed (the process is then killed).
  // On the first start a port collision ("Address already in use") is
  // retried with other free ports.
  bool Start(Millis timeout = kStartTimeout);
  // For start-up failure tests: starts mosquitto and waits for it to exit on
  // its own. Returns its exit status (128 + signal if killed by a signal),
  // or -1 if it was still running after `timeout` (it is then killed).
  int StartExpectingExit(Millis timeout = kStartTimeout);

  // SIGHUP, then waits (bounded) until the log shows one more
  // "Reloading config" line than before (re-sending the signal after a
  // second without one: mosquitto loses a SIGHUP that arrives during the
  // previous reload). The broker applies the whole reload
  // in the same main-loop iteration that logs that line, before it reads
  // any further packet, so whatever a client sends after Reload() returns is
  // handled under the new configuration. The config file is not rewritten:
  // change the policy file (or call options() and Restart()).
  bool Reload(Millis timeout = kStartTimeout);

  // SIGTERM, waits up to `timeout` for the exit (then SIGKILL). True if it
  // exited on its own with status 0.
  bool Stop(Millis timeout = kStartTimeout);
  bool Restart(Millis timeout = kStartTimeout) { return Stop(timeout) && Start(timeout); }

  bool running();  // reaps the process if it has exited
  pid_t pid() const { return pid_; }
  int exit_status() const { return exit_status_; }
  int port(size_t listener = 0) const { return options_.listeners.at(listener).port; }

  // Everything mosquitto has written since the first Start() (all runs).
  std::string Log() const;
  // Waits until the log (from byte `from` on) contains `needle`.
  bool WaitForLog(std::string_view needle, Millis timeout = kStartTimeout, size_t from = 0) const;
  size_t LogSize() const;

  // VmRSS of the running broker in KiB from /proc/<pid>/status; -1 if unknown.
  long RssKb() const;

  // Changes apply at the next Start(); listeners cannot be added or removed.
  BrokerOptions& options() { return options_; }
  const std::string& config_path() const { return config_path_; }
  const std::string& log_path() const { return log_path_; }

 private:
  void WriteConfig();
  bool Spawn();
  // Waits for exit up to `timeout`; true if reaped.
  bool WaitExit(Millis timeout);
  void Kill();

  BrokerOptions options_;
  std::string config_path_;
  std::string log_path_;
  pid_t pid_ = -1;
  int exit_status_ = -1;
  std::vector<bool> auto_port_;  // listener port was 0 in the options
  bool ports_assigned_ = false;  // after the first successful Start()
};

// A port on 127.0.0.1 that was free a moment ago (bind port 0, read, close).
int PickFreePort();
// True if a TCP connection to 127.0.0.1:port is accepted within `timeout`.
bool TcpAccepts(int port, Millis timeout);
// True if this test binary (and so the broker, see Spawn) runs under ASan or
// TSan: memory figures are then meaningless, and everything is slower.
bool UnderSanitizer();

}  // namespace certacl::integration

#endif  // CERTACL_TESTS_INTEGRATION_BROKER_H_
