// temp_dir.cc: scratch directories and whole-file I/O for tests.
#include "tests/testing/temp_dir.h"

#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace certacl::testing {
namespace {

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "test harness: %s\n", what.c_str());
  std::abort();
}

}  // namespace

void WriteFile(const std::string& path, std::string_view text) {
  std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  if (!out) Die("cannot write " + path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/certacl-test-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) Die("mkdtemp " + tmpl);
  path_ = tmpl;
  const char* keep = std::getenv("CERTACL_KEEP_TMP");
  keep_ = keep != nullptr && *keep != '\0' && std::string_view(keep) != "0";
}

TempDir::~TempDir() {
  if (keep_) {
    std::fprintf(stderr, "test harness: kept %s\n", path_.c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::Write(std::string_view name, std::string_view text) const {
  std::string p = File(name);
  WriteFile(p, text);
  return p;
}

}  // namespace certacl::testing
