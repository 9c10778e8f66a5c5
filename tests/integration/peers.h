// peers.h: the network peers a revocation test talks to, all on 127.0.0.1:
//
//   OcspResponder       a real `openssl ocsp -index ... -multi N` responder
//   HttpFileServer      a real `python3 -m http.server` serving a directory
//   ScriptedHttpServer  an in-process HTTP server that answers, hangs,
//                       closes, delays or stops mid-answer on demand
//   Blackhole           a listening socket that never accepts
//   Blackhole::UnusedPort()  a port where connections are refused
//
// plus certificates for them (a delegated OCSP responder certificate, device
// certificates carrying AIA/CDP URLs), CRLs, and a small HTTP/OCSP client.
//
//   TempDir dir;
//   Pki pki(dir.path());
//   CertFiles responder_cert = ResponderCert(pki);
//   OcspResponderOptions o;        // (designated initializers that leave members
//   o.dir = dir.File("ocsp");      // out trip -Wmissing-field-initializers)
//   o.ca_cert = pki.issuing_ca();
//   o.rsigner_cert = responder_cert.cert;
//   o.rsigner_key = responder_cert.key;
//   OcspResponder ocsp(o);
//   std::string error;
//   ASSERT_TRUE(ocsp.Start(&error)) << error;
//   DeviceSpec spec;
//   spec.cn = "dev1";
//   CertFiles dev = DeviceWithUrls(pki, "dev1", spec, ocsp.url(), /*crl_url=*/"");
//   X509Ptr cert = LoadCert(dev.cert);
//   ocsp.SetStatus(cert.get(), CertStatus::kRevoked, "keyCompromise");
//   ASSERT_TRUE(ocsp.WaitForStatus(cert.get(), pki.issuing().cert.get(), CertStatus::kRevoked));
//
// `openssl ocsp` (OpenSSL 3.0) binds the wildcard address, so it only starts
// inside a private network namespace (revocation_integration_tests' main()
// unshares one per test process; see InPrivateNetns()). It serves one
// connection per process at a time and a client that connects and sends
// nothing wedges that process for good: hence -multi (workers), and the
// readiness probe is a real OCSP request, never a bare TCP connect.
//
// Every child process (openssl and its workers, python) runs under a small
// guardian process that kills the whole process group with SIGKILL and reaps
// it when Stop() is called, when the owning object is destroyed, or when the
// test process dies (the guardian sees its control pipe close): nothing
// outlives a test, not even a wedged worker.
//
// Classes are for use from one thread (the test's), except that
// ScriptedHttpServer's setters may be called from any thread. Not copyable.
#ifndef CERTACL_TESTS_INTEGRATION_PEERS_H_
#define CERTACL_TESTS_INTEGRATION_PEERS_H_

#include <openssl/x509.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "policy/openssl_ptr.h"
#include "tests/integration/broker.h"
#include "tests/integration/pki.h"

namespace certacl::integration {

// A child process under a guardian process: the guardian kills the child's
// whole process group when Stop() is called, when this object is
// destroyed, or when the test process dies (its control pipe closes). The
// child's stdout and stderr are appended to `log_path`; args[0] is looked
// up in PATH unless it contains a '/'.
class GuardedProcess {
 public:
  GuardedProcess() = default;
  ~GuardedProcess() { Stop(); }
  GuardedProcess(const GuardedProcess&) = delete;
  GuardedProcess& operator=(const GuardedProcess&) = delete;

  bool Spawn(std::vector<std::string> args, const std::string& log_path, std::string* error);
  void Stop();
  bool running();
  pid_t pid() const { return main_; }
  int exit_status() const { return exit_status_; }

 private:
  bool WaitGuardian(Millis timeout);

