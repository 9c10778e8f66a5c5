// policy_bench.cc: Google Benchmark micro-benchmarks of the policy engine.
//
//   1. Identity::FromCertificate for a typical device certificate: in full,
//      and with only the computed attributes the benchmark's policy names.
//   2. Session::Resolve against policies of 10, 1,000 and 100,000 roles (and
//      a variant whose roles carry `ca = "ca.pem"`), plus the policy load
//      time as its own benchmark (never inside the resolution timing).
//   3. The per-message checks (CheckPublish / CheckRead / CheckSubscribe) on
//      a resolved session, for the same three policy sizes.
//   4. Memory per resolved session: Session::MemoryUsage() and the heap
//      growth (mallinfo2) of 10,000 sessions held in a vector.
//
// Everything is built in-process (certificates with tests/testing/
// cert_builder.h, policies as TOML text); the only file written is the CA
// PEM for the `ca` variant, in a temporary directory removed at exit.
//
// Run (see bench/RESULTS.md):
//   taskset -c 1 build-bench/bench/policy_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <stdlib.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "policy/identity.h"
#include "policy/p256_verifier.h"
#include "policy/policy.h"
#include "policy/session.h"
#include "tests/testing/cert_builder.h"
#include "tests/testing/temp_dir.h"

namespace certacl {
namespace {

using testing::TestCa;

constexpr int64_t kNow = 1'800'000'000;  // 2027-01-15
constexpr int64_t kDay = 86400;

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "policy_bench: %s\n", why.c_str());
  std::abort();
}

// ---------------------------------------------------------------------------
// Fixtures shared by all benchmarks (built once, on first use).

// The issuing CA, its PEM in a temp dir (for `ca = "ca.pem"`).
struct Pki {
  TestCa ca;
  testing::TempDir tmp;
  std::string dir = tmp.path();
  Pki() : ca(TestCa::Create("Acme Devices Issuing CA")) { tmp.Write("ca.pem", testing::ToPem(ca.cert.get())); }
};

Pki& GetPki() {
  static Pki pki;
  return pki;
}

// The device the benchmarks connect as: the one in the middle of the
// per-device roles (dev-<(N-2)/2>), so the index lookup is not a best case.
std::string DeviceCn(int roles) { return "dev-" + std::to_string((roles - 2) / 2); }

// A typical device certificate: EC P-256, subject O/OU/L/CN, two SANs,
// issued by the test CA.
X509Ptr DeviceCert(const std::string& cn) {
  return GetPki()
      .ca.Issue()
      .Subject("O", "Acme")
      .Subject("OU", "meter")
      .Subject("L", "zurich")
      .Subject("CN", cn)
      .SanDns(cn + ".devices.acme.example")
      .SanUri("urn:acme:device:" + cn)
      .Validity(kNow - 30 * kDay, kNow + 335 * kDay)
      .Build();
}

// A realistic policy of `roles` roles: roles-2 per-device roles (CN + O
// exact), one wide role for all meters (OU glob, O exact), one fleet role
// (OU regex), a [[deny]] for $SYS and a client-id binding. With `with_ca`,
// every role also requires `ca = "ca.pem"` (the same file, so one signature
// check per connect).
std::string PolicyText(int roles, bool with_ca) {
  std::string t;
  t.reserve(static_cast<size_t>(roles) * 330 + 1024);
  t += "version = 1\n\n[connect]\nclient_id = \"${subject.CN}\"\n\n";
  const std::string ca = with_ca ? "ca = \"ca.pem\"\n" : "";
  for (int i = 0; i < roles - 2; ++i) {
    const std::string n = std::to_string(i);
    t += "[[role]]\nname = \"dev-" + n + "\"\n";
    t += "match.\"subject.CN\" = \"dev-" + n + "\"\n";
    t += "match.\"subject.O\" = \"Acme\"\n";
    t += ca;
    t += "publish = [\"devices/${subject.CN}/telemetry\",\n";
    t += "           { topic = \"devices/${subject.CN}/alarm\", max_qos = 1, retain = false }]\n";
    t += "subscribe = [\"devices/${subject.CN}/cmd/#\"]\n\n";
  }
  t += "[[role]]\nname = \"all-meters\"\n";
  t += "match.\"subject.O\" = \"Acme\"\n";
  t += "match.\"subject.OU\" = { glob = \"meter*\" }\n";
  t += ca;
  t += "publish = [\"meters/${subject.L}/${subject.CN}/reading\"]\n";
  t += "subscribe = [\"meters/${subject.L}/broadcast/#\", \"meters/broadcast/#\"]\n\n";
  t += "[[role]]\nname = \"fleet\"\n";
  t += "match.\"subject.OU\" = { regex = \"(meter|gateway)(-[a-z0-9]+)?\" }\n";
  t += ca;
  t += "subscribe = [\"fleet/firmware/+\", \"config/${subject.CN}\"]\n\n";
  t += "[[deny]]\nname = \"no-sys\"\npublish = [\"$SYS/#\"]\nsubscribe = [\"$SYS/#\"]\n";
  return t;
}

