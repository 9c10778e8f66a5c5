// http_client_test.cc: HttpFetch against scripted peers on 127.0.0.1 (each
// test runs its own tiny server thread that sends canned bytes), and
// ParseHttpUrl. No timing assertions: timeouts are asserted by their error.
#include "plugin/revocation/http_client.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace certacl::revocation {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// An owned socket.
class Socket {
 public:
  explicit Socket(int fd = -1) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// A TCP socket bound to 127.0.0.1 on a free port; listening if asked. Bound
// but not listening, connecting to it is refused (RST) deterministically.
Socket BindLoopback(bool listen) {
  Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_GE(s.get(), 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  if (listen) {
    EXPECT_EQ(::listen(s.get(), 16), 0);
  }
  return s;
}

uint16_t PortOf(const Socket& s) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  EXPECT_EQ(::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len), 0);
  return ntohs(a.sin_port);
}

std::string UrlFor(uint16_t port, std::string_view path = "/") {
  return "http://127.0.0.1:" + std::to_string(port) + std::string(path);
}

// Serves one connection: reads the request (headers + Content-Length body),
// then plays `script` (each step: wait delay_ms, send bytes), then closes,
// or with hang=true keeps the connection open silently until destroyed.
class ScriptedServer {
 public:
  struct Step {
    int delay_ms = 0;
    std::string bytes;
  };

  explicit ScriptedServer(std::vector<Step> script, bool hang = false)
      : listener_(BindLoopback(true)), script_(std::move(script)), hang_(hang) {
    thread_ = std::thread([this] { Run(); });
  }
  explicit ScriptedServer(std::string response, bool hang = false)
      : ScriptedServer(std::vector<Step>{{0, std::move(response)}}, hang) {}
  ~ScriptedServer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  std::string url(std::string_view path = "/") const { return UrlFor(PortOf(listener_), path); }
  uint16_t port() const { return PortOf(listener_); }

  // What the client sent (waits up to 5 s for it to arrive).
  std::string request() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(5), [this] { return have_request_; });
    return request_;
  }

 private:
  bool Stopping() {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_;
  }
  // Sleeps; true if told to stop meanwhile.
  bool SleepOrStop(int ms) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stop_; });
  }
  bool Readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 20) > 0;
  }

  void Run() {
    int fd = -1;
    while (fd < 0 && !Stopping()) {
      if (Readable(listener_.get())) fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    }
    if (fd < 0) return;
    Socket conn(fd);
    std::string got;
    while (!Stopping() && !RequestComplete(got)) {
      if (!Readable(fd)) continue;
      char buf[4096];
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      request_ = got;
      have_request_ = true;
    }
    cv_.notify_all();
    for (const Step& step : script_) {
      if (step.delay_ms > 0 && SleepOrStop(step.delay_ms)) return;
      if (::send(fd, step.bytes.data(), step.bytes.size(), MSG_NOSIGNAL) < 0) return;
    }
    if (hang_) {
      while (!SleepOrStop(1000)) {
      }
    }
  }

  static bool RequestComplete(const std::string& got) {
    const size_t end = got.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    size_t length = 0;
    const size_t cl = got.find("Content-Length: ");
    if (cl != std::string::npos && cl < end) length = std::stoul(got.substr(cl + 16));
    return got.size() >= end + 4 + length;
  }

  Socket listener_;
  const std::vector<Step> script_;
  const bool hang_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool have_request_ = false;
  std::string request_;
  std::thread thread_;
};

struct Result {
  bool ok = false;
  HttpResponse response;
  std::string error;
};

Result Fetch(const HttpRequest& request) {
  Result r;
  r.ok = HttpFetch(request, &r.response, &r.error);
  if (r.ok) {
    EXPECT_EQ(r.error, "");
  }
  return r;
}

Result Get(const std::string& url, int timeout_ms = 5000, size_t max_body = 64 << 20) {
  HttpRequest request;
  request.url = url;
  request.timeout_ms = timeout_ms;
  request.max_body = max_body;
  return Fetch(request);
}

// --- Successful fetches ------------------------------------------------------

