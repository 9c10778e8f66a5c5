// instance.cc: Mosquitto events -> policy engine decisions.
#include "plugin/instance.h"

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdio>
#include <ctime>

#include "policy/identity.h"

namespace certacl::plugin {
namespace {

// Refusal reasons as counted and published: index -> $SYS name.
constexpr const char* kRefusalNames[] = {
    "no-certificate", "client-id-in-use", "deny-entry", "malformed-certificate",
    "no-role", "client-id-mismatch", "client-id-ambiguous", "client-id-unresolvable",
    "certificate-revoked", "revocation-unknown", "revocation-stale", "certificate-expired",
};
constexpr size_t kRefusalCount = sizeof(kRefusalNames) / sizeof(kRefusalNames[0]);

size_t RefusalIndex(Refusal why, const Session* s) {
  switch (why) {
    case Refusal::kNoCertificate: return 0;
    case Refusal::kClientIdInUse: return 1;
    case Refusal::kRevoked: return 8;
    case Refusal::kRevocationUnknown: return 9;
    case Refusal::kRevocationStale: return 10;
    case Refusal::kExpired: return 11;
    case Refusal::kPolicy: break;
  }
  switch (s->connect_result()) {
    case ConnectResult::kDeniedByDenyEntry: return 2;
    case ConnectResult::kMalformedCertificate: return 3;
    case ConnectResult::kNoRole: return 4;
    case ConnectResult::kClientIdMismatch: return 5;
    case ConnectResult::kClientIdAmbiguous: return 6;
    case ConnectResult::kClientIdUnresolvable: return 7;
    case ConnectResult::kAllowed: break;
  }
  return 4;
}

// Client ids and topics come from the network: escape anything that is not
// printable ASCII before it reaches the log.
std::string Printable(std::string_view s, size_t max = 200) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

std::string Der(X509* cert) { return ToDer<X509, i2d_X509>(cert); }
std::string NameDer(const X509_NAME* name) { return ToDer<const X509_NAME, i2d_X509_NAME>(name); }

// Who holds a client id: a digest of the certificate's subject and issuer,
// so a renewed certificate of the same device is the same owner.
std::string Owner(X509* cert) {
  const std::string names = NameDer(X509_get_subject_name(cert)) + '\0' + NameDer(X509_get_issuer_name(cert));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(names.data(), names.size(), digest, &len, EVP_sha256(), nullptr) != 1) return names;
  return std::string(reinterpret_cast<char*>(digest), len);
}

// A topic level for a URL in $SYS: '/', '+', '#' and anything unprintable
// percent-encoded.
std::string TopicLevel(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c > 0x20 && c < 0x7f && c != '/' && c != '+' && c != '#' && c != '%') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

X509Ptr FromDer(const std::string& der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  return X509Ptr(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

// The username certacl gives a device (logs, and Mosquitto's SIGHUP re-check
// keeps clients that have one): its CN when it has exactly one, otherwise a
// fingerprint prefix.
std::string UsernameFor(const Identity& id) {
  const std::vector<std::string>* cn = id.Values("subject.CN");
  if (cn && cn->size() == 1 && !(*cn)[0].empty()) return (*cn)[0];
  const std::vector<std::string>* fp = id.Values("cert.sha256");
  return "sha256:" + (fp ? fp->front().substr(0, 16) : std::string("unknown"));
}

// MQTT 3.1.1 with clean session: the session ends with the connection.
// MQTT 5 sessions may outlive it (session expiry), which plugins cannot read
// in Mosquitto 2.0: keep those unless the operator says the fleet never
// combines clean start with an expiry.
bool MayPersist(mosquitto* client, bool keep_mqtt5_clean_sessions) {
  if (!mosquitto_client_clean_session(client)) return true;
  return keep_mqtt5_clean_sessions && mosquitto_client_protocol_version(client) == 5;
}

}  // namespace

Instance::Instance(Options options)
    : options_(std::move(options)), refusal_log_(options_.log_refusals_per_minute) {}

Instance::~Instance() = default;

int64_t Instance::Now() { return static_cast<int64_t>(std::time(nullptr)); }

int64_t Instance::MonotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string Instance::Start() {
  std::vector<Diagnostic> diags;
  policy_ = LoadPolicyFile(options_.policy, &diags);
  if (!policy_) {
    std::string all;
    for (const Diagnostic& d : diags) {
      mosquitto_log_printf(MOSQ_LOG_ERR, "certacl: %s", d.ToString().c_str());
      if (all.empty()) all = d.ToString();
    }
    return "cannot load the policy " + options_.policy + ": " + all;
  }
  if (!options_.state_file.empty()) {
    state_file_ = std::make_unique<StateFile>();
    std::string err = state_file_->Open(options_.state_file, &restored_);
    if (!err.empty()) return err;
  }
  mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: policy %s loaded: %zu roles, %zu deny entries%s",
                       options_.policy.c_str(), policy_->roles.size(), policy_->denies.size(),
                       restored_.empty() ? "" : (", " + std::to_string(restored_.size()) +
                                                 " persistent-session identities restored").c_str());
  std::vector<std::string> log;
  revocation_.Configure(policy_, Now(), true, &log);
  for (const std::string& line : log) mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: %s", line.c_str());
  last_sys_publish_s_ = Now();
  return "";
}

Instance::Entry* Instance::Find(std::string_view client_id) {
  auto it = entries_.find(client_id);
  return it == entries_.end() ? nullptr : &it->second;
}

Instance::Entry* Instance::FindOrRestore(std::string_view client_id) {
  if (Entry* e = Find(client_id)) return e;
  auto r = restored_.find(std::string(client_id));
  if (r == restored_.end()) return nullptr;
  // A persistent session Mosquitto restored after a restart: decide for it
  // with the certificate it last connected with.
  std::string der = std::move(r->second);
  restored_.erase(r);
  X509Ptr cert = FromDer(der);
  if (!cert) return nullptr;
  Entry e;
  e.owner = Owner(cert.get());
  e.der = std::move(der);
  auto [it, inserted] = entries_.emplace(std::string(client_id), std::move(e));
  MarkOffline(it);
  return Find(client_id);
}

// Offline entries hold only the certificate until a check needs their
// Session; every entry is re-resolved once after a policy reload.
void Instance::Refresh(std::string_view client_id, Entry* e) {
  if (e->session.policy() == policy_.get() || e->der.empty()) return;
  X509Ptr cert = FromDer(e->der);
  if (!cert) return;
  e->session = Session::Resolve(policy_, Identity::FromCertificate(cert.get()), client_id, Now());
  if (e->rev_key.empty()) e->rev_key = revocation_.KeyOf(cert.get());
}

// Known revoked? Re-evaluated only when the revocation data changed.
bool Instance::Revoked(Entry* e) {
  if (!revocation_.enabled() || e->rev_key.empty()) return false;
  if (e->rev_generation != revocation_.generation()) {
    e->revoked = revocation_.IsRevoked(e->rev_key);
    e->rev_generation = revocation_.generation();
  }
  return e->revoked;
}

void Instance::IndexConnected(const std::string& client_id, Entry* e) {
  if (!e->rev_key.empty()) {
    connected_by_key_.emplace(e->rev_key, client_id);
    revocation_.NoteConnected(e->rev_key);
  }
  if (e->not_after > 0) {
    e->expiry_pos = expiry_.emplace(e->not_after, client_id);
    e->in_expiry = true;
  }
}

void Instance::UnindexConnected(const std::string& client_id, Entry* e) {
  if (e->in_expiry) {
    expiry_.erase(e->expiry_pos);
    e->in_expiry = false;
  }
  if (e->rev_key.empty()) return;
  auto [b, end] = connected_by_key_.equal_range(e->rev_key);
  for (auto it = b; it != end; ++it) {
    if (it->second == client_id) {
      connected_by_key_.erase(it);
      break;
    }
  }
  revocation_.NoteDisconnected(e->rev_key);
}

void Instance::Pump(int64_t now, bool may_kick) {
  if (revocation_.HasPending()) {
    revocation::Update u;
    const auto started = std::chrono::steady_clock::now();
    if (revocation_.Poll(now, &u)) {
      for (const std::string& l : u.log_info) mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: %s", l.c_str());
      for (const std::string& l : u.log_warning) mosquitto_log_printf(MOSQ_LOG_WARNING, "certacl: %s", l.c_str());
      if (u.recheck_all) {
        for (const auto& [key, id] : connected_by_key_) {
          if (revocation_.IsRevoked(key)) kicks_.push_back({id, key, 0, true});
        }
      } else {
        for (const std::string& key : u.revoked_keys) {
          auto [b, end] = connected_by_key_.equal_range(key);
          for (auto it = b; it != end; ++it) kicks_.push_back({it->second, key, 0, true});
        }
      }
      // The broker thread's whole share of a revocation update: worth
      // knowing when a CRL has a million entries.
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
      mosquitto_log_printf(MOSQ_LOG_DEBUG, "certacl: revocation update applied on the broker thread in %lld us",
                           static_cast<long long>(us.count()));
      if (!u.revoked_keys.empty() || u.recheck_all || !u.log_info.empty()) {
        mosquitto_log_printf(MOSQ_LOG_INFO, "certacl: revocation update applied in %lld us (%zu newly revoked%s)",
                             static_cast<long long>(us.count()), u.revoked_keys.size(),
                             u.recheck_all ? ", all connected devices re-checked" : "");
      }
    }
  }
  if (policy_->revocation.disconnect_expired) {
    for (auto it = expiry_.begin(); it != expiry_.end() && it->first < now;) {
      kicks_.push_back({it->second, {}, it->first, false});
      if (Entry* e = Find(it->second)) e->in_expiry = false;
      it = expiry_.erase(it);
    }
  }
  if (!may_kick || kicks_.empty()) return;
  // At most kMaxKicksPerEvent disconnects per event (each closes a socket
  // and may end a session): a mass revocation is worked off over a few
  // ticks instead of stalling the broker for seconds.
  constexpr size_t kMaxKicksPerEvent = 2000;
  std::vector<Kick> kicks;
  if (kicks_.size() <= kMaxKicksPerEvent) {
    kicks = std::move(kicks_);
    kicks_.clear();
  } else {
    kicks.assign(std::make_move_iterator(kicks_.begin()), std::make_move_iterator(kicks_.begin() + kMaxKicksPerEvent));
    kicks_.erase(kicks_.begin(), kicks_.begin() + kMaxKicksPerEvent);
  }
  for (const Kick& k : kicks) {
    Entry* e = Find(k.client_id);
    if (!e || !e->connected) continue;
    if (k.revoked ? e->rev_key != k.rev_key : e->not_after != k.not_after) continue;  // reconnected since
    if (k.revoked) {
      e->revoked = true;
      ++counters_.disconnected_revoked;
    } else {
      ++counters_.disconnected_expired;
    }
    uint64_t suppressed = 0;
    if (refusal_log_.Allow(now, &suppressed)) {
      if (suppressed) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: %llu refusal log lines suppressed in the last minute",
                             static_cast<unsigned long long>(suppressed));
      }
      mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: disconnecting client '%s': its certificate %s",
                           Printable(k.client_id).c_str(), k.revoked ? "has been revoked" : "has expired");
    }
    // Never a null id: that would disconnect every client.
    if (!k.client_id.empty()) mosquitto_kick_client_by_clientid(k.client_id.c_str(), false);
  }
  PublishSys();
}

