// pki.cc: see pki.h.
#include "tests/integration/pki.h"

#include "tests/integration/broker.h"

namespace certacl::integration {

using certacl::testing::CertBuilder;
using certacl::testing::KeyToPem;
using certacl::testing::TestCa;
using certacl::testing::ToPem;

Pki::Pki(const std::string& dir) : dir_(dir + "/pki") {
  root_ = TestCa::Create("Acme Root CA");
  issuing_ = root_.CreateIntermediate("Acme Devices Issuing CA");
  // Same name as the real issuing CA: only the key tells them apart.
  foreign_ = TestCa::Create("Acme Devices Issuing CA");

  WriteFile(dir_ + "/root-ca.pem", ToPem(root_.cert.get()));
  issuing_ca_file_ = dir_ + "/issuing-ca.pem";
  WriteFile(issuing_ca_file_, ToPem(issuing_.cert.get()));
  ca_bundle_ = dir_ + "/ca-bundle.pem";
  WriteFile(ca_bundle_, ToPem(root_.cert.get()) + ToPem(issuing_.cert.get()));
  WriteFile(dir_ + "/foreign-ca.pem", ToPem(foreign_.cert.get()));

  CertBuilder server = issuing_.Issue();
  server.Subject("CN", "localhost").SanDns("localhost").SanIp("127.0.0.1");
  server_ = Write("server", server);
}

CertBuilder Pki::Builder(const DeviceSpec& spec) {
  CertBuilder b;
  if (!spec.o.empty()) b.Subject("O", spec.o);
  if (!spec.ou.empty()) b.Subject("OU", spec.ou);
  if (!spec.l.empty()) b.Subject("L", spec.l);
  if (!spec.cn.empty()) b.Subject("CN", spec.cn);
  for (const std::string& d : spec.san_dns) b.SanDns(d);
  for (const std::string& u : spec.san_uri) b.SanUri(u);
  return b;
}

CertFiles Pki::WriteCert(std::string_view file_stem, X509* cert, EVP_PKEY* key) {
  CertFiles f{dir_ + "/" + std::string(file_stem) + ".pem", dir_ + "/" + std::string(file_stem) + "-key.pem"};
  WriteFile(f.cert, ToPem(cert));
  WriteFile(f.key, KeyToPem(key));
  return f;
}

CertFiles Pki::Write(std::string_view file_stem, CertBuilder& builder) {
  certacl::X509Ptr cert = builder.Build();
  return WriteCert(file_stem, cert.get(), builder.key());
}

CertFiles Pki::Device(std::string_view file_stem, const DeviceSpec& spec) {
  CertBuilder b = Builder(spec);
  b.SignedBy(issuing_.cert.get(), issuing_.key.get());
  return Write(file_stem, b);
}

CertFiles Pki::ForeignDevice(std::string_view file_stem, const DeviceSpec& spec) {
  CertBuilder b = Builder(spec);
  b.SignedBy(foreign_.cert.get(), foreign_.key.get());
  return Write(file_stem, b);
}

CertFiles Pki::Meter(std::string_view cn, std::string_view city, std::string_view ou) {
  DeviceSpec spec{.cn = std::string(cn),
                  .o = "Acme Utilities",
                  .ou = std::string(ou),
                  .l = std::string(city),
                  .san_dns = {},
                  .san_uri = {}};
  // A hostile CN ("a/#") is no DNS name: keep the SAN for ordinary ones.
  if (cn.find_first_of("/+#") == std::string_view::npos) spec.san_dns.push_back(std::string(cn) + ".meters.acme.example");
  std::string stem = "meter-";
  for (char c : cn) {
    if (c == '/') stem += "_slash_";
    else if (c == '+') stem += "_plus_";
    else if (c == '#') stem += "_hash_";
    else stem += c;
  }
  return Device(stem + "-" + std::string(ou), spec);
}

CertFiles Pki::HeadEnd(std::string_view cn) {
  return Device(std::string("headend-") + std::string(cn),
                {.cn = std::string(cn),
                 .o = "Acme Utilities",
                 .ou = "back-office",
                 .l = "",
                 .san_dns = {std::string(cn) + ".headend.acme.example"},
                 .san_uri = {}});
}

CertFiles Pki::Observer(std::string_view cn) {
  return Device(std::string("observer-") + std::string(cn),
                {.cn = std::string(cn), .o = "Acme Operations", .ou = "ops", .l = "", .san_dns = {}, .san_uri = {}});
}

}  // namespace certacl::integration
