// lint.h: warnings about a policy that loads but probably does not do what
// its author meant. Used by `certacl lint`; pure, thread-safe.
//
// Warned about:
//  - a topic template naming an attribute the entry's own conditions do not
//    guarantee (devices without it get nothing from that entry, or, for a
//    deny, are denied everything for that action);
//  - a role that can never match (a value the attribute can never have,
//    e.g. an uppercase san.dns, a malformed cert.sha256, a NUL byte; or
//    contradictory expiry conditions);
//  - an allowed filter entirely shadowed by an unconditional deny;
//  - two roles granting the same topic (duplicate or covering filters);
//  - [revocation] with mode = "hard-fail" that would refuse some devices for
//    good (only per-certificate sources; a role CA not among the issuers).
#ifndef CERTACL_POLICY_LINT_H_
#define CERTACL_POLICY_LINT_H_

#include <vector>

#include "policy/policy.h"

namespace certacl {

// At most this many warnings of one kind are listed; the rest are counted.
constexpr size_t kMaxLintWarningsPerKind = 25;

std::vector<Diagnostic> LintPolicy(const Policy& policy);

}  // namespace certacl

#endif  // CERTACL_POLICY_LINT_H_
