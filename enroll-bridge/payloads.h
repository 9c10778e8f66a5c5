// payloads.h: the enroll topics and JSON payloads of docs/enroll.md, as
// pure functions: parsing a request topic and body, checking an MQTT 5
// Response Topic, and writing the accepted / rejected answers. No I/O, no
// MQTT; thread-safe.
#ifndef CERTACL_ENROLL_BRIDGE_PAYLOADS_H_
#define CERTACL_ENROLL_BRIDGE_PAYLOADS_H_

#include <openssl/x509.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace certacl::enroll {

enum class Op : uint8_t { kSimpleReenroll, kSimpleEnroll, kCaCerts, kCsrAttrs };
std::optional<Op> ParseOp(std::string_view name);
const char* OpName(Op op);  // "simplereenroll", ...

// The documented errorCode values (docs/enroll.md).
enum class ErrorCode : uint8_t {
  kInvalidRequest,
  kPayloadTooLarge,
  kInvalidCsr,
  kKeyPolicy,
  kSubjectMismatch,
  kIdentityMismatch,
  kNotYetRenewable,
  kRateLimited,
  kRequestPending,
  kUpstreamRejected,
  kUpstreamUnavailable,
  kIssuedCertificateInvalid,
  kUnsupportedOperation,
  kInternalError,
};
const char* ErrorCodeName(ErrorCode code);  // "InvalidRequest", ...
std::optional<ErrorCode> ParseErrorCode(std::string_view name);
int DefaultStatus(ErrorCode code);           // 400, 413, ..., 202, 503

struct Rejection {
  ErrorCode code = ErrorCode::kInternalError;
  int status = 500;
  std::string message;
  int64_t retry_after_s = 0;
};
Rejection Reject(ErrorCode code, std::string message, int64_t retry_after_s = 0);

// "{prefix}/{id}/{op}" -> id, op name. False if the topic is not exactly
// one identity level and one operation level under the prefix.
bool SplitRequestTopic(std::string_view prefix, std::string_view topic, std::string* id, std::string* op);

// Whether an MQTT 5 Response Topic may be used for device `id`: inside
// "{prefix}/{id}/", at least one level below a request topic (so an answer
// can never be taken for a request), no wildcards, no empty levels, no NUL.
bool ResponseTopicAllowed(std::string_view prefix, std::string_view id, std::string_view response_topic);

struct Request {
  std::string request_id;  // "" when absent
  std::string csr;         // PEM or base64 DER, as sent
};

// Parses a request body. `needs_csr`: enroll operations. An empty body is
// `{}`. False with *why (one line) if the body is not a JSON object, has a
// requestId that is not a string of 1..64 printable ASCII characters, lacks
// a csr string when one is needed, or has members of the wrong type.
// Unknown members are ignored (forward compatibility).
bool ParseRequest(std::string_view body, bool needs_csr, Request* out, std::string* why);

// A requestId taken from a body that failed to parse, if it had a usable one
// (so even the rejection can be correlated); "" otherwise.
std::string SalvageRequestId(std::string_view body);

// The certificate fields of an accepted answer.
struct Issued {
  std::string certificate_pem;
  std::string chain_pem;  // may be ""
  std::string serial;     // upper-case hex
  std::string not_before;  // RFC 3339, UTC
  std::string not_after;
};
// Fills `Issued` from the leaf and the other certificates of the answer.
Issued DescribeIssued(X509* leaf, const std::vector<X509*>& chain);

std::string AcceptedJson(std::string_view request_id, const Issued& issued);
std::string CaCertsJson(std::string_view request_id, const std::vector<X509*>& certs);
std::string CsrAttrsJson(std::string_view request_id, std::string_view der);
std::string RejectedJson(std::string_view request_id, const Rejection& r);

std::string CertPem(X509* cert);
std::string Rfc3339(int64_t unix_seconds);  // "2026-11-27T03:00:00Z"

}  // namespace certacl::enroll

#endif  // CERTACL_ENROLL_BRIDGE_PAYLOADS_H_
