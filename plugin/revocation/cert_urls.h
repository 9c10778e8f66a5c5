// cert_urls.h: where a certificate says its revocation status can be found.
//
//   OcspUrls: the URIs of the authorityInfoAccess id-ad-ocsp entries.
//   CrlUrls:  the fullName URIs of the cRLDistributionPoints entries; points
//             given as nameRelativeToCRLIssuer and indirect points (with a
//             cRLIssuer) are skipped, since the CRL there is not signed by
//             the certificate's issuer.
//
// Every URI is returned as written in the certificate, in order, whatever its
// scheme (http, ldap, ...): the caller filters, and should not fetch URLs a
// client certificate names without an allow-list. Bounded: at most
// kMaxCertUrls per list; URIs longer than kMaxCertUrlLength or holding bytes
// outside printable ASCII are dropped. A missing or unparsable extension
// gives an empty list.
//
// Thread-safe (only reads the certificate).
#ifndef CERTACL_PLUGIN_REVOCATION_CERT_URLS_H_
#define CERTACL_PLUGIN_REVOCATION_CERT_URLS_H_

#include <openssl/x509.h>

#include <cstddef>
#include <string>
#include <vector>

namespace certacl::revocation {

inline constexpr size_t kMaxCertUrls = 8;
inline constexpr size_t kMaxCertUrlLength = 2048;

std::vector<std::string> OcspUrls(const X509* cert);
std::vector<std::string> CrlUrls(const X509* cert);

}  // namespace certacl::revocation

#endif  // CERTACL_PLUGIN_REVOCATION_CERT_URLS_H_
