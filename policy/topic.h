// topic.h: MQTT topic names and topic filters (MQTT 3.1.1 section 4.7,
// MQTT 5 section 4.7), as pure functions on strings.
//
// Matches() is the per-message hot path (publish and delivery checks): it
// walks both strings once, allocates nothing, and is exact MQTT: `+` is one
// level, `#` is the rest including the parent level (`a/#` matches `a`), a
// filter starting with a wildcard does not match a topic starting with `$`,
// and nothing is normalised (`a/b/` is not `a/b`). The callers validate
// filters once (at policy load / session resolution), so Matches() assumes a
// valid filter.
//
// Thread-safe.
#ifndef CERTACL_POLICY_TOPIC_H_
#define CERTACL_POLICY_TOPIC_H_

#include <string>
#include <string_view>

namespace certacl::topic {

constexpr size_t kMaxLength = 65535;

// A topic name as published: non-empty, no `+`, `#` or NUL, at most
// kMaxLength bytes. On failure *why (if non-null) says what is wrong.
bool IsValidName(std::string_view topic, std::string* why);

// A topic filter: non-empty, no NUL, `+` and `#` only as a whole level and
// `#` only as the last level, at most kMaxLength bytes.
bool IsValidFilter(std::string_view filter, std::string* why);

// True if the (valid) filter matches the (valid) topic name.
bool Matches(std::string_view filter, std::string_view topic);

// The length of the filter's literal prefix: the bytes before its first
// wildcard level, or the whole filter if it has none ("a/b/+/c" -> 4,
// "a/b" -> 3, "#" -> 0). Meant to be computed once per filter.
size_t LiteralPrefix(std::string_view filter);

// Matches(filter, topic), given literal == LiteralPrefix(filter): the
// literal prefix is compared in one memcmp, and a filter without wildcards
// (a device's own topic, typically) is a length check and a memcmp. Same
// result as Matches() for every valid filter and topic.
bool Matches(std::string_view filter, std::string_view topic, size_t literal);

// True if every topic the `requested` filter can match is also matched by
// the `allowed` filter (both valid). `config/#` is not covered by
// `config/s-001`; `a/+` is covered by `a/#` and by `+/+`; `$SYS/x` is not
// covered by `#`.
bool Covers(std::string_view allowed, std::string_view requested);

// True if some topic name is matched by both (valid) filters: `a/#` and
// `a` meet at "a", `+/x` and `a/+` at "a/x"; `#` and `$SYS/x` never meet
// (a leading wildcard does not match `$` topics), nor do `a/+` and `a`.
bool Intersects(std::string_view a, std::string_view b);

// For a shared subscription `$share/<group>/<filter>` returns <filter>;
// returns `filter` unchanged otherwise. Sets *malformed when the `$share/`
// prefix is present but the group is empty, contains a wildcard, or no
// filter follows.
std::string_view StripShare(std::string_view filter, bool* malformed);

// True if the string contains a wildcard level character (`+` or `#`).
bool HasWildcard(std::string_view filter);

}  // namespace certacl::topic

#endif  // CERTACL_POLICY_TOPIC_H_