int Instance::Refuse(mosquitto* client, Refusal why, const Session* session, const std::string& detail) {
  const size_t index = RefusalIndex(why, session);
  ++counters_.refused[index];
  uint64_t suppressed = 0;
  if (refusal_log_.Allow(Now(), &suppressed)) {
    if (suppressed) {
      mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: %llu refusal log lines suppressed in the last minute",
                           static_cast<unsigned long long>(suppressed));
    }
    const char* id = mosquitto_client_id(client);
    const char* address = mosquitto_client_address(client);
    std::string reason = session ? " [" + session->ExplainConnect() : "";
    if (session && !session->notes().empty()) reason += " (" + session->notes().back() + ")";
    if (session) reason += "]";
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: refused client '%s' from %s: %s%s; %s",
                         Printable(id ? id : "").c_str(), address ? address : "?", kRefusalNames[index],
                         Printable(reason, 400).c_str(), Printable(detail, 400).c_str());
  }
  return MOSQ_ERR_AUTH;
}

int Instance::OnBasicAuth(mosquitto* client) {
  const char* id_c = mosquitto_client_id(client);
  const std::string client_id = id_c ? id_c : "";
  X509Ptr cert(static_cast<X509*>(mosquitto_client_certificate(client)));
  const bool recheck = MonotonicMs() < reload_recheck_until_ms_;
  if (!cert) {
    if (recheck) return RecheckWithoutCertificate(client, client_id);
    return Refuse(client, Refusal::kNoCertificate, nullptr, "no TLS client certificate (set require_certificate true)");
  }
  const int64_t now = Now();
  Pump(now, true);
  MaybePublishSys(now);
  Identity identity = Identity::FromCertificate(cert.get());
  // Expiry and revocation first: a resumed TLS session skips the broker's
  // own certificate checks, and a revoked device learns nothing more.
  const int64_t not_after = identity.not_after();
  if (not_after > 0 && not_after < now) {
    return Refuse(client, Refusal::kExpired, nullptr, identity.Describe() + "; notAfter has passed");
  }
  revocation::CheckResult rv = revocation_.Check(cert.get(), now);
  switch (rv.status) {
    case revocation::Status::kGood: break;
    case revocation::Status::kRevoked:
      return Refuse(client, Refusal::kRevoked, nullptr, identity.Describe() + "; " + rv.detail);
    case revocation::Status::kStale:
      // During the SIGHUP re-check only a revoked answer disconnects: a
      // reload must not drop the fleet for want of fresh data.
      if (!recheck) return Refuse(client, Refusal::kRevocationStale, nullptr, identity.Describe() + "; " + rv.detail);
      break;
    case revocation::Status::kUnknown:
      if (recheck) break;
      if (revocation_.mode() == RevocationConfig::Mode::kHardFail) {
        return Refuse(client, Refusal::kRevocationUnknown, nullptr,
                      identity.Describe() + "; " + rv.detail + " (hard-fail: a retry succeeds once it is known)");
      }
      ++counters_.soft_fail_admitted;  // soft-fail: disconnected if a revoked answer arrives
      break;
  }
  Session session = Session::Resolve(policy_, identity, client_id, now);
  if (!session.connect_allowed()) return Refuse(client, Refusal::kPolicy, &session, identity.Describe());

  const std::string owner = Owner(cert.get());
  auto it = entries_.find(client_id);
  if (!recheck && !policy_->client_id) {
    // Without a client-id binding, another certificate must not take over a
    // session (and its queued messages) held by this client id.
    std::string holder;
    if (it != entries_.end()) {
      holder = it->second.owner;
    } else if (auto r = restored_.find(client_id); r != restored_.end()) {
      if (X509Ptr old = FromDer(r->second)) holder = Owner(old.get());
    }
    if (!holder.empty() && holder != owner) {
      return Refuse(client, Refusal::kClientIdInUse, nullptr,
                    identity.Describe() + "; the client id's session belongs to another certificate");
    }
  }
  if (it == entries_.end()) it = entries_.emplace(client_id, Entry{}).first;
  Entry& e = it->second;
  if (e.connected) UnindexConnected(client_id, &e);  // a takeover of its own session
  if (e.in_offline_list) {
    offline_order_.erase(e.offline_pos);
    e.in_offline_list = false;
  }
  e.session = std::move(session);
  e.owner = owner;
  e.connected = true;
  e.client = client;
  e.rev_key = std::move(rv.key);
  e.rev_generation = revocation_.generation();
  e.revoked = false;
  e.not_after = not_after;
  IndexConnected(client_id, &e);
  restored_.erase(client_id);
  if (MayPersist(client, options_.keep_mqtt5_clean_sessions)) {
    std::string der = Der(cert.get());
    if (der != e.der) {
      e.der = std::move(der);
      if (state_file_) state_file_->Put(client_id, e.der);
    }
  } else if (!e.der.empty()) {
    e.der.clear();
    if (state_file_) state_file_->Remove(client_id);
  }
  if (mosquitto_set_username(client, UsernameFor(identity).c_str()) != MOSQ_ERR_SUCCESS) {
    mosquitto_log_printf(MOSQ_LOG_WARNING, "certacl: could not set the username of client '%s'",
                         Printable(client_id).c_str());
  }
  if (!recheck) ++counters_.accepted;
  return MOSQ_ERR_SUCCESS;
}

