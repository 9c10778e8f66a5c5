// peers.cc: see peers.h.
#include "tests/integration/peers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace certacl::integration {

using certacl::testing::CertBuilder;
using certacl::testing::DerNull;
using certacl::testing::DerOid;
using certacl::testing::DerSequence;
using certacl::testing::DerTlv;
using certacl::testing::TestCa;

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "integration peers: %s: %s\n", what.c_str(), std::strerror(errno));
  std::abort();
}

Millis Remaining(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
  return left.count() > 0 ? left : Millis(0);
}

int PollTimeout(Clock::time_point deadline) {
  return static_cast<int>(std::min<int64_t>(Remaining(deadline).count(), 1000));
}

bool StartsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

std::string Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return std::string(s);
}

// The value of header `name` in an HTTP head (first line skipped).
std::string FindHeader(std::string_view head, std::string_view name) {
  size_t at = head.find('\n');
  while (at != std::string_view::npos) {
    size_t next = head.find('\n', at + 1);
    std::string_view line = head.substr(at + 1, next == std::string_view::npos ? std::string_view::npos : next - at - 1);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos && EqualsIgnoreCase(Trim(line.substr(0, colon)), name)) {
      return Trim(line.substr(colon + 1));
    }
    at = next;
  }
  return "";
}

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

int BoundPort(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) Die("getsockname");
  return ntohs(addr.sin_port);
}

// A socket bound to 127.0.0.1:port (0: any free port).
int BindLoopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr = Loopback(port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) Die("bind 127.0.0.1:" + std::to_string(port));
  return fd;
}

size_t FileSize(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return 0;
  return static_cast<size_t>(st.st_size);
}

// The binary `name` resolves to (PATH lookup); "" if not found.
std::string ResolveBinary(const std::string& name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  for (;;) {
    size_t end = dirs.find(':', start);
    std::string dir = dirs.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    if (end == std::string::npos) return "";
    start = end + 1;
  }
}

certacl::X509Ptr TryLoadCert(const std::string& pem_path) {
  FILE* f = std::fopen(pem_path.c_str(), "r");
  if (f == nullptr) return nullptr;
  certacl::X509Ptr cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  return cert;
}

// YYMMDDHHMMSSZ, as in index.txt.
std::string IndexTime(const tm& utc) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02d%02d%02d%02d%02d%02dZ", utc.tm_year % 100, utc.tm_mon + 1, utc.tm_mday,
                utc.tm_hour, utc.tm_min, utc.tm_sec);
  return buf;
}

std::string TimeString(time_t t) {
  tm utc{};
  gmtime_r(&t, &utc);
  return IndexTime(utc);
}

std::string Asn1TimeString(const ASN1_TIME* t) {
  tm utc{};
  if (ASN1_TIME_to_tm(t, &utc) != 1) return TimeString(std::time(nullptr) + 365 * 86400);
  return IndexTime(utc);
}

// The CRL reason code `openssl ocsp` puts in its answer for an index.txt
// reason name (apps/ca.c unpack_revinfo); -1: none; -2: not known here.
int ReasonCode(std::string_view reason) {
  reason = reason.substr(0, reason.find(','));
  if (reason.empty()) return -1;
  static constexpr std::pair<std::string_view, int> kReasons[] = {
      {"unspecified", 0},      {"keyCompromise", 1},         {"CACompromise", 2},
      {"affiliationChanged", 3}, {"superseded", 4},          {"cessationOfOperation", 5},
      {"certificateHold", 6},  {"removeFromCRL", 8},         {"holdInstruction", 6},
      {"keyTime", 1},          {"CAkeyTime", 2},
  };
  for (const auto& [name, code] : kReasons) {
    if (EqualsIgnoreCase(name, reason)) return code;
  }
  return -2;
}

std::string ReadAll(const std::string& path) { return certacl::testing::ReadFile(path); }

using OcspCertIdPtr = certacl::OpenSslPtr<OCSP_CERTID, OCSP_CERTID_free>;
using OcspRequestPtr = certacl::OpenSslPtr<OCSP_REQUEST, OCSP_REQUEST_free>;
using OcspResponsePtr = certacl::OpenSslPtr<OCSP_RESPONSE, OCSP_RESPONSE_free>;
using OcspBasicPtr = certacl::OpenSslPtr<OCSP_BASICRESP, OCSP_BASICRESP_free>;

std::string RequestDer(const OCSP_CERTID* id) {
  OcspRequestPtr req(OCSP_REQUEST_new());
  if (!req) Die("OCSP_REQUEST_new");
  OCSP_CERTID* copy = OCSP_CERTID_dup(id);
  if (copy == nullptr || OCSP_request_add0_id(req.get(), copy) == nullptr) Die("OCSP_request_add0_id");
  unsigned char* der = nullptr;
  int len = i2d_OCSP_REQUEST(req.get(), &der);
  if (len <= 0) Die("i2d_OCSP_REQUEST");
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

OcspAnswer QueryId(int port, OCSP_CERTID* id, Millis timeout) {
  OcspAnswer a;
  a.http = HttpPost(port, "/", "application/ocsp-request", RequestDer(id), timeout);
  if (a.http.status != 200) {
    a.error = a.http.connected ? "HTTP status " + std::to_string(a.http.status) + (a.http.timed_out ? " (timed out)" : "")
                               : (a.http.refused ? "connection refused" : "no connection");
    return a;
  }
  a.der = a.http.body;
  const auto* p = reinterpret_cast<const unsigned char*>(a.der.data());
  OcspResponsePtr resp(d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(a.der.size())));
  if (!resp) {
    a.error = "not an OCSPResponse (" + std::to_string(a.der.size()) + " bytes)";
    return a;
  }
  a.response_status = OCSP_response_status(resp.get());
  if (a.response_status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
    a.error = std::string("OCSP response status ") + OCSP_response_status_str(a.response_status);
    return a;
  }
  OcspBasicPtr basic(OCSP_response_get1_basic(resp.get()));
  if (!basic) {
    a.error = "no BasicOCSPResponse";
    return a;
  }
  int status = -1, reason = -1;
  ASN1_GENERALIZEDTIME *revoked = nullptr, *this_update = nullptr, *next_update = nullptr;
  if (OCSP_resp_find_status(basic.get(), id, &status, &reason, &revoked, &this_update, &next_update) != 1) {
    a.error = "no SingleResponse for the certificate";
    return a;
  }
  a.status = status == V_OCSP_CERTSTATUS_GOOD      ? CertStatus::kGood
             : status == V_OCSP_CERTSTATUS_REVOKED ? CertStatus::kRevoked
                                                   : CertStatus::kUnknown;
  a.reason = a.status == CertStatus::kRevoked ? reason : -1;
  a.has_next_update = next_update != nullptr;
  a.ok = true;
  return a;
}