std::shared_ptr<const Policy> Load(const std::string& text, const std::string& base_dir) {
  std::vector<Diagnostic> diags;
  auto p = LoadPolicyString(text, "bench.toml", base_dir, &diags);
  if (!p) {
    std::string all;
    for (const auto& d : diags) all += d.ToString() + "\n";
    Die("policy does not load:\n" + all);
  }
  return p;
}

// One policy size: its text, the loaded policy, the device, its session.
struct Setup {
  std::string text;
  std::shared_ptr<const Policy> policy;
  double load_seconds = 0;  // the one LoadPolicyString() of `text` (wall clock)
  X509Ptr cert;
  Identity identity;
  std::string client_id;
  Session session;
};

const Setup& GetSetup(int roles, bool with_ca) {
  static std::map<std::pair<int, bool>, std::unique_ptr<Setup>> cache;
  auto& slot = cache[{roles, with_ca}];
  if (!slot) {
    auto s = std::make_unique<Setup>();
    s->text = PolicyText(roles, with_ca);
    const auto start = std::chrono::steady_clock::now();
    s->policy = Load(s->text, GetPki().dir);
    s->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    s->client_id = DeviceCn(roles);
    s->cert = DeviceCert(s->client_id);
    s->identity = Identity::FromCertificate(s->cert.get());
    s->session = Session::Resolve(s->policy, s->identity, s->client_id, kNow);
    if (!s->session.connect_allowed()) Die("device refused: " + s->session.ExplainConnect());
    // The device matches its own role and both wide roles.
    if (s->session.roles().size() != 3) Die("expected 3 roles, got " + std::to_string(s->session.roles().size()));
    slot = std::move(s);
  }
  return *slot;
}

// ---------------------------------------------------------------------------
// 1. Attribute extraction.

void BM_IdentityFromCertificate(benchmark::State& state) {
  X509Ptr cert = DeviceCert("dev-4");
  for (auto _ : state) {
    Identity id = Identity::FromCertificate(cert.get());
    benchmark::DoNotOptimize(id);
  }
  Identity id = Identity::FromCertificate(cert.get());
  size_t values = 0;
  for (const auto& a : id.attributes()) values += a.values.size();
  state.counters["attrs"] = static_cast<double>(id.attributes().size());
  state.counters["values"] = static_cast<double>(values);
}
BENCHMARK(BM_IdentityFromCertificate);

// What the plugin reads for a policy that names no computed attribute
// (cert.serial, cert.sha256, cert.key, the cert.not_* texts): the policies
// below, and most fleets'. Compare with BM_IdentityFromCertificate above.
void BM_IdentityFromCertificateNamedOnly(benchmark::State& state) {
  X509Ptr cert = DeviceCert("dev-4");
  const uint32_t computed = GetSetup(10, false).policy->computed;
  for (auto _ : state) {
    Identity id = Identity::FromCertificate(cert.get(), computed);
    benchmark::DoNotOptimize(id);
  }
  state.counters["computed"] = static_cast<double>(computed);
}
BENCHMARK(BM_IdentityFromCertificateNamedOnly);

// A `ca` check of a device's first connect: X509_verify (the baseline, what
// every check cost before policy/p256_verifier.h) and the CA key's
// P256Verifier, on the same certificate. Compare the two in one run.
void BM_CaSignatureX509Verify(benchmark::State& state) {
  X509Ptr cert = DeviceCert("dev-4");
  EVP_PKEY* key = X509_get0_pubkey(GetPki().ca.cert.get());
  for (auto _ : state) {
    if (X509_verify(cert.get(), key) != 1) state.SkipWithError("not verified");
  }
}
BENCHMARK(BM_CaSignatureX509Verify);

void BM_CaSignatureP256Verifier(benchmark::State& state) {
  X509Ptr cert = DeviceCert("dev-4");
  std::unique_ptr<P256Verifier> verifier = P256Verifier::Create(X509_get0_pubkey(GetPki().ca.cert.get()));
  if (!verifier) {
    state.SkipWithError("no verifier");
    return;
  }
  for (auto _ : state) {
    if (!verifier->Verify(cert.get())) state.SkipWithError("not verified");
  }
}
BENCHMARK(BM_CaSignatureP256Verifier);

