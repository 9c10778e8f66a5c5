// session.cc: Identity + Policy -> Session, and the per-message checks.
#include "policy/session.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <optional>

#include "policy/topic.h"

namespace certacl {
namespace {

constexpr std::string_view kClientIdAttribute = "mqtt.client_id";

// The attributes visible to a policy: the identity's, plus mqtt.client_id.
class AttributeSource {
 public:
  AttributeSource(const Identity& identity, std::string_view client_id) : identity_(identity) {
    if (!client_id.empty() && CheckValue(client_id).empty()) client_id_.emplace_back(client_id);
  }
  const std::vector<std::string>* Values(std::string_view name) const {
    if (name == kClientIdAttribute) return client_id_.empty() ? nullptr : &client_id_;
    return identity_.Values(name);
  }
  const Identity& identity() const { return identity_; }

 private:
  const Identity& identity_;
  std::vector<std::string> client_id_;
};

// Lazily computed "was the certificate signed by CA #i?", shared by every
// condition in one resolution so each signature is verified at most once.
class CaCheck {
 public:
  CaCheck(const Policy& policy, const Identity& identity, SignatureCache* cache)
      : policy_(policy), identity_(identity), cache_(cache), state_(policy.cas.size(), kUnknown) {}

  bool SignedBy(uint32_t ca) {
    if (state_[ca] == kUnknown) state_[ca] = Verify(policy_.cas[ca]) ? kYes : kNo;
    return state_[ca] == kYes;
  }

