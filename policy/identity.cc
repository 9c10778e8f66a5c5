// identity.cc: reads a device's X.509 certificate once into an Identity.
//
// Every attribute of attributes.h is extracted, converted to UTF-8 and
// validated here; a value that cannot be represented safely is left out and
// explained in rejected(). The code never throws on odd input and leaves
// the caller's OpenSSL error queue as it found it.
//
// Notes on OpenSSL 3.0 behaviour this file relies on (see identity_test.cc):
//  - d2i of an X509_NAME fails (so the whole certificate fails to parse) if
//    a DN value is a UTF8String with invalid UTF-8 or a BMPString holding a
//    surrogate, even a valid pair: OpenSSL computes a canonical UTF-8 form
//    while decoding. Such DN values never reach us; the same bytes in a
//    custom extension do, and are handled by the same converter.
//    Nor does it decode a VisibleString DN value (not in ASN1_PRINTABLE).
//  - ASN1_STRING_to_UTF8 keeps NUL bytes (it converts lengths, not C
//    strings: "a\0b" comes out as 3 bytes, so only a length/NUL check
//    catches it) and reads 1-byte types (PrintableString, IA5String,
//    T61String, ...) as Latin-1. It reads BMPString as UCS-2 and fails
//    outright (-1, no position) on any surrogate, pairs included, and on
//    invalid UTF-8, so BMPString, UniversalString and UTF8String are
//    decoded/validated here instead, with exact reasons.
#include "policy/identity.h"

#include <arpa/inet.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <optional>

#include "policy/attributes.h"
#include "policy/sha256.h"

namespace certacl {
namespace {

// ---------------------------------------------------------------------------
// RAII for the OpenSSL objects used below.

// (the pointer types come from policy/openssl_ptr.h)


// ---------------------------------------------------------------------------
// UTF-8 helpers.

// "U+001B": a code point as in the Unicode standard.
std::string CodePointName(char32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
  return buf;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Decodes the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF). Returns its length and
// sets *cp, or returns 0 if the bytes at s[i] are not well-formed.
size_t DecodeUtf8(std::string_view s, size_t i, char32_t* cp) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char b0 = byte(i);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  char32_t value = b0 & (0xFF >> (len + 1));
  for (size_t k = 1; k < len; ++k) {
    unsigned char b = byte(i + k);
    if ((b & 0xC0) != 0x80) return 0;
    value = (value << 6) | (b & 0x3F);
  }
  *cp = value;
  return len;
}

// ---------------------------------------------------------------------------
// ASN.1 string -> UTF-8.

// ASN.1 types we read as text.
bool IsStringType(int type) {
  switch (type) {
    case V_ASN1_UTF8STRING:
    case V_ASN1_NUMERICSTRING:
    case V_ASN1_PRINTABLESTRING:
    case V_ASN1_T61STRING:
    case V_ASN1_VIDEOTEXSTRING:
    case V_ASN1_IA5STRING:
    case V_ASN1_GRAPHICSTRING:
    case V_ASN1_VISIBLESTRING:
    case V_ASN1_GENERALSTRING:
    case V_ASN1_UNIVERSALSTRING:
    case V_ASN1_BMPSTRING:
    case V_ASN1_UTCTIME:
    case V_ASN1_GENERALIZEDTIME:
      return true;
    default:
      return false;
  }
}

std::string TypeName(int type) { return ASN1_tag2str(type); }

// Offset of the first all-zero code unit (`unit` bytes wide) in the raw
// value: the classic "strlen(data) != length" check, done on the encoded
// bytes so that no conversion can hide a NUL.
std::optional<size_t> RawNulOffset(const unsigned char* data, size_t len, size_t unit) {
  for (size_t i = 0; i + unit <= len; i += unit) {
    bool zero = true;
    for (size_t k = 0; k < unit; ++k) zero = zero && data[i + k] == 0;
    if (zero) return i;
  }
  return std::nullopt;
}

// BMPString is UTF-16BE: pairs surrogates, rejects unpaired ones.
std::string DecodeBmp(const unsigned char* data, size_t len, std::string* out) {
  if (len % 2 != 0) return "BMPString length " + std::to_string(len) + " is odd";
  for (size_t i = 0; i < len; i += 2) {
    char32_t unit = static_cast<char32_t>(data[i] << 8 | data[i + 1]);
    if (unit >= 0xD800 && unit <= 0xDBFF && i + 3 < len) {
      char32_t low = static_cast<char32_t>(data[i + 2] << 8 | data[i + 3]);
      if (low >= 0xDC00 && low <= 0xDFFF) {
        AppendUtf8(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00), out);
        i += 2;
        continue;
      }
    }
    if (unit >= 0xD800 && unit <= 0xDFFF) {
      return "unpaired surrogate " + CodePointName(unit) + " in BMPString at offset " +
             std::to_string(i);
    }
    AppendUtf8(unit, out);
  }
  return {};
}

