// ocsp.cc: see ocsp.h.
#include "plugin/revocation/ocsp.h"

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <climits>
#include <ctime>
#include <vector>

#include "policy/openssl_ptr.h"

namespace certacl::revocation {
namespace {

using OcspRequestPtr = OpenSslPtr<OCSP_REQUEST, OCSP_REQUEST_free>;
using OcspResponsePtr = OpenSslPtr<OCSP_RESPONSE, OCSP_RESPONSE_free>;
using OcspBasicPtr = OpenSslPtr<OCSP_BASICRESP, OCSP_BASICRESP_free>;
using OcspCertIdPtr = OpenSslPtr<OCSP_CERTID, OCSP_CERTID_free>;

// Leaves this thread's OpenSSL error queue empty on entry and exit, so the
// errors read after a failure are ours and none leak to the caller.
class ErrorQueueScope {
 public:
  ErrorQueueScope() { ERR_clear_error(); }
  ~ErrorQueueScope() { ERR_clear_error(); }
  ErrorQueueScope(const ErrorQueueScope&) = delete;
  ErrorQueueScope& operator=(const ErrorQueueScope&) = delete;
};

// Drains the error queue into "reason (data); reason ..." ("" if empty);
// *ocsp_reasons gets the reason codes of the OCSP-library errors.
std::string DrainErrors(std::vector<int>* ocsp_reasons = nullptr) {
  std::string text;
  const char* data = nullptr;
  int flags = 0;
  while (unsigned long e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
    if (ocsp_reasons != nullptr && ERR_GET_LIB(e) == ERR_LIB_OCSP) ocsp_reasons->push_back(ERR_GET_REASON(e));
    if (!text.empty()) text += "; ";
    const char* reason = ERR_reason_error_string(e);
    text += reason != nullptr ? reason : "error " + std::to_string(ERR_GET_REASON(e));
    if (data != nullptr && (flags & ERR_TXT_STRING) != 0 && *data != '\0') {
      text += " (";
      text += data;
      text += ")";
    }
  }
  return text;
}

const char* ResponseStatusName(int status) {
  switch (status) {
    case OCSP_RESPONSE_STATUS_MALFORMEDREQUEST:
      return "malformedRequest";
    case OCSP_RESPONSE_STATUS_INTERNALERROR:
      return "internalError";
    case OCSP_RESPONSE_STATUS_TRYLATER:
      return "tryLater";
    case OCSP_RESPONSE_STATUS_SIGREQUIRED:
      return "sigRequired";
    case OCSP_RESPONSE_STATUS_UNAUTHORIZED:
      return "unauthorized";
    default:
      return nullptr;
  }
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool ToUnix(const ASN1_TIME* t, int64_t* out) {
  tm parts{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &parts) != 1) return false;
  *out = DaysFromCivil(int64_t{parts.tm_year} + 1900, int64_t{parts.tm_mon} + 1, parts.tm_mday) * 86400 +
         int64_t{parts.tm_hour} * 3600 + int64_t{parts.tm_min} * 60 + parts.tm_sec;
  return true;
}

std::string Iso(int64_t unix_seconds) {
  const auto t = static_cast<time_t>(unix_seconds);
  tm parts{};
  if (gmtime_r(&t, &parts) == nullptr) return std::to_string(unix_seconds);
  char buf[32];
  if (strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &parts) == 0) return std::to_string(unix_seconds);
  return buf;
}

std::string SerialHex(OCSP_CERTID* id) {
  ASN1_INTEGER* serial = nullptr;
  if (OCSP_id_get0_info(nullptr, nullptr, nullptr, &serial, id) != 1 || serial == nullptr) return "?";
  BignumPtr bn(ASN1_INTEGER_to_BN(serial, nullptr));
  if (!bn) return "?";
  OpenSslString hex(BN_bn2hex(bn.get()));
  return hex ? std::string(hex.get()) : "?";
}

std::string OctetString(const ASN1_OCTET_STRING* s) {
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
}

// OCSP_basic_verify's failure as one of our messages.
std::string SignerError() {
  std::vector<int> reasons;
  const std::string detail = DrainErrors(&reasons);
  auto has = [&reasons](int r) { return std::find(reasons.begin(), reasons.end(), r) != reasons.end(); };
  if (has(OCSP_R_SIGNER_CERTIFICATE_NOT_FOUND)) {
    return "OCSP response signer certificate not found (not in the response and not the issuer)";
  }
  if (has(OCSP_R_SIGNATURE_FAILURE) || has(OCSP_R_NO_SIGNER_KEY)) return "OCSP response signature is invalid";
  return "OCSP response signer is not authorized: " +
         (detail.empty() ? std::string("neither the issuer nor a responder it delegated to") : detail);
}

}  // namespace