OcspCertIdPtr CertId(X509* cert, X509* issuer) {
  OcspCertIdPtr id(OCSP_cert_to_id(EVP_sha1(), cert, issuer));
  if (!id) Die("OCSP_cert_to_id");
  return id;
}

bool g_in_private_netns = false;

}  // namespace

// ---------------------------------------------------------------------------
// GuardedProcess.
//
//   test process --fork--> guardian --fork--> main process (own process group)
//                                               `--> its children (workers)
//
// The guardian is a child subreaper: workers orphaned by the main process
// are reparented to it. It holds the read end of a control pipe whose only
// write end is in the test process: when the test process closes it (Stop)
// or dies, the guardian kills the whole process group with SIGKILL, reaps
// everything and exits. The guardian never execs, so between fork and _exit
// it only makes async-signal-safe calls (the test process has threads).

namespace {

constexpr int kGuardianControlFd = 3;
constexpr int kGuardianReportFd = 4;

void CloseFrom(int first) {
  if (syscall(SYS_close_range, static_cast<unsigned>(first), ~0U, 0U) != 0) {
    for (int fd = first; fd < 4096; ++fd) close(fd);
  }
}

void SetSignal(int sig, void (*handler)(int)) {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, nullptr);
}

int64_t MonotonicMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void SleepMs(long ms) {
  timespec ts{0, ms * 1000000L};
  nanosleep(&ts, nullptr);
}

[[noreturn]] void GuardianMain(int control_rd, int report_wr, int null_fd, int log_fd, const char* binary,
                               char* const* argv) {
  // Ctrl-C in a terminal reaches the whole foreground group: the guardian
  // must survive it to clean up (the control pipe tells it when).
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) SetSignal(sig, SIG_IGN);
  SetSignal(SIGCHLD, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  prctl(PR_SET_CHILD_SUBREAPER, 1);

  int c = fcntl(control_rd, F_DUPFD, 10), r = fcntl(report_wr, F_DUPFD, 10);
  int n = fcntl(null_fd, F_DUPFD, 10), l = fcntl(log_fd, F_DUPFD, 10);
  if (c < 0 || r < 0 || n < 0 || l < 0) _exit(125);
  dup2(n, 0);
  dup2(l, 1);
  dup2(l, 2);
  dup2(c, kGuardianControlFd);
  dup2(r, kGuardianReportFd);
  CloseFrom(kGuardianReportFd + 1);
  fcntl(kGuardianControlFd, F_SETFD, FD_CLOEXEC);
  fcntl(kGuardianReportFd, F_SETFD, FD_CLOEXEC);

  const pid_t self = getpid();
  // _Fork: no atfork handlers (this process is a fork of a threaded one).
  const pid_t main_pid = _Fork();
  if (main_pid < 0) _exit(126);
  if (main_pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != self) _exit(127);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD}) SetSignal(sig, SIG_DFL);
    execve(binary, argv, environ);
    _exit(127);
  }
  setpgid(main_pid, main_pid);  // (also done by the child: no race either way)
  ssize_t written = write(kGuardianReportFd, &main_pid, sizeof main_pid);
  (void)written;
  close(kGuardianReportFd);

  int code = 0;
  bool main_done = false;
  for (;;) {
    pollfd p{kGuardianControlFd, POLLIN, 0};
    if (poll(&p, 1, 50) > 0) {
      char byte;
      ssize_t got = read(kGuardianControlFd, &byte, 1);
      if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) break;  // Stop() or the test died
    }
    int status = 0;
    pid_t w;
    while ((w = waitpid(-1, &status, WNOHANG)) > 0) {
      if (w == main_pid) {
        main_done = true;
        code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 125;
      }
    }
    if (main_done) break;
  }
  // Kill the group (main process and workers) and reap everything,
  // including workers reparented to us; bounded.
  const int64_t give_up = MonotonicMs() + 10000;
  for (;;) {
    kill(-main_pid, SIGKILL);
    if (!main_done) kill(main_pid, SIGKILL);
    int status = 0;
    pid_t w = waitpid(-1, &status, WNOHANG);
    if (w == main_pid) main_done = true;
    if (w < 0 && errno == ECHILD) break;
    if (w <= 0) {
      if (MonotonicMs() > give_up) break;
      SleepMs(2);
    }
  }
  _exit(code);
}

}  // namespace

bool GuardedProcess::Spawn(std::vector<std::string> args, const std::string& log_path, std::string* error) {
  Stop();
  const std::string binary = ResolveBinary(args.at(0));
  if (binary.empty()) {
    if (error) *error = args[0] + ": not found in PATH";
    return false;
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) Die("open " + log_path);
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) Die("open /dev/null");
  int control[2], report[2];
  if (pipe2(control, O_CLOEXEC) != 0 || pipe2(report, O_CLOEXEC) != 0) Die("pipe2");

  pid_t pid = fork();
  if (pid < 0) Die("fork");
  if (pid == 0) GuardianMain(control[0], report[1], null_fd, log_fd, binary.c_str(), argv.data());
  close(control[0]);
  close(report[1]);
  close(log_fd);
  close(null_fd);
  guardian_ = pid;
  control_ = control[1];
  exit_status_ = -1;

  // The guardian reports the main process's pid at once.
  pid_t main_pid = -1;
  pollfd p{report[0], POLLIN, 0};
  bool got = poll(&p, 1, 5000) == 1 && read(report[0], &main_pid, sizeof main_pid) == sizeof main_pid;
  close(report[0]);
  if (!got || main_pid <= 0) {
    if (error) *error = "the guardian process did not start " + args[0];
    Stop();
    return false;
  }
  main_ = main_pid;
  return true;
}

