// Tests of revocation::Service with CRL files: what the broker thread sees
// (Check, Poll, IsRevoked) as changes are picked up (in place, or by the
// background worker), that threads are started only for the work that needs
// them, and that nothing ever widens access (bad signature, rollback, stale
// data).
#include "plugin/revocation/service.h"

#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <thread>

#include "plugin/revocation/serial_set.h"
#include "tests/testing/cert_builder.h"
#include "tests/testing/crl_builder.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/threads.h"

namespace certacl::revocation {
namespace {

using certacl::testing::BuildCrlDer;
using certacl::testing::CrlSpec;
using certacl::testing::TempDir;
using certacl::testing::TestCa;
using certacl::testing::ToPem;
using certacl::testing::WriteFile;

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

// Threads of this process (each test runs in a process of its own). A
// sanitizer's runtime may add one of its own once a first thread exists.
size_t Threads() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& task : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// The revocation workers of this process, by their names.
size_t Workers() { return certacl::testing::RevocationWorkers(); }

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(dir_.File("ca.pem"), ToPem(ca_.cert.get()));
    std::filesystem::create_directories(dir_.File("crl"));
    good_ = ca_.Issue().Subject("CN", "good").Build();
    bad_ = ca_.Issue().Subject("CN", "bad").Build();
  }

  std::string Serial(X509* cert) { return SerialKey(X509_get0_serialNumber(cert)); }

  CrlSpec Spec(std::vector<std::string> serials, int number) {
    CrlSpec spec;
    spec.serials = std::move(serials);
    spec.this_update = Now() - 60 + number;  // later numbers are later CRLs
    spec.next_update = Now() + 86400;
    spec.crl_number = certacl::testing::SerialFromUint64(static_cast<uint64_t>(number));
    return spec;
  }

  void PublishCrl(const std::string& der) {
    WriteFile(dir_.File("crl/.tmp"), der);
    std::filesystem::rename(dir_.File("crl/.tmp"), dir_.File("crl/ca.crl"));
  }

  std::shared_ptr<const Policy> LoadPolicy(const std::string& revocation) {
    std::vector<Diagnostic> diags;
    auto p = LoadPolicyString("version = 1\n[revocation]\nissuers = [\"ca.pem\"]\n" + revocation, "p.toml",
                              dir_.path(), &diags);
    EXPECT_NE(p, nullptr) << (diags.empty() ? "" : diags[0].ToString());
    return p;
  }

  void Configure(Service* s, const std::string& revocation) {
    std::vector<std::string> log;
    s->Configure(LoadPolicy(revocation), Now(), true, &log);
    log_ = log;
  }

