// crypto.cc: see crypto.h.
#include "crypto.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <climits>
#include <ctime>

namespace device_renew {
namespace {

void FreeOpenSslBuffer(void* p) { OPENSSL_free(p); }
void FreeExtensionStack(STACK_OF(X509_EXTENSION) * s) { sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free); }
void FreeGeneralNames(GENERAL_NAMES* names) { GENERAL_NAMES_free(names); }

using BioPtr = OpenSslPtr<BIO, BIO_free>;
using X509NamePtr = OpenSslPtr<X509_NAME, X509_NAME_free>;
using ExtensionPtr = OpenSslPtr<X509_EXTENSION, X509_EXTENSION_free>;
using ExtensionStackPtr = OpenSslPtr<STACK_OF(X509_EXTENSION), FreeExtensionStack>;
using GeneralNamesPtr = OpenSslPtr<GENERAL_NAMES, FreeGeneralNames>;
using PkeyCtxPtr = OpenSslPtr<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using X509StorePtr = OpenSslPtr<X509_STORE, X509_STORE_free>;
using X509StoreCtxPtr = OpenSslPtr<X509_STORE_CTX, X509_STORE_CTX_free>;
using BignumPtr = OpenSslPtr<BIGNUM, BN_free>;
using OpenSslString = OpenSslPtr<char, FreeOpenSslBuffer>;
using OpenSslBytes = OpenSslPtr<unsigned char, FreeOpenSslBuffer>;
// Borrows its certificates: sk_X509_free does not free them.
void FreeX509RefStack(STACK_OF(X509) * s) { sk_X509_free(s); }
using X509RefStackPtr = OpenSslPtr<STACK_OF(X509), FreeX509RefStack>;

constexpr long kClockSkewSeconds = 300;

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

BioPtr ReadBio(std::string_view text) {
  if (text.size() > INT_MAX) return nullptr;
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

std::string NameDer(const X509_NAME* name) {
  unsigned char* raw = nullptr;
  const int len = i2d_X509_NAME(name, &raw);
  OpenSslBytes owned(raw);
  return len > 0 ? std::string(reinterpret_cast<char*>(raw), static_cast<size_t>(len)) : std::string();
}

// The DER value (the GeneralNames) of the certificate's subjectAltName
// extension, with its critical flag; nullptr if it has none.
X509_EXTENSION* SanExtension(X509* cert) {
  const int idx = X509_get_ext_by_NID(cert, NID_subject_alt_name, -1);
  return idx < 0 ? nullptr : X509_get_ext(cert, idx);
}

GeneralNamesPtr SanOfCertificate(X509* cert) {
  return GeneralNamesPtr(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
}

// Both lists hold the same names (order and repetitions aside).
bool SameNameSet(GENERAL_NAMES* a, GENERAL_NAMES* b) {
  auto contains = [](GENERAL_NAMES* set, GENERAL_NAME* name) {
    for (int i = 0; i < sk_GENERAL_NAME_num(set); ++i) {
      if (GENERAL_NAME_cmp(sk_GENERAL_NAME_value(set, i), name) == 0) return true;
    }
    return false;
  };
  const int na = a == nullptr ? 0 : sk_GENERAL_NAME_num(a);
  const int nb = b == nullptr ? 0 : sk_GENERAL_NAME_num(b);
  if (na == 0 || nb == 0) return na == nb;
  for (int i = 0; i < na; ++i) {
    if (!contains(b, sk_GENERAL_NAME_value(a, i))) return false;
  }
  for (int i = 0; i < nb; ++i) {
    if (!contains(a, sk_GENERAL_NAME_value(b, i))) return false;
  }
  return true;
}

std::string ExtensionValueDer(X509_EXTENSION* ext) {
  if (ext == nullptr) return "";
  const ASN1_OCTET_STRING* v = X509_EXTENSION_get_data(ext);
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(v)), static_cast<size_t>(ASN1_STRING_length(v)));
}

// The subjectAltName extension of a CSR (DER value and critical flag) as
// "" / "critical:" + DER, to compare with a certificate's.
std::string CsrSanFingerprint(X509_REQ* csr) {
  ExtensionStackPtr exts(X509_REQ_get_extensions(csr));
  if (exts == nullptr) return "";
  for (int i = 0; i < sk_X509_EXTENSION_num(exts.get()); ++i) {
    X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts.get(), i);
    if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) == NID_subject_alt_name) {
      return (X509_EXTENSION_get_critical(ext) ? "critical:" : "plain:") + ExtensionValueDer(ext);
    }
  }
  return "";
}