TEST(HttpFetch, ContentLengthBodyAndHeaders) {
  ScriptedServer server(
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Thing:  A b \r\nETag: \"v1\"\r\n\r\nhello");
  Result r = Get(server.url("/crl/ca.crl?x=1"));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "hello");
  ASSERT_NE(r.response.Header("x-thing"), nullptr);
  EXPECT_EQ(*r.response.Header("x-thing"), "A b");
  ASSERT_NE(r.response.Header("etag"), nullptr);
  EXPECT_EQ(*r.response.Header("etag"), "\"v1\"");
  EXPECT_EQ(r.response.Header("X-Thing"), nullptr);  // names are lower-cased
  EXPECT_EQ(r.response.Header("missing"), nullptr);
  const std::string request = server.request();
  EXPECT_THAT(request, StartsWith("GET /crl/ca.crl?x=1 HTTP/1.1\r\n"));
  EXPECT_THAT(request, HasSubstr("\r\nHost: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"));
  EXPECT_THAT(request, HasSubstr("\r\nConnection: close\r\n"));
  EXPECT_THAT(request, ::testing::Not(HasSubstr("Content-Length")));
}

TEST(HttpFetch, ChunkedBodyInPieces) {
  ScriptedServer server(std::vector<ScriptedServer::Step>{
      {0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"},
      {30, "lo\r\n7;name=value\r\n, world\r"},
      {30, "\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"},
  });
  Result r = Get(server.url());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "hello, world0123456789");
}

TEST(HttpFetch, BodyUntilClose) {
  ScriptedServer server(std::vector<ScriptedServer::Step>{
      {0, "HTTP/1.0 200 OK\r\nContent-Type: application/pkix-crl\r\n\r\nfirst,"},
      {30, std::string("second\0third", 12)},
  });
  Result r = Get(server.url());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, std::string("first,second\0third", 18));
}

TEST(HttpFetch, BareLfLineEndingsAccepted) {
  ScriptedServer server("HTTP/1.1 200 OK\nContent-Length: 2\n\nok");
  Result r = Get(server.url());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.response.body, "ok");
}

TEST(HttpFetch, NotFoundIsASuccessfulFetch) {
  ScriptedServer server("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno such x");
  Result r = Get(server.url());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.response.status, 404);
  EXPECT_EQ(r.response.body, "no such x");
}

TEST(HttpFetch, NotModifiedHasNoBodyWhateverContentLengthSays) {
  // The connection stays open: reading a body of 100 bytes would time out.
  ScriptedServer server("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 100\r\n\r\n", /*hang=*/true);
  HttpRequest request;
  request.url = server.url("/ca.crl");
  request.headers = {{"If-None-Match", "\"v1\""}, {"If-Modified-Since", "Mon, 01 Jan 2024 00:00:00 GMT"}};
  Result r = Fetch(request);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.response.status, 304);
  EXPECT_EQ(r.response.body, "");
  const std::string sent = server.request();
  EXPECT_THAT(sent, HasSubstr("\r\nIf-None-Match: \"v1\"\r\n"));
  EXPECT_THAT(sent, HasSubstr("\r\nIf-Modified-Since: Mon, 01 Jan 2024 00:00:00 GMT\r\n"));
}

TEST(HttpFetch, InterimResponsesAreSkipped) {
  ScriptedServer server("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx");
  Result r = Get(server.url());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "x");
}

TEST(HttpFetch, PostSendsBodyAndContentType) {
  ScriptedServer server(
      "HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: 3\r\n\r\n\x30\x03\x0a");
  HttpRequest request;
  request.method = "POST";
  request.url = server.url("/ocsp");
  request.content_type = "application/ocsp-request";
  request.body = std::string("\x30\x00\x01\xff\r\n", 6);
  request.headers = {{"Accept", "application/ocsp-response"}};
  Result r = Fetch(request);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "\x30\x03\x0a");
  ASSERT_NE(r.response.Header("content-type"), nullptr);
  EXPECT_EQ(*r.response.Header("content-type"), "application/ocsp-response");
  const std::string sent = server.request();
  EXPECT_THAT(sent, StartsWith("POST /ocsp HTTP/1.1\r\n"));
  EXPECT_THAT(sent, HasSubstr("\r\nContent-Type: application/ocsp-request\r\n"));
  EXPECT_THAT(sent, HasSubstr("\r\nContent-Length: 6\r\n"));
  EXPECT_THAT(sent, HasSubstr("\r\nAccept: application/ocsp-response\r\n"));
  const size_t end = sent.find("\r\n\r\n");
  ASSERT_NE(end, std::string::npos);
  EXPECT_EQ(sent.substr(end + 4), request.body);
}

