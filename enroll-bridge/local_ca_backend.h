// local_ca_backend.h: the Backend (backend.h) that signs with an embedded
// CA key (local_ca.h), so the demo and a small fleet need no external CA.
// /cacerts answers the CA certificate; /csrattrs has nothing to ask for.
// Thread-safe: signing is serialized (it reads the CA's X509, whose
// extension cache OpenSSL fills lazily), and each answer parses its own
// copy of the CA certificate (no X509 is handed to another thread).
#ifndef CERTACL_ENROLL_BRIDGE_LOCAL_CA_BACKEND_H_
#define CERTACL_ENROLL_BRIDGE_LOCAL_CA_BACKEND_H_

#include <memory>
#include <mutex>
#include <string>

#include "enroll-bridge/backend.h"
#include "enroll-bridge/local_ca.h"

namespace certacl::enroll {

class LocalCaBackend : public Backend {
 public:
  // Reads the CA certificate and key; null with *error if either is unusable.
  static std::unique_ptr<LocalCaBackend> Create(const std::string& cert_file, const std::string& key_file,
                                                const CertProfile& profile, std::string* error);

  std::string Describe() const override;
  BackendResult Enroll(EnrollOp op, X509_REQ* csr, std::string_view csr_der) override;
  BackendResult CaCerts() override;
  BackendResult CsrAttrs() override;

 private:
  LocalCaBackend(std::unique_ptr<LocalCa> ca, const CertProfile& profile);
  std::mutex sign_mu_;
  std::unique_ptr<LocalCa> ca_;  // used under sign_mu_
  std::string ca_der_;
  std::string subject_;
  CertProfile profile_;
};

}  // namespace certacl::enroll

#endif  // CERTACL_ENROLL_BRIDGE_LOCAL_CA_BACKEND_H_
