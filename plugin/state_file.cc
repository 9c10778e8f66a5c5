// state_file.cc: persistent-session certificates, written off the broker thread.
#include "plugin/state_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_set>

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
  // The writer starts with the first line to write (EnsureWriter): a
  // broker that only reads the file (a restart of a known fleet whose
  // certificates did not change) runs no thread, and glibc stays in its
  // single-thread mode (cheaper malloc for the whole broker, item 12 of
  // bench/RESULTS.md).
  return "";
}

void StateFile::Put(const std::string& client_id, const std::string& der) {
  std::string line = "P " + HexEncode(client_id) + " " + HexEncode(der) + "\n";
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!file_) return;
    queue_.push_back(std::move(line));
    EnsureWriter();
  }
  cv_.notify_one();
}

void StateFile::PutSignature(const SignatureCache::Key& key) {
  std::string line = "S " + KeyHex(key) + "\n";
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!file_ || signature_lines_left_ == 0) return;
    --signature_lines_left_;
    queue_.push_back(std::move(line));
    EnsureWriter();
  }
  cv_.notify_one();
}

void StateFile::Remove(const std::string& client_id) {
  std::string line = "D " + HexEncode(client_id) + "\n";
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!file_) return;
    queue_.push_back(std::move(line));
    EnsureWriter();
  }
  cv_.notify_one();
}

void StateFile::EnsureWriter() {
  if (!writer_.joinable()) writer_ = std::thread([this] { Run(); });
}

void StateFile::Flush() {
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
