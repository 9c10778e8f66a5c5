// topic.cc: MQTT topic and filter validation, matching and coverage.
#include "policy/topic.h"

#include <algorithm>
#include <cstring>

namespace certacl::topic {
namespace {

bool Fail(std::string* why, const char* what) {
  if (why) *why = what;
  return false;
}

}  // namespace

bool IsValidName(std::string_view t, std::string* why) {
  if (t.empty()) return Fail(why, "topic is empty");
  if (t.size() > kMaxLength) return Fail(why, "topic is longer than 65535 bytes");
  for (char c : t) {
    if (c == '\0') return Fail(why, "topic contains a NUL byte");
    if (c == '+' || c == '#') return Fail(why, "a topic name cannot contain the wildcards '+' or '#'");
  }
  return true;
}

bool IsValidFilter(std::string_view f, std::string* why) {
  if (f.empty()) return Fail(why, "topic filter is empty");
  if (f.size() > kMaxLength) return Fail(why, "topic filter is longer than 65535 bytes");
  for (size_t i = 0; i < f.size(); ++i) {
    char c = f[i];
    if (c == '\0') return Fail(why, "topic filter contains a NUL byte");
    if (c != '+' && c != '#') continue;
    bool starts_level = i == 0 || f[i - 1] == '/';
    bool ends_level = i + 1 == f.size() || f[i + 1] == '/';
    if (!starts_level || !ends_level)
      return Fail(why, "a wildcard ('+' or '#') must occupy a whole topic level");
    if (c == '#' && i + 1 != f.size()) return Fail(why, "'#' is only allowed as the last level");
  }
  return true;
}

namespace {

const char* LevelEnd(const char* p, const char* e) {
  if (p == e) return e;
  const void* slash = std::memchr(p, '/', static_cast<size_t>(e - p));
  return slash ? static_cast<const char*>(slash) : e;
}

// Level by level from the start of a level in both (no `$` rule: the
// caller applies it). memchr finds a level's end and memcmp compares a
// literal level against the topic in place, both vectorized: a byte loop
// cost ~300 instructions per delivered message in the broker (callgrind,
// bench/RESULTS.md).
bool MatchLevels(const char* fp, const char* const fe, const char* tp, const char* const te) {
  while (true) {
    if (fp < fe && *fp == '#') return true;
    if (fp < fe && *fp == '+' && (fp + 1 == fe || fp[1] == '/')) {
      tp = LevelEnd(tp, te);  // any one level
      ++fp;
    } else {
      const char* f_level = LevelEnd(fp, fe);
      const auto n = static_cast<size_t>(f_level - fp);
      if (static_cast<size_t>(te - tp) < n || (n != 0 && std::memcmp(fp, tp, n) != 0)) return false;
      tp += n;
      if (tp != te && *tp != '/') return false;  // the topic's level is longer
      fp = f_level;
    }
    if (fp == fe) return tp == te;
    if (tp == te) return fe - fp == 2 && fp[1] == '#';  // "a/#" matches "a"
    ++fp;
    ++tp;
  }
}

}  // namespace

bool Matches(std::string_view f, std::string_view t) {
  if (!t.empty() && t[0] == '$' && !f.empty() && (f[0] == '+' || f[0] == '#')) return false;
  return MatchLevels(f.data(), f.data() + f.size(), t.data(), t.data() + t.size());
}

size_t LiteralPrefix(std::string_view f) {
  // Wildcards occupy whole levels: the first one is at 0 or right after a '/'.
  for (size_t level = 0; level < f.size();) {
    if (f[level] == '+' || f[level] == '#') {
      if (level + 1 == f.size() || f[level + 1] == '/') return level;
    }
    const size_t slash = f.find('/', level);
    if (slash == std::string_view::npos) break;
    level = slash + 1;
  }
  return f.size();
}

bool Matches(std::string_view f, std::string_view t, size_t literal) {
  if (literal >= f.size()) return t.size() == f.size() && std::memcmp(f.data(), t.data(), f.size()) == 0;
  if (literal == 0) return Matches(f, t);  // starts with a wildcard: the `$` rule applies
  // f[literal - 1] is the '/' before the first wildcard level.
  if (t.size() < literal) {
    // Only "prefix/#" can match a shorter topic: the bare parent "prefix".
    return f[literal] == '#' && literal + 1 == f.size() && t.size() == literal - 1 &&
           std::memcmp(f.data(), t.data(), literal - 1) == 0;
  }
  if (std::memcmp(f.data(), t.data(), literal) != 0) return false;
  // Both are at the start of a level; the topic's may begin with '$' here,
  // which only a filter's first level excludes.
  return MatchLevels(f.data() + literal, f.data() + f.size(), t.data() + literal, t.data() + t.size());
}

bool Covers(std::string_view allowed, std::string_view requested) {
  // Walks both filters level by level, in place (no allocation).
  const bool dollar = !requested.empty() && requested[0] == '$';
  size_t a = 0, r = 0;
  for (bool first = true;; first = false) {
    // a and r are at the start of a level in both filters.
    const size_t a_end = std::min(allowed.find('/', a), allowed.size());
    const std::string_view a_level = allowed.substr(a, a_end - a);
    if (a_level == "#") return !(first && dollar);  // `#` covers the rest (and the parent)
    const size_t r_end = std::min(requested.find('/', r), requested.size());
    const std::string_view r_level = requested.substr(r, r_end - r);
    if (r_level == "#") return false;  // only `#` covers `#`
    if (a_level == "+") {
      if (first && dollar) return false;  // a leading wildcard never covers `$` topics
    } else if (r_level == "+" || r_level != a_level) {
      return false;
    }
    const bool a_last = a_end == allowed.size(), r_last = r_end == requested.size();
    if (a_last || r_last) {
      if (a_last && r_last) return true;
      if (a_last) return false;  // requested has more levels
      // requested ended: covered only if allowed continues with exactly "/#"
      return allowed.substr(a_end) == "/#";
    }
    a = a_end + 1;
    r = r_end + 1;
  }
}

bool Intersects(std::string_view a, std::string_view b) {
  // Level by level, in place; i and j are at the start of a level in both.
  size_t i = 0, j = 0;
  for (bool first = true;; first = false) {
    const size_t a_end = std::min(a.find('/', i), a.size());
    const size_t b_end = std::min(b.find('/', j), b.size());
    const std::string_view a_level = a.substr(i, a_end - i), b_level = b.substr(j, b_end - j);
    const bool a_wild = a_level == "+" || a_level == "#", b_wild = b_level == "+" || b_level == "#";
    if (first && a_wild != b_wild) {
      // Every topic of the literal one starts with that level; a leading
      // wildcard matches none of them if it starts with '$'.
      const std::string_view literal = a_wild ? b_level : a_level;
      if (!literal.empty() && literal[0] == '$') return false;
    }
    if (a_level == "#" || b_level == "#") return true;  // the other's topics from here on
    if (!a_wild && !b_wild && a_level != b_level) return false;
    const bool a_last = a_end == a.size(), b_last = b_end == b.size();
    if (a_last && b_last) return true;
    // One ends here: they meet at its last level only if the other goes on
    // with exactly "/#" (which matches the parent level), and not in the
    // empty topic (a first level forced empty), which is no topic name.
    if (a_last || b_last) {
      if (first && (a_level.empty() || b_level.empty())) return false;
      return a_last ? b.substr(b_end) == "/#" : a.substr(a_end) == "/#";
    }
    i = a_end + 1;
    j = b_end + 1;
  }
}

std::string_view StripShare(std::string_view filter, bool* malformed) {
  if (malformed) *malformed = false;
  constexpr std::string_view kShare = "$share/";
  if (filter.substr(0, kShare.size()) != kShare) return filter;
  std::string_view rest = filter.substr(kShare.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 >= rest.size()) {
    if (malformed) *malformed = true;
    return filter;
  }
  std::string_view group = rest.substr(0, slash);
  if (group.find_first_of("+#") != std::string_view::npos) {
    if (malformed) *malformed = true;
    return filter;
  }
  return rest.substr(slash + 1);
}

bool HasWildcard(std::string_view filter) {
  return filter.find_first_of("+#") != std::string_view::npos;
}

}  // namespace certacl::topic
