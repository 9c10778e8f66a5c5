// http_client.cc: see http_client.h. Non-blocking sockets and poll() against
// one steady-clock deadline; every wait is sliced into <= 100 ms so the
// cancel flag is honoured promptly. TLS runs OpenSSL over the same socket
// through a small BIO (SocketBio below), so the same waits apply.
#include "plugin/revocation/http_client.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <utility>

#include "policy/openssl_ptr.h"

namespace certacl::revocation {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxHeaderBytes = 64 * 1024;  // status line + headers (+ 1xx), and trailers
constexpr size_t kMaxChunkLine = 1024;         // "1a2b;ext=..."
constexpr size_t kMaxUrlLength = 8192;
constexpr size_t kReadChunk = 64 * 1024;
constexpr int kPollSliceMs = 100;
constexpr int kMaxInterimResponses = 16;  // 1xx before the final status

// An owned file descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

struct AddrInfoFree {
  void operator()(addrinfo* p) const { freeaddrinfo(p); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoFree>;

// strerror_r comes in a GNU (char*) and an XSI (int) flavour.
[[maybe_unused]] const char* StrerrorResult(const char* r, const char*) { return r; }
[[maybe_unused]] const char* StrerrorResult(int, const char* buf) { return buf; }
std::string ErrnoText(int err) {
  char buf[128] = {};
  return StrerrorResult(strerror_r(err, buf, sizeof buf), buf);
}

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
std::string LowerString(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsBlank(char c) { return c == ' ' || c == '\t'; }

// RFC 9110 tchar.
bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || IsDigit(c)) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}
bool IsToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsTokenChar);
}
// field-value / reason-phrase bytes: HTAB, visible ASCII, SP, obs-text.
bool IsFieldValue(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u == '\t' || (u >= 0x20 && u != 0x7f);
  });
}

std::string_view TrimBlanks(std::string_view s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsBlank(s.back())) s.remove_suffix(1);
  return s;
}

// For error messages: at most 120 bytes, anything unprintable as \xNN.
std::string Quote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  const size_t n = std::min<size_t>(s.size(), 120);
  for (size_t i = 0; i < n; ++i) {
    const auto u = static_cast<unsigned char>(s[i]);
    if (u >= 0x20 && u < 0x7f && u != '"' && u != '\\') {
      out += static_cast<char>(u);
    } else {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  if (s.size() > n) out += "...";
  out += '"';
  return out;
}

std::string Endpoint(const sockaddr* sa, socklen_t len) {
  char host[NI_MAXHOST] = {};
  char serv[NI_MAXSERV] = {};
  if (getnameinfo(sa, len, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "?";
  }
  if (sa->sa_family == AF_INET6) return std::string("[") + host + "]:" + serv;
  return std::string(host) + ":" + serv;
}

bool IsHostNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || IsDigit(c) || c == '-' || c == '.' || c == '_';
}

bool IsIpLiteral(const std::string& host) {
  in6_addr v6{};
  in_addr v4{};
  return inet_pton(AF_INET, host.c_str(), &v4) == 1 || inet_pton(AF_INET6, host.c_str(), &v6) == 1;
}

using SslPtr = OpenSslPtr<SSL, SSL_free>;
using BioMethodPtr = OpenSslPtr<BIO_METHOD, BIO_meth_free>;

// Completes "timed out after N ms ..." during the handshake, and tells
// TlsFailure() to word its message as a handshake failure.
constexpr char kTlsHandshakeDoing[] = "in the TLS handshake with";

// The text of an OpenSSL error code, e.g. "certificate verify failed".
std::string OpenSslReason(unsigned long code) {
  const char* reason = ERR_reason_error_string(code);
  if (reason != nullptr) return reason;
  char buf[256] = {};
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}
// The newest queued OpenSSL error, or `fallback` when there is none.
std::string LastOpenSslError(const char* fallback = "unknown error") {
  const unsigned long code = ERR_peek_last_error();
  return code == 0 ? fallback : OpenSslReason(code);
}

// A BIO over a non-blocking socket, like OpenSSL's socket BIO except that it
// writes with send(MSG_NOSIGNAL): a peer that has gone away is an EPIPE
// error, never a SIGPIPE (OpenSSL's own BIO uses write()).
struct SocketBio {
  int fd = -1;
  bool eof = false;    // recv() returned 0
  int last_errno = 0;  // of the last failed send/recv
};

SocketBio* StateOf(BIO* bio) { return static_cast<SocketBio*>(BIO_get_data(bio)); }

bool WouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

int SocketBioWrite(BIO* bio, const char* data, int size) {
  SocketBio* state = StateOf(bio);
  BIO_clear_retry_flags(bio);
  const ssize_t n = ::send(state->fd, data, static_cast<size_t>(size), MSG_NOSIGNAL);
  if (n < 0) {
    state->last_errno = errno;
    if (WouldBlock(state->last_errno)) BIO_set_retry_write(bio);
  }
  return static_cast<int>(n);
}

int SocketBioRead(BIO* bio, char* out, int size) {
  SocketBio* state = StateOf(bio);
  BIO_clear_retry_flags(bio);
  const ssize_t n = ::recv(state->fd, out, static_cast<size_t>(size), 0);
  if (n == 0) state->eof = true;
  if (n < 0) {
    state->last_errno = errno;
    if (WouldBlock(state->last_errno)) BIO_set_retry_read(bio);
  }
  return static_cast<int>(n);
}

long SocketBioCtrl(BIO* bio, int cmd, long /*num*/, void* /*ptr*/) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_EOF:
      return StateOf(bio)->eof ? 1 : 0;
    default:
      return 0;
  }
}