std::string CertSanFingerprint(X509* cert) {
  X509_EXTENSION* ext = SanExtension(cert);
  if (ext == nullptr) return "";
  return (X509_EXTENSION_get_critical(ext) ? "critical:" : "plain:") + ExtensionValueDer(ext);
}

}  // namespace

std::optional<KeyType> ParseKeyType(std::string_view name) {
  if (name == "ec-p256") return KeyType::kEcP256;
  if (name == "ec-p384") return KeyType::kEcP384;
  if (name == "rsa-2048") return KeyType::kRsa2048;
  return std::nullopt;
}

std::string OpenSslErrors() {
  std::string text;
  char buf[256];
  while (const unsigned long e = ERR_get_error()) {
    ERR_error_string_n(e, buf, sizeof buf);
    text += (text.empty() ? "" : "; ") + std::string(buf);
  }
  return text.empty() ? "no OpenSSL error queued" : text;
}

// --- certificates ------------------------------------------------------------

std::vector<X509Ptr> ReadCertificatesPem(std::string_view pem) {
  std::vector<X509Ptr> certs;
  BioPtr bio = ReadBio(pem);
  if (bio == nullptr) return certs;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) certs.emplace_back(cert);
  ERR_clear_error();  // the read that ends the loop queues "no start line"
  return certs;
}

std::string CertificatePem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_X509(bio.get(), cert) != 1) return "";
  return BioText(bio.get());
}

std::string ClientCertificateFilePem(X509* leaf, const std::vector<X509Ptr>& chain) {
  std::string pem = CertificatePem(leaf);
  for (const X509Ptr& c : chain) {
    const bool self_issued = X509_NAME_cmp(X509_get_subject_name(c.get()), X509_get_issuer_name(c.get())) == 0;
    if (!self_issued && X509_cmp(c.get(), leaf) != 0) pem += CertificatePem(c.get());
  }
  return pem;
}

std::string CommonName(X509* cert) {
  const X509_NAME* subject = X509_get_subject_name(cert);
  const int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (idx < 0) return "";
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx)));
  OpenSslBytes owned(utf8);
  return len > 0 ? std::string(reinterpret_cast<char*>(utf8), static_cast<size_t>(len)) : std::string();
}

std::string SerialHex(X509* cert) {
  BignumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (bn == nullptr) return "?";
  OpenSslString hex(BN_bn2hex(bn.get()));
  return hex == nullptr ? "?" : std::string(hex.get());
}

std::string NotAfterText(X509* cert) {
  struct tm t = {};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &t) != 1) return "?";
  char buf[32];
  return std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &t) > 0 ? buf : "?";
}

double ElapsedLifetime(X509* cert) {
  int days = 0;
  int secs = 0;
  if (ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(cert), X509_get0_notAfter(cert)) != 1) return 1.0;
  const double lifetime = days * 86400.0 + secs;
  if (ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(cert), nullptr) != 1) return 1.0;  // nullptr: now
  const double elapsed = days * 86400.0 + secs;
  return lifetime > 0 ? elapsed / lifetime : 1.0;
}

// --- keys and CSRs ------------------------------------------------------------

