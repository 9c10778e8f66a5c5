// signature_cache.h: remembers which certificates were already verified as
// signed by which `ca` key, so that a device reconnecting costs a lookup
// instead of a signature verification (an ECDSA P-256 verify is ~65 µs of
// OpenSSL 3.0 CPU on the broker thread, ~20 µs with the key's verifier
// below; bench/RESULTS.md, items 1, 18 to 20).
//
// Only positive answers are kept, keyed by 16 bytes of SHA-256 over the
// certificate's SHA-256 and the CA key's SHA-256: the same certificate bytes
// and the same CA key give the same answer, so a hit can never widen access.
// A policy reload that changes a CA's key changes the keys. Bounded: when
// `max_entries` is reached the cache is emptied and fills again (one
// verification per device). Not thread-safe: one owner (the plugin's broker
// thread); the CLI passes no cache.
//
// Persistence (the plugin's plugin_opt_state_file): with the journal on,
// every key Insert()ed is also kept until TakeAdded() hands it over, so the
// owner can write it to disk; Restore() adds a key read back from disk
// without journaling it again. A restored key is trusted as a verification
// already done: whoever can write that file can vouch for any certificate,
// so it must be as protected as the policy (see plugin/state_file.h).
//
// Verifiers: the owner can also hand over the policy's CA keys, and the
// cache keeps a P256Verifier (policy/p256_verifier.h) for each P-256 one, so
// that a miss costs less than an X509_verify. Each is ~1 ms to build, on
// the caller's thread, and ~150 KB; at most kMaxVerifiers.
//
// The entries live as long as the cache: a broker passes its own memory
// resource, so that they are not scattered among its per-connection chunks
// in the malloc heap (the plugin's first connects insert them in the middle
// of connect storms).
#ifndef CERTACL_POLICY_SIGNATURE_CACHE_H_
#define CERTACL_POLICY_SIGNATURE_CACHE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <memory_resource>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "policy/p256_verifier.h"

namespace certacl {

class SignatureCache {
 public:
  using Key = std::array<uint8_t, 16>;

  static constexpr size_t kDefaultMaxEntries = 1 << 20;
  // `memory` must outlive the cache.
  explicit SignatureCache(size_t max_entries = kDefaultMaxEntries,
                          std::pmr::memory_resource* memory = std::pmr::get_default_resource())
      : max_entries_(max_entries), set_(memory) {}

  // The key for (the certificate's SHA-256, as its `cert.sha256` attribute
  // gives it, and the SHA-256 of the CA's public key).
  static Key KeyOf(std::string_view cert_sha256, std::string_view ca_key_sha256);

  bool Contains(const Key& k) const { return set_.count(k) != 0; }
  // A certificate verified now (journaled, when the journal is on).
  void Insert(const Key& k);
  // A verification done earlier, read back from disk (not journaled).
  void Restore(const Key& k);
  size_t size() const { return set_.size(); }
  size_t max_entries() const { return max_entries_; }

  // Signature verifications done on a miss (CaCheck counts them here, so
  // operators and tests can see that a known device was not verified again).
  void CountVerification() { ++verifications_; }
  uint64_t verifications() const { return verifications_; }

  // The CA keys whose signatures are checked from now on, by the SHA-256
  // of each key (TrustAnchor::key_sha256). Keeps the verifiers of keys
  // still listed, builds those missing, in order, up to kMaxVerifiers in
  // all, and drops the rest. Returns how many it built.
  struct CaKey {
    std::string_view key_sha256;
    EVP_PKEY* key;
  };
  static constexpr size_t kMaxVerifiers = 8;
  size_t PrepareVerifiers(const std::vector<CaKey>& keys);
  // The verifier for that CA key, or null (then X509_verify it is).
  const P256Verifier* VerifierFor(std::string_view key_sha256) const;
  size_t verifiers() const { return verifiers_.size(); }

  void EnableJournal() { journal_ = true; }
  // The keys Insert()ed since the last call (none: no allocation).
  std::vector<Key> TakeAdded() { return std::exchange(added_, {}); }

  struct KeyHash {
    size_t operator()(const Key& k) const {
      size_t h;
      std::memcpy(&h, k.data(), sizeof h);  // already uniformly distributed (SHA-256)
      return h;
    }
  };

 private:
  void Add(const Key& k);
  size_t max_entries_;
  std::pmr::unordered_set<Key, KeyHash> set_;
  bool journal_ = false;
  std::vector<Key> added_;
  uint64_t verifications_ = 0;
  struct NameHash {  // lookups by string_view, without a copy
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  using Verifiers = std::unordered_map<std::string, std::unique_ptr<P256Verifier>, NameHash, std::equal_to<>>;
  Verifiers verifiers_;  // by the key's SHA-256
};

}  // namespace certacl

#endif  // CERTACL_POLICY_SIGNATURE_CACHE_H_