// --- Connection failures, deadlines, cancellation ------------------------------

TEST(HttpFetch, RefusedPortFailsWithRefused) {
  Socket closed = BindLoopback(/*listen=*/false);  // bound, not listening: RST
  Result r = Get(UrlFor(PortOf(closed)), 30000);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error, "connection refused by 127.0.0.1:" + std::to_string(PortOf(closed)));
}

TEST(HttpFetch, SilentServerTimesOut) {
  Socket silent = BindLoopback(/*listen=*/true);  // the kernel accepts; nobody answers
  Result r = Get(UrlFor(PortOf(silent)), 300);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error, "timed out after 300 ms waiting for the response from 127.0.0.1:" +
                         std::to_string(PortOf(silent)));
}

TEST(HttpFetch, TricklingServerTimesOut) {
  std::vector<ScriptedServer::Step> script = {{0, "HTTP/1.1 200 OK\r\nX-Slow: "}};
  for (int i = 0; i < 200; ++i) script.push_back({25, "a"});
  ScriptedServer server(std::move(script));
  Result r = Get(server.url(), 300);
  ASSERT_FALSE(r.ok);
  EXPECT_THAT(r.error, StartsWith("timed out after 300 ms"));
}

TEST(HttpFetch, CancelFlagStopsAHangingFetch) {
  Socket silent = BindLoopback(/*listen=*/true);
  std::atomic<bool> cancel{false};
  HttpRequest request;
  request.url = UrlFor(PortOf(silent));
  request.timeout_ms = 120000;
  request.cancel = &cancel;
  std::thread canceller([&cancel] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel = true;
  });
  Result r = Fetch(request);
  canceller.join();
  ASSERT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("cancelled while waiting for the response from 127.0.0.1:"));
}

TEST(HttpFetch, AlreadyCancelledDoesNotConnect) {
  std::atomic<bool> cancel{true};
  HttpRequest request;
  request.url = "http://127.0.0.1:9/";
  request.cancel = &cancel;
  Result r = Fetch(request);
  ASSERT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("cancelled"));
}

TEST(HttpFetch, ClosedBeforeStatusLine) {
  ScriptedServer server(std::vector<ScriptedServer::Step>{});
  Result r = Get(server.url());
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error, "connection closed by 127.0.0.1:" + std::to_string(server.port()) + " before the status line");
}

TEST(HttpFetch, TruncatedBody) {
  ScriptedServer server("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  Result r = Get(server.url());
  ASSERT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("after 3 of 10 body bytes"));
}

// --- Oversize ------------------------------------------------------------------

TEST(HttpFetch, ContentLengthOverMaxBody) {
  ScriptedServer server("HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n" + std::string(101, 'x'), true);
  Result r = Get(server.url(), 5000, 100);
  ASSERT_FALSE(r.ok);
  EXPECT_THAT(r.error, StartsWith("response body exceeds 100 bytes"));
}

TEST(HttpFetch, ContentLengthAtMaxBodyIsFine) {
  ScriptedServer server("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'x'));
  Result r = Get(server.url(), 5000, 100);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.response.body.size(), 100u);
}

TEST(HttpFetch, UntilCloseOverMaxBody) {
  ScriptedServer server("HTTP/1.1 200 OK\r\n\r\n" + std::string(101, 'x'), true);
  Result r = Get(server.url(), 5000, 100);
  ASSERT_FALSE(r.ok);
  EXPECT_THAT(r.error, StartsWith("response body exceeds 100 bytes"));
}

TEST(HttpFetch, ChunkedOverMaxBody) {
  ScriptedServer server("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n" + std::string(64, 'x') +
                            "\r\n40\r\n" + std::string(64, 'x') + "\r\n0\r\n\r\n",
                        true);
  Result r = Get(server.url(), 5000, 100);
  ASSERT_FALSE(r.ok);
  EXPECT_THAT(r.error, StartsWith("response body exceeds 100 bytes"));
}

