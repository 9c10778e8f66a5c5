// state_file.h: the certificates of clients with persistent sessions, kept
// on disk (plugin_opt_state_file) so that after a broker restart certacl can
// still decide deliveries (READ checks) for offline sessions that Mosquitto
// restored from its own persistence. Without it, messages queued for an
// offline device after a restart would be denied and lost.
//
// Format: one line per change, "P <hex client id> <hex DER>" or
// "D <hex client id>"; replayed and compacted when opened. Open() runs at
// plugin start-up (before the broker serves anyone). Put()/Remove() only
// enqueue: a background thread does the file I/O, so the broker thread
// never waits on the disk. Destruction flushes what is queued.
#ifndef CERTACL_PLUGIN_STATE_FILE_H_
#define CERTACL_PLUGIN_STATE_FILE_H_

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

namespace certacl::plugin {

class StateFile {
 public:
  StateFile() = default;
  ~StateFile();
  StateFile(const StateFile&) = delete;
  StateFile& operator=(const StateFile&) = delete;

  // Reads and compacts `path` (created if missing) and starts the writer.
  // Fills *entries with client id -> certificate DER. Returns "" or an error.
  std::string Open(const std::string& path, std::unordered_map<std::string, std::string>* entries);

  void Put(const std::string& client_id, const std::string& der);
  void Remove(const std::string& client_id);

  // Blocks until everything queued is written (tests, shutdown).
  void Flush();

 private:
  void Run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<std::string> queue_;  // complete lines
  bool stop_ = false;
  bool writing_ = false;
  FILE* file_ = nullptr;
  std::string path_;
  std::thread writer_;
};

std::string HexEncode(const std::string& bytes);
bool HexDecode(const std::string& hex, std::string* out);

}  // namespace certacl::plugin

#endif  // CERTACL_PLUGIN_STATE_FILE_H_