 private:
  enum : int8_t { kUnknown, kYes, kNo };
  bool Verify(const TrustAnchor& anchor) const {
    X509* cert = identity_.certificate();
    if (!cert) return false;
    // A certificate naming another key as its issuer's is not considered
    // issued by this CA (this can only narrow access). Equal identifiers
    // prove nothing by themselves: the signature decides.
    const std::string& aki = identity_.authority_key_id();
    if (!aki.empty() && !anchor.subject_key_id.empty() && aki != anchor.subject_key_id) return false;
    EVP_PKEY* key = X509_get0_pubkey(anchor.cert.get());
    if (!key) return false;
    // Same certificate bytes, same CA key: same answer (only yes is kept).
    const std::vector<std::string>* sha = identity_.Values("cert.sha256");
    const bool cacheable = cache_ != nullptr && sha != nullptr && sha->size() == 1 && !anchor.key_sha256.empty();
    SignatureCache::Key k{};
    if (cacheable) {
      k = SignatureCache::KeyOf((*sha)[0], anchor.key_sha256);
      if (cache_->Contains(k)) return true;
    }
    if (cache_) cache_->CountVerification();
    // A prepared verifier's yes is X509_verify's; its no decides nothing.
    const P256Verifier* fast = cache_ ? cache_->VerifierFor(anchor.key_sha256) : nullptr;
    bool ok = (fast != nullptr && fast->Verify(cert)) || X509_verify(cert, key) == 1;
    ERR_clear_error();
    if (ok && cacheable) cache_->Insert(k);
    return ok;
  }
  const Policy& policy_;
  const Identity& identity_;
  SignatureCache* cache_;
  std::vector<int8_t> state_;
};

// Whether the conditions hold at `now`. When the answer depends on `now`
// (expires_within, not_expiring_within), lowers *valid_until to the first
// later time at which it could change.
bool Holds(const Conditions& c, const AttributeSource& attrs, int64_t now, CaCheck* cas, int64_t* valid_until) {
  for (const Condition& cond : c.match) {
    const std::vector<std::string>* values = attrs.Values(cond.attribute);
    if (!values) return false;
    bool any = false;
    for (const std::string& v : *values) {
      if (cond.matcher.Matches(v)) {
        any = true;
        break;
      }
    }
    if (!any) return false;
  }
  const int64_t not_after = attrs.identity().not_after();
  for (const std::optional<int64_t>& within : {c.expires_within, c.not_expiring_within}) {
    // Either condition flips when the time left, not_after - now, passes it.
    int64_t flip = 0;
    if (within && !__builtin_sub_overflow(not_after, *within, &flip) && flip > now) {
      *valid_until = std::min(*valid_until, flip);
    }
  }
  const int64_t remaining = not_after - now;
  if (c.expires_within && remaining > *c.expires_within) return false;
  if (c.not_expiring_within && remaining <= *c.not_expiring_within) return false;
  if (!c.cas.empty()) {
    bool signed_by_any = false;
    for (uint32_t ca : c.cas) {
      if (cas->SignedBy(ca)) {
        signed_by_any = true;
        break;
      }
    }
    if (!signed_by_any) return false;
  }
  return true;
}

// `given`, or when it was read without a computed attribute `p` names (for
// another policy, say) the same certificate read again in full, in *full: a
// value left out would fail a deny's match as surely as an allow's, and
// widen access.
const Identity& Complete(const Policy& p, const Identity& given, std::optional<Identity>* full) {
  if ((p.computed & ~given.computed()) == 0 || given.certificate() == nullptr) return given;
  *full = Identity::FromCertificate(given.certificate());
  return **full;
}

std::string Quoted(std::string_view s) {
  std::string q;
  q.reserve(s.size() + 2);
  q += '"';
  q.append(s);
  q += '"';
  return q;
}

// Why `v` cannot be substituted into a topic, or "" if it can.
std::string UnsafeForTopic(std::string_view v) {
  if (v.empty()) return "is empty";
  for (char c : v) {
    if (c == '/') return "contains '/'";
    if (c == '+') return "contains '+'";
    if (c == '#') return "contains '#'";
    if (c == '\0') return "contains NUL";
  }
  return "";
}

// Expands `t` once per combination of its attributes' values. Returns "" on
// success, otherwise why the template cannot be used for this device.
std::string Expand(const Template& t, const AttributeSource& attrs, bool for_topic,
                   std::vector<std::string>* out) {
  out->clear();
  // Distinct attributes in the template, with their values.
  std::vector<std::pair<std::string_view, const std::vector<std::string>*>> vars;
  size_t combinations = 1;
  for (const Template::Piece& p : t.pieces) {
    if (!p.is_attribute) continue;
    bool seen = false;
    for (auto& v : vars) seen = seen || v.first == p.text;
    if (seen) continue;
    const std::vector<std::string>* values = attrs.Values(p.text);
    if (!values || values->empty()) return p.text + " is missing";
    for (const std::string& v : *values) {
      std::string bad = for_topic ? UnsafeForTopic(v) : (v.empty() ? "is empty" : "");
      if (!bad.empty()) return p.text + " value " + Quoted(v) + " " + bad;
    }
    combinations *= values->size();
    if (combinations > Session::kMaxExpansions) {
      return "its values give more than " + std::to_string(Session::kMaxExpansions) +
             " combinations (the limit; values are never truncated)";
    }
    vars.emplace_back(p.text, values);
  }
  std::vector<size_t> pick(vars.size(), 0);
  for (size_t n = 0; n < combinations; ++n) {
    std::string s;
    for (const Template::Piece& p : t.pieces) {
      if (!p.is_attribute) {
        s += p.text;
        continue;
      }
      for (size_t k = 0; k < vars.size(); ++k) {
        if (vars[k].first == p.text) s += (*vars[k].second)[pick[k]];
      }
    }
    out->push_back(std::move(s));
    for (size_t k = 0; k < vars.size(); ++k) {  // odometer
      if (++pick[k] < vars[k].second->size()) break;
      pick[k] = 0;
    }
  }
  return "";
}

}  // namespace

const char* ConnectResultName(ConnectResult r) {
  switch (r) {
    case ConnectResult::kAllowed: return "allowed";
    case ConnectResult::kDeniedByDenyEntry: return "deny-entry";
    case ConnectResult::kMalformedCertificate: return "malformed-certificate";
    case ConnectResult::kNoRole: return "no-role";
    case ConnectResult::kClientIdMismatch: return "client-id-mismatch";
    case ConnectResult::kClientIdAmbiguous: return "client-id-ambiguous";
    case ConnectResult::kClientIdUnresolvable: return "client-id-unresolvable";
  }
  return "unknown";
}

struct Session::Parts {
  std::vector<Filter> filters;  // grouped by Group, in order
  uint32_t end[kGroups] = {0, 0, 0, 0};
  std::vector<uint32_t> roles;
  std::string arena;

