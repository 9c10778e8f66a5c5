// est_codec.cc: see est_codec.h.
#include "enroll-bridge/est_codec.h"

#include <openssl/evp.h>
#include <openssl/pkcs7.h>

#include <cctype>

namespace certacl::enroll {

using Pkcs7Ptr = OpenSslPtr<PKCS7, PKCS7_free>;

bool DecodeEstBase64(std::string_view text, std::string* out) {
  std::string clean;
  clean.reserve(text.size());
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && c != '=') return false;
    clean += c;
  }
  if (clean.empty() || clean.size() % 4 != 0) return false;
  const size_t pad = clean.size() - clean.find_last_not_of('=') - 1;
  if (pad > 2 || clean.find('=') < clean.size() - pad) return false;
  out->assign(clean.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out->data()),
                                reinterpret_cast<const unsigned char*>(clean.data()), static_cast<int>(clean.size()));
  if (n < 0) return false;
  out->resize(static_cast<size_t>(n) - pad);
  return true;
}

bool CertsFromPkcs7(std::string_view body, std::vector<X509Ptr>* certs, std::string* why) {
  OpenSslErrorMark mark;
  std::string der;
  // DER starts with a SEQUENCE tag; anything else is taken as base64.
  if (!body.empty() && static_cast<unsigned char>(body[0]) == 0x30) {
    der.assign(body);
  } else if (!DecodeEstBase64(body, &der)) {
    *why = "the body is neither base64 nor DER";
    return false;
  }
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  Pkcs7Ptr p7(d2i_PKCS7(nullptr, &p, static_cast<long>(der.size())));
  if (!p7 || p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    *why = "the body is not a DER PKCS#7 structure";
    return false;
  }
  if (!PKCS7_type_is_signed(p7.get()) || !p7->d.sign || !p7->d.sign->cert) {
    *why = "the PKCS#7 structure holds no certificates (not a certs-only SignedData)";
    return false;
  }
  certs->clear();
  for (int i = 0; i < sk_X509_num(p7->d.sign->cert); ++i) {
    X509* c = sk_X509_value(p7->d.sign->cert, i);
    X509_up_ref(c);
    certs->emplace_back(c);
  }
  if (certs->empty()) {
    *why = "the PKCS#7 structure holds no certificates";
    return false;
  }
  return true;
}

std::string MediaType(std::string_view content_type) {
  const size_t semi = content_type.find(';');
  std::string_view t = content_type.substr(0, semi);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.remove_prefix(1);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.remove_suffix(1);
  std::string out;
  for (char c : t) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace certacl::enroll
