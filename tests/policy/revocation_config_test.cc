// Tests for the [revocation] table of the policy file: defaults, every key,
// and the exact message for each kind of mistake.
#include <gtest/gtest.h>

#include "policy/lint.h"
#include "policy/policy.h"
#include "tests/testing/cert_builder.h"
#include "tests/testing/temp_dir.h"

namespace certacl {
namespace {

using testing::TempDir;
using testing::TestCa;
using testing::ToPem;
using testing::WriteFile;

class RevocationConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(dir_.path() + "/ca.pem", ToPem(ca_.cert.get()));
    WriteFile(dir_.path() + "/ca.crl", "not yet");
  }
  std::shared_ptr<const Policy> Load(const std::string& body, std::vector<Diagnostic>* diags) {
    return LoadPolicyString("version = 1\n" + body, "p.toml", dir_.path(), diags);
  }
  std::string Errors(const std::string& body) {
    std::vector<Diagnostic> diags;
    EXPECT_EQ(Load(body, &diags), nullptr);
    std::string all;
    for (const auto& d : diags) all += d.ToString() + "\n";
    return all;
  }
  TempDir dir_;
  TestCa ca_ = TestCa::Create("Revocation Test CA");
};

TEST_F(RevocationConfigTest, AbsentTableMeansOff) {
  std::vector<Diagnostic> diags;
  auto p = Load("", &diags);
  ASSERT_NE(p, nullptr);
  EXPECT_FALSE(p->revocation.enabled());
  EXPECT_TRUE(p->revocation.disconnect_expired);
}

TEST_F(RevocationConfigTest, TableDefaultsToHardFailAndLoadsEverything) {
  std::vector<Diagnostic> diags;
  auto p = Load(R"([revocation]
crl_files = ["ca.crl", "."]
crl_from_certificate = true
ocsp = "http://127.0.0.1:8888/"
issuers = ["ca.pem"]
stale = "allow"
stale_grace = "2h"
crl_refresh = "5m"
crl_file_poll = "1s"
ocsp_max_age = "30m"
ocsp_timeout = "3s"
fetch_timeout = "20s"
clock_skew = "60s"
failure_backoff = "2s"
crl_max_size_mb = 64
ocsp_nonce = true
disconnect_expired = false
)", &diags);
  ASSERT_NE(p, nullptr) << (diags.empty() ? "" : diags[0].ToString());
  const RevocationConfig& rc = p->revocation;
  EXPECT_EQ(rc.mode, RevocationConfig::Mode::kHardFail);
  ASSERT_EQ(rc.crl_files.size(), 2u);
  EXPECT_EQ(rc.crl_files[0], dir_.path() + "/ca.crl");
  EXPECT_TRUE(rc.crl_from_certificate);
  EXPECT_EQ(rc.ocsp, RevocationConfig::Ocsp::kUrl);
  EXPECT_EQ(rc.ocsp_url, "http://127.0.0.1:8888/");
  ASSERT_EQ(rc.issuers.size(), 1u);
  EXPECT_EQ(X509_cmp(rc.issuers[0].cert.get(), ca_.cert.get()), 0);
  EXPECT_EQ(rc.stale, RevocationConfig::Stale::kAllow);
  EXPECT_EQ(rc.stale_grace_s, 7200);
  EXPECT_EQ(rc.crl_refresh_s, 300);
  EXPECT_EQ(rc.crl_file_poll_s, 1);
  EXPECT_EQ(rc.ocsp_max_age_s, 1800);
  EXPECT_EQ(rc.ocsp_timeout_s, 3);
  EXPECT_EQ(rc.fetch_timeout_s, 20);
  EXPECT_EQ(rc.clock_skew_s, 60);
  EXPECT_EQ(rc.failure_backoff_s, 2);
  EXPECT_EQ(rc.crl_max_bytes, size_t{64} << 20);
  EXPECT_TRUE(rc.ocsp_nonce);
  EXPECT_FALSE(rc.disconnect_expired);
}

TEST_F(RevocationConfigTest, ModesAndOcspForms) {
  std::vector<Diagnostic> diags;
  auto soft = Load("[revocation]\nmode = \"soft-fail\"\nocsp = \"from-certificate\"\nissuers = [\"ca.pem\"]\n", &diags);
  ASSERT_NE(soft, nullptr);
  EXPECT_EQ(soft->revocation.mode, RevocationConfig::Mode::kSoftFail);
  EXPECT_EQ(soft->revocation.ocsp, RevocationConfig::Ocsp::kFromCertificate);
  auto off = Load("[revocation]\nmode = \"off\"\n", &diags);
  ASSERT_NE(off, nullptr);
  EXPECT_FALSE(off->revocation.enabled());
}

TEST_F(RevocationConfigTest, IssuersDefaultToThePolicysCas) {
  std::vector<Diagnostic> diags;
  auto p = Load("[[role]]\nname = \"r\"\nca = \"ca.pem\"\npublish = [\"a\"]\n[revocation]\nocsp = \"from-certificate\"\n",
                &diags);
  ASSERT_NE(p, nullptr) << (diags.empty() ? "" : diags[0].ToString());
  ASSERT_EQ(p->revocation.issuers.size(), 1u);
}

