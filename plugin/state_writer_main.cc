// certacl-state-writer: the process that appends to certacl's state file
// (plugin_opt_state_file) for the broker, so that the broker runs no thread
// of its own for it (a second thread puts glibc's malloc in its multi-thread
// mode for the whole broker: ~100,000 more instructions per connect,
// bench/RESULTS.md item 13).
//
// Started by the plugin (StateFile), never by hand: standard input is the
// plugin's end of a socket that carries complete lines, standard output the
// state file opened for appending. Writes complete lines only (a line cut by
// the plugin's end going away is dropped, not written torn) and syncs them
// (fdatasync) after each batch, then acknowledges them on the same socket:
// 8 bytes, the number of bytes written and synced so far (native byte
// order; the plugin keeps every line until it is acknowledged, and sends
// the rest again to the next writer if this one dies). Exits 0 when the plugin closes its end
// (broker shutdown, or StateFile::Flush) and everything read is on disk; 1
// on a write error, said on standard error. Ignores the signals a terminal
// or a service manager sends to the whole process group, so that it drains
// what the broker sent before exiting.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

bool WriteAll(const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(STDOUT_FILENO, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

int Fail(const char* what) {
  std::fprintf(stderr, "certacl-state-writer: %s: %s\n", what, std::strerror(errno));
  return 1;
}

}  // namespace

int main(int argc, char**) {
  if (argc != 1 || ::isatty(STDIN_FILENO)) {
    std::fprintf(stderr, "certacl-state-writer: started by mosquitto_certacl.so (plugin_opt_state_file), not by hand\n");
    return 2;
  }
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE}) std::signal(sig, SIG_IGN);
  std::string buf;
  uint64_t synced = 0;
  char chunk[1 << 16];
  while (true) {
    const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail("read");
    if (n == 0) break;
    buf.append(chunk, static_cast<size_t>(n));
    const size_t end = buf.rfind('\n');
    if (end == std::string::npos) continue;
    if (!WriteAll(buf.data(), end + 1)) return Fail("write");
    if (::fdatasync(STDOUT_FILENO) != 0 && errno != EINVAL) return Fail("fdatasync");
    buf.erase(0, end + 1);
    synced += end + 1;
    // Cumulative: one the plugin has not read yet may be dropped (EAGAIN).
    ::send(STDIN_FILENO, &synced, sizeof synced, MSG_DONTWAIT | MSG_NOSIGNAL);
  }
  return 0;  // a partial last line (the plugin died mid-line) is dropped
}
