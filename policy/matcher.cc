// matcher.cc: attribute value matchers.
#include "policy/matcher.h"

#include <re2/re2.h>

#include <algorithm>

namespace certacl {
namespace {

// Glob match with `*`, `?` and `\` escapes. Iterative with single-star
// backtracking: O(len(pattern) * len(value)) worst case, no recursion.
bool GlobMatch(std::string_view p, std::string_view v) {
  size_t pi = 0, vi = 0;
  size_t star_p = std::string_view::npos, star_v = 0;
  auto utf8_len = [](unsigned char c) -> size_t {
    if (c < 0x80) return 1;
    if ((c >> 5) == 0x6) return 2;
    if ((c >> 4) == 0xE) return 3;
    if ((c >> 3) == 0x1E) return 4;
    return 1;
  };
  while (vi < v.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star_p = pi++;
      star_v = vi;
      continue;
    }
    if (pi < p.size() && p[pi] == '?') {
      ++pi;
      vi += std::min(utf8_len(static_cast<unsigned char>(v[vi])), v.size() - vi);
      continue;
    }
    if (pi < p.size()) {
      size_t lit = pi;
      if (p[pi] == '\\' && pi + 1 < p.size()) lit = pi + 1;
      if (p[lit] == v[vi]) {
        pi = lit + 1;
        ++vi;
        continue;
      }
    }
    if (star_p == std::string_view::npos) return false;
    pi = star_p + 1;
    vi = ++star_v;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

ValueMatcher ValueMatcher::Exact(std::string value) {
  ValueMatcher m;
  m.kind_ = Kind::kExact;
  m.literals_.push_back(std::move(value));
  return m;
}

ValueMatcher ValueMatcher::Any(std::vector<std::string> values) {
  ValueMatcher m;
  m.kind_ = Kind::kAny;
  m.literals_ = std::move(values);
  return m;
}

ValueMatcher ValueMatcher::Prefix(std::string prefix) {
  ValueMatcher m;
  m.kind_ = Kind::kPrefix;
  m.literals_.push_back(std::move(prefix));
  return m;
}

bool ValueMatcher::Glob(std::string pattern, ValueMatcher* out, std::string* why) {
  if (!pattern.empty() && pattern.back() == '\\' &&
      (pattern.size() < 2 || pattern[pattern.size() - 2] != '\\')) {
    if (why) *why = "glob ends with a lone '\\' escape";
    return false;
  }
  out->kind_ = Kind::kGlob;
  out->literals_ = {std::move(pattern)};
  out->regex_.reset();
  return true;
}

bool ValueMatcher::Regex(std::string pattern, ValueMatcher* out, std::string* why) {
  RE2::Options options;
  options.set_log_errors(false);
  options.set_encoding(RE2::Options::EncodingUTF8);
  auto re = std::make_shared<const RE2>(pattern, options);
  if (!re->ok()) {
    if (why) *why = "invalid regular expression: " + re->error();
    return false;
  }
  out->kind_ = Kind::kRegex;
  out->literals_ = {std::move(pattern)};
  out->regex_ = std::move(re);
  return true;
}

bool ValueMatcher::Matches(std::string_view value) const {
  switch (kind_) {
    case Kind::kExact:
      return value == literals_[0];
    case Kind::kAny:
      return std::find(literals_.begin(), literals_.end(), value) != literals_.end();
    case Kind::kPrefix:
      return value.substr(0, literals_[0].size()) == literals_[0];
    case Kind::kGlob:
      return GlobMatch(literals_[0], value);
    case Kind::kRegex:
      return RE2::FullMatch(value, *regex_);
  }
  return false;
}

std::string ValueMatcher::Describe() const {
  switch (kind_) {
    case Kind::kExact:
      return "= " + Quote(literals_[0]);
    case Kind::kAny: {
      std::string s = "any of [";
      for (size_t i = 0; i < literals_.size(); ++i) s += (i ? ", " : "") + Quote(literals_[i]);
      return s + "]";
    }
    case Kind::kPrefix:
      return "prefix " + Quote(literals_[0]);
    case Kind::kGlob:
      return "glob " + Quote(literals_[0]);
    case Kind::kRegex:
      return "regex " + Quote(literals_[0]);
  }
  return "";
}

}  // namespace certacl
