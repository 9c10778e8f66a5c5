// signature_cache.cc: see signature_cache.h.
#include "policy/signature_cache.h"

#include <openssl/evp.h>

#include <string>

namespace certacl {

SignatureCache::Key SignatureCache::KeyOf(std::string_view cert_sha256, std::string_view ca_key_sha256) {
  std::string both;
  both.reserve(cert_sha256.size() + ca_key_sha256.size());
  both.append(cert_sha256).append(ca_key_sha256);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  Key k{};
  if (EVP_Digest(both.data(), both.size(), md, &len, EVP_sha256(), nullptr) == 1 && len >= k.size()) {
    std::memcpy(k.data(), md, k.size());
  }
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
