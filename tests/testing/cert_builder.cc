// cert_builder.cc: in-process X.509 certificate construction for tests
// (see cert_builder.h for the API and its rules).
#include "tests/testing/cert_builder.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

namespace certacl::testing {
namespace {

using certacl::Asn1ObjectPtr;
using certacl::BasicConstraintsPtr;
using certacl::BignumPtr;
using certacl::BioPtr;
using certacl::BitStringPtr;
using certacl::ExtensionPtr;
using certacl::GeneralNamesPtr;
using certacl::IntegerPtr;
using certacl::OctetStringPtr;
using certacl::OpenSslBytes;
using certacl::PoliciesPtr;
using certacl::AuthorityKeyIdPtr;

// A bug in the calling test: say what and why, then stop.
[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "cert_builder: %s\n", what.c_str());
  ERR_print_errors_fp(stderr);
  std::abort();
}

// Dies with `what` if `ok` is false; returns `ok` otherwise.
template <typename T>
T Check(T ok, const std::string& what) {
  if (!ok) Die(what);
  return ok;
}

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

int IntLength(std::string_view s) {
  if (s.size() > 1u << 30) Die("value too large");
  return static_cast<int>(s.size());
}

// An OID from a dotted string (numeric only: "1.2.3").
Asn1ObjectPtr Oid(std::string_view dotted) {
  std::string text(dotted);
  Asn1ObjectPtr obj(OBJ_txt2obj(text.c_str(), /*no_name=*/1));
  return Asn1ObjectPtr(Check(obj.release(), "not a dotted OID: " + text));
}

OctetStringPtr OctetString(std::string_view bytes) {
  OctetStringPtr os(Check(ASN1_OCTET_STRING_new(), "out of memory"));
  Check(ASN1_OCTET_STRING_set(os.get(), Bytes(bytes), IntLength(bytes)), "ASN1_OCTET_STRING_set");
  return os;
}

// Appends one AVA to `name`: set 0 starts a new RDN, -1 joins the last.
void AddAva(X509_NAME* name, std::string_view field, std::string_view value, int type, int set) {
  std::string f(field);
  int ok = X509_NAME_add_entry_by_txt(name, f.c_str(), type, Bytes(value), IntLength(value),
                                      /*loc=*/-1, set);
  Check(ok, "cannot add DN entry " + f + " (unknown field name, or a value OpenSSL rejects)");
}

void AddMultiValued(X509_NAME* name, const std::vector<Ava>& avas) {
  for (size_t i = 0; i < avas.size(); ++i) {
    AddAva(name, avas[i].field, avas[i].value, avas[i].type, i == 0 ? 0 : -1);
  }
}

std::string BioContents(BIO* bio) {
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(bio, &mem);
  if (mem == nullptr) Die("BIO_get_mem_ptr");
  return std::string(mem->data, mem->length);
}

// One DER length field.
std::string DerLength(size_t len) {
  if (len < 0x80) return std::string(1, static_cast<char>(len));
  std::string digits;
  for (size_t v = len; v > 0; v >>= 8) digits.insert(digits.begin(), static_cast<char>(v & 0xFF));
  return std::string(1, static_cast<char>(0x80 | digits.size())) + digits;
}

EvpPkeyPtr Keygen(KeyType type) {
  EVP_PKEY* key = nullptr;
  switch (type) {
    case KeyType::kEcP256:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
      break;
    case KeyType::kEcP384:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384");
      break;
    case KeyType::kEcP521:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-521");
      break;
    case KeyType::kRsa2048:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
      break;
    case KeyType::kEd25519:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
      break;
  }
  return EvpPkeyPtr(Check(key, "key generation failed"));
}

}  // namespace

// ---------------------------------------------------------------------------
// Keys.

EvpPkeyPtr GenerateKey(KeyType type) { return Keygen(type); }

EvpPkeyPtr CachedKey(KeyType type, int slot) {
  static std::mutex mu;
  // Never destroyed on purpose: keys outlive every test and static
  // destruction order against OpenSSL's own cleanup does not matter.
  static auto* cache = new std::map<std::pair<KeyType, int>, EVP_PKEY*>();
  std::lock_guard<std::mutex> lock(mu);
  EVP_PKEY*& key = (*cache)[{type, slot}];
  if (key == nullptr) key = Keygen(type).release();
  return Ref(key);
}

EvpPkeyPtr Ref(EVP_PKEY* key) {
  if (key == nullptr) return nullptr;
  EVP_PKEY_up_ref(key);
  return EvpPkeyPtr(key);
}

