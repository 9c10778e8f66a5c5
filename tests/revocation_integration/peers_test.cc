// Self-tests of the revocation peers (tests/integration/peers.h): if these
// fail, a revocation test failure says nothing about the plugin. Real
// outcomes only: real `openssl ocsp` answers verified with OCSP_basic_verify
// and the openssl CLI, exact bytes from http.server, what a plain socket
// client sees from the scripted server.
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <openssl/err.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/peers.h"

namespace certacl::integration {
namespace {

using Clock = std::chrono::steady_clock;
using certacl::testing::ToPem;

// Runs a shell command (bounded by timeout(1)); output and exit status.
std::string RunShell(const std::string& command, int* status = nullptr) {
  FILE* p = popen(("timeout 30 " + command + " 2>&1").c_str(), "r");
  if (p == nullptr) return "popen failed";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  if (status != nullptr) *status = st;
  return out;
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t end = s.find(sep, start);
    out.push_back(s.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) return out;
    start = end + 1;
  }
}

DeviceSpec Spec(const std::string& cn, const std::string& o = "") {
  DeviceSpec spec;
  spec.cn = cn;
  spec.o = o;
  return spec;
}
DeviceSpec Cn(const std::string& cn) { return Spec(cn); }

bool ProcessGone(pid_t pid) { return kill(pid, 0) == -1 && errno == ESRCH; }

// utime + stime of a process in clock ticks; -1 if unknown.
long CpuTicks(pid_t pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  // fields after "(comm)": state(3) ppid(4) ... utime(14) stime(15)
  const char* p = stat.c_str() + paren + 2;
  long fields[13] = {};
  int i = 0;
  char* end = nullptr;
  for (++p; i < 13 && *p != '\0'; ++i) {  // skip the state letter
    fields[i] = std::strtol(p, &end, 10);
    p = end;
  }
  return i == 13 ? fields[11] + fields[12] : -1;
}

// Connects to 127.0.0.1:port and closes without sending anything.
void EmptyConnection(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
  close(fd);
}

// OCSP_basic_verify against root + issuing CA (and `extra` untrusted certs).
bool VerifyOcsp(const std::string& der, const Pki& pki, X509* extra = nullptr, std::string* why = nullptr) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  OCSP_RESPONSE* resp = d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(der.size()));
  if (resp == nullptr) return false;
  OCSP_BASICRESP* basic = OCSP_response_get1_basic(resp);
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, pki.root().cert.get());
  X509_STORE_add_cert(store, pki.issuing().cert.get());
  STACK_OF(X509)* certs = sk_X509_new_null();
  if (extra != nullptr) sk_X509_push(certs, extra);
  ERR_clear_error();
  const bool ok = basic != nullptr && OCSP_basic_verify(basic, certs, store, 0) == 1;
  if (!ok && why != nullptr) {
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
    *why = buf;
  }
  sk_X509_free(certs);
  X509_STORE_free(store);
  OCSP_BASICRESP_free(basic);
  OCSP_RESPONSE_free(resp);
  return ok;
}

int CertsInResponse(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  OCSP_RESPONSE* resp = d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(der.size()));
  if (resp == nullptr) return -1;
  OCSP_BASICRESP* basic = OCSP_response_get1_basic(resp);
  const STACK_OF(X509)* certs = basic == nullptr ? nullptr : OCSP_resp_get0_certs(basic);
  int n = basic == nullptr ? -1 : certs == nullptr ? 0 : sk_X509_num(certs);
  OCSP_BASICRESP_free(basic);
  OCSP_RESPONSE_free(resp);
  return n;
}

class PeersTest : public ::testing::Test {
 protected:
  PeersTest() : pki_(dir_.path()) {}

  void TearDown() override {
    if (!HasFailure()) return;
    dir_.Keep();
    std::fprintf(stderr, "test directory kept: %s\n", dir_.path().c_str());
    if (ocsp_) std::fprintf(stderr, "---- openssl ocsp log ----\n%s\n", ocsp_->Log().c_str());
  }

  // A responder for the issuing CA, signed by a delegated responder cert.
  OcspResponder& StartResponder(int workers = 2, int next_update_minutes = 60, bool no_certs = false,
                                bool refresh_on_change = true) {
    responder_cert_ = ResponderCert(pki_);
    OcspResponderOptions o;
    o.dir = dir_.File("ocsp");
    o.ca_cert = pki_.issuing_ca();
    o.rsigner_cert = responder_cert_.cert;
    o.rsigner_key = responder_cert_.key;
    o.workers = workers;
    o.next_update_minutes = next_update_minutes;
    o.resp_no_certs = no_certs;
    o.refresh_on_change = refresh_on_change;
    ocsp_ = std::make_unique<OcspResponder>(o);
    std::string error;
    EXPECT_TRUE(ocsp_->Start(&error)) << error;
    return *ocsp_;
  }

