// http_client.h: a small blocking HTTP/1.1 client, run only from background
// threads (it blocks for up to timeout_ms plus name resolution; never call it
// on the broker thread). The revocation code fetches CRLs and asks OCSP
// responders over plain http; the enroll bridge talks to EST servers over
// https.
//
// Contract:
//  - http:// always; https:// only when the request carries TLS settings
//    (HttpRequest::tls, built once as a TlsClientContext). No proxies, no
//    redirects, no keep-alive: every request sends "Connection: close" and
//    uses a fresh connection.
//  - HttpFetch() returns true when a complete response arrived, whatever its
//    status: 304, 404 and 500 are successful fetches, the caller reads
//    `status`. It returns false with a one-line reason in *error for
//    everything else: bad URL, resolution failure, refused connection (fails
//    at once, never waits for the timeout), TLS failure, timeout,
//    cancellation, oversize or malformed response.
//  - timeout_ms bounds connect + TLS handshake + send + receive together
//    (one deadline); getaddrinfo() runs before it and is not bounded (use IP
//    literals or a local resolver when that matters). `cancel`, when set, is
//    polled at least every 100 ms from connect onwards.
//  - The response body is framed by Content-Length, by chunked
//    transfer-encoding (strictly parsed) or by the peer closing (over TLS
//    only with a close_notify, else the body may be truncated: an error).
//    Response headers are limited to 64 KiB, the body to max_body.
//  - TLS: version 1.2 or later; the server's chain is verified against the
//    context's trust anchors, and its identity per RFC 6125 against the
//    URL's host (DNS names: SNI + SSL_set1_host, no partial wildcards; IP
//    literals: the iPAddress SAN). With accept_cmc_ra, a verified server
//    certificate carrying id-kp-cmcRA is accepted whatever its names
//    (RFC 7030 section 3.6.1). An optional client certificate is sent when
//    the server asks. Sockets never raise SIGPIPE.
//
// Thread-safe: no shared mutable state; concurrent calls are independent and
// may share one TlsClientContext. An https request clears the calling
// thread's OpenSSL error queue.
#ifndef CERTACL_PLUGIN_REVOCATION_HTTP_CLIENT_H_
#define CERTACL_PLUGIN_REVOCATION_HTTP_CLIENT_H_

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/openssl_ptr.h"

namespace certacl::revocation {

struct TlsClientOptions {
  // Trust anchors for the server's chain: a PEM file, or a store (a
  // reference is taken). Exactly one of the two. Any certificate in them is
  // an anchor (X509_V_FLAG_PARTIAL_CHAIN): an issuing CA will do.
  std::string ca_file;
  X509_STORE* ca_store = nullptr;
  // Optional client certificate: PEM, the leaf first, then any chain; and
  // its private key (PEM, unencrypted). Both or neither.
  std::string cert_file;
  std::string key_file;
  // Also accept a server certificate with id-kp-cmcRA whose names do not
  // match the URL's host (RFC 7030 section 3.6.1). The chain is still
  // verified, and the certificate must still be fit for a TLS server.
  bool accept_cmc_ra = false;
};

// The TLS settings of https requests: an SSL_CTX configured once, then
// immutable, so concurrent requests may share it.
class TlsClientContext {
 public:
  // Null with a one-line *error if a file is unreadable or holds no
  // certificate/key, the key does not match the certificate, or the trust
  // anchors are not given exactly once.
  static std::unique_ptr<TlsClientContext> Create(const TlsClientOptions& options, std::string* error);

  SSL_CTX* ctx() const { return ctx_.get(); }
  X509* client_cert() const;  // null when there is none
  bool accept_cmc_ra() const { return accept_cmc_ra_; }

 private:
  TlsClientContext() = default;
  OpenSslPtr<SSL_CTX, SSL_CTX_free> ctx_;
  bool accept_cmc_ra_ = false;
};

// Whether `cert` carries extendedKeyUsage id-kp-cmcRA (1.3.6.1.5.5.7.3.28,
// RFC 6402), the mark of an EST RA (RFC 7030 section 3.7). Null: false.
bool HasCmcRaEku(X509* cert);

struct HttpRequest {
  std::string method = "GET";  // GET or POST
  std::string url;             // http://host[:port]/path, or https:// with `tls`
  std::string content_type;    // POST body type, e.g. "application/ocsp-request"
  std::string body;            // POST only
  // Extra request headers (If-None-Match, If-Modified-Since, Accept, ...).
  // Host, Connection, Content-Length, Content-Type and Transfer-Encoding are
  // set by HttpFetch and may not appear here.
  std::vector<std::pair<std::string, std::string>> headers;
  int timeout_ms = 5000;    // connect + TLS handshake + send + receive (DNS excluded)
  size_t max_body = 64 << 20;  // a larger body is an error (reading stops)
  const std::atomic<bool>* cancel = nullptr;  // true -> give up within ~100 ms
  // Required for https:// URLs (without it they are refused as before), and
  // then only https:// is allowed. Borrowed: must outlive the call.
  const TlsClientContext* tls = nullptr;
};

struct HttpResponse {
  int status = 0;
  std::string reason;  // the status line's reason phrase ("" if none)
  std::string body;
  // In arrival order, names lower-cased, values with surrounding blanks removed.
  std::vector<std::pair<std::string, std::string>> headers;

  // The value of the first header named `lower_name`, or null.
  const std::string* Header(std::string_view lower_name) const;
};

// Blocking. On false, *error is one line, e.g. "connection refused by
// 127.0.0.1:8898", "timed out after 2000 ms waiting for the response from
// 127.0.0.1:8899", "response body exceeds 67108864 bytes", "malformed status
// line from 127.0.0.1:8080", "TLS handshake with 127.0.0.1:8085 failed:
// certificate verify failed (unable to get local issuer certificate)", "TLS
// handshake with 127.0.0.1:8085 failed: server certificate does not match
// 127.0.0.1". *response is unspecified on failure.
bool HttpFetch(const HttpRequest& request, HttpResponse* response, std::string* error);

struct HttpUrl {
  bool https = false;
  std::string host;  // without brackets for IPv6 literals
  uint16_t port = 80;  // 443 by default for https
  std::string path_and_query;  // starts with '/'; "/" when the URL has no path
};

// Parses "http://host[:port][/path][?query]" (scheme case-insensitive, IPv6
// literal in brackets, fragment dropped). Refuses https (as "https is not
// supported for <url>"), other schemes, user info, empty hosts, ports
// outside 1..65535, and any whitespace or control byte. false + *error.
bool ParseHttpUrl(std::string_view url, HttpUrl* out, std::string* error);

// The same for "http://..." and "https://..." (default port 443).
bool ParseUrl(std::string_view url, HttpUrl* out, std::string* error);

}  // namespace certacl::revocation

#endif  // CERTACL_PLUGIN_REVOCATION_HTTP_CLIENT_H_
