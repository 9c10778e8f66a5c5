// payloads.cc: see payloads.h.
#include "enroll-bridge/payloads.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <ctime>
#include <nlohmann/json.hpp>

#include "policy/openssl_ptr.h"

namespace certacl::enroll {
namespace {

using nlohmann::json;

constexpr struct {
  Op op;
  const char* name;
} kOps[] = {
    {Op::kSimpleReenroll, "simplereenroll"},
    {Op::kSimpleEnroll, "simpleenroll"},
    {Op::kCaCerts, "cacerts"},
    {Op::kCsrAttrs, "csrattrs"},
};

bool ValidRequestId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

int64_t AsnTimeToUnix(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

std::optional<Op> ParseOp(std::string_view name) {
  for (const auto& o : kOps) {
    if (name == o.name) return o.op;
  }
  return std::nullopt;
}

const char* OpName(Op op) {
  for (const auto& o : kOps) {
    if (o.op == op) return o.name;
  }
  return "?";
}

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidRequest: return "InvalidRequest";
    case ErrorCode::kPayloadTooLarge: return "PayloadTooLarge";
    case ErrorCode::kInvalidCsr: return "InvalidCsr";
    case ErrorCode::kKeyPolicy: return "KeyPolicy";
    case ErrorCode::kSubjectMismatch: return "SubjectMismatch";
    case ErrorCode::kIdentityMismatch: return "IdentityMismatch";
    case ErrorCode::kNotYetRenewable: return "NotYetRenewable";
    case ErrorCode::kRateLimited: return "RateLimited";
    case ErrorCode::kRequestPending: return "RequestPending";
    case ErrorCode::kUpstreamRejected: return "UpstreamRejected";
    case ErrorCode::kUpstreamUnavailable: return "UpstreamUnavailable";
    case ErrorCode::kIssuedCertificateInvalid: return "IssuedCertificateInvalid";
    case ErrorCode::kUnsupportedOperation: return "UnsupportedOperation";
    case ErrorCode::kInternalError: return "InternalError";
  }
  return "InternalError";
}

std::optional<ErrorCode> ParseErrorCode(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(ErrorCode::kInternalError); ++i) {
    const auto code = static_cast<ErrorCode>(i);
    if (name == ErrorCodeName(code)) return code;
  }
  return std::nullopt;
}

int DefaultStatus(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidRequest: return 400;
    case ErrorCode::kPayloadTooLarge: return 413;
    case ErrorCode::kInvalidCsr: return 400;
    case ErrorCode::kKeyPolicy: return 400;
    case ErrorCode::kSubjectMismatch: return 403;
    case ErrorCode::kIdentityMismatch: return 403;
    case ErrorCode::kNotYetRenewable: return 409;
    case ErrorCode::kRateLimited: return 429;
    case ErrorCode::kRequestPending: return 202;
    case ErrorCode::kUpstreamRejected: return 502;
    case ErrorCode::kUpstreamUnavailable: return 503;
    case ErrorCode::kIssuedCertificateInvalid: return 502;
    case ErrorCode::kUnsupportedOperation: return 404;
    case ErrorCode::kInternalError: return 500;
  }
  return 500;
}

Rejection Reject(ErrorCode code, std::string message, int64_t retry_after_s) {
  return Rejection{code, DefaultStatus(code), std::move(message), retry_after_s};
}

bool SplitRequestTopic(std::string_view prefix, std::string_view topic, std::string* id, std::string* op) {
  if (topic.size() <= prefix.size() + 1 || topic.substr(0, prefix.size()) != prefix || topic[prefix.size()] != '/') {
    return false;
  }
  std::string_view rest = topic.substr(prefix.size() + 1);
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == rest.size()) return false;
  std::string_view op_part = rest.substr(slash + 1);
  if (op_part.find('/') != std::string_view::npos) return false;
  *id = std::string(rest.substr(0, slash));
  *op = std::string(op_part);
  return true;
}