// Building a verifier: once per `ca` key and policy load.
void BM_CaSignatureP256VerifierCreate(benchmark::State& state) {
  EVP_PKEY* key = X509_get0_pubkey(GetPki().ca.cert.get());
  for (auto _ : state) benchmark::DoNotOptimize(P256Verifier::Create(key));
}
BENCHMARK(BM_CaSignatureP256VerifierCreate)->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------------------
// 2. Session resolution (policy already loaded) and policy load time.

void ResolveBench(benchmark::State& state, bool with_ca) {
  const int roles = static_cast<int>(state.range(0));
  const Setup& s = GetSetup(roles, with_ca);
  for (auto _ : state) {
    Session session = Session::Resolve(s.policy, s.identity, s.client_id, kNow);
    benchmark::DoNotOptimize(session);
  }
  Session session = Session::Resolve(s.policy, s.identity, s.client_id, kNow);
  if (!session.connect_allowed()) state.SkipWithError("connect refused");
  state.counters["roles_matched"] = static_cast<double>(session.roles().size());
  state.counters["filters"] = static_cast<double>(session.Filters().size());
  state.counters["session_bytes"] = static_cast<double>(session.MemoryUsage());
  // The policy was loaded once, before any timing: its load time, for the
  // sizes BM_LoadPolicy does not repeat (100,000 roles).
  state.counters["policy_load_ms"] = s.load_seconds * 1e3;
}

void BM_Resolve(benchmark::State& state) { ResolveBench(state, false); }
BENCHMARK(BM_Resolve)->Arg(10)->Arg(1000)->Arg(100000);

void BM_ResolveWithCa(benchmark::State& state) { ResolveBench(state, true); }
// The signature check does not depend on the policy size (one check per
// connect, shared by every role naming the CA): 10 and 1,000 roles suffice.
BENCHMARK(BM_ResolveWithCa)->Arg(10)->Arg(1000);

// A whole connect as the broker sees it: certificate -> identity -> session.
void BM_Connect(benchmark::State& state) {
  const int roles = static_cast<int>(state.range(0));
  const Setup& s = GetSetup(roles, false);
  for (auto _ : state) {
    Identity id = Identity::FromCertificate(s.cert.get());
    Session session = Session::Resolve(s.policy, id, s.client_id, kNow);
    benchmark::DoNotOptimize(session);
  }
}
BENCHMARK(BM_Connect)->Arg(10)->Arg(100000);

// Parse + compile of the policy text (text built beforehand; freeing the
// loaded policy is excluded from the timing). 100,000 roles is not repeated
// here (one load takes tens of seconds): see policy_load_ms of
// BM_Resolve/100000, measured by the one load done for the fixtures.
void BM_LoadPolicy(benchmark::State& state) {
  const int roles = static_cast<int>(state.range(0));
  const std::string& text = GetSetup(roles, false).text;
  const std::string& dir = GetPki().dir;
  for (auto _ : state) {
    auto p = Load(text, dir);
    benchmark::DoNotOptimize(p);
    state.PauseTiming();
    p.reset();
    state.ResumeTiming();
  }
  state.counters["text_bytes"] = static_cast<double>(text.size());
}
BENCHMARK(BM_LoadPolicy)->Arg(10)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------------------
// 3. Per-message checks on a resolved session. The session holds
//    3 publish, 5 subscribe, 1 deny-publish and 1 deny-subscribe filters
//    whatever the policy size.

enum class Check { kPublishAllowed, kPublishDenied, kReadAllowed, kReadDenied, kSubscribeAllowed, kSubscribeDenied };

