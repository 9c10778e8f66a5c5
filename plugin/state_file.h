// state_file.h: the certificates of clients with persistent sessions, kept
// on disk (plugin_opt_state_file) so that after a broker restart certacl can
// still decide deliveries (READ checks) for offline sessions that Mosquitto
// restored from its own persistence. Without it, messages queued for an
// offline device after a restart would be denied and lost.
//
// It also keeps the `ca` signature checks already done (SignatureCache keys),
// so that after a restart a known fleet reconnecting at once costs a lookup
// per device instead of a signature verification.
//
// Format: one line per change, "P <hex client id> <hex DER>",
// "D <hex client id>" or "S <hex SignatureCache key>"; replayed and
// compacted when opened (unknown line types are skipped, so an older
// certacl reads a newer file). Open() runs at plugin start-up (before the
// broker serves anyone). Put()/Remove()/PutSignature() only enqueue: a
// background thread, started with the first line to write, does the file
// I/O, so the broker thread never waits on the disk. Destruction flushes
// what is queued. Put()/Remove()/PutSignature() and destruction are called
// from one thread (the broker's).
//
// Trust: an "S" line vouches that a certificate was verified as signed by
// a CA key, so the file must be writable by the broker's user alone. It is
// created (and rewritten at each compaction) with mode 0600; "S" lines of a
// file that is writable by group or others, or owned by another user than
// the broker's (or root), are ignored with a warning and dropped.
#ifndef CERTACL_PLUGIN_STATE_FILE_H_
#define CERTACL_PLUGIN_STATE_FILE_H_

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "policy/signature_cache.h"

namespace certacl::plugin {

class StateFile {
 public:
  StateFile() = default;
  ~StateFile();
  StateFile(const StateFile&) = delete;
  StateFile& operator=(const StateFile&) = delete;

  // Reads and compacts `path` (created if missing) and starts the writer.
  // Fills *entries with client id -> certificate DER. With `signatures`,
  // fills it with the distinct signature keys in the order they were
  // written, at most the last `max_signatures` of them; without it, "S"
  // lines are dropped. *warning (if given) says why "S" lines were ignored,
  // or is left empty. Until the next Open(), at most 2 × `max_signatures`
  // more "S" lines are written (PutSignature drops the rest): a fleet larger
  // than the signature cache, which verifies devices again and again, must
  // not grow the file without end. Returns "" or an error.
  std::string Open(const std::string& path, std::unordered_map<std::string, std::string>* entries,
                   std::vector<SignatureCache::Key>* signatures = nullptr, size_t max_signatures = 0,
                   std::string* warning = nullptr);

  void Put(const std::string& client_id, const std::string& der);
  void Remove(const std::string& client_id);
  void PutSignature(const SignatureCache::Key& key);

  // Blocks until everything queued is written (tests, shutdown).
  void Flush();

 private:
  void Run();
  void EnsureWriter();  // with mu_ held
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<std::string> queue_;  // complete lines
  bool stop_ = false;
  bool writing_ = false;
  FILE* file_ = nullptr;
  size_t signature_lines_left_ = 0;  // guarded by mu_
  std::string path_;
  std::thread writer_;  // started by EnsureWriter(), on the broker thread
};

std::string HexEncode(const std::string& bytes);
bool HexDecode(const std::string& hex, std::string* out);

}  // namespace certacl::plugin

#endif  // CERTACL_PLUGIN_STATE_FILE_H_