bool GuardedProcess::WaitGuardian(Millis timeout) {
  if (guardian_ < 0) return true;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(guardian_, &status, WNOHANG);
    if (r == guardian_ || (r < 0 && errno != EINTR)) {
      if (r == guardian_) exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      guardian_ = -1;
      main_ = -1;
      if (control_ >= 0) close(control_);
      control_ = -1;
      return true;
    }
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(Millis(2));
  }
}

void GuardedProcess::Stop() {
  if (guardian_ < 0) return;
  if (control_ >= 0) {
    close(control_);  // the guardian kills and reaps the group, then exits
    control_ = -1;
  }
  if (WaitGuardian(Millis(15000))) return;
  std::fprintf(stderr, "integration peers: guardian %d did not finish in 15 s; killing\n", guardian_);
  if (main_ > 0) kill(-main_, SIGKILL);
  kill(guardian_, SIGKILL);
  WaitGuardian(Millis(5000));
  guardian_ = -1;
  main_ = -1;
}

bool GuardedProcess::running() {
  if (guardian_ < 0) return false;
  WaitGuardian(Millis(0));
  return guardian_ >= 0;
}

// ---------------------------------------------------------------------------
// Network namespace.

bool EnterPrivateNetns(std::string* error) {
  if (unshare(CLONE_NEWNET) != 0) {
    if (error) *error = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
    return false;
  }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    if (error) *error = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", "lo");
  bool ok = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  if (ok) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    ok = ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  }
  const int saved = errno;
  close(fd);
  if (!ok) {
    if (error) *error = std::string("bringing lo up: ") + std::strerror(saved);
    return false;
  }
  // 127.0.0.1 must accept connections now.
  int listener = BindLoopback(0);
  if (listen(listener, 1) != 0) Die("listen");
  const bool reachable = TcpAccepts(BoundPort(listener), Millis(1000));
  close(listener);
  if (!reachable) {
    if (error) *error = "127.0.0.1 is not reachable after bringing lo up";
    return false;
  }
  g_in_private_netns = true;
  return true;
}

bool InPrivateNetns() { return g_in_private_netns; }

// ---------------------------------------------------------------------------
// HTTP client.

std::string HttpReply::Header(std::string_view name) const { return FindHeader(head, name); }

namespace {

void ParseReply(HttpReply& reply, Clock::time_point start) {
  reply.elapsed_ms = std::chrono::duration_cast<Millis>(Clock::now() - start).count();
  size_t end = reply.raw.find("\r\n\r\n");
  reply.head = reply.raw.substr(0, end);
  reply.body = end != std::string::npos ? reply.raw.substr(end + 4) : "";
  reply.status = 0;
  if (StartsWith(reply.raw, "HTTP/1.") && reply.raw.size() >= 12) reply.status = std::atoi(reply.raw.substr(9, 3).c_str());
}

// A non-blocking socket connected to 127.0.0.1:port; -1 (and `reply` says
// why) if refused or the deadline passed.
int ConnectTo(int port, Clock::time_point deadline, HttpReply& reply) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket");
  sockaddr_in addr = Loopback(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) {
      reply.refused = errno == ECONNREFUSED;
      close(fd);
      return -1;
    }
    for (;;) {
      pollfd p{fd, POLLOUT, 0};
      int r = poll(&p, 1, PollTimeout(deadline));
      if (r > 0) break;
      if (r < 0 && errno != EINTR) Die("poll");
      if (Clock::now() >= deadline) {
        reply.timed_out = true;
        close(fd);
        return -1;
      }
    }
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      reply.refused = err == ECONNREFUSED;
      close(fd);
      return -1;
    }
  }
  reply.connected = true;
  return fd;
}

// False if the deadline passed (reply.timed_out); a reset is recorded but
// the answer may still be readable.
bool SendAll(int fd, std::string_view data, Clock::time_point deadline, HttpReply& reply) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      poll(&p, 1, PollTimeout(deadline));
      if (Clock::now() >= deadline) {
        reply.timed_out = true;
        return false;
      }
      continue;
    }
    reply.reset = true;  // EPIPE / ECONNRESET
    return true;
  }
  return true;
}

void ReadToEof(int fd, Clock::time_point deadline, HttpReply& reply) {
  char buf[16384];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      reply.raw.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      if (Clock::now() >= deadline) {
        reply.timed_out = true;
        return;
      }
      pollfd p{fd, POLLIN, 0};
      poll(&p, 1, std::max(1, PollTimeout(deadline)));
      continue;
    }
    reply.reset = true;
    return;
  }
}

std::string PostRequest(int port, std::string_view path, std::string_view content_type, std::string_view body) {
  std::string request = "POST " + std::string(path) + " HTTP/1.0\r\nHost: 127.0.0.1:" + std::to_string(port) +
                        "\r\nContent-Type: " + std::string(content_type) +
                        "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  request.append(body);
  return request;
}

}  // namespace

HttpReply HttpExchange(int port, std::string_view request, Millis timeout) {
  HttpReply reply;
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  int fd = ConnectTo(port, deadline, reply);
  if (fd >= 0) {
    if (SendAll(fd, request, deadline, reply)) ReadToEof(fd, deadline, reply);
    close(fd);
  }
  ParseReply(reply, start);
  return reply;
}

HttpReply HttpGet(int port, std::string_view path, Millis timeout) {
  std::string request = "GET " + std::string(path) + " HTTP/1.0\r\nHost: 127.0.0.1:" + std::to_string(port) +
                        "\r\nConnection: close\r\n\r\n";
  return HttpExchange(port, request, timeout);
}

HttpReply HttpPost(int port, std::string_view path, std::string_view content_type, std::string_view body,
                   Millis timeout) {
  return HttpExchange(port, PostRequest(port, path, content_type, body), timeout);
}

// ---------------------------------------------------------------------------
// OCSP client.

const char* ToString(CertStatus status) {
  switch (status) {
    case CertStatus::kGood: return "good";
    case CertStatus::kRevoked: return "revoked";
    case CertStatus::kUnknown: return "unknown";
  }
  return "?";
}

std::string OcspRequestDer(X509* cert, X509* issuer) { return RequestDer(CertId(cert, issuer).get()); }