void CheckBench(benchmark::State& state, Check check) {
  const int roles = static_cast<int>(state.range(0));
  const Setup& s = GetSetup(roles, false);
  const Session& session = s.session;
  const std::string me = s.client_id;
  const std::string other = "dev-" + std::to_string(roles + 7);
  std::string topic;
  bool expect = false;
  switch (check) {
    case Check::kPublishAllowed:  // 2nd filter of 3 (after telemetry)
      topic = "devices/" + me + "/alarm", expect = true;
      break;
    case Check::kPublishDenied:  // another device's topic: every filter walked, default deny
      topic = "devices/" + other + "/telemetry", expect = false;
      break;
    case Check::kReadAllowed:  // a command for this device
      topic = "devices/" + me + "/cmd/reboot", expect = true;
      break;
    case Check::kReadDenied:  // another device's command: every filter walked, default deny
      topic = "devices/" + other + "/cmd/reboot", expect = false;
      break;
    case Check::kSubscribeAllowed:  // its own command tree
      topic = "devices/" + me + "/cmd/#", expect = true;
      break;
    case Check::kSubscribeDenied:  // a wildcard over every device's commands
      topic = "devices/+/cmd/#", expect = false;
      break;
  }
  const std::string_view t = topic;
  Decision first;
  switch (check) {
    case Check::kPublishAllowed:
    case Check::kPublishDenied:
      first = session.CheckPublish(t, 1, false);
      for (auto _ : state) {
        Decision d = session.CheckPublish(t, 1, false);
        benchmark::DoNotOptimize(d);
      }
      break;
    case Check::kReadAllowed:
    case Check::kReadDenied:
      first = session.CheckRead(t);
      for (auto _ : state) {
        Decision d = session.CheckRead(t);
        benchmark::DoNotOptimize(d);
      }
      break;
    case Check::kSubscribeAllowed:
    case Check::kSubscribeDenied:
      first = session.CheckSubscribe(t);
      for (auto _ : state) {
        Decision d = session.CheckSubscribe(t);
        benchmark::DoNotOptimize(d);
      }
      break;
  }
  if (first.allowed != expect) state.SkipWithError(("unexpected decision for " + topic).c_str());
}

void BM_CheckPublishAllowed(benchmark::State& st) { CheckBench(st, Check::kPublishAllowed); }
void BM_CheckPublishDenied(benchmark::State& st) { CheckBench(st, Check::kPublishDenied); }
void BM_CheckReadAllowed(benchmark::State& st) { CheckBench(st, Check::kReadAllowed); }
void BM_CheckReadDenied(benchmark::State& st) { CheckBench(st, Check::kReadDenied); }
void BM_CheckSubscribeAllowed(benchmark::State& st) { CheckBench(st, Check::kSubscribeAllowed); }
void BM_CheckSubscribeDenied(benchmark::State& st) { CheckBench(st, Check::kSubscribeDenied); }
BENCHMARK(BM_CheckPublishAllowed)->Arg(10)->Arg(1000)->Arg(100000)->MinTime(0.1);
BENCHMARK(BM_CheckPublishDenied)->Arg(10)->Arg(1000)->Arg(100000)->MinTime(0.1);
BENCHMARK(BM_CheckReadAllowed)->Arg(10)->Arg(1000)->Arg(100000)->MinTime(0.1);
BENCHMARK(BM_CheckReadDenied)->Arg(10)->Arg(1000)->Arg(100000)->MinTime(0.1);
BENCHMARK(BM_CheckSubscribeAllowed)->Arg(10)->Arg(1000)->Arg(100000)->MinTime(0.1);
BENCHMARK(BM_CheckSubscribeDenied)->Arg(10)->Arg(1000)->Arg(100000)->MinTime(0.1);

// ---------------------------------------------------------------------------
// 4. Memory per resolved session: MemoryUsage() and heap growth measured by
//    mallinfo2() (in-use bytes, malloc chunk overhead included) while 10,000
//    sessions are held in a vector. The time is that of resolving 10,000.

void BM_SessionMemory(benchmark::State& state) {
  constexpr size_t kSessions = 10000;
  const int roles = static_cast<int>(state.range(0));
  const Setup& s = GetSetup(roles, false);
  double heap_per_session = 0;
  double usage = 0;
  for (auto _ : state) {
    malloc_trim(0);
    const size_t before = mallinfo2().uordblks;
    std::vector<Session> held;
    held.reserve(kSessions);  // sizeof(Session) * N counts as session memory
    for (size_t i = 0; i < kSessions; ++i) held.push_back(Session::Resolve(s.policy, s.identity, s.client_id, kNow));
    const size_t after = mallinfo2().uordblks;
    heap_per_session = static_cast<double>(after - before) / kSessions;
    usage = static_cast<double>(held.back().MemoryUsage());
    benchmark::DoNotOptimize(held);
    state.PauseTiming();
    held.clear();
    held.shrink_to_fit();
    state.ResumeTiming();
  }
  state.counters["heap_bytes_per_session"] = heap_per_session;
  state.counters["MemoryUsage"] = usage;
  state.counters["sizeof_Session"] = static_cast<double>(sizeof(Session));
}
BENCHMARK(BM_SessionMemory)->Arg(10)->Arg(1000)->Arg(100000)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace certacl