TEST(HttpFetch, HugeHeadersRejected) {
  ScriptedServer server("HTTP/1.1 200 OK\r\nX-Big: " + std::string(70000, 'a') + "\r\n\r\n", true);
  Result r = Get(server.url());
  ASSERT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("exceed 65536 bytes"));
}

TEST(HttpFetch, LargeBodyIntact) {
  std::string body(3 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 7 + i / 251);
  ScriptedServer server("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  Result r = Get(server.url());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(r.response.body == body);
}

// --- Garbage -----------------------------------------------------------------------

TEST(HttpFetch, MalformedStatusLines) {
  for (const std::string& bad : {std::string("HTTP/1.1 2x0 OK\r\n\r\n"), std::string("HTTP/2 200\r\n\r\n"),
                                 std::string("\x16\x03\x01\x00\x05hello\r\n", 10), std::string("\x16\x03\x01\x00", 4),
                                 std::string("SSH-2.0-OpenSSH_9.2"), std::string("ICY 200 OK\r\n\r\n"),
                                 std::string("HTTP/1.1 099 Low\r\n\r\n"), std::string("HTTP/1.1 200OK\r\n\r\n")}) {
    ScriptedServer server(bad, true);
    Result r = Get(server.url());
    ASSERT_FALSE(r.ok) << bad;
    EXPECT_THAT(r.error, StartsWith("malformed status line from 127.0.0.1:")) << bad;
  }
}

TEST(HttpFetch, MalformedHeaders) {
  for (const std::string& bad : {std::string("No-Colon-Here"), std::string("Bad Name: x"), std::string(": empty"),
                                 std::string("X: a\x01z")}) {
    ScriptedServer server("HTTP/1.1 200 OK\r\n" + bad + "\r\nContent-Length: 0\r\n\r\n", true);
    Result r = Get(server.url());
    ASSERT_FALSE(r.ok) << bad;
    EXPECT_THAT(r.error, StartsWith("malformed header line")) << bad;
  }
  ScriptedServer folded("HTTP/1.1 200 OK\r\nX: a\r\n  folded\r\nContent-Length: 0\r\n\r\n", true);
  Result r = Get(folded.url());
  ASSERT_FALSE(r.ok);
  EXPECT_THAT(r.error, StartsWith("folded header line"));
}

TEST(HttpFetch, BadChunkSizes) {
  for (const std::string& bad : {std::string("zz"), std::string(""), std::string(" 5"), std::string("5 x"),
                                 std::string("-5"), std::string("0x5"), std::string("11111111111111111")}) {
    ScriptedServer server("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + bad + "\r\nhello\r\n0\r\n\r\n",
                          true);
    Result r = Get(server.url());
    ASSERT_FALSE(r.ok) << bad;
    EXPECT_THAT(r.error, StartsWith("bad chunk size from 127.0.0.1:")) << bad;
  }
}

TEST(HttpFetch, MissingChunkTerminator) {
  ScriptedServer server("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXY0\r\n\r\n", true);
  Result r = Get(server.url());
  ASSERT_FALSE(r.ok);
  EXPECT_THAT(r.error, StartsWith("malformed chunk terminator"));
}

TEST(HttpFetch, UnsupportedTransferEncoding) {
  ScriptedServer server("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", true);
  Result r = Get(server.url());
  ASSERT_FALSE(r.ok);
  EXPECT_THAT(r.error, StartsWith("unsupported Transfer-Encoding"));
}

TEST(HttpFetch, BadContentLength) {
  for (const std::string& bad : {std::string("Content-Length: -1"), std::string("Content-Length: 1 2"),
                                 std::string("Content-Length: 0x10"),
                                 std::string("Content-Length: 2\r\nContent-Length: 3")}) {
    ScriptedServer server("HTTP/1.1 200 OK\r\n" + bad + "\r\n\r\nabc", true);
    Result r = Get(server.url());
    ASSERT_FALSE(r.ok) << bad;
    EXPECT_THAT(r.error, HasSubstr("Content-Length")) << bad;
  }
}

// --- Request validation ---------------------------------------------------------

TEST(HttpFetch, HttpsIsRejected) {
  Result r = Get("https://127.0.0.1/ocsp");
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error, "https is not supported for \"https://127.0.0.1/ocsp\"");
}

