// p256_verifier.h: checks that a certificate was signed by one fixed ECDSA
// P-256 key, for the `ca` condition's first check of each device: ~0.3×
// X509_verify's time run warm (~20 µs against ~65 µs on x86-64 with
// BMI2/ADX), and ~5 KB of table reads where X509_verify's constant-time
// lookup reads ~300 KB (bench/RESULTS.md, items 18 to 20).
//
// An ECDSA verification computes u1·G + u2·Q, where G is the curve's
// generator and Q the signer's public key. OpenSSL multiplies G with a
// precomputed table and Q as a variable point (~600,000 of X509_verify's
// ~875,000 instructions), and reads its tables in constant time: all 64
// entries of each row it uses, ~150 KB per multiplication. A `ca` key is
// fixed for the life of a policy, so a verifier builds a table for Q once
// (~150 KB, ~1.1 ms), G's table is built once per process, and both
// multiplications are additions of table entries read directly: the
// scalars of a verification are public, so nothing is hidden by reading
// every entry. The field arithmetic is this file's own (Montgomery, four
// 64-bit limbs; the multiplication with mulx/adcx/adox on x86-64 CPUs that
// have them, portable C++ elsewhere); it needs no deprecated OpenSSL API.
//
// The contract: Verify() returns true only when X509_verify(cert, key) would
// return 1, that is for a certificate whose outer and inner signature
// algorithms are both ecdsa-with-SHA256 without parameters, whose signature
// is exactly DER with r and s in [1, n-1], and which verifies under the key
// over its tbsCertificate as encoded. False decides nothing: the signature
// is invalid, or is one this verifier does not read (another algorithm, a
// BIT STRING with unused bits, ...), and the caller asks X509_verify. So a
// verifier can make a yes cheaper; it can never turn a no into a yes
// (tests/policy/p256_verifier_test.cc holds it to X509_verify's answers).
//
// Thread-safe after Create(): Verify() is const and uses its own scratch.
// Variable time: it is only given public values (keys, certificates).
#ifndef CERTACL_POLICY_P256_VERIFIER_H_
#define CERTACL_POLICY_P256_VERIFIER_H_

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>

namespace certacl {

class P256Verifier {
 public:
  // A verifier for `key`; null when `key` is not a P-256 public key, or
  // when its table cannot be built or fails its self-check ((n-1)·Q must
  // come out as -Q). The OpenSSL error queue is left clear.
  static std::unique_ptr<P256Verifier> Create(EVP_PKEY* key);
  // Whether `key` is of the kind Create() reads (a P-256 public key).
  // Cheap; leaves the error queue clear.
  static bool Supports(EVP_PKEY* key);

  ~P256Verifier();
  P256Verifier(const P256Verifier&) = delete;
  P256Verifier& operator=(const P256Verifier&) = delete;

  // True only if `cert` is signed by the key (see the contract above).
  // Leaves the OpenSSL error queue as it found it.
  bool Verify(X509* cert) const;

  // Bytes held by a key's table (for operators' logs); G's table, shared by
  // all verifiers of a process, is as large.
  static constexpr size_t kTableBytes = 151552;

 private:
  struct State;
  explicit P256Verifier(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

namespace p256_internal {

// s^-1 modulo n, the order of the P-256 group, for 0 < s < n; big-endian,
// 32 bytes each way (0 for s = 0 or a multiple of n). Binary extended
// Euclid on four 64-bit limbs, all factors of 2 stripped at once: ~3 µs
// (~37,000 instructions) against BN_mod_inverse's ~155,000 instructions.
// Variable time: it is only given public values (signatures). Exposed for
// tests.
std::array<uint8_t, 32> InverseModOrder(const std::array<uint8_t, 32>& s);

// k·G from G's table, as big-endian affine x || y; nullopt for the point at
// infinity (k = 0 or a multiple of n). Any k < 2^256. Exposed for tests.
std::optional<std::array<uint8_t, 64>> TimesGenerator(const std::array<uint8_t, 32>& k);

// The field's Montgomery product a·b·2^-256 mod p, for a, b < p; four
// 64-bit limbs each way, least significant first. `mulx_adx`: the product
// with the BMI2/ADX instructions, which Verify uses where the CPU has them;
// nullopt when this build (CERTACL_PORTABLE_ARITHMETIC, not x86-64) or the
// CPU lacks them. Otherwise the generic product, which the others run.
// Exposed for tests.
std::optional<std::array<uint64_t, 4>> FieldProduct(const std::array<uint64_t, 4>& a,
                                                    const std::array<uint64_t, 4>& b, bool mulx_adx);

}  // namespace p256_internal

}  // namespace certacl

#endif  // CERTACL_POLICY_P256_VERIFIER_H_
