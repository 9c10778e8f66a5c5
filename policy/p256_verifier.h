// p256_verifier.h: checks that a certificate was signed by one fixed ECDSA
// P-256 key in about a third of X509_verify's instructions, for the `ca`
// condition's first check of each device (bench/RESULTS.md, item 18).
//
// An ECDSA verification computes u1·G + u2·Q, where G is the curve's
// generator and Q the signer's public key. OpenSSL multiplies G with a
// precomputed table and Q as a variable point, which is ~600,000 of
// X509_verify's ~875,000 instructions. A `ca` key is fixed for the life of a
// policy, so a verifier builds the same kind of table for Q once (OpenSSL's
// EC_GROUP_precompute_mult: ~280 million instructions, ~100 ms, ~150 KB per
// key) and both multiplications use tables.
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
// The table needs two OpenSSL APIs deprecated in 3.0 and still present in
// 3.x; a build of OpenSSL without them gets no verifier (Create() returns
// null) and every check goes to X509_verify.
#ifndef CERTACL_POLICY_P256_VERIFIER_H_
#define CERTACL_POLICY_P256_VERIFIER_H_

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <array>
#include <cstdint>
#include <memory>

namespace certacl {

class P256Verifier {
 public:
  // A verifier for `key`; null when `key` is not a P-256 public key, or
  // when the table cannot be built (the OpenSSL error queue is cleared).
  static std::unique_ptr<P256Verifier> Create(EVP_PKEY* key);
  // Whether `key` is of the kind Create() reads (a P-256 public key, and
  // OpenSSL with the table APIs). Cheap; leaves the error queue clear.
  static bool Supports(EVP_PKEY* key);

  ~P256Verifier();
  P256Verifier(const P256Verifier&) = delete;
  P256Verifier& operator=(const P256Verifier&) = delete;

  // True only if `cert` is signed by the key (see the contract above).
  // Leaves the OpenSSL error queue as it found it.
  bool Verify(X509* cert) const;

  // Approximate bytes held by the table (for operators' logs).
  static constexpr size_t kTableBytes = 151552;

 private:
  struct State;
  explicit P256Verifier(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

namespace p256_internal {

// s^-1 modulo n, the order of the P-256 group, for 0 < s < n; big-endian,
// 32 bytes each way (0 for s = 0 or a multiple of n). Binary extended
// Euclid on four 64-bit limbs: ~45,000 instructions against
// BN_mod_inverse's ~155,000. Variable time: it is only given public values
// (signatures). Exposed for tests.
std::array<uint8_t, 32> InverseModOrder(const std::array<uint8_t, 32>& s);

}  // namespace p256_internal

}  // namespace certacl

#endif  // CERTACL_POLICY_P256_VERIFIER_H_