  X509* issuer() { return pki_.issuing().cert.get(); }

  TempDir dir_;
  Pki pki_;
  CertFiles responder_cert_;
  std::unique_ptr<OcspResponder> ocsp_;
};

// ---------------------------------------------------------------------------
// The namespace main() made.

TEST(PeersNetns, OnlyLoopbackInsideTheNamespace) {
  CERTACL_SKIP_UNLESS_PRIVATE_NETNS();
  ifaddrs* list = nullptr;
  ASSERT_EQ(getifaddrs(&list), 0);
  std::set<std::string> names;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) names.insert(a->ifa_name);
  freeifaddrs(list);
  EXPECT_EQ(names, std::set<std::string>{"lo"});
  // Another namespace than PID 1's (the host's or the container's).
  char self[64] = {}, init[64] = {};
  ASSERT_GT(readlink("/proc/self/ns/net", self, sizeof self - 1), 0);
  if (readlink("/proc/1/ns/net", init, sizeof init - 1) > 0) {
    EXPECT_STRNE(self, init);
  }
  std::printf("network namespace of this test process: %s\n", self);
  // 127.0.0.1 works (the broker harness binds it).
  Blackhole listener;
  EXPECT_TRUE(TcpAccepts(listener.port(), Millis(1000)));
}

// ---------------------------------------------------------------------------
// OcspResponder.

TEST_F(PeersTest, OcspResponderAnswersGoodRevokedAndUnknown) {
  CERTACL_SKIP_UNLESS_PRIVATE_NETNS();
  OcspResponder& ocsp = StartResponder();
  CertFiles f1 = DeviceWithUrls(pki_, "dev1", Cn("dev1"), ocsp.url(), "");
  CertFiles f2 = DeviceWithUrls(pki_, "dev2", Cn("dev2"), ocsp.url(), "");
  CertFiles f3 = DeviceWithUrls(pki_, "dev3", Cn("dev3"), ocsp.url(), "");
  X509Ptr dev1 = LoadCert(f1.cert), dev2 = LoadCert(f2.cert), dev3 = LoadCert(f3.cert);
  ocsp.SetStatus(dev1.get(), CertStatus::kGood);
  ocsp.SetStatus(dev2.get(), CertStatus::kRevoked, "keyCompromise");
  // index.txt, tab-separated: status, expiry, revocation[,reason], serial, file, subject.
  std::map<std::string, std::vector<std::string>> lines;  // by subject
  for (const std::string& line : Split(ReadFile(ocsp.index_path()), '\n')) {
    if (!line.empty()) lines[Split(line, '\t').back()] = Split(line, '\t');
  }
  ASSERT_EQ(lines.size(), 2u) << ReadFile(ocsp.index_path());
  const std::vector<std::string>& l1 = lines["/CN=dev1"];
  const std::vector<std::string>& l2 = lines["/CN=dev2"];
  ASSERT_EQ(l1.size(), 6u);
  ASSERT_EQ(l2.size(), 6u);
  EXPECT_EQ(l1[0], "V");
  EXPECT_EQ(l1[1].size(), 13u);
  EXPECT_EQ(l1[1].back(), 'Z');
  EXPECT_EQ(l1[2], "");
  EXPECT_EQ(l1[3], SerialHex(dev1.get()));
  EXPECT_EQ(l1[4], "unknown");
  EXPECT_EQ(l2[0], "R");
  EXPECT_EQ(l2[2].size(), 13u + std::string(",keyCompromise").size()) << l2[2];
  EXPECT_EQ(l2[2].substr(13), ",keyCompromise");
  EXPECT_EQ(l2[3], SerialHex(dev2.get()));
  EXPECT_EQ(SerialHex(dev2.get()).size() % 2, 0u);
  EXPECT_EQ(ReadFile(ocsp.index_path() + ".attr"), "unique_subject = no\n");
  ASSERT_TRUE(ocsp.WaitForStatus(dev1.get(), issuer(), CertStatus::kGood));
  ASSERT_TRUE(ocsp.WaitForStatus(dev2.get(), issuer(), CertStatus::kRevoked));

  OcspAnswer good = QueryOcsp(ocsp.port(), dev1.get(), issuer());
  ASSERT_TRUE(good.ok) << good.error;
  EXPECT_EQ(good.status, CertStatus::kGood);
  EXPECT_TRUE(good.has_next_update);
  EXPECT_EQ(good.http.Header("Content-Type"), "application/ocsp-response");
  std::string why;
  EXPECT_TRUE(VerifyOcsp(good.der, pki_, nullptr, &why)) << why;
  EXPECT_EQ(CertsInResponse(good.der), 1);  // the delegated responder cert

  OcspAnswer revoked = QueryOcsp(ocsp.port(), dev2.get(), issuer());
  ASSERT_TRUE(revoked.ok) << revoked.error;
  EXPECT_EQ(revoked.status, CertStatus::kRevoked);
  EXPECT_EQ(revoked.reason, OCSP_REVOKED_STATUS_KEYCOMPROMISE);
  EXPECT_TRUE(VerifyOcsp(revoked.der, pki_, nullptr, &why)) << why;

  OcspAnswer unknown = QueryOcsp(ocsp.port(), dev3.get(), issuer());
  ASSERT_TRUE(unknown.ok) << unknown.error;
  EXPECT_EQ(unknown.status, CertStatus::kUnknown);

  // The same through the openssl CLI, with full verification.
  int status = -1;
  std::string out = RunShell("openssl ocsp -issuer " + pki_.issuing_ca() + " -cert " + f1.cert + " -cert " + f2.cert +
                            " -url " + ocsp.url() + " -CAfile " + pki_.ca_bundle() + " -resp_text",
                        &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("Response verify OK"), std::string::npos) << out;
  EXPECT_NE(out.find(f1.cert + ": good"), std::string::npos) << out;
  EXPECT_NE(out.find(f2.cert + ": revoked"), std::string::npos) << out;
  EXPECT_NE(out.find("Revocation Reason: keyCompromise (0x1)"), std::string::npos) << out;
  EXPECT_NE(out.find("Next Update:"), std::string::npos) << out;
  EXPECT_NE(out.find("Responder Id: CN = Acme OCSP Responder"), std::string::npos) << out;
}

