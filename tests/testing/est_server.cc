// est_server.cc: see est_server.h. One accept thread polls the listener;
// each connection gets a thread doing blocking TLS (SIGPIPE blocked on the
// server's threads, so a client that hangs up is an EPIPE, never a signal).
#include "tests/testing/est_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>

#include "enroll-bridge/csr_check.h"
#include "enroll-bridge/est_codec.h"
#include "plugin/revocation/http_client.h"

namespace certacl::testing {
namespace {

constexpr size_t kMaxRequestBytes = 1 << 20;
constexpr int kIoTimeoutS = 5;
constexpr char kIdKpCmcRa[] = "1.3.6.1.5.5.7.3.28";
constexpr char kIdKpServerAuth[] = "1.3.6.1.5.5.7.3.1";

using Pkcs7Ptr = OpenSslPtr<PKCS7, PKCS7_free>;
using SslPtr = OpenSslPtr<SSL, SSL_free>;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "est_server: %s\n", what.c_str());
  ERR_print_errors_fp(stderr);
  std::abort();
}

void BlockSigpipe() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string Base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

// Base64 in 64-character lines ending in CRLF, as libest sends it.
std::string Base64Lines(std::string_view bytes) {
  const std::string flat = Base64(bytes);
  std::string out;
  for (size_t i = 0; i < flat.size(); i += 64) {
    out += flat.substr(i, 64);
    out += "\r\n";
  }
  return out;
}

// A degenerate (certs-only) PKCS#7 SignedData holding `certs` in this order.
std::string CertsOnly(const std::vector<X509*>& certs) {
  Pkcs7Ptr p7(PKCS7_new());
  if (!p7 || PKCS7_set_type(p7.get(), NID_pkcs7_signed) != 1 || PKCS7_content_new(p7.get(), NID_pkcs7_data) != 1) {
    Die("cannot build a PKCS#7 structure");
  }
  for (X509* c : certs) {
    if (PKCS7_add_certificate(p7.get(), c) != 1) Die("cannot add a certificate to a PKCS#7 structure");
  }
  return certacl::ToDer<PKCS7, i2d_PKCS7>(p7.get());
}

std::string Sha256(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), len);
}

const char* ReasonPhrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 415: return "Unsupported Media Type";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

// Reads one request (headers + Content-Length body) from `ssl`. False if
// the client went away, sent garbage, or sent too much.
bool ReadRequest(SSL* ssl, EstTestServer::Request* request) {
  std::string in;
  size_t header_end = std::string::npos;
  size_t need = 0;
  char buf[16384];
  for (;;) {
    if (header_end == std::string::npos) {
      header_end = in.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        std::string_view head(in.data(), header_end);
        const size_t line_end = head.find("\r\n");
        const std::string_view line = head.substr(0, line_end);
        const size_t sp1 = line.find(' ');
        const size_t sp2 = line.rfind(' ');
        if (sp1 == std::string_view::npos || sp2 == sp1) return false;
        request->method = std::string(line.substr(0, sp1));
        request->path = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
        size_t pos = line_end == std::string_view::npos ? head.size() : line_end + 2;
        while (pos < head.size()) {
          size_t eol = head.find("\r\n", pos);
          if (eol == std::string_view::npos) eol = head.size();
          const std::string_view h = head.substr(pos, eol - pos);
          const size_t colon = h.find(':');
          if (colon == std::string_view::npos) return false;
          std::string_view value = h.substr(colon + 1);
          while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
          while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
          request->headers.emplace_back(Lower(h.substr(0, colon)), std::string(value));
          pos = eol + 2;
        }
        if (const std::string* cl = request->Header("content-length")) {
          char* end = nullptr;
          const unsigned long long n = std::strtoull(cl->c_str(), &end, 10);
          if (cl->empty() || *end != '\0' || n > kMaxRequestBytes) return false;
          need = static_cast<size_t>(n);
        }
        if (request->Header("transfer-encoding") != nullptr) return false;  // no chunked requests here
      }
    }
    if (header_end != std::string::npos && in.size() >= header_end + 4 + need) {
      request->body = in.substr(header_end + 4, need);
      return true;
    }
    if (in.size() > kMaxRequestBytes) return false;
    size_t got = 0;
    if (SSL_read_ex(ssl, buf, sizeof buf, &got) != 1) return false;
    in.append(buf, got);
  }
}

}  // namespace

