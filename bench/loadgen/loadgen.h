// loadgen.h: certacl-loadgen, the end-to-end load generator of issue 6. It
// makes a fleet PKI, then opens mutual-TLS MQTT connections to a broker on
// one thread (epoll, non-blocking sockets, OpenSSL on the fd) so that the
// broker, not the load generator, is what is measured.
//
// CLI (the contract bench/compare/ relies on):
//   certacl-loadgen fleet --dir DIR --devices N [--collectors M (4)] [--crl-entries K (0)] [--roles R (0)]
//   certacl-loadgen connect --port P --fleet DIR [--host 127.0.0.1] [--count N (all devices)]
//       [--concurrency C (50)] [--mqtt 5|311 (5)] [--hold] [--hold-seconds S (30)] [--label X]
//   certacl-loadgen pubsub --port P --fleet DIR [--publishers N (50)] [--subscribers M (all collectors)]
//       [--qos 0|1 (0)] [--seconds T (10)] [--rate R (0 = as fast as possible)] [--payload BYTES (64)]
//       [--mqtt 5|311] [--label X]
//   certacl-loadgen deny --port P --fleet DIR [--devices N (20)] [--seconds T (5)] [--mqtt 5|311] [--label X]
//   (connect/pubsub/deny also take --host.)
//
// fleet writes in DIR: root-ca.pem/.key, issuing-ca.pem/.key, ca-bundle.pem
// (root + issuing), server.pem/.key (CN/SAN localhost + IP 127.0.0.1, issued
// by the root), devices.pem and collectors.pem (per entity: certificate PEM
// then EC P-256 key PEM; devices O=Acme Bench, OU=meter, L=city-(i%10),
// CN=d-%06d, SAN DNS d-%06d.bench.example; collectors OU=collector,
// CN=c-%03d; issued by the issuing CA, valid one year), crl.pem (issuing
// CA's CRL: K random 16-octet serials, 3 when K = 0; nextUpdate in 7 days),
// policy.toml, policy-roles.toml (only with --roles R > 0: R-2 per-device
// roles plus the two below), acl_file (Mosquitto's built-in equivalent) and
// fleet.json (one line).
//
// Permissions, identical in the policy and the acl_file: a device publishes
// bench/CN/telemetry and subscribes bench/CN/cmd/#; a collector subscribes
// bench/+/telemetry. Client ids are always the CN.
//
// Output: exactly one JSON line on stdout per run, a readable summary on
// stderr. Exit codes: 0 ok, 1 run failed (broker unreachable, nothing
// accepted), 2 usage, 3 unauthorized deliveries seen (deny mode).
// Every wait is bounded: a hung broker never hangs the load generator
// (connect phase: 15 s per connection; pubsub/deny: --seconds + 30 s in all;
// connect: gives up after 30 s without any CONNACK, at most 30 s + 100 ms
// per connection, plus --hold-seconds).
//
// Notes: the "device" role also matches subject.CN = { prefix = "d-" } so
// that `certacl lint` passes without warnings (same permissions); pubsub
// payloads are at least 24 bytes (send time, sender, sequence, tag); a
// connect run with nothing accepted (all refused or failed) exits 1; with
// MQTT 3.1.1 denied publishes cannot be counted (no PUBACK reason codes).
#ifndef CERTACL_BENCH_LOADGEN_LOADGEN_H_
#define CERTACL_BENCH_LOADGEN_LOADGEN_H_

#include <string>

namespace certacl::loadgen {

struct FleetOptions {
  std::string dir;
  int devices = 0;
  int collectors = 4;
  int crl_entries = 0;
  int roles = 0;
};

// Writes the fleet; returns the process exit code (0 ok, 1 failure).
int RunFleet(const FleetOptions& options);

// The device / collector common names.
std::string DeviceCn(int i);
std::string CollectorCn(int i);

}  // namespace certacl::loadgen

#endif  // CERTACL_BENCH_LOADGEN_LOADGEN_H_