OcspAnswer QueryOcsp(int port, X509* cert, X509* issuer, Millis timeout) {
  return QueryId(port, CertId(cert, issuer).get(), timeout);
}

// ---------------------------------------------------------------------------
// OcspResponder.

OcspResponder::OcspResponder(OcspResponderOptions options) : options_(std::move(options)) {
  std::filesystem::create_directories(options_.dir);
  index_path_ = options_.dir + "/index.txt";
  log_path_ = options_.dir + "/ocsp.log";
  WriteFile(index_path_ + ".attr", "unique_subject = no\n");
  WriteIndex();
}

OcspResponder::~OcspResponder() { Stop(); }

std::string OcspResponder::url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/"; }

pid_t OcspResponder::pid() const { return process_ ? process_->pid() : -1; }

std::vector<pid_t> OcspResponder::WorkerPids() const {
  std::vector<pid_t> out;
  const pid_t parent = pid();
  if (parent <= 0) return out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = ReadAll("/proc/" + name + "/stat");
    size_t paren = stat.rfind(')');
    if (paren == std::string::npos || paren + 4 >= stat.size()) continue;
    // "<pid> (<comm>) <state> <ppid> ..."
    long ppid = std::strtol(stat.c_str() + paren + 4, nullptr, 10);
    if (ppid == parent) out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string OcspResponder::Log() const { return ReadAll(log_path_); }

bool OcspResponder::running() { return process_ && process_->running(); }

void OcspResponder::WriteIndex() {
  std::string text;
  for (const auto& [serial, e] : entries_) {
    if (e.status == CertStatus::kGood) {
      text += "V\t" + e.expiry + "\t\t" + serial + "\tunknown\t" + e.subject + "\n";
    } else if (e.status == CertStatus::kRevoked) {
      text += "R\t" + e.expiry + "\t" + e.revoked + "\t" + serial + "\tunknown\t" + e.subject + "\n";
    }
  }
  // Every version keeps its own name (and so its inode) for the life of the
  // directory: a later version can never reuse the inode of one a worker
  // still has loaded, and `openssl ocsp` compares the inode besides the
  // (one-second) mtime and ctime.
  const std::string version = index_path_ + ".v" + std::to_string(version_++);
  WriteFile(version, text);
  const std::string tmp = index_path_ + ".tmp";
  unlink(tmp.c_str());
  if (link(version.c_str(), tmp.c_str()) != 0) Die("link " + tmp);
  if (rename(tmp.c_str(), index_path_.c_str()) != 0) Die("rename " + tmp);
}

bool OcspResponder::SetStatus(X509* cert, CertStatus status, std::string_view reason, time_t revoked_at) {
  const std::string serial = SerialHex(cert);
  if (status == CertStatus::kUnknown) {
    entries_.erase(serial);
  } else {
    Entry e;
    e.status = status;
    e.expiry = Asn1TimeString(X509_get0_notAfter(cert));
    char* oneline = X509_NAME_oneline(X509_get_subject_name(cert), nullptr, 0);
    e.subject = oneline != nullptr ? oneline : "";
    OPENSSL_free(oneline);
    e.reason_code = -1;
    if (status == CertStatus::kRevoked) {
      e.revoked = TimeString(revoked_at != 0 ? revoked_at : std::time(nullptr) - 1);
      if (!reason.empty()) e.revoked += "," + std::string(reason);
      e.reason_code = ReasonCode(reason);
    }
    entries_[serial] = std::move(e);
  }
  WriteIndex();
  if (!options_.refresh_on_change || !running()) return true;
  if (Refresh()) return true;
  std::fprintf(stderr, "integration peers: openssl ocsp on port %d: Refresh() after SetStatus failed\n", port_);
  return false;
}

namespace {

// The inode of the server side of the TCP connection from 127.0.0.1:
// client_port to server_port (/proc/net/tcp6, then tcp): 0 while it waits
// in the accept queue, the socket's inode once accept()ed; -1 if not listed.
long ServerSideInode(int server_port, int client_port) {
  for (const char* file : {"/proc/net/tcp6", "/proc/net/tcp"}) {
    std::ifstream in(file);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string sl, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      fields >> sl >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode;
      const size_t lc = local.rfind(':'), rc = remote.rfind(':');
      if (lc == std::string::npos || rc == std::string::npos || inode.empty()) continue;
      if (std::strtol(local.c_str() + lc + 1, nullptr, 16) == server_port &&
          std::strtol(remote.c_str() + rc + 1, nullptr, 16) == client_port) {
        return std::strtol(inode.c_str(), nullptr, 10);
      }
    }
  }
  return -1;
}

}  // namespace

bool OcspResponder::Refresh(Millis timeout) {
  if (!running() || port_ <= 0 || probe_request_.empty()) return false;
  const auto deadline = Clock::now() + timeout;
  const int workers = std::max(1, options_.workers);
  std::vector<int> fds;
  for (int i = 0; i < workers; ++i) {
    HttpReply ignored;
    int fd = ConnectTo(port_, deadline, ignored);
    if (fd < 0) break;
    fds.push_back(fd);
    const int client_port = BoundPort(fd);
    // Accepted by a worker within 300 ms? If not, every worker that can
    // accept holds one of ours already (or is wedged): stop here.
    const auto accept_deadline = std::min(deadline, Clock::now() + Millis(300));
    bool accepted = false;
    do {
      accepted = ServerSideInode(port_, client_port) > 0;
      if (!accepted) std::this_thread::sleep_for(Millis(1));
    } while (!accepted && Clock::now() < accept_deadline);
    if (!accepted) break;
  }
  // Never close a connection to `openssl ocsp` without a request in it: that wedges a worker.
  bool ok = !fds.empty();
  std::vector<HttpReply> replies(fds.size());
  for (size_t i = 0; i < fds.size(); ++i) SendAll(fds[i], probe_request_, deadline, replies[i]);
  for (size_t i = 0; i < fds.size(); ++i) {
    ReadToEof(fds[i], deadline, replies[i]);
    ParseReply(replies[i], Clock::now());
    ok = ok && replies[i].status == 200;
    close(fds[i]);
  }
  return ok;
}

