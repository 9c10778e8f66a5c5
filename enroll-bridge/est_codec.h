// est_codec.h: the bodies EST (RFC 7030, as updated by RFC 8951) carries,
// decoded leniently where real servers differ and strictly everywhere else.
//
//  - DecodeEstBase64: base64 with any whitespace or line breaks (RFC 8951
//    section 3: a receiver must accept them); other characters are errors.
//  - CertsFromPkcs7: a certs-only CMC Simple PKI Response (the body of
//    /cacerts and of /simpleenroll and /simplereenroll), as base64 or as
//    raw DER, into its certificates, in the order given (which means
//    nothing: pick the leaf by key, see local_ca.h).
//  - MediaType: "application/pkcs7-mime; smime-type=certs-only" ->
//    "application/pkcs7-mime" (parameters and case do not count).
//
// Pure, thread-safe.
#ifndef CERTACL_ENROLL_BRIDGE_EST_CODEC_H_
#define CERTACL_ENROLL_BRIDGE_EST_CODEC_H_

#include <string>
#include <string_view>
#include <vector>

#include "policy/openssl_ptr.h"

namespace certacl::enroll {

bool DecodeEstBase64(std::string_view text, std::string* out);

// False with *why if the body is not a PKCS#7 SignedData holding at least
// one certificate.
bool CertsFromPkcs7(std::string_view body, std::vector<X509Ptr>* certs, std::string* why);

// The lower-cased type/subtype of a Content-Type header value.
std::string MediaType(std::string_view content_type);

}  // namespace certacl::enroll

#endif  // CERTACL_ENROLL_BRIDGE_EST_CODEC_H_