  void AddFilter(Group g, std::string_view text, uint32_t owner, uint16_t entry, uint8_t max_qos, bool retain) {
    // Skip an identical filter already granted/denied with the same limits.
    for (uint32_t i = g == 0 ? 0 : end[g - 1]; i < end[g]; ++i) {
      const Filter& f = filters[i];
      if (std::string_view(arena).substr(f.offset, f.length) == text && f.max_qos == max_qos &&
          (f.retain != 0) == retain) {
        return;
      }
    }
    Filter f{static_cast<uint32_t>(arena.size()), static_cast<uint16_t>(text.size()), max_qos,
             static_cast<uint8_t>(retain), owner, entry, static_cast<uint16_t>(topic::LiteralPrefix(text))};
    static_assert(sizeof(Filter) == 16, "a Filter is 16 bytes: a connected device's filters stay small");
    arena.append(text);
    filters.insert(filters.begin() + end[g], f);
    for (int k = g; k < kGroups; ++k) ++end[k];
  }
};

void Session::Pack(const Parts& parts, std::pmr::memory_resource* memory) {
  const size_t filter_bytes = parts.filters.size() * sizeof(Filter);
  const size_t role_bytes = parts.roles.size() * sizeof(uint32_t);
  const size_t total = filter_bytes + role_bytes + parts.arena.size();
  std::copy(std::begin(parts.end), std::end(parts.end), std::begin(end_));
  roles_count_ = static_cast<uint32_t>(parts.roles.size());
  if (total == 0) return;
  if (memory == nullptr) memory = std::pmr::new_delete_resource();
  data_ = std::unique_ptr<char[], Release>(static_cast<char*>(memory->allocate(total, alignof(std::max_align_t))),
                                           Release{memory, total});
  if (filter_bytes) std::memcpy(data_.get(), parts.filters.data(), filter_bytes);
  if (role_bytes) std::memcpy(data_.get() + filter_bytes, parts.roles.data(), role_bytes);
  if (!parts.arena.empty()) std::memcpy(data_.get() + filter_bytes + role_bytes, parts.arena.data(), parts.arena.size());
}

bool Session::BoundClientId(const Policy& policy, const Identity& given, std::string* out,
                            std::string* why) {
  if (!policy.client_id) {
    if (why) *why = "the policy does not bind the client id (connect.client_id is not set)";
    return false;
  }
  std::optional<Identity> full;
  AttributeSource attrs(Complete(policy, given, &full), "");
  std::vector<std::string> values;
  std::string bad = Expand(*policy.client_id, attrs, /*for_topic=*/false, &values);
  if (!bad.empty()) {
    if (why) *why = "connect.client_id " + Quoted(policy.client_id->source) + " cannot be resolved: " + bad;
    return false;
  }
  if (values.size() != 1) {
    if (why) {
      *why = "connect.client_id " + Quoted(policy.client_id->source) + " is ambiguous: it resolves to " +
             std::to_string(values.size()) + " values";
    }
    return false;
  }
  *out = std::move(values[0]);
  return true;
}

Session Session::Resolve(std::shared_ptr<const Policy> policy, const Identity& given,
                         std::string_view client_id, int64_t now, SignatureCache* signatures,
                         std::pmr::memory_resource* memory) {
  Session s;
  Parts parts;
  const Policy& p = *policy;
  s.policy_ = std::move(policy);
  std::optional<Identity> full;
  const Identity& identity = Complete(p, given, &full);
  AttributeSource attrs(identity, client_id);
  CaCheck cas(p, identity, signatures);

  // Candidate roles: the indexed ones whose key value the device has, and
  // those that cannot be indexed. Policy order is kept.
  std::vector<uint32_t> candidates;
  for (const Policy::AttributeIndex& index : p.role_index) {
    const std::vector<std::string>* values = attrs.Values(index.attribute);
    if (!values) continue;
    for (const std::string& v : *values) {
      auto it = index.roles_by_value.find(v);
      if (it != index.roles_by_value.end()) candidates.insert(candidates.end(), it->second.begin(), it->second.end());
    }
  }
  candidates.insert(candidates.end(), p.unindexed_roles.begin(), p.unindexed_roles.end());
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());