// index.txt is re-read by each worker before its next accept(), so a worker
// already waiting in accept() answers once more from the old index:
// measured here, at most one stale answer per worker, none after Refresh().
TEST_F(PeersTest, OcspResponderPicksUpIndexChanges) {
  CERTACL_SKIP_UNLESS_PRIVATE_NETNS();
  constexpr int kWorkers = 2;
  OcspResponder& ocsp = StartResponder(kWorkers, 60, false, /*refresh_on_change=*/false);
  CertFiles f = DeviceWithUrls(pki_, "dev1", Cn("dev1"), ocsp.url(), "");
  X509Ptr dev = LoadCert(f.cert);

  struct Step {
    CertStatus status;
    const char* reason;
    int reason_code;
  };
  const Step steps[] = {{CertStatus::kGood, "", -1},
                        {CertStatus::kRevoked, "superseded", OCSP_REVOKED_STATUS_SUPERSEDED},
                        {CertStatus::kRevoked, "", -1},  // revoked without a reason
                        {CertStatus::kGood, "", -1},
                        {CertStatus::kRevoked, "unspecified", OCSP_REVOKED_STATUS_UNSPECIFIED},
                        {CertStatus::kUnknown, "", -1}};
  for (bool refresh : {false, true}) {
    int max_stale = 0;
    for (const Step& step : steps) {
      // Every worker back in accept() with the current index.
      ASSERT_TRUE(ocsp.Refresh());
      const auto changed = Clock::now();
      ASSERT_TRUE(ocsp.SetStatus(dev.get(), step.status, step.reason));
      if (refresh) {
        ASSERT_TRUE(ocsp.Refresh());
      }
      int stale = 0, first_fresh = -1;
      for (int i = 0; i < 10; ++i) {
        OcspAnswer a = QueryOcsp(ocsp.port(), dev.get(), issuer());
        ASSERT_TRUE(a.ok) << a.error;
        const bool fresh =
            a.status == step.status && (step.status != CertStatus::kRevoked || a.reason == step.reason_code);
        if (!fresh) ++stale;
        if (fresh && first_fresh < 0) first_fresh = i;
      }
      const auto ms = std::chrono::duration_cast<Millis>(Clock::now() - changed).count();
      std::printf("%s -> %s%s%s: %d stale answer(s) of 10, first fresh #%d (all in %lld ms)\n",
                  refresh ? "SetStatus+Refresh" : "index.txt only  ", ToString(step.status), *step.reason ? " " : "",
                  step.reason, stale, first_fresh + 1, static_cast<long long>(ms));
      EXPECT_LE(stale, refresh ? 0 : kWorkers);
      max_stale = std::max(max_stale, stale);
      EXPECT_TRUE(ocsp.WaitForStatus(dev.get(), issuer(), step.status, Millis(2000)));
    }
    if (!refresh) {
      EXPECT_GT(max_stale, 0) << "openssl ocsp no longer answers from a stale index?";
    }
  }
  // Many quick changes within one second all reach the responder (each
  // index version is a new inode; mtime alone has 1 s resolution).
  for (int i = 0; i < 6; ++i) {
    const CertStatus s = i % 2 == 0 ? CertStatus::kRevoked : CertStatus::kGood;
    ASSERT_TRUE(ocsp.SetStatus(dev.get(), s, "keyCompromise"));
    ASSERT_TRUE(ocsp.Refresh());
    OcspAnswer a = QueryOcsp(ocsp.port(), dev.get(), issuer());
    EXPECT_EQ(a.status, s) << "change " << i;
  }
}

