// crl.cc: strict DER walker over CertificateList, signature check over the
// raw tbsCertList, and the revoked-serial set (see crl.h for the contract).
#include "plugin/revocation/crl.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>
#include <utility>
#include <vector>

#include "policy/openssl_ptr.h"

namespace certacl::revocation {
namespace {

using AlgorPtr = OpenSslPtr<X509_ALGOR, X509_ALGOR_free>;
using IdpPtr = OpenSslPtr<ISSUING_DIST_POINT, ISSUING_DIST_POINT_free>;
using MdCtxPtr = OpenSslPtr<EVP_MD_CTX, EVP_MD_CTX_free>;

// DER tags used by CertificateList.
constexpr unsigned char kTagBoolean = 0x01;
constexpr unsigned char kTagInteger = 0x02;
constexpr unsigned char kTagBitString = 0x03;
constexpr unsigned char kTagOctetString = 0x04;
constexpr unsigned char kTagOid = 0x06;
constexpr unsigned char kTagEnumerated = 0x0A;
constexpr unsigned char kTagUtcTime = 0x17;
constexpr unsigned char kTagGeneralizedTime = 0x18;
constexpr unsigned char kTagSequence = 0x30;
constexpr unsigned char kTagContext0 = 0xA0;  // [0] EXPLICIT, constructed

// Extension OIDs (content octets).
constexpr std::string_view kOidCrlNumber("\x55\x1D\x14", 3);          // 2.5.29.20
constexpr std::string_view kOidReasonCode("\x55\x1D\x15", 3);         // 2.5.29.21
constexpr std::string_view kOidInvalidityDate("\x55\x1D\x18", 3);     // 2.5.29.24
constexpr std::string_view kOidDeltaCrlIndicator("\x55\x1D\x1B", 3);  // 2.5.29.27
constexpr std::string_view kOidIdp("\x55\x1D\x1C", 3);                // 2.5.29.28
constexpr std::string_view kOidCertificateIssuer("\x55\x1D\x1D", 3);  // 2.5.29.29
constexpr std::string_view kOidAki("\x55\x1D\x23", 3);                // 2.5.29.35

// The largest input accepted: arena offsets in SerialSet are 32-bit, and
// every serial's arena record is smaller than its DER entry.
constexpr size_t kMaxCrlBytes = 0xFFFFFFF0U;

const unsigned char* Bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

std::string Hex(std::string_view bytes, size_t max = 32) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < max; ++i) {
    auto b = static_cast<unsigned char>(bytes[i]);
    out += kDigits[b >> 4];
    out += kDigits[b & 0xF];
  }
  if (bytes.size() > max) out += "...";
  return out;
}

// Dotted text of OID content octets ("2.5.29.20"); hex if it does not decode.
std::string OidText(std::string_view content) {
  std::string out;
  uint64_t value = 0;
  bool first = true;
  for (size_t i = 0; i < content.size(); ++i) {
    auto b = static_cast<unsigned char>(content[i]);
    if (value > (std::numeric_limits<uint64_t>::max() >> 7)) return "OID:" + Hex(content);
    value = (value << 7) | (b & 0x7F);
    if (b & 0x80) continue;
    if (first) {
      uint64_t arc0 = value < 40 ? 0 : value < 80 ? 1 : 2;
      out = std::to_string(arc0) + "." + std::to_string(value - arc0 * 40);
      first = false;
    } else {
      out += "." + std::to_string(value);
    }
    value = 0;
  }
  if (first || (static_cast<unsigned char>(content.back()) & 0x80)) return "OID:" + Hex(content);
  return out;
}

// One DER element: tag, content octets, and the whole TLV.
struct Tlv {
  unsigned char tag = 0;
  std::string_view content;
  std::string_view whole;
};