  std::vector<std::string> expanded;
  auto add_rules = [&](const std::vector<TopicRule>& rules, Group group, uint32_t owner,
                       const std::string& label, const char* kind, bool is_deny) -> bool {
    for (size_t e = 0; e < rules.size(); ++e) {
      const TopicRule& r = rules[e];
      std::string bad = Expand(r.topic, attrs, /*for_topic=*/true, &expanded);
      if (!bad.empty()) {
        s.notes_.push_back(label + " " + kind + "[" + std::to_string(e) + "] " + Quoted(r.topic.source) +
                           (is_deny ? " cannot be resolved (" + bad + "): every " + kind + " is denied"
                                    : " is void for this device: " + bad));
        if (is_deny) return false;
        continue;
      }
      for (const std::string& f : expanded) {
        parts.AddFilter(group, f, owner, static_cast<uint16_t>(e), r.max_qos, r.retain);
      }
    }
    return true;
  };

  for (uint32_t i : candidates) {
    const Role& role = p.roles[i];
    if (!Holds(role.when, attrs, now, &cas, &s.valid_until_)) continue;
    parts.roles.push_back(i);
    const std::string label = p.RoleLabel(i);
    add_rules(role.publish, kAllowPublish, i, label, "publish", false);
    add_rules(role.subscribe, kAllowSubscribe, i, label, "subscribe", false);
  }

  for (uint32_t i = 0; i < p.denies.size(); ++i) {
    const DenyEntry& deny = p.denies[i];
    if (!Holds(deny.when, attrs, now, &cas, &s.valid_until_)) continue;
    if (deny.connect && s.connect_owner_ == kNone) s.connect_owner_ = i;
    const std::string label = p.DenyLabel(i);
    if (!add_rules(deny.publish, kDenyPublish, i, label, "publish", true) && s.deny_all_publish_ == kNone) {
      s.deny_all_publish_ = i;
    }
    if (!add_rules(deny.subscribe, kDenySubscribe, i, label, "subscribe", true) &&
        s.deny_all_subscribe_ == kNone) {
      s.deny_all_subscribe_ = i;
    }
  }

  for (const std::string& r : identity.rejected()) s.notes_.push_back("certificate value rejected: " + r);

  if (p.enroll.enabled) {
    std::vector<std::string> ids;
    std::string bad = Expand(p.enroll.identity, attrs, /*for_topic=*/true, &ids);
    if (bad.empty() && ids.size() != 1) bad = "it resolves to " + std::to_string(ids.size()) + " values";
    if (bad.empty()) {
      s.enroll_identity_ = std::move(ids[0]);
    } else {
      s.notes_.push_back("[enroll] identity " + Quoted(p.enroll.identity.source) + " cannot be resolved (" + bad +
                         "): this device has no enrollment identity and its renewal requests are refused");
    }
  }

  // The connect decision, most specific refusal first.
  if (s.connect_owner_ != kNone) {
    s.connect_ = ConnectResult::kDeniedByDenyEntry;
  } else if (!p.allow_malformed && !identity.rejected().empty()) {
    s.connect_ = ConnectResult::kMalformedCertificate;
  } else if (p.require_role && parts.roles.empty()) {
    s.connect_ = ConnectResult::kNoRole;
  } else if (p.client_id) {
    std::vector<std::string> ids;
    std::string bad = Expand(*p.client_id, attrs, /*for_topic=*/false, &ids);
    if (!bad.empty()) {
      s.connect_ = ConnectResult::kClientIdUnresolvable;
      s.notes_.push_back("connect.client_id " + Quoted(p.client_id->source) + " cannot be resolved: " + bad);
    } else if (ids.size() != 1) {
      s.connect_ = ConnectResult::kClientIdAmbiguous;
      s.notes_.push_back("connect.client_id " + Quoted(p.client_id->source) + " resolves to " +
                         std::to_string(ids.size()) + " values: refusing an ambiguous binding");
    } else if (ids[0] != client_id) {
      s.connect_ = ConnectResult::kClientIdMismatch;
      s.notes_.push_back("client id " + Quoted(client_id) + " is not the bound " + Quoted(ids[0]));
    } else {
      s.connect_ = ConnectResult::kAllowed;
    }
  } else {
    s.connect_ = ConnectResult::kAllowed;
  }
  s.Pack(parts, memory);
  return s;
}

