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

}  // namespace certacl
