// http_client.cc: see http_client.h. Plain non-blocking sockets and poll()
// against one steady-clock deadline; every wait is sliced into <= 100 ms so
// the cancel flag is honoured promptly.
#include "plugin/revocation/http_client.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <utility>

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

// One request/response exchange on one connection.
class Exchange {
 public:
  Exchange(const HttpRequest& request, std::string* error)
      : request_(request),
        error_(error),
        deadline_(Clock::now() + std::chrono::milliseconds(request.timeout_ms)) {}

  bool Connect(const addrinfo* list);
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
  for (;;) {
    // Checked on every read, so a peer that trickles data cannot outlive the deadline.
    if (!CheckTime(kDoing)) return false;
    if (!read_buffer_) read_buffer_ = std::make_unique_for_overwrite<char[]>(kReadChunk);
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

bool ParseStatusLine(std::string_view line, int* status) {
  // HTTP/1.x SP 3DIGIT [SP reason-phrase]
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || !IsDigit(line[7]) || line[8] != ' ') return false;
  if (!IsDigit(line[9]) || !IsDigit(line[10]) || !IsDigit(line[11])) return false;
  if (line.size() > 12 && (line[12] != ' ' || !IsFieldValue(line.substr(13)))) return false;
  *status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
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
    if (!ParseStatusLine(line, &status)) {
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

bool ParseHttpUrl(std::string_view url, HttpUrl* out, std::string* error) {
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
  if (scheme == "https") return fail("https is not supported for " + Quote(url));
  if (scheme != "http") return fail("unsupported URL scheme " + Quote(scheme) + " in " + Quote(url));

  std::string_view rest = url.substr(sep + 3);
  const size_t auth_end = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, auth_end);
  std::string_view tail = auth_end == std::string_view::npos ? std::string_view() : rest.substr(auth_end);
  if (authority.find('@') != std::string_view::npos) return fail("user info in URL is not supported: " + Quote(url));

  HttpUrl parsed;
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

bool HttpFetch(const HttpRequest& request, HttpResponse* response, std::string* error) {
  HttpUrl url;
  if (!ParseHttpUrl(request.url, &url, error)) return false;
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
  if (url.port != 80) message += ":" + std::to_string(url.port);
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
  return exchange.Connect(addresses.get()) && exchange.SendAll(message) && exchange.ReadResponse(response);
}

}  // namespace certacl::revocation
