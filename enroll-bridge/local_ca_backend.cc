// local_ca_backend.cc: see local_ca_backend.h.
#include "enroll-bridge/local_ca_backend.h"

#include <ctime>

namespace certacl::enroll {
namespace {

X509Ptr ParseDer(const std::string& der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  return X509Ptr(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

}  // namespace

std::unique_ptr<LocalCaBackend> LocalCaBackend::Create(const std::string& cert_file, const std::string& key_file,
                                                       const CertProfile& profile, std::string* error) {
  std::unique_ptr<LocalCa> ca = LocalCa::Load(cert_file, key_file, error);
  if (!ca) return nullptr;
  return std::unique_ptr<LocalCaBackend>(new LocalCaBackend(std::move(ca), profile));
}

LocalCaBackend::LocalCaBackend(std::unique_ptr<LocalCa> ca, const CertProfile& profile)
    : ca_(std::move(ca)), profile_(profile) {
  ca_der_ = ToDer<X509, i2d_X509>(ca_->cert());
  char buf[512];
  X509_NAME_oneline(X509_get_subject_name(ca_->cert()), buf, sizeof buf);
  subject_ = buf;
}

std::string LocalCaBackend::Describe() const { return "local-ca " + subject_; }

BackendResult LocalCaBackend::Enroll(EnrollOp, X509_REQ* csr, std::string_view) {
  BackendResult r;
  std::string error;
  X509Ptr cert;
  {
    std::lock_guard<std::mutex> lock(sign_mu_);
    cert = ca_->Issue(csr, profile_, static_cast<int64_t>(std::time(nullptr)), &error);
  }
  if (!cert) {
    r.status = BackendResult::Status::kRejected;
    r.http_status = 500;
    r.message = "the local CA could not sign: " + error;
    return r;
  }
  r.status = BackendResult::Status::kOk;
  r.certs.push_back(std::move(cert));
  r.certs.push_back(ParseDer(ca_der_));
  return r;
}

BackendResult LocalCaBackend::CaCerts() {
  BackendResult r;
  r.status = BackendResult::Status::kOk;
  r.certs.push_back(ParseDer(ca_der_));
  return r;
}

BackendResult LocalCaBackend::CsrAttrs() {
  BackendResult r;
  r.status = BackendResult::Status::kOk;
  return r;
}

}  // namespace certacl::enroll
