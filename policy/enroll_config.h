// enroll_config.h: the policy file's [enroll] table, compiled, and the pure
// rules of certificate renewal over MQTT that the plugin applies
// (docs/enroll.md is the protocol, docs/policy.md documents every key).
//
// Pure configuration and functions of it: loaded and validated with the rest
// of the policy (policy_loader.cc), so a bad value is a file:line:column
// error and a reload keeps the old policy. Session::Resolve() resolves each
// device's enrollment identity from `identity`; plugin/instance.cc stamps
// requests and sends renewal notices. Thread-safe (immutable after loading).
#ifndef CERTACL_POLICY_ENROLL_CONFIG_H_
#define CERTACL_POLICY_ENROLL_CONFIG_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "policy/template.h"

namespace certacl {

struct EnrollConfig {
  bool enabled = false;            // the [enroll] table is present
  std::string prefix = "$enroll";  // a topic name: no wildcards, no trailing '/'
  // Where stamped requests are re-filed for the bridges: {bridge_prefix}/{id}/{op}.
  // Mosquitto 2.0 never delivers a `$`-topic to a shared subscription
  // ($share/<g>/$enroll/... is filed under the wrong root), so by default a
  // `$` prefix re-files requests under a plain topic that bridges can share
  // (kDefaultBridgePrefix); equal to `prefix` means "not re-filed". Clients
  // may never publish under it themselves.
  std::string bridge_prefix = "certacl/enroll-requests";
  bool relays() const { return bridge_prefix != prefix; }
  // The device's enrollment {id}: `identity`, else connect.client_id, else
  // ${subject.CN}. Its literal text is topic-safe and it names at least one
  // attribute (checked at load).
  Template identity;
  // The renewal window: the last window_num / window_den of the
  // certificate's lifetime, or, when window_seconds >= 0, the last
  // window_seconds before notAfter. Default: the last third.
  int64_t window_num = 1;
  int64_t window_den = 3;
  int64_t window_seconds = -1;
  bool notice = true;  // send renewal notices

  uint32_t line = 0;  // where [enroll] is, for messages
  uint32_t column = 0;

  // When the renewal window of a certificate valid from `not_before` to
  // `not_after` (Unix seconds) opens: notAfter minus the window (never
  // before notBefore for a percentage; a duration longer than the lifetime
  // opens it at once).
  int64_t RenewFrom(int64_t not_before, int64_t not_after) const;
};

inline constexpr const char* kDefaultBridgePrefix = "certacl/enroll-requests";

// Whether `topic` is `prefix` itself or below it.
bool TopicUnder(std::string_view prefix, std::string_view topic);

// Where a PUBLISH topic stands with respect to `prefix`.
struct EnrollTopic {
  enum class Kind : uint8_t {
    kOutside,  // not under {prefix}/
    kRequest,  // {prefix}/{id}/{op}: exactly two levels after the prefix
    kOther,    // anything else under {prefix}/ (answers, notices' subtopics, ...)
  };
  Kind kind = Kind::kOutside;
  std::string_view id;  // kRequest: the {id} level (may be empty); views `topic`
  std::string_view op;  // kRequest: the {op} level (may be empty)
};
EnrollTopic ClassifyEnrollTopic(std::string_view prefix, std::string_view topic);

// Seconds since the Unix epoch as RFC 3339 UTC: "2026-09-01T08:00:00Z".
std::string Rfc3339Utc(int64_t t);

// The payload of a renewal notice (docs/enroll.md), on one line:
//   {"identity": "m-1", "notBefore": "...", "notAfter": "...",
//    "renewFrom": "...", "topic": "$enroll/m-1/simplereenroll"}
std::string RenewalNoticePayload(const EnrollConfig& config, std::string_view identity, int64_t not_before,
                                 int64_t not_after);

// The user properties the plugin stamps on requests; a client may send
// none whose name starts with kStampPrefix (in any letter case).
inline constexpr std::string_view kStampPrefix = "certacl-";
inline constexpr const char* kStampIdentity = "certacl-identity";
inline constexpr const char* kStampClientId = "certacl-client-id";
inline constexpr const char* kStampCertificate = "certacl-certificate";
// True if a user property named `name` belongs to the stamp's namespace.
bool IsStampPropertyName(std::string_view name);

}  // namespace certacl

#endif  // CERTACL_POLICY_ENROLL_CONFIG_H_
