// sha256.cc: see sha256.h.
#include "policy/sha256.h"

namespace certacl {

const EVP_MD* Sha256Md() {
  // Deliberately leaked (see sha256.h); a function-local static is
  // initialised once, thread-safely.
  static const EVP_MD* const md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched != nullptr ? static_cast<const EVP_MD*>(fetched) : EVP_sha256();
  }();
  return md;
}

bool Sha256(std::string_view data, std::array<unsigned char, 32>* out) {
  unsigned int len = 0;
  return EVP_Digest(data.data(), data.size(), out->data(), &len, Sha256Md(), nullptr) == 1 &&
         len == out->size();
}

}  // namespace certacl