// Sequential reader over the contents of one constructed element. Accepts
// only single-octet tags and definite, minimal lengths within the data.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool empty() const { return pos_ >= data_.size(); }
  // The next tag, or -1 at the end.
  int PeekTag() const { return empty() ? -1 : static_cast<unsigned char>(data_[pos_]); }

  // Reads the next element; on failure returns false and sets *why.
  bool Next(Tlv* out, const char** why) {
    const size_t avail = data_.size() - pos_;
    if (avail < 2) {
      *why = avail == 0 ? "missing element" : "truncated";
      return false;
    }
    const auto tag = static_cast<unsigned char>(data_[pos_]);
    if ((tag & 0x1F) == 0x1F) {
      *why = "multi-octet tag";
      return false;
    }
    const auto l0 = static_cast<unsigned char>(data_[pos_ + 1]);
    size_t header = 2;
    size_t len = 0;
    if (l0 < 0x80) {
      len = l0;
    } else if (l0 == 0x80) {
      *why = "indefinite length";
      return false;
    } else {
      const size_t n = l0 & 0x7F;
      if (n > 4) {
        *why = "length too large";
        return false;
      }
      if (avail < 2 + n) {
        *why = "truncated";
        return false;
      }
      if (data_[pos_ + 2] == 0) {
        *why = "non-minimal length";
        return false;
      }
      for (size_t i = 0; i < n; ++i) len = (len << 8) | static_cast<unsigned char>(data_[pos_ + 2 + i]);
      if (len < 0x80) {
        *why = "non-minimal length";
        return false;
      }
      header += n;
    }
    if (len > avail - header) {
      *why = "truncated";
      return false;
    }
    out->tag = tag;
    out->content = data_.substr(pos_ + header, len);
    out->whole = data_.substr(pos_, header + len);
    pos_ += header + len;
    return true;
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

// Reads the next element, which must have tag `tag`; otherwise sets *error
// to "malformed CRL: <what>: <why>".
bool Expect(Reader& r, unsigned char tag, const char* what, Tlv* out, std::string* error) {
  const char* why = nullptr;
  if (!r.Next(out, &why)) {
    *error = std::string("malformed CRL: ") + what + ": " + why;
    return false;
  }
  if (out->tag != tag) {
    const char tag_byte = static_cast<char>(out->tag);
    *error = std::string("malformed CRL: ") + what + ": unexpected tag 0x" + Hex(std::string_view(&tag_byte, 1));
    return false;
  }
  return true;
}

bool ExpectEnd(const Reader& r, const char* what, std::string* error) {
  if (r.empty()) return true;
  *error = std::string("malformed CRL: unexpected data after ") + what;
  return false;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ (RFC 5280
// 4.1.2.5) to Unix seconds.
bool ParseTime(const Tlv& t, int64_t* out) {
  std::string_view s = t.content;
  size_t year_digits;
  if (t.tag == kTagUtcTime && s.size() == 13) {
    year_digits = 2;
  } else if (t.tag == kTagGeneralizedTime && s.size() == 15) {
    year_digits = 4;
  } else {
    return false;
  }
  if (s.back() != 'Z') return false;
  int64_t v[7] = {0, 0, 0, 0, 0, 0, 0};  // year, month, day, hour, minute, second
  size_t pos = 0;
  for (int field = 0; field < 6; ++field) {
    const size_t digits = field == 0 ? year_digits : 2;
    for (size_t i = 0; i < digits; ++i, ++pos) {
      const char c = s[pos];
      if (c < '0' || c > '9') return false;
      v[field] = v[field] * 10 + (c - '0');
    }
  }
  int64_t year = v[0];
  if (year_digits == 2) year += year >= 50 ? 1900 : 2000;
  const int64_t month = v[1], day = v[2], hour = v[3], minute = v[4], second = v[5];
  static constexpr int kDaysIn[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1 || day > kDaysIn[month - 1]) return false;
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (month == 2 && day == 29 && !leap) return false;
  if (hour > 23 || minute > 59 || second > 59) return false;
  *out = DaysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
  return true;
}

// One Extension: SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE,
// extnValue OCTET STRING }.
struct Extension {
  std::string_view oid;  // content octets
  bool critical = false;
  std::string_view value;  // extnValue content
};

// Reads the Extensions SEQUENCE contents `exts` into *out.
bool ReadExtensions(std::string_view exts, const char* what, std::vector<Extension>* out, std::string* error) {
  Reader r(exts);
  while (!r.empty()) {
    Tlv ext;
    if (!Expect(r, kTagSequence, what, &ext, error)) return false;
    Reader e(ext.content);
    Tlv oid;
    Tlv value;
    if (!Expect(e, kTagOid, what, &oid, error)) return false;
    if (oid.content.empty()) {
      *error = std::string("malformed CRL: ") + what + ": empty OID";
      return false;
    }
    Extension x;
    x.oid = oid.content;
    if (e.PeekTag() == kTagBoolean) {
      Tlv crit;
      if (!Expect(e, kTagBoolean, what, &crit, error)) return false;
      if (crit.content.size() != 1 || (crit.content[0] != '\0' && crit.content[0] != '\xFF')) {
        *error = std::string("malformed CRL: ") + what + ": bad critical flag";
        return false;
      }
      x.critical = crit.content[0] != '\0';
    }
    if (!Expect(e, kTagOctetString, what, &value, error)) return false;
    if (!ExpectEnd(e, what, error)) return false;
    x.value = value.content;
    out->push_back(x);
  }
  return true;
}

// A whole DER INTEGER TLV as an extension value: its content octets.
bool IntegerValue(std::string_view der, std::string_view* content) {
  Reader r(der);
  Tlv t;
  const char* why = nullptr;
  if (!r.Next(&t, &why) || t.tag != kTagInteger || !r.empty() || t.content.empty()) return false;
  *content = t.content;
  return true;
}


// PEM "X509 CRL" block -> DER in *der.
bool DecodePem(std::string_view data, std::string* der, std::string* error) {
  if (data.size() > static_cast<size_t>(INT_MAX)) {
    *error = "CRL too large";
    return false;
  }
  BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  if (!bio) {
    *error = "out of memory";
    return false;
  }
  char* name_raw = nullptr;
  char* header_raw = nullptr;
  unsigned char* body_raw = nullptr;
  long len = 0;
  int ok = PEM_read_bio(bio.get(), &name_raw, &header_raw, &body_raw, &len);
  OpenSslString name(name_raw);
  OpenSslString header(header_raw);
  OpenSslBytes body(body_raw);
  if (ok != 1) {
    *error = "malformed PEM";
    return false;
  }
  if (std::strcmp(name.get(), "X509 CRL") != 0) {
    *error = std::string("PEM block is \"") + name.get() + "\", not \"X509 CRL\"";
    return false;
  }
  if (header && header.get()[0] != '\0') {
    *error = "PEM headers (encryption) are not supported";
    return false;
  }
  char* rest = nullptr;
  long rest_len = BIO_get_mem_data(bio.get(), &rest);
  for (long i = 0; i < rest_len; ++i) {
    const char c = rest[i];
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
      *error = "unexpected data after the PEM block";
      return false;
    }
  }
  der->assign(reinterpret_cast<const char*>(body.get()), static_cast<size_t>(len));
  return true;
}

// Offset of "-----BEGIN " after leading whitespace, or npos (DER).
size_t PemStart(std::string_view data) {
  size_t i = 0;
  while (i < data.size() && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n')) ++i;
  return data.substr(i).starts_with("-----BEGIN ") ? i : std::string_view::npos;
}

// Verifies `signature` over `tbs` with the issuer's key, for the
// AlgorithmIdentifier DER `alg`.
bool VerifySignature(std::string_view alg, std::string_view tbs, std::string_view signature, X509* issuer,
                     std::string* error) {
  const unsigned char* p = Bytes(alg);
  AlgorPtr algor(d2i_X509_ALGOR(nullptr, &p, static_cast<long>(alg.size())));
  if (!algor || p != Bytes(alg) + alg.size()) {
    *error = "malformed CRL: bad signature AlgorithmIdentifier";
    return false;
  }
  const ASN1_OBJECT* obj = nullptr;
  int ptype = 0;
  const void* pval = nullptr;
  X509_ALGOR_get0(&obj, &ptype, &pval, algor.get());
  char name[128];
  OBJ_obj2txt(name, sizeof name, obj, 0);
  const int sig_nid = OBJ_obj2nid(obj);
  int md_nid = NID_undef;
  int pk_nid = NID_undef;
  if (sig_nid == NID_undef || !OBJ_find_sigid_algs(sig_nid, &md_nid, &pk_nid)) {
    *error = std::string("unsupported signature algorithm ") + name;
    return false;
  }
  const bool sha2 = md_nid == NID_sha256 || md_nid == NID_sha384 || md_nid == NID_sha512;
  const char* key_type = nullptr;
  bool params_ok = ptype == V_ASN1_UNDEF;
  if (pk_nid == NID_rsaEncryption && sha2) {
    key_type = "RSA";
    params_ok = ptype == V_ASN1_UNDEF || ptype == V_ASN1_NULL;
  } else if (pk_nid == NID_X9_62_id_ecPublicKey && sha2) {
    key_type = "EC";
  } else if (pk_nid == NID_ED25519 && md_nid == NID_undef) {
    key_type = "ED25519";
  } else if (pk_nid == NID_ED448 && md_nid == NID_undef) {
    key_type = "ED448";
  } else {
    *error = std::string("unsupported signature algorithm ") + name;
    return false;
  }
  if (!params_ok) {
    *error = std::string("malformed CRL: unexpected parameters for signature algorithm ") + name;
    return false;
  }
  EVP_PKEY* key = X509_get0_pubkey(issuer);
  if (key == nullptr) {
    *error = "issuer certificate has no usable public key";
    return false;
  }
  if (!EVP_PKEY_is_a(key, key_type)) {
    *error = std::string("CRL signature algorithm ") + name + " does not match the issuer's key type";
    return false;
  }
  const EVP_MD* md = md_nid == NID_undef ? nullptr : EVP_get_digestbynid(md_nid);
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || (md_nid != NID_undef && md == nullptr)) {
    *error = "out of memory";
    return false;
  }
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key) != 1 ||
      EVP_DigestVerify(ctx.get(), Bytes(signature), signature.size(), Bytes(tbs), tbs.size()) != 1) {
    *error = "CRL signature does not verify with the issuer's key";
    return false;
  }
  return true;
}