bool ResponseTopicAllowed(std::string_view prefix, std::string_view id, std::string_view rt) {
  if (id.empty()) return false;
  const std::string base = std::string(prefix) + "/" + std::string(id) + "/";
  if (rt.size() <= base.size() || rt.substr(0, base.size()) != base) return false;
  std::string_view rest = rt.substr(base.size());
  if (rest.find_first_of(std::string_view("+#\0", 3)) != std::string_view::npos) return false;
  // At least two levels below {id}: never shaped like a request topic.
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return false;
  // No empty levels.
  size_t start = 0;
  while (start <= rest.size()) {
    const size_t end = rest.find('/', start);
    const size_t len = (end == std::string_view::npos ? rest.size() : end) - start;
    if (len == 0) return false;
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return true;
}

bool ParseRequest(std::string_view body, bool needs_csr, Request* out, std::string* why) {
  *out = Request{};
  std::string_view trimmed = body;
  while (!trimmed.empty() && (trimmed.front() == ' ' || trimmed.front() == '\n' || trimmed.front() == '\r' ||
                              trimmed.front() == '\t')) {
    trimmed.remove_prefix(1);
  }
  json j;
  if (trimmed.empty()) {
    j = json::object();
  } else {
    j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      *why = "the payload is not JSON";
      return false;
    }
  }
  if (!j.is_object()) {
    *why = "the payload must be a JSON object";
    return false;
  }
  if (auto it = j.find("requestId"); it != j.end()) {
    if (!it->is_string() || !ValidRequestId(it->get<std::string>())) {
      *why = "requestId must be a string of 1 to 64 printable ASCII characters";
      return false;
    }
    out->request_id = it->get<std::string>();
  }
  if (auto it = j.find("csr"); it != j.end()) {
    if (!it->is_string()) {
      *why = "csr must be a string (PEM or base64 DER)";
      return false;
    }
    out->csr = it->get<std::string>();
  }
  if (needs_csr && out->csr.empty()) {
    *why = "the request has no csr";
    return false;
  }
  return true;
}

std::string SalvageRequestId(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "";
  auto it = j.find("requestId");
  if (it == j.end() || !it->is_string()) return "";
  std::string id = it->get<std::string>();
  return ValidRequestId(id) ? id : "";
}

std::string CertPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return "";
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string Rfc3339(int64_t unix_seconds) {
  const time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Issued DescribeIssued(X509* leaf, const std::vector<X509*>& chain) {
  Issued out;
  out.certificate_pem = CertPem(leaf);
  for (X509* c : chain) out.chain_pem += CertPem(c);
  if (BignumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), nullptr)); bn) {
    if (char* hex = BN_bn2hex(bn.get())) {
      out.serial = hex;
      OPENSSL_free(hex);
    }
  }
  out.not_before = Rfc3339(AsnTimeToUnix(X509_get0_notBefore(leaf)));
  out.not_after = Rfc3339(AsnTimeToUnix(X509_get0_notAfter(leaf)));
  return out;
}

std::string AcceptedJson(std::string_view request_id, const Issued& issued) {
  json j = {{"requestId", std::string(request_id)},
            {"certificatePem", issued.certificate_pem},
            {"chainPem", issued.chain_pem},
            {"serialNumber", issued.serial},
            {"notBefore", issued.not_before},
            {"notAfter", issued.not_after}};
  return Dump(j);
}

std::string CaCertsJson(std::string_view request_id, const std::vector<X509*>& certs) {
  std::string pem;
  for (X509* c : certs) pem += CertPem(c);
  return Dump(json{{"requestId", std::string(request_id)}, {"caCertificatesPem", pem}});
}

std::string CsrAttrsJson(std::string_view request_id, std::string_view der) {
  return Dump(json{{"requestId", std::string(request_id)}, {"csrAttrs", Base64Encode(der)}});
}

std::string RejectedJson(std::string_view request_id, const Rejection& r) {
  json j = {{"requestId", std::string(request_id)},
            {"statusCode", r.status},
            {"errorCode", ErrorCodeName(r.code)},
            {"errorMessage", r.message},
            {"retryAfter", r.retry_after_s}};
  return Dump(j);
}

}  // namespace certacl::enroll