// During Mosquitto's SIGHUP re-check, offline persistent sessions have no
// TLS connection: decide with the certificate they last connected with.
int Instance::RecheckWithoutCertificate(mosquitto* client, std::string_view client_id) {
  Entry* e = FindOrRestore(client_id);
  if (!e || e->der.empty() || e->connected) {
    return Refuse(client, Refusal::kNoCertificate, nullptr, "no TLS client certificate");
  }
  Refresh(client_id, e);
  if (!e->session.connect_allowed()) return Refuse(client, Refusal::kPolicy, &e->session, "offline session");
  return MOSQ_ERR_SUCCESS;
}

int Instance::OnAclCheck(mosquitto* client, const char* topic, int access, int qos, bool retain) {
  reload_recheck_until_ms_ = 0;
  const int64_t now = Now();
  Pump(now, false);
  MaybePublishSys(now);
  if (access == MOSQ_ACL_UNSUBSCRIBE) return MOSQ_ERR_SUCCESS;
  const int kind = access == MOSQ_ACL_WRITE ? 0 : access == MOSQ_ACL_SUBSCRIBE ? 1 : 2;
  const char* id = mosquitto_client_id(client);
  Entry* e = id ? FindOrRestore(id) : nullptr;
  if (!e || !topic) {
    ++counters_.acl[kind][1];
    return MOSQ_ERR_ACL_DENIED;
  }
  Refresh(id, e);
  // A revoked certificate gets nothing more, connected (until the next tick
  // disconnects it) or offline (its queued messages stop); an expired one
  // nothing while connected.
  if (Revoked(e) || (e->connected && e->not_after > 0 && e->not_after < now && policy_->revocation.disconnect_expired)) {
    ++counters_.acl[kind][1];
    return MOSQ_ERR_ACL_DENIED;
  }
  Decision d;
  switch (access) {
    case MOSQ_ACL_WRITE: d = e->session.CheckPublish(topic, qos, retain); break;
    case MOSQ_ACL_SUBSCRIBE: d = e->session.CheckSubscribe(topic); break;
    case MOSQ_ACL_READ: d = e->session.CheckRead(topic); break;
    default: break;
  }
  ++counters_.acl[kind][d.allowed ? 0 : 1];
  if (d.allowed) return MOSQ_ERR_SUCCESS;
  if (access != MOSQ_ACL_READ) {
    // Deliveries are filtered silently (a wildcard subscriber meets denials
    // as a matter of course); a refused publish or subscribe is worth a line.
    uint64_t suppressed = 0;
    if (refusal_log_.Allow(now, &suppressed)) {
      mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: denied %s '%s' for client '%s': %s",
                           kind == 0 ? "publish to" : "subscribe to", Printable(topic).c_str(), Printable(id).c_str(),
                           e->session.Explain(d, kind == 0 ? Action::kPublish : Action::kSubscribe).c_str());
    }
  }
  return MOSQ_ERR_ACL_DENIED;
}

