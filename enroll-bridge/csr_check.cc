// csr_check.cc: see csr_check.h.
#include "enroll-bridge/csr_check.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <vector>

#include "enroll-bridge/est_codec.h"

namespace certacl::enroll {
namespace {

constexpr const char* kChangeSubjectNameOid = "1.3.6.1.5.5.7.7.36";  // id-cmc-changeSubjectName (RFC 6402)

CsrCheckResult Fail(CsrError e, std::string reason) {
  CsrCheckResult r;
  r.error = e;
  r.reason = std::move(reason);
  return r;
}

std::string KeyDescription(EVP_PKEY* key) {
  char group[64] = "";
  size_t len = 0;
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_EC:
      if (EVP_PKEY_get_group_name(key, group, sizeof group, &len) == 1) return std::string("EC ") + group;
      return "EC (unknown curve)";
    case EVP_PKEY_RSA: return "RSA-" + std::to_string(EVP_PKEY_get_bits(key));
    case EVP_PKEY_ED25519: return "Ed25519";
    case EVP_PKEY_ED448: return "Ed448";
    default: return OBJ_nid2sn(EVP_PKEY_get_base_id(key));
  }
}

bool KeyAllowed(EVP_PKEY* key, const KeyPolicy& policy) {
  char group[64] = "";
  size_t len = 0;
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_EC: {
      if (EVP_PKEY_get_group_name(key, group, sizeof group, &len) != 1) return false;
      const std::string g = group;
      return (policy.allow_ec_p256 && g == "prime256v1") || (policy.allow_ec_p384 && g == "secp384r1");
    }
    case EVP_PKEY_RSA: return policy.min_rsa_bits > 0 && EVP_PKEY_get_bits(key) >= policy.min_rsa_bits;
    case EVP_PKEY_ED25519: return policy.allow_ed25519;
    default: return false;
  }
}

std::string AllowedKeys(const KeyPolicy& p) {
  std::string s;
  auto add = [&](const std::string& k) { s += (s.empty() ? "" : ", ") + k; };
  if (p.allow_ec_p256) add("EC P-256");
  if (p.allow_ec_p384) add("EC P-384");
  if (p.min_rsa_bits > 0) add("RSA >= " + std::to_string(p.min_rsa_bits));
  if (p.allow_ed25519) add("Ed25519");
  return s.empty() ? "none" : s;
}

std::string NameText(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string("(empty)");
}

}  // namespace

bool SameNameSet(const GENERAL_NAMES* a, const GENERAL_NAMES* b) {
  auto contains = [](const GENERAL_NAMES* set, GENERAL_NAME* n) {
    for (int i = 0; set && i < sk_GENERAL_NAME_num(set); ++i) {
      if (GENERAL_NAME_cmp(sk_GENERAL_NAME_value(set, i), n) == 0) return true;
    }
    return false;
  };
  for (int i = 0; a && i < sk_GENERAL_NAME_num(a); ++i) {
    if (!contains(b, sk_GENERAL_NAME_value(a, i))) return false;
  }
  for (int i = 0; b && i < sk_GENERAL_NAME_num(b); ++i) {
    if (!contains(a, sk_GENERAL_NAME_value(b, i))) return false;
  }
  return true;
}

const char* CsrErrorName(CsrError e) {
  switch (e) {
    case CsrError::kNone: return "";
    case CsrError::kInvalidCsr: return "InvalidCsr";
    case CsrError::kKeyPolicy: return "KeyPolicy";
    case CsrError::kSubjectMismatch: return "SubjectMismatch";
  }
  return "InvalidCsr";
}

