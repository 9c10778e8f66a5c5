// json.cc: see json.h. A recursive-descent reader (RFC 8259) with a depth
// limit, and a string writer.
#include "json.h"

#include <cstdint>
#include <cstdlib>

namespace device_renew {
namespace {

constexpr int kMaxDepth = 16;

class Reader {
 public:
  explicit Reader(std::string_view text) : s_(text) {}

  std::optional<JsonObject> Object() {
    JsonObject out;
    SkipSpace();
    if (!Eat('{')) return std::nullopt;
    SkipSpace();
    if (!Eat('}')) {
      for (;;) {
        SkipSpace();
        std::string name;
        if (!String(name)) return std::nullopt;
        SkipSpace();
        if (!Eat(':')) return std::nullopt;
        SkipSpace();
        if (Peek() == '"') {
          std::string value;
          if (!String(value)) return std::nullopt;
          out.strings[name] = std::move(value);
        } else if (Peek() == '-' || (Peek() >= '0' && Peek() <= '9')) {
          double value = 0;
          if (!Number(value)) return std::nullopt;
          out.numbers[name] = value;
        } else if (!SkipValue(1)) {
          return std::nullopt;
        }
        SkipSpace();
        if (Eat('}')) break;
        if (!Eat(',')) return std::nullopt;
      }
    }
    SkipSpace();
    if (pos_ != s_.size()) return std::nullopt;
    return out;
  }

 private:
  char Peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool Eat(char c) {
    if (pos_ >= s_.size() || s_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  bool EatWord(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }
  void SkipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }

  bool Hex4(uint32_t& v) {
    if (pos_ + 4 > s_.size()) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<uint32_t>(c - 'A' + 10);
      else return false;
    }
    return true;
  }

  static void AppendUtf8(std::string& out, uint32_t cp) {
    auto byte = [&](uint32_t b) { out.push_back(static_cast<char>(static_cast<unsigned char>(b))); };
    if (cp < 0x80) {
      byte(cp);
    } else if (cp < 0x800) {
      byte(0xC0 | (cp >> 6));
      byte(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      byte(0xE0 | (cp >> 12));
      byte(0x80 | ((cp >> 6) & 0x3F));
      byte(0x80 | (cp & 0x3F));
    } else {
      byte(0xF0 | (cp >> 18));
      byte(0x80 | ((cp >> 12) & 0x3F));
      byte(0x80 | ((cp >> 6) & 0x3F));
      byte(0x80 | (cp & 0x3F));
    }
  }

  bool String(std::string& out) {
    if (!Eat('"')) return false;
    while (pos_ < s_.size()) {
      const char c = s_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) return false;
      switch (s_[pos_++]) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          uint32_t cp = 0;
          if (!Hex4(cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {  // a surrogate pair
            uint32_t low = 0;
            if (!EatWord("\\u") || !Hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return false;
          }
          AppendUtf8(out, cp);
          break;
        }
        default: return false;
      }
    }
    return false;
  }

  bool Number(double& out) {
    const size_t start = pos_;
    Eat('-');
    if (!(Peek() >= '0' && Peek() <= '9')) return false;
    while (Peek() >= '0' && Peek() <= '9') ++pos_;
    if (Eat('.')) {
      if (!(Peek() >= '0' && Peek() <= '9')) return false;
      while (Peek() >= '0' && Peek() <= '9') ++pos_;
    }
    if (Peek() == 'e' || Peek() == 'E') {
      ++pos_;
      if (Peek() == '+' || Peek() == '-') ++pos_;
      if (!(Peek() >= '0' && Peek() <= '9')) return false;
      while (Peek() >= '0' && Peek() <= '9') ++pos_;
    }
    const std::string literal(s_.substr(start, pos_ - start));
    out = std::strtod(literal.c_str(), nullptr);
    return true;
  }

  bool SkipValue(int depth) {
    if (depth > kMaxDepth) return false;
    SkipSpace();
    const char c = Peek();
    if (c == '"') {
      std::string ignored;
      return String(ignored);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      double ignored = 0;
      return Number(ignored);
    }
    if (EatWord("true") || EatWord("false") || EatWord("null")) return true;
    const char close = c == '{' ? '}' : c == '[' ? ']' : '\0';
    if (close == '\0') return false;
    ++pos_;
    SkipSpace();
    if (Eat(close)) return true;
    for (;;) {
      SkipSpace();
      if (close == '}') {
        std::string ignored;
        if (!String(ignored)) return false;
        SkipSpace();
        if (!Eat(':')) return false;
      }
      if (!SkipValue(depth + 1)) return false;
      SkipSpace();
      if (Eat(close)) return true;
      if (!Eat(',')) return false;
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

std::string JsonObject::String(const std::string& name) const {
  auto it = strings.find(name);
  return it == strings.end() ? std::string() : it->second;
}

std::optional<double> JsonObject::Number(const std::string& name) const {
  auto it = numbers.find(name);
  if (it == numbers.end()) return std::nullopt;
  return it->second;
}

std::optional<JsonObject> ParseJsonObject(std::string_view text) { return Reader(text).Object(); }

std::string JsonQuote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (u < 0x20) {
          out += "\\u00";
          out.push_back(kHex[u >> 4]);
          out.push_back(kHex[u & 0xF]);
        } else {
          out.push_back(c);
        }
    }
  }
  out += "\"";
  return out;
}

}  // namespace device_renew