const char* CertStatusName(CertStatus status) {
  switch (status) {
    case CertStatus::kGood:
      return "good";
    case CertStatus::kRevoked:
      return "revoked";
    case CertStatus::kUnknown:
      return "unknown";
  }
  return "?";
}

OcspRequest::~OcspRequest() = default;

std::unique_ptr<OcspRequest> OcspRequest::Create(const X509* leaf, const X509* issuer, bool nonce,
                                                 std::string* error) {
  ErrorQueueScope errors;
  if (leaf == nullptr || issuer == nullptr) {
    *error = "an OCSP request needs the certificate and its issuer";
    return nullptr;
  }
  if (X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(issuer)) != 0) {
    *error = "cannot build an OCSP request: the issuer certificate's subject is not the certificate's issuer name";
    return nullptr;
  }
  std::unique_ptr<OcspRequest> result(new OcspRequest());
  OcspRequestPtr req(OCSP_REQUEST_new());
  OcspCertIdPtr id(OCSP_cert_to_id(nullptr, leaf, issuer));  // SHA-1
  if (!req || !id) {
    *error = "cannot build an OCSP CertID: " + DrainErrors();
    return nullptr;
  }
  result->id_.reset(OCSP_CERTID_dup(id.get()));
  if (!result->id_ || OCSP_request_add0_id(req.get(), id.get()) == nullptr) {
    *error = "cannot build an OCSP request: " + DrainErrors();
    return nullptr;
  }
  static_cast<void>(id.release());  // owned by req now
  if (nonce) {
    if (OCSP_request_add1_nonce(req.get(), nullptr, -1) != 1) {
      *error = "cannot add an OCSP nonce: " + DrainErrors();
      return nullptr;
    }
    const int idx = OCSP_REQUEST_get_ext_by_NID(req.get(), NID_id_pkix_OCSP_Nonce, -1);
    X509_EXTENSION* ext = idx >= 0 ? OCSP_REQUEST_get_ext(req.get(), idx) : nullptr;
    if (ext == nullptr) {
      *error = "cannot add an OCSP nonce";
      return nullptr;
    }
    result->nonce_ = OctetString(X509_EXTENSION_get_data(ext));
  }
  const int len = i2d_OCSP_REQUEST(req.get(), nullptr);
  if (len <= 0) {
    *error = "cannot encode the OCSP request: " + DrainErrors();
    return nullptr;
  }
  result->der_.resize(static_cast<size_t>(len));
  auto* p = reinterpret_cast<unsigned char*>(result->der_.data());
  if (i2d_OCSP_REQUEST(req.get(), &p) != len) {
    *error = "cannot encode the OCSP request: " + DrainErrors();
    return nullptr;
  }
  return result;
}

