// policy.h: a compiled certacl policy (docs/policy.md is the language).
//
// LoadPolicyFile()/LoadPolicyString() parse and check a TOML policy once
// into an immutable Policy, shared as std::shared_ptr<const Policy>: any
// number of threads may read it, and a Session keeps the policy it was
// resolved against alive. On any error nothing is returned and every problem
// found is reported as a Diagnostic with file:line:column and what was
// expected, so a reload can keep the old policy in force.
//
// The members are the compiled form, read by session.cc, lint.cc and the
// CLI; nothing mutates a Policy after loading.
#ifndef CERTACL_POLICY_POLICY_H_
#define CERTACL_POLICY_POLICY_H_

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "policy/enroll_config.h"
#include "policy/identity.h"
#include "policy/matcher.h"
#include "policy/revocation_config.h"
#include "policy/template.h"

namespace certacl {

struct Diagnostic {
  enum class Severity { kError, kWarning, kNote };  // a note is not a problem
  Severity severity = Severity::kError;
  std::string file;
  uint32_t line = 0;  // 1-based; 0 when the problem is not at one place
  uint32_t column = 0;
  std::string message;
  // "file:line:column: error: message" (or warning:, note:)
  std::string ToString() const;
};

struct SourcePos {
  uint32_t line = 0;
  uint32_t column = 0;
};

struct TopicRule {
  Template topic;
  uint8_t max_qos = 2;   // publish: highest QoS allowed
  bool retain = true;    // publish: may the message be retained?
  SourcePos pos;
};

struct Condition {
  std::string attribute;  // canonical
  ValueMatcher matcher;
  SourcePos pos;
};

// The conditions shared by roles and deny entries. All must hold.
struct Conditions {
  std::vector<Condition> match;
  std::vector<uint32_t> cas;                   // indices into Policy::cas; any of them
  std::optional<int64_t> expires_within;       // seconds
  std::optional<int64_t> not_expiring_within;  // seconds
  bool empty() const {
    return match.empty() && cas.empty() && !expires_within && !not_expiring_within;
  }
};

struct Role {
  std::string name;
  Conditions when;
  std::vector<TopicRule> publish;
  std::vector<TopicRule> subscribe;
  SourcePos pos;
};

struct DenyEntry {
  std::string name;  // may be empty
  Conditions when;
  bool connect = false;  // refuse matching devices outright
  std::vector<TopicRule> publish;
  std::vector<TopicRule> subscribe;
  SourcePos pos;
};

// A CA certificate named by `ca = "file.pem"`, trusted by its key.
struct TrustAnchor {
  std::string path;           // as written in the policy
  X509Ptr cert;
  std::string subject_key_id;  // raw bytes; empty if the CA has none
  std::string key_sha256;      // SHA-256 of its SubjectPublicKeyInfo (SignatureCache keys)
  std::string description;     // subject, for explain output
};

class Policy {
 public:
  std::string file;  // where it was loaded from (for messages)
  int version = 1;
  std::optional<Template> client_id;
  SourcePos client_id_pos;
  bool require_role = true;
  bool allow_malformed = false;
  std::vector<Role> roles;
  std::vector<DenyEntry> denies;
  std::vector<TrustAnchor> cas;
  // The computed attributes (ComputedAttribute bits, attributes.h) that a
  // `match` key or a `${...}` template names, plus cert.sha256 when a role
  // or deny has `ca` (its signature checks are cached by it; CAs named only
  // in [revocation] issuers do not count). An Identity read with
  // these bits holds everything this policy reads; Session::Resolve reads
  // the certificate again in full when given one that lacks any of them.
  uint32_t computed = 0;
  RevocationConfig revocation;  // [revocation]
  EnrollConfig enroll;          // [enroll]

  // Role index: for each indexed attribute, the roles that require one of
  // its values exactly. A role is in at most one index; roles without an
  // exact condition are in unindexed_roles. Resolution looks up the
  // device's values instead of scanning every role.
  struct AttributeIndex {
    std::string attribute;
    std::unordered_map<std::string, std::vector<uint32_t>> roles_by_value;
  };
  std::vector<AttributeIndex> role_index;
  std::vector<uint32_t> unindexed_roles;

  // "role 'smart-meter' (#0)" / "deny 'no-sys' (#1)" / "deny #1"
  std::string RoleLabel(uint32_t role) const;
  std::string DenyLabel(uint32_t deny) const;
};

// Loads and compiles a policy file. Relative `ca` paths are resolved against
// the policy file's directory. Returns nullptr if there is any error; the
// errors are appended to *diagnostics.
std::shared_ptr<const Policy> LoadPolicyFile(const std::string& path,
                                             std::vector<Diagnostic>* diagnostics);

// The same from text. `name` is used in messages; `base_dir` resolves `ca`.
std::shared_ptr<const Policy> LoadPolicyString(std::string_view text, const std::string& name,
                                               const std::string& base_dir,
                                               std::vector<Diagnostic>* diagnostics);

// Parses "30d", "12h", "90m", "3600s" (or a bare number of seconds).
std::optional<int64_t> ParseDuration(std::string_view text);

}  // namespace certacl

#endif  // CERTACL_POLICY_POLICY_H_