bool OcspResponder::WaitForStatus(X509* cert, X509* issuer, CertStatus expected, Millis timeout) {
  if (port_ <= 0) return false;
  int want_reason = -2;  // -2: do not check
  if (expected == CertStatus::kRevoked) {
    auto it = entries_.find(SerialHex(cert));
    if (it != entries_.end() && it->second.status == CertStatus::kRevoked) want_reason = it->second.reason_code;
  }
  OcspCertIdPtr id = CertId(cert, issuer);
  const auto deadline = Clock::now() + timeout;
  do {
    OcspAnswer a = QueryId(port_, id.get(), std::max(Millis(100), std::min(Remaining(deadline), Millis(2000))));
    if (a.ok && a.status == expected && (want_reason == -2 || a.reason == want_reason)) return true;
    std::this_thread::sleep_for(Millis(20));
  } while (Clock::now() < deadline);
  return false;
}

bool OcspResponder::Start(std::string* error, Millis timeout) {
  if (running()) return true;
  auto fail = [&](const std::string& why) {
    Stop();
    if (error) *error = why;
    return false;
  };
  if (!InPrivateNetns() && !options_.allow_outside_netns) {
    return fail("refusing to start `openssl ocsp` (it listens on every interface) outside a private network "
                "namespace: " + std::string(kNeedsPrivateNetns));
  }
  for (const std::string* f : {&options_.ca_cert, &options_.rsigner_cert, &options_.rsigner_key}) {
    if (access(f->c_str(), R_OK) != 0) return fail("cannot read '" + *f + "'");
  }
  certacl::X509Ptr ca = TryLoadCert(options_.ca_cert);
  if (!ca) return fail("no certificate in " + options_.ca_cert);

  // A restart keeps the port (the devices' AIA URLs name it).
  const int want_port = options_.port != 0 ? options_.port : port_;
  std::vector<std::string> args = {"openssl", "ocsp", "-index", index_path_, "-port", std::to_string(want_port),
                                   "-rsigner", options_.rsigner_cert, "-rkey", options_.rsigner_key,
                                   "-CA", options_.ca_cert};
  if (options_.workers >= 1) args.insert(args.end(), {"-multi", std::to_string(options_.workers)});
  if (options_.next_update_minutes > 0) args.insert(args.end(), {"-nmin", std::to_string(options_.next_update_minutes)});
  if (options_.resp_no_certs) args.push_back("-resp_no_certs");
  if (!options_.rmd.empty()) args.insert(args.end(), {"-rmd", options_.rmd});
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());

  const size_t log_from = FileSize(log_path_);
  process_ = std::make_unique<GuardedProcess>();
  std::string spawn_error;
  if (!process_->Spawn(args, log_path_, &spawn_error)) return fail(spawn_error);

  // A CertID for a serial nobody has: the answer is "unknown", but a
  // complete, successful OCSP response proves a worker is serving.
  BignumPtr bn(BN_new());
  BN_set_word(bn.get(), 0x7EADBEEFUL);
  IntegerPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  OcspCertIdPtr probe(OCSP_cert_id_new(EVP_sha1(), X509_get_subject_name(ca.get()), X509_get0_pubkey_bitstr(ca.get()),
                                       serial.get()));
  if (!probe) Die("OCSP_cert_id_new");

  port_ = want_port;
  probe_request_ = PostRequest(port_, "/", "application/ocsp-request", RequestDer(probe.get()));
  const auto deadline = Clock::now() + timeout;
  std::string last;
  for (;;) {
    if (!process_->running()) {
      return fail("openssl ocsp exited (status " + std::to_string(process_->exit_status()) + "):\n" +
                  Log().substr(std::min(log_from, Log().size())));
    }
    if (port_ == 0) {
      // "ACCEPT [::]:37421 PID=26165" (or 0.0.0.0:<port>)
      std::string log = Log();
      size_t at = log.find("ACCEPT ", log_from);
      size_t eol = at == std::string::npos ? at : log.find('\n', at);
      if (eol != std::string::npos) {
        std::string line = log.substr(at, eol - at);
        size_t space = line.find(' ', 7);
        std::string address = line.substr(7, space == std::string::npos ? std::string::npos : space - 7);
        size_t colon = address.rfind(':');
        if (colon != std::string::npos) port_ = std::atoi(address.c_str() + colon + 1);
        probe_request_ = PostRequest(port_, "/", "application/ocsp-request", RequestDer(probe.get()));
      }
    }
    if (port_ > 0) {
      OcspAnswer a = QueryId(port_, probe.get(), std::max(Millis(50), Remaining(deadline)));
      if (a.ok) return true;
      last = a.error;
    }
    if (Clock::now() >= deadline) {
      return fail("openssl ocsp did not answer within " + std::to_string(timeout.count()) + " ms (" +
                  (port_ > 0 ? "last probe: " + last : std::string("no ACCEPT line")) + "):\n" +
                  Log().substr(std::min(log_from, Log().size())));
    }
    std::this_thread::sleep_for(Millis(10));
  }
}

void OcspResponder::Stop() {
  if (process_) process_->Stop();
}

// ---------------------------------------------------------------------------
// HttpFileServer.

HttpFileServer::HttpFileServer(std::string root, std::string log_path)
    : root_(std::move(root)), log_path_(std::move(log_path)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
  if (log_path_.empty()) log_path_ = root_ + ".log";
  std::filesystem::create_directories(root_);
}

HttpFileServer::~HttpFileServer() { Stop(); }

std::string HttpFileServer::url(std::string_view path) const {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  return "http://127.0.0.1:" + std::to_string(port_) + "/" + std::string(path);
}

pid_t HttpFileServer::pid() const { return process_ ? process_->pid() : -1; }

bool HttpFileServer::running() { return process_ && process_->running(); }

std::string HttpFileServer::Log() const { return ReadAll(log_path_); }

void HttpFileServer::Stop() {
  if (process_) process_->Stop();
}