const std::string* EstTestServer::Request::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

EstTestServer::EstTestServer(X509* ca_cert, EVP_PKEY* ca_key, EstTestServerOptions options)
    : options_(std::move(options)), tls_ca_(TestCa::Create("EST Test TLS Root")), port_(options_.port) {
  std::string error;
  ca_ = enroll::LocalCa::FromObjects(ca_cert, ca_key, &error);
  if (!ca_) Die("bad issuing CA: " + error);

  CertBuilder server = tls_ca_.Issue();
  server.Subject("CN", options_.tls_cn);
  for (const std::string& ip : options_.tls_ip_sans) server.SanIp(ip);
  for (const std::string& dns : options_.tls_dns_sans) server.SanDns(dns);
  if (options_.tls_cmc_ra) {
    server.Extension("2.5.29.37", DerSequence({DerOid(kIdKpServerAuth), DerOid(kIdKpCmcRa)}));
  }
  X509Ptr cert = server.Build();

  ctx_.reset(SSL_CTX_new(TLS_server_method()));
  if (!ctx_ || SSL_CTX_use_certificate(ctx_.get(), cert.get()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx_.get(), server.key()) != 1 ||
      SSL_CTX_set_min_proto_version(ctx_.get(), TLS1_2_VERSION) != 1 ||
      (options_.max_tls_version != 0 && SSL_CTX_set_max_proto_version(ctx_.get(), options_.max_tls_version) != 1)) {
    Die("cannot set up the server's TLS context");
  }
  if (options_.client_certs != EstTestServerOptions::ClientCerts::kNone) {
    X509* anchor = options_.client_ca != nullptr ? options_.client_ca : ca_cert;
    if (X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx_.get()), anchor) != 1) Die("cannot add the client CA");
    int mode = SSL_VERIFY_PEER;
    if (options_.client_certs == EstTestServerOptions::ClientCerts::kRequire) {
      mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    }
    SSL_CTX_set_verify(ctx_.get(), mode, nullptr);
    if (SSL_CTX_add_client_CA(ctx_.get(), anchor) != 1) Die("cannot name the client CA");
  }
}

EstTestServer::~EstTestServer() { Stop(); }

bool EstTestServer::Start(std::string* error) {
  auto fail = [error](std::string why) {
    if (error != nullptr) *error = std::move(why);
    return false;
  };
  std::lock_guard<std::mutex> lock(mu_);
  if (listener_ >= 0) return true;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port_);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 64) != 0) {
    const int err = errno;
    ::close(fd);
    return fail("cannot listen on 127.0.0.1:" + std::to_string(port_) + ": " + std::strerror(err));
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  listener_ = fd;
  stopping_ = false;
  acceptor_ = std::thread([this, fd] { AcceptLoop(fd); });
  return true;
}

void EstTestServer::Stop() {
  std::thread acceptor;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (listener_ < 0) return;
    stopping_ = true;
    acceptor = std::move(acceptor_);
  }
  acceptor.join();  // no new connections after this
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);  // wakes blocked reads and writes
    ::close(listener_);
    listener_ = -1;
    workers.swap(workers_);
  }
  for (std::thread& t : workers) t.join();
}

uint16_t EstTestServer::port() const {
  std::lock_guard<std::mutex> lock(mu_);
  return port_;
}

std::string EstTestServer::url(std::string_view label) const {
  std::string u = "https://127.0.0.1:" + std::to_string(port()) + "/.well-known/est";
  if (!label.empty()) u += "/" + std::string(label);
  return u;
}

