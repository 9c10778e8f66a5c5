// attributes.cc: canonical spelling of the attribute names a policy can use
// (see attributes.h for the list), and the DN short-name table shared with
// identity.cc so that both sides spell every name the same way.
#include "policy/attributes.h"

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <array>
#include <cstdio>
#include <memory>

#include "policy/openssl_ptr.h"

namespace certacl {
namespace {

// One distinguished-name attribute certacl has a short name for.
struct DnName {
  int nid;
  std::string_view short_name;
};

// The short names of attributes.h, keyed by OpenSSL NID.
constexpr std::array<DnName, 18> kDnNames = {{
    {NID_commonName, "CN"},
    {NID_organizationName, "O"},
    {NID_organizationalUnitName, "OU"},
    {NID_localityName, "L"},
    {NID_stateOrProvinceName, "ST"},
    {NID_countryName, "C"},
    {NID_serialNumber, "serialNumber"},
    {NID_domainComponent, "DC"},
    {NID_pkcs9_emailAddress, "emailAddress"},
    {NID_streetAddress, "street"},
    {NID_title, "title"},
    {NID_givenName, "givenName"},
    {NID_surname, "surname"},
    {NID_initials, "initials"},
    {NID_pseudonym, "pseudonym"},
    {NID_userId, "UID"},
    {NID_postalCode, "postalCode"},
    {NID_organizationIdentifier, "organizationIdentifier"},
}};

// The tail of the "unknown attribute" sentence: every accepted form.
constexpr std::string_view kExpected =
    "expected subject.<CN|O|OU|L|ST|C|serialNumber|DC|emailAddress|street|title|"
    "givenName|surname|initials|pseudonym|UID|postalCode|organizationIdentifier|"
    "dotted OID>, issuer.<same>, san.<dns|uri|email|ip>, "
    "cert.<serial|sha256|key|not_before|not_after|policy>, ext.<dotted OID> or "
    "mqtt.client_id";

// Attribute names that need no further checking.
constexpr std::array<std::string_view, 11> kFixedNames = {
    "san.dns",         "san.uri",        "san.email",   "san.ip",
    "cert.serial",     "cert.sha256",    "cert.key",    "cert.not_before",
    "cert.not_after",  "cert.policy",    "mqtt.client_id",
};


// `name` quoted for an error message, with bytes outside printable ASCII
// written as \xHH so that a message never carries control characters.
std::string Quote(std::string_view name) {
  std::string out = "\"";
  for (unsigned char c : name) {
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  return out;
}

// Stores `sentence` in *why when the caller asked for one; returns nullopt.
std::optional<std::string> Fail(std::string* why, std::string sentence) {
  if (why != nullptr) *why = std::move(sentence);
  return std::nullopt;
}

// ASCII case-insensitive equality, for "did you mean" hints only.
bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// Parses a dotted OID (already checked by IsDottedOid) with OpenSSL and
// returns it, or null if OpenSSL rejects it (e.g. "1.40": the second arc
// under 0 and 1 must be below 40) or would print it differently.
Asn1ObjectPtr ParseOid(std::string_view dotted) {
  std::string text(dotted);
  ERR_set_mark();  // leave the caller's OpenSSL error queue as it was
  Asn1ObjectPtr obj(OBJ_txt2obj(text.c_str(), /*no_name=*/1));
  ERR_pop_to_mark();
  if (obj == nullptr) return nullptr;
  // Identity spells OIDs with OBJ_obj2txt: insist on the same spelling so
  // that a name accepted here is the name identity.cc produces.
  char buf[256];
  int len = OBJ_obj2txt(buf, sizeof buf, obj.get(), /*no_name=*/1);
  if (len <= 0 || static_cast<size_t>(len) >= sizeof buf || text != buf) return nullptr;
  return obj;
}

// subject.<name> / issuer.<name>: `prefix` is "subject." or "issuer.".
std::optional<std::string> CanonicalDn(std::string_view full, std::string_view prefix,
                                       std::string_view name, std::string* why) {
  for (const DnName& dn : kDnNames) {
    if (name == dn.short_name) return std::string(full);
  }
  if (IsDottedOid(name)) {
    Asn1ObjectPtr obj = ParseOid(name);
    if (obj == nullptr) {
      return Fail(why, "malformed OID in attribute " + Quote(full) +
                           ": OpenSSL does not accept " + Quote(name));
    }
    std::string_view short_name = DnShortName(OBJ_obj2nid(obj.get()));
    if (!short_name.empty()) return std::string(prefix) + std::string(short_name);
    return std::string(full);
  }
  std::string sentence = "unknown attribute " + Quote(full) + ": ";
  for (const DnName& dn : kDnNames) {
    if (EqualsIgnoreCase(name, dn.short_name)) {
      sentence += "did you mean \"" + std::string(prefix) + std::string(dn.short_name) +
                  "\"? (names are case-sensitive); ";
      break;
    }
  }
  return Fail(why, sentence + std::string(kExpected));
}

// ext.<dotted OID>: only custom extensions; standard ones are decoded by
// OpenSSL and exposed (when useful) under san.* / cert.*.
std::optional<std::string> CanonicalExt(std::string_view full, std::string_view oid,
                                        std::string* why) {
  if (!IsDottedOid(oid)) {
    return Fail(why, "unknown attribute " + Quote(full) +
                         ": ext. must be followed by a dotted OID such as ext.1.3.6.1.4.1.99999.1");
  }
  Asn1ObjectPtr obj = ParseOid(oid);
  if (obj == nullptr) {
    return Fail(why, "malformed OID in attribute " + Quote(full) + ": OpenSSL does not accept " +
                         Quote(oid));
  }
  int nid = OBJ_obj2nid(obj.get());
  if (nid != NID_undef && X509V3_EXT_get_nid(nid) != nullptr) {
    const char* long_name = OBJ_nid2ln(nid);
    return Fail(why, "attribute " + Quote(full) + " names the standard extension " +
                         std::string(long_name != nullptr ? long_name : "?") +
                         ", which certacl does not expose as ext.*: ext.<dotted OID> is for "
                         "custom extensions (use san.* or cert.policy for the standard ones)");
  }
  return std::string(full);
}

}  // namespace

std::optional<std::string> CanonicalAttribute(std::string_view name, std::string* why) {
  for (std::string_view fixed : kFixedNames) {
    if (name == fixed) return std::string(name);
  }
  for (std::string_view prefix : {std::string_view("subject."), std::string_view("issuer.")}) {
    if (name.substr(0, prefix.size()) == prefix) {
      return CanonicalDn(name, prefix, name.substr(prefix.size()), why);
    }
  }
  constexpr std::string_view kExt = "ext.";
  if (name.substr(0, kExt.size()) == kExt) return CanonicalExt(name, name.substr(kExt.size()), why);
  return Fail(why, "unknown attribute " + Quote(name) + ": " + std::string(kExpected));
}

std::string_view DnShortName(int nid) {
  for (const DnName& dn : kDnNames) {
    if (dn.nid == nid) return dn.short_name;
  }
  return {};
}

bool AlwaysPresent(std::string_view canonical) {
  return canonical == "cert.serial" || canonical == "cert.sha256" || canonical == "cert.key" ||
         canonical == "cert.not_before" || canonical == "cert.not_after" ||
         canonical == "mqtt.client_id";
}

uint32_t ComputedBit(std::string_view canonical) {
  if (canonical == "cert.serial") return kComputedSerial;
  if (canonical == "cert.sha256") return kComputedSha256;
  if (canonical == "cert.key") return kComputedKey;
  if (canonical == "cert.not_before" || canonical == "cert.not_after") return kComputedTimes;
  return 0;
}

bool IsDottedOid(std::string_view s) {
  size_t arcs = 0;
  size_t pos = 0;
  while (true) {
    size_t end = s.find('.', pos);
    std::string_view arc = s.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    if (arc.empty()) return false;
    for (char c : arc) {
      if (c < '0' || c > '9') return false;
    }
    if (arc.size() > 1 && arc[0] == '0') return false;       // no leading zeros
    if (arcs == 0 && (arc.size() != 1 || arc[0] > '2')) return false;  // first arc 0, 1 or 2
    ++arcs;
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return arcs >= 2;
}

}  // namespace certacl
