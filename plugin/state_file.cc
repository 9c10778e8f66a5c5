// state_file.cc: persistent-session certificates, written off the broker thread
// (by certacl-state-writer, or by a thread).
#include "plugin/state_file.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_set>
#include <utility>

extern char** environ;

namespace certacl::plugin {

std::string HexEncode(const std::string& bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

bool HexDecode(const std::string& hex, std::string* out) {
  if (hex.size() % 2) return false;
  out->clear();
  out->reserve(hex.size() / 2);
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    *out += static_cast<char>(hi * 16 + lo);
  }
  return true;
}

StateFile::~StateFile() {
  FinishWriter();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (file_) std::fclose(file_);
}

namespace {

std::string KeyHex(const SignatureCache::Key& k) {
  return HexEncode(std::string(reinterpret_cast<const char*>(k.data()), k.size()));
}

// Why "S" lines of `path` must not be trusted, or "" if they may be.
std::string Untrusted(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";  // missing: created 0600 below
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) return "it is writable by group or others (chmod 600 it)";
  if (st.st_uid != ::geteuid() && st.st_uid != 0) return "it is owned by another user than the broker's";
  return "";
}

}  // namespace

std::string StateFile::Open(const std::string& path, std::unordered_map<std::string, std::string>* entries,
                            std::vector<SignatureCache::Key>* signatures, size_t max_signatures,
                            std::string* warning) {
  path_ = path;
  entries->clear();
  if (signatures) signatures->clear();
  if (warning) warning->clear();
  const std::string untrusted = signatures ? Untrusted(path) : "";
  std::vector<SignatureCache::Key> all_keys;  // file order, with repeats
  {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string op, id_hex, der_hex, id, der;
      fields >> op >> id_hex >> der_hex;
      // A torn last line (crash while writing) is skipped, not fatal.
      if (!HexDecode(id_hex, &id) || id.empty()) continue;
      if (op == "P" && HexDecode(der_hex, &der) && !der.empty()) {
        (*entries)[id] = der;
      } else if (op == "D") {
        entries->erase(id);
      } else if (op == "S" && signatures && id.size() == SignatureCache::Key().size() && der_hex.empty()) {
        SignatureCache::Key k;
        std::memcpy(k.data(), id.data(), k.size());
        all_keys.push_back(k);
      }
    }
  }
  if (!untrusted.empty() && !all_keys.empty()) {
    if (warning) {
      *warning = "ignored the " + std::to_string(all_keys.size()) + " signature checks in the state file \"" + path +
                 "\": " + untrusted + "; devices are verified again";
    }
    all_keys.clear();
  }
  if (signatures) {
    // The last `max_signatures` distinct keys, in the order they were written.
    std::unordered_set<SignatureCache::Key, SignatureCache::KeyHash> seen;
    for (auto k = all_keys.rbegin(); k != all_keys.rend() && signatures->size() < max_signatures; ++k) {
      if (seen.insert(*k).second) signatures->push_back(*k);
    }
    std::reverse(signatures->begin(), signatures->end());
  }
  // Compact: write the live entries to a new file (mode 0600) and rename it over.
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  FILE* out = fd >= 0 ? ::fdopen(fd, "w") : nullptr;
  if (!out) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    return "cannot write the state file \"" + tmp + "\": " + std::strerror(err);
  }
  if (::fchmod(fd, 0600) != 0) {  // a .tmp left by a crash keeps its old mode through O_TRUNC
    const int err = errno;
    std::fclose(out);
    return "cannot write the state file \"" + tmp + "\": " + std::strerror(err);
  }
  if (signatures) {
    for (const SignatureCache::Key& k : *signatures) std::fprintf(out, "S %s\n", KeyHex(k).c_str());
  }
  for (const auto& [id, der] : *entries) std::fprintf(out, "P %s %s\n", HexEncode(id).c_str(), HexEncode(der).c_str());
  if (std::fflush(out) != 0 || fsync(fileno(out)) != 0) {
    const int err = errno;
    std::fclose(out);
    return "cannot write the state file \"" + tmp + "\": " + std::strerror(err);
  }
  std::fclose(out);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return "cannot replace the state file \"" + path + "\": " + std::strerror(errno);
  }
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) return "cannot open the state file \"" + path + "\": " + std::strerror(errno);
  signature_lines_left_ = signatures ? 2 * max_signatures : 0;
  if (!writer_program_.empty()) {
    const std::string err = StartWriter();
    use_program_ = err.empty();
    if (!err.empty() && warning) {
      *warning += std::string(warning->empty() ? "" : "; also, ") + err +
                  ": a thread writes the state file instead, which slows every malloc in the broker "
                  "(~100,000 instructions more per connect)";
    }
  }
  // Without the writer program, the thread starts with the first line to
  // write (EnsureWriter): a broker that only reads the file (a restart of a
  // known fleet whose certificates did not change) runs no thread, and glibc
  // stays in its single-thread mode (cheaper malloc for the whole broker,
  // items 12 and 13 of bench/RESULTS.md).
  return "";
}

void StateFile::Put(const std::string& client_id, const std::string& der) {
  Enqueue("P " + HexEncode(client_id) + " " + HexEncode(der) + "\n");
}

void StateFile::PutSignature(const SignatureCache::Key& key) {
  if (signature_lines_left_ == 0) return;
  --signature_lines_left_;
  Enqueue("S " + KeyHex(key) + "\n");
}

void StateFile::Remove(const std::string& client_id) { Enqueue("D " + HexEncode(client_id) + "\n"); }