// The located parts of a CertificateList.
struct CrlParts {
  std::string_view tbs;        // whole tbsCertList TLV (signed bytes)
  std::string_view sig_alg;    // whole outer AlgorithmIdentifier TLV
  std::string_view signature;  // signature bits
  bool has_version = false;
  std::string_view issuer;    // whole Name TLV
  int64_t this_update = 0;
  int64_t next_update = 0;     // 0 if absent
  bool has_next_update = false;
  std::string_view revoked;   // revokedCertificates contents ("" if absent)
  bool has_extensions = false;
  std::string_view extensions;  // Extensions SEQUENCE contents
};

bool WalkCertificateList(std::string_view der, CrlParts* c, std::string* error) {
  Reader top(der);
  Tlv outer;
  if (!Expect(top, kTagSequence, "CertificateList", &outer, error)) return false;
  if (!ExpectEnd(top, "CertificateList", error)) return false;

  Reader cl(outer.content);
  Tlv tbs;
  Tlv alg;
  Tlv sig;
  if (!Expect(cl, kTagSequence, "tbsCertList", &tbs, error)) return false;
  if (!Expect(cl, kTagSequence, "signatureAlgorithm", &alg, error)) return false;
  if (!Expect(cl, kTagBitString, "signatureValue", &sig, error)) return false;
  if (!ExpectEnd(cl, "signatureValue", error)) return false;
  if (sig.content.empty() || sig.content[0] != '\0') {
    *error = "malformed CRL: signatureValue has unused bits";
    return false;
  }
  c->tbs = tbs.whole;
  c->sig_alg = alg.whole;
  c->signature = sig.content.substr(1);

  Reader t(tbs.content);
  if (t.PeekTag() == kTagInteger) {
    Tlv version;
    if (!Expect(t, kTagInteger, "version", &version, error)) return false;
    if (version.content != std::string_view("\x01", 1)) {
      *error = "unsupported CRL version (only v2 is accepted when the version field is present)";
      return false;
    }
    c->has_version = true;
  }
  Tlv inner_alg;
  if (!Expect(t, kTagSequence, "tbsCertList signature", &inner_alg, error)) return false;
  if (inner_alg.whole != alg.whole) {
    *error = "malformed CRL: tbsCertList signature algorithm differs from the outer signatureAlgorithm";
    return false;
  }
  Tlv issuer;
  if (!Expect(t, kTagSequence, "issuer", &issuer, error)) return false;
  c->issuer = issuer.whole;

  Tlv time;
  const char* why = nullptr;
  if (!t.Next(&time, &why)) {
    *error = std::string("malformed CRL: thisUpdate: ") + why;
    return false;
  }
  if (!ParseTime(time, &c->this_update)) {
    *error = "malformed CRL: bad thisUpdate time";
    return false;
  }
  if (t.PeekTag() == kTagUtcTime || t.PeekTag() == kTagGeneralizedTime) {
    if (!t.Next(&time, &why)) {
      *error = std::string("malformed CRL: nextUpdate: ") + why;
      return false;
    }
    if (!ParseTime(time, &c->next_update)) {
      *error = "malformed CRL: bad nextUpdate time";
      return false;
    }
    c->has_next_update = true;
  }
  if (t.PeekTag() == kTagSequence) {
    Tlv revoked;
    if (!Expect(t, kTagSequence, "revokedCertificates", &revoked, error)) return false;
    c->revoked = revoked.content;
  }
  if (t.PeekTag() == kTagContext0) {
    Tlv wrapper;
    Tlv exts;
    if (!Expect(t, kTagContext0, "crlExtensions", &wrapper, error)) return false;
    Reader w(wrapper.content);
    if (!Expect(w, kTagSequence, "crlExtensions", &exts, error)) return false;
    if (!ExpectEnd(w, "crlExtensions", error)) return false;
    c->has_extensions = true;
    c->extensions = exts.content;
  }
  return ExpectEnd(t, "tbsCertList fields", error);
}