TEST_F(PeersTest, OcspResponderSurvivesAnEmptyConnectionAndStopsCompletely) {
  CERTACL_SKIP_UNLESS_PRIVATE_NETNS();
  OcspResponder& ocsp = StartResponder(2);
  CertFiles f = DeviceWithUrls(pki_, "dev1", Cn("dev1"), ocsp.url(), "");
  X509Ptr dev = LoadCert(f.cert);
  ocsp.SetStatus(dev.get(), CertStatus::kRevoked, "keyCompromise");
  ASSERT_TRUE(ocsp.WaitForStatus(dev.get(), issuer(), CertStatus::kRevoked));

  const pid_t parent = ocsp.pid();
  std::vector<pid_t> workers = ocsp.WorkerPids();
  ASSERT_GT(parent, 0);
  ASSERT_EQ(workers.size(), 2u);
  std::vector<long> cpu_before;
  for (pid_t w : workers) cpu_before.push_back(CpuTicks(w));

  EmptyConnection(ocsp.port());  // wedges the worker that accepts it
  std::this_thread::sleep_for(Millis(500));
  for (int i = 0; i < 10; ++i) {
    OcspAnswer a = QueryOcsp(ocsp.port(), dev.get(), issuer(), Millis(3000));
    ASSERT_TRUE(a.ok) << "query " << i << ": " << a.error;
    EXPECT_EQ(a.status, CertStatus::kRevoked);
  }
  for (size_t i = 0; i < workers.size(); ++i) {
    std::printf("worker %d: %ld CPU ticks in ~0.5 s after the empty connection\n", workers[i],
                CpuTicks(workers[i]) - cpu_before[i]);
  }
  EXPECT_EQ(ocsp.WorkerPids(), workers) << "no worker died or was replaced";
  // SetStatus() refreshes the healthy worker; the wedged one is skipped.
  const auto t_set = Clock::now();
  ASSERT_TRUE(ocsp.SetStatus(dev.get(), CertStatus::kGood));
  std::printf("SetStatus() with one wedged worker took %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<Millis>(Clock::now() - t_set).count()));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(QueryOcsp(ocsp.port(), dev.get(), issuer()).status, CertStatus::kGood) << i;

  const auto t0 = Clock::now();
  ocsp.Stop();
  const auto stop_ms = std::chrono::duration_cast<Millis>(Clock::now() - t0).count();
  std::printf("Stop() took %lld ms\n", static_cast<long long>(stop_ms));
  EXPECT_LT(stop_ms, 2000);
  EXPECT_FALSE(ocsp.running());
  EXPECT_EQ(ocsp.pid(), -1);
  EXPECT_TRUE(ProcessGone(parent)) << parent;
  for (pid_t w : workers) EXPECT_TRUE(ProcessGone(w)) << w;
  EXPECT_TRUE(QueryOcsp(ocsp.port(), dev.get(), issuer(), Millis(500)).http.refused);

  // And it starts again (same directory, same index, same port).
  const int port = ocsp.port();
  std::string error;
  ASSERT_TRUE(ocsp.Start(&error)) << error;
  EXPECT_EQ(ocsp.port(), port);
  EXPECT_EQ(QueryOcsp(ocsp.port(), dev.get(), issuer()).status, CertStatus::kGood);
}

// Why -multi: a single `openssl ocsp` process stops answering for good after
// one connection that sends nothing (openssl/openssl#31129, 3.0.x).
TEST_F(PeersTest, OcspResponderWithoutWorkersIsWedgedByAnEmptyConnection) {
  CERTACL_SKIP_UNLESS_PRIVATE_NETNS();
  OcspResponder& ocsp = StartResponder(/*workers=*/0);
  CertFiles f = DeviceWithUrls(pki_, "dev1", Cn("dev1"), ocsp.url(), "");
  X509Ptr dev = LoadCert(f.cert);
  ocsp.SetStatus(dev.get(), CertStatus::kGood);
  ASSERT_TRUE(ocsp.WaitForStatus(dev.get(), issuer(), CertStatus::kGood));
  EXPECT_TRUE(ocsp.WorkerPids().empty());
  const pid_t pid = ocsp.pid();

  EmptyConnection(ocsp.port());
  OcspAnswer a = QueryOcsp(ocsp.port(), dev.get(), issuer(), Millis(1500));
  EXPECT_FALSE(a.ok);
  EXPECT_TRUE(a.http.connected);  // the kernel completes the handshake...
  EXPECT_TRUE(a.http.timed_out);  // ...but nobody ever answers
  ocsp.Stop();
  EXPECT_TRUE(ProcessGone(pid));
}

TEST_F(PeersTest, OcspResponderWithoutNextUpdateAndCerts) {
  CERTACL_SKIP_UNLESS_PRIVATE_NETNS();
  OcspResponder& ocsp = StartResponder(2, /*next_update_minutes=*/0, /*no_certs=*/true);
  CertFiles f = DeviceWithUrls(pki_, "dev1", Cn("dev1"), ocsp.url(), "");
  X509Ptr dev = LoadCert(f.cert);
  ocsp.SetStatus(dev.get(), CertStatus::kGood);
  ASSERT_TRUE(ocsp.WaitForStatus(dev.get(), issuer(), CertStatus::kGood));
  OcspAnswer a = QueryOcsp(ocsp.port(), dev.get(), issuer());
  ASSERT_TRUE(a.ok) << a.error;
  EXPECT_FALSE(a.has_next_update);
  EXPECT_EQ(CertsInResponse(a.der), 0);
  EXPECT_FALSE(VerifyOcsp(a.der, pki_)) << "the signer is nowhere to be found";
  X509Ptr signer = LoadCert(responder_cert_.cert);
  std::string why;
  EXPECT_TRUE(VerifyOcsp(a.der, pki_, signer.get(), &why)) << why;
}

TEST_F(PeersTest, OcspResponderStartFailsCleanly) {
  CERTACL_SKIP_UNLESS_PRIVATE_NETNS();
  CertFiles responder = ResponderCert(pki_);
  OcspResponderOptions o;
  o.dir = dir_.File("ocsp");
  o.ca_cert = pki_.issuing_ca();
  o.rsigner_cert = responder.cert;
  o.rsigner_key = dir_.Write("not-a-key.pem", "nothing here\n");
  OcspResponder ocsp(o);
  std::string error;
  const auto t0 = Clock::now();
  EXPECT_FALSE(ocsp.Start(&error));
  EXPECT_LT(Clock::now() - t0, Millis(3000));
  EXPECT_NE(error.find("openssl ocsp exited"), std::string::npos) << error;
  EXPECT_FALSE(ocsp.running());

  o.rsigner_key = dir_.File("missing.pem");
  OcspResponder missing(o);
  EXPECT_FALSE(missing.Start(&error));
  EXPECT_NE(error.find("cannot read"), std::string::npos) << error;
}

// ---------------------------------------------------------------------------
// HttpFileServer.

TEST_F(PeersTest, HttpFileServerServesExactBytesAnd404) {
  const std::string www = dir_.File("www");
  std::string bytes;
  for (int i = 0; i < 4096; ++i) bytes.push_back(static_cast<char>(i * 7 % 256));  // every byte value, NULs too
  HttpFileServer::PublishAtomically(www, "blob.bin", bytes);
  const std::string crl = MakeCrlDer(pki_.issuing(), {{"1001", 1}});
  HttpFileServer::PublishAtomically(www, "ca.crl", crl);

  HttpFileServer http(www);
  std::string error;
  ASSERT_TRUE(http.Start(&error)) << error;
  EXPECT_EQ(http.url("/ca.crl"), "http://127.0.0.1:" + std::to_string(http.port()) + "/ca.crl");
  HttpReply r = HttpGet(http.port(), "/blob.bin");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, bytes);
  EXPECT_EQ(r.Header("Content-Length"), std::to_string(bytes.size()));
  r = HttpGet(http.port(), "/ca.crl");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, crl);
  EXPECT_EQ(HttpGet(http.port(), "/missing.crl").status, 404);

  // Replacement is atomic and visible at once; an older mtime makes a
  // conditional GET with a later date answer 304.
  const std::string v2 = MakeCrlDer(pki_.issuing(), {}, 0, 0, 2);
  HttpFileServer::PublishAtomically(www, "ca.crl", v2, 1700000000);
  r = HttpGet(http.port(), "/ca.crl");
  EXPECT_EQ(r.body, v2);
  EXPECT_EQ(r.Header("Last-Modified"), "Tue, 14 Nov 2023 22:13:20 GMT");
  r = HttpExchange(http.port(),
                   "GET /ca.crl HTTP/1.0\r\nIf-Modified-Since: Tue, 14 Nov 2023 22:13:20 GMT\r\n\r\n");
  EXPECT_EQ(r.status, 304);
  for (const auto& e : std::filesystem::directory_iterator(www)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  }

  const pid_t pid = http.pid();
  const int port = http.port();
  http.Stop();
  EXPECT_TRUE(ProcessGone(pid));
  EXPECT_TRUE(HttpGet(port, "/ca.crl", Millis(500)).refused);
  ASSERT_TRUE(http.Start(&error)) << error;
  EXPECT_EQ(http.port(), port);
  EXPECT_EQ(HttpGet(port, "/ca.crl").body, v2);
}

