// sha256.h: SHA-256 through one EVP_MD fetched once per process.
//
// OpenSSL 3 looks the implementation up in its provider store on every
// EVP_DigestInit_ex that is given EVP_sha256() (~3,400 instructions, and
// code that is cold when a device connects). An EVP_MD fetched once skips
// that lookup. The fetched EVP_MD is never freed: it must stay valid until
// the process exits, after any static destructor that could still digest.
//
// Thread-safe. Neither function touches the caller's OpenSSL error queue
// beyond what a failed digest leaves there.
#ifndef CERTACL_POLICY_SHA256_H_
#define CERTACL_POLICY_SHA256_H_

#include <openssl/evp.h>

#include <array>
#include <string_view>

namespace certacl {

// The SHA-256 implementation of the default library context; EVP_sha256()
// if the fetch failed (which works the same, with the lookup). Never null.
const EVP_MD* Sha256Md();

// SHA-256 of `data` into *out. False (and *out unspecified) if OpenSSL fails.
bool Sha256(std::string_view data, std::array<unsigned char, 32>* out);

}  // namespace certacl

#endif  // CERTACL_POLICY_SHA256_H_