// The CRL extensions: records the cRLNumber and AKI keyIdentifier, rejects
// what a complete direct CRL must not have.
bool CheckCrlExtensions(std::string_view exts_der, X509* issuer, std::string* number, std::string* error) {
  std::vector<Extension> exts;
  if (!ReadExtensions(exts_der, "crlExtensions", &exts, error)) return false;
  std::vector<std::string_view> oids;
  oids.reserve(exts.size());
  for (const Extension& x : exts) oids.push_back(x.oid);
  std::sort(oids.begin(), oids.end());
  if (auto dup = std::adjacent_find(oids.begin(), oids.end()); dup != oids.end()) {
    *error = "malformed CRL: duplicate CRL extension " + OidText(*dup);
    return false;
  }
  for (const Extension& x : exts) {
    if (x.oid == kOidDeltaCrlIndicator) {
      *error = "delta CRLs are not supported";
      return false;
    }
    if (x.oid == kOidCrlNumber) {
      std::string_view n;
      if (!IntegerValue(x.value, &n)) {
        *error = "malformed CRL: bad cRLNumber";
        return false;
      }
      if (static_cast<unsigned char>(n[0]) & 0x80) {
        *error = "malformed CRL: negative cRLNumber";
        return false;
      }
      n = CanonicalSerial(n);
      if (n.size() > Crl::kMaxSerialLength) {
        *error = "malformed CRL: cRLNumber too long";
        return false;
      }
      number->assign(n);
    } else if (x.oid == kOidAki) {
      const unsigned char* p = Bytes(x.value);
      AuthorityKeyIdPtr aki(d2i_AUTHORITY_KEYID(nullptr, &p, static_cast<long>(x.value.size())));
      if (!aki || p != Bytes(x.value) + x.value.size()) {
        *error = "malformed CRL: bad authorityKeyIdentifier";
        return false;
      }
      const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(issuer);
      if (aki->keyid != nullptr && ski != nullptr && ASN1_OCTET_STRING_cmp(aki->keyid, ski) != 0) {
        *error = "CRL authorityKeyIdentifier does not match the issuer's subjectKeyIdentifier";
        return false;
      }
    } else if (x.oid == kOidIdp) {
      const unsigned char* p = Bytes(x.value);
      IdpPtr idp(d2i_ISSUING_DIST_POINT(nullptr, &p, static_cast<long>(x.value.size())));
      if (!idp || p != Bytes(x.value) + x.value.size()) {
        *error = "malformed CRL: bad issuingDistributionPoint";
        return false;
      }
      if (idp->distpoint != nullptr || idp->onlysomereasons != nullptr || idp->indirectCRL != 0 ||
          idp->onlyCA != 0 || idp->onlyattr != 0) {
        *error = "partitioned/indirect CRLs are not supported (issuingDistributionPoint)";
        return false;
      }
    } else if (x.critical) {
      *error = "unsupported critical CRL extension " + OidText(x.oid);
      return false;
    }
  }
  return true;
}

