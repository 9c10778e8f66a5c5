// openssl_ptr.h: std::unique_ptr for OpenSSL objects, each freed with its
// own *_free function. One definition for policy/, plugin/ and the tests, so
// no file writes its own deleter structs.
//
//   OpenSslPtr<BIO, BIO_free> bio(BIO_new_mem_buf(...));
#ifndef CERTACL_POLICY_OPENSSL_PTR_H_
#define CERTACL_POLICY_OPENSSL_PTR_H_

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <string_view>

namespace certacl {

template <auto Free>
struct OpenSslFree {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
template <typename T, auto Free>
using OpenSslPtr = std::unique_ptr<T, OpenSslFree<Free>>;

// OPENSSL_free is a macro; buffers from i2d_*, BN_bn2hex, ASN1_STRING_to_UTF8.
inline void OpenSslFreeBuffer(void* p) { OPENSSL_free(p); }

using X509Ptr = OpenSslPtr<X509, X509_free>;
using X509NamePtr = OpenSslPtr<X509_NAME, X509_NAME_free>;
using EvpPkeyPtr = OpenSslPtr<EVP_PKEY, EVP_PKEY_free>;
using BioPtr = OpenSslPtr<BIO, BIO_free>;
using BignumPtr = OpenSslPtr<BIGNUM, BN_free>;
using Asn1ObjectPtr = OpenSslPtr<ASN1_OBJECT, ASN1_OBJECT_free>;
using Asn1TypePtr = OpenSslPtr<ASN1_TYPE, ASN1_TYPE_free>;
using OctetStringPtr = OpenSslPtr<ASN1_OCTET_STRING, ASN1_OCTET_STRING_free>;
using IntegerPtr = OpenSslPtr<ASN1_INTEGER, ASN1_INTEGER_free>;
using BitStringPtr = OpenSslPtr<ASN1_BIT_STRING, ASN1_BIT_STRING_free>;
using GeneralNamesPtr = OpenSslPtr<GENERAL_NAMES, GENERAL_NAMES_free>;
using PoliciesPtr = OpenSslPtr<CERTIFICATEPOLICIES, CERTIFICATEPOLICIES_free>;
using AuthorityKeyIdPtr = OpenSslPtr<AUTHORITY_KEYID, AUTHORITY_KEYID_free>;
using BasicConstraintsPtr = OpenSslPtr<BASIC_CONSTRAINTS, BASIC_CONSTRAINTS_free>;
using ExtensionPtr = OpenSslPtr<X509_EXTENSION, X509_EXTENSION_free>;
using OpenSslString = OpenSslPtr<char, OpenSslFreeBuffer>;
using OpenSslBytes = OpenSslPtr<unsigned char, OpenSslFreeBuffer>;
using X509StorePtr = OpenSslPtr<X509_STORE, X509_STORE_free>;
using X509StoreCtxPtr = OpenSslPtr<X509_STORE_CTX, X509_STORE_CTX_free>;

// A STACK_OF(X509) that only borrows its certificates (sk_X509_free).
struct X509RefStackFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }
};
using X509RefStackPtr = std::unique_ptr<STACK_OF(X509), X509RefStackFree>;

// A STACK_OF(X509_EXTENSION) that owns its extensions.
struct ExtensionStackFree {
  void operator()(STACK_OF(X509_EXTENSION) * s) const { sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free); }
};
using ExtensionStackPtr = std::unique_ptr<STACK_OF(X509_EXTENSION), ExtensionStackFree>;

// The DER encoding of an OpenSSL object through its i2d_* function into
// *out, any std::basic_string<char>, reusing its buffer ("" if it cannot be
// encoded), e.g. DerInto<X509, i2d_X509>(cert, &der).
template <typename T, auto I2d, typename String>
void DerInto(T* object, String* out) {
  const int len = I2d(object, nullptr);
  if (len <= 0) {
    out->clear();
    return;
  }
  out->resize(static_cast<size_t>(len));
  auto* p = reinterpret_cast<unsigned char*>(out->data());
  if (I2d(object, &p) != len) out->clear();
}

// The same as a new string, e.g. ToDer<X509, i2d_X509>(cert).
template <typename T, auto I2d>
std::string ToDer(T* object) {
  std::string out;
  DerInto<T, I2d>(object, &out);
  return out;
}

// Standard base64 (RFC 4648 section 4) of `bytes`, one line, padded.
inline std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

// Drops the OpenSSL errors queued while it lives (expected when probing odd
// input) and keeps whatever the caller had queued before.
class OpenSslErrorMark {
 public:
  OpenSslErrorMark() { ERR_set_mark(); }
  ~OpenSslErrorMark() { ERR_pop_to_mark(); }
  OpenSslErrorMark(const OpenSslErrorMark&) = delete;
  OpenSslErrorMark& operator=(const OpenSslErrorMark&) = delete;
};

}  // namespace certacl

#endif  // CERTACL_POLICY_OPENSSL_PTR_H_