  // Polls until an update arrives (bounded); returns it.
  bool WaitForUpdate(Service* s, Update* u, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (s->Poll(Now(), u)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  TempDir dir_;
  TestCa ca_ = TestCa::Create("Service Test CA");
  X509Ptr good_, bad_;
  std::vector<std::string> log_;
};

TEST_F(ServiceTest, OffChecksNothing) {
  Service s;
  std::vector<std::string> log;
  std::vector<Diagnostic> diags;
  s.Configure(LoadPolicyString("version = 1\n", "p.toml", dir_.path(), &diags), Now(), true, &log);
  EXPECT_FALSE(s.enabled());
  EXPECT_EQ(s.Check(good_.get(), Now()).status, Status::kGood);
}

TEST_F(ServiceTest, InitialCrlFileIsLoadedBeforeTheFirstCheck) {
  PublishCrl(BuildCrlDer(ca_, Spec({Serial(bad_.get())}, 1)));
  Service s;
  Configure(&s, "crl_files = [\"crl\"]\n");
  EXPECT_EQ(s.crl_entries(), 1u);
  CheckResult good = s.Check(good_.get(), Now());
  EXPECT_EQ(good.status, Status::kGood);
  CheckResult bad = s.Check(bad_.get(), Now());
  EXPECT_EQ(bad.status, Status::kRevoked);
  EXPECT_NE(bad.detail.find("is on the CRL of"), std::string::npos) << bad.detail;
  EXPECT_TRUE(s.IsRevoked(bad.key));
  EXPECT_FALSE(s.IsRevoked(good.key));
  EXPECT_EQ(s.KeyOf(bad_.get()), bad.key);
  EXPECT_EQ(s.counters().cache_hits, 2u);
}

TEST_F(ServiceTest, CertificateOfAnotherIssuerHasNoKnownStatus) {
  PublishCrl(BuildCrlDer(ca_, Spec({}, 1)));
  Service s;
  Configure(&s, "crl_files = [\"crl\"]\n");
  TestCa other = TestCa::Create("Other CA");
  X509Ptr stranger = other.Issue().Subject("CN", "x").Build();
  CheckResult r = s.Check(stranger.get(), Now());
  EXPECT_EQ(r.status, Status::kUnknown);
  EXPECT_TRUE(r.key.empty());
  EXPECT_NE(r.detail.find("is not among revocation.issuers"), std::string::npos) << r.detail;
}

TEST_F(ServiceTest, NoCrlYetIsUnknown) {
  Service s;
  Configure(&s, "crl_files = [\"crl\"]\n");
  CheckResult r = s.Check(good_.get(), Now());
  EXPECT_EQ(r.status, Status::kUnknown);
  EXPECT_NE(r.detail.find("no CRL of"), std::string::npos) << r.detail;
}

TEST_F(ServiceTest, NewCrlFileRevokesAndListsTheNewlyRevokedKeys) {
  PublishCrl(BuildCrlDer(ca_, Spec({}, 1)));
  Service s;
  Configure(&s, "crl_files = [\"crl\"]\ncrl_file_poll = \"1s\"\n");
  const std::string key = s.Check(bad_.get(), Now()).key;
  const uint64_t generation = s.generation();
  PublishCrl(BuildCrlDer(ca_, Spec({Serial(bad_.get())}, 2)));
  Update u;
  ASSERT_TRUE(WaitForUpdate(&s, &u));
  EXPECT_FALSE(u.recheck_all);
  EXPECT_EQ(u.revoked_keys, std::vector<std::string>{key});
  EXPECT_NE(s.generation(), generation);
  EXPECT_TRUE(s.IsRevoked(key));
  EXPECT_EQ(s.Check(bad_.get(), Now()).status, Status::kRevoked);
  EXPECT_EQ(s.Check(good_.get(), Now()).status, Status::kGood);
  EXPECT_EQ(s.counters().crl_adopted, 2u);  // the initial one and this one
}

TEST_F(ServiceTest, BadSignatureAndRollbackChangeNothing) {
  PublishCrl(BuildCrlDer(ca_, Spec({Serial(bad_.get())}, 5)));
  Service s;
  Configure(&s, "crl_files = [\"crl\"]\ncrl_file_poll = \"1s\"\n");
  ASSERT_EQ(s.Check(bad_.get(), Now()).status, Status::kRevoked);

  // Same name, another key, a higher number, nobody revoked.
  CrlSpec forged = Spec({}, 9);
  certacl::EvpPkeyPtr other = certacl::testing::GenerateKey(certacl::testing::KeyType::kEcP256);
  forged.sign_with = other.get();
  PublishCrl(BuildCrlDer(ca_, forged));
  Update u;
  ASSERT_TRUE(WaitForUpdate(&s, &u));
  ASSERT_FALSE(u.log_warning.empty());
  EXPECT_NE(u.log_warning[0].find("not used"), std::string::npos) << u.log_warning[0];
  EXPECT_EQ(s.Check(bad_.get(), Now()).status, Status::kRevoked);

  // A genuine but older CRL (lower number) is a rollback.
  PublishCrl(BuildCrlDer(ca_, Spec({}, 4)));
  u = Update();
  ASSERT_TRUE(WaitForUpdate(&s, &u));
  ASSERT_FALSE(u.log_warning.empty());
  EXPECT_NE(u.log_warning[0].find("rollback is refused"), std::string::npos) << u.log_warning[0];
  EXPECT_EQ(s.Check(bad_.get(), Now()).status, Status::kRevoked);
  EXPECT_EQ(s.counters().crl_rejected, 2u);
}

TEST_F(ServiceTest, StaleCrlFollowsThePolicy) {
  CrlSpec spec = Spec({Serial(bad_.get())}, 1);
  spec.this_update = Now() - 3 * 86400;
  spec.next_update = Now() - 2 * 86400;
  PublishCrl(BuildCrlDer(ca_, spec));
  {
    Service s;
    Configure(&s, "crl_files = [\"crl\"]\nstale_grace = \"1d\"\n");
    CheckResult r = s.Check(good_.get(), Now());
    EXPECT_EQ(r.status, Status::kStale);
    EXPECT_NE(r.detail.find("is stale"), std::string::npos) << r.detail;
    EXPECT_EQ(s.Check(bad_.get(), Now()).status, Status::kRevoked);  // still honoured
  }
  {
    Service s;
    Configure(&s, "crl_files = [\"crl\"]\nstale_grace = \"3d\"\n");  // within the grace
    EXPECT_EQ(s.Check(good_.get(), Now()).status, Status::kGood);
  }
  {
    Service s;
    Configure(&s, "crl_files = [\"crl\"]\nstale = \"allow\"\nstale_grace = \"0s\"\n");
    EXPECT_EQ(s.Check(good_.get(), Now()).status, Status::kGood);
    EXPECT_EQ(s.Check(bad_.get(), Now()).status, Status::kRevoked);
  }
}

TEST_F(ServiceTest, ReloadRereadsFilesAtOnceAndKeepsRevocations) {
  PublishCrl(BuildCrlDer(ca_, Spec({Serial(bad_.get())}, 1)));
  Service s;
  Configure(&s, "crl_files = [\"crl\"]\ncrl_file_poll = \"10s\"\n");
  ASSERT_EQ(s.Check(good_.get(), Now()).status, Status::kGood);
  PublishCrl(BuildCrlDer(ca_, Spec({Serial(bad_.get()), Serial(good_.get())}, 2)));
  std::vector<std::string> log;
  s.Configure(LoadPolicy("crl_files = [\"crl\"]\ncrl_file_poll = \"10s\"\n"), Now(), false, &log);
  Update u;
  ASSERT_TRUE(WaitForUpdate(&s, &u, std::chrono::milliseconds(3000)));  // well before the 10 s poll
  EXPECT_EQ(s.Check(good_.get(), Now()).status, Status::kRevoked);
  EXPECT_EQ(s.Check(bad_.get(), Now()).status, Status::kRevoked);
}

TEST_F(ServiceTest, OcspWithoutAnswerIsUnknownAndFailuresBackOff) {
  // A responder on a port nobody listens on: refused at once.
  Service s;
  Configure(&s, "ocsp = \"http://127.0.0.1:9/\"\nfailure_backoff = \"30s\"\n");
  CheckResult r = s.Check(good_.get(), Now());
  EXPECT_EQ(r.status, Status::kUnknown);
  EXPECT_NE(r.detail.find("no OCSP answer yet"), std::string::npos) << r.detail;
  Update u;
  ASSERT_TRUE(WaitForUpdate(&s, &u));
  ASSERT_EQ(s.counters().fetches.count("http://127.0.0.1:9/"), 1u);
  EXPECT_EQ(s.counters().fetches.at("http://127.0.0.1:9/").failed, 1u);
  r = s.Check(good_.get(), Now());
  EXPECT_EQ(r.status, Status::kUnknown);
  EXPECT_NE(r.detail.find("the OCSP query failed"), std::string::npos) << r.detail;
  // Within the backoff nothing new is queued.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(s.Poll(Now(), &u));
}

TEST_F(ServiceTest, SeveralIssuersEachWithItsOwnCrl) {
  TestCa second = TestCa::Create("Second Issuing CA");
  WriteFile(dir_.File("second.pem"), ToPem(second.cert.get()));
  X509Ptr second_bad = second.Issue().Subject("CN", "second-bad").Build();
  X509Ptr second_good = second.Issue().Subject("CN", "second-good").Build();
  WriteFile(dir_.File("crl/a.crl"), BuildCrlDer(ca_, Spec({Serial(bad_.get())}, 1)));
  WriteFile(dir_.File("crl/b.crl"), certacl::testing::ToPemCrl(BuildCrlDer(second, Spec({Serial(second_bad.get())}, 1))));
  Service s;
  std::vector<Diagnostic> diags;
  std::vector<std::string> log;
  s.Configure(LoadPolicyString("version = 1\n[revocation]\nissuers = [\"ca.pem\", \"second.pem\"]\ncrl_files = [\"crl\"]\n",
                               "p.toml", dir_.path(), &diags),
              Now(), true, &log);
  EXPECT_EQ(s.crl_entries(), 2u);
  EXPECT_EQ(s.Check(bad_.get(), Now()).status, Status::kRevoked);
  EXPECT_EQ(s.Check(good_.get(), Now()).status, Status::kGood);
  EXPECT_EQ(s.Check(second_bad.get(), Now()).status, Status::kRevoked);
  EXPECT_EQ(s.Check(second_good.get(), Now()).status, Status::kGood);
}

// Local CRL files of at most kInlineCrlBytes need no thread: the first
// thread would switch the broker to glibc's locked malloc for good.
TEST_F(ServiceTest, SmallLocalCrlsStartNoThread) {
  PublishCrl(BuildCrlDer(ca_, Spec({}, 1)));
  const size_t before = Threads();
  Service s;
  Configure(&s, "crl_files = [\"crl\"]\ncrl_file_poll = \"1s\"\n");
  EXPECT_EQ(Threads(), before);
  PublishCrl(BuildCrlDer(ca_, Spec({Serial(bad_.get())}, 2)));
  Update u;
  ASSERT_TRUE(WaitForUpdate(&s, &u));
  EXPECT_EQ(s.Check(bad_.get(), Now()).status, Status::kRevoked);
  // A reload re-reads the files at the next Poll, still in place.
  PublishCrl(BuildCrlDer(ca_, Spec({Serial(bad_.get()), Serial(good_.get())}, 3)));
  std::vector<std::string> log;
  s.Configure(LoadPolicy("crl_files = [\"crl\"]\ncrl_file_poll = \"10s\"\n"), Now(), false, &log);
  ASSERT_TRUE(s.Poll(Now(), &u));
  EXPECT_TRUE(u.recheck_all);
  EXPECT_EQ(s.Check(good_.get(), Now()).status, Status::kRevoked);
  EXPECT_EQ(Threads(), before);
}

// A CRL file larger than kInlineCrlBytes is loaded aside at start-up (no
// thread remains), and when it changes a worker reads it: the broker thread
// never parses it.
TEST_F(ServiceTest, LargeCrlFileChangedIsReadByAWorker) {
  CrlSpec spec = Spec(certacl::testing::RandomSerials(40000, 7), 1);
  const std::string first = BuildCrlDer(ca_, spec);
  ASSERT_GT(first.size(), Service::kInlineCrlBytes);
  PublishCrl(first);
  Service s;
  Configure(&s, "crl_files = [\"crl\"]\ncrl_file_poll = \"1s\"\n");
  EXPECT_EQ(s.crl_entries(), 40000u);
  EXPECT_EQ(Workers(), 0u);  // parsed on a thread joined at once
  spec.serials.push_back(Serial(bad_.get()));
  spec.this_update += 1;
  spec.crl_number = certacl::testing::SerialFromUint64(2);
  PublishCrl(BuildCrlDer(ca_, spec));
  Update u;
  ASSERT_TRUE(WaitForUpdate(&s, &u));
  if (s.crl_entries() != 40001u) {
    ASSERT_TRUE(WaitForUpdate(&s, &u));  // the worker's start, then its CRL
  }
  EXPECT_EQ(s.crl_entries(), 40001u);
  EXPECT_EQ(s.Check(bad_.get(), Now()).status, Status::kRevoked);
  EXPECT_EQ(Workers(), 1u);  // the CRL worker; no OCSP workers without OCSP
}

TEST_F(ServiceTest, NetworkSourcesStartTheirWorkers) {
  {
    // Turned on by a reload: started then, once.
    Service s;
    const size_t before = Threads();
    Configure(&s, "crl_files = [\"crl\"]\n");
    EXPECT_EQ(Threads(), before);
    EXPECT_EQ(Workers(), 0u);
    std::vector<std::string> log;
    s.Configure(LoadPolicy("ocsp = \"http://127.0.0.1:9/\"\n"), Now(), false, &log);
    Update u;
    s.Poll(Now(), &u);
    EXPECT_EQ(Workers(), 3u);
    s.Configure(LoadPolicy("ocsp = \"http://127.0.0.1:9/\"\n"), Now(), false, &log);
    s.Poll(Now(), &u);
    EXPECT_EQ(Workers(), 3u);
  }
  {
    Service s;
    Configure(&s, "crl_from_certificate = true\n");
    EXPECT_EQ(Workers(), 1u);  // the CRL worker only
  }
  {
    Service s;
    Configure(&s, "ocsp = \"http://127.0.0.1:9/\"\n");
    EXPECT_EQ(Workers(), 3u);  // the CRL worker (refreshes) and two OCSP workers
  }
}

TEST_F(ServiceTest, TurnedOnByAReloadLoadsFilesAtTheNextPoll) {
  PublishCrl(BuildCrlDer(ca_, Spec({Serial(bad_.get())}, 1)));
  Service s;
  std::vector<std::string> log;
  std::vector<Diagnostic> diags;
  s.Configure(LoadPolicyString("version = 1\n", "p.toml", dir_.path(), &diags), Now(), true, &log);
  ASSERT_FALSE(s.enabled());
  s.Configure(LoadPolicy("crl_files = [\"crl\"]\n"), Now(), false, &log);
  ASSERT_TRUE(s.enabled());
  EXPECT_EQ(s.crl_entries(), 0u);  // not read in Configure: at the next Poll
  EXPECT_EQ(s.Check(bad_.get(), Now()).status, Status::kUnknown);
  Update u;
  ASSERT_TRUE(WaitForUpdate(&s, &u));
  EXPECT_EQ(s.crl_entries(), 1u);
  EXPECT_EQ(s.Check(bad_.get(), Now()).status, Status::kRevoked);
  EXPECT_EQ(s.Check(good_.get(), Now()).status, Status::kGood);
}

TEST(SerialSetForEach, VisitsEverySerialOnce) {
  SerialSet::Builder b;
  for (int i = 1; i <= 1000; ++i) b.Add(certacl::testing::SerialFromUint64(static_cast<uint64_t>(i) * 7919));
  SerialSet set = std::move(b).Build();
  size_t n = 0;
  set.ForEach([&](std::string_view s) {
    ++n;
    EXPECT_TRUE(set.Contains(s));
  });
  EXPECT_EQ(n, 1000u);
}

}  // namespace
}  // namespace certacl::revocation