void Instance::OnDisconnect(mosquitto* client) {
  reload_recheck_until_ms_ = 0;
  Pump(Now(), false);
  MaybePublishSys(Now());  // with per_listener_settings true there is no TICK
  const char* id = mosquitto_client_id(client);
  if (!id) return;
  auto it = entries_.find(std::string_view(id));
  // Only the connection that holds the entry ends it: a refused takeover
  // attempt with the same client id must not touch the holder's session.
  if (it == entries_.end() || !it->second.connected || it->second.client != client) return;
  UnindexConnected(it->first, &it->second);
  it->second.not_after = 0;
  if (MayPersist(client, options_.keep_mqtt5_clean_sessions)) {
    MarkOffline(it);
  } else {
    Erase(it);
  }
}

void Instance::MarkOffline(EntryMap::iterator it) {
  Entry& e = it->second;
  e.connected = false;
  e.client = nullptr;
  // Keep only the certificate (and owner digest) while offline: the Session
  // is rebuilt on the first READ check. Mosquitto 2.0 does not tell plugins
  // whether an MQTT 5 session outlives its connection, so most offline
  // entries are never asked about again.
  e.session = Session();
  if (!e.in_offline_list) {
    offline_order_.push_back(it->first);
    e.offline_pos = std::prev(offline_order_.end());
    e.in_offline_list = true;
  }
  while (offline_order_.size() > options_.max_offline_sessions) {
    auto oldest = entries_.find(offline_order_.front());
    if (oldest == entries_.end()) {
      offline_order_.pop_front();
      continue;
    }
    Erase(oldest);
  }
}

