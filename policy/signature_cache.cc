// signature_cache.cc: see signature_cache.h.
#include "policy/signature_cache.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <string>

#include "policy/sha256.h"

namespace certacl {

SignatureCache::Key SignatureCache::KeyOf(std::string_view cert_sha256, std::string_view ca_key_sha256) {
  std::string both;
  both.reserve(cert_sha256.size() + ca_key_sha256.size());
  both.append(cert_sha256).append(ca_key_sha256);
  std::array<unsigned char, 32> md;
  Key k{};
  if (Sha256(both, &md)) std::memcpy(k.data(), md.data(), std::min(k.size(), md.size()));
  return k;
}

void SignatureCache::Add(const Key& k) {
  if (set_.size() >= max_entries_) set_.clear();
  set_.insert(k);
}

void SignatureCache::Insert(const Key& k) {
  Add(k);
  if (journal_) added_.push_back(k);
}

void SignatureCache::Restore(const Key& k) { Add(k); }

size_t SignatureCache::PrepareVerifiers(const std::vector<CaKey>& keys) {
  Verifiers next;
  size_t built = 0;
  for (const CaKey& k : keys) {
    if (k.key_sha256.empty() || k.key == nullptr || next.size() >= kMaxVerifiers) continue;
    std::string id(k.key_sha256);
    if (next.find(id) != next.end()) continue;
    auto kept = verifiers_.find(id);
    if (kept != verifiers_.end()) {
      next.emplace(std::move(id), std::move(kept->second));
      continue;
    }
    std::unique_ptr<P256Verifier> v = P256Verifier::Create(k.key);
    if (!v) continue;  // not P-256: X509_verify
    next.emplace(std::move(id), std::move(v));
    ++built;
  }
  verifiers_ = std::move(next);
  return built;
}

const P256Verifier* SignatureCache::VerifierFor(std::string_view key_sha256) const {
  if (verifiers_.empty()) return nullptr;
  auto it = verifiers_.find(key_sha256);
  return it == verifiers_.end() ? nullptr : it->second.get();
}

}  // namespace certacl
