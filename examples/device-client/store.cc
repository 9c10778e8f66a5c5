// store.cc: see store.h.
#include "store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace device_renew {
namespace {

// A file descriptor closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Closes now, reporting the error close() may give (NFS, quota).
  bool Close() {
    const int fd = fd_;
    fd_ = -1;
    return ::close(fd) == 0;
  }

 private:
  int fd_;
};

std::string Errno(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

bool SyncDirectoryOf(const std::string& path, std::string& error) {
  const std::string dir = DirectoryOf(path);
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0 || ::fsync(fd.get()) != 0) {
    error = Errno("fsync directory", dir);
    return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> ReadFile(const std::string& path, std::string& error) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    error = Errno("cannot open", path);
    return std::nullopt;
  }
  std::string data;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      error = Errno("cannot read", path);
      return std::nullopt;
    }
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > (1U << 20)) {  // certificates and keys are small
      error = "file too large: " + path;
      return std::nullopt;
    }
  }
  return data;
}

bool FileExists(const std::string& path) {
  struct stat st = {};
  return ::lstat(path.c_str(), &st) == 0;
}

bool WriteFileDurably(const std::string& path, const std::string& data, mode_t mode, std::string& error) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    error = Errno("cannot replace", path);
    return false;
  }
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (fd.get() < 0) {
    error = Errno("cannot create", path);
    return false;
  }
  if (::fchmod(fd.get(), mode) != 0) {  // the umask may have taken bits away
    error = Errno("cannot chmod", path);
    return false;
  }
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = Errno("cannot write", path);
      return false;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) {
    error = Errno("cannot fsync", path);
    return false;
  }
  if (!fd.Close()) {
    error = Errno("cannot close", path);
    return false;
  }
  return SyncDirectoryOf(path, error);
}

bool RenameDurably(const std::string& from, const std::string& to, std::string& error) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    error = Errno("cannot rename " + from + " to", to);
    return false;
  }
  return SyncDirectoryOf(to, error);
}

bool RemoveDurably(const std::string& path, std::string& error) {
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return true;
    error = Errno("cannot remove", path);
    return false;
  }
  return SyncDirectoryOf(path, error);
}

}  // namespace device_renew