// UniversalString is UTF-32BE.
std::string DecodeUniversal(const unsigned char* data, size_t len, std::string* out) {
  if (len % 4 != 0) {
    return "UniversalString length " + std::to_string(len) + " is not a multiple of 4";
  }
  for (size_t i = 0; i < len; i += 4) {
    char32_t cp = static_cast<char32_t>(data[i]) << 24 | static_cast<char32_t>(data[i + 1]) << 16 |
                  static_cast<char32_t>(data[i + 2]) << 8 | static_cast<char32_t>(data[i + 3]);
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return "invalid code point " + CodePointName(cp) + " in UniversalString at offset " +
             std::to_string(i);
    }
    AppendUtf8(cp, out);
  }
  return {};
}

// 1-byte string types: OpenSSL's conversion (Latin-1 semantics).
std::string ConvertWithOpenSsl(const ASN1_STRING* s, std::string* out) {
  unsigned char* raw = nullptr;
  int n = ASN1_STRING_to_UTF8(&raw, s);
  OpenSslBytes utf8(raw);
  if (n < 0) return TypeName(ASN1_STRING_type(s)) + " value cannot be converted to UTF-8";
  if (n > 0) out->assign(reinterpret_cast<const char*>(utf8.get()), static_cast<size_t>(n));
  return {};
}

// Converts an ASN.1 string of any type to validated UTF-8 in *out; returns
// an empty string, or why the value cannot be used.
std::string StringToUtf8(const ASN1_STRING* s, std::string* out) {
  out->clear();
  int type = ASN1_STRING_type(s);
  if (!IsStringType(type)) return "value is not a string (ASN.1 " + TypeName(type) + ")";
  const unsigned char* data = ASN1_STRING_get0_data(s);
  size_t len = static_cast<size_t>(std::max(ASN1_STRING_length(s), 0));
  size_t unit = type == V_ASN1_BMPSTRING ? 2 : type == V_ASN1_UNIVERSALSTRING ? 4 : 1;
  if (std::optional<size_t> nul = RawNulOffset(data, len, unit)) {
    return "embedded NUL byte at offset " + std::to_string(*nul);
  }
  std::string reason;
  if (type == V_ASN1_UTF8STRING) {
    if (len > 0) out->assign(reinterpret_cast<const char*>(data), len);  // CheckValue validates it
  } else if (type == V_ASN1_BMPSTRING) {
    reason = DecodeBmp(data, len, out);
  } else if (type == V_ASN1_UNIVERSALSTRING) {
    reason = DecodeUniversal(data, len, out);
  } else {
    reason = ConvertWithOpenSsl(s, out);
  }
  if (reason.empty()) reason = CheckValue(*out);
  if (!reason.empty()) out->clear();
  return reason;
}

// ---------------------------------------------------------------------------
// Small formatting helpers.