TEST(HttpFetch, RequestValidation) {
  HttpRequest request;
  request.url = "http://127.0.0.1:9/";
  request.headers = {{"X-Evil", "a\r\nInjected: yes"}};
  EXPECT_THAT(Fetch(request).error, HasSubstr("invalid value for request header X-Evil"));
  request.headers = {{"Bad Name", "x"}};
  EXPECT_THAT(Fetch(request).error, HasSubstr("invalid request header name"));
  request.headers = {{"content-length", "5"}};
  EXPECT_THAT(Fetch(request).error, HasSubstr("is set by HttpFetch"));
  request.headers.clear();
  request.method = "PUT";
  EXPECT_THAT(Fetch(request).error, HasSubstr("unsupported HTTP method"));
  request.method = "GET";
  request.body = "x";
  EXPECT_THAT(Fetch(request).error, HasSubstr("GET request cannot carry a body"));
}

// --- ParseHttpUrl ------------------------------------------------------------------

TEST(HttpUrlParse, Accepted) {
  struct Case {
    std::string url, host;
    uint16_t port;
    std::string path;
  };
  for (const Case& c : std::vector<Case>{
           {"http://ocsp.example.com/", "ocsp.example.com", 80, "/"},
           {"http://ocsp.example.com", "ocsp.example.com", 80, "/"},
           {"HTTP://Ocsp.Example.com:8080/a/b.crl?x=1&y=2", "Ocsp.Example.com", 8080, "/a/b.crl?x=1&y=2"},
           {"http://127.0.0.1:8888", "127.0.0.1", 8888, "/"},
           {"http://[::1]:8080/ocsp", "::1", 8080, "/ocsp"},
           {"http://[2001:db8::1]/ocsp", "2001:db8::1", 80, "/ocsp"},
           {"http://h?q=1", "h", 80, "/?q=1"},
           {"http://h/p#frag", "h", 80, "/p"},
           {"http://h:65535/", "h", 65535, "/"},
           {"http://h:00080/", "h", 80, "/"},
       }) {
    HttpUrl u;
    std::string error;
    ASSERT_TRUE(ParseHttpUrl(c.url, &u, &error)) << c.url << ": " << error;
    EXPECT_EQ(u.host, c.host) << c.url;
    EXPECT_EQ(u.port, c.port) << c.url;
    EXPECT_EQ(u.path_and_query, c.path) << c.url;
  }
}

TEST(HttpUrlParse, Rejected) {
  struct Case {
    std::string url, error;
  };
  for (const Case& c : std::vector<Case>{
           {"https://h/", "https is not supported for"},
           {"HTTPS://h/", "https is not supported for"},
           {"ldap://h/cn=x", "unsupported URL scheme"},
           {"h/path", "not an http:// URL"},
           {"", "not an http:// URL"},
           {"http:///path", "URL has no host"},
           {"http://:80/", "URL has no host"},
           {"http://h:/", "bad port"},
           {"http://h:0/", "bad port"},
           {"http://h:65536/", "bad port"},
           {"http://h:123456/", "bad port"},
           {"http://h:8x/", "bad port"},
           {"http://h:-1/", "bad port"},
           {"http://[::1/", "unterminated IPv6 literal"},
           {"http://[::g]/", "bad IPv6 literal"},
           {"http://[::1]x/", "unexpected characters after the IPv6 literal"},
           {"http://::1/", "URL has no host"},
           {"http://user:pw@h/", "user info"},
           {"http://h/a b", "blank, control or non-ASCII"},
           {"http://h/a\r\nX: y", "blank, control or non-ASCII"},
           {std::string("http://h/\0", 10), "blank, control or non-ASCII"},
           {"http://h\xc3\xa9/", "blank, control or non-ASCII"},
           {"http://h%41/", "bad host name"},
           {"http://" + std::string(9000, 'a') + "/", "URL longer than 8192 bytes"},
       }) {
    HttpUrl u;
    std::string error;
    EXPECT_FALSE(ParseHttpUrl(c.url, &u, &error)) << c.url;
    EXPECT_THAT(error, HasSubstr(c.error)) << c.url;
  }
}

}  // namespace
}  // namespace certacl::revocation