X509ReqPtr DecodeCsr(std::string_view text, size_t max_bytes, std::string* why) {
  if (text.size() > max_bytes) {
    *why = "the CSR is " + std::to_string(text.size()) + " bytes, more than the limit of " + std::to_string(max_bytes);
    return nullptr;
  }
  OpenSslErrorMark mark;
  if (text.find("-----BEGIN") != std::string_view::npos) {
    BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    X509ReqPtr req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
    if (!req) *why = "not a PEM certificate request";
    return req;
  }
  std::string der;
  if (!DecodeEstBase64(text, &der)) {
    *why = "neither PEM nor base64 DER";
    return nullptr;
  }
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  X509ReqPtr req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())));
  if (!req) {
    *why = "the base64 text is not a DER certificate request";
    return nullptr;
  }
  if (p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    *why = "trailing bytes after the DER certificate request";
    return nullptr;
  }
  return req;
}

CsrCheckResult CheckRenewalCsr(std::string_view text, X509* current, const CsrCheckOptions& options) {
  std::string why;
  X509ReqPtr csr = DecodeCsr(text, options.max_bytes, &why);
  if (!csr) return Fail(CsrError::kInvalidCsr, why);
  OpenSslErrorMark mark;

  EVP_PKEY* key = X509_REQ_get0_pubkey(csr.get());
  if (!key) return Fail(CsrError::kInvalidCsr, "the CSR's public key cannot be read");
  if (X509_REQ_verify(csr.get(), key) != 1) {
    return Fail(CsrError::kInvalidCsr, "the CSR's signature does not verify with its own key (no proof of possession)");
  }
  if (!KeyAllowed(key, options.keys)) {
    return Fail(CsrError::kKeyPolicy, "a " + KeyDescription(key) + " key is not allowed (allowed: " +
                                          AllowedKeys(options.keys) + ")");
  }

  // Attributes: no identity change, and no challengePassword unless an RA
  // passes it on.
  for (int i = 0; i < X509_REQ_get_attr_count(csr.get()); ++i) {
    X509_ATTRIBUTE* attr = X509_REQ_get_attr(csr.get(), i);
    const ASN1_OBJECT* obj = X509_ATTRIBUTE_get0_object(attr);
    char oid[80];
    OBJ_obj2txt(oid, sizeof oid, obj, 1);
    if (std::string_view(oid) == kChangeSubjectNameOid) {
      return Fail(CsrError::kSubjectMismatch, "the CSR asks for ChangeSubjectName: a renewal keeps the identity");
    }
    if (OBJ_obj2nid(obj) == NID_pkcs9_challengePassword && !options.ra_mode) {
      return Fail(CsrError::kInvalidCsr, "the CSR carries a challengePassword, which is only passed on in RA mode");
    }
  }

  // RFC 7030 section 4.2.2: Subject and subjectAltName identical to the
  // certificate being renewed. Names compare canonically (X509_NAME_cmp).
  const X509_NAME* want = X509_get_subject_name(current);
  const X509_NAME* got = X509_REQ_get_subject_name(csr.get());
  if (X509_NAME_cmp(got, want) != 0) {
    return Fail(CsrError::kSubjectMismatch,
                "the CSR's subject \"" + NameText(got) + "\" differs from the certificate's \"" + NameText(want) + "\"");
  }
  GeneralNamesPtr current_sans(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(current, NID_subject_alt_name, nullptr, nullptr)));
  GeneralNamesPtr csr_sans;
  ExtensionStackPtr exts(X509_REQ_get_extensions(csr.get()));
  for (int i = 0; exts && i < sk_X509_EXTENSION_num(exts.get()); ++i) {
    X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts.get(), i);
    if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_alt_name) continue;
    if (csr_sans) return Fail(CsrError::kInvalidCsr, "the CSR requests subjectAltName twice");
    csr_sans.reset(static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(ext)));
    if (!csr_sans) return Fail(CsrError::kInvalidCsr, "the CSR's subjectAltName cannot be parsed");
  }
  if (!SameNameSet(current_sans.get(), csr_sans.get())) {
    return Fail(CsrError::kSubjectMismatch,
                "the CSR's subjectAltName differs from the certificate's (compared as a set)");
  }

  CsrCheckResult ok;
  ok.csr = std::move(csr);
  return ok;
}

}  // namespace certacl::enroll
