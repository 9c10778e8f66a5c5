// session.h: one device's resolved permissions, and the per-message checks.
//
// Session::Resolve() runs once per connect: it finds the roles the device's
// Identity matches (through the policy's role index, not a scan), checks the
// client-id binding, and expands every topic template into concrete MQTT
// filters stored compactly in the session. The per-message checks
// (CheckPublish, CheckRead) then only walk those few filters: no allocation,
// no policy lookups.
//
// Safety rules (docs/policy.md): a substituted value that is empty, missing,
// or contains '/', '+', '#' or NUL voids that one entry for this device; a
// deny entry that cannot be resolved denies everything for its action; deny
// always wins; anything not allowed is denied.
//
// A Session is immutable after Resolve() and may be read from any thread.
// It keeps its Policy alive (shared_ptr), so a reload never invalidates it.
#ifndef CERTACL_POLICY_SESSION_H_
#define CERTACL_POLICY_SESSION_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <string>
#include <string_view>
#include <vector>

#include "policy/identity.h"
#include "policy/policy.h"
#include "policy/signature_cache.h"

namespace certacl {

enum class Action : uint8_t { kPublish, kSubscribe, kRead };

// Why a connect was allowed or refused.
enum class ConnectResult : uint8_t {
  kAllowed,
  kDeniedByDenyEntry,      // a [[deny]] with connect = true matched
  kMalformedCertificate,   // a value was rejected and allow_malformed is false
  kNoRole,                 // require_role and no role matched
  kClientIdMismatch,       // the client id differs from connect.client_id
  kClientIdAmbiguous,      // connect.client_id resolves to several values
  kClientIdUnresolvable,   // connect.client_id names a missing or empty value
};

// Short stable name for logs and counters: "allowed", "deny-entry",
// "malformed-certificate", "no-role", "client-id-mismatch",
// "client-id-ambiguous", "client-id-unresolvable".
const char* ConnectResultName(ConnectResult r);

// The outcome of one check and the rule that decided it.
struct Decision {
  enum class Source : uint8_t {
    kRole,          // allowed by roles[owner].publish/subscribe[entry]
    kDeny,          // denied by denies[owner].publish/subscribe[entry]
    kDenyAll,       // denies[owner] could not be resolved: everything denied
    kLimit,         // only roles[owner]...[entry] matched, and its max_qos/retain forbid this
    kDefault,       // no rule: default deny
    kInvalid,       // not a valid topic / filter
    kNotConnected,  // the connect itself was refused
  };
  bool allowed = false;
  Source source = Source::kDefault;
  uint32_t owner = 0;
  uint16_t entry = 0;
};

class Session {
 public:
  // Maximum expansions of one template for one device (several values).
  static constexpr size_t kMaxExpansions = 16;

  // `client_id` is what the device presented; `now` is Unix seconds.
  // `signatures`, when given, remembers `ca` signature checks across
  // resolutions (a reconnecting device is not verified again). `memory`,
  // when given, supplies the session's one long-lived allocation and must
  // outlive the Session (a broker keeps sessions apart from its own heap);
  // the temporaries of the resolution itself always use operator new.
  // `identity` needs only the computed attributes the policy names: read it
  // with Identity::FromCertificate(cert, policy->computed). One read with
  // fewer is read again in full from its certificate (correct, and slower).
  static Session Resolve(std::shared_ptr<const Policy> policy, const Identity& identity,
                         std::string_view client_id, int64_t now, SignatureCache* signatures = nullptr,
                         std::pmr::memory_resource* memory = nullptr);

  // What connect.client_id resolves to for this identity, if exactly one
  // value. On failure returns false and sets *why.
  static bool BoundClientId(const Policy& policy, const Identity& identity, std::string* out,
                            std::string* why);

  Session() = default;

  bool connect_allowed() const { return connect_ == ConnectResult::kAllowed; }
  // Resolving the same identity and client id against the same policy gives
  // this very Session at any `now` before valid_until() (Unix seconds): the
  // first time a role's or deny's expires_within / not_expiring_within that
  // was evaluated could change its answer. INT64_MAX if nothing depends on
  // the time.
  int64_t valid_until() const { return valid_until_; }
  ConnectResult connect_result() const { return connect_; }

  // The per-message checks. `topic` must be a valid topic name (the broker
  // validates it before any ACL check); `filter` may carry $share/<group>/.
  Decision CheckPublish(std::string_view topic, int qos, bool retain) const;
  Decision CheckSubscribe(std::string_view filter) const;
  Decision CheckRead(std::string_view topic) const;

