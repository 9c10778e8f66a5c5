// est_backend.cc: see est_backend.h.
#include "enroll-bridge/est_backend.h"

#include <openssl/asn1.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <utility>

#include "enroll-bridge/est_codec.h"

namespace certacl::enroll {
namespace {

using revocation::HttpFetch;
using revocation::HttpRequest;
using revocation::HttpResponse;
using Status = BackendResult::Status;

constexpr size_t kMaxBody = 1 << 20;  // a chain of a few certificates is a few KiB
constexpr int64_t kDefaultRetryAfterS = 60;
constexpr int64_t kMaxRetryAfterS = 86400;
constexpr size_t kMaxMessage = 200;
constexpr std::string_view kWellKnown = "/.well-known/est";


bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

int MonthIndex(std::string_view name) {
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; ++i) {
    if (name == kMonths[i]) return i;
  }
  return -1;
}

// An HTTP-date (RFC 9110 5.6.7) in any of its three forms, as Unix seconds.
bool ParseHttpDate(const std::string& s, int64_t* out) {
  int day = 0, year = 0, hour = 0, minute = 0, second = 0, used = 0;
  char month[4] = {};
  char weekday[16] = {};
  bool ok = false;
  const size_t comma = s.find(',');
  if (comma != std::string::npos) {
    const std::string rest = s.substr(comma + 1);
    if (rest.find('-') == std::string::npos) {  // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
      ok = std::sscanf(rest.c_str(), " %2d %3s %4d %2d:%2d:%2d GMT%n", &day, month, &year, &hour, &minute, &second,
                       &used) == 6;
    } else {  // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
      ok = std::sscanf(rest.c_str(), " %2d-%3[A-Za-z]-%2d %2d:%2d:%2d GMT%n", &day, month, &year, &hour, &minute,
                       &second, &used) == 6;
      year += year < 70 ? 2000 : 1900;
    }
    ok = ok && static_cast<size_t>(used) == rest.size();
  } else {  // asctime: Sun Nov  6 08:49:37 1994
    ok = std::sscanf(s.c_str(), "%15s %3s %2d %2d:%2d:%2d %4d%n", weekday, month, &day, &hour, &minute, &second,
                     &year, &used) == 7 &&
         static_cast<size_t>(used) == s.size();
  }
  const int mon = MonthIndex(month);
  if (!ok || mon < 0 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60 || year < 1970) return false;
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  *out = static_cast<int64_t>(timegm(&tm));
  return true;
}

// The first line of a text (or untyped) body; "" for other bodies.
std::string BodyLine(const HttpResponse& response) {
  const std::string* type = response.Header("content-type");
  const bool text = type == nullptr || MediaType(*type).starts_with("text/");
  return text ? SanitizeLine(response.body) : std::string();
}

// What a refusal says: the first line of a text body, else the reason phrase.
std::string RefusalText(const HttpResponse& response) {
  std::string line = BodyLine(response);
  if (line.empty()) line = SanitizeLine(response.reason);
  if (line.empty()) line = "HTTP " + std::to_string(response.status);
  return line;
}

// "503 Service Unavailable" for messages.
std::string StatusText(const HttpResponse& response) {
  std::string s = std::to_string(response.status);
  const std::string reason = SanitizeLine(response.reason);
  if (!reason.empty()) s += " " + reason;
  return s;
}

// Whether `der` is exactly one DER SEQUENCE (a CsrAttrs).
bool IsOneSequence(const std::string& der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  long length = 0;
  int tag = 0, cls = 0;
  const int rc = ASN1_get_object(&p, &length, &tag, &cls, static_cast<long>(der.size()));
  if ((rc & 0x80) != 0 || rc != V_ASN1_CONSTRUCTED || tag != V_ASN1_SEQUENCE || cls != V_ASN1_UNIVERSAL) return false;
  return p + length == reinterpret_cast<const unsigned char*>(der.data()) + der.size();
}

BackendResult Unavailable(std::string message) {
  BackendResult r;
  r.status = Status::kUnavailable;
  r.message = std::move(message);
  return r;
}

}  // namespace

int64_t ParseRetryAfter(const std::string* value, int64_t now) {
  if (value == nullptr) return kDefaultRetryAfterS;
  const std::string& v = *value;
  int64_t seconds = kDefaultRetryAfterS;
  if (!v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    seconds = 0;
    for (char c : v) {
      seconds = seconds * 10 + (c - '0');
      if (seconds > kMaxRetryAfterS) break;  // no overflow on absurd lengths
    }
  } else if (int64_t when = 0; ParseHttpDate(v, &when)) {
    seconds = when - now;
  }
  return std::clamp<int64_t>(seconds, 1, kMaxRetryAfterS);
}

std::string SanitizeLine(std::string_view text) {
  const size_t eol = text.find_first_of("\r\n");
  std::string out;
  for (char c : text.substr(0, eol)) {
    const auto u = static_cast<unsigned char>(c);
    out += c == '\t' ? ' ' : (u >= 0x20 && u < 0x7f ? c : '?');
  }
  const size_t first = out.find_first_not_of(' ');
  if (first == std::string::npos) return "";
  out = out.substr(first, out.find_last_not_of(' ') - first + 1);
  if (out.size() > kMaxMessage) out.resize(kMaxMessage);
  return out;
}

