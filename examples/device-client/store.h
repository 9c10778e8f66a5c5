// store.h: durable file writes for certificates and keys. A device must not
// lose its working pair to a power cut in the middle of a renewal: every file
// is written beside its final name, fsync'd, then renamed over it, and the
// directory fsync'd.
#ifndef CERTACL_EXAMPLES_DEVICE_CLIENT_STORE_H_
#define CERTACL_EXAMPLES_DEVICE_CLIENT_STORE_H_

#include <sys/types.h>

#include <optional>
#include <string>

namespace device_renew {

// The whole file; nullopt (and `error`) if it cannot be read.
std::optional<std::string> ReadFile(const std::string& path, std::string& error);
bool FileExists(const std::string& path);

// Writes `data` to `path` with exactly `mode` and fsyncs it. Whatever was at
// `path` is unlinked first and never followed (a symlink planted there
// cannot redirect a private key).
bool WriteFileDurably(const std::string& path, const std::string& data, mode_t mode, std::string& error);

// rename(from, to), then fsync of the directory holding `to`.
bool RenameDurably(const std::string& from, const std::string& to, std::string& error);

// Unlinks `path` if it exists (and fsyncs its directory); false on any other error.
bool RemoveDurably(const std::string& path, std::string& error);

}  // namespace device_renew

#endif  // CERTACL_EXAMPLES_DEVICE_CLIENT_STORE_H_
