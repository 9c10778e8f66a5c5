// broker.cc: see broker.h.
#include "tests/integration/broker.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <thread>

namespace certacl::integration {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "integration harness: %s: %s\n", what.c_str(), std::strerror(errno));
  std::abort();
}

std::string MosquittoBinary() {
  if (const char* env = std::getenv("CERTACL_MOSQUITTO"); env != nullptr && *env != '\0') return env;
  if (access("/usr/sbin/mosquitto", X_OK) == 0) return "/usr/sbin/mosquitto";
  return "mosquitto";  // from PATH
}

// The ASan / TSan runtime this (sanitized) test binary runs with. A
// sanitized plugin can only be loaded by a broker that has the same runtime
// loaded first, so the broker gets it in LD_PRELOAD -- followed by
// libstdc++, or the runtime's __cxa_throw interceptor finds no real
// __cxa_throw in the C broker and aborts on the plugin's first exception.
// Empty for a normal build.
std::string SanitizerRuntimes() {
  std::ifstream maps("/proc/self/maps");
  std::string runtime, libstdcxx, line;
  while (std::getline(maps, line)) {
    size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    std::string path = line.substr(slash);
    std::string name = path.substr(path.rfind('/') + 1);
    if (name.rfind("libasan.so", 0) == 0 || name.rfind("libtsan.so", 0) == 0) runtime = path;
    if (name.rfind("libstdc++.so", 0) == 0) libstdcxx = path;
  }
  if (runtime.empty()) return "";
  return libstdcxx.empty() ? runtime : runtime + ":" + libstdcxx;
}

size_t CountOccurrences(std::string_view text, std::string_view needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string_view::npos; at = text.find(needle, at + needle.size())) ++n;
  return n;
}

void WritePluginLines(std::ostream& out, const PluginOptions& p) {
  if (p.path.empty()) return;
  out << "plugin " << p.path << "\n";
  if (!p.policy.empty()) out << "plugin_opt_policy " << p.policy << "\n";
  if (!p.state_file.empty()) out << "plugin_opt_state_file " << p.state_file << "\n";
  if (p.sys_interval > 0) out << "plugin_opt_sys_interval " << p.sys_interval << "\n";
  if (!p.name.empty()) out << "plugin_opt_name " << p.name << "\n";
  for (const auto& [key, value] : p.extra) out << "plugin_opt_" << key << " " << value << "\n";
}

}  // namespace

// ---------------------------------------------------------------------------
// Files.

// ---------------------------------------------------------------------------
// Ports.

int PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) Die("bind 127.0.0.1:0");
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) Die("getsockname");
  close(fd);
  return ntohs(addr.sin_port);
}

bool TcpAccepts(int port, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  do {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) Die("socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    bool ok = false;
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      ok = true;
    } else if (errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, 200) == 1) {
        int err = 0;
        socklen_t len = sizeof err;
        ok = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
      }
    }
    close(fd);
    if (ok) return true;
    std::this_thread::sleep_for(Millis(10));
  } while (Clock::now() < deadline);
  return false;
}

bool UnderSanitizer() {
  static const bool sanitized = !SanitizerRuntimes().empty();
  return sanitized;
}

// ---------------------------------------------------------------------------
// Broker.

Broker::Broker(BrokerOptions options) : options_(std::move(options)) {
  config_path_ = options_.dir + "/mosquitto.conf";
  log_path_ = options_.dir + "/broker.log";
  for (const ListenerOptions& l : options_.listeners) auto_port_.push_back(l.port == 0);
}

Broker::~Broker() { Kill(); }