Decision Session::CheckPublish(std::string_view topic, int qos, bool retain) const {
  if (connect_ != ConnectResult::kAllowed) return {false, Decision::Source::kNotConnected, 0, 0};
  if (deny_all_publish_ != kNone) return {false, Decision::Source::kDenyAll, deny_all_publish_, 0};
  for (const Filter* f = Begin(kDenyPublish); f != End(kDenyPublish); ++f) {
    if (topic::Matches(Text(*f), topic, f->literal)) return {false, Decision::Source::kDeny, f->owner, f->entry};
  }
  const Filter* limited = nullptr;
  for (const Filter* f = Begin(kAllowPublish); f != End(kAllowPublish); ++f) {
    if (!topic::Matches(Text(*f), topic, f->literal)) continue;
    if (qos <= f->max_qos && (!retain || f->retain)) return {true, Decision::Source::kRole, f->owner, f->entry};
    if (!limited) limited = f;
  }
  if (limited) return {false, Decision::Source::kLimit, limited->owner, limited->entry};
  return {false, Decision::Source::kDefault, 0, 0};
}

Decision Session::CheckRead(std::string_view topic) const {
  if (connect_ != ConnectResult::kAllowed) return {false, Decision::Source::kNotConnected, 0, 0};
  if (deny_all_subscribe_ != kNone) return {false, Decision::Source::kDenyAll, deny_all_subscribe_, 0};
  for (const Filter* f = Begin(kDenySubscribe); f != End(kDenySubscribe); ++f) {
    if (topic::Matches(Text(*f), topic, f->literal)) return {false, Decision::Source::kDeny, f->owner, f->entry};
  }
  for (const Filter* f = Begin(kAllowSubscribe); f != End(kAllowSubscribe); ++f) {
    if (topic::Matches(Text(*f), topic, f->literal)) return {true, Decision::Source::kRole, f->owner, f->entry};
  }
  return {false, Decision::Source::kDefault, 0, 0};
}

bool Session::ReadsCovered(std::string_view requested) const {
  if (connect_ != ConnectResult::kAllowed || deny_all_subscribe_ != kNone) return false;
  bool malformed = false;
  const std::string_view filter = topic::StripShare(requested, &malformed);
  if (malformed || !topic::IsValidFilter(filter, nullptr)) return false;
  for (const Filter* f = Begin(kDenySubscribe); f != End(kDenySubscribe); ++f) {
    if (topic::Intersects(Text(*f), filter)) return false;
  }
  for (const Filter* f = Begin(kAllowSubscribe); f != End(kAllowSubscribe); ++f) {
    if (topic::Covers(Text(*f), filter)) return true;
  }
  return false;
}

bool Session::SameReadRules(const Session& other) const {
  if (connect_allowed() != other.connect_allowed()) return false;
  if ((deny_all_subscribe_ == kNone) != (other.deny_all_subscribe_ == kNone)) return false;
  for (Group g : {kAllowSubscribe, kDenySubscribe}) {
    if (End(g) - Begin(g) != other.End(g) - other.Begin(g)) return false;
    for (const Filter *f = Begin(g), *o = other.Begin(g); f != End(g); ++f, ++o) {
      if (Text(*f) != other.Text(*o)) return false;
    }
  }
  return true;
}

Decision Session::CheckSubscribe(std::string_view requested) const {
  if (connect_ != ConnectResult::kAllowed) return {false, Decision::Source::kNotConnected, 0, 0};
  bool malformed = false;
  std::string_view filter = topic::StripShare(requested, &malformed);
  if (malformed || !topic::IsValidFilter(filter, nullptr)) return {false, Decision::Source::kInvalid, 0, 0};
  if (deny_all_subscribe_ != kNone) return {false, Decision::Source::kDenyAll, deny_all_subscribe_, 0};
  for (const Filter* f = Begin(kDenySubscribe); f != End(kDenySubscribe); ++f) {
    if (topic::Covers(Text(*f), filter)) return {false, Decision::Source::kDeny, f->owner, f->entry};
  }
  for (const Filter* f = Begin(kAllowSubscribe); f != End(kAllowSubscribe); ++f) {
    if (topic::Covers(Text(*f), filter)) return {true, Decision::Source::kRole, f->owner, f->entry};
  }
  return {false, Decision::Source::kDefault, 0, 0};
}