// Walks revokedCertificates, calling on_serial(canonical) for each entry
// after validating it. `v2`: entry extensions are allowed.
template <typename OnSerial>
bool WalkEntries(std::string_view revoked, bool v2, OnSerial&& on_serial, std::string* error) {
  Reader r(revoked);
  std::vector<Extension> exts;
  for (size_t index = 0; !r.empty(); ++index) {
    Tlv entry;
    Tlv serial;
    Tlv date;
    if (!Expect(r, kTagSequence, "revokedCertificates entry", &entry, error)) return false;
    Reader e(entry.content);
    if (!Expect(e, kTagInteger, "userCertificate", &serial, error)) return false;
    if (serial.content.empty()) {
      *error = "malformed CRL: empty userCertificate serial in entry " + std::to_string(index);
      return false;
    }
    std::string_view key = CanonicalSerial(serial.content);
    if (key.size() > Crl::kMaxSerialLength) {
      *error = "CRL entry " + std::to_string(index) + ": serial number longer than 126 octets";
      return false;
    }
    const char* why = nullptr;
    int64_t when = 0;
    if (!e.Next(&date, &why) || !ParseTime(date, &when)) {
      *error = "malformed CRL: bad revocationDate in entry " + std::to_string(index);
      return false;
    }
    if (!e.empty()) {
      Tlv ext_seq;
      if (!Expect(e, kTagSequence, "crlEntryExtensions", &ext_seq, error)) return false;
      if (!ExpectEnd(e, "crlEntryExtensions", error)) return false;
      if (!v2) {
        *error = "v1 CRL (no version field) must not have entry extensions";
        return false;
      }
      exts.clear();
      if (!ReadExtensions(ext_seq.content, "crlEntryExtensions", &exts, error)) return false;
      auto where = [&] { return "CRL entry " + std::to_string(index) + " (serial " + Hex(key) + "): "; };
      bool seen_reason = false;
      bool seen_invalidity = false;
      for (const Extension& x : exts) {
        if (x.oid == kOidReasonCode) {
          Reader v(x.value);
          Tlv code;
          if (seen_reason || !v.Next(&code, &why) || code.tag != kTagEnumerated || !v.empty() ||
              code.content.size() != 1) {
            *error = "malformed CRL: " + where() + "bad reasonCode";
            return false;
          }
          const auto reason = static_cast<unsigned char>(code.content[0]);
          if (reason > 10 || reason == 7) {
            *error = "malformed CRL: " + where() + "bad reasonCode " + std::to_string(reason);
            return false;
          }
          if (reason == 8) {
            *error = where() + "removeFromCRL in a complete CRL (delta CRLs are not supported)";
            return false;
          }
          seen_reason = true;
        } else if (x.oid == kOidInvalidityDate) {
          Reader v(x.value);
          Tlv t;
          int64_t ignored = 0;
          if (seen_invalidity || !v.Next(&t, &why) || t.tag != kTagGeneralizedTime || !v.empty() ||
              !ParseTime(t, &ignored)) {
            *error = "malformed CRL: " + where() + "bad invalidityDate";
            return false;
          }
          seen_invalidity = true;
        } else if (x.oid == kOidCertificateIssuer) {
          *error = where() + "certificateIssuer entry extension (indirect CRL) is not supported";
          return false;
        } else if (x.critical) {
          *error = where() + "unsupported critical CRL entry extension " + OidText(x.oid);
          return false;
        }
      }
    }
    on_serial(key);
  }
  return true;
}

}  // namespace