  pid_t guardian_ = -1;
  pid_t main_ = -1;
  int control_ = -1;
  int exit_status_ = -1;
};

// ---------------------------------------------------------------------------
// The private network namespace (revocation_integration_tests' main()).

// Unshares a new network namespace for this process (CLONE_NEWNET; must be
// called before any thread is created: only the calling thread and what it
// creates afterwards live in it) and brings `lo` up, then checks that
// 127.0.0.1 accepts a connection. On success InPrivateNetns() is true.
// Needs CAP_SYS_ADMIN (root).
bool EnterPrivateNetns(std::string* error);
// True once EnterPrivateNetns() succeeded in this process.
bool InPrivateNetns();

inline constexpr const char* kNeedsPrivateNetns = "needs root for a private network namespace (unshare -n)";

// In a test body: skips unless this process has its own network namespace.
#define CERTACL_SKIP_UNLESS_PRIVATE_NETNS()                                                   \
  do {                                                                                        \
    if (!::certacl::integration::InPrivateNetns()) GTEST_SKIP() << ::certacl::integration::kNeedsPrivateNetns; \
  } while (0)

// ---------------------------------------------------------------------------
// A tiny HTTP/1.0 client (plain sockets, 127.0.0.1 only, bounded in time).

struct HttpReply {
  bool connected = false;  // the TCP connection was established
  bool refused = false;    // ECONNREFUSED
  bool reset = false;      // ECONNRESET while sending or reading
  bool timed_out = false;  // the deadline passed before the server closed
  int status = 0;          // status code of the status line; 0 if none arrived
  std::string head;        // status line and headers, without the blank line
  std::string body;        // everything after the blank line
  std::string raw;         // every byte received
  int64_t elapsed_ms = 0;  // from connect to EOF / error / timeout
  // The value of header `name` (case-insensitive), "" if absent.
  std::string Header(std::string_view name) const;
};

// Connects to 127.0.0.1:port, sends `request` verbatim and reads until the
// server closes the connection or `timeout` passes.
HttpReply HttpExchange(int port, std::string_view request, Millis timeout = kStartTimeout);
// "GET <path> HTTP/1.0" (path starts with '/').
HttpReply HttpGet(int port, std::string_view path, Millis timeout = kStartTimeout);
// "POST <path> HTTP/1.0" with Content-Type and Content-Length.
HttpReply HttpPost(int port, std::string_view path, std::string_view content_type, std::string_view body,
                   Millis timeout = kStartTimeout);

// ---------------------------------------------------------------------------
// OCSP.

enum class CertStatus { kGood, kRevoked, kUnknown };
const char* ToString(CertStatus status);

// The certificate status in one OCSP answer.
struct OcspAnswer {
  bool ok = false;           // HTTP 200, a successful OCSP response with a SingleResponse for the cert
  std::string error;         // why not ok
  HttpReply http;
  int response_status = -1;  // OCSP_RESPONSE_STATUS_*; -1: nothing parseable
  CertStatus status = CertStatus::kUnknown;
  int reason = -1;           // OCSP_REVOKED_STATUS_* (CRL reason code) when revoked; -1: none given
  bool has_next_update = false;
  std::string der;           // the OCSPResponse as received
};

// The OCSPRequest (DER, SHA-1 CertID, no nonce) for `cert` issued by `issuer`.
std::string OcspRequestDer(X509* cert, X509* issuer);
// POSTs that request to 127.0.0.1:port and parses the answer (does not
// verify the signature: use OCSP_basic_verify on `der` for that).
OcspAnswer QueryOcsp(int port, X509* cert, X509* issuer, Millis timeout = kStartTimeout);

struct OcspResponderOptions {
  std::string dir;           // index.txt, index.txt.attr, ocsp.log (created if missing)
  std::string ca_cert;       // -CA: the issuer whose certificates it answers for
  std::string rsigner_cert;  // -rsigner (the CA itself or a delegated responder)
  std::string rsigner_key;   // -rkey
  int next_update_minutes = 60;  // -nmin N; 0: no nextUpdate in the responses
  int workers = 2;               // -multi N (a wedged worker is lost for good; the
                                 // others serve on); 0: no -multi, a single process
  bool resp_no_certs = false;    // -resp_no_certs: no certificates in the responses
  std::string rmd;               // -rmd <digest> for the signature; empty: openssl's default
  std::vector<std::string> extra_args;  // appended verbatim
  int port = 0;  // 0: `-port 0` and the port from the responder's "ACCEPT" line
  // SetStatus() on a running responder calls Refresh(), so that no worker
  // answers from the old index afterwards. false: only rewrite index.txt
  // (to observe openssl's own behaviour).
  bool refresh_on_change = true;
  // Start() refuses to run outside a private network namespace (the
  // responder listens on every interface) unless this is set.
  bool allow_outside_netns = false;
};

class OcspResponder {
 public:
  explicit OcspResponder(OcspResponderOptions options);  // writes an empty index
  ~OcspResponder();                                      // Stop()
  OcspResponder(const OcspResponder&) = delete;
  OcspResponder& operator=(const OcspResponder&) = delete;