// An OID as dotted text, e.g. "1.3.6.1.4.1.37244.2.1".
std::string OidText(const ASN1_OBJECT* obj) {
  char buf[128];
  int n = OBJ_obj2txt(buf, sizeof buf, obj, /*no_name=*/1);
  if (n <= 0) return "?";
  if (static_cast<size_t>(n) < sizeof buf) return std::string(buf, static_cast<size_t>(n));
  std::string big(static_cast<size_t>(n) + 1, '\0');  // rare: very long OID
  n = OBJ_obj2txt(big.data(), static_cast<int>(big.size()), obj, 1);
  big.resize(static_cast<size_t>(std::max(n, 0)));
  return big;
}

std::string LowerHex(const unsigned char* data, size_t len) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (size_t i = 0; i < len; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0x0F]);
  }
  return out;
}

void LowercaseAscii(std::string* s, size_t from = 0) {
  for (size_t i = from; i < s->size(); ++i) {
    char& c = (*s)[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
}

// rfc822Name: the local part is case-sensitive, the domain is not.
void LowercaseEmailDomain(std::string* s) {
  size_t at = s->rfind('@');
  if (at != std::string::npos) LowercaseAscii(s, at + 1);
}

// An ASN.1 INTEGER as text: hex (uppercase, BN_bn2hex) or decimal.
std::optional<std::string> IntegerText(const ASN1_INTEGER* value, bool hex) {
  BignumPtr bn(ASN1_INTEGER_to_BN(value, nullptr));
  if (bn == nullptr) return std::nullopt;
  OpenSslString text(hex ? BN_bn2hex(bn.get()) : BN_bn2dec(bn.get()));
  if (text == nullptr) return std::nullopt;
  return std::string(text.get());
}

// cert.key for a decoded public key.
std::string KeyName(EVP_PKEY* key) {
  std::string bits = std::to_string(EVP_PKEY_get_bits(key));
  if (EVP_PKEY_is_a(key, "EC")) {
    char group[64] = {};
    size_t len = 0;
    if (EVP_PKEY_get_group_name(key, group, sizeof group, &len) != 1) return "ec-" + bits;
    std::string_view name(group, len);
    if (name == "prime256v1" || name == "P-256") return "ec-p256";
    if (name == "secp384r1" || name == "P-384") return "ec-p384";
    if (name == "secp521r1" || name == "P-521") return "ec-p521";
    return "ec-" + std::string(name);
  }
  if (EVP_PKEY_is_a(key, "RSA")) return "rsa-" + bits;
  if (EVP_PKEY_is_a(key, "ED25519")) return "ed25519";
  if (EVP_PKEY_is_a(key, "ED448")) return "ed448";
  const char* type = EVP_PKEY_get0_type_name(key);
  std::string name = type != nullptr ? type : OBJ_nid2sn(EVP_PKEY_get_base_id(key));
  LowercaseAscii(&name);
  return name + "-" + bits;
}

// cert.key when OpenSSL cannot decode the key: the algorithm's name or OID.
std::string UndecodedKeyName(X509* cert) {
  ASN1_OBJECT* alg = nullptr;
  X509_PUBKEY* pub = X509_get_X509_PUBKEY(cert);
  if (pub == nullptr || X509_PUBKEY_get0_param(&alg, nullptr, nullptr, nullptr, pub) != 1 ||
      alg == nullptr) {
    return "unknown";
  }
  int nid = OBJ_obj2nid(alg);
  std::string name = nid != NID_undef ? OBJ_nid2sn(nid) : OidText(alg);
  LowercaseAscii(&name);
  return name;
}

// Replaces every byte outside printable ASCII by \XX.
std::string PrintableAscii(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F) {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\%02X", static_cast<unsigned>(c));
      out += buf;
    }
  }
  return out;
}