EvpPkeyPtr GenerateKey(KeyType type) {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type == KeyType::kRsa2048 ? "RSA" : "EC", nullptr));
  if (ctx == nullptr || EVP_PKEY_keygen_init(ctx.get()) <= 0) return nullptr;
  switch (type) {
    case KeyType::kEcP256:
      if (EVP_PKEY_CTX_set_group_name(ctx.get(), "P-256") <= 0) return nullptr;
      break;
    case KeyType::kEcP384:
      if (EVP_PKEY_CTX_set_group_name(ctx.get(), "P-384") <= 0) return nullptr;
      break;
    case KeyType::kRsa2048:
      if (EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), 2048) <= 0) return nullptr;
      break;
  }
  EVP_PKEY* key = nullptr;
  if (EVP_PKEY_generate(ctx.get(), &key) <= 0) return nullptr;
  return EvpPkeyPtr(key);
}

EvpPkeyPtr ReadPrivateKeyPem(std::string_view pem) {
  BioPtr bio = ReadBio(pem);
  if (bio == nullptr) return nullptr;
  return EvpPkeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

std::string PrivateKeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) return "";
  return BioText(bio.get());
}

std::string KeyDescription(EVP_PKEY* key) {
  if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
    char group[64] = "";
    size_t len = 0;
    if (EVP_PKEY_get_group_name(key, group, sizeof group, &len) == 1) return std::string("EC ") + group;
    return "EC";
  }
  if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) return "RSA-" + std::to_string(EVP_PKEY_get_bits(key));
  return OBJ_nid2sn(EVP_PKEY_get_base_id(key));
}

bool SameKey(EVP_PKEY* a, EVP_PKEY* b) { return a != nullptr && b != nullptr && EVP_PKEY_eq(a, b) == 1; }

X509ReqPtr MakeRenewalCsr(X509* current, EVP_PKEY* key) {
  X509ReqPtr csr(X509_REQ_new());
  if (csr == nullptr || X509_REQ_set_version(csr.get(), X509_REQ_VERSION_1) != 1) return nullptr;

  // The Subject, as the DER the CA issued (decoded from it, so OpenSSL
  // re-emits exactly those bytes).
  const std::string subject = NameDer(X509_get_subject_name(current));
  const auto* p = reinterpret_cast<const unsigned char*>(subject.data());
  X509NamePtr name(d2i_X509_NAME(nullptr, &p, static_cast<long>(subject.size())));
  if (name == nullptr || X509_REQ_set_subject_name(csr.get(), name.get()) != 1) return nullptr;
  if (X509_REQ_set_pubkey(csr.get(), key) != 1) return nullptr;

  // The subjectAltName extension, copied whole (its DER value and critical
  // flag) into the extensionRequest attribute.
  if (X509_EXTENSION* san = SanExtension(current)) {
    ExtensionStackPtr exts(sk_X509_EXTENSION_new_null());
    ExtensionPtr copy(X509_EXTENSION_dup(san));
    if (exts == nullptr || copy == nullptr || sk_X509_EXTENSION_push(exts.get(), copy.get()) <= 0) return nullptr;
    copy.release();  // the stack owns it now
    if (X509_REQ_add_extensions(csr.get(), exts.get()) != 1) return nullptr;
  }

  const EVP_MD* md = EVP_PKEY_get_base_id(key) == EVP_PKEY_EC && EVP_PKEY_get_bits(key) > 256 ? EVP_sha384()
                                                                                              : EVP_sha256();
  if (X509_REQ_sign(csr.get(), key, md) <= 0) return nullptr;
  // What we promise the bridge, checked on what we are about to send.
  if (!CsrFits(csr.get(), current, key)) return nullptr;
  return csr;
}

X509ReqPtr ReadCsrPem(std::string_view pem) {
  BioPtr bio = ReadBio(pem);
  if (bio == nullptr) return nullptr;
  return X509ReqPtr(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
}

std::string CsrPem(X509_REQ* csr) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_X509_REQ(bio.get(), csr) != 1) return "";
  return BioText(bio.get());
}

bool CsrFits(X509_REQ* csr, X509* current, EVP_PKEY* key) {
  EVP_PKEY* csr_key = X509_REQ_get0_pubkey(csr);
  if (!SameKey(csr_key, key) || X509_REQ_verify(csr, csr_key) != 1) return false;
  if (NameDer(X509_REQ_get_subject_name(csr)) != NameDer(X509_get_subject_name(current))) return false;
  if (X509_REQ_get_attr_count(csr) > (SanExtension(current) != nullptr ? 1 : 0)) return false;
  return CsrSanFingerprint(csr) == CertSanFingerprint(current);
}