const BIO_METHOD* SocketBioMethod() {
  static const BioMethodPtr method = [] {
    BioMethodPtr m(BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "certacl socket"));
    if (m) {
      BIO_meth_set_write(m.get(), SocketBioWrite);
      BIO_meth_set_read(m.get(), SocketBioRead);
      BIO_meth_set_ctrl(m.get(), SocketBioCtrl);
    }
    return m;
  }();
  return method.get();
}

// OpenSSL 3.0 caches a certificate's decoded extensions (key identifiers,
// key usage) inside the X509 object the first time a handshake looks at
// them, and threads sharing a TlsClientContext share its anchors and client
// certificate: ThreadSanitizer saw two concurrent EST requests race on an
// anchor's cached key identifier, one filling it while the other compared
// it. Filling every cache here, before any thread shares the context,
// leaves the handshakes only reading them.
void PrimeExtensionCaches(SSL_CTX* ctx) {
  if (X509_STORE* store = SSL_CTX_get_cert_store(ctx)) {
    X509_STORE_lock(store);
    STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(store);
    for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i) {
      if (X509* x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, i))) (void)X509_check_purpose(x, -1, 0);
    }
    X509_STORE_unlock(store);
  }
  if (X509* leaf = SSL_CTX_get0_certificate(ctx)) (void)X509_check_purpose(leaf, -1, 0);
  STACK_OF(X509)* chain = nullptr;
  if (SSL_CTX_get0_chain_certs(ctx, &chain) == 1 && chain != nullptr) {
    for (int i = 0; i < sk_X509_num(chain); ++i) (void)X509_check_purpose(sk_X509_value(chain, i), -1, 0);
  }
}

// SSL_CTX verify callback with accept_cmc_ra: forgives a name mismatch of a
// leaf carrying id-kp-cmcRA (RFC 7030 3.6.1); every other check stands.
int VerifyAcceptingCmcRa(int ok, X509_STORE_CTX* store) {
  if (ok != 0) return 1;
  const int err = X509_STORE_CTX_get_error(store);
  if ((err == X509_V_ERR_HOSTNAME_MISMATCH || err == X509_V_ERR_IP_ADDRESS_MISMATCH) &&
      X509_STORE_CTX_get_error_depth(store) == 0 && HasCmcRaEku(X509_STORE_CTX_get_current_cert(store))) {
    X509_STORE_CTX_set_error(store, X509_V_OK);
    return 1;
  }
  return 0;
}

// One request/response exchange on one connection.
class Exchange {
 public:
  Exchange(const HttpRequest& request, std::string* error)
      : request_(request),
        error_(error),
        deadline_(Clock::now() + std::chrono::milliseconds(request.timeout_ms)) {}

  bool Connect(const addrinfo* list);
  // The TLS handshake on the connected socket; `host` is the URL's host.
  bool StartTls(const TlsClientContext& tls, const std::string& host);
  // After a complete response: says goodbye (close_notify) without waiting.
  void CloseTls();
  bool SendAll(std::string_view data);
  bool ReadResponse(HttpResponse* response);

 private:
  // Fails as soon as the first bytes cannot start "HTTP/1.", so a peer
  // speaking something else (TLS, SSH, ...) is not waited on for a line.
  bool CheckStatusPrefix();
  bool Fail(std::string why) {
    *error_ = std::move(why);
    return false;
  }
  bool Cancelled() const {
    return request_.cancel != nullptr && request_.cancel->load(std::memory_order_relaxed);
  }
  // Checks cancel and the deadline; `doing` completes "timed out after N ms <doing> <peer>".
  bool CheckTime(const char* doing);
  // Waits for `events` on the socket (any event, errors included, counts).
  bool Wait(short events, const char* doing);
  // Appends what the peer sent next to in_ (or sets eof_). False on error.
  bool Fill();
  bool FillTls();
  bool SendTls(std::string_view data);
  // Waits as SSL_get_error() asks after a call that returned `rc`; false
  // (with *error set) if the call failed for good. `doing` as for Wait().
  bool WaitForTls(int rc, const char* doing);
  // The one-line reason after a TLS call failed for good.
  std::string TlsFailure(int ssl_error, std::string_view doing);
  // The next line (without LF and an optional CR before it), consuming at
  // most *budget bytes (decremented). The view is valid until the next Fill.
  bool ReadLine(std::string_view* line, size_t* budget, const std::string& too_long,
                const std::string& eof);
  bool ReadHeaders(std::vector<std::pair<std::string, std::string>>* headers, size_t* budget);
  bool ReadBody(int status, const std::vector<std::pair<std::string, std::string>>& headers,
                std::string* body);
  bool ReadExact(size_t n, std::string* body, size_t expected_total);
  bool ReadChunked(std::string* body);
  bool ReadUntilClose(std::string* body);
  bool BodyTooBig(size_t size) const { return size > request_.max_body; }
  bool FailBodyTooBig() {
    return Fail("response body exceeds " + std::to_string(request_.max_body) + " bytes (from " + peer_ + ")");
  }
  size_t Available() const { return in_.size() - pos_; }

