// engine.cc: see engine.h.
#include "bench/loadgen/engine.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <utility>

namespace certacl::loadgen {
namespace {

// Why a TLS call failed (SSL_get_error `err`): OpenSSL's last error, else
// errno for a syscall error, else `otherwise`.
std::string TlsErrorText(int err, const char* otherwise) {
  char buf[256];
  if (const unsigned long e = ERR_peek_last_error(); e != 0) {
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
  }
  if (err == SSL_ERROR_SYSCALL && errno != 0) return std::strerror(errno);
  return otherwise;
}

}  // namespace

uint64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

// ---------------------------------------------------------------------------
// Histogram.

int Histogram::Index(uint64_t v) {
  if (v < 128) return static_cast<int>(v);
  const int msb = 63 - std::countl_zero(v);  // >= 7
  const int sub = static_cast<int>((v >> (msb - 6)) & 63);
  return 128 + (msb - 7) * 64 + sub;
}

uint64_t Histogram::Value(int index) {
  if (index < 128) return static_cast<uint64_t>(index);
  const int msb = (index - 128) / 64 + 7;
  const uint64_t sub = static_cast<uint64_t>((index - 128) % 64);
  const uint64_t low = (64 + sub) << (msb - 6);
  const uint64_t width = uint64_t{1} << (msb - 6);
  return low + width / 2;
}

void Histogram::Record(uint64_t ns) {
  ++buckets_[static_cast<size_t>(Index(ns))];
  ++count_;
}

double Histogram::PercentileMs(double p) const {
  if (count_ == 0) return 0;
  uint64_t rank = static_cast<uint64_t>(p / 100.0 * static_cast<double>(count_));
  if (rank >= count_) rank = count_ - 1;
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += buckets_[static_cast<size_t>(i)];
    if (seen > rank) return static_cast<double>(Value(i)) / 1e6;
  }
  return 0;
}

// ---------------------------------------------------------------------------
// Credentials.

bool LoadCredentials(const std::string& path, size_t max, std::vector<Credential>* out) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    std::fprintf(stderr, "certacl-loadgen: cannot read %s\n", path.c_str());
    return false;
  }
  while (out->size() < max) {
    Credential c;
    c.cert.reset(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!c.cert) break;
    c.key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (!c.key) {
      std::fprintf(stderr, "certacl-loadgen: %s: certificate %zu has no key after it\n", path.c_str(), out->size());
      return false;
    }
    char cn[256] = {};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(c.cert.get()), NID_commonName, cn, sizeof cn) < 0) {
      std::fprintf(stderr, "certacl-loadgen: %s: certificate %zu has no CN\n", path.c_str(), out->size());
      return false;
    }
    c.cn = cn;
    out->push_back(std::move(c));
  }
  ERR_clear_error();  // the PEM end-of-file "error"
  return true;
}

// ---------------------------------------------------------------------------
// Engine.

Engine::Engine(EngineConfig config, Handler* handler) : config_(std::move(config)), handler_(handler) {}

Engine::~Engine() {
  for (auto& c : conns_) Close(c.get());
  if (epfd_ >= 0) ::close(epfd_);
}

