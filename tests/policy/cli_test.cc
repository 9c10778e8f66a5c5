// Tests for the certacl command line: exit codes and what it prints.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>

#include "tests/testing/cert_builder.h"
#include "tests/testing/temp_dir.h"

namespace certacl {
namespace {

using testing::CertBuilder;

struct CliRun {
  int exit_code;
  std::string out;  // stdout and stderr
};

CliRun Cli(const std::string& args) {
  std::string cmd = std::string(CERTACL_CLI) + " " + args + " 2>&1";
  CliRun r{-1, ""};
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.out.append(buf, n);
  int status = pclose(f);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Write("policy.toml", R"(version = 1
[connect]
client_id = "${subject.CN}"
[[role]]
name = "meter"
match."subject.OU" = "meter"
match."subject.CN" = { regex = "m-[0-9]+" }
publish = [{ topic = "meters/${subject.CN}/reading", max_qos = 1 }]
subscribe = ["meters/${subject.CN}/cmd/#"]
[[deny]]
name = "no-sys"
publish = ["$SYS/#"]
)");
    Write("meter.pem", testing::ToPem(CertBuilder().Subject("OU", "meter").Subject("CN", "m-1").Build().get()));
    Write("evil.pem", testing::ToPem(CertBuilder().Subject("OU", "meter").Subject("CN", "+").Build().get()));
    Write("broken.toml", "version = 1\n[[role]]\nname = \"r\"\npubish = []\n");
    Write("open.toml", "version = 1\n[[role]]\nname = \"any-meter\"\nmatch.\"subject.OU\" = \"meter\"\n"
                       "match.\"subject.CN\" = { glob = \"*\" }\nsubscribe = [\"meters/${subject.CN}/cmd/#\"]\n");
    Write("warn.toml", "version = 1\n[[role]]\nname = \"r\"\npublish = [\"a/${subject.L}\"]\n");
  }
  void Write(const std::string& name, const std::string& text) { dir_.Write(name, text); }
  std::string Path(const std::string& name) const { return dir_.File(name); }
  std::string Explain(const std::string& rest) const {
    return "explain --policy " + Path("policy.toml") + " --cert " + Path("meter.pem") + " " + rest;
  }
  testing::TempDir dir_;
};

TEST_F(CliTest, ExplainAllowedPublishExitsZeroAndNamesTheRule) {
  CliRun r = Cli(Explain("--publish meters/m-1/reading"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("  subject.CN               \"m-1\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("client id: \"m-1\" (bound by connect.client_id)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("role 'meter' (#0) at "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("allow publish    meters/m-1/reading"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("decision: ALLOW publish \"meters/m-1/reading\" (QoS 0): role 'meter' (#0) publish[0] "
                       "\"meters/${subject.CN}/reading\""),
            std::string::npos)
      << r.out;
}

TEST_F(CliTest, ExplainDeniedExitsOne) {
  CliRun r = Cli(Explain("--publish meters/m-2/reading"));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("decision: DENY publish \"meters/m-2/reading\" (QoS 0): no rule: default deny"), std::string::npos)
      << r.out;
  r = Cli(Explain("--publish meters/m-1/reading --qos 2"));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  r = Cli(Explain("--subscribe '$SYS/#'"));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  r = Cli(Explain("--publish '$SYS/x'"));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("deny 'no-sys' (#0) publish[0] \"$SYS/#\""), std::string::npos) << r.out;
}

TEST_F(CliTest, ExplainSubscribeReadConnect) {
  EXPECT_EQ(Cli(Explain("--subscribe 'meters/m-1/cmd/#'")).exit_code, 0);
  EXPECT_EQ(Cli(Explain("--subscribe 'meters/+/cmd/#'")).exit_code, 1);
  EXPECT_EQ(Cli(Explain("--read meters/m-1/cmd/reboot")).exit_code, 0);
  EXPECT_EQ(Cli(Explain("--connect")).exit_code, 0);
  CliRun r = Cli(Explain("--connect --client-id m-2"));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("decision: DENY connect: refused: the client id is not the one bound by connect.client_id"),
            std::string::npos)
      << r.out;
}

TEST_F(CliTest, ExplainShowsWhyAHostileCnGainsNothing) {
  CliRun r = Cli("explain --policy " + Path("open.toml") + " --cert " + Path("evil.pem") + " --subscribe 'meters/+/cmd/#'");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("decision: DENY subscribe \"meters/+/cmd/#\": no rule: default deny"), std::string::npos) << r.out;
  // The strict policy's regex keeps such a CN out altogether.
  r = Cli("explain --policy " + Path("policy.toml") + " --cert " + Path("evil.pem") + " --subscribe 'meters/+/cmd/#'");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("connect refused: no role matches this certificate"), std::string::npos) << r.out;
  r = Cli("explain --policy " + Path("open.toml") + " --cert " + Path("evil.pem") + " --subscribe 'meters/+/cmd/#'");
  EXPECT_NE(r.out.find("is void for this device: subject.CN value \"+\" contains '+'"), std::string::npos) << r.out;
}

TEST_F(CliTest, ExplainJson) {
  CliRun r = Cli(Explain("--read meters/m-1/cmd/x --json"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("{\"certificate\":", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\"decision\":{\"action\":\"read\",\"target\":\"meters/m-1/cmd/x\",\"allowed\":true,"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("\"subject.CN\":[\"m-1\"]"), std::string::npos) << r.out;
}

TEST_F(CliTest, ExplainErrorsExitTwo) {
  CliRun r = Cli("explain --policy " + Path("policy.toml") + " --publish a");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("--cert PEM is required"), std::string::npos) << r.out;
  r = Cli("explain --policy " + Path("policy.toml") + " --cert " + Path("nope.pem") + " --connect");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("cannot read the certificate"), std::string::npos) << r.out;
  r = Cli("explain --policy " + Path("broken.toml") + " --cert " + Path("meter.pem") + " --connect");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("broken.toml:4:1: error: unknown key \"pubish\""), std::string::npos) << r.out;
  r = Cli("explain --policy " + Path("policy.toml") + " --cert " + Path("policy.toml") + " --connect");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  r = Cli(Explain("--connect --publish a"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("give exactly one of"), std::string::npos) << r.out;
}

TEST_F(CliTest, LintExitCodes) {
  CliRun r = Cli("lint " + Path("policy.toml"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("ok (1 roles, 1 deny entries)"), std::string::npos) << r.out;
  r = Cli("lint " + Path("broken.toml"));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("broken.toml:4:1: error: unknown key \"pubish\" in [[role]] #0 (did you mean \"publish\"?)"),
            std::string::npos)
      << r.out;
  r = Cli("lint " + Path("warn.toml"));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("warn.toml:4:12: warning:"), std::string::npos) << r.out;
  r = Cli("lint " + Path("missing.toml"));
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("cannot read the policy file"), std::string::npos) << r.out;
}

TEST_F(CliTest, HelpForEachCommand) {
  EXPECT_EQ(Cli("--help").exit_code, 0);
  CliRun r = Cli("lint --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("usage: certacl lint POLICY"), std::string::npos);
  r = Cli("explain --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("usage: certacl explain"), std::string::npos);
  r = Cli("frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("unknown command \"frobnicate\""), std::string::npos);
}

}  // namespace
}  // namespace certacl