  const HttpRequest& request_;
  std::string* error_;
  const Clock::time_point deadline_;
  Fd fd_;
  SocketBio bio_state_;  // the socket as the TLS BIO sees it
  SslPtr ssl_;           // null for plain http; freed before fd_ is closed
  std::string host_;     // the URL's host, for TLS errors
  bool unclean_eof_ = false;  // TLS: the peer closed without close_notify
  std::string peer_;                     // "1.2.3.4:80" / "[::1]:80"
  std::unique_ptr<char[]> read_buffer_;  // kReadChunk bytes, allocated on first read
  std::string in_;                       // received, not yet consumed from pos_
  size_t pos_ = 0;
  bool eof_ = false;
};

bool Exchange::CheckTime(const char* doing) {
  if (Cancelled()) return Fail(std::string("cancelled while ") + doing + " " + peer_);
  if (Clock::now() >= deadline_) {
    return Fail("timed out after " + std::to_string(request_.timeout_ms) + " ms " + doing + " " + peer_);
  }
  return true;
}

bool Exchange::Wait(short events, const char* doing) {
  for (;;) {
    if (!CheckTime(doing)) return false;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
    const int slice = static_cast<int>(std::clamp<decltype(left)>(left, 1, kPollSliceMs));
    pollfd p{fd_.get(), events, 0};
    const int r = ::poll(&p, 1, slice);
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return Fail("poll failed: " + ErrnoText(errno));
  }
}

bool Exchange::Connect(const addrinfo* list) {
  std::string last_error = "no address to connect to";
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    peer_ = Endpoint(ai->ai_addr, ai->ai_addrlen);
    Fd s(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (s.get() < 0) {
      last_error = "cannot create a socket for " + peer_ + ": " + ErrnoText(errno);
      continue;
    }
    fd_ = std::move(s);
    int err = 0;
    if (::connect(fd_.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS || err == EINTR) {
        if (!Wait(POLLOUT, "connecting to")) return false;  // deadline or cancel: give up
        socklen_t len = sizeof err;
        if (::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      }
    }
    if (err == 0) return true;
    fd_.Reset();
    if (err == ECONNREFUSED) {
      last_error = "connection refused by " + peer_;
    } else if (err == ENETUNREACH || err == EHOSTUNREACH) {
      last_error = "no route to " + peer_ + ": " + ErrnoText(err);
    } else {
      last_error = "cannot connect to " + peer_ + ": " + ErrnoText(err);
    }
  }
  return Fail(last_error);
}

bool Exchange::SendAll(std::string_view data) {
  if (ssl_) return SendTls(data);
  size_t off = 0;
  while (off < data.size()) {
    if (!CheckTime("sending the request to")) return false;
    const ssize_t n = ::send(fd_.get(), data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!Wait(POLLOUT, "sending the request to")) return false;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return Fail("cannot send the request to " + peer_ + ": " + ErrnoText(errno));
    }
  }
  return true;
}

bool Exchange::Fill() {
  static constexpr const char* kDoing = "waiting for the response from";
  if (pos_ == in_.size()) {
    in_.clear();
    pos_ = 0;
  } else if (pos_ >= kReadChunk && pos_ * 2 >= in_.size()) {
    in_.erase(0, pos_);
    pos_ = 0;
  }
  if (!read_buffer_) read_buffer_ = std::make_unique_for_overwrite<char[]>(kReadChunk);
  if (ssl_) return FillTls();
  for (;;) {
    // Checked on every read, so a peer that trickles data cannot outlive the deadline.
    if (!CheckTime(kDoing)) return false;
    const ssize_t n = ::recv(fd_.get(), read_buffer_.get(), kReadChunk, 0);
    const int err = errno;
    if (n > 0) {
      in_.append(read_buffer_.get(), static_cast<size_t>(n));
      return true;
    }
    if (n == 0) {
      eof_ = true;
      return true;
    }
    if (err == EAGAIN || err == EWOULDBLOCK) {
      if (!Wait(POLLIN, kDoing)) return false;
    } else if (err != EINTR) {
      if (err == ECONNRESET) return Fail("connection reset by " + peer_);
      return Fail("cannot read the response from " + peer_ + ": " + ErrnoText(err));
    }
  }
}

