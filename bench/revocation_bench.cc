// revocation_bench.cc: Google Benchmark figures for CRL handling at
// 1,000,000 revoked serials (random 16-octet serials, EC P-256 issuer).
//
//   1. BM_CrlParse1M/<reasons>: Crl::Parse of the DER (strict walk, one
//      EVP_DigestVerify over the tbsCertList, SerialSet build); arg 1 puts
//      a reasonCode on every entry. Counters: DER size, MemoryUsage().
//   2. BM_SerialSetLookupHit / Miss: Crl::IsRevoked on the parsed CRL.
//   3. Baselines on the same serials, in the same process:
//      BM_OpenSslCrlLookupHit / Miss: X509_CRL_get0_by_serial on the
//      d2i_X509_CRL of the same DER, sorted once beforehand (its d2i time,
//      first-lookup sort time and heap growth are counters), and
//      BM_UnorderedSetLookupHit / Miss: std::unordered_set<std::string>.
//
// Lookups cycle through 65,536 probe serials drawn at random (hits from the
// revoked list, misses from another seed), so they are not cache-hot. The
// 1M CRLs, the X509_CRL and the unordered_set are built once per process, on
// first use, outside every timing.
//
// Run:
//   cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release && cmake --build build-bench -j2 --target policy_bench
//   taskset -c 1 build-bench/bench/policy_bench --benchmark_filter='Crl|SerialSet|OpenSsl|Unordered'
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <openssl/bn.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "plugin/revocation/crl.h"
#include "plugin/revocation/serial_set.h"
#include "policy/openssl_ptr.h"
#include "tests/testing/cert_builder.h"
#include "tests/testing/crl_builder.h"

namespace certacl::revocation {
namespace {

using certacl::testing::CrlSpec;
using certacl::testing::TestCa;

constexpr int64_t kNow = 1'800'000'000;
constexpr size_t kEntries = 1'000'000;
constexpr size_t kProbes = size_t{1} << 16;

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "revocation_bench: %s\n", why.c_str());
  std::abort();
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

size_t HeapInUse() { return mallinfo2().uordblks; }

// The issuer, the revoked serials, probe lists and the two 1M CRLs.
struct Fixture {
  TestCa ca = TestCa::Create("Acme Devices Issuing CA");
  std::vector<std::string> serials = testing::RandomSerials(kEntries, 1);
  std::vector<std::string> hits;
  std::vector<std::string> misses = testing::RandomSerials(kProbes, 2);
  std::string der[2];  // [0] no entry extensions, [1] reasonCode on every entry
  double build_seconds[2] = {0, 0};

  Fixture() {
    uint64_t x = 0x243F6A8885A308D3ULL;
    for (size_t i = 0; i < kProbes; ++i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      hits.push_back(serials[x % kEntries]);
    }
    for (int reasons = 0; reasons < 2; ++reasons) {
      CrlSpec spec;
      spec.serials = serials;
      spec.this_update = kNow - 3600;
      spec.next_update = kNow + 86400;
      spec.revocation_date = kNow - 86400;
      spec.crl_number = testing::SerialFromUint64(1000);
      if (reasons) spec.reason_code = 1;
      auto start = std::chrono::steady_clock::now();
      der[reasons] = testing::BuildCrlDer(ca, spec);
      build_seconds[reasons] = SecondsSince(start);
    }
  }
};

Fixture& GetFixture() {
  static Fixture* f = new Fixture();
  return *f;
}

std::unique_ptr<const Crl> ParseOrDie(const std::string& der) {
  std::string error;
  auto crl = Crl::Parse(der, GetFixture().ca.cert.get(), kNow, 300, &error);
  if (!crl) Die("Crl::Parse: " + error);
  return crl;
}

const Crl& ParsedCrl() {
  static const Crl* crl = ParseOrDie(GetFixture().der[0]).release();
  return *crl;
}

// ---------------------------------------------------------------------------
// 1. Parse.

void BM_CrlParse1M(benchmark::State& state) {
  const int reasons = static_cast<int>(state.range(0));
  const Fixture& f = GetFixture();
  const std::string& der = f.der[reasons];
  size_t memory = 0;
  size_t entries = 0;
  for (auto _ : state) {
    auto crl = ParseOrDie(der);
    memory = crl->MemoryUsage();
    entries = crl->size();
    benchmark::DoNotOptimize(crl);
  }
  if (entries != kEntries) state.SkipWithError("wrong entry count");
  state.counters["der_MB"] = static_cast<double>(der.size()) / 1e6;
  state.counters["memory_MB"] = static_cast<double>(memory) / 1e6;
  state.counters["memory_B_per_entry"] = static_cast<double>(memory) / static_cast<double>(kEntries);
  state.counters["builder_s"] = f.build_seconds[reasons];
}
BENCHMARK(BM_CrlParse1M)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->Iterations(5);

// ---------------------------------------------------------------------------
// 2. SerialSet lookups.

void SerialSetLookup(benchmark::State& state, bool hit) {
  const Fixture& f = GetFixture();
  const Crl& crl = ParsedCrl();
  const std::vector<std::string>& probes = hit ? f.hits : f.misses;
  std::vector<std::string_view> views(probes.begin(), probes.end());
  for (std::string_view v : views) {
    if (crl.IsRevoked(v) != hit) state.SkipWithError("wrong lookup result");
  }
  size_t i = 0;
  for (auto _ : state) {
    bool revoked = crl.IsRevoked(views[i++ & (kProbes - 1)]);
    benchmark::DoNotOptimize(revoked);
  }
  state.counters["memory_MB"] = static_cast<double>(crl.MemoryUsage()) / 1e6;
}
void BM_SerialSetLookupHit(benchmark::State& state) { SerialSetLookup(state, true); }
void BM_SerialSetLookupMiss(benchmark::State& state) { SerialSetLookup(state, false); }
BENCHMARK(BM_SerialSetLookupHit);
BENCHMARK(BM_SerialSetLookupMiss);

// ---------------------------------------------------------------------------
// 3a. OpenSSL baseline: X509_CRL_get0_by_serial after the lazy sort.

using X509CrlPtr = testing::X509CrlPtr;
using IntegerPtr = certacl::IntegerPtr;

struct OpenSslCrl {
  X509CrlPtr crl;
  std::vector<IntegerPtr> hits;
  std::vector<IntegerPtr> misses;
  double d2i_seconds = 0;
  double sort_seconds = 0;
  size_t heap_bytes = 0;