std::string RequestIdFor(X509_REQ* csr) {
  unsigned char* raw = nullptr;
  const int len = i2d_X509_REQ(csr, &raw);
  OpenSslBytes der(raw);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (len <= 0 || EVP_Digest(raw, static_cast<size_t>(len), digest, &digest_len, EVP_sha256(), nullptr) != 1) return "";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "r-";
  for (unsigned int i = 0; i < 12 && i < digest_len; ++i) {
    id.push_back(kHex[digest[i] >> 4]);
    id.push_back(kHex[digest[i] & 0xF]);
  }
  return id;
}

// --- the issued certificate -----------------------------------------------------

IssuedCheck CheckIssued(X509* issued, const std::vector<X509Ptr>& chain, EVP_PKEY* key, X509* current,
                        const std::string& cafile) {
  IssuedCheck r;
  if (!SameKey(X509_get0_pubkey(issued), key)) {
    r.error = "its public key is not the key of our CSR";
    return r;
  }
  if (X509_NAME_cmp(X509_get_subject_name(issued), X509_get_subject_name(current)) != 0) {
    r.error = "its Subject differs from the current certificate's";
    return r;
  }
  GeneralNamesPtr issued_san = SanOfCertificate(issued);
  GeneralNamesPtr current_san = SanOfCertificate(current);
  if (!SameNameSet(issued_san.get(), current_san.get())) {
    r.error = "its subjectAltName differs from the current certificate's";
    return r;
  }
  if (NameDer(X509_get_subject_name(issued)) != NameDer(X509_get_subject_name(current))) {
    r.warnings.push_back("the CA re-encoded the Subject (equal when compared canonically)");
  }

  const time_t now = time(nullptr);
  time_t skewed = now + kClockSkewSeconds;
  if (X509_cmp_time(X509_get0_notBefore(issued), &skewed) != -1) {
    r.error = "it is not valid yet (notBefore is in the future; is the device clock right?)";
    return r;
  }
  time_t now_copy = now;
  if (X509_cmp_time(X509_get0_notAfter(issued), &now_copy) != 1) {
    r.error = "it has expired already";
    return r;
  }
  if (ASN1_TIME_compare(X509_get0_notAfter(issued), X509_get0_notAfter(current)) <= 0) {
    r.warnings.push_back("it does not expire later than the current certificate");
  }

  // The chain: the answer's CA certificates are untrusted helpers, --cafile
  // holds the trust anchors. Times are checked above with a tolerance.
  X509StorePtr store(X509_STORE_new());
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  X509RefStackPtr untrusted(sk_X509_new_null());
  if (store == nullptr || ctx == nullptr || untrusted == nullptr) {
    r.error = "out of memory";
    return r;
  }
  if (X509_STORE_load_file(store.get(), cafile.c_str()) != 1) {
    r.warnings.push_back("cannot load " + cafile + " to check the chain: " + OpenSslErrors());
    return r;
  }
  for (const X509Ptr& c : chain) sk_X509_push(untrusted.get(), c.get());
  if (X509_STORE_CTX_init(ctx.get(), store.get(), issued, untrusted.get()) != 1) {
    r.error = "cannot set up chain verification: " + OpenSslErrors();
    return r;
  }
  X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_NO_CHECK_TIME);
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT);
  if (X509_verify_cert(ctx.get()) == 1) return r;
  const int err = X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  const std::string why = X509_verify_cert_error_string(err);
  if (err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY || err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
      err == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN) {
    r.warnings.push_back("chain not checked, " + cafile + " does not hold its issuing CA (" + why + ")");
  } else {
    r.error = "it does not chain to " + cafile + ": " + why;
  }
  return r;
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (n > INT_MAX || RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) return "";
  return out;
}

}  // namespace device_renew