bool Exchange::StartTls(const TlsClientContext& tls, const std::string& host) {
  host_ = host;
  ERR_clear_error();
  ssl_.reset(SSL_new(tls.ctx()));
  BioPtr bio(BIO_new(SocketBioMethod()));
  if (!ssl_ || !bio) return Fail("cannot set up TLS for " + peer_ + ": " + LastOpenSslError());
  bio_state_.fd = fd_.get();
  BIO_set_data(bio.get(), &bio_state_);
  BIO_set_init(bio.get(), 1);
  BIO* raw = bio.release();
  SSL_set_bio(ssl_.get(), raw, raw);  // one reference, owned by ssl_
  bool named = true;
  if (IsIpLiteral(host)) {
    named = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_.get()), host.c_str()) == 1;
  } else {
    SSL_set_hostflags(ssl_.get(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    // SSL_set_tlsext_host_name() without its macro's C cast.
    std::string sni = host;
    named = SSL_ctrl(ssl_.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, sni.data()) == 1 &&
            SSL_set1_host(ssl_.get(), host.c_str()) == 1;
  }
  if (!named) return Fail("cannot set the expected TLS server name " + Quote(host) + ": " + LastOpenSslError());
  for (;;) {
    if (!CheckTime(kTlsHandshakeDoing)) return false;
    ERR_clear_error();
    const int rc = SSL_connect(ssl_.get());
    if (rc == 1) return true;
    if (!WaitForTls(rc, kTlsHandshakeDoing)) return false;
  }
}

void Exchange::CloseTls() {
  if (!ssl_) return;
  ERR_clear_error();
  SSL_shutdown(ssl_.get());  // one non-blocking try at a close_notify; the answer is in already
  ERR_clear_error();
}

bool Exchange::WaitForTls(int rc, const char* doing) {
  const int e = SSL_get_error(ssl_.get(), rc);
  if (e == SSL_ERROR_WANT_READ) return Wait(POLLIN, doing);
  if (e == SSL_ERROR_WANT_WRITE) return Wait(POLLOUT, doing);
  return Fail(TlsFailure(e, doing));
}

std::string Exchange::TlsFailure(int ssl_error, std::string_view doing) {
  const std::string prefix = doing == kTlsHandshakeDoing ? "TLS handshake with " + peer_ + " failed: "
                                                          : "TLS error while " + std::string(doing) + " " + peer_ + ": ";
  const unsigned long code = ERR_peek_last_error();
  if (ERR_GET_LIB(code) == ERR_LIB_SSL && ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    const long verify = SSL_get_verify_result(ssl_.get());
    if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
      return prefix + "server certificate does not match " + host_;
    }
    return prefix + "certificate verify failed (" + X509_verify_cert_error_string(verify) + ")";
  }
  const bool eof_error = ERR_GET_LIB(code) == ERR_LIB_SSL && ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
  if (code != 0 && !eof_error) return prefix + OpenSslReason(code);
  if (bio_state_.eof || eof_error) return prefix + "connection closed by the server";
  if (ssl_error == SSL_ERROR_SYSCALL && bio_state_.last_errno != 0) {
    if (bio_state_.last_errno == ECONNRESET) return prefix + "connection reset by the server";
    return prefix + ErrnoText(bio_state_.last_errno);
  }
  return prefix + "SSL error " + std::to_string(ssl_error);
}

bool Exchange::SendTls(std::string_view data) {
  static constexpr const char* kDoing = "sending the request to";
  size_t off = 0;
  while (off < data.size()) {
    if (!CheckTime(kDoing)) return false;
    size_t written = 0;
    ERR_clear_error();
    const int rc = SSL_write_ex(ssl_.get(), data.data() + off, data.size() - off, &written);
    if (rc == 1) {
      off += written;
    } else if (!WaitForTls(rc, kDoing)) {
      return false;
    }
  }
  return true;
}

bool Exchange::FillTls() {
  static constexpr const char* kDoing = "waiting for the response from";
  for (;;) {
    if (!CheckTime(kDoing)) return false;
    size_t got = 0;
    ERR_clear_error();
    const int rc = SSL_read_ex(ssl_.get(), read_buffer_.get(), kReadChunk, &got);
    if (rc == 1) {
      in_.append(read_buffer_.get(), got);
      return true;
    }
    const int e = SSL_get_error(ssl_.get(), rc);
    if (e == SSL_ERROR_ZERO_RETURN || (bio_state_.eof && (e == SSL_ERROR_SSL || e == SSL_ERROR_SYSCALL))) {
      eof_ = true;  // close_notify, or a bare TCP close (framing decides whether that truncated anything)
      unclean_eof_ = e != SSL_ERROR_ZERO_RETURN;
      return true;
    }
    if (!WaitForTls(rc, kDoing)) return false;
  }
}