certacl::X509Ptr Ref(X509* cert) {
  if (cert == nullptr) return nullptr;
  X509_up_ref(cert);
  return certacl::X509Ptr(cert);
}

// ---------------------------------------------------------------------------
// DER encoders.

std::string DerTlv(unsigned char tag, std::string_view contents) {
  return std::string(1, static_cast<char>(tag)) + DerLength(contents.size()) + std::string(contents);
}

std::string DerUtf8String(std::string_view s) { return DerTlv(V_ASN1_UTF8STRING, s); }

std::string DerString(int asn1_string_type, std::string_view raw) {
  if (asn1_string_type <= 0 || asn1_string_type > 30) Die("DerString: not a universal tag");
  return DerTlv(static_cast<unsigned char>(asn1_string_type), raw);
}

std::string DerInteger(int64_t v) {
  IntegerPtr i(Check(ASN1_INTEGER_new(), "out of memory"));
  Check(ASN1_INTEGER_set_int64(i.get(), v), "ASN1_INTEGER_set_int64");
  unsigned char* der = nullptr;
  int len = i2d_ASN1_INTEGER(i.get(), &der);
  OpenSslBytes holder(der);
  Check(len > 0, "i2d_ASN1_INTEGER");
  return std::string(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
}

std::string DerBoolean(bool v) { return DerTlv(V_ASN1_BOOLEAN, std::string(1, v ? '\xFF' : '\0')); }

std::string DerOctetString(std::string_view bytes) { return DerTlv(V_ASN1_OCTET_STRING, bytes); }

std::string DerOid(std::string_view dotted) {
  Asn1ObjectPtr obj = Oid(dotted);
  unsigned char* der = nullptr;
  int len = i2d_ASN1_OBJECT(obj.get(), &der);
  OpenSslBytes holder(der);
  Check(len > 0, "i2d_ASN1_OBJECT");
  return std::string(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
}

std::string DerNull() { return DerTlv(V_ASN1_NULL, ""); }

std::string DerSequence(const std::vector<std::string>& elements) {
  std::string contents;
  for (const std::string& e : elements) contents += e;
  return DerTlv(0x30, contents);
}

// ---------------------------------------------------------------------------
// Text helpers.

std::string ToPem(const X509* cert) {
  BioPtr bio(Check(BIO_new(BIO_s_mem()), "out of memory"));
  Check(PEM_write_bio_X509(bio.get(), cert), "PEM_write_bio_X509");
  return BioContents(bio.get());
}

std::string ToDer(const X509* cert) {
  unsigned char* der = nullptr;
  int len = i2d_X509(cert, &der);
  OpenSslBytes holder(der);
  Check(len > 0, "i2d_X509");
  return std::string(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
}

std::string KeyToPem(const EVP_PKEY* key) {
  BioPtr bio(Check(BIO_new(BIO_s_mem()), "out of memory"));
  Check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr),
        "PEM_write_bio_PrivateKey");
  return BioContents(bio.get());
}

std::string FromHex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  int high = -1;
  for (char c : hex) {
    if (c == ' ' || c == ':') continue;
    int n = nibble(c);
    if (n < 0) Die("FromHex: not a hex digit in " + std::string(hex));
    if (high < 0) {
      high = n;
    } else {
      out.push_back(static_cast<char>(high << 4 | n));
      high = -1;
    }
  }
  if (high >= 0) Die("FromHex: odd number of digits in " + std::string(hex));
  return out;
}

// ---------------------------------------------------------------------------
// CertBuilder.

struct CertBuilder::State {
  struct San {
    SanKind kind;
    std::string value;
    bool raw;
  };
  struct Ext {
    std::string oid;
    std::string der;
    bool critical;
  };

  X509NamePtr subject{Check(X509_NAME_new(), "out of memory")};
  X509NamePtr issuer;  // null: the subject (self-signed) or the signer's subject
  std::vector<San> sans;
  BignumPtr serial;
  std::optional<std::pair<int64_t, int64_t>> validity;
  std::vector<std::string> policies;
  std::vector<Ext> extensions;
  std::optional<std::string> authority_key_id;
  bool no_authority_key_id = false;
  std::optional<std::string> subject_key_id;
  bool subject_key_id_from_key = false;
  bool ca = false;
  int path_len = -1;
  EvpPkeyPtr key;
  certacl::X509Ptr signer_cert;
  EvpPkeyPtr signer_key;

