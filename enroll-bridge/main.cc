// main.cc: certacl-enroll-bridge, the program (docs/enroll.md).
//
//   certacl-enroll-bridge --config bridge.toml     run until SIGTERM / SIGINT
//   certacl-enroll-bridge --config bridge.toml --check-config
//
// Exit codes: 0 stopped by a signal (or configuration fine with
// --check-config); 2 bad command line, configuration, or a file it names
// (every problem is printed, one per line, with file:line:column where it
// has one); 1 anything else that stops it from starting.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "enroll-bridge/bridge.h"
#include "enroll-bridge/config.h"
#include "enroll-bridge/est_backend.h"
#include "enroll-bridge/local_ca_backend.h"

namespace {

constexpr char kUsage[] =
    "usage: certacl-enroll-bridge --config bridge.toml [--check-config]\n"
    "\n"
    "Renews device certificates over MQTT: devices publish CSRs on\n"
    "$enroll/{id}/simplereenroll, the bridge checks them, has them signed\n"
    "(EST, RFC 7030, or an embedded local CA) and answers on\n"
    "$enroll/{id}/simplereenroll/accepted or /rejected. See docs/enroll.md.\n"
    "\n"
    "  --config FILE    the configuration (required)\n"
    "  --check-config   check the configuration and the files it names, then exit\n"
    "\n"
    "Exit codes: 0 stopped by SIGTERM/SIGINT (or --check-config passed),\n"
    "2 bad command line, configuration or configured file, 1 other start-up failure.\n";

std::unique_ptr<certacl::enroll::Backend> MakeBackend(const certacl::enroll::BridgeConfig& c, std::string* error) {
  using namespace certacl::enroll;
  if (c.backend == "local-ca") {
    auto b = LocalCaBackend::Create(c.local_ca.certfile, c.local_ca.keyfile, c.local_ca.profile, error);
    if (!b) *error = "[local_ca] " + *error;
    return b;
  }
  auto b = EstBackend::Create(c.est, error);
  if (!b) *error = "[est] " + *error;
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      config_path = arg.substr(9);
    } else if (arg == "--check-config") {
      check_only = true;
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "certacl-enroll-bridge: unknown argument '%s'\n\n%s", arg.c_str(), kUsage);
      return 2;
    }
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "certacl-enroll-bridge: --config is required\n\n%s", kUsage);
    return 2;
  }

  std::vector<std::string> errors;
  std::optional<certacl::enroll::BridgeConfig> config = certacl::enroll::LoadBridgeConfig(config_path, &errors);
  if (!config) {
    for (const std::string& e : errors) std::fprintf(stderr, "certacl-enroll-bridge: %s\n", e.c_str());
    std::fprintf(stderr, "certacl-enroll-bridge: %zu error(s) in %s; not started\n", errors.size(), config_path.c_str());
    return 2;
  }
  std::string error;
  std::unique_ptr<certacl::enroll::Backend> backend = MakeBackend(*config, &error);
  if (!backend) {
    std::fprintf(stderr, "certacl-enroll-bridge: %s: %s; not started\n", config_path.c_str(), error.c_str());
    return 2;
  }
  if (check_only) {
    std::printf("%s: configuration is fine (backend %s)\n", config_path.c_str(), backend->Describe().c_str());
    return 0;
  }

  // Signals are taken by sigwait() on this thread; every other thread
  // inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  certacl::enroll::Bridge bridge(std::move(*config), std::move(backend));
  error = bridge.Start();
  if (!error.empty()) {
    std::fprintf(stderr, "certacl-enroll-bridge: %s: %s; not started\n", config_path.c_str(), error.c_str());
    return 2;
  }
  int sig = 0;
  while (sigwait(&signals, &sig) == 0) {
    if (sig == SIGHUP) {
      std::fprintf(stderr, "certacl-enroll-bridge: SIGHUP ignored (restart the bridge to change its configuration)\n");
      continue;
    }
    break;
  }
  std::fprintf(stderr, "certacl-enroll-bridge: %s, stopping\n", strsignal(sig));
  bridge.Stop();
  return 0;
}
