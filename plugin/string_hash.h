// string_hash.h: a transparent string hash, so that unordered containers
// keyed by strings (of any allocator) are searched with a std::string_view
// and no temporary string: lookups on the broker thread allocate nothing.
//
//   std::unordered_map<std::string, V, StringHash, std::equal_to<>> m;
//   m.find(std::string_view("abc"));
#ifndef CERTACL_PLUGIN_STRING_HASH_H_
#define CERTACL_PLUGIN_STRING_HASH_H_

#include <cstddef>
#include <functional>
#include <string_view>

namespace certacl::plugin {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};

}  // namespace certacl::plugin

#endif  // CERTACL_PLUGIN_STRING_HASH_H_