bool HttpFileServer::Start(std::string* error, Millis timeout) {
  if (running()) return true;
  auto fail = [&](const std::string& why) {
    Stop();
    if (error) *error = why;
    return false;
  };
  const size_t log_from = FileSize(log_path_);
  process_ = std::make_unique<GuardedProcess>();
  std::string spawn_error;
  // -u: unbuffered, so the "Serving HTTP on ... port N" line arrives at once.
  // A restart keeps the port (URLs in certificates name it).
  if (!process_->Spawn({"python3", "-u", "-m", "http.server", std::to_string(port_), "--bind", "127.0.0.1",
                        "--directory", root_},
                       log_path_, &spawn_error)) {
    return fail(spawn_error);
  }
  port_ = 0;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (!process_->running()) {
      return fail("python3 -m http.server exited (status " + std::to_string(process_->exit_status()) + "):\n" +
                  Log().substr(std::min(log_from, Log().size())));
    }
    if (port_ == 0) {
      // "Serving HTTP on 127.0.0.1 port 34329 (http://127.0.0.1:34329/) ..."
      std::string log = Log();
      static constexpr std::string_view kServing = "Serving HTTP on 127.0.0.1 port ";
      size_t at = log.find(kServing, log_from);
      if (at != std::string::npos && log.find('\n', at) != std::string::npos) {
        port_ = std::atoi(log.c_str() + at + kServing.size());
      }
    }
    if (port_ > 0 && HttpGet(port_, "/.certacl-probe", std::max(Millis(50), Remaining(deadline))).status != 0) {
      return true;
    }
    if (Clock::now() >= deadline) {
      return fail("python3 -m http.server did not answer within " + std::to_string(timeout.count()) + " ms:\n" +
                  Log().substr(std::min(log_from, Log().size())));
    }
    std::this_thread::sleep_for(Millis(10));
  }
}

void HttpFileServer::PublishAtomically(const std::string& dir, const std::string& name, std::string_view bytes,
                                       time_t mtime) {
  static std::atomic<int> counter{0};
  const std::string target = dir + "/" + name;
  const size_t slash = target.rfind('/');
  const std::string tmp = target.substr(0, slash + 1) + "." + target.substr(slash + 1) + ".tmp." +
                          std::to_string(getpid()) + "." + std::to_string(counter++);
  WriteFile(tmp, bytes);
  if (mtime != 0) {
    timeval times[2] = {{mtime, 0}, {mtime, 0}};
    if (utimes(tmp.c_str(), times) != 0) Die("utimes " + tmp);
  }
  if (rename(tmp.c_str(), target.c_str()) != 0) Die("rename " + tmp);
}

// ---------------------------------------------------------------------------
// ScriptedHttpServer.

ScriptedBehaviour ScriptedBehaviour::Respond(int status, std::string content_type, std::string body) {
  ScriptedBehaviour b;
  b.mode = Mode::kRespond;
  b.status = status;
  b.content_type = std::move(content_type);
  b.body = std::move(body);
  return b;
}

ScriptedBehaviour ScriptedBehaviour::Hang() {
  ScriptedBehaviour b;
  b.mode = Mode::kHang;
  return b;
}

ScriptedBehaviour ScriptedBehaviour::CloseImmediately() {
  ScriptedBehaviour b;
  b.mode = Mode::kCloseImmediately;
  return b;
}

ScriptedBehaviour ScriptedBehaviour::Reset() {
  ScriptedBehaviour b;
  b.mode = Mode::kReset;
  return b;
}

ScriptedBehaviour ScriptedBehaviour::Delay(Millis delay, int status, std::string content_type, std::string body) {
  ScriptedBehaviour b = Respond(status, std::move(content_type), std::move(body));
  b.mode = Mode::kDelay;
  b.delay = delay;
  return b;
}

ScriptedBehaviour ScriptedBehaviour::Partial(size_t bytes, int status, std::string content_type, std::string body) {
  ScriptedBehaviour b = Respond(status, std::move(content_type), std::move(body));
  b.mode = Mode::kPartial;
  b.partial_bytes = bytes;
  return b;
}

ScriptedHttpServer::ScriptedHttpServer(ScriptedBehaviour behaviour) : behaviour_(std::move(behaviour)) {}

ScriptedHttpServer::~ScriptedHttpServer() { Stop(); }

std::string ScriptedHttpServer::url(std::string_view path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

void ScriptedHttpServer::SetBehaviour(ScriptedBehaviour behaviour) {
  std::lock_guard<std::mutex> lock(mu_);
  behaviour_ = std::move(behaviour);
}

ScriptedBehaviour ScriptedHttpServer::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return behaviour_;
}

std::string ScriptedHttpServer::LastRequest() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_log_.empty() ? "" : requests_log_.back();
}

std::vector<std::string> ScriptedHttpServer::Requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_log_;
}

bool ScriptedHttpServer::Start(std::string* error) {
  if (thread_.joinable()) return true;
  listen_fd_ = BindLoopback(0);
  if (listen(listen_fd_, 128) != 0) {
    if (error) *error = std::string("listen: ") + std::strerror(errno);
    close(listen_fd_);
    listen_fd_ = -1;
    return false;
  }
  fcntl(listen_fd_, F_SETFL, fcntl(listen_fd_, F_GETFL) | O_NONBLOCK);
  port_ = BoundPort(listen_fd_);
  if (pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) Die("pipe2");
  thread_ = std::thread([this] { Run(); });
  return true;
}