bool Exchange::ReadLine(std::string_view* line, size_t* budget, const std::string& too_long,
                        const std::string& eof) {
  size_t scanned = 0;  // bytes after pos_ known to hold no LF
  for (;;) {
    const size_t nl = in_.find('\n', pos_ + scanned);
    if (nl != std::string::npos) {
      const size_t used = nl + 1 - pos_;
      if (used > *budget) return Fail(too_long);
      *budget -= used;
      std::string_view l(in_.data() + pos_, nl - pos_);
      if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
      pos_ = nl + 1;
      *line = l;
      return true;
    }
    scanned = Available();
    if (scanned >= *budget) return Fail(too_long);
    if (eof_) return Fail(eof);
    if (!Fill()) return false;
  }
}

bool Exchange::CheckStatusPrefix() {
  static constexpr std::string_view kPrefix = "HTTP/1.";
  for (;;) {
    const size_t n = std::min(Available(), kPrefix.size());
    if (std::string_view(in_).substr(pos_, n) != kPrefix.substr(0, n)) {
      return Fail("malformed status line from " + peer_ + ": " + Quote(std::string_view(in_).substr(pos_)));
    }
    if (n == kPrefix.size() || eof_) return true;  // ReadLine reports the early close
    if (!Fill()) return false;
  }
}

bool ParseStatusLine(std::string_view line, int* status, std::string* reason) {
  // HTTP/1.x SP 3DIGIT [SP reason-phrase]
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || !IsDigit(line[7]) || line[8] != ' ') return false;
  if (!IsDigit(line[9]) || !IsDigit(line[10]) || !IsDigit(line[11])) return false;
  if (line.size() > 12 && (line[12] != ' ' || !IsFieldValue(line.substr(13)))) return false;
  *status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  *reason = line.size() > 13 ? std::string(TrimBlanks(line.substr(13))) : std::string();
  return *status >= 100;
}

bool Exchange::ReadHeaders(std::vector<std::pair<std::string, std::string>>* headers, size_t* budget) {
  const std::string too_long =
      "response headers from " + peer_ + " exceed " + std::to_string(kMaxHeaderBytes) + " bytes";
  const std::string eof = "connection closed by " + peer_ + " in the middle of the response headers";
  for (;;) {
    std::string_view line;
    if (!ReadLine(&line, budget, too_long, eof)) return false;
    if (line.empty()) return true;
    if (IsBlank(line.front())) return Fail("folded header line from " + peer_ + ": " + Quote(line));
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || !IsToken(line.substr(0, colon))) {
      return Fail("malformed header line from " + peer_ + ": " + Quote(line));
    }
    const std::string_view value = TrimBlanks(line.substr(colon + 1));
    if (!IsFieldValue(value)) return Fail("malformed header line from " + peer_ + ": " + Quote(line));
    headers->emplace_back(LowerString(line.substr(0, colon)), std::string(value));
  }
}

bool Exchange::ReadResponse(HttpResponse* response) {
  response->status = 0;
  response->reason.clear();
  response->body.clear();
  response->headers.clear();
  size_t budget = kMaxHeaderBytes;
  const std::string too_long =
      "response headers from " + peer_ + " exceed " + std::to_string(kMaxHeaderBytes) + " bytes";
  for (int interim = 0;; ++interim) {
    std::string_view line;
    const std::string eof = "connection closed by " + peer_ + " before the status line";
    if (!CheckStatusPrefix()) return false;
    if (!ReadLine(&line, &budget, too_long, eof)) return false;
    int status = 0;
    if (!ParseStatusLine(line, &status, &response->reason)) {
      return Fail("malformed status line from " + peer_ + ": " + Quote(line));
    }
    response->headers.clear();
    if (!ReadHeaders(&response->headers, &budget)) return false;
    if (status >= 200) {
      response->status = status;
      break;
    }
    if (status == 101) return Fail("unexpected 101 Switching Protocols from " + peer_);
    if (interim >= kMaxInterimResponses) return Fail("too many 1xx responses from " + peer_);
  }
  return ReadBody(response->status, response->headers, &response->body);
}

bool ParseContentLength(std::string_view v, size_t* out) {
  if (v.empty() || v.size() > 18 || !std::all_of(v.begin(), v.end(), IsDigit)) return false;
  uint64_t n = 0;
  for (char c : v) n = n * 10 + static_cast<uint64_t>(c - '0');
  *out = static_cast<size_t>(n);
  return true;
}