bool VerifyOcspResponse(std::string_view der, const OcspRequest& request, X509* issuer, int64_t now,
                        int64_t skew_s, int64_t max_age_s, OcspAnswer* out, std::string* error) {
  ErrorQueueScope errors;
  auto fail = [error](std::string why) {
    *error = std::move(why);
    return false;
  };
  if (issuer == nullptr) return fail("OCSP response cannot be checked without the issuer certificate");
  if (der.empty()) return fail("OCSP response is not DER (empty)");
  if (der.size() > static_cast<size_t>(LONG_MAX)) return fail("OCSP response is not DER (too large)");

  // 1. Envelope.
  const auto* begin = reinterpret_cast<const unsigned char*>(der.data());
  const unsigned char* p = begin;
  OcspResponsePtr response(d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(der.size())));
  if (!response) return fail("OCSP response is not DER");
  if (p != begin + der.size()) {
    return fail("OCSP response is not DER (" + std::to_string(begin + der.size() - p) + " trailing bytes)");
  }
  const int response_status = OCSP_response_status(response.get());
  if (response_status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
    const char* name = ResponseStatusName(response_status);
    return fail(std::string("OCSP responder says ") +
                (name != nullptr ? name : "status " + std::to_string(response_status)));
  }
  OcspBasicPtr basic(OCSP_response_get1_basic(response.get()));
  if (!basic) return fail("OCSP response is not a basic OCSP response");

  // 2. Signature and signer authorisation, with `issuer` as the only anchor.
  //    `issuer` is also offered as a candidate signer, for responses the CA
  //    signs itself without embedding its certificate. OCSP_NOEXPLICIT: a
  //    signer that is neither the issuer nor its delegate is refused even if
  //    the issuer certificate carries explicit OCSP-signing trust settings.
  X509StorePtr store(X509_STORE_new());
  X509RefStackPtr extra(sk_X509_new_null());
  if (!store || !extra || X509_STORE_add_cert(store.get(), issuer) != 1 ||
      X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN) != 1 || sk_X509_push(extra.get(), issuer) <= 0) {
    return fail("cannot set up OCSP verification: " + DrainErrors());
  }
  if (OCSP_basic_verify(basic.get(), extra.get(), store.get(), OCSP_NOEXPLICIT) != 1) return fail(SignerError());

  // 3. Nonce: a different one is an error, none is accepted.
  if (request.has_nonce()) {
    const int idx = OCSP_BASICRESP_get_ext_by_NID(basic.get(), NID_id_pkix_OCSP_Nonce, -1);
    if (idx >= 0 && OctetString(X509_EXTENSION_get_data(OCSP_BASICRESP_get_ext(basic.get(), idx))) != request.nonce()) {
      return fail("OCSP response nonce does not match the request");
    }
  }

  // 4. The answer for our CertID.
  OcspCertIdPtr id(OCSP_CERTID_dup(request.cert_id()));
  if (!id) return fail("out of memory");
  int status = -1;
  int reason = -1;
  ASN1_GENERALIZEDTIME* revoked_at = nullptr;
  ASN1_GENERALIZEDTIME* this_update = nullptr;
  ASN1_GENERALIZEDTIME* next_update = nullptr;
  if (OCSP_resp_find_status(basic.get(), id.get(), &status, &reason, &revoked_at, &this_update, &next_update) != 1) {
    return fail("OCSP response has no answer for this certificate (serial " + SerialHex(id.get()) + ")");
  }
  OcspAnswer answer;
  switch (status) {
    case V_OCSP_CERTSTATUS_GOOD:
      answer.status = CertStatus::kGood;
      break;
    case V_OCSP_CERTSTATUS_REVOKED:
      answer.status = CertStatus::kRevoked;
      answer.reason = reason;
      if (!ToUnix(revoked_at, &answer.revoked_at)) return fail("OCSP response has a malformed revocationTime");
      break;
    case V_OCSP_CERTSTATUS_UNKNOWN:
      answer.status = CertStatus::kUnknown;
      break;
    default:
      return fail("OCSP response has an invalid certificate status");
  }

  // 5. Freshness against the injected clock.
  if (!ToUnix(this_update, &answer.this_update)) return fail("OCSP response has a malformed thisUpdate");
  if (next_update != nullptr && !ToUnix(next_update, &answer.next_update)) {
    return fail("OCSP response has a malformed nextUpdate");
  }
  const std::string at_now = " (now " + Iso(now) + ", allowed skew " + std::to_string(skew_s) + " s)";
  if (answer.this_update > now + skew_s) {
    return fail("OCSP response thisUpdate " + Iso(answer.this_update) + " is in the future" + at_now);
  }
  if (next_update != nullptr) {
    if (answer.next_update < answer.this_update) {
      return fail("OCSP response nextUpdate " + Iso(answer.next_update) + " is before its thisUpdate " +
                  Iso(answer.this_update));
    }
    if (answer.next_update < now - skew_s) {
      return fail("OCSP response is stale: nextUpdate " + Iso(answer.next_update) + " is before now" + at_now);
    }
  } else if (max_age_s >= 0 && answer.this_update < now - max_age_s) {
    return fail("OCSP response is stale: no nextUpdate and thisUpdate " + Iso(answer.this_update) + " is more than " +
                std::to_string(max_age_s) + " s old" + at_now);
  }
  *out = answer;
  return true;
}

}  // namespace certacl::revocation