// ---------------------------------------------------------------------------
// ScriptedHttpServer.

TEST(PeersScriptedHttpServer, Responds) {
  ScriptedHttpServer server(ScriptedBehaviour::Respond(200, "application/ocsp-response", std::string("\x30\x03\x0a\x01\x06", 5)));
  ASSERT_TRUE(server.Start());
  HttpReply r = HttpPost(server.port(), "/ocsp", "application/ocsp-request", std::string("req\0uest", 8), Millis(2000));
  EXPECT_TRUE(r.connected);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("content-type"), "application/ocsp-response");
  EXPECT_EQ(r.body, std::string("\x30\x03\x0a\x01\x06", 5));
  EXPECT_EQ(server.requests(), 1);
  const std::string req = server.LastRequest();
  EXPECT_EQ(req.rfind("POST /ocsp HTTP/1.0\r\n", 0), 0u) << req;
  EXPECT_EQ(req.substr(req.size() - 8), std::string("req\0uest", 8));

  server.SetBehaviour(ScriptedBehaviour::Respond(503, "text/plain", "busy"));
  r = HttpGet(server.port(), "/x.crl", Millis(2000));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "busy");
  EXPECT_EQ(server.requests(), 2);
  EXPECT_EQ(server.Requests().size(), 2u);
}