bool Exchange::ReadBody(int status, const std::vector<std::pair<std::string, std::string>>& headers,
                        std::string* body) {
  if (status == 204 || status == 304) return true;  // never a body (RFC 9110 6.4.1)
  std::string transfer_encoding;
  const std::string* content_length = nullptr;
  for (const auto& [name, value] : headers) {
    if (name == "transfer-encoding") {
      if (!transfer_encoding.empty()) transfer_encoding += ",";
      transfer_encoding += value;
    } else if (name == "content-length") {
      if (content_length != nullptr && *content_length != value) {
        return Fail("conflicting Content-Length headers from " + peer_);
      }
      content_length = &value;
    }
  }
  if (!transfer_encoding.empty()) {  // overrides Content-Length (RFC 9112 6.3)
    if (LowerString(TrimBlanks(transfer_encoding)) != "chunked") {
      return Fail("unsupported Transfer-Encoding from " + peer_ + ": " + Quote(transfer_encoding));
    }
    return ReadChunked(body);
  }
  if (content_length != nullptr) {
    size_t n = 0;
    if (!ParseContentLength(*content_length, &n)) {
      return Fail("malformed Content-Length from " + peer_ + ": " + Quote(*content_length));
    }
    if (BodyTooBig(n)) return FailBodyTooBig();
    body->reserve(n);
    return ReadExact(n, body, n);
  }
  return ReadUntilClose(body);
}

bool Exchange::ReadExact(size_t n, std::string* body, size_t expected_total) {
  while (n > 0) {
    if (Available() == 0) {
      if (eof_) {
        return Fail("connection closed by " + peer_ + " after " + std::to_string(body->size()) + " of " +
                    std::to_string(expected_total) + " body bytes");
      }
      if (!Fill()) return false;
      continue;
    }
    const size_t take = std::min(n, Available());
    body->append(in_, pos_, take);
    pos_ += take;
    n -= take;
  }
  return true;
}

bool Exchange::ReadChunked(std::string* body) {
  const std::string eof = "connection closed by " + peer_ + " in the middle of a chunked body";
  for (;;) {
    std::string_view line;
    size_t budget = kMaxChunkLine;
    if (!ReadLine(&line, &budget, "bad chunk size from " + peer_ + ": line too long", eof)) return false;
    // chunk-size [BWS ";" chunk-ext]
    size_t digits = 0;
    uint64_t size = 0;
    while (digits < line.size() && std::isxdigit(static_cast<unsigned char>(line[digits])) != 0) {
      const char c = Lower(line[digits]);
      size = size * 16 + static_cast<uint64_t>(IsDigit(c) ? c - '0' : c - 'a' + 10);
      if (++digits > 16) break;
    }
    std::string_view rest = TrimBlanks(line.substr(std::min(digits, line.size())));
    const bool ext_ok = rest.empty() || (rest.front() == ';' && IsFieldValue(rest));
    if (digits == 0 || digits > 16 || !ext_ok) {
      return Fail("bad chunk size from " + peer_ + ": " + Quote(line));
    }
    if (size == 0) break;
    if (size > request_.max_body || BodyTooBig(body->size() + static_cast<size_t>(size))) {
      return FailBodyTooBig();
    }
    const size_t expected = body->size() + static_cast<size_t>(size);
    if (!ReadExact(static_cast<size_t>(size), body, expected)) return false;
    budget = 2;
    if (!ReadLine(&line, &budget, "malformed chunk terminator from " + peer_, eof)) return false;
    if (!line.empty()) return Fail("malformed chunk terminator from " + peer_);
  }
  std::vector<std::pair<std::string, std::string>> trailers;  // read and dropped
  size_t budget = kMaxHeaderBytes;
  return ReadHeaders(&trailers, &budget);
}

bool Exchange::ReadUntilClose(std::string* body) {
  for (;;) {
    if (Available() > 0) {
      if (BodyTooBig(body->size() + Available())) return FailBodyTooBig();
      body->append(in_, pos_, Available());
      pos_ = in_.size();
    }
    if (eof_ && unclean_eof_) {
      return Fail("connection closed by " + peer_ + " without a TLS close_notify: the body may be truncated");
    }
    if (eof_) return true;
    if (!Fill()) return false;
  }
}

bool ValidRequestHeader(const std::string& name, const std::string& value, std::string* error) {
  if (!IsToken(name)) {
    *error = "invalid request header name " + Quote(name);
    return false;
  }
  if (!IsFieldValue(value)) {
    *error = "invalid value for request header " + name;
    return false;
  }
  static constexpr std::string_view kReserved[] = {"host", "connection", "content-length", "content-type",
                                                   "transfer-encoding"};
  const std::string lower = LowerString(name);
  if (std::find(std::begin(kReserved), std::end(kReserved), lower) != std::end(kReserved)) {
    *error = "request header " + name + " is set by HttpFetch";
    return false;
  }
  return true;
}

}  // namespace

const std::string* HttpResponse::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