void StateFile::Enqueue(std::string line) {
  if (!file_) return;  // not open
  if (use_program_) {
    pending_ += line;
    Send();  // if the program cannot go on, this hands the lines to the thread
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(line));
    EnsureWriter();
  }
  cv_.notify_one();
}

std::string StateFile::StartWriter() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return std::string("cannot start the state file writer: socketpair: ") + std::strerror(errno);
  }
  // Room for a connect storm's lines; what does not fit waits in pending_.
  const int size = 1 << 20;
  ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_adddup2(&actions, sv[1], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, fileno(file_), STDOUT_FILENO);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  char name[] = "certacl-state-writer";
  char* argv[] = {name, nullptr};
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, writer_program_.c_str(), &actions, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(sv[1]);
  if (rc != 0) {
    ::close(sv[0]);
    return "cannot start the state file writer \"" + writer_program_ + "\": " + std::strerror(rc);
  }
  writer_pid_ = pid;
  writer_socket_ = sv[0];
  writer_started_ = std::chrono::steady_clock::now();
  acked_ = 0;  // a new child counts from 0
  ack_have_ = 0;
  return "";
}

std::string StateFile::StopWriter() {
  if (writer_socket_ >= 0) ::close(writer_socket_);  // the child drains, syncs and exits
  writer_socket_ = -1;
  if (writer_pid_ <= 0) return "";
  const pid_t pid = std::exchange(writer_pid_, -1);
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  const std::string who = "the state file writer (pid " + std::to_string(pid) + ")";
  if (r < 0) return "";  // already reaped (SIGCHLD ignored): its status is unknown
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  if (WIFEXITED(status)) return who + " exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return who + " was killed by signal " + std::to_string(WTERMSIG(status));
  return who + " ended";
}

void StateFile::Send() {
  ReadAcks();
  while (use_program_ && pending_sent_ < pending_.size()) {
    if (writer_socket_ < 0) {
      const std::string err = StartWriter();
      if (!err.empty()) return FallBack(err);
    }
    const ssize_t n = ::send(writer_socket_, pending_.data() + pending_sent_, pending_.size() - pending_sent_,
                             MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      pending_sent_ += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;  // the next call or Poll() goes on
    // The child is gone (EPIPE).
    const auto ran = std::chrono::steady_clock::now() - writer_started_;
    WriterDied(StopWriter(), ran);
  }
}

void StateFile::ReadAcks() {
  if (writer_socket_ < 0) return;
  uint64_t last = acked_;
  char buf[512];
  ssize_t n;
  while ((n = ::recv(writer_socket_, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
    for (ssize_t i = 0; i < n; ++i) {
      ack_buf_[ack_have_++] = buf[i];
      if (ack_have_ == sizeof ack_buf_) {
        std::memcpy(&last, ack_buf_, sizeof last);
        ack_have_ = 0;
      }
    }
  }
  if (last <= acked_ || last - acked_ > pending_sent_) return;  // nothing new (or nonsense: keep everything)
  const size_t done = static_cast<size_t>(last - acked_);
  pending_.erase(0, done);
  pending_sent_ -= done;
  acked_ = last;
}

void StateFile::WriterDied(std::string why, std::chrono::steady_clock::duration ran) {
  if (why.empty()) why = "the state file writer exited";
  // What it acknowledged is on disk; the rest (whole lines) goes again.
  pending_sent_ = 0;
  // One that dies as soon as it starts (disk full, file gone) is not restarted again and again.
  if (ran < writer_min_run_) {
    AddWarning(why);
    return FallBack("it ran less than " + std::to_string(writer_min_run_.count()) + " s");
  }
  AddWarning(why + "; a new one takes over");
}

void StateFile::FallBack(const std::string& why) {
  use_program_ = false;
  AddWarning(why + ": a thread writes the state file from now on");
  std::string rest = std::exchange(pending_, std::string());
  pending_sent_ = 0;
  if (rest.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(rest));
    EnsureWriter();
  }
  cv_.notify_one();
}

void StateFile::AddWarning(const std::string& w) { writer_warning_ += (writer_warning_.empty() ? "" : "; ") + w; }

std::string StateFile::Poll() {
  if (use_program_) Send();
  return std::exchange(writer_warning_, std::string());
}

void StateFile::FinishWriter() {
  // Everything to the child, then end it: it exits 0 once all is on disk.
  while (use_program_ && !pending_.empty()) {
    Send();
    if (!use_program_) break;
    if (pending_sent_ < pending_.size()) {
      pollfd p{writer_socket_, POLLOUT, 0};
      ::poll(&p, 1, 1000);
      continue;
    }
    const auto ran = std::chrono::steady_clock::now() - writer_started_;
    std::string why = StopWriter();
    if (why.empty()) {
      pending_.clear();
      pending_sent_ = 0;
    } else {
      WriterDied(std::move(why), ran);
    }
  }
  const std::string why = StopWriter();
  if (!why.empty()) AddWarning(why);
}

void StateFile::EnsureWriter() {
  if (!writer_.joinable()) writer_ = std::thread([this] { Run(); });
}

void StateFile::Flush() {
  FinishWriter();
  std::unique_lock<std::mutex> lock(mu_);
  idle_cv_.wait(lock, [this] { return (queue_.empty() && !writing_) || !file_; });
}

void StateFile::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty() && stop_) break;
    std::deque<std::string> batch;
    batch.swap(queue_);
    writing_ = true;
    lock.unlock();
    for (const std::string& line : batch) std::fputs(line.c_str(), file_);
    std::fflush(file_);
    fdatasync(fileno(file_));
    lock.lock();
    writing_ = false;
    idle_cv_.notify_all();
  }
  idle_cv_.notify_all();
}

}  // namespace certacl::plugin