std::string EstTestServer::TlsCaPem() const { return ToPem(tls_ca_.cert.get()); }

void EstTestServer::SetPending(int n, int64_t retry_after_s) {
  std::lock_guard<std::mutex> lock(mu_);
  pending_n_ = n;
  pending_retry_after_s_ = retry_after_s;
  pending_seen_.clear();
}

void EstTestServer::RejectAll(int status, std::string text, int64_t retry_after_s) {
  Response r = Text(status, std::move(text));
  if (retry_after_s >= 0) r.headers.emplace_back("Retry-After", std::to_string(retry_after_s));
  std::lock_guard<std::mutex> lock(mu_);
  override_ = true;
  override_response_ = std::move(r);
}

void EstTestServer::AnswerAll(int status, std::string content_type, std::string body) {
  std::lock_guard<std::mutex> lock(mu_);
  override_ = true;
  override_response_ = Response{status, std::move(content_type), std::move(body), {}};
}

void EstTestServer::ServeNormally() {
  std::lock_guard<std::mutex> lock(mu_);
  override_ = false;
}

int EstTestServer::requests(std::string_view path) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = requests_.find(path);
  return it == requests_.end() ? 0 : it->second;
}

EstTestServer::Request EstTestServer::last_request() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_request_;
}

void EstTestServer::AcceptLoop(int listener) {
  BlockSigpipe();
  while (!stopping_.load()) {
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    const timeval tv{kIoTimeoutS, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    std::lock_guard<std::mutex> lock(mu_);
    open_fds_.insert(fd);
    workers_.emplace_back([this, fd] { Serve(fd); });
  }
}

void EstTestServer::Serve(int fd) {
  BlockSigpipe();
  {
    SslPtr ssl(SSL_new(ctx_.get()));
    if (ssl && SSL_set_fd(ssl.get(), fd) == 1 && SSL_accept(ssl.get()) == 1) {
      Request request;
      request.tls_version = SSL_version(ssl.get());
      const char* sni = SSL_get_servername(ssl.get(), TLSEXT_NAMETYPE_host_name);
      request.sni = sni != nullptr ? sni : "";
      X509* peer = SSL_get0_peer_certificate(ssl.get());
      request.client_cert = peer != nullptr && SSL_get_verify_result(ssl.get()) == X509_V_OK;
      const bool client_ra = request.client_cert && revocation::HasCmcRaEku(peer);
      if (ReadRequest(ssl.get(), &request)) {
        std::optional<Response> fixed;
        {
          std::lock_guard<std::mutex> lock(mu_);
          ++requests_[request.path];
          last_request_ = request;
          if (override_) fixed = override_response_;
        }
        const Response r = fixed ? *fixed : Handle(request, client_ra);
        std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + ReasonPhrase(r.status) + "\r\n";
        if (!r.content_type.empty()) out += "Content-Type: " + r.content_type + "\r\n";
        for (const auto& [name, value] : r.headers) out += name + ": " + value + "\r\n";
        if (r.status != 204) out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
        out += "Connection: close\r\n\r\n";
        if (r.status != 204) out += r.body;
        size_t written = 0;
        if (SSL_write_ex(ssl.get(), out.data(), out.size(), &written) == 1) SSL_shutdown(ssl.get());
      }
    } else {
      ++handshake_failures_;
    }
    ERR_clear_error();
  }
  // A lingering close: unread client bytes would make close() send a RST
  // that can overtake our last words (a response or a TLS alert).
  ::shutdown(fd, SHUT_WR);
  char sink[4096];
  for (int i = 0; i < 50 && !stopping_.load(); ++i) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 20) > 0 && ::recv(fd, sink, sizeof sink, 0) <= 0) break;
  }
  std::lock_guard<std::mutex> lock(mu_);
  open_fds_.erase(fd);
  ::close(fd);
}