  // Starts `openssl ocsp` and returns true once it answered a real OCSP
  // request (for a serial nobody has) with a successful response. On failure
  // everything is killed and `error` says why (with the log). A restart
  // after Stop() asks for the same port again.
  bool Start(std::string* error = nullptr, Millis timeout = kStartTimeout);
  // Kills the responder and all its workers (SIGKILL to the process group;
  // a wedged worker ignores nothing) and reaps them. Idempotent.
  void Stop();
  bool running();

  int port() const { return port_; }
  std::string url() const;      // "http://127.0.0.1:<port>/"
  pid_t pid() const;            // the openssl parent; -1 when stopped
  std::vector<pid_t> WorkerPids() const;  // its current children

  // Rewrites index.txt atomically (each version is a new inode, so the
  // responder always notices: it compares mtime, ctime, inode and device).
  // kGood: "V" line, kRevoked: "R" line with `reason` (an openssl reason
  // name such as "keyCompromise", "superseded", "certificateHold"; empty:
  // no reason) and `revoked_at` (0: now), kUnknown: no line at all.
  // Then, if running (and options().refresh_on_change), Refresh(): when
  // SetStatus() returns true every worker answers from the new index.
  bool SetStatus(X509* cert, CertStatus status, std::string_view reason = "keyCompromise", time_t revoked_at = 0);

  // `openssl ocsp` re-reads index.txt only at the top of its accept loop:
  // a worker already waiting in accept() answers ONE more request from the
  // old index (each worker on its own; which worker gets a connection is up
  // to the kernel). Refresh() makes every worker serve one request now:
  // it opens one idle connection per worker and waits until a worker has
  // accept()ed each (the server-side socket gets an inode in
  // /proc/net/tcp6) -- a worker blocked reading one connection cannot take
  // another, so N accepted connections are held by N distinct workers --
  // then sends a request on each and reads the answers. A wedged worker
  // never accepts: the connection it would have got is served by another
  // worker afterwards. True if every request was answered.
  bool Refresh(Millis timeout = kStartTimeout);

  // Polls the responder (every 20 ms) until it reports `expected` for
  // `cert`; for kRevoked also the reason SetStatus() gave, if any. (One
  // matching answer: see Refresh() for why that alone proves little
  // without it.)
  bool WaitForStatus(X509* cert, X509* issuer, CertStatus expected, Millis timeout = kStartTimeout);

  const std::string& index_path() const { return index_path_; }
  std::string Log() const;  // openssl's stdout/stderr (with -multi it logs little: syslog)
  const OcspResponderOptions& options() const { return options_; }

 private:
  struct Entry {
    CertStatus status;
    std::string expiry;    // YYMMDDHHMMSSZ
    std::string revoked;   // YYMMDDHHMMSSZ[,reason]
    std::string subject;
    int reason_code;       // -1: none
  };
  void WriteIndex();