// A DN in RFC 2253 form, controls and non-ASCII escaped; empty on failure.
std::string NameRfc2253(const X509_NAME* name) {
  // UTF8_CONVERT fails on values OpenSSL cannot convert; retry without it
  // (characters are then printed as \UXXXX escapes).
  for (unsigned long flags : {XN_FLAG_RFC2253, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_UTF8_CONVERT}) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (bio == nullptr) return {};
    if (X509_NAME_print_ex(bio.get(), name, 0, flags) < 0) continue;
    BUF_MEM* mem = nullptr;
    BIO_get_mem_ptr(bio.get(), &mem);
    if (mem == nullptr) return {};
    return PrintableAscii(std::string_view(mem->data, mem->length));
  }
  return {};
}

}  // namespace

// ---------------------------------------------------------------------------
// IdentityBuilder: one extraction pass over one certificate. Declared a
// friend in identity.h; lives only in this file.

class IdentityBuilder {
 public:
  IdentityBuilder(X509* cert, uint32_t computed) : cert_(cert), computed_(computed) {}
  Identity Build();

 private:
  void AddDn(const X509_NAME* name, std::string_view prefix);
  void AddSans();
  void AddIp(const ASN1_OCTET_STRING* address);
  void AddSerial();
  void AddSha256();
  void AddKey();
  void AddTime(const char* attr, const ASN1_TIME* time, bool text_wanted, int64_t* epoch);
  void AddPolicies();
  void AddAuthorityKeyId();
  void AddCustomExtensions();
  void AddExtensionValue(const std::string& attr, const ASN1_OCTET_STRING* contents);
  void ForEachDecoded(int nid, std::string_view what, const std::function<void(void*)>& use);
  void AddString(const std::string& attr, const ASN1_STRING* s,
                 void (*normalize)(std::string*) = nullptr);
  void Add(const std::string& attr, std::string value);
  void Reject(std::string_view attr, std::string_view reason);
  void Finish();

  X509* cert_;
  uint32_t computed_;
  std::map<std::string, std::vector<std::string>, std::less<>> values_;
  Identity id_;
};

Identity IdentityBuilder::Build() {
  OpenSslErrorMark guard;
  if (cert_ == nullptr) {
    id_.rejected_.push_back("no certificate");
    return std::move(id_);
  }
  X509_up_ref(cert_);
  id_.cert_.reset(cert_);
  id_.computed_ = computed_;
  AddDn(X509_get_subject_name(cert_), "subject.");
  AddDn(X509_get_issuer_name(cert_), "issuer.");
  AddSans();
  if (computed_ & kComputedSerial) AddSerial();
  if (computed_ & kComputedSha256) AddSha256();
  if (computed_ & kComputedKey) AddKey();
  const bool times = (computed_ & kComputedTimes) != 0;
  AddTime("cert.not_before", X509_get0_notBefore(cert_), times, &id_.not_before_);
  AddTime("cert.not_after", X509_get0_notAfter(cert_), times, &id_.not_after_);
  AddPolicies();
  AddAuthorityKeyId();
  AddCustomExtensions();
  Finish();
  return std::move(id_);
}

// Every entry of a DN, multi-valued RDNs and repeats included, in order.
void IdentityBuilder::AddDn(const X509_NAME* name, std::string_view prefix) {
  if (name == nullptr) return;
  for (int i = 0; i < X509_NAME_entry_count(name); ++i) {
    const X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, i);
    const ASN1_OBJECT* obj = X509_NAME_ENTRY_get_object(entry);
    std::string_view short_name = DnShortName(OBJ_obj2nid(obj));
    std::string attr(prefix);
    attr += short_name.empty() ? OidText(obj) : std::string(short_name);
    AddString(attr, X509_NAME_ENTRY_get_data(entry));
  }
}