TEST_F(RevocationConfigTest, Errors) {
  EXPECT_EQ(Errors("[revocation]\nmode = \"strict\"\nocsp = \"from-certificate\"\nissuers = [\"ca.pem\"]\n"),
            "p.toml:3:8: error: revocation.mode must be \"hard-fail\", \"soft-fail\" or \"off\"\n");
  EXPECT_EQ(Errors("[revocation]\nocsp = \"https://x/\"\nissuers = [\"ca.pem\"]\n"),
            "p.toml:3:8: error: revocation.ocsp must be \"off\", \"from-certificate\" or a responder URL such as "
            "\"http://ocsp.example.com/\" (https is not supported: OCSP responses are signed)\n");
  EXPECT_EQ(Errors("[revocation]\ncrl_files = [\"missing.crl\"]\nissuers = [\"ca.pem\"]\n"),
            "p.toml:3:14: error: revocation.crl_files: \"" + dir_.path() +
                "/missing.crl\" does not exist; relative paths are resolved against the policy file's directory\n");
  EXPECT_EQ(Errors("[revocation]\nissuers = [\"ca.pem\"]\n"),
            "p.toml:2:1: error: [revocation] has no source of revocation data: set crl_files, "
            "crl_from_certificate = true or ocsp (or mode = \"off\")\n");
  EXPECT_EQ(Errors("[revocation]\nocsp = \"from-certificate\"\n"),
            "p.toml:2:1: error: [revocation] needs the issuing CA certificates, to verify CRLs and to ask OCSP: set "
            "issuers = [\"issuing-ca.pem\"] (or name them with `ca` in a role)\n");
  EXPECT_EQ(Errors("[revocation]\nocsp = \"from-certificate\"\nissuers = [\"ca.pem\"]\nstale = \"maybe\"\n"),
            "p.toml:5:9: error: revocation.stale must be \"deny\" or \"allow\"\n");
  EXPECT_EQ(Errors("[revocation]\nocsp = \"from-certificate\"\nissuers = [\"ca.pem\"]\ncrl_file_poll = \"1m\"\n"),
            "p.toml:5:17: error: revocation.crl_file_poll must be at most 10s\n");
  EXPECT_EQ(Errors("[revocation]\nocsp = \"from-certificate\"\nissuers = [\"ca.pem\"]\nocsp_timeout = \"soon\"\n"),
            "p.toml:5:16: error: revocation.ocsp_timeout must be a duration such as \"30d\", \"12h\", \"90m\" or "
            "\"3600s\"\n");
  EXPECT_EQ(Errors("[revocation]\nocsp = \"from-certificate\"\nissuers = [\"ca.pem\"]\nocsp_timeout = \"0s\"\n"),
            "p.toml:5:16: error: revocation.ocsp_timeout must be at least 1s\n");
  EXPECT_EQ(Errors("[revocation]\nocsp = \"from-certificate\"\nissuers = [\"ca.pem\"]\ncrl_max_size_mb = 0\n"),
            "p.toml:5:19: error: revocation.crl_max_size_mb must be an integer from 1 to 4096\n");
  EXPECT_EQ(Errors("[revocation]\ncrl_from_certificate = true\nissuers = [\"ca.pem\"]\ncrl_cache_dir = \"nope\"\n"),
            "p.toml:5:17: error: revocation.crl_cache_dir: \"" + dir_.path() +
                "/nope\" is not a directory (create it, writable by the broker's user)\n");
  EXPECT_NE(Errors("[revocation]\nocsp = \"from-certificate\"\nissuers = [\"ca.pem\"]\ncrl_file = []\n")
                .find("unknown key \"crl_file\" in [revocation] (did you mean \"crl_files\"?)"),
            std::string::npos);
}

}  // namespace
}  // namespace certacl

namespace certacl {
namespace {

TEST_F(RevocationConfigTest, LintWarnsAboutDevicesHardFailWouldAlwaysRefuse) {
  testing::TestCa other = testing::TestCa::Create("Other CA");
  WriteFile(dir_.path() + "/other.pem", ToPem(other.cert.get()));
  std::vector<Diagnostic> diags;
  auto p = Load(R"([[role]]
name = "r"
ca = "other.pem"
publish = ["a"]
[revocation]
issuers = ["ca.pem"]
ocsp = "from-certificate"
)", &diags);
  ASSERT_NE(p, nullptr) << (diags.empty() ? "" : diags[0].ToString());
  std::vector<Diagnostic> lint = LintPolicy(*p);
  ASSERT_EQ(lint.size(), 2u);
  EXPECT_EQ(lint[0].ToString(),
            "p.toml:6:1: warning: [revocation] mode = \"hard-fail\" with only per-certificate sources: a device whose "
            "certificate names no OCSP responder is always refused (add crl_files or an OCSP URL, or use soft-fail)");
  EXPECT_EQ(lint[1].ToString(),
            "p.toml:2:1: warning: role 'r' (#0) trusts /CN=Other CA (other.pem), which is not in revocation.issuers: "
            "its devices have no revocation status and hard-fail refuses them");
  // soft-fail, or the CA listed: nothing to say.
  auto q = Load("[[role]]\nname = \"r\"\nca = \"ca.pem\"\npublish = [\"a\"]\n[revocation]\nmode = \"soft-fail\"\n"
                "ocsp = \"from-certificate\"\n", &diags);
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(LintPolicy(*q).empty());
}

}  // namespace
}  // namespace certacl