bool Engine::Init() {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) {
    std::perror("certacl-loadgen: epoll_create1");
    return false;
  }
  addr_.sin_family = AF_INET;
  addr_.sin_port = htons(static_cast<uint16_t>(config_.port));
  if (inet_pton(AF_INET, config_.host.c_str(), &addr_.sin_addr) == 1) {
    host_is_ip_ = true;
  } else {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (getaddrinfo(config_.host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) {
      std::fprintf(stderr, "certacl-loadgen: cannot resolve %s\n", config_.host.c_str());
      return false;
    }
    addr_.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
    freeaddrinfo(res);
  }
  ctx_.reset(SSL_CTX_new(TLS_client_method()));
  if (!ctx_ || SSL_CTX_set_min_proto_version(ctx_.get(), TLS1_2_VERSION) != 1 ||
      SSL_CTX_load_verify_locations(ctx_.get(), config_.ca_bundle.c_str(), nullptr) != 1) {
    std::fprintf(stderr, "certacl-loadgen: cannot set up TLS with %s\n", config_.ca_bundle.c_str());
    ERR_print_errors_fp(stderr);
    return false;
  }
  SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_session_cache_mode(ctx_.get(), SSL_SESS_CACHE_OFF);  // every connect is a full handshake
  SSL_CTX_set_mode(ctx_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  return true;
}

Conn* Engine::NewConn(const Credential* cred, int index, bool collector) {
  auto c = std::make_unique<Conn>();
  c->cred = cred;
  c->index = index;
  c->collector = collector;
  conns_.push_back(std::move(c));
  return conns_.back().get();
}

void Engine::Launch(Conn* c) {
  pending_.push_back(c);
  Pump();
}

void Engine::Pump() {
  while (in_progress_ < config_.concurrency && !pending_.empty()) {
    Conn* next = pending_.front();
    pending_.pop_front();
    Start(next);
  }
}

void Engine::Start(Conn* c) {
  ++in_progress_;
  c->t0 = NowNs();
  c->state = State::kTcp;
  c->fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    Fail(c, "socket", std::strerror(errno));
    return;
  }
  const int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(c->fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_) != 0 && errno != EINPROGRESS) {
    Fail(c, "tcp", std::strerror(errno));
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.ptr = c;
  c->interest = ev.events;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, c->fd, &ev) != 0) Fail(c, "epoll", std::strerror(errno));
}

void Engine::Poll(int timeout_ms) {
  epoll_event events[256];
  const int n = epoll_wait(epfd_, events, 256, timeout_ms);
  for (int i = 0; i < n; ++i) OnEvent(static_cast<Conn*>(events[i].data.ptr), events[i].events);
  const uint64_t now = NowNs();
  if (now - last_timeout_scan_ > 100'000'000ULL) {
    last_timeout_scan_ = now;
    CheckTimeouts(now);
  }
  Pump();
}

void Engine::CheckTimeouts(uint64_t now) {
  if (in_progress_ == 0) return;
  for (auto& c : conns_) {
    if ((c->state == State::kTcp || c->state == State::kTls || c->state == State::kMqtt) &&
        now - c->t0 > config_.connect_timeout_ns) {
      Fail(c.get(), "timeout", "no CONNACK within the connect timeout");
    }
  }
}

void Engine::OnEvent(Conn* c, uint32_t events) {
  if (c->state == State::kTcp) {
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) {
      Fail(c, "tcp", std::strerror(err));
      return;
    }
    c->ssl.reset(SSL_new(ctx_.get()));
    if (!c->ssl || SSL_set_fd(c->ssl.get(), c->fd) != 1 || SSL_use_certificate(c->ssl.get(), c->cred->cert.get()) != 1 ||
        SSL_use_PrivateKey(c->ssl.get(), c->cred->key.get()) != 1) {
      Fail(c, "tls", "cannot set up the SSL object");
      return;
    }
    if (host_is_ip_) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl.get()), config_.host.c_str());
    } else {
      SSL_set1_host(c->ssl.get(), config_.host.c_str());
      SSL_ctrl(c->ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,  // SNI (the macro casts)
               const_cast<char*>(config_.host.c_str()));
    }
    SSL_set_connect_state(c->ssl.get());
    c->state = State::kTls;
    c->rbuf.resize(4096);
  }
  if (c->state == State::kTls) {
    Handshake(c);
    if (c->state == State::kTls) UpdateInterest(c);
    if (c->state != State::kMqtt) return;
  } else if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0 || c->tls_wants_write) {
    c->tls_wants_write = false;
    ReadAll(c);
    if (c->state == State::kClosed) return;
  }
  Flush(c);
  if (c->state == State::kReady && c->want_writable && c->woff == c->wbuf.size()) {
    handler_->OnWritable(*c);
    if (c->state != State::kClosed) Flush(c);
  }
  if (c->state != State::kClosed) UpdateInterest(c);
}