std::unique_ptr<EstBackend> EstBackend::Create(const EstConfig& config, std::string* error) {
  auto fail = [error](std::string why) {
    *error = std::move(why);
    return nullptr;
  };
  revocation::HttpUrl parsed;
  std::string why;
  if (!revocation::ParseUrl(config.url, &parsed, &why)) return fail("bad EST url: " + why);
  if (!parsed.https) return fail("the EST url must be https:// (got " + config.url + ")");
  if (config.url.find_first_of("?#") != std::string::npos) {
    return fail("the EST url must not have a query or fragment: " + config.url);
  }
  std::string_view path = parsed.path_and_query;
  if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  const std::string_view label = path.starts_with(kWellKnown) ? path.substr(kWellKnown.size()) : "x";
  if (!label.empty() && (label.size() < 2 || label.front() != '/' || label.find('/', 1) != std::string_view::npos)) {
    return fail("the EST url must be https://host[:port]/.well-known/est or .../.well-known/est/<label> (got " +
                config.url + ")");
  }
  if (config.cafile.empty()) return fail("the EST backend needs a cafile (the EST server's trust anchor)");
  if (config.username.empty() != config.password.empty()) {
    return fail("EST username and password go together");
  }
  if (config.username.find(':') != std::string::npos || HasControl(config.username) ||
      HasControl(config.password)) {
    return fail("the EST username must not contain ':' and neither may contain control characters");
  }
  if (config.timeout_ms <= 0) return fail("the EST timeout must be positive");

  revocation::TlsClientOptions tls_options;
  tls_options.ca_file = config.cafile;
  tls_options.cert_file = config.certfile;
  tls_options.key_file = config.keyfile;
  tls_options.accept_cmc_ra = config.accept_cmc_ra_server;
  std::unique_ptr<EstBackend> backend(new EstBackend());
  backend->tls_ = revocation::TlsClientContext::Create(tls_options, &why);
  if (!backend->tls_) return fail("EST TLS settings: " + why);
  backend->url_ = config.url;
  while (backend->url_.ends_with('/')) backend->url_.pop_back();
  if (!config.username.empty()) {
    backend->authorization_ = "Basic " + Base64Encode(config.username + ":" + config.password);
  }
  backend->timeout_ms_ = config.timeout_ms;
  backend->ra_mode_ = revocation::HasCmcRaEku(backend->tls_->client_cert());
  return backend;
}

std::string EstBackend::Describe() const { return "est " + url_ + (ra_mode_ ? " as RA" : ""); }

BackendResult EstBackend::Enroll(EnrollOp op, X509_REQ* csr, std::string_view csr_der) {
  const std::string der = csr_der.empty() ? ToDer<X509_REQ, i2d_X509_REQ>(csr) : std::string(csr_der);
  if (der.empty()) return Unavailable("EST: the CSR cannot be encoded");
  return Call(op == EnrollOp::kSimpleEnroll ? "simpleenroll" : "simplereenroll", "POST", Base64Encode(der));
}

BackendResult EstBackend::CaCerts() { return Call("cacerts", "GET", ""); }

BackendResult EstBackend::CsrAttrs() { return Call("csrattrs", "GET", ""); }

BackendResult EstBackend::Call(std::string_view op, const std::string& method, std::string body) const {
  const std::string what = "EST /" + std::string(op);
  const bool enroll = method == "POST";
  const bool csrattrs = op == "csrattrs";
  HttpRequest request;
  request.method = method;
  request.url = url_ + "/" + std::string(op);
  if (enroll) {
    request.content_type = "application/pkcs10";
    request.body = std::move(body);
  }
  if (!authorization_.empty()) request.headers.emplace_back("Authorization", authorization_);
  request.timeout_ms = timeout_ms_;
  request.max_body = kMaxBody;
  request.tls = tls_.get();
  HttpResponse response;
  std::string error;
  if (!HttpFetch(request, &response, &error)) return Unavailable(what + ": " + error);

  BackendResult r;
  const int status = response.status;
  if (status == 200) {
    const std::string* type_header = response.Header("content-type");
    const std::string type = type_header != nullptr ? MediaType(*type_header) : std::string();
    const std::string expected = csrattrs ? "application/csrattrs" : "application/pkcs7-mime";
    if (type != expected) {
      return Unavailable(what + ": the answer is " + (type.empty() ? "untyped" : "\"" + SanitizeLine(type) + "\"") +
                         ", not " + expected);
    }
    if (csrattrs) {
      std::string der;
      const bool blank = std::all_of(response.body.begin(), response.body.end(),
                                     [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
      if (!blank && (!DecodeEstBase64(response.body, &der) || !IsOneSequence(der))) {
        return Unavailable(what + ": the answer is not base64 of a DER CsrAttrs");
      }
      r.status = Status::kOk;
      r.der = std::move(der);
      return r;
    }
    if (!CertsFromPkcs7(response.body, &r.certs, &error)) return Unavailable(what + ": malformed answer: " + error);
    r.status = Status::kOk;
    return r;
  }
  if (status == 202 && enroll) {
    r.status = Status::kPending;
    r.retry_after_s = ParseRetryAfter(response.Header("retry-after"), static_cast<int64_t>(std::time(nullptr)));
    r.message = "the CA accepted the request but has not issued yet; retry after " +
                std::to_string(r.retry_after_s) + " s";
    return r;
  }
  if (csrattrs && (status == 204 || status == 404)) {
    r.status = Status::kOk;
    return r;
  }
  if (status >= 400 && status < 500) {
    r.status = Status::kRejected;
    r.http_status = status;
    r.message = RefusalText(response);
    return r;
  }
  if (status >= 500) {
    const std::string line = BodyLine(response);
    r = Unavailable(what + ": server error " + StatusText(response) + (line.empty() ? "" : ": " + line));
    r.http_status = status;
    if (const std::string* retry = response.Header("retry-after"); status == 503 && retry != nullptr) {
      r.retry_after_s = ParseRetryAfter(retry, static_cast<int64_t>(std::time(nullptr)));
    }
    return r;
  }
  return Unavailable(what + ": unexpected HTTP status " + StatusText(response));
}

}  // namespace certacl::enroll
