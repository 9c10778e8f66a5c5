// state_file.cc: persistent-session certificates, written off the broker thread.
#include "plugin/state_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

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

std::string StateFile::Open(const std::string& path, std::unordered_map<std::string, std::string>* entries) {
  path_ = path;
  entries->clear();
  {
    std::ifstream in(path);
    std::string line;
    size_t line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      std::istringstream fields(line);
      std::string op, id_hex, der_hex, id, der;
      fields >> op >> id_hex >> der_hex;
      // A torn last line (crash while writing) is skipped, not fatal.
      if (!HexDecode(id_hex, &id) || id.empty()) continue;
      if (op == "P" && HexDecode(der_hex, &der) && !der.empty()) {
        (*entries)[id] = der;
      } else if (op == "D") {
        entries->erase(id);
      }
    }
  }
  // Compact: write the live entries to a new file and rename it over.
  const std::string tmp = path + ".tmp";
  FILE* out = std::fopen(tmp.c_str(), "w");
  if (!out) return "cannot write the state file \"" + tmp + "\": " + std::strerror(errno);
  for (const auto& [id, der] : *entries) std::fprintf(out, "P %s %s\n", HexEncode(id).c_str(), HexEncode(der).c_str());
  if (std::fflush(out) != 0 || fsync(fileno(out)) != 0) {
    std::fclose(out);
    return "cannot write the state file \"" + tmp + "\": " + std::strerror(errno);
  }
  std::fclose(out);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return "cannot replace the state file \"" + path + "\": " + std::strerror(errno);
  }
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) return "cannot open the state file \"" + path + "\": " + std::strerror(errno);
  writer_ = std::thread([this] { Run(); });
  return "";
}

void StateFile::Put(const std::string& client_id, const std::string& der) {
  std::string line = "P " + HexEncode(client_id) + " " + HexEncode(der) + "\n";
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!file_) return;
    queue_.push_back(std::move(line));
  }
  cv_.notify_one();
}

void StateFile::Remove(const std::string& client_id) {
  std::string line = "D " + HexEncode(client_id) + "\n";
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!file_) return;
    queue_.push_back(std::move(line));
  }
  cv_.notify_one();
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