  OcspResponderOptions options_;
  std::string index_path_;
  std::string log_path_;
  std::map<std::string, Entry> entries_;  // by serial (uppercase hex)
  int version_ = 0;
  int port_ = 0;
  std::string probe_request_;  // HTTP POST of an OCSP request for a serial nobody has
  std::unique_ptr<GuardedProcess> process_;
};

// ---------------------------------------------------------------------------
// HttpFileServer: `python3 -m http.server` on 127.0.0.1.

class HttpFileServer {
 public:
  // Serves `root` (created if missing); the log goes to `log_path`
  // (default: <root>.log, next to the directory, not in it).
  explicit HttpFileServer(std::string root, std::string log_path = "");
  ~HttpFileServer();  // Stop()
  HttpFileServer(const HttpFileServer&) = delete;
  HttpFileServer& operator=(const HttpFileServer&) = delete;

  // Starts python on a port it picks itself (a restart asks for the same
  // one again) and returns true once a GET of a probe path is answered.
  bool Start(std::string* error = nullptr, Millis timeout = kStartTimeout);
  void Stop();  // SIGKILL, reaped; idempotent
  bool running();

  int port() const { return port_; }
  std::string url(std::string_view path) const;  // "http://127.0.0.1:<port>/<path>"
  pid_t pid() const;
  const std::string& root() const { return root_; }
  std::string Log() const;

  // Writes `bytes` to a temporary file in `dir` and renames it to `name`:
  // a concurrent GET sees the old or the new content, never a mix. mtime:
  // seconds since the epoch, 0 = now. http.server's Last-Modified and its
  // If-Modified-Since check have one-second resolution: to make a new
  // version visible to a conditional GET within the same second, give it a
  // later mtime.
  static void PublishAtomically(const std::string& dir, const std::string& name, std::string_view bytes,
                                time_t mtime = 0);

 private:
  std::string root_;
  std::string log_path_;
  int port_ = 0;
  std::unique_ptr<GuardedProcess> process_;
};

// ---------------------------------------------------------------------------
// ScriptedHttpServer: an in-process HTTP server on 127.0.0.1 (one thread,
// poll-based, at most kMaxConnections open connections; more wait in the
// kernel backlog). Each request is read completely (headers and
// Content-Length body) and then served with the behaviour current at that
// moment.

struct ScriptedBehaviour {
  enum class Mode {
    kRespond,           // status line, Content-Type, Content-Length, body; then close
    kHang,              // never answer; the connection stays open until Stop()
    kCloseImmediately,  // close without a byte of answer (clean FIN) once the request is in
    kReset,             // close with RST (SO_LINGER 0) once the request is in
    kDelay,             // wait `delay`, then respond as kRespond
    kPartial,           // send the first `partial_bytes` of the response, then hang
  };
  Mode mode = Mode::kRespond;
  int status = 200;
  std::string content_type = "application/octet-stream";
  std::string body;
  Millis delay{0};
  size_t partial_bytes = 0;

  static ScriptedBehaviour Respond(int status, std::string content_type, std::string body);
  static ScriptedBehaviour Hang();
  static ScriptedBehaviour CloseImmediately();
  static ScriptedBehaviour Reset();
  static ScriptedBehaviour Delay(Millis delay, int status, std::string content_type, std::string body);
  static ScriptedBehaviour Partial(size_t bytes, int status, std::string content_type, std::string body);
};

class ScriptedHttpServer {
 public:
  static constexpr size_t kMaxConnections = 64;

  explicit ScriptedHttpServer(ScriptedBehaviour behaviour = {});
  ~ScriptedHttpServer();  // Stop()
  ScriptedHttpServer(const ScriptedHttpServer&) = delete;
  ScriptedHttpServer& operator=(const ScriptedHttpServer&) = delete;

  bool Start(std::string* error = nullptr);  // binds 127.0.0.1:0, starts the thread
  void Stop();  // wakes the thread (self-pipe), joins, closes every connection

  int port() const { return port_; }
  std::string url(std::string_view path = "/") const;  // "http://127.0.0.1:<port><path>"

  // Thread-safe; applies to requests completed from now on.
  void SetBehaviour(ScriptedBehaviour behaviour);
  int requests() const { return requests_.load(); }        // complete requests received
  int connections() const { return connections_.load(); }  // connections accepted
  std::string LastRequest() const;                         // raw bytes of the last complete request
  std::vector<std::string> Requests() const;               // all of them, in order