TEST(PeersScriptedHttpServer, HangsUntilStopAndStopsPromptly) {
  ScriptedHttpServer server(ScriptedBehaviour::Hang());
  ASSERT_TRUE(server.Start());
  HttpReply r = HttpGet(server.port(), "/ca.crl", Millis(300));
  EXPECT_TRUE(r.connected);
  EXPECT_TRUE(r.timed_out);
  EXPECT_TRUE(r.raw.empty());
  EXPECT_GE(r.elapsed_ms, 300);
  EXPECT_EQ(server.requests(), 1);

  // A hanging connection stays open while a new behaviour serves new requests.
  std::thread hanging([&] {
    HttpReply h = HttpGet(server.port(), "/hang", Millis(10000));
    EXPECT_TRUE(h.raw.empty());
    EXPECT_FALSE(h.timed_out) << "Stop() closes it";
  });
  while (server.requests() < 2) std::this_thread::sleep_for(Millis(5));
  server.SetBehaviour(ScriptedBehaviour::Respond(200, "text/plain", "ok"));
  EXPECT_EQ(HttpGet(server.port(), "/", Millis(2000)).body, "ok");

  const auto t0 = Clock::now();
  server.Stop();
  EXPECT_LT(Clock::now() - t0, Millis(500));
  hanging.join();
  EXPECT_TRUE(HttpGet(server.port(), "/", Millis(500)).refused);
}

TEST(PeersScriptedHttpServer, ClosesAndResets) {
  ScriptedHttpServer server(ScriptedBehaviour::CloseImmediately());
  ASSERT_TRUE(server.Start());
  HttpReply r = HttpGet(server.port(), "/", Millis(2000));
  EXPECT_TRUE(r.connected);
  EXPECT_FALSE(r.timed_out);
  EXPECT_FALSE(r.reset);
  EXPECT_TRUE(r.raw.empty());
  EXPECT_LT(r.elapsed_ms, 1000);

  server.SetBehaviour(ScriptedBehaviour::Reset());
  r = HttpGet(server.port(), "/", Millis(2000));
  EXPECT_TRUE(r.connected);
  EXPECT_TRUE(r.reset);
  EXPECT_TRUE(r.raw.empty());
  EXPECT_EQ(server.requests(), 2);
  EXPECT_EQ(server.connections(), 2);
}