std::string Session::Explain(const Decision& d, Action action) const {
  const Policy& p = *policy_;
  const char* kind = action == Action::kPublish ? "publish" : "subscribe";
  auto rule_text = [&](const std::vector<TopicRule>& rules, uint16_t e) {
    return std::string(kind) + "[" + std::to_string(e) + "] " + Quoted(rules[e].topic.source);
  };
  switch (d.source) {
    case Decision::Source::kRole: {
      const Role& r = p.roles[d.owner];
      return p.RoleLabel(d.owner) + " " + rule_text(action == Action::kPublish ? r.publish : r.subscribe, d.entry);
    }
    case Decision::Source::kLimit: {
      const TopicRule& rule = p.roles[d.owner].publish[d.entry];
      return "only " + p.RoleLabel(d.owner) + " " + rule_text(p.roles[d.owner].publish, d.entry) +
             " matches, and it allows at most QoS " + std::to_string(rule.max_qos) +
             (rule.retain ? "" : " and no retained messages");
    }
    case Decision::Source::kDeny: {
      const DenyEntry& e = p.denies[d.owner];
      return p.DenyLabel(d.owner) + " " + rule_text(action == Action::kPublish ? e.publish : e.subscribe, d.entry);
    }
    case Decision::Source::kDenyAll:
      return p.DenyLabel(d.owner) + " could not be resolved for this device, so every " + kind + " is denied";
    case Decision::Source::kDefault:
      return "no rule: default deny";
    case Decision::Source::kInvalid:
      return action == Action::kSubscribe ? "not a valid MQTT topic filter" : "not a valid MQTT topic name";
    case Decision::Source::kNotConnected:
      return "connect " + ExplainConnect();
  }
  return "";
}

std::string Session::ExplainConnect() const {
  const Policy& p = *policy_;
  switch (connect_) {
    case ConnectResult::kAllowed: {
      std::string s = "allowed";
      const std::vector<uint32_t> matched = roles();
      if (!matched.empty()) s += ": " + p.RoleLabel(matched[0]);
      if (matched.size() > 1) s += " and " + std::to_string(matched.size() - 1) + " more role(s)";
      if (matched.empty()) s += " (no role matches; connect.require_role is false)";
      return s;
    }
    case ConnectResult::kDeniedByDenyEntry:
      return "refused by " + p.DenyLabel(connect_owner_) + " (connect = true)";
    case ConnectResult::kMalformedCertificate:
      return "refused: the certificate has a value certacl had to reject (connect.allow_malformed is false)";
    case ConnectResult::kNoRole:
      return "refused: no role matches this certificate (connect.require_role)";
    case ConnectResult::kClientIdMismatch:
      return "refused: the client id is not the one bound by connect.client_id " + Quoted(p.client_id->source);
    case ConnectResult::kClientIdAmbiguous:
      return "refused: connect.client_id " + Quoted(p.client_id->source) +
             " resolves to several values (ambiguous binding)";
    case ConnectResult::kClientIdUnresolvable:
      return "refused: connect.client_id " + Quoted(p.client_id->source) + " cannot be resolved for this certificate";
  }
  return "";
}

std::vector<Session::FilterView> Session::Filters() const {
  std::vector<FilterView> out;
  for (int g = 0; g < kGroups; ++g) {
    for (const Filter* f = Begin(static_cast<Group>(g)); f != End(static_cast<Group>(g)); ++f) {
      out.push_back({(g == kAllowPublish || g == kDenyPublish) ? Action::kPublish : Action::kSubscribe,
                     g >= kDenyPublish, Text(*f), f->owner, f->entry, f->max_qos, f->retain != 0});
    }
  }
  return out;
}

std::vector<uint32_t> Session::roles() const {
  std::vector<uint32_t> out(roles_count_);
  if (roles_count_) std::memcpy(out.data(), data_.get() + end_[kGroups - 1] * sizeof(Filter), roles_count_ * sizeof(uint32_t));
  return out;
}

size_t Session::MemoryUsage() const {
  size_t n = sizeof(Session) + data_.get_deleter().size;
  if (enroll_identity_.capacity() > 15) n += enroll_identity_.capacity() + 1;
  for (const std::string& note : notes_) n += sizeof(std::string) + note.capacity();
  return n;
}

}  // namespace certacl
