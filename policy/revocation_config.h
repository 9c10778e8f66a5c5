// revocation_config.h: the policy file's [revocation] table, compiled.
//
// Pure configuration: plugin/revocation/ does the checking. Loaded and
// validated with the rest of the policy (policy_loader.cc), so a bad value
// is a file:line:column error and a reload keeps the old policy. Paths are
// resolved against the policy file's directory. docs/policy.md documents
// every key.
#ifndef CERTACL_POLICY_REVOCATION_CONFIG_H_
#define CERTACL_POLICY_REVOCATION_CONFIG_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "policy/openssl_ptr.h"

namespace certacl {

struct RevocationConfig {
  // What to do with a certificate whose status is not known (yet).
  enum class Mode : uint8_t {
    kOff,       // no revocation checking
    kHardFail,  // refuse the connect; the background fetch lets a retry in
    kSoftFail,  // admit; disconnect as soon as a revoked answer arrives
  };
  enum class Ocsp : uint8_t { kOff, kFromCertificate, kUrl };
  enum class Stale : uint8_t { kDeny, kAllow };

  Mode mode = Mode::kOff;
  std::vector<std::string> crl_files;  // files or directories (resolved paths)
  bool crl_from_certificate = false;   // fetch the CRL Distribution Points (http)
  std::string crl_cache_dir;           // keeps fetched CRLs across restarts ("" = none)
  Ocsp ocsp = Ocsp::kOff;
  std::string ocsp_url;                // Ocsp::kUrl
  Stale stale = Stale::kDeny;          // a CRL past nextUpdate + stale_grace
  int64_t stale_grace_s = 3600;
  int64_t crl_refresh_s = 900;         // fetch CDP CRLs at least this often
  int64_t crl_file_poll_s = 2;         // local files are re-checked this often
  int64_t ocsp_max_age_s = 3600;       // an OCSP answer is cached at most this long
  int64_t ocsp_timeout_s = 2;
  int64_t fetch_timeout_s = 10;        // one CRL download
  int64_t clock_skew_s = 300;
  int64_t failure_backoff_s = 5;       // first retry after a failed fetch; doubles
  size_t crl_max_bytes = 256u << 20;
  bool ocsp_nonce = false;
  bool disconnect_expired = true;      // disconnect devices whose certificate expires

  // The CAs whose device certificates are checked, and which sign the CRLs
  // (`issuers`, or every `ca` of the policy when absent).
  struct Issuer {
    std::string path;  // as written
    X509Ptr cert;
    std::string description;  // subject, for logs
  };
  std::vector<Issuer> issuers;

  uint32_t line = 0;  // where [revocation] is, for lint
  uint32_t column = 0;

  bool enabled() const { return mode != Mode::kOff; }
};

// "off", "hard-fail", "soft-fail".
const char* RevocationModeName(RevocationConfig::Mode mode);

}  // namespace certacl

#endif  // CERTACL_POLICY_REVOCATION_CONFIG_H_