  // True if CheckRead allows every topic not starting with '$' that the
  // `requested` filter matches ($share/<group>/ stripped): an allow filter
  // covers it, no deny filter can match any topic it matches, and nothing
  // denies the whole action. A broker that knows every subscription of a
  // connection passed this may skip CheckRead for that connection's
  // deliveries (topics starting with '$' excepted). False when the connect
  // was refused or the filter is invalid.
  bool ReadsCovered(std::string_view requested) const;
  // True if `other` allows and denies the same in CheckRead, CheckSubscribe
  // and ReadsCovered for every input (the rules that decide them have the
  // same texts in the same order; which rule is named may differ). What a
  // broker learned from ReadsCovered stays true when such a Session
  // replaces this one.
  bool SameReadRules(const Session& other) const;

  // "role 'smart-meter' (#0) publish[1] \"meters/${subject.L}/...\"" or
  // "no rule: default deny", etc.
  std::string Explain(const Decision& d, Action action) const;
  // "allowed: role 'smart-meter' (#0)" / "refused: no role matches ...".
  std::string ExplainConnect() const;

  // Introspection for explain, logs and tests.
  struct FilterView {
    Action action;  // kPublish or kSubscribe
    bool deny;
    std::string_view filter;
    uint32_t owner;
    uint16_t entry;
    uint8_t max_qos;
    bool retain;
  };
  std::vector<FilterView> Filters() const;
  // The matched roles (indexes into Policy::roles), in policy order; a copy.
  std::vector<uint32_t> roles() const;
  // The device's enrollment identity ({id} of docs/enroll.md): [enroll]
  // identity resolved to exactly one topic-safe value. Empty when the policy
  // has no [enroll], or when it cannot be resolved (a note says why).
  const std::string& enroll_identity() const { return enroll_identity_; }
  // One sentence per entry voided for this device, per rejected certificate
  // value, and per refused client-id binding.
  const std::vector<std::string>& notes() const { return notes_; }
  std::vector<std::string> TakeNotes() { return std::move(notes_); }
  const Policy* policy() const { return policy_.get(); }
  // Bytes held by this session (object + heap), for the memory budget.
  size_t MemoryUsage() const;

 private:
  struct Filter {
    uint32_t offset;  // into the arena
    uint16_t length;
    uint8_t max_qos;
    uint8_t retain;
    uint32_t owner;
    uint16_t entry;
    uint16_t literal;  // topic::LiteralPrefix() of the text
  };
  enum Group { kAllowPublish = 0, kAllowSubscribe, kDenyPublish, kDenySubscribe, kGroups };
  static constexpr uint32_t kNone = UINT32_MAX;
  struct Parts;  // what Resolve() collects before Pack()

  // One allocation holds everything variable-sized (a connected device's
  // Session lives as long as its connection): the filters grouped by Group,
  // then the role indexes, then the arena of filter texts.
  std::string_view Text(const Filter& f) const { return {Arena() + f.offset, f.length}; }
  const Filter* Filters0() const { return reinterpret_cast<const Filter*>(data_.get()); }
  const Filter* Begin(Group g) const { return Filters0() + (g == 0 ? 0 : end_[g - 1]); }
  const Filter* End(Group g) const { return Filters0() + end_[g]; }
  const char* Arena() const { return data_.get() + end_[kGroups - 1] * sizeof(Filter) + roles_count_ * sizeof(uint32_t); }
  void Pack(const Parts& parts, std::pmr::memory_resource* memory);

  // Gives the block back to the resource it came from.
  // (No member initializers: unique_ptr must see it default-constructible
  // inside Session; value-initialization zeroes it.)
  struct Release {
    std::pmr::memory_resource* memory;
    size_t size;
    void operator()(char* p) const { memory->deallocate(p, size, alignof(std::max_align_t)); }
  };

  std::shared_ptr<const Policy> policy_;
  std::unique_ptr<char[], Release> data_;
  uint32_t end_[kGroups] = {0, 0, 0, 0};  // filters of group g end at end_[g]
  uint32_t roles_count_ = 0;
  uint32_t deny_all_publish_ = kNone;    // deny entry that could not be resolved
  uint32_t deny_all_subscribe_ = kNone;
  uint32_t connect_owner_ = kNone;       // deny entry that refused the connect
  ConnectResult connect_ = ConnectResult::kNoRole;
  int64_t valid_until_ = INT64_MAX;
  std::string enroll_identity_;
  std::vector<std::string> notes_;
};

}  // namespace certacl

#endif  // CERTACL_POLICY_SESSION_H_