 private:
  void Run();
  ScriptedBehaviour Current() const;

  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mu_;
  ScriptedBehaviour behaviour_;
  std::vector<std::string> requests_log_;
  std::atomic<int> requests_{0};
  std::atomic<int> connections_{0};
};

// ---------------------------------------------------------------------------
// Blackhole: listens on 127.0.0.1 and never accepts. Connections complete in
// the kernel (up to the backlog; after that SYNs are dropped and connect()
// itself hangs); nothing is ever read or answered.

class Blackhole {
 public:
  explicit Blackhole(int backlog = 16);
  ~Blackhole();
  Blackhole(const Blackhole&) = delete;
  Blackhole& operator=(const Blackhole&) = delete;
  int port() const { return port_; }
  std::string url(std::string_view path = "/") const;

  // A port on 127.0.0.1 where connections are refused: a socket bound to it
  // without listen() is kept open for the rest of the process, so nobody
  // else can take it.
  static int UnusedPort();

 private:
  int fd_ = -1;
  int port_ = 0;
};

// ---------------------------------------------------------------------------
// Certificates and CRLs for revocation tests.

// Loads the first certificate of a PEM file; aborts if there is none.
certacl::X509Ptr LoadCert(const std::string& pem_path);
// The serial as openssl's index.txt spells it: uppercase hex, even length.
std::string SerialHex(const X509* cert);

// extnValue DER of authorityInfoAccess with one id-ad-ocsp URI and of
// cRLDistributionPoints with one fullName URI (for CertBuilder::Extension).
std::string DerAiaOcsp(std::string_view url);
std::string DerCrlDistributionPoint(std::string_view url);

struct ResponderCertSpec {
  std::string cn = "Acme OCSP Responder";
  bool ocsp_signing_eku = true;  // extendedKeyUsage OCSPSigning
  bool ocsp_nocheck = true;      // id-pkix-ocsp-nocheck
  const certacl::testing::TestCa* issuer = nullptr;  // nullptr: pki.issuing()
  int64_t not_before = 0;  // epoch seconds; both 0: valid from an hour ago for a year
  int64_t not_after = 0;
};

// A delegated OCSP responder certificate (CA:FALSE, keyUsage
// digitalSignature, EKU OCSPSigning, ocsp-nocheck unless the spec says
// otherwise), written as pki/<stem>.pem and pki/<stem>-key.pem.
CertFiles ResponderCert(Pki& pki, std::string_view stem = "ocsp-responder", const ResponderCertSpec& spec = {});

// A device certificate from the issuing CA with an AIA OCSP URL and a CDP
// URL (each left out when empty), written as pki/<stem>.pem / -key.pem.
CertFiles DeviceWithUrls(Pki& pki, std::string_view stem, const DeviceSpec& spec, std::string_view ocsp_url,
                         std::string_view crl_url);

struct CrlEntry {
  // {SerialHex(cert)}, {serial, 4 /* superseded */}, {serial, -1, when}
  CrlEntry(std::string serial, int reason_code = 1, int64_t when = 0)
      : serial_hex(std::move(serial)), reason(reason_code), revoked_at(when) {}
  std::string serial_hex;  // SerialHex(cert)
  int reason = 1;          // CRL reason code (1 keyCompromise); -1: no reason extension
  int64_t revoked_at = 0;  // epoch seconds; 0: an hour ago
};

// A CRL signed by `ca` (v2, SHA-256, AKI, CRL number), DER.
// this_update 0: a minute ago; next_update 0: this_update + 7 days;
// next_update < 0: no nextUpdate.
std::string MakeCrlDer(const certacl::testing::TestCa& ca, const std::vector<CrlEntry>& entries,
                       int64_t this_update = 0, int64_t next_update = 0, long crl_number = 1);

}  // namespace certacl::integration

#endif  // CERTACL_TESTS_INTEGRATION_PEERS_H_
