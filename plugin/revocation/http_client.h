// http_client.h: a small blocking HTTP/1.1 client for fetching CRLs and
// asking OCSP responders, run only from a background thread (it blocks for
// up to timeout_ms plus name resolution; never call it on the broker thread).
//
// Contract:
//  - http:// only (no TLS, no proxies, no redirects, no keep-alive: every
//    request sends "Connection: close" and uses a fresh connection).
//  - HttpFetch() returns true when a complete response arrived, whatever its
//    status: 304, 404 and 500 are successful fetches, the caller reads
//    `status`. It returns false with a one-line reason in *error for
//    everything else: bad URL, resolution failure, refused connection (fails
//    at once, never waits for the timeout), timeout, cancellation, oversize
//    or malformed response.
//  - timeout_ms bounds connect + send + receive together (one deadline);
//    getaddrinfo() runs before it and is not bounded (use IP literals or a
//    local resolver when that matters). `cancel`, when set, is polled at
//    least every 100 ms from connect onwards.
//  - The response body is framed by Content-Length, by chunked
//    transfer-encoding (strictly parsed) or by the peer closing. Response
//    headers are limited to 64 KiB, the body to max_body.
//
// Thread-safe: no shared state; concurrent calls are independent.
#ifndef CERTACL_PLUGIN_REVOCATION_HTTP_CLIENT_H_
#define CERTACL_PLUGIN_REVOCATION_HTTP_CLIENT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace certacl::revocation {

struct HttpRequest {
  std::string method = "GET";  // GET or POST
  std::string url;             // http://host[:port]/path; https:// is refused
  std::string content_type;    // POST body type, e.g. "application/ocsp-request"
  std::string body;            // POST only
  // Extra request headers (If-None-Match, If-Modified-Since, Accept, ...).
  // Host, Connection, Content-Length, Content-Type and Transfer-Encoding are
  // set by HttpFetch and may not appear here.
  std::vector<std::pair<std::string, std::string>> headers;
  int timeout_ms = 5000;    // connect + send + receive (DNS excluded)
  size_t max_body = 64 << 20;  // a larger body is an error (reading stops)
  const std::atomic<bool>* cancel = nullptr;  // true -> give up within ~100 ms
};

struct HttpResponse {
  int status = 0;
  std::string body;
  // In arrival order, names lower-cased, values with surrounding blanks removed.
  std::vector<std::pair<std::string, std::string>> headers;

  // The value of the first header named `lower_name`, or null.
  const std::string* Header(std::string_view lower_name) const;
};

// Blocking. On false, *error is one line, e.g. "connection refused by
// 127.0.0.1:8898", "timed out after 2000 ms waiting for the response from
// 127.0.0.1:8899", "response body exceeds 67108864 bytes", "malformed status
// line from 127.0.0.1:8080". *response is unspecified on failure.
bool HttpFetch(const HttpRequest& request, HttpResponse* response, std::string* error);

struct HttpUrl {
  std::string host;  // without brackets for IPv6 literals
  uint16_t port = 80;
  std::string path_and_query;  // starts with '/'; "/" when the URL has no path
};

// Parses "http://host[:port][/path][?query]" (scheme case-insensitive, IPv6
// literal in brackets, fragment dropped). Refuses https (as "https is not
// supported for <url>"), other schemes, user info, empty hosts, ports
// outside 1..65535, and any whitespace or control byte. false + *error.
bool ParseHttpUrl(std::string_view url, HttpUrl* out, std::string* error);

}  // namespace certacl::revocation

#endif  // CERTACL_PLUGIN_REVOCATION_HTTP_CLIENT_H_
