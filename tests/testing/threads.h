// threads.h: counting a process's threads by name, for tests that assert
// which of certacl's workers exist. Names come from /proc/<pid>/task/*/comm
// (certacl names its revocation workers "certacl-crl" and "certacl-ocsp").
// Counting by name rather than in total keeps the count exact under a
// sanitizer, whose runtime may add a thread of its own.
#ifndef CERTACL_TESTS_TESTING_THREADS_H_
#define CERTACL_TESTS_TESTING_THREADS_H_

#include <sys/types.h>

#include <cstddef>

namespace certacl::testing {

// The threads of process `pid` (0: this process) named "certacl-crl" or
// "certacl-ocsp"; 0 if the process is gone.
size_t RevocationWorkers(pid_t pid = 0);

}  // namespace certacl::testing

#endif  // CERTACL_TESTS_TESTING_THREADS_H_
