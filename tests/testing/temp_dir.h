// temp_dir.h: scratch directories and whole-file I/O for tests (unit,
// integration, benchmarks). A test bug here (cannot create or write) aborts
// the process with a message: it is not a condition under test.
#ifndef CERTACL_TESTS_TESTING_TEMP_DIR_H_
#define CERTACL_TESTS_TESTING_TEMP_DIR_H_

#include <string>
#include <string_view>

namespace certacl::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it
// at destruction unless Keep() was called or CERTACL_KEEP_TMP is set.
// The name starts with certacl-test-.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(std::string_view name) const { return path_ + "/" + std::string(name); }
  // Writes `text` to path()/name (creating parent directories) and returns the path.
  std::string Write(std::string_view name, std::string_view text) const;
  void Keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

// Writes a whole file (creating parent directories); aborts the test
// process on failure (a harness bug, not a condition under test).
void WriteFile(const std::string& path, std::string_view text);
std::string ReadFile(const std::string& path);  // "" if missing

}  // namespace certacl::testing

#endif  // CERTACL_TESTS_TESTING_TEMP_DIR_H_