void ScriptedHttpServer::Stop() {
  if (thread_.joinable()) {
    char byte = 1;
    ssize_t n = write(wake_[1], &byte, 1);
    (void)n;
    thread_.join();
  }
  for (int* fd : {&listen_fd_, &wake_[0], &wake_[1]}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

namespace {

const char* ReasonPhrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

std::string FormatResponse(const ScriptedBehaviour& b) {
  std::string out = "HTTP/1.0 " + std::to_string(b.status) + " " + ReasonPhrase(b.status) + "\r\n";
  if (!b.content_type.empty()) out += "Content-Type: " + b.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(b.body.size()) + "\r\nConnection: close\r\n\r\n";
  out += b.body;
  return out;
}

// The length of the complete request at the start of `in`; 0 if incomplete.
size_t CompleteRequest(const std::string& in) {
  size_t end = in.find("\r\n\r\n");
  if (end == std::string::npos) return in.size() > (1 << 20) ? in.size() : 0;  // absurd head: take it
  const std::string length = FindHeader(std::string_view(in).substr(0, end), "Content-Length");
  const size_t body = length.empty() ? 0 : static_cast<size_t>(std::strtoull(length.c_str(), nullptr, 10));
  const size_t total = end + 4 + std::min<size_t>(body, 16 << 20);
  return in.size() >= total ? total : 0;
}

}  // namespace

void ScriptedHttpServer::Run() {
  enum class State { kReading, kWaiting, kWriting, kHanging, kDraining };
  struct Conn {
    int fd = -1;
    State state = State::kReading;
    std::string in;
    std::string out;
    size_t out_off = 0;
    bool hang_after_write = false;
    Clock::time_point at{};  // kWaiting: when to answer; kDraining: when to give up
  };
  std::vector<Conn> conns;
  auto close_conn = [](Conn& c, bool reset) {
    if (reset) {
      linger l{1, 0};
      setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(c.fd);
    c.fd = -1;
  };

  for (;;) {
    std::vector<pollfd> fds;
    fds.push_back({wake_[0], POLLIN, 0});
    const bool accepting = conns.size() < kMaxConnections;
    fds.push_back({accepting ? listen_fd_ : -1, POLLIN, 0});
    auto now = Clock::now();
    int timeout = 1000;
    for (const Conn& c : conns) {
      short events = 0;
      if (c.state == State::kReading || c.state == State::kHanging || c.state == State::kDraining) events = POLLIN;
      if (c.state == State::kWriting) events = POLLOUT;
      // A connection waiting to answer is not polled (a hang-up would spin).
      fds.push_back({c.state == State::kWaiting ? -1 : c.fd, events, 0});
      if (c.state == State::kWaiting || c.state == State::kDraining) {
        auto ms = std::chrono::duration_cast<Millis>(c.at - now).count();
        timeout = static_cast<int>(std::clamp<int64_t>(ms + 1, 0, timeout));
      }
    }
    if (poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) Die("poll");
    if ((fds[0].revents & POLLIN) != 0) break;  // Stop()

    now = Clock::now();
    for (size_t i = 0; i < conns.size(); ++i) {
      Conn& c = conns[i];
      const short revents = fds[i + 2].revents;
      switch (c.state) {
        case State::kReading: {
          if (revents == 0) break;
          char buf[16384];
          ssize_t n = recv(c.fd, buf, sizeof buf, 0);
          if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
          if (n <= 0) {  // closed (or reset) before a complete request
            close_conn(c, false);
            break;
          }
          c.in.append(buf, static_cast<size_t>(n));
          const size_t length = CompleteRequest(c.in);
          if (length == 0) break;
          const ScriptedBehaviour b = Current();
          {
            std::lock_guard<std::mutex> lock(mu_);
            requests_log_.push_back(c.in.substr(0, length));
          }
          ++requests_;
          using Mode = ScriptedBehaviour::Mode;
          switch (b.mode) {
            case Mode::kRespond:
              c.out = FormatResponse(b);
              c.state = State::kWriting;
              break;
            case Mode::kHang:
              c.state = State::kHanging;
              break;
            case Mode::kCloseImmediately:
              close_conn(c, false);
              break;
            case Mode::kReset:
              close_conn(c, true);
              break;
            case Mode::kDelay:
              c.out = FormatResponse(b);
              c.at = now + b.delay;
              c.state = State::kWaiting;
              break;
            case Mode::kPartial:
              c.out = FormatResponse(b).substr(0, b.partial_bytes);
              c.hang_after_write = true;
              c.state = c.out.empty() ? State::kHanging : State::kWriting;
              break;
          }
          break;
        }
        case State::kWaiting:
          if (now >= c.at) c.state = State::kWriting;  // written at the next poll
          break;
        case State::kWriting: {
          if (revents == 0) break;
          ssize_t n = send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
          if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
          if (n < 0) {
            close_conn(c, false);
            break;
          }
          c.out_off += static_cast<size_t>(n);
          if (c.out_off < c.out.size()) break;
          if (c.hang_after_write) {
            c.state = State::kHanging;
          } else {
            // FIN after the answer, then wait (bounded) for the client's
            // close: closing with unread input would send RST instead.
            shutdown(c.fd, SHUT_WR);
            c.state = State::kDraining;
            c.at = now + Millis(2000);
          }
          break;
        }
        case State::kHanging:
        case State::kDraining: {
          if (c.state == State::kDraining && now >= c.at) {
            close_conn(c, false);
            break;
          }
          if (revents == 0) break;
          char buf[4096];
          ssize_t n = recv(c.fd, buf, sizeof buf, 0);
          if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) close_conn(c, false);
          break;
        }
      }
    }
    conns.erase(std::remove_if(conns.begin(), conns.end(), [](const Conn& c) { return c.fd < 0; }), conns.end());

    if (accepting && (fds[1].revents & POLLIN) != 0) {
      while (conns.size() < kMaxConnections) {
        int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;
        ++connections_;
        Conn c;
        c.fd = fd;
        conns.push_back(std::move(c));
      }
    }
  }
  for (Conn& c : conns) close(c.fd);
}

// ---------------------------------------------------------------------------
// Blackhole.

Blackhole::Blackhole(int backlog) {
  fd_ = BindLoopback(0);
  if (listen(fd_, backlog) != 0) Die("listen");
  port_ = BoundPort(fd_);
}

Blackhole::~Blackhole() {
  if (fd_ >= 0) close(fd_);
}

std::string Blackhole::url(std::string_view path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

int Blackhole::UnusedPort() {
  static std::mutex mu;
  static std::vector<int>* kept = new std::vector<int>();  // open for the life of the process
  int fd = BindLoopback(0);
  const int port = BoundPort(fd);
  std::lock_guard<std::mutex> lock(mu);
  kept->push_back(fd);
  return port;
}

// ---------------------------------------------------------------------------
// Certificates and CRLs.

certacl::X509Ptr LoadCert(const std::string& pem_path) {
  certacl::X509Ptr cert = TryLoadCert(pem_path);
  if (!cert) {
    std::fprintf(stderr, "integration peers: no certificate in %s\n", pem_path.c_str());
    std::abort();
  }
  return cert;
}

std::string SerialHex(const X509* cert) {
  BignumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (!bn) Die("ASN1_INTEGER_to_BN");
  if (BN_is_zero(bn.get())) return "00";
  char* hex = BN_bn2hex(bn.get());
  std::string out = hex;
  OPENSSL_free(hex);
  if (out.size() % 2 != 0) out.insert(0, "0");
  return out;
}

std::string DerAiaOcsp(std::string_view url) {
  // AuthorityInfoAccessSyntax ::= SEQUENCE OF AccessDescription
  // AccessDescription ::= SEQUENCE { id-ad-ocsp, uniformResourceIdentifier [6] IA5String }
  return DerSequence({DerSequence({DerOid("1.3.6.1.5.5.7.48.1"), DerTlv(0x86, url)})});
}

std::string DerCrlDistributionPoint(std::string_view url) {
  // CRLDistributionPoints ::= SEQUENCE OF DistributionPoint
  // DistributionPoint ::= SEQUENCE { distributionPoint [0] { fullName [0] { [6] uri } } }
  return DerSequence({DerSequence({DerTlv(0xA0, DerTlv(0xA0, DerTlv(0x86, url)))})});
}

CertFiles ResponderCert(Pki& pki, std::string_view stem, const ResponderCertSpec& spec) {
  const TestCa& ca = spec.issuer != nullptr ? *spec.issuer : pki.issuing();
  CertBuilder b = ca.Issue();
  b.Subject("CN", spec.cn).SubjectKeyIdFromKey();
  if (spec.not_before != 0 || spec.not_after != 0) b.Validity(spec.not_before, spec.not_after);
  b.Extension("2.5.29.19", DerSequence({}), true);                       // basicConstraints CA:FALSE
  b.Extension("2.5.29.15", DerTlv(0x03, std::string("\x07\x80", 2)), true);  // keyUsage digitalSignature
  if (spec.ocsp_signing_eku) b.Extension("2.5.29.37", DerSequence({DerOid("1.3.6.1.5.5.7.3.9")}));
  if (spec.ocsp_nocheck) b.Extension("1.3.6.1.5.5.7.48.1.5", DerNull());
  return pki.Write(stem, b);
}

CertFiles DeviceWithUrls(Pki& pki, std::string_view stem, const DeviceSpec& spec, std::string_view ocsp_url,
                         std::string_view crl_url) {
  CertBuilder b = Pki::Builder(spec);
  b.SignedBy(pki.issuing().cert.get(), pki.issuing().key.get());
  if (!ocsp_url.empty()) b.Extension("1.3.6.1.5.5.7.1.1", DerAiaOcsp(ocsp_url));
  if (!crl_url.empty()) b.Extension("2.5.29.31", DerCrlDistributionPoint(crl_url));
  return pki.Write(stem, b);
}

std::string MakeCrlDer(const TestCa& ca, const std::vector<CrlEntry>& entries, int64_t this_update,
                       int64_t next_update, long crl_number) {
  using CrlPtr = certacl::OpenSslPtr<X509_CRL, X509_CRL_free>;
  using TimePtr = certacl::OpenSslPtr<ASN1_TIME, ASN1_TIME_free>;
  using EnumeratedPtr = certacl::OpenSslPtr<ASN1_ENUMERATED, ASN1_ENUMERATED_free>;
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  if (this_update == 0) this_update = now - 60;
  if (next_update == 0) next_update = this_update + 7 * 86400;

  CrlPtr crl(X509_CRL_new());
  if (!crl || X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca.cert.get())) != 1) {
    Die("X509_CRL");
  }
  TimePtr last(ASN1_TIME_set(nullptr, static_cast<time_t>(this_update)));
  if (!last || X509_CRL_set1_lastUpdate(crl.get(), last.get()) != 1) Die("X509_CRL_set1_lastUpdate");
  if (next_update > 0) {
    TimePtr next(ASN1_TIME_set(nullptr, static_cast<time_t>(next_update)));
    if (!next || X509_CRL_set1_nextUpdate(crl.get(), next.get()) != 1) Die("X509_CRL_set1_nextUpdate");
  }
  for (const CrlEntry& e : entries) {
    X509_REVOKED* r = X509_REVOKED_new();
    BIGNUM* raw = nullptr;
    if (r == nullptr || BN_hex2bn(&raw, e.serial_hex.c_str()) == 0) Die("bad serial " + e.serial_hex);
    BignumPtr bn(raw);
    IntegerPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
    TimePtr when(ASN1_TIME_set(nullptr, static_cast<time_t>(e.revoked_at != 0 ? e.revoked_at : now - 3600)));
    if (!serial || !when || X509_REVOKED_set_serialNumber(r, serial.get()) != 1 ||
        X509_REVOKED_set_revocationDate(r, when.get()) != 1) {
      Die("X509_REVOKED");
    }
    if (e.reason >= 0) {
      EnumeratedPtr reason(ASN1_ENUMERATED_new());
      if (!reason || ASN1_ENUMERATED_set(reason.get(), e.reason) != 1 ||
          X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, reason.get(), 0, 0) != 1) {
        Die("CRL reason");
      }
    }
    if (X509_CRL_add0_revoked(crl.get(), r) != 1) Die("X509_CRL_add0_revoked");
  }
  X509_CRL_sort(crl.get());

  const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(ca.cert.get());
  if (ski != nullptr) {
    AuthorityKeyIdPtr aki(AUTHORITY_KEYID_new());
    aki->keyid = ASN1_OCTET_STRING_dup(ski);
    if (X509_CRL_add1_ext_i2d(crl.get(), NID_authority_key_identifier, aki.get(), 0, 0) != 1) Die("CRL AKI");
  }
  IntegerPtr number(ASN1_INTEGER_new());
  if (!number || ASN1_INTEGER_set(number.get(), crl_number) != 1 ||
      X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, 0) != 1) {
    Die("CRL number");
  }
  EVP_PKEY* key = ca.key.get();
  const bool pure = EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448");
  if (X509_CRL_sign(crl.get(), key, pure ? nullptr : EVP_sha256()) <= 0) Die("X509_CRL_sign");
  unsigned char* der = nullptr;
  int len = i2d_X509_CRL(crl.get(), &der);
  if (len <= 0) Die("i2d_X509_CRL");
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

}  // namespace certacl::integration
