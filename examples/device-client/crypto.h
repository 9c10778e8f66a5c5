// crypto.h: the OpenSSL side of a renewal, as a device does it: read the
// current certificate, make a new key and a CSR that copies the issued
// certificate's Subject and subjectAltName as DER, and check the certificate
// that comes back before it replaces anything.
#ifndef CERTACL_EXAMPLES_DEVICE_CLIENT_CRYPTO_H_
#define CERTACL_EXAMPLES_DEVICE_CLIENT_CRYPTO_H_

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace device_renew {

// std::unique_ptr for OpenSSL objects, each freed by its own *_free.
template <auto Free>
struct OpenSslFree {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
template <typename T, auto Free>
using OpenSslPtr = std::unique_ptr<T, OpenSslFree<Free>>;
using X509Ptr = OpenSslPtr<X509, X509_free>;
using X509ReqPtr = OpenSslPtr<X509_REQ, X509_REQ_free>;
using EvpPkeyPtr = OpenSslPtr<EVP_PKEY, EVP_PKEY_free>;

enum class KeyType { kEcP256, kEcP384, kRsa2048 };
std::optional<KeyType> ParseKeyType(std::string_view name);  // ec-p256 | ec-p384 | rsa-2048

// The text of the OpenSSL errors queued so far (and clears the queue).
std::string OpenSslErrors();

// --- certificates ------------------------------------------------------------

// Every certificate in a PEM text, in order.
std::vector<X509Ptr> ReadCertificatesPem(std::string_view pem);
std::string CertificatePem(X509* cert);
// What a TLS client presents: `leaf` then the intermediates of `chain` (a
// self-issued root is left out: the broker has it).
std::string ClientCertificateFilePem(X509* leaf, const std::vector<X509Ptr>& chain);
std::string CommonName(X509* cert);   // "" if none
std::string SerialHex(X509* cert);    // upper-case hex, as in the answer's serialNumber
std::string NotAfterText(X509* cert);  // RFC 3339 UTC
// How much of [notBefore, notAfter] has passed (0 at notBefore, 1 at notAfter).
double ElapsedLifetime(X509* cert);

// --- keys and CSRs ------------------------------------------------------------

EvpPkeyPtr GenerateKey(KeyType type);
EvpPkeyPtr ReadPrivateKeyPem(std::string_view pem);
// Unencrypted PKCS#8 PEM. Goes to a 0600 file, never to a log.
std::string PrivateKeyPem(EVP_PKEY* key);
std::string KeyDescription(EVP_PKEY* key);  // "EC prime256v1", "RSA-2048"
bool SameKey(EVP_PKEY* a, EVP_PKEY* b);

// A CSR for `key` whose Subject and subjectAltName extension are the DER of
// `current`'s (never rebuilt from configuration: the CA may have reordered
// or dropped names, and the bridge compares against what it issued). No
// challengePassword, no other attribute. nullptr on failure.
X509ReqPtr MakeRenewalCsr(X509* current, EVP_PKEY* key);
X509ReqPtr ReadCsrPem(std::string_view pem);
std::string CsrPem(X509_REQ* csr);
// True if `csr` is one MakeRenewalCsr(current, key) could have made: same
// Subject and subjectAltName DER, `key`'s public key, a valid signature.
bool CsrFits(X509_REQ* csr, X509* current, EVP_PKEY* key);
// "r-" and 24 hex digits of the SHA-256 of the CSR's DER: the same CSR
// always gets the same requestId, across retries and restarts.
std::string RequestIdFor(X509_REQ* csr);

// --- the issued certificate -----------------------------------------------------

struct IssuedCheck {
  std::string error;                  // "" if the certificate may be used
  std::vector<std::string> warnings;  // worth logging, not fatal
};
// Checks the certificate of an accepted answer: its public key is `key`, its
// Subject and subjectAltName set equal `current`'s (compared canonically: a
// CA may re-encode), it is valid now (notBefore with 5 minutes' tolerance
// for clock skew), and it chains to `cafile` through `chain`. A chain that
// cannot be built because `cafile` (the broker's CA) does not hold the
// device's issuing CA is a warning: the broker's CONNACK decides then.
IssuedCheck CheckIssued(X509* issued, const std::vector<X509Ptr>& chain, EVP_PKEY* key, X509* current,
                        const std::string& cafile);

// Random bytes from OpenSSL's CSPRNG (empty on failure).
std::string RandomBytes(size_t n);

}  // namespace device_renew

#endif  // CERTACL_EXAMPLES_DEVICE_CLIENT_CRYPTO_H_
