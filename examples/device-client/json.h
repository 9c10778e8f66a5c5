// json.h: the little JSON certacl-device-renew needs for docs/enroll.md's
// payloads: flat objects of strings and numbers. A firmware will have its own
// JSON library; this one keeps the example free of dependencies.
#ifndef CERTACL_EXAMPLES_DEVICE_CLIENT_JSON_H_
#define CERTACL_EXAMPLES_DEVICE_CLIENT_JSON_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace device_renew {

// The top-level members of a JSON object. Nested objects and arrays are
// checked for syntax and skipped; true/false/null are dropped.
struct JsonObject {
  std::map<std::string, std::string> strings;
  std::map<std::string, double> numbers;

  // "" / nullopt when the member is absent or of another type.
  std::string String(const std::string& name) const;
  std::optional<double> Number(const std::string& name) const;
};

// nullopt unless `text` is exactly one JSON object.
std::optional<JsonObject> ParseJsonObject(std::string_view text);

// `s` as a JSON string literal, quotes included.
std::string JsonQuote(std::string_view s);

}  // namespace device_renew

#endif  // CERTACL_EXAMPLES_DEVICE_CLIENT_JSON_H_