void Engine::Handshake(Conn* c) {
  ERR_clear_error();
  const int r = SSL_connect(c->ssl.get());
  if (r == 1) {
    c->state = State::kMqtt;
    c->tls_wants_write = false;
    mqtt::Connect(c->wbuf, config_.v5, c->cred->cn, config_.keepalive);
    return;
  }
  const int err = SSL_get_error(c->ssl.get(), r);
  if (err == SSL_ERROR_WANT_READ) {
    c->tls_wants_write = false;
    return;
  }
  if (err == SSL_ERROR_WANT_WRITE) {
    c->tls_wants_write = true;
    return;
  }
  const long verify = SSL_get_verify_result(c->ssl.get());
  std::string detail = TlsErrorText(err, "connection closed during the handshake");
  if (verify != X509_V_OK) detail += std::string(" (server certificate: ") + X509_verify_cert_error_string(verify) + ")";
  Fail(c, "tls", detail);
}

void Engine::ReadAll(Conn* c) {
  for (;;) {
    if (c->rbuf.size() - c->rlen < 1024) c->rbuf.resize(c->rbuf.size() * 2);
    ERR_clear_error();
    const int n = SSL_read(c->ssl.get(), c->rbuf.data() + c->rlen, static_cast<int>(c->rbuf.size() - c->rlen));
    if (n > 0) {
      c->rlen += static_cast<size_t>(n);
      size_t off = 0;
      for (;;) {
        mqtt::Packet p;
        size_t used = 0;
        const mqtt::Split s = mqtt::SplitPacket(c->rbuf.data() + off, c->rlen - off, &p, &used);
        if (s == mqtt::Split::kNeedMore) break;
        if (s == mqtt::Split::kMalformed) {
          Fail(c, "protocol", "malformed MQTT packet from the broker");
          return;
        }
        off += used;
        Dispatch(c, p);
        if (c->state == State::kClosed) return;
      }
      if (off > 0) {
        std::memmove(c->rbuf.data(), c->rbuf.data() + off, c->rlen - off);
        c->rlen -= off;
      }
      continue;
    }
    const int err = SSL_get_error(c->ssl.get(), n);
    if (err == SSL_ERROR_WANT_READ) return;
    if (err == SSL_ERROR_WANT_WRITE) {
      c->tls_wants_write = true;
      return;
    }
    Fail(c, err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && n == 0) ? "closed" : "tls",
         TlsErrorText(err, "connection closed by the broker"));
    return;
  }
}

void Engine::Dispatch(Conn* c, const mqtt::Packet& p) {
  switch (p.type) {
    case mqtt::kConnack: {
      if (c->state != State::kMqtt || p.len < 2) {
        Fail(c, "protocol", "unexpected CONNACK");
        return;
      }
      const uint8_t code = p.body[1];
      if (code != 0) {
        ++refused[code];
        ConnectFinished(c, false);
        Close(c);
        return;
      }
      ++accepted;
      connect_latency.Record(NowNs() - c->t0);
      c->state = State::kReady;
      ConnectFinished(c, true);
      if (c->state == State::kReady) handler_->OnReady(*c);
      return;
    }
    case mqtt::kPublish: {
      mqtt::Publish pub;
      if (!mqtt::ParsePublish(p, config_.v5, &pub)) {
        Fail(c, "protocol", "malformed PUBLISH");
        return;
      }
      if (pub.qos == 1) mqtt::Puback(c->wbuf, pub.packet_id);
      handler_->OnPublish(*c, pub);
      return;
    }
    case mqtt::kPuback:
      if (p.len >= 2) handler_->OnPuback(*c, mqtt::U16(p.body), p.len >= 3 ? p.body[2] : 0);
      return;
    case mqtt::kSuback: {
      if (p.len < 3) return;
      size_t pos = 2;
      if (config_.v5) {
        size_t plen = 0;
        if (!mqtt::ReadVarint(p.body, p.len, &pos, &plen) || p.len - pos < plen + 1) {
          Fail(c, "protocol", "malformed SUBACK");
          return;
        }
        pos += plen;
      }
      handler_->OnSuback(*c, mqtt::U16(p.body), p.body[pos]);
      return;
    }
    case mqtt::kDisconnect: {
      char buf[64];
      std::snprintf(buf, sizeof buf, "DISCONNECT from the broker (reason 0x%02x)", p.len > 0 ? p.body[0] : 0);
      Fail(c, "disconnected", buf);
      return;
    }
    default:
      return;  // PINGRESP and anything else
  }
}

