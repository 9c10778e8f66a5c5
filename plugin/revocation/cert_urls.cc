// cert_urls.cc: see cert_urls.h.
#include "plugin/revocation/cert_urls.h"

#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <algorithm>

#include "policy/openssl_ptr.h"

namespace certacl::revocation {
namespace {

using AiaPtr = OpenSslPtr<AUTHORITY_INFO_ACCESS, AUTHORITY_INFO_ACCESS_free>;
using CdpPtr = OpenSslPtr<CRL_DIST_POINTS, CRL_DIST_POINTS_free>;

// Appends `name` when it is a usable URI and the list has room.
void AddUri(const GENERAL_NAME* name, std::vector<std::string>* out) {
  if (out->size() >= kMaxCertUrls || name == nullptr || name->type != GEN_URI) return;
  const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
  const int len = ASN1_STRING_length(uri);
  if (len <= 0 || static_cast<size_t>(len) > kMaxCertUrlLength) return;
  const auto* data = reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri));
  std::string s(data, static_cast<size_t>(len));
  if (!std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; })) return;
  out->push_back(std::move(s));
}

}  // namespace

std::vector<std::string> OcspUrls(const X509* cert) {
  std::vector<std::string> urls;
  if (cert == nullptr) return urls;
  AiaPtr aia(static_cast<AUTHORITY_INFO_ACCESS*>(X509_get_ext_d2i(cert, NID_info_access, nullptr, nullptr)));
  if (!aia) return urls;
  for (int i = 0; i < sk_ACCESS_DESCRIPTION_num(aia.get()); ++i) {
    const ACCESS_DESCRIPTION* ad = sk_ACCESS_DESCRIPTION_value(aia.get(), i);
    if (OBJ_obj2nid(ad->method) == NID_ad_OCSP) AddUri(ad->location, &urls);
  }
  return urls;
}

std::vector<std::string> CrlUrls(const X509* cert) {
  std::vector<std::string> urls;
  if (cert == nullptr) return urls;
  CdpPtr cdp(static_cast<CRL_DIST_POINTS*>(X509_get_ext_d2i(cert, NID_crl_distribution_points, nullptr, nullptr)));
  if (!cdp) return urls;
  for (int i = 0; i < sk_DIST_POINT_num(cdp.get()); ++i) {
    const DIST_POINT* dp = sk_DIST_POINT_value(cdp.get(), i);
    if (dp->distpoint == nullptr || dp->distpoint->type != 0 || dp->CRLissuer != nullptr) continue;
    const GENERAL_NAMES* names = dp->distpoint->name.fullname;
    for (int j = 0; j < sk_GENERAL_NAME_num(names); ++j) AddUri(sk_GENERAL_NAME_value(names, j), &urls);
  }
  return urls;
}

}  // namespace certacl::revocation