// Decodes each extension `nid` (normally one) and hands it to `use`, which
// takes ownership. Undecodable extensions are reported as `what`.
void IdentityBuilder::ForEachDecoded(int nid, std::string_view what,
                                     const std::function<void(void*)>& use) {
  for (int i = X509_get_ext_by_NID(cert_, nid, -1); i >= 0;
       i = X509_get_ext_by_NID(cert_, nid, i)) {
    void* decoded = X509V3_EXT_d2i(X509_get_ext(cert_, i));
    if (decoded == nullptr) {
      Reject(what, "extension cannot be decoded");
      continue;
    }
    use(decoded);
  }
}

// san.dns / san.uri / san.email / san.ip; other name kinds are ignored.
void IdentityBuilder::AddSans() {
  ForEachDecoded(NID_subject_alt_name, "subjectAltName", [this](void* decoded) {
    GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(decoded));
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* gen = sk_GENERAL_NAME_value(names.get(), i);
      switch (gen->type) {
        case GEN_DNS:
          AddString("san.dns", gen->d.dNSName, [](std::string* s) { LowercaseAscii(s); });
          break;
        case GEN_URI:
          AddString("san.uri", gen->d.uniformResourceIdentifier);
          break;
        case GEN_EMAIL:
          AddString("san.email", gen->d.rfc822Name, LowercaseEmailDomain);
          break;
        case GEN_IPADD:
          AddIp(gen->d.iPAddress);
          break;
        default:
          break;
      }
    }
  });
}

void IdentityBuilder::AddIp(const ASN1_OCTET_STRING* address) {
  const unsigned char* data = ASN1_STRING_get0_data(address);
  int len = ASN1_STRING_length(address);
  char text[INET6_ADDRSTRLEN] = {};
  int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : AF_UNSPEC;
  if (family == AF_UNSPEC || inet_ntop(family, data, text, sizeof text) == nullptr) {
    Reject("san.ip", "address is " + std::to_string(len) + " bytes, expected 4 or 16");
    return;
  }
  Add("san.ip", text);
}

void IdentityBuilder::AddSerial() {
  std::optional<std::string> hex = IntegerText(X509_get0_serialNumber(cert_), /*hex=*/true);
  if (!hex) {
    Reject("cert.serial", "serial number cannot be read");
    return;
  }
  Add("cert.serial", *hex);
}

void IdentityBuilder::AddSha256() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert_, Sha256Md(), md, &len) != 1) {
    Reject("cert.sha256", "certificate cannot be encoded");
    return;
  }
  Add("cert.sha256", LowerHex(md, len));
}

void IdentityBuilder::AddKey() {
  EVP_PKEY* key = X509_get0_pubkey(cert_);  // not owned
  Add("cert.key", key != nullptr ? KeyName(key) : UndecodedKeyName(cert_));
}

// The epoch seconds in *epoch, and with `text_wanted` cert.not_before /
// cert.not_after.
void IdentityBuilder::AddTime(const char* attr, const ASN1_TIME* time, bool text_wanted, int64_t* epoch) {
  struct tm tm = {};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) {
    Reject(attr, "time cannot be read");
    return;
  }
  *epoch = static_cast<int64_t>(timegm(&tm));
  if (!text_wanted) return;
  char text[32];
  if (std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
    Reject(attr, "time cannot be printed");
    return;
  }
  Add(attr, text);
}

void IdentityBuilder::AddPolicies() {
  ForEachDecoded(NID_certificate_policies, "cert.policy", [this](void* decoded) {
    PoliciesPtr policies(static_cast<CERTIFICATEPOLICIES*>(decoded));
    for (int i = 0; i < sk_POLICYINFO_num(policies.get()); ++i) {
      const POLICYINFO* info = sk_POLICYINFO_value(policies.get(), i);
      if (info->policyid != nullptr) Add("cert.policy", OidText(info->policyid));
    }
  });
}

