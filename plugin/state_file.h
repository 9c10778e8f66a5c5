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
// broker serves anyone). Put()/Remove()/PutSignature() only enqueue, and
// the broker thread never waits on the disk:
//   - with a writer program (SetWriter, certacl-state-writer next to the
//     plugin), a child process started by Open() does the file I/O; lines go
//     to it over a non-blocking socket (what it cannot take yet is kept and
//     sent by the next call or Poll()). The broker stays single-threaded.
//     Lines are kept until the child says they are on disk: if it dies, a
//     new one gets them again (a line may then be in the file twice, which
//     replays to the same state), and Poll() says what happened;
//   - without one (or if it cannot be started), a background thread started
//     with the first line to write.
// Destruction flushes what is queued. Every method except the writer
// thread's is called from one thread (the broker's).
//
// Trust: an "S" line vouches that a certificate was verified as signed by
// a CA key, so the file must be writable by the broker's user alone. It is
// created (and rewritten at each compaction) with mode 0600; "S" lines of a
// file that is writable by group or others, or owned by another user than
// the broker's (or root), are ignored with a warning and dropped.
#ifndef CERTACL_PLUGIN_STATE_FILE_H_
#define CERTACL_PLUGIN_STATE_FILE_H_

#include <sys/types.h>

#include <chrono>
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

  // Before Open(): the path of certacl-state-writer, the writer program.
  // Empty (the default): a thread writes. A child that dies after running
  // `min_run` or more is replaced by a new one; one that dies sooner (disk
  // full, file gone) is not restarted again and again: a thread takes over.
  void SetWriter(std::string program, std::chrono::seconds min_run = std::chrono::seconds(10)) {
    writer_program_ = std::move(program);
    writer_min_run_ = min_run;
  }

  // Reads and compacts `path` (created if missing) and starts the writer
  // program, if one was set. Fills *entries with client id -> certificate
  // DER. With `signatures`,
  // fills it with the distinct signature keys in the order they were
  // written, at most the last `max_signatures` of them; without it, "S"
  // lines are dropped. *warning (if given) says why "S" lines were ignored
  // or why the writer program could not be started (a thread writes then),
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

  // Blocks until everything queued is written (tests, shutdown). With a
  // writer program, it ends the child (the next line starts another).
  void Flush();

  // Whether Poll() has something to do: lines the writer program could not
  // take yet, or a warning. Inline: the broker asks on every event.
  bool NeedsPoll() const { return pending_sent_ < pending_.size() || !writer_warning_.empty(); }
  // Sends what the writer program could not take yet. Returns a warning to
  // log (the child exited, or could not be restarted and a thread writes
  // now), or "".
  std::string Poll();

  // The writer program's process id, or -1 (tests).
  pid_t writer_pid() const { return writer_pid_; }

 private:
  void Enqueue(std::string line);
  void Run();
  void EnsureWriter();  // with mu_ held
  // The writer program: start it, send to it, reap it.
  std::string StartWriter();
  std::string StopWriter();  // closes the socket and waits for the child
  void Send();
  void ReadAcks();
  // After the child died (`why`, having run `ran`): everything it did not
  // acknowledge goes to the next one, or to the thread.
  void WriterDied(std::string why, std::chrono::steady_clock::duration ran);
  void FallBack(const std::string& why);
  void FinishWriter();  // sends everything, then StopWriter()
  void AddWarning(const std::string& w);
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<std::string> queue_;  // complete lines
  bool stop_ = false;
  bool writing_ = false;
  FILE* file_ = nullptr;
  size_t signature_lines_left_ = 0;  // broker thread only
  std::string path_;
  std::thread writer_;  // started by EnsureWriter(), on the broker thread
  // Writer program (broker thread only).
  std::string writer_program_;
  bool use_program_ = false;  // Open() started it once: restart it when needed
  pid_t writer_pid_ = -1;
  std::chrono::steady_clock::time_point writer_started_;
  std::chrono::seconds writer_min_run_{10};
  int writer_socket_ = -1;
  std::string pending_;      // lines the child has not acknowledged (whole lines)
  size_t pending_sent_ = 0;  // how much of pending_ it has been sent
  uint64_t acked_ = 0;       // its last acknowledgement (bytes since it started)
  char ack_buf_[8];          // an acknowledgement being read
  size_t ack_have_ = 0;
  std::string writer_warning_;
};

std::string HexEncode(const std::string& bytes);
bool HexDecode(const std::string& hex, std::string* out);

}  // namespace certacl::plugin

#endif  // CERTACL_PLUGIN_STATE_FILE_H_
