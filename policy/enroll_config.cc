// enroll_config.cc: see enroll_config.h.
#include "policy/enroll_config.h"

#include <cstdio>
#include <ctime>

namespace certacl {
namespace {

// `s` as a JSON string literal (quotes included).
std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

int64_t EnrollConfig::RenewFrom(int64_t not_before, int64_t not_after) const {
  if (window_seconds >= 0) return not_after - window_seconds;
  const int64_t lifetime = not_after > not_before ? not_after - not_before : 0;
  // lifetime * num / den, rounded down, without overflow (num <= den).
  const int64_t window = lifetime / window_den * window_num + lifetime % window_den * window_num / window_den;
  return not_after - window;
}

bool TopicUnder(std::string_view prefix, std::string_view topic) {
  return topic.substr(0, prefix.size()) == prefix && (topic.size() == prefix.size() || topic[prefix.size()] == '/');
}

EnrollTopic ClassifyEnrollTopic(std::string_view prefix, std::string_view topic) {
  EnrollTopic t;
  if (topic.size() <= prefix.size() || topic.substr(0, prefix.size()) != prefix || topic[prefix.size()] != '/') {
    return t;
  }
  const std::string_view rest = topic.substr(prefix.size() + 1);
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos || rest.find('/', slash + 1) != std::string_view::npos) {
    t.kind = EnrollTopic::Kind::kOther;
    return t;
  }
  t.kind = EnrollTopic::Kind::kRequest;
  t.id = rest.substr(0, slash);
  t.op = rest.substr(slash + 1);
  return t;
}

std::string Rfc3339Utc(int64_t t) {
  const auto tt = static_cast<time_t>(t);
  struct tm tm = {};
  char text[32];
  if (gmtime_r(&tt, &tm) == nullptr || std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
    return "";
  }
  return text;
}

std::string RenewalNoticePayload(const EnrollConfig& config, std::string_view identity, int64_t not_before,
                                 int64_t not_after) {
  const std::string topic = config.prefix + "/" + std::string(identity) + "/simplereenroll";
  return "{\"identity\": " + JsonString(identity) + ", \"notBefore\": " + JsonString(Rfc3339Utc(not_before)) +
         ", \"notAfter\": " + JsonString(Rfc3339Utc(not_after)) +
         ", \"renewFrom\": " + JsonString(Rfc3339Utc(config.RenewFrom(not_before, not_after))) +
         ", \"topic\": " + JsonString(topic) + "}";
}

bool IsStampPropertyName(std::string_view name) {
  if (name.size() < kStampPrefix.size()) return false;
  for (size_t i = 0; i < kStampPrefix.size(); ++i) {
    char c = name[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kStampPrefix[i]) return false;
  }
  return true;
}

}  // namespace certacl