namespace {

bool ParseUrlImpl(std::string_view url, bool allow_https, HttpUrl* out, std::string* error) {
  auto fail = [error](std::string why) {
    *error = std::move(why);
    return false;
  };
  if (url.size() > kMaxUrlLength) return fail("URL longer than " + std::to_string(kMaxUrlLength) + " bytes");
  for (char c : url) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return fail("URL contains a blank, control or non-ASCII byte: " + Quote(url));
  }
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos) return fail("not an http:// URL: " + Quote(url));
  const std::string scheme = LowerString(url.substr(0, sep));
  if (scheme == "https" && !allow_https) return fail("https is not supported for " + Quote(url));
  if (scheme != "http" && scheme != "https") {
    return fail("unsupported URL scheme " + Quote(scheme) + " in " + Quote(url));
  }

  std::string_view rest = url.substr(sep + 3);
  const size_t auth_end = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, auth_end);
  std::string_view tail = auth_end == std::string_view::npos ? std::string_view() : rest.substr(auth_end);
  if (authority.find('@') != std::string_view::npos) return fail("user info in URL is not supported: " + Quote(url));

  HttpUrl parsed;
  parsed.https = scheme == "https";
  parsed.port = parsed.https ? 443 : 80;
  std::string_view port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return fail("unterminated IPv6 literal in " + Quote(url));
    parsed.host = std::string(authority.substr(1, close - 1));
    in6_addr addr{};
    if (inet_pton(AF_INET6, parsed.host.c_str(), &addr) != 1) {
      return fail("bad IPv6 literal in " + Quote(url));
    }
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return fail("unexpected characters after the IPv6 literal in " + Quote(url));
      has_port = true;
      port_text = after.substr(1);
    }
  } else {
    const size_t colon = authority.find(':');
    parsed.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      has_port = true;
      port_text = authority.substr(colon + 1);
    }
    if (parsed.host.empty()) return fail("URL has no host: " + Quote(url));
    if (!std::all_of(parsed.host.begin(), parsed.host.end(), IsHostNameChar)) {
      return fail("bad host name in " + Quote(url));
    }
  }
  if (has_port) {
    if (port_text.empty() || port_text.size() > 5 || !std::all_of(port_text.begin(), port_text.end(), IsDigit)) {
      return fail("bad port in " + Quote(url));
    }
    int port = 0;
    for (char c : port_text) port = port * 10 + (c - '0');
    if (port < 1 || port > 65535) return fail("bad port in " + Quote(url));
    parsed.port = static_cast<uint16_t>(port);
  }
  tail = tail.substr(0, tail.find('#'));
  if (tail.empty()) {
    parsed.path_and_query = "/";
  } else if (tail.front() == '?') {
    parsed.path_and_query = "/" + std::string(tail);
  } else {
    parsed.path_and_query = std::string(tail);
  }
  *out = std::move(parsed);
  return true;
}

}  // namespace

bool ParseHttpUrl(std::string_view url, HttpUrl* out, std::string* error) {
  return ParseUrlImpl(url, false, out, error);
}

bool ParseUrl(std::string_view url, HttpUrl* out, std::string* error) { return ParseUrlImpl(url, true, out, error); }

bool HttpFetch(const HttpRequest& request, HttpResponse* response, std::string* error) {
  HttpUrl url;
  if (!ParseUrlImpl(request.url, request.tls != nullptr, &url, error)) return false;
  if (request.tls != nullptr && !url.https) {
    *error = "TLS settings given for a plain http URL " + Quote(request.url);
    return false;
  }
  if (request.method != "GET" && request.method != "POST") {
    *error = "unsupported HTTP method " + Quote(request.method);
    return false;
  }
  if (request.method == "GET" && !request.body.empty()) {
    *error = "a GET request cannot carry a body";
    return false;
  }
  if (request.timeout_ms <= 0) {
    *error = "timeout_ms must be positive";
    return false;
  }
  if (!IsFieldValue(request.content_type)) {
    *error = "invalid content type " + Quote(request.content_type);
    return false;
  }
  for (const auto& [name, value] : request.headers) {
    if (!ValidRequestHeader(name, value, error)) return false;
  }

  const bool ipv6 = url.host.find(':') != std::string::npos;
  std::string message = request.method + " " + url.path_and_query + " HTTP/1.1\r\nHost: ";
  message += ipv6 ? "[" + url.host + "]" : url.host;
  if (url.port != (url.https ? 443 : 80)) message += ":" + std::to_string(url.port);
  message += "\r\nUser-Agent: certacl\r\nConnection: close\r\n";
  if (request.method == "POST") {
    if (!request.content_type.empty()) message += "Content-Type: " + request.content_type + "\r\n";
    message += "Content-Length: " + std::to_string(request.body.size()) + "\r\n";
  }
  for (const auto& [name, value] : request.headers) message += name + ": " + value + "\r\n";
  message += "\r\n";
  message += request.body;

  if (request.cancel != nullptr && request.cancel->load()) {
    *error = "cancelled before connecting to " + url.host;
    return false;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(url.port);
  const int rc = getaddrinfo(url.host.c_str(), port.c_str(), &hints, &found);
  AddrInfoPtr addresses(found);
  if (rc != 0) {
    *error = "cannot resolve " + url.host + ": " + (rc == EAI_SYSTEM ? ErrnoText(errno) : gai_strerror(rc));
    return false;
  }

  Exchange exchange(request, error);  // the deadline starts here
  if (!exchange.Connect(addresses.get())) return false;
  if (request.tls != nullptr && !exchange.StartTls(*request.tls, url.host)) {
    ERR_clear_error();
    return false;
  }
  const bool ok = exchange.SendAll(message) && exchange.ReadResponse(response);
  if (ok) exchange.CloseTls();
  if (request.tls != nullptr) ERR_clear_error();
  return ok;
}

// --- TLS settings -----------------------------------------------------------------

namespace {

// The whole of a (small) file; false with *error naming it.
bool ReadSmallFile(const std::string& path, const char* what, std::string* text, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = std::string("cannot read ") + what + " " + path + ": " + ErrnoText(errno);
    return false;
  }
  std::ostringstream all;
  all << in.rdbuf();
  *text = all.str();
  return true;
}

// A PEM reader's passphrase callback that refuses: an encrypted key is an error, never a prompt.
int NoPassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) { return -1; }

}  // namespace