void Engine::Flush(Conn* c) {
  if (c->state == State::kClosed || c->state == State::kTcp || c->state == State::kTls) return;
  while (c->woff < c->wbuf.size()) {
    ERR_clear_error();
    const size_t left = c->wbuf.size() - c->woff;
    const int n = SSL_write(c->ssl.get(), c->wbuf.data() + c->woff, static_cast<int>(left > (1 << 30) ? (1 << 30) : left));
    if (n > 0) {
      c->woff += static_cast<size_t>(n);
      continue;
    }
    const int err = SSL_get_error(c->ssl.get(), n);
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) return;
    Fail(c, "closed", err == SSL_ERROR_SYSCALL && errno != 0 ? std::strerror(errno) : "write failed");
    return;
  }
  c->wbuf.clear();
  c->woff = 0;
}

void Engine::SetWantWritable(Conn* c, bool on) {
  if (c->want_writable == on || c->state == State::kClosed) return;
  c->want_writable = on;
  UpdateInterest(c);
}

void Engine::UpdateInterest(Conn* c) {
  if (c->fd < 0) return;
  const bool out = c->state == State::kTcp || c->tls_wants_write || c->woff < c->wbuf.size() ||
                   (c->want_writable && c->state == State::kReady);
  const uint32_t want = EPOLLIN | (out ? static_cast<uint32_t>(EPOLLOUT) : 0u);
  if (want == c->interest) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.ptr = c;
  c->interest = want;
  epoll_ctl(epfd_, EPOLL_CTL_MOD, c->fd, &ev);
}

void Engine::Disconnect(Conn* c) {
  if (c->state == State::kClosed) return;
  if (c->state == State::kReady || c->state == State::kMqtt) {
    mqtt::Disconnect(c->wbuf);
    Flush(c);
    if (c->state != State::kClosed) SSL_shutdown(c->ssl.get());  // close_notify, not waited for
  }
  if (c->state == State::kTcp || c->state == State::kTls || c->state == State::kMqtt) ConnectFinished(c, false);
  Close(c);
}

void Engine::Fail(Conn* c, const std::string& category, const std::string& detail) {
  if (c->state == State::kClosed) return;
  const bool connecting = c->state != State::kReady;
  if (connecting) {
    ++failed;
    ++failures[category];
    if (failures_printed_ < 5) {
      ++failures_printed_;
      std::fprintf(stderr, "certacl-loadgen: %s: connect failed (%s): %s\n", c->cred->cn.c_str(), category.c_str(),
                   detail.c_str());
    }
    ConnectFinished(c, false);
    Close(c);
    return;
  }
  ++lost;
  if (failures_printed_ < 5) {
    ++failures_printed_;
    std::fprintf(stderr, "certacl-loadgen: %s: connection lost (%s): %s\n", c->cred->cn.c_str(), category.c_str(),
                 detail.c_str());
  }
  Close(c);
  handler_->OnLost(*c);
}

void Engine::ConnectFinished(Conn* c, bool ok) {
  --in_progress_;
  handler_->OnConnectDone(*c, ok);
}

void Engine::Close(Conn* c) {
  if (c->state == State::kClosed || c->state == State::kIdle) return;
  c->state = State::kClosed;
  c->ssl.reset();
  if (c->fd >= 0) ::close(c->fd);
  c->fd = -1;
  c->want_writable = false;
  std::vector<uint8_t>().swap(c->rbuf);
  std::string().swap(c->wbuf);
  c->rlen = 0;
  c->woff = 0;
}

}  // namespace certacl::loadgen