void Instance::Erase(EntryMap::iterator it) {
  Entry& e = it->second;
  if (e.connected) UnindexConnected(it->first, &e);
  if (e.in_offline_list) offline_order_.erase(e.offline_pos);
  if (!e.der.empty() && state_file_) state_file_->Remove(it->first);
  entries_.erase(it);
}

int Instance::OnReload() {
  std::vector<Diagnostic> diags;
  std::shared_ptr<const Policy> next = LoadPolicyFile(options_.policy, &diags);
  if (!next) {
    ++counters_.reload_failures;
    for (const Diagnostic& d : diags) mosquitto_log_printf(MOSQ_LOG_ERR, "certacl: %s", d.ToString().c_str());
    mosquitto_log_printf(MOSQ_LOG_ERR, "certacl: the new policy %s has errors: keeping the policy in force",
                         options_.policy.c_str());
    return MOSQ_ERR_PLUGIN_DEFER;
  }
  policy_ = std::move(next);
  ++counters_.reloads;
  std::vector<std::string> log;
  revocation_.Configure(policy_, Now(), false, &log);
  for (const std::string& line : log) mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: %s", line.c_str());
  // Mosquitto re-checks every client right after this event (BASIC_AUTH
  // again); offline sessions have no certificate then, see
  // RecheckWithoutCertificate. The window closes at the next other event.
  reload_recheck_until_ms_ = MonotonicMs() + 2000;
  mosquitto_log_printf(MOSQ_LOG_NOTICE, "certacl: policy %s reloaded: %zu roles, %zu deny entries",
                       options_.policy.c_str(), policy_->roles.size(), policy_->denies.size());
  PublishSys();
  return MOSQ_ERR_PLUGIN_DEFER;  // let other plugins see the reload too
}