std::unique_ptr<TlsClientContext> TlsClientContext::Create(const TlsClientOptions& options, std::string* error) {
  OpenSslErrorMark mark;
  auto fail = [error](std::string why) {
    *error = std::move(why);
    return nullptr;
  };
  std::unique_ptr<TlsClientContext> tls(new TlsClientContext());
  tls->ctx_.reset(SSL_CTX_new(TLS_client_method()));
  SSL_CTX* ctx = tls->ctx_.get();
  if (ctx == nullptr || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
    return fail("cannot create a TLS context: " + LastOpenSslError());
  }
  tls->accept_cmc_ra_ = options.accept_cmc_ra;
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, options.accept_cmc_ra ? VerifyAcceptingCmcRa : nullptr);
  X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_PARTIAL_CHAIN);

  if (options.ca_file.empty() == (options.ca_store == nullptr)) {
    return fail("TLS needs its trust anchors from exactly one of a CA file and a CA store");
  }
  if (options.ca_store != nullptr) {
    SSL_CTX_set1_cert_store(ctx, options.ca_store);
  } else {
    std::string pem;
    if (!ReadSmallFile(options.ca_file, "CA file", &pem, error)) return nullptr;
    BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    int anchors = 0;
    while (X509Ptr cert{PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr)}) {
      if (X509_STORE_add_cert(store, cert.get()) != 1) {
        return fail("cannot use CA file " + options.ca_file + ": " + LastOpenSslError());
      }
      ++anchors;
    }
    if (anchors == 0) return fail("CA file " + options.ca_file + " holds no PEM certificate");
  }

  if (options.cert_file.empty() != options.key_file.empty()) {
    return fail("a TLS client certificate needs both a certificate file and a key file");
  }
  if (!options.cert_file.empty()) {
    std::string pem;
    if (!ReadSmallFile(options.cert_file, "client certificate", &pem, error)) return nullptr;
    BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    X509Ptr leaf(PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr));
    if (!leaf) return fail("client certificate " + options.cert_file + " holds no PEM certificate");
    if (SSL_CTX_use_certificate(ctx, leaf.get()) != 1) {
      return fail("cannot use client certificate " + options.cert_file + ": " + LastOpenSslError());
    }
    while (X509Ptr chain{PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr)}) {
      if (SSL_CTX_add1_chain_cert(ctx, chain.get()) != 1) {
        return fail("cannot use the chain in " + options.cert_file + ": " + LastOpenSslError());
      }
    }
    if (!ReadSmallFile(options.key_file, "client key", &pem, error)) return nullptr;
    bio.reset(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
    if (!key) return fail("client key " + options.key_file + " holds no unencrypted PEM private key");
    if (X509_check_private_key(leaf.get(), key.get()) != 1) {
      return fail("client key " + options.key_file + " does not match certificate " + options.cert_file);
    }
    if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1) {
      return fail("cannot use client key " + options.key_file + ": " + LastOpenSslError());
    }
  }
  PrimeExtensionCaches(ctx);
  return tls;
}

X509* TlsClientContext::client_cert() const { return SSL_CTX_get0_certificate(ctx_.get()); }

bool HasCmcRaEku(X509* cert) {
  if (cert == nullptr) return false;
  using EkuPtr = OpenSslPtr<EXTENDED_KEY_USAGE, EXTENDED_KEY_USAGE_free>;
  OpenSslErrorMark mark;
  EkuPtr eku(static_cast<EXTENDED_KEY_USAGE*>(X509_get_ext_d2i(cert, NID_ext_key_usage, nullptr, nullptr)));
  if (!eku) return false;
  for (int i = 0; i < sk_ASN1_OBJECT_num(eku.get()); ++i) {
    if (OBJ_obj2nid(sk_ASN1_OBJECT_value(eku.get(), i)) == NID_cmcRA) return true;
  }
  return false;
}

}  // namespace certacl::revocation