  X509_NAME* Issuer() {
    if (issuer == nullptr) issuer.reset(Check(X509_NAME_new(), "out of memory"));
    return issuer.get();
  }
};

CertBuilder::CertBuilder() : s_(std::make_unique<State>()) {}
CertBuilder::~CertBuilder() = default;
CertBuilder::CertBuilder(CertBuilder&&) noexcept = default;
CertBuilder& CertBuilder::operator=(CertBuilder&&) noexcept = default;

CertBuilder& CertBuilder::Subject(std::string_view field, std::string_view value, int type) {
  AddAva(s_->subject.get(), field, value, type, 0);
  return *this;
}

CertBuilder& CertBuilder::SubjectRaw(std::string_view field, int asn1_type, std::string_view bytes) {
  if ((asn1_type & MBSTRING_FLAG) != 0) Die("SubjectRaw takes a V_ASN1_* type");
  return Subject(field, bytes, asn1_type);
}

CertBuilder& CertBuilder::SubjectMultiValued(const std::vector<Ava>& avas) {
  AddMultiValued(s_->subject.get(), avas);
  return *this;
}

CertBuilder& CertBuilder::Issuer(std::string_view field, std::string_view value, int type) {
  AddAva(s_->Issuer(), field, value, type, 0);
  return *this;
}

CertBuilder& CertBuilder::IssuerRaw(std::string_view field, int asn1_type, std::string_view bytes) {
  if ((asn1_type & MBSTRING_FLAG) != 0) Die("IssuerRaw takes a V_ASN1_* type");
  return Issuer(field, bytes, asn1_type);
}

CertBuilder& CertBuilder::IssuerMultiValued(const std::vector<Ava>& avas) {
  AddMultiValued(s_->Issuer(), avas);
  return *this;
}

CertBuilder& CertBuilder::IssuerName(const X509_NAME* name) {
  s_->issuer.reset(Check(X509_NAME_dup(name), "X509_NAME_dup"));
  return *this;
}

CertBuilder& CertBuilder::San(SanKind kind, std::string_view value) {
  s_->sans.push_back({kind, std::string(value), false});
  return *this;
}

CertBuilder& CertBuilder::SanRaw(SanKind kind, std::string_view bytes) {
  if (kind == SanKind::kRegisteredId) Die("SanRaw: kRegisteredId has no raw form");
  s_->sans.push_back({kind, std::string(bytes), true});
  return *this;
}

CertBuilder& CertBuilder::Serial(std::string_view hex) {
  std::string text(hex);
  BIGNUM* bn = nullptr;
  if (BN_hex2bn(&bn, text.c_str()) != static_cast<int>(text.size())) {
    BN_free(bn);
    Die("Serial: not a hex number: " + text);
  }
  s_->serial.reset(bn);
  return *this;
}

CertBuilder& CertBuilder::Serial(const BIGNUM* bn) {
  s_->serial.reset(Check(BN_dup(bn), "BN_dup"));
  return *this;
}

CertBuilder& CertBuilder::Validity(int64_t not_before, int64_t not_after) {
  s_->validity = std::make_pair(not_before, not_after);
  return *this;
}

CertBuilder& CertBuilder::Policy(std::string_view dotted_oid) {
  Oid(dotted_oid);  // validate now, so the failing call is the one reported
  s_->policies.emplace_back(dotted_oid);
  return *this;
}

CertBuilder& CertBuilder::Extension(std::string_view dotted_oid, std::string der_value, bool critical) {
  Oid(dotted_oid);
  s_->extensions.push_back({std::string(dotted_oid), std::move(der_value), critical});
  return *this;
}

CertBuilder& CertBuilder::AuthorityKeyId(std::string_view bytes) {
  s_->authority_key_id = std::string(bytes);
  s_->no_authority_key_id = false;
  return *this;
}

CertBuilder& CertBuilder::NoAuthorityKeyId() {
  s_->authority_key_id.reset();
  s_->no_authority_key_id = true;
  return *this;
}

CertBuilder& CertBuilder::SubjectKeyId(std::string_view bytes) {
  s_->subject_key_id = std::string(bytes);
  s_->subject_key_id_from_key = false;
  return *this;
}

CertBuilder& CertBuilder::SubjectKeyIdFromKey() {
  s_->subject_key_id.reset();
  s_->subject_key_id_from_key = true;
  return *this;
}

CertBuilder& CertBuilder::Ca(int path_len) {
  s_->ca = true;
  s_->path_len = path_len;
  return *this;
}