TEST(PeersScriptedHttpServer, DelaysAndStopsMidAnswer) {
  ScriptedHttpServer server(ScriptedBehaviour::Delay(Millis(400), 200, "application/pkix-crl", "CRL"));
  ASSERT_TRUE(server.Start());
  HttpReply r = HttpGet(server.port(), "/", Millis(3000));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "CRL");
  EXPECT_GE(r.elapsed_ms, 400);
  EXPECT_LT(r.elapsed_ms, 2000);
  // A client with a shorter timeout gives up first.
  r = HttpGet(server.port(), "/", Millis(150));
  EXPECT_TRUE(r.timed_out);
  EXPECT_TRUE(r.raw.empty());

  server.SetBehaviour(ScriptedBehaviour::Partial(40, 200, "application/pkix-crl", std::string(1000, 'x')));
  r = HttpGet(server.port(), "/", Millis(300));
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.raw.size(), 40u);
  EXPECT_EQ(r.raw.rfind("HTTP/1.0 200 OK\r\n", 0), 0u);
}

TEST(PeersScriptedHttpServer, ManyConcurrentHangingClientsAreBounded) {
  ScriptedHttpServer server(ScriptedBehaviour::Hang());
  ASSERT_TRUE(server.Start());
  constexpr int kMax = static_cast<int>(ScriptedHttpServer::kMaxConnections);
  std::vector<std::thread> clients;
  for (int i = 0; i < kMax + 8; ++i) {
    clients.emplace_back([&] { HttpGet(server.port(), "/", Millis(2000)); });
  }
  const auto deadline = Clock::now() + Millis(1500);
  while (server.connections() < kMax && Clock::now() < deadline) std::this_thread::sleep_for(Millis(5));
  std::this_thread::sleep_for(Millis(200));
  // Full: the other 8 wait in the kernel backlog.
  EXPECT_EQ(server.connections(), kMax);
  EXPECT_EQ(server.requests(), kMax);
  for (std::thread& t : clients) t.join();
  // Once clients gave up, their connections were closed and the waiting
  // ones accepted; new requests are served.
  server.SetBehaviour(ScriptedBehaviour::Respond(200, "text/plain", "ok"));
  EXPECT_EQ(HttpGet(server.port(), "/", Millis(3000)).body, "ok");
}

// ---------------------------------------------------------------------------
// Blackhole and refused ports.

TEST(PeersBlackhole, ConnectsButNeverAnswers) {
  Blackhole hole;
  HttpReply r = HttpGet(hole.port(), "/", Millis(300));
  EXPECT_TRUE(r.connected);
  EXPECT_TRUE(r.timed_out);
  EXPECT_TRUE(r.raw.empty());
}

TEST(PeersBlackhole, UnusedPortRefuses) {
  const int port = Blackhole::UnusedPort();
  EXPECT_NE(port, Blackhole::UnusedPort());
  HttpReply r = HttpGet(port, "/", Millis(1000));
  EXPECT_FALSE(r.connected);
  EXPECT_TRUE(r.refused);
  EXPECT_LT(r.elapsed_ms, 500);
}

// ---------------------------------------------------------------------------
// Certificates and CRLs.