void Instance::OnTick() {
  reload_recheck_until_ms_ = 0;
  const int64_t now = Now();
  Pump(now, true);
  MaybePublishSys(now);
}

void Instance::MaybePublishSys(int64_t now_s) {
  if (options_.sys_interval <= 0 || now_s - last_sys_publish_s_ < options_.sys_interval) return;
  last_sys_publish_s_ = now_s;
  PublishSys();
}

void Instance::PublishSys() {
  const std::string prefix = options_.SysPrefix();
  auto publish = [&](const std::string& topic, uint64_t value) {
    const std::string payload = std::to_string(value);
    mosquitto_broker_publish_copy(nullptr, (prefix + topic).c_str(), static_cast<int>(payload.size()), payload.data(),
                                  0, true, nullptr);
  };
  publish("/connections/accepted", counters_.accepted);
  for (size_t i = 0; i < kRefusalCount; ++i) publish(std::string("/connections/refused/") + kRefusalNames[i], counters_.refused[i]);
  const char* kinds[] = {"publish", "subscribe", "read"};
  for (int k = 0; k < 3; ++k) {
    publish(std::string("/acl/") + kinds[k] + "/allowed", counters_.acl[k][0]);
    publish(std::string("/acl/") + kinds[k] + "/denied", counters_.acl[k][1]);
  }
  publish("/sessions/connected", entries_.size() - offline_order_.size());
  publish("/sessions/offline", offline_order_.size());
  publish("/policy/reloads", counters_.reloads);
  publish("/policy/reload-failures", counters_.reload_failures);
  if (!revocation_.enabled()) return;
  const revocation::RevocationCounters& rc = revocation_.counters();
  publish("/revocation/cache/hits", rc.cache_hits);
  publish("/revocation/cache/misses", rc.cache_misses);
  publish("/revocation/crl/adopted", rc.crl_adopted);
  publish("/revocation/crl/rejected", rc.crl_rejected);
  publish("/revocation/crl/entries", revocation_.crl_entries());
  publish("/revocation/ocsp/cached", revocation_.ocsp_entries());
  publish("/revocation/ocsp/queue-full", rc.ocsp_queue_full);
  publish("/revocation/disconnected/revoked", counters_.disconnected_revoked);
  publish("/revocation/disconnected/expired", counters_.disconnected_expired);
  publish("/revocation/soft-fail-admitted", counters_.soft_fail_admitted);
  for (const auto& [url, f] : rc.fetches) {
    publish("/revocation/fetch/" + TopicLevel(url) + "/succeeded", f.succeeded);
    publish("/revocation/fetch/" + TopicLevel(url) + "/failed", f.failed);
  }
}

}  // namespace certacl::plugin