CertBuilder& CertBuilder::Key(EVP_PKEY* key) {
  s_->key = Ref(Check(key, "Key(nullptr)"));
  return *this;
}

CertBuilder& CertBuilder::SignedBy(X509* issuer_cert, EVP_PKEY* issuer_key) {
  s_->signer_cert = Ref(Check(issuer_cert, "SignedBy: no issuer certificate"));
  s_->signer_key = Ref(Check(issuer_key, "SignedBy: no issuer key"));
  return *this;
}

EVP_PKEY* CertBuilder::key() {
  if (s_->key == nullptr) s_->key = GenerateKey(KeyType::kEcP256);
  return s_->key.get();
}

namespace {

// Adds `value` as extension `nid` (DER via OpenSSL's i2d for that NID).
void AddExt(X509* x, int nid, void* value, bool critical) {
  Check(X509_add1_ext_i2d(x, nid, value, critical ? 1 : 0, X509V3_ADD_DEFAULT) == 1,
        std::string("cannot add extension ") + OBJ_nid2sn(nid));
}

GENERAL_NAME* MakeGeneralName(SanKind kind, const std::string& value, bool raw) {
  GENERAL_NAME* gen = Check(GENERAL_NAME_new(), "out of memory");
  if (kind == SanKind::kIp) {
    ASN1_OCTET_STRING* ip = raw ? OctetString(value).release() : a2i_IPADDRESS(value.c_str());
    GENERAL_NAME_set0_value(gen, GEN_IPADD, Check(ip, "SanIp: not an IP address: " + value));
  } else if (kind == SanKind::kRegisteredId) {
    GENERAL_NAME_set0_value(gen, GEN_RID, Oid(value).release());
  } else {
    ASN1_IA5STRING* s = Check(ASN1_IA5STRING_new(), "out of memory");
    Check(ASN1_STRING_set(s, Bytes(value), IntLength(value)), "ASN1_STRING_set");
    int type = kind == SanKind::kDns ? GEN_DNS : kind == SanKind::kUri ? GEN_URI : GEN_EMAIL;
    GENERAL_NAME_set0_value(gen, type, s);
  }
  return gen;
}

}  // namespace

// Builds the certificate in the order of a real one: names, serial,
// validity, key, standard extensions, custom extensions, signature.
certacl::X509Ptr CertBuilder::Build() {
  State& s = *s_;
  EVP_PKEY* subject_key = key();
  certacl::X509Ptr x(Check(X509_new(), "out of memory"));
  Check(X509_set_version(x.get(), X509_VERSION_3), "X509_set_version");

  // Serial.
  BignumPtr random;
  if (s.serial == nullptr) {
    random.reset(Check(BN_new(), "out of memory"));
    Check(BN_rand(random.get(), 63, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY), "BN_rand");
  }
  IntegerPtr serial(BN_to_ASN1_INTEGER(s.serial ? s.serial.get() : random.get(), nullptr));
  Check(X509_set_serialNumber(x.get(), Check(serial.get(), "BN_to_ASN1_INTEGER")), "serial");

  // Names.
  Check(X509_set_subject_name(x.get(), s.subject.get()), "X509_set_subject_name");
  const X509_NAME* issuer = s.issuer            ? s.issuer.get()
                            : s.signer_cert     ? X509_get_subject_name(s.signer_cert.get())
                                                : s.subject.get();
  Check(X509_set_issuer_name(x.get(), issuer), "X509_set_issuer_name");

  // Validity.
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  auto [not_before, not_after] = s.validity.value_or(std::make_pair(now - 3600, now + 365 * 86400));
  Check(ASN1_TIME_set(X509_getm_notBefore(x.get()), static_cast<time_t>(not_before)), "notBefore");
  Check(ASN1_TIME_set(X509_getm_notAfter(x.get()), static_cast<time_t>(not_after)), "notAfter");

  Check(X509_set_pubkey(x.get(), subject_key), "X509_set_pubkey");
  AddStandardExtensions(x.get());
  for (const State::Ext& e : s.extensions) {
    OctetStringPtr contents = OctetString(e.der);
    ExtensionPtr ext(X509_EXTENSION_create_by_OBJ(nullptr, Oid(e.oid).get(), e.critical ? 1 : 0,
                                                  contents.get()));
    Check(X509_add_ext(x.get(), Check(ext.get(), "X509_EXTENSION_create_by_OBJ"), -1), "X509_add_ext");
  }

  // Signature.
  EVP_PKEY* signer = s.signer_key ? s.signer_key.get() : subject_key;
  bool pure = EVP_PKEY_is_a(signer, "ED25519") || EVP_PKEY_is_a(signer, "ED448");
  Check(X509_sign(x.get(), signer, pure ? nullptr : EVP_sha256()) > 0,
        "X509_sign failed (note: OpenSSL cannot encode a DN with invalid UTF-8 or BMP surrogates)");
  return x;
}