EstTestServer::Response EstTestServer::Text(int status, std::string text) const {
  return Response{status, "text/plain", std::move(text) + "\n", {}};
}

EstTestServer::Response EstTestServer::Handle(const Request& request, bool client_ra) {
  static constexpr std::string_view kPrefix = "/.well-known/est/";
  std::string_view path = request.path;
  if (!path.starts_with(kPrefix)) return Text(404, "Not an EST path");
  path.remove_prefix(kPrefix.size());
  const size_t slash = path.find('/');
  std::string_view op = path;
  if (slash != std::string_view::npos) {  // <label>/<op>
    if (slash == 0 || path.find('/', slash + 1) != std::string_view::npos) return Text(404, "Not an EST path");
    op = path.substr(slash + 1);
  }
  if (op == "cacerts") {
    if (request.method != "GET") return Text(405, "cacerts takes GET");
    return Response{200, "application/pkcs7-mime", Base64Lines(CertsOnly({ca_->cert()})),
                    {{"Content-Transfer-Encoding", "base64"}}};
  }
  if (op == "csrattrs") {
    if (request.method != "GET") return Text(405, "csrattrs takes GET");
    if (options_.csrattrs_der.empty()) return Response{204, "", "", {}};
    return Response{200, "application/csrattrs", Base64Lines(options_.csrattrs_der),
                    {{"Content-Transfer-Encoding", "base64"}}};
  }
  if (op == "simpleenroll" || op == "simplereenroll") {
    if (request.method != "POST") return Text(405, std::string(op) + " takes POST");
    return Enroll(request, client_ra);
  }
  return Text(404, "Unknown EST operation");
}

EstTestServer::Response EstTestServer::Enroll(const Request& request, bool client_ra) {
  if (!options_.username.empty()) {
    const std::string expected = "Basic " + Base64(options_.username + ":" + options_.password);
    const std::string* auth = request.Header("authorization");
    if (auth == nullptr || *auth != expected) {
      Response r = Text(401, "The server was unable to authorize the request.");
      r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"estrealm\"");
      return r;
    }
  }
  if (options_.require_ra && !client_ra) return Text(401, "An RA certificate (id-kp-cmcRA) is required.");
  const std::string* type = request.Header("content-type");
  if (type == nullptr || enroll::MediaType(*type) != "application/pkcs10") {
    return Text(415, "Content-Type must be application/pkcs10");
  }
  std::string der;
  if (!enroll::DecodeEstBase64(request.body, &der)) return Text(400, "Invalid or corrupted pkcs10 request.");
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  enroll::X509ReqPtr csr(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())));
  if (!csr || p != reinterpret_cast<const unsigned char*>(der.data()) + der.size() ||
      X509_REQ_verify(csr.get(), X509_REQ_get0_pubkey(csr.get())) != 1) {
    ERR_clear_error();
    return Text(400, "Invalid or corrupted pkcs10 request.");
  }
  {
    const std::string key_id = Sha256(certacl::ToDer<EVP_PKEY, i2d_PUBKEY>(X509_REQ_get0_pubkey(csr.get())));
    std::lock_guard<std::mutex> lock(mu_);
    int& seen = pending_seen_[key_id];
    if (seen < pending_n_) {
      ++seen;
      return Response{202, "text/plain", "Request accepted, not issued yet\n",
                      {{"Retry-After", std::to_string(pending_retry_after_s_)}}};
    }
  }
  std::string error;
  X509Ptr leaf = ca_->Issue(csr.get(), options_.profile, static_cast<int64_t>(std::time(nullptr)), &error);
  if (!leaf) return Text(500, "Cannot issue: " + error);
  ++issued_;
  return Response{200, "application/pkcs7-mime; smime-type=certs-only", Base64Lines(CertsOnly({ca_->cert(), leaf.get()})),
                  {{"Content-Transfer-Encoding", "base64"}}};
}

}  // namespace certacl::testing