std::unique_ptr<const Crl> Crl::Parse(std::string_view data, X509* issuer, int64_t now, int64_t skew_s,
                                      std::string* error) {
  std::string ignored;
  if (error == nullptr) error = &ignored;
  error->clear();
  OpenSslErrorMark mark;
  if (issuer == nullptr) {
    *error = "no issuer certificate";
    return nullptr;
  }
  std::string pem_der;
  if (size_t start = PemStart(data); start != std::string_view::npos) {
    data.remove_prefix(start);
    if (!DecodePem(data, &pem_der, error)) return nullptr;
    data = pem_der;
  }
  if (data.size() > kMaxCrlBytes) {
    *error = "CRL too large";
    return nullptr;
  }

  CrlParts c;
  if (!WalkCertificateList(data, &c, error)) return nullptr;
  if (c.has_next_update && c.next_update < c.this_update) {
    *error = "malformed CRL: nextUpdate is before thisUpdate";
    return nullptr;
  }

  // Issuer: name, then (with the extensions) key identifier, then key usage.
  const unsigned char* p = Bytes(c.issuer);
  X509NamePtr name(d2i_X509_NAME(nullptr, &p, static_cast<long>(c.issuer.size())));
  if (!name || p != Bytes(c.issuer) + c.issuer.size()) {
    *error = "malformed CRL: bad issuer Name";
    return nullptr;
  }
  if (X509_NAME_cmp(name.get(), X509_get_subject_name(issuer)) != 0) {
    *error = "CRL issuer name does not match the issuer certificate's subject";
    return nullptr;
  }
  std::unique_ptr<Crl> crl(new Crl());
  if (c.has_extensions) {
    if (!c.has_version) {
      *error = "v1 CRL (no version field) must not have extensions";
      return nullptr;
    }
    if (!CheckCrlExtensions(c.extensions, issuer, &crl->number_, error)) return nullptr;
  }
  if ((X509_get_key_usage(issuer) & KU_CRL_SIGN) == 0) {
    *error = "issuer certificate's keyUsage does not allow cRLSign";
    return nullptr;
  }
  if (!VerifySignature(c.sig_alg, c.tbs, c.signature, issuer, error)) return nullptr;

  if (c.this_update > now &&
      static_cast<uint64_t>(c.this_update) - static_cast<uint64_t>(now) > static_cast<uint64_t>(std::max<int64_t>(skew_s, 0))) {
    *error = "CRL thisUpdate " + std::to_string(c.this_update) + " is in the future (now " + std::to_string(now) +
             ", skew " + std::to_string(skew_s) + " s)";
    return nullptr;
  }
  crl->this_update_ = c.this_update;
  crl->next_update_ = c.has_next_update ? c.next_update : 0;

  // One pass over the entries: each serial's arena record (length byte +
  // octets) is smaller than its DER entry, so this bound never reallocates.
  SerialSet::Builder builder;
  builder.Reserve(0, c.revoked.size());
  try {
    if (!WalkEntries(
            c.revoked, c.has_version, [&builder](std::string_view key) { builder.Add(key); }, error)) {
      return nullptr;
    }
    crl->serials_ = std::move(builder).Build();
  } catch (const std::length_error&) {
    *error = "CRL too large";
    return nullptr;
  } catch (const std::bad_alloc&) {
    *error = "out of memory";
    return nullptr;
  }
  return crl;
}

int CompareCrlNumbers(std::string_view a, std::string_view b) {
  while (!a.empty() && a[0] == '\0') a.remove_prefix(1);
  while (!b.empty() && b[0] == '\0') b.remove_prefix(1);
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  if (a.empty()) return 0;
  const int c = std::memcmp(a.data(), b.data(), a.size());
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}

}  // namespace certacl::revocation
