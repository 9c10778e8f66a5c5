// run_aside.h: runs a one-off bulk job (parsing a large policy or CRL) on a
// short-lived thread and waits for it, so the caller blocks exactly as long
// as if it had run the job itself.
//
// The point is where the memory lands: glibc gives the thread its own malloc
// arena, so the job's millions of short-lived allocations do not leave the
// broker thread's arena, which serves every TLS handshake, full of scattered
// free chunks (measured: a 100,000-role policy parsed on the broker thread
// made every later connect cost ~650 us more broker CPU; bench/RESULTS.md).
// The arenas are trimmed afterwards. Without a thread to be had, the job
// runs in place.
//
// Not for small jobs: the first thread a process creates switches glibc's
// malloc to its locked multi-thread path for good.
#ifndef CERTACL_PLUGIN_RUN_ASIDE_H_
#define CERTACL_PLUGIN_RUN_ASIDE_H_

#include <malloc.h>

#include <system_error>
#include <thread>

namespace certacl::plugin {

template <typename Job>
void RunAside(Job&& job) {
  auto run = [&] {
    job();
    ::malloc_trim(0);  // the job's garbage goes back to the system
  };
  try {
    std::thread worker(run);
    worker.join();
  } catch (const std::system_error&) {
    run();
  }
}

}  // namespace certacl::plugin

#endif  // CERTACL_PLUGIN_RUN_ASIDE_H_
