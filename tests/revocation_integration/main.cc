// main() of revocation_integration_tests: before anything else (before
// GoogleTest or a test creates a thread: a network namespace belongs to the
// thread that unshares it and to what it creates afterwards), the process
// moves into a network namespace of its own with only `lo`, up. Every test
// process started by ctest (gtest_discover_tests: one process per test) gets
// its own: `openssl ocsp`, which binds every interface, is then reachable
// from nowhere else, and tests never collide on ports.
//
// CERTACL_NO_NETNS=1 keeps the host's namespace (tests that need the OCSP
// responder then skip). Without root, unshare fails: one line on stderr,
// and those tests skip with kNeedsPrivateNetns.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/integration/peers.h"

int main(int argc, char** argv) {
  bool listing = false;  // gtest_discover_tests only lists: no namespace needed
  for (int i = 1; i < argc; ++i) listing |= std::strcmp(argv[i], "--gtest_list_tests") == 0;
  const char* no_netns = std::getenv("CERTACL_NO_NETNS");
  if (!listing && (no_netns == nullptr || *no_netns == '\0')) {
    std::string error;
    if (!certacl::integration::EnterPrivateNetns(&error)) {
      std::fprintf(stderr,
                   "revocation_integration_tests: no private network namespace (%s); tests that need one skip: %s\n",
                   error.c_str(), certacl::integration::kNeedsPrivateNetns);
    }
  } else if (!listing) {
    std::fprintf(stderr, "revocation_integration_tests: CERTACL_NO_NETNS is set: host network namespace; tests that "
                         "need a private one skip\n");
  }
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