// The first authorityKeyIdentifier's keyIdentifier (a certificate has at
// most one such extension).
void IdentityBuilder::AddAuthorityKeyId() {
  bool seen = false;
  ForEachDecoded(NID_authority_key_identifier, "authorityKeyIdentifier",
                 [this, &seen](void* decoded) {
                   AuthorityKeyIdPtr aki(static_cast<AUTHORITY_KEYID*>(decoded));
                   if (seen || aki->keyid == nullptr) return;
                   seen = true;
                   const unsigned char* data = ASN1_STRING_get0_data(aki->keyid);
                   int len = ASN1_STRING_length(aki->keyid);
                   if (len > 0) {
                     id_.authority_key_id_.assign(reinterpret_cast<const char*>(data),
                                                  static_cast<size_t>(len));
                   }
                 });
}

// ext.<dotted OID> for every extension OpenSSL has no decoder for.
void IdentityBuilder::AddCustomExtensions() {
  for (int i = 0; i < X509_get_ext_count(cert_); ++i) {
    X509_EXTENSION* ext = X509_get_ext(cert_, i);
    const ASN1_OBJECT* obj = X509_EXTENSION_get_object(ext);
    int nid = OBJ_obj2nid(obj);
    if (nid != NID_undef && X509V3_EXT_get_nid(nid) != nullptr) continue;  // standard
    AddExtensionValue("ext." + OidText(obj), X509_EXTENSION_get_data(ext));
  }
}

// The DER in an extension's OCTET STRING: one string, INTEGER or BOOLEAN.
void IdentityBuilder::AddExtensionValue(const std::string& attr,
                                        const ASN1_OCTET_STRING* contents) {
  constexpr std::string_view kNotScalar = "value is not a string, integer or boolean";
  const unsigned char* begin = ASN1_STRING_get0_data(contents);
  long len = ASN1_STRING_length(contents);
  const unsigned char* p = begin;
  Asn1TypePtr value(d2i_ASN1_TYPE(nullptr, &p, len));
  if (value == nullptr || p != begin + len) {  // not DER, or trailing bytes
    Reject(attr, kNotScalar);
    return;
  }
  int type = ASN1_TYPE_get(value.get());
  if (type == V_ASN1_BOOLEAN) {
    Add(attr, value->value.boolean != 0 ? "true" : "false");
  } else if (type == V_ASN1_INTEGER) {
    std::optional<std::string> text = IntegerText(value->value.integer, /*hex=*/false);
    if (text) Add(attr, *text);
    else Reject(attr, "integer cannot be read");
  } else if (IsStringType(type)) {
    AddString(attr, value->value.asn1_string);
  } else {
    Reject(attr, kNotScalar);
  }
}

// Converts and validates one string value, then adds or rejects it.
void IdentityBuilder::AddString(const std::string& attr, const ASN1_STRING* s,
                                void (*normalize)(std::string*)) {
  if (s == nullptr) {
    Reject(attr, "value is missing");
    return;
  }
  std::string value;
  std::string reason = StringToUtf8(s, &value);
  if (!reason.empty()) {
    Reject(attr, reason);
    return;
  }
  if (normalize != nullptr) normalize(&value);
  Add(attr, std::move(value));
}

void IdentityBuilder::Add(const std::string& attr, std::string value) {
  auto it = values_.find(attr);
  if (it == values_.end()) it = values_.emplace(attr, std::vector<std::string>()).first;
  it->second.push_back(std::move(value));
}

void IdentityBuilder::Reject(std::string_view attr, std::string_view reason) {
  std::string sentence(attr);
  sentence += ": ";
  sentence += reason;
  id_.rejected_.push_back(std::move(sentence));
}

// Moves the collected values into the identity (sorted: std::map order),
// dropping every attribute with too many values.
void IdentityBuilder::Finish() {
  for (auto& [name, values] : values_) {
    if (values.size() > Identity::kMaxValuesPerAttribute) {
      Reject(name, std::to_string(values.size()) + " values, more than the limit of " +
                       std::to_string(Identity::kMaxValuesPerAttribute) +
                       ": attribute left out");
      continue;
    }
    id_.attributes_.push_back(Identity::Attribute{name, std::move(values)});
  }
  values_.clear();
}

