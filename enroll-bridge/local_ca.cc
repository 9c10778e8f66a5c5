// local_ca.cc: see local_ca.h.
#include "enroll-bridge/local_ca.h"

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>
#include <tuple>

#include "enroll-bridge/csr_check.h"

namespace certacl::enroll {
namespace {

bool AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

}  // namespace

std::unique_ptr<LocalCa> LocalCa::Load(const std::string& cert_file, const std::string& key_file, std::string* error) {
  OpenSslErrorMark mark;
  BioPtr cert_bio(BIO_new_file(cert_file.c_str(), "r"));
  if (!cert_bio) {
    *error = "cannot read the CA certificate " + cert_file + ": " + std::strerror(errno);
    return nullptr;
  }
  X509Ptr cert(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    *error = cert_file + " holds no PEM certificate";
    return nullptr;
  }
  BioPtr key_bio(BIO_new_file(key_file.c_str(), "r"));
  if (!key_bio) {
    *error = "cannot read the CA key " + key_file + ": " + std::strerror(errno);
    return nullptr;
  }
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    *error = key_file + " holds no unencrypted PEM private key";
    return nullptr;
  }
  return FromObjects(cert.get(), key.get(), error);
}

std::unique_ptr<LocalCa> LocalCa::FromObjects(X509* cert, EVP_PKEY* key, std::string* error) {
  if (X509_check_private_key(cert, key) != 1) {
    ERR_clear_error();
    *error = "the CA key does not match the CA certificate";
    return nullptr;
  }
  if (X509_check_ca(cert) == 0) {
    *error = "the CA certificate is not a CA (basicConstraints CA:TRUE)";
    return nullptr;
  }
  std::unique_ptr<LocalCa> ca(new LocalCa());
  X509_up_ref(cert);
  ca->cert_.reset(cert);
  EVP_PKEY_up_ref(key);
  ca->key_.reset(key);
  return ca;
}

X509Ptr LocalCa::Issue(X509_REQ* csr, const CertProfile& profile, int64_t now, std::string* error) const {
  OpenSslErrorMark mark;
  X509Ptr cert(X509_new());
  EVP_PKEY* pub = X509_REQ_get0_pubkey(csr);
  unsigned char serial[16];
  if (!cert || !pub || RAND_bytes(serial, sizeof serial) != 1) {
    *error = "cannot prepare the certificate";
    return nullptr;
  }
  serial[0] = static_cast<unsigned char>((serial[0] & 0x7F) | 0x01);  // positive, 16 octets
  time_t t = static_cast<time_t>(now);
  BignumPtr bn(BN_bin2bn(serial, sizeof serial, nullptr));
  bool ok = X509_set_version(cert.get(), 2) == 1 && BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())) &&
            X509_set_issuer_name(cert.get(), X509_get_subject_name(cert_.get())) == 1 &&
            X509_set_subject_name(cert.get(), X509_REQ_get_subject_name(csr)) == 1 &&
            X509_set_pubkey(cert.get(), pub) == 1 &&
            X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, static_cast<long>(-profile.backdate_s), &t) &&
            X509_time_adj_ex(X509_getm_notAfter(cert.get()), static_cast<int>(profile.days), 0, &t);
  ok = ok && AddExtension(cert.get(), cert_.get(), NID_basic_constraints, "critical,CA:FALSE") &&
       (profile.key_usage.empty() ||
        AddExtension(cert.get(), cert_.get(), NID_key_usage, profile.key_usage.c_str())) &&
       (profile.extended_key_usage.empty() ||
        AddExtension(cert.get(), cert_.get(), NID_ext_key_usage, profile.extended_key_usage.c_str())) &&
       AddExtension(cert.get(), cert_.get(), NID_subject_key_identifier, "hash") &&
       AddExtension(cert.get(), cert_.get(), NID_authority_key_identifier, "keyid:always");
  if (ok) {
    ExtensionStackPtr exts(X509_REQ_get_extensions(csr));
    for (int i = 0; exts && i < sk_X509_EXTENSION_num(exts.get()); ++i) {
      X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts.get(), i);
      if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) == NID_subject_alt_name) {
        ok = ok && X509_add_ext(cert.get(), ext, -1) == 1;  // the SANs, as checked
      }
    }
  }
  if (!ok || X509_sign(cert.get(), key_.get(), EVP_PKEY_get_base_id(key_.get()) == EVP_PKEY_ED25519 ? nullptr
                                                                                                   : EVP_sha256()) <= 0) {
    *error = "signing the certificate failed";
    return nullptr;
  }
  return cert;
}

bool CheckProfile(const CertProfile& profile, std::string* why) {
  OpenSslErrorMark mark;
  for (const auto& [nid, value, name] : {std::tuple{NID_key_usage, &profile.key_usage, "key_usage"},
                                         std::tuple{NID_ext_key_usage, &profile.extended_key_usage,
                                                    "extended_key_usage"}}) {
    if (value->empty()) continue;
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, nullptr, nullptr, nullptr, nullptr, X509V3_CTX_TEST);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value->c_str());
    if (ext == nullptr) {
      *why = std::string(name) + " \"" + *value + "\" is not valid OpenSSL extension syntax (x509v3_config(5))";
      return false;
    }
    X509_EXTENSION_free(ext);
  }
  return true;
}

X509* PickLeafByKey(const std::vector<X509Ptr>& certs, EVP_PKEY* key) {
  for (const X509Ptr& c : certs) {
    EVP_PKEY* k = X509_get0_pubkey(c.get());
    if (k && EVP_PKEY_eq(k, key) == 1) return c.get();
  }
  return nullptr;
}

bool VerifyIssued(X509* leaf, const std::vector<X509Ptr>& certs, const std::vector<X509*>& anchors, X509_REQ* csr,
                  X509* current, int64_t now, std::string* why) {
  OpenSslErrorMark mark;
  EVP_PKEY* want = X509_REQ_get0_pubkey(csr);
  if (!leaf || !want || EVP_PKEY_eq(X509_get0_pubkey(leaf), want) != 1) {
    *why = "the issued certificate does not carry the CSR's public key";
    return false;
  }
  if (X509_NAME_cmp(X509_get_subject_name(leaf), X509_get_subject_name(current)) != 0) {
    *why = "the issued certificate's subject differs from the device's current certificate";
    return false;
  }
  GeneralNamesPtr leaf_sans(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr)));
  GeneralNamesPtr cur_sans(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(current, NID_subject_alt_name, nullptr, nullptr)));
  if (!SameNameSet(leaf_sans.get(), cur_sans.get())) {
    *why = "the issued certificate's subjectAltName differs from the device's current certificate";
    return false;
  }
  X509StorePtr store(X509_STORE_new());
  for (X509* a : anchors) X509_STORE_add_cert(store.get(), a);
  X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN);  // an intermediate may be the anchor
  X509RefStackPtr untrusted(sk_X509_new_null());
  for (const X509Ptr& c : certs) {
    if (c.get() != leaf) sk_X509_push(untrusted.get(), c.get());
  }
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted.get()) != 1) {
    *why = "cannot verify the issued certificate";
    return false;
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, static_cast<time_t>(now));
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT);
  if (X509_verify_cert(ctx.get()) != 1) {
    *why = std::string("the issued certificate does not chain to the expected CA: ") +
           X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
    return false;
  }
  return true;
}

}  // namespace certacl::enroll