// basicConstraints, keyUsage, SKI, AKI, subjectAltName, certificatePolicies.
void CertBuilder::AddStandardExtensions(X509* x) {
  State& s = *s_;
  if (s.ca) {
    BasicConstraintsPtr bc(Check(BASIC_CONSTRAINTS_new(), "out of memory"));
    bc->ca = 0xFF;
    if (s.path_len >= 0) {
      bc->pathlen = Check(ASN1_INTEGER_new(), "out of memory");
      Check(ASN1_INTEGER_set(bc->pathlen, s.path_len), "ASN1_INTEGER_set");
    }
    AddExt(x, NID_basic_constraints, bc.get(), true);
    BitStringPtr usage(Check(ASN1_BIT_STRING_new(), "out of memory"));
    Check(ASN1_BIT_STRING_set_bit(usage.get(), 5, 1), "keyCertSign");  // keyCertSign
    Check(ASN1_BIT_STRING_set_bit(usage.get(), 6, 1), "cRLSign");      // cRLSign
    AddExt(x, NID_key_usage, usage.get(), true);
  }
  std::optional<std::string> ski = s.subject_key_id;
  if (s.subject_key_id_from_key) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    Check(X509_pubkey_digest(x, EVP_sha1(), md, &len), "X509_pubkey_digest");
    ski = std::string(reinterpret_cast<const char*>(md), len);
  }
  if (ski) AddExt(x, NID_subject_key_identifier, OctetString(*ski).get(), false);

  std::optional<std::string> aki = s.authority_key_id;
  if (!aki && !s.no_authority_key_id && s.signer_cert) {
    const ASN1_OCTET_STRING* signer_ski = X509_get0_subject_key_id(s.signer_cert.get());
    if (signer_ski != nullptr) {
      aki = std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(signer_ski)),
                        static_cast<size_t>(ASN1_STRING_length(signer_ski)));
    }
  }
  if (aki) {
    AuthorityKeyIdPtr id(Check(AUTHORITY_KEYID_new(), "out of memory"));
    id->keyid = OctetString(*aki).release();
    AddExt(x, NID_authority_key_identifier, id.get(), false);
  }

  if (!s.sans.empty()) {
    GeneralNamesPtr names(Check(sk_GENERAL_NAME_new_null(), "out of memory"));
    for (const State::San& san : s.sans) {
      GENERAL_NAME* gen = MakeGeneralName(san.kind, san.value, san.raw);
      if (sk_GENERAL_NAME_push(names.get(), gen) <= 0) {
        GENERAL_NAME_free(gen);
        Die("out of memory");
      }
    }
    AddExt(x, NID_subject_alt_name, names.get(), false);
  }

  if (!s.policies.empty()) {
    PoliciesPtr policies(Check(sk_POLICYINFO_new_null(), "out of memory"));
    for (const std::string& oid : s.policies) {
      POLICYINFO* info = Check(POLICYINFO_new(), "out of memory");
      ASN1_OBJECT_free(info->policyid);
      info->policyid = Oid(oid).release();
      if (sk_POLICYINFO_push(policies.get(), info) <= 0) {
        POLICYINFO_free(info);
        Die("out of memory");
      }
    }
    AddExt(x, NID_certificate_policies, policies.get(), false);
  }
}

// ---------------------------------------------------------------------------
// TestCa.

TestCa TestCa::Create(std::string_view common_name, KeyType type) {
  TestCa ca;
  ca.key = GenerateKey(type);
  ca.cert = CertBuilder().Key(ca.key.get()).Subject("CN", common_name).Ca().SubjectKeyIdFromKey().Build();
  return ca;
}

TestCa TestCa::CreateIntermediate(std::string_view common_name, KeyType type) const {
  TestCa sub;
  sub.key = GenerateKey(type);
  sub.cert = Issue().Key(sub.key.get()).Subject("CN", common_name).Ca().SubjectKeyIdFromKey().Build();
  return sub;
}

CertBuilder TestCa::Issue() const {
  CertBuilder builder;
  builder.SignedBy(cert.get(), key.get());
  return builder;
}

}  // namespace certacl::testing
