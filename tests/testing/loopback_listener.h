// loopback_listener.h: a listening TCP socket on 127.0.0.1 (a free port) for
// tests. The kernel completes TCP handshakes by itself, so a listener nobody
// accept()s from is a peer that connects and never answers; a test that
// wants to serve accepts on fd(). Closed when destroyed. Not copyable.
#ifndef CERTACL_TESTS_TESTING_LOOPBACK_LISTENER_H_
#define CERTACL_TESTS_TESTING_LOOPBACK_LISTENER_H_

#include <cstdint>
#include <string>

namespace certacl::testing {

class LoopbackListener {
 public:
  LoopbackListener();  // aborts the test process if it cannot listen
  ~LoopbackListener();
  LoopbackListener(const LoopbackListener&) = delete;
  LoopbackListener& operator=(const LoopbackListener&) = delete;

  int fd() const { return fd_; }
  uint16_t port() const { return port_; }
  std::string Peer() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_;
  uint16_t port_ = 0;
};

}  // namespace certacl::testing

#endif  // CERTACL_TESTS_TESTING_LOOPBACK_LISTENER_H_