  static IntegerPtr Integer(const std::string& canonical) {
    const auto* p = reinterpret_cast<const unsigned char*>(canonical.data());
    BignumPtr bn(BN_bin2bn(p, static_cast<int>(canonical.size()), nullptr));  // positive serials
    IntegerPtr i(BN_to_ASN1_INTEGER(bn.get(), nullptr));
    if (!i) Die("BN_to_ASN1_INTEGER");
    return i;
  }

  OpenSslCrl() {
    const Fixture& f = GetFixture();
    size_t heap_before = HeapInUse();
    auto start = std::chrono::steady_clock::now();
    crl = testing::ParseCrlWithOpenSsl(f.der[0]);
    d2i_seconds = SecondsSince(start);
    heap_bytes = HeapInUse() - heap_before;
    for (const std::string& s : f.hits) hits.push_back(Integer(s));
    for (const std::string& s : f.misses) misses.push_back(Integer(s));
    X509_REVOKED* rev = nullptr;
    start = std::chrono::steady_clock::now();
    X509_CRL_get0_by_serial(crl.get(), &rev, hits[0].get());  // sorts, once
    sort_seconds = SecondsSince(start);
  }
};

const OpenSslCrl& GetOpenSslCrl() {
  static OpenSslCrl* c = new OpenSslCrl();
  return *c;
}

void OpenSslLookup(benchmark::State& state, bool hit) {
  const OpenSslCrl& c = GetOpenSslCrl();
  const std::vector<IntegerPtr>& probes = hit ? c.hits : c.misses;
  for (const IntegerPtr& p : probes) {
    X509_REVOKED* rev = nullptr;
    if ((X509_CRL_get0_by_serial(c.crl.get(), &rev, p.get()) == 1) != hit) {
      state.SkipWithError("wrong lookup result");
    }
  }
  size_t i = 0;
  for (auto _ : state) {
    X509_REVOKED* rev = nullptr;
    int r = X509_CRL_get0_by_serial(c.crl.get(), &rev, probes[i++ & (kProbes - 1)].get());
    benchmark::DoNotOptimize(r);
  }
  state.counters["d2i_ms"] = c.d2i_seconds * 1e3;
  state.counters["first_lookup_sort_ms"] = c.sort_seconds * 1e3;
  state.counters["heap_MB"] = static_cast<double>(c.heap_bytes) / 1e6;
}
void BM_OpenSslCrlLookupHit(benchmark::State& state) { OpenSslLookup(state, true); }
void BM_OpenSslCrlLookupMiss(benchmark::State& state) { OpenSslLookup(state, false); }
BENCHMARK(BM_OpenSslCrlLookupHit);
BENCHMARK(BM_OpenSslCrlLookupMiss);

// ---------------------------------------------------------------------------
// 3b. std::unordered_set<std::string> baseline.

struct UnorderedSet {
  std::unordered_set<std::string> set;
  size_t heap_bytes = 0;
  UnorderedSet() {
    const Fixture& f = GetFixture();
    size_t heap_before = HeapInUse();
    set.reserve(f.serials.size());
    for (const std::string& s : f.serials) set.insert(s);
    heap_bytes = HeapInUse() - heap_before;
  }
};

const UnorderedSet& GetUnorderedSet() {
  static UnorderedSet* u = new UnorderedSet();
  return *u;
}

void UnorderedLookup(benchmark::State& state, bool hit) {
  const Fixture& f = GetFixture();
  const std::unordered_set<std::string>& set = GetUnorderedSet().set;
  const std::vector<std::string>& probes = hit ? f.hits : f.misses;
  for (const std::string& p : probes) {
    if ((set.count(p) != 0) != hit) state.SkipWithError("wrong lookup result");
  }
  size_t i = 0;
  for (auto _ : state) {
    bool found = set.find(probes[i++ & (kProbes - 1)]) != set.end();
    benchmark::DoNotOptimize(found);
  }
  state.counters["heap_MB"] = static_cast<double>(GetUnorderedSet().heap_bytes) / 1e6;
}
void BM_UnorderedSetLookupHit(benchmark::State& state) { UnorderedLookup(state, true); }
void BM_UnorderedSetLookupMiss(benchmark::State& state) { UnorderedLookup(state, false); }
BENCHMARK(BM_UnorderedSetLookupHit);
BENCHMARK(BM_UnorderedSetLookupMiss);

}  // namespace
}  // namespace certacl::revocation