TEST_F(PeersTest, PkiHelpersCarryTheRightExtensions) {
  CertFiles f = DeviceWithUrls(pki_, "dev1", Spec("dev1", "Acme Utilities"), "http://127.0.0.1:8888/",
                               "http://127.0.0.1:8080/ca.crl");
  X509Ptr dev = LoadCert(f.cert);
  STACK_OF(OPENSSL_STRING)* ocsp = X509_get1_ocsp(dev.get());
  ASSERT_EQ(sk_OPENSSL_STRING_num(ocsp), 1);
  EXPECT_STREQ(sk_OPENSSL_STRING_value(ocsp, 0), "http://127.0.0.1:8888/");
  X509_email_free(ocsp);
  auto* cdp = static_cast<CRL_DIST_POINTS*>(X509_get_ext_d2i(dev.get(), NID_crl_distribution_points, nullptr, nullptr));
  ASSERT_NE(cdp, nullptr);
  ASSERT_EQ(sk_DIST_POINT_num(cdp), 1);
  DIST_POINT* dp = sk_DIST_POINT_value(cdp, 0);
  ASSERT_NE(dp->distpoint, nullptr);
  ASSERT_EQ(dp->distpoint->type, 0);  // fullName
  GENERAL_NAME* name = sk_GENERAL_NAME_value(dp->distpoint->name.fullname, 0);
  ASSERT_EQ(name->type, GEN_URI);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(name->d.uniformResourceIdentifier))),
            "http://127.0.0.1:8080/ca.crl");
  CRL_DIST_POINTS_free(cdp);
  int status = -1;
  std::string text = RunShell("openssl x509 -noout -text -in " + f.cert, &status);
  EXPECT_NE(text.find("OCSP - URI:http://127.0.0.1:8888/"), std::string::npos) << text;
  EXPECT_NE(text.find("URI:http://127.0.0.1:8080/ca.crl"), std::string::npos) << text;
  std::string verify = RunShell("openssl verify -CAfile " + pki_.ca_bundle() + " " + f.cert, &status);
  EXPECT_EQ(status, 0) << verify;

  X509Ptr responder = LoadCert(ResponderCert(pki_).cert);
  EXPECT_NE(X509_get_extension_flags(responder.get()) & EXFLAG_XKUSAGE, 0u);
  EXPECT_EQ(X509_get_extended_key_usage(responder.get()), static_cast<uint32_t>(XKU_OCSP_SIGN));
  EXPECT_GE(X509_get_ext_by_NID(responder.get(), NID_id_pkix_OCSP_noCheck, -1), 0);
  EXPECT_EQ(X509_check_ca(responder.get()), 0);
  ResponderCertSpec no_ocsp;
  no_ocsp.ocsp_signing_eku = false;
  no_ocsp.ocsp_nocheck = false;
  X509Ptr plain = LoadCert(ResponderCert(pki_, "not-a-responder", no_ocsp).cert);
  EXPECT_EQ(X509_get_extension_flags(plain.get()) & EXFLAG_XKUSAGE, 0u);
  EXPECT_LT(X509_get_ext_by_NID(plain.get(), NID_id_pkix_OCSP_noCheck, -1), 0);
}

TEST_F(PeersTest, CrlVerifiesAndListsItsEntries) {
  X509Ptr dev = LoadCert(pki_.Device("dev1", Cn("dev1")).cert);
  const std::string der = MakeCrlDer(pki_.issuing(), {{SerialHex(dev.get()), 4}, {"01", -1, 1700000000}});
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  X509_CRL* crl = d2i_X509_CRL(nullptr, &p, static_cast<long>(der.size()));
  ASSERT_NE(crl, nullptr);
  EXPECT_EQ(X509_CRL_verify(crl, X509_get0_pubkey(pki_.issuing().cert.get())), 1);
  EXPECT_NE(X509_CRL_get0_nextUpdate(crl), nullptr);
  X509_REVOKED* entry = nullptr;
  EXPECT_EQ(X509_CRL_get0_by_cert(crl, &entry, dev.get()), 1);
  ASSERT_NE(entry, nullptr);
  auto* reason = static_cast<ASN1_ENUMERATED*>(X509_REVOKED_get_ext_d2i(entry, NID_crl_reason, nullptr, nullptr));
  ASSERT_NE(reason, nullptr);
  EXPECT_EQ(ASN1_ENUMERATED_get(reason), 4);
  ASN1_ENUMERATED_free(reason);
  EXPECT_EQ(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 2);
  X509_CRL_free(crl);

  // openssl agrees: the chain with this CRL says "revoked".
  const std::string crl_pem_path = dir_.File("ca-crl.pem");
  WriteFile(dir_.File("ca.crl"), der);
  int status = -1;
  RunShell("openssl crl -inform DER -in " + dir_.File("ca.crl") + " -out " + crl_pem_path, &status);
  ASSERT_EQ(status, 0);
  std::string out = RunShell("openssl verify -crl_check -CAfile " + pki_.ca_bundle() + " -CRLfile " + crl_pem_path + " " +
                            pki_.Device("dev1-again", Cn("dev1")).cert,
                        &status);
  EXPECT_EQ(status, 0) << out;  // another serial: not on the CRL
  out = RunShell("openssl verify -crl_check -CAfile " + pki_.ca_bundle() + " -CRLfile " + crl_pem_path + " " +
                dir_.path() + "/pki/dev1.pem",
            &status);
  EXPECT_NE(status, 0) << out;
  EXPECT_NE(out.find("certificate revoked"), std::string::npos) << out;
}

}  // namespace
}  // namespace certacl::integration