void Broker::WriteConfig() {
  std::ostringstream out;
  out << "# written by tests/integration/broker.cc\n";
  out << "per_listener_settings " << (options_.per_listener_settings ? "true" : "false") << "\n";
  // Run as root, mosquitto drops to the `mosquitto` user before it reads any
  // file: it could not read this test's private directory.
  if (geteuid() == 0) out << "user root\n";
  out << "log_dest stderr\n";
  for (const std::string& t : options_.log_types) out << "log_type " << t << "\n";
  out << "log_timestamp true\nlog_timestamp_format %Y-%m-%dT%H:%M:%S\n";
  if (options_.tcp_nodelay) out << "set_tcp_nodelay true\n";
  if (options_.persistence) {
    std::filesystem::create_directories(options_.dir + "/persistence");
    out << "persistence true\npersistence_location " << options_.dir << "/persistence/\n";
  } else {
    out << "persistence false\n";
  }
  if (!options_.per_listener_settings) {
    out << "allow_anonymous " << (options_.allow_anonymous ? "true" : "false") << "\n";
    WritePluginLines(out, options_.plugin);
  }
  for (const std::string& line : options_.extra_lines) out << line << "\n";
  for (const ListenerOptions& l : options_.listeners) {
    out << "\nlistener " << l.port << " 127.0.0.1\n";
    if (!l.cafile.empty()) out << "cafile " << l.cafile << "\n";
    if (!l.certfile.empty()) out << "certfile " << l.certfile << "\n";
    if (!l.keyfile.empty()) out << "keyfile " << l.keyfile << "\n";
    out << "require_certificate " << (l.require_certificate ? "true" : "false") << "\n";
    if (!l.tls_version.empty()) out << "tls_version " << l.tls_version << "\n";
    if (options_.per_listener_settings) {
      out << "allow_anonymous " << (options_.allow_anonymous ? "true" : "false") << "\n";
      WritePluginLines(out, l.plugin);
    }
  }
  WriteFile(config_path_, out.str());
}

bool Broker::Spawn() {
  const std::string binary = MosquittoBinary();
  std::vector<std::string> args = {binary, "-c", config_path_};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  // The environment, plus LD_PRELOAD of the sanitizer runtime if any. Under
  // ASan, mosquitto 2.0.11's own leaks at exit (allocated through its
  // mosquitto__* wrappers, e.g. per-listener options) are suppressed: only
  // the plugin's count.
  std::vector<std::string> env;
  const std::string runtimes = SanitizerRuntimes();
  std::string preload = runtimes;
  std::string lsan_options;
  if (runtimes.find("libasan") != std::string::npos) {
    const std::string supp = options_.dir + "/lsan-mosquitto.supp";
    WriteFile(supp, "leak:mosquitto__malloc\nleak:mosquitto__calloc\nleak:mosquitto__realloc\n"
                    "leak:mosquitto__strdup\n");
    lsan_options = "suppressions=" + supp;
  }
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv(*e);
    if (!runtimes.empty() && kv.rfind("LD_PRELOAD=", 0) == 0) {
      preload += ":" + std::string(kv.substr(11));
      continue;
    }
    if (!lsan_options.empty() && kv.rfind("LSAN_OPTIONS=", 0) == 0) {
      lsan_options = std::string(kv.substr(13)) + ":" + lsan_options;
      continue;
    }
    env.emplace_back(kv);
  }
  if (!runtimes.empty()) env.push_back("LD_PRELOAD=" + preload);
  if (!lsan_options.empty()) env.push_back("LSAN_OPTIONS=" + lsan_options);
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) Die("open " + log_path_);
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) Die("open /dev/null");
  const pid_t parent = getpid();

  pid_t pid = fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    // Child: async-signal-safe calls only until exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    // No descriptor of the test process (client sockets!) may live on in
    // the broker: a client's close() would not close its connection.
    if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0) {
      for (int fd = 3; fd < 4096; ++fd) close(fd);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execvpe(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(log_fd);
  close(null_fd);
  pid_ = pid;
  exit_status_ = -1;
  return true;
}

bool Broker::WaitExit(Millis timeout) {
  if (pid_ < 0) return true;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
      pid_ = -1;
      return true;
    }
    if (r < 0 && errno != EINTR) {  // not our child any more (should not happen)
      pid_ = -1;
      return true;
    }
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(Millis(5));
  }
}

