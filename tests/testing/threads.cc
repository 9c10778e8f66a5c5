#include "tests/testing/threads.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace certacl::testing {

size_t RevocationWorkers(pid_t pid) {
  const std::string dir = pid == 0 ? "/proc/self/task" : "/proc/" + std::to_string(pid) + "/task";
  size_t n = 0;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator(dir, ec)) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    if (std::getline(comm, name) && (name == "certacl-crl" || name == "certacl-ocsp")) ++n;
  }
  return n;
}

}  // namespace certacl::testing
