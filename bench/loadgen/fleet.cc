// fleet.cc: `certacl-loadgen fleet`: the fleet PKI, CRL, certacl policies
// and Mosquitto acl_file of the benchmark (see loadgen.h for the layout).
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "bench/loadgen/loadgen.h"
#include "tests/testing/cert_builder.h"
#include "tests/testing/crl_builder.h"

namespace certacl::loadgen {
namespace {

using testing::CertBuilder;
using testing::TestCa;

constexpr int64_t kDay = 86400;

bool WriteWhole(const std::string& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    std::fprintf(stderr, "certacl-loadgen: cannot write %s: %s\n", path.c_str(), std::strerror(errno));
    return false;
  }
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !ok) {
    std::fprintf(stderr, "certacl-loadgen: cannot write %s\n", path.c_str());
    return false;
  }
  return true;
}

// The two roles every policy ends with.
std::string CommonRoles() {
  return "[[role]]\n"
         "name = \"device\"\n"
         "match.\"subject.O\" = \"Acme Bench\"\n"
         "match.\"subject.OU\" = \"meter\"\n"
         "match.\"subject.CN\" = { prefix = \"d-\" }\n"
         "ca = \"issuing-ca.pem\"\n"
         "publish = [\"bench/${subject.CN}/telemetry\"]\n"
         "subscribe = [\"bench/${subject.CN}/cmd/#\"]\n\n"
         "[[role]]\n"
         "name = \"collector\"\n"
         "match.\"subject.OU\" = \"collector\"\n"
         "subscribe = [\"bench/+/telemetry\"]\n";
}

const char kPolicyHead[] = "version = 1\n\n[connect]\nclient_id = \"${subject.CN}\"\n\n";

// R-2 per-device roles (CN + O exact, the device's CA, the device's own
// topics written out: the same permissions as the "device" role; like the
// per-device roles bench/policy_bench.cc builds) followed by the two common roles: R roles in all.
std::string RolesPolicy(int roles) {
  std::string t;
  t.reserve(static_cast<size_t>(roles) * 260 + 1024);
  t += kPolicyHead;
  for (int i = 0; i < roles - 2; ++i) {
    const std::string n = std::to_string(i);
    const std::string cn = DeviceCn(i);
    t += "[[role]]\nname = \"dev-" + n + "\"\n";
    t += "match.\"subject.CN\" = \"" + cn + "\"\n";
    t += "match.\"subject.O\" = \"Acme Bench\"\n";
    t += "ca = \"issuing-ca.pem\"\n";
    t += "publish = [\"bench/" + cn + "/telemetry\"]\n";
    t += "subscribe = [\"bench/" + cn + "/cmd/#\"]\n\n";
  }
  t += CommonRoles();
  return t;
}

// One entity: certificate PEM then key PEM, appended to `out`.
void AppendEntity(const TestCa& ca, const std::string& ou, const std::string& cn, const std::string* locality,
                  const std::string* san, int64_t now, std::string* out) {
  CertBuilder b = ca.Issue();
  b.Subject("O", "Acme Bench").Subject("OU", ou);
  if (locality != nullptr) b.Subject("L", *locality);
  b.Subject("CN", cn);
  if (san != nullptr) b.SanDns(*san);
  b.Validity(now - 3600, now + 365 * kDay);
  X509Ptr cert = b.Build();
  *out += testing::ToPem(cert.get());
  *out += testing::KeyToPem(b.key());
}

}  // namespace

std::string DeviceCn(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "d-%06d", i);
  return buf;
}

std::string CollectorCn(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "c-%03d", i);
  return buf;
}

