// pki.h: the PKI an integration test needs, generated in-process with
// tests/testing/cert_builder.h and written as PEM files into the test's
// directory.
//
//   <dir>/pki/root-ca.pem          "Acme Root CA" (self-signed)
//   <dir>/pki/issuing-ca.pem       "Acme Devices Issuing CA", signed by the root
//   <dir>/pki/ca-bundle.pem        root + issuing CA: the broker's and the
//                                  clients' cafile
//   <dir>/pki/server.pem/-key.pem  CN=localhost, SAN dns:localhost ip:127.0.0.1,
//                                  signed by the issuing CA
//   <dir>/pki/foreign-ca.pem       "Acme Devices Issuing CA" too, but an
//                                  unrelated self-signed key the broker does
//                                  not trust
//   <dir>/pki/<name>.pem/-key.pem  one per device (Device(), Meter(), ...)
//
// A policy written next to pki/ can say `ca = "pki/issuing-ca.pem"`.
// Keys are EC P-256 (fast). Not thread-safe; one Pki per test.
#ifndef CERTACL_TESTS_INTEGRATION_PKI_H_
#define CERTACL_TESTS_INTEGRATION_PKI_H_

#include <string>
#include <string_view>
#include <vector>

#include "tests/testing/cert_builder.h"

namespace certacl::integration {

// A certificate and its key as files.
struct CertFiles {
  std::string cert;
  std::string key;
};

// The subject and SANs of a device certificate. Empty fields are left out.
struct DeviceSpec {
  std::string cn;
  std::string o;
  std::string ou;
  std::string l;
  std::vector<std::string> san_dns;
  std::vector<std::string> san_uri;
};

class Pki {
 public:
  explicit Pki(const std::string& dir);  // generates root, issuing CA, server, foreign CA

  const std::string& ca_bundle() const { return ca_bundle_; }
  const std::string& issuing_ca() const { return issuing_ca_file_; }
  const CertFiles& server() const { return server_; }

  // A device certificate issued by the issuing CA, written to
  // pki/<file_stem>.pem and pki/<file_stem>-key.pem.
  CertFiles Device(std::string_view file_stem, const DeviceSpec& spec);
  // The same subject, issued by the foreign CA the broker does not trust.
  CertFiles ForeignDevice(std::string_view file_stem, const DeviceSpec& spec);
  // Anything else: `builder` complete with its signer (issuing().Issue()
  // gives one signed by the issuing CA); builds and writes it.
  CertFiles Write(std::string_view file_stem, certacl::testing::CertBuilder& builder);

  // Fleet shortcuts modelled on examples/policies/smart-meters.toml.
  // O=Acme Utilities, OU=<ou>, L=<city>, CN=<cn>, SAN dns <cn>.meters.acme.example
  CertFiles Meter(std::string_view cn, std::string_view city = "zurich", std::string_view ou = "meter");
  // O=Acme Utilities, OU=back-office, CN=<cn>, SAN dns <cn>.headend.acme.example
  CertFiles HeadEnd(std::string_view cn = "head-end-1");
  // O=Acme Operations, OU=ops, CN=observer: the privileged observer of the test policies.
  CertFiles Observer(std::string_view cn = "observer");

  const certacl::testing::TestCa& root() const { return root_; }
  const certacl::testing::TestCa& issuing() const { return issuing_; }

  // A builder with `spec`'s subject and SANs, not yet signed (SignedBy()).
  static certacl::testing::CertBuilder Builder(const DeviceSpec& spec);

 private:
  CertFiles WriteCert(std::string_view file_stem, X509* cert, EVP_PKEY* key);

  std::string dir_;  // <test dir>/pki
  certacl::testing::TestCa root_;
  certacl::testing::TestCa issuing_;
  certacl::testing::TestCa foreign_;
  std::string ca_bundle_;
  std::string issuing_ca_file_;
  CertFiles server_;
};

}  // namespace certacl::integration

#endif  // CERTACL_TESTS_INTEGRATION_PKI_H_
