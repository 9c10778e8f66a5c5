// matcher.h: a compiled condition on one attribute value (exact, any-of,
// prefix, glob or RE2 regex), as written in a policy's `match` table.
//
// Built once at policy load (Compile* return false with a reason on bad
// input, e.g. an RE2 syntax error); Matches() is const, allocation-free and
// thread-safe. Matching is byte-exact on UTF-8 values.
#ifndef CERTACL_POLICY_MATCHER_H_
#define CERTACL_POLICY_MATCHER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace re2 {
class RE2;
}

namespace certacl {

class ValueMatcher {
 public:
  enum class Kind { kExact, kAny, kPrefix, kGlob, kRegex };

  static ValueMatcher Exact(std::string value);
  static ValueMatcher Any(std::vector<std::string> values);
  static ValueMatcher Prefix(std::string prefix);
  // `*` any run of characters (possibly empty), `?` exactly one UTF-8
  // character, `\` escapes the next character.
  static bool Glob(std::string pattern, ValueMatcher* out, std::string* why);
  // RE2, anchored on both ends (the whole value must match).
  static bool Regex(std::string pattern, ValueMatcher* out, std::string* why);

  bool Matches(std::string_view value) const;

  Kind kind() const { return kind_; }
  // Exact and any-of: the literal values (used to index roles). Prefix,
  // glob, regex: the pattern as written (one element).
  const std::vector<std::string>& literals() const { return literals_; }
  // "= \"x\"", "any of [\"a\", \"b\"]", "glob \"m-*\"", ...
  std::string Describe() const;

 private:
  Kind kind_ = Kind::kExact;
  std::vector<std::string> literals_;
  std::shared_ptr<const re2::RE2> regex_;  // shared: Policy copies are cheap
};

}  // namespace certacl

#endif  // CERTACL_POLICY_MATCHER_H_