void Broker::Kill() {
  if (pid_ < 0) return;
  kill(pid_, SIGKILL);
  if (!WaitExit(Millis(10000))) {
    std::fprintf(stderr, "integration harness: broker %d survived SIGKILL for 10 s\n", pid_);
    pid_ = -1;
  }
}

bool Broker::running() {
  if (pid_ < 0) return false;
  WaitExit(Millis(0));
  return pid_ >= 0;
}

bool Broker::Start(Millis timeout) {
  if (running()) return true;
  bool logs_running = false;
  for (const std::string& t : options_.log_types) logs_running |= t == "all" || t == "information";

  for (int attempt = 0; attempt < 5; ++attempt) {
    if (!ports_assigned_) {
      std::set<int> used;
      for (size_t i = 0; i < options_.listeners.size(); ++i) {
        if (!auto_port_[i]) used.insert(options_.listeners[i].port);
      }
      for (size_t i = 0; i < options_.listeners.size(); ++i) {
        if (!auto_port_[i]) continue;
        int p;
        do p = PickFreePort(); while (used.count(p) != 0);
        used.insert(p);
        options_.listeners[i].port = p;
      }
    }
    WriteConfig();
    const size_t log_from = LogSize();
    Spawn();
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (!running()) {
        std::string log = Log().substr(log_from);
        if (!ports_assigned_ && log.find("Address already in use") != std::string::npos) break;  // retry
        return false;
      }
      bool ready = !logs_running || Log().find(" running", log_from) != std::string::npos;
      if (ready) {
        for (const ListenerOptions& l : options_.listeners) ready = ready && TcpAccepts(l.port, Millis(100));
      }
      if (ready) {
        ports_assigned_ = true;
        return true;
      }
      if (Clock::now() >= deadline) {
        Kill();
        return false;
      }
      std::this_thread::sleep_for(Millis(10));
    }
  }
  return false;
}

int Broker::StartExpectingExit(Millis timeout) {
  if (running()) return -1;
  for (size_t i = 0; i < options_.listeners.size(); ++i) {
    if (auto_port_[i] && !ports_assigned_) options_.listeners[i].port = PickFreePort();
  }
  WriteConfig();
  Spawn();
  if (!WaitExit(timeout)) {
    Kill();
    return -1;
  }
  return exit_status_;
}

bool Broker::Reload(Millis timeout) {
  if (!running()) return false;
  static constexpr std::string_view kReloading = "Reloading config";
  const size_t before = CountOccurrences(Log(), kReloading);
  const auto deadline = Clock::now() + timeout;
  // mosquitto clears its reload flag when a reload ends: a SIGHUP that
  // arrives while the previous reload is still running is lost. Send it
  // again if no reload shows up within a second.
  while (Clock::now() < deadline && running()) {
    kill(pid_, SIGHUP);
    const auto resend = std::min(deadline, Clock::now() + Millis(1000));
    do {
      if (CountOccurrences(Log(), kReloading) > before) return true;
      std::this_thread::sleep_for(Millis(5));
    } while (Clock::now() < resend);
  }
  return false;
}

bool Broker::Stop(Millis timeout) {
  if (pid_ < 0) return exit_status_ == 0;
  kill(pid_, SIGTERM);
  if (!WaitExit(timeout)) {
    Kill();
    return false;
  }
  return exit_status_ == 0;
}

std::string Broker::Log() const { return ReadFile(log_path_); }

size_t Broker::LogSize() const {
  struct stat st {};
  if (stat(log_path_.c_str(), &st) != 0) return 0;
  return static_cast<size_t>(st.st_size);
}

bool Broker::WaitForLog(std::string_view needle, Millis timeout, size_t from) const {
  const auto deadline = Clock::now() + timeout;
  do {
    std::string log = Log();
    if (log.size() > from && log.find(needle, from) != std::string::npos) return true;
    std::this_thread::sleep_for(Millis(5));
  } while (Clock::now() < deadline);
  return false;
}

long Broker::RssKb() const {
  if (pid_ < 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

}  // namespace certacl::integration