int RunFleet(const FleetOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  if (::mkdir(o.dir.c_str(), 0755) != 0 && errno != EEXIST) {
    std::fprintf(stderr, "certacl-loadgen: cannot create %s: %s\n", o.dir.c_str(), std::strerror(errno));
    return 1;
  }
  const std::string dir = o.dir + "/";
  const int64_t now = static_cast<int64_t>(std::time(nullptr));

  TestCa root = TestCa::Create("Acme Bench Root CA");
  TestCa issuing = root.CreateIntermediate("Acme Bench Issuing CA");
  const std::string root_pem = testing::ToPem(root.cert.get());
  const std::string issuing_pem = testing::ToPem(issuing.cert.get());

  CertBuilder sb = root.Issue();
  sb.Subject("CN", "localhost").SanDns("localhost").SanIp("127.0.0.1").Validity(now - 3600, now + 365 * kDay);
  X509Ptr server = sb.Build();

  bool ok = WriteWhole(dir + "root-ca.pem", root_pem) && WriteWhole(dir + "root-ca.key", testing::KeyToPem(root.key.get())) &&
            WriteWhole(dir + "issuing-ca.pem", issuing_pem) &&
            WriteWhole(dir + "issuing-ca.key", testing::KeyToPem(issuing.key.get())) &&
            WriteWhole(dir + "ca-bundle.pem", root_pem + issuing_pem) &&
            WriteWhole(dir + "server.pem", testing::ToPem(server.get())) &&
            WriteWhole(dir + "server.key", testing::KeyToPem(sb.key()));
  if (!ok) return 1;

  std::string devices;
  devices.reserve(static_cast<size_t>(o.devices) * 1100);
  for (int i = 0; i < o.devices; ++i) {
    const std::string cn = DeviceCn(i);
    const std::string locality = "city-" + std::to_string(i % 10);
    const std::string san = cn + ".bench.example";
    AppendEntity(issuing, "meter", cn, &locality, &san, now, &devices);
  }
  std::string collectors;
  for (int i = 0; i < o.collectors; ++i) AppendEntity(issuing, "collector", CollectorCn(i), nullptr, nullptr, now, &collectors);
  if (!WriteWhole(dir + "devices.pem", devices) || !WriteWhole(dir + "collectors.pem", collectors)) return 1;

  // The CRL: 16-octet serials never collide with the 8-octet ones CertBuilder gives the fleet.
  const int crl_entries = o.crl_entries > 0 ? o.crl_entries : 3;
  testing::CrlSpec spec;
  spec.serials = testing::RandomSerials(static_cast<size_t>(crl_entries), /*seed=*/6);
  spec.this_update = now - 3600;
  spec.next_update = now + 7 * kDay;
  spec.revocation_date = now - kDay;
  spec.crl_number = testing::SerialFromUint64(1);
  if (!WriteWhole(dir + "crl.pem", testing::ToPemCrl(testing::BuildCrlDer(issuing, spec)))) return 1;

  if (!WriteWhole(dir + "policy.toml", kPolicyHead + CommonRoles())) return 1;
  if (o.roles > 0 && !WriteWhole(dir + "policy-roles.toml", RolesPolicy(o.roles))) return 1;

  std::string acl = "# Mosquitto acl_file equivalent of policy.toml (use_identity_as_username: username = CN)\n";
  acl += "pattern write bench/%u/telemetry\n";
  acl += "pattern read bench/%u/cmd/#\n";
  for (int i = 0; i < o.collectors; ++i) acl += "\nuser " + CollectorCn(i) + "\ntopic read bench/+/telemetry\n";
  if (!WriteWhole(dir + "acl_file", acl)) return 1;

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  char json[256];
  std::snprintf(json, sizeof json, "{\"devices\":%d,\"collectors\":%d,\"crl_entries\":%d,\"roles\":%d,\"seconds\":%.3f}\n",
                o.devices, o.collectors, crl_entries, o.roles, seconds);
  if (!WriteWhole(dir + "fleet.json", json)) return 1;
  std::fputs(json, stdout);
  std::fprintf(stderr, "fleet: %d devices, %d collectors, %d CRL entries, %d roles in %s (%.2f s)\n", o.devices,
               o.collectors, crl_entries, o.roles, o.dir.c_str(), seconds);
  return 0;
}

}  // namespace certacl::loadgen
