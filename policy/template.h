// template.h: a compiled topic, client-id or identity template of a policy:
// literal text with ${attribute} pieces (docs/policy.md, "Topic templates").
//
// Produced by the policy loader, expanded per device by session.cc. Plain
// data, immutable after loading.
#ifndef CERTACL_POLICY_TEMPLATE_H_
#define CERTACL_POLICY_TEMPLATE_H_

#include <string>
#include <vector>

namespace certacl {

struct Template {
  struct Piece {
    bool is_attribute = false;
    std::string text;  // literal text, or the canonical attribute name
  };
  std::vector<Piece> pieces;
  std::string source;  // as written in the policy
  bool has_attributes() const { return pieces.size() != 1 || pieces[0].is_attribute; }
};

}  // namespace certacl

#endif  // CERTACL_POLICY_TEMPLATE_H_