// ---------------------------------------------------------------------------
// Identity.

Identity Identity::FromCertificate(X509* cert, uint32_t computed) {
  return IdentityBuilder(cert, computed & kComputedAll).Build();
}

bool Identity::FromPem(std::string_view pem, Identity* out, std::string* error) {
  auto fail = [error](std::string sentence) {
    if (error != nullptr) *error = std::move(sentence);
    return false;
  };
  if (out == nullptr) return fail("no output identity given");
  if (pem.size() > static_cast<size_t>(INT_MAX)) return fail("PEM data is too large");
  OpenSslErrorMark guard;
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return fail("out of memory reading PEM data");
  // The callback refuses passwords: never prompt on a terminal.
  pem_password_cb* no_password = [](char*, int, int, void*) { return 0; };
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, no_password, nullptr));
  if (cert == nullptr) {
    unsigned long err = ERR_peek_last_error();
    int reason = ERR_GET_REASON(err);
    if (ERR_GET_LIB(err) == ERR_LIB_PEM && reason == PEM_R_NO_START_LINE) {
      return fail("no certificate found: expected a PEM block starting with "
                  "\"-----BEGIN CERTIFICATE-----\"");
    }
    if (reason == ERR_R_ASN1_LIB) {
      return fail("the PEM block does not hold a valid X.509 certificate (DER decoding failed)");
    }
    const char* text = ERR_reason_error_string(err);
    return fail(std::string("the PEM certificate cannot be read: ") +
                (text != nullptr ? text : "unknown error"));
  }
  *out = FromCertificate(cert.get());
  return true;
}

Identity::Identity(const Identity& other)
    : attributes_(other.attributes_),
      rejected_(other.rejected_),
      not_before_(other.not_before_),
      not_after_(other.not_after_),
      authority_key_id_(other.authority_key_id_),
      computed_(other.computed_) {
  if (other.cert_ != nullptr) {
    X509_up_ref(other.cert_.get());
    cert_.reset(other.cert_.get());
  }
}

Identity& Identity::operator=(const Identity& other) {
  if (this != &other) {
    Identity copy(other);
    *this = std::move(copy);
  }
  return *this;
}

const std::vector<std::string>* Identity::Values(std::string_view canonical) const {
  auto it = std::lower_bound(
      attributes_.begin(), attributes_.end(), canonical,
      [](const Attribute& a, std::string_view name) { return std::string_view(a.name) < name; });
  if (it == attributes_.end() || it->name != canonical) return nullptr;
  return &it->values;
}

std::string Identity::Describe() const {
  if (cert_ == nullptr) return "(no certificate)";
  std::string subject = NameRfc2253(X509_get_subject_name(cert_.get()));
  if (subject.empty()) subject = "(empty subject)";
  std::string serial = "?";
  if (const std::vector<std::string>* computed = Values("cert.serial")) {
    serial = computed->front();
  } else if (std::optional<std::string> read = IntegerText(X509_get0_serialNumber(cert_.get()), /*hex=*/true)) {
    serial = *read;
  }
  return subject + " serial=" + serial;
}

// ---------------------------------------------------------------------------

std::string CheckValue(std::string_view v) {
  if (v.size() > Identity::kMaxValueBytes) {
    return "value is " + std::to_string(v.size()) + " bytes, more than the limit of " +
           std::to_string(Identity::kMaxValueBytes);
  }
  for (size_t i = 0; i < v.size();) {
    char32_t cp = 0;
    size_t len = DecodeUtf8(v, i, &cp);
    if (len == 0) return "invalid UTF-8 at byte " + std::to_string(i);
    if (cp == 0) return "embedded NUL byte at offset " + std::to_string(i);
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F)) {
      return "control character " + CodePointName(cp) + " at offset " + std::to_string(i);
    }
    i += len;
  }
  return {};
}

}  // namespace certacl
