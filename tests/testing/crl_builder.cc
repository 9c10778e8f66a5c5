// crl_builder.cc: direct DER emission of signed CRLs for tests and
// benchmarks (see crl_builder.h for the API and its rules).
#include "tests/testing/crl_builder.h"

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace certacl::testing {
namespace {

using MdCtxPtr = certacl::OpenSslPtr<EVP_MD_CTX, EVP_MD_CTX_free>;
using AlgorPtr = certacl::OpenSslPtr<X509_ALGOR, X509_ALGOR_free>;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "crl_builder: %s\n", what.c_str());
  ERR_print_errors_fp(stderr);
  std::abort();
}

const unsigned char* Bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

// Appends a DER tag and length.
void AppendHeader(std::string* out, unsigned char tag, size_t len) {
  out->push_back(static_cast<char>(tag));
  if (len < 0x80) {
    out->push_back(static_cast<char>(len));
    return;
  }
  int n = 0;
  for (size_t v = len; v > 0; v >>= 8) ++n;
  out->push_back(static_cast<char>(0x80 | n));
  for (int i = n - 1; i >= 0; --i) out->push_back(static_cast<char>((len >> (8 * i)) & 0xFF));
}

std::string Tlv(unsigned char tag, std::string_view content) {
  std::string out;
  out.reserve(content.size() + 6);
  AppendHeader(&out, tag, content.size());
  out.append(content);
  return out;
}

std::string Time(int64_t t, bool generalized) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  if (gmtime_r(&tt, &tm) == nullptr) Die("time out of range");
  const int year = tm.tm_year + 1900;
  char buf[32];
  if (!generalized && year >= 1950 && year < 2050) {
    std::snprintf(buf, sizeof buf, "%02d%02d%02d%02d%02d%02dZ", year % 100, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                  tm.tm_min, tm.tm_sec);
    return Tlv(0x17, buf);
  }
  std::snprintf(buf, sizeof buf, "%04d%02d%02d%02d%02d%02dZ", year, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return Tlv(0x18, buf);
}

std::string Ext(std::string_view dotted, std::string_view der_value, bool critical) {
  std::string content = DerOid(dotted);
  if (critical) content += DerBoolean(true);
  content += Tlv(0x04, der_value);
  return Tlv(0x30, content);
}

bool IsPure(EVP_PKEY* key) { return EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448"); }

// The AlgorithmIdentifier for `key` with `digest` (RSA: NULL parameters).
std::string AlgorithmDer(EVP_PKEY* key, const EVP_MD* md) {
  int sig_nid = NID_undef;
  const int md_nid = md == nullptr ? NID_undef : EVP_MD_get_type(md);
  if (IsPure(key)) {
    sig_nid = EVP_PKEY_get_base_id(key);  // the key OID is the signature OID
  } else if (!OBJ_find_sigid_by_algs(&sig_nid, md_nid, EVP_PKEY_get_base_id(key))) {
    Die("no signature OID for key+digest");
  }
  AlgorPtr alg(X509_ALGOR_new());
  if (!alg) Die("out of memory");
  const bool rsa = EVP_PKEY_is_a(key, "RSA");
  if (!X509_ALGOR_set0(alg.get(), OBJ_nid2obj(sig_nid), rsa ? V_ASN1_NULL : V_ASN1_UNDEF, nullptr)) {
    Die("X509_ALGOR_set0");
  }
  unsigned char* der = nullptr;
  const int len = i2d_X509_ALGOR(alg.get(), &der);
  certacl::OpenSslBytes holder(der);
  if (len <= 0) Die("i2d_X509_ALGOR");
  return std::string(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
}

std::string NameDer(const X509_NAME* name) {
  unsigned char* der = nullptr;
  const int len = i2d_X509_NAME(name, &der);
  certacl::OpenSslBytes holder(der);
  if (len <= 0) Die("i2d_X509_NAME");
  return std::string(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
}

std::string IdpDer(const IdpSpec& idp) {
  std::string content;
  if (!idp.distribution_point_uri.empty()) {
    // distributionPoint [0] { fullName [0] IMPLICIT GeneralNames { URI [6] } }
    content += Tlv(0xA0, Tlv(0xA0, Tlv(0x86, idp.distribution_point_uri)));
  }
  if (idp.only_user) content += std::string("\x81\x01\xFF", 3);
  if (idp.only_ca) content += std::string("\x82\x01\xFF", 3);
  if (idp.only_some_reasons) content += std::string("\x83\x02\x06\x40", 4);  // keyCompromise
  if (idp.indirect) content += std::string("\x84\x01\xFF", 3);
  if (idp.only_attr) content += std::string("\x85\x01\xFF", 3);
  return Tlv(0x30, content);
}

}  // namespace

std::string BuildCrlDer(const TestCa& ca, const CrlSpec& spec) { return BuildCrlDer(ca.cert.get(), ca.key.get(), spec); }

std::string BuildCrlDer(X509* issuer, EVP_PKEY* key, const CrlSpec& spec) {
  EVP_PKEY* signer = spec.sign_with != nullptr ? spec.sign_with : key;
  const EVP_MD* md = nullptr;
  if (!IsPure(signer)) {
    md = EVP_get_digestbyname(spec.digest.c_str());
    if (md == nullptr) Die("unknown digest " + spec.digest);
  }
  const std::string alg = spec.alg_der_override.empty() ? AlgorithmDer(signer, md) : spec.alg_der_override;

  std::string tbs;
  if (!spec.version_absent) tbs += std::string("\x02\x01\x01", 3);
  tbs += spec.inner_alg_der_override.empty() ? alg : spec.inner_alg_der_override;
  tbs += NameDer(spec.issuer_name != nullptr ? spec.issuer_name : X509_get_subject_name(issuer));
  tbs += Time(spec.this_update, spec.generalized_time);
  if (spec.next_update) tbs += Time(*spec.next_update, spec.generalized_time);

  if (!spec.serials.empty()) {
    const std::string date = Time(spec.revocation_date, spec.generalized_time);
    std::string entry_exts;
    if (spec.reason_code) {
      std::string enumerated = Tlv(0x0A, std::string(1, static_cast<char>(*spec.reason_code)));
      entry_exts += Ext("2.5.29.21", enumerated, false);
    }
    for (const CrlExtensionSpec& e : spec.entry_extensions) entry_exts += Ext(e.oid, e.der_value, e.critical);
    if (!entry_exts.empty()) entry_exts = Tlv(0x30, entry_exts);

    std::string entries;
    entries.reserve(spec.serials.size() * (spec.serials[0].size() + 8 + date.size() + entry_exts.size()));
    for (const std::string& serial : spec.serials) {
      std::string_view s = serial;
      const size_t int_header = s.size() < 0x80 ? 2 : s.size() < 0x100 ? 3 : 4;
      AppendHeader(&entries, 0x30, int_header + s.size() + date.size() + entry_exts.size());
      AppendHeader(&entries, 0x02, s.size());
      entries.append(s);
      entries.append(date);
      entries.append(entry_exts);
    }
    AppendHeader(&tbs, 0x30, entries.size());
    tbs.append(entries);
  } else if (spec.empty_revoked_list) {
    tbs += std::string("\x30\x00", 2);
  }

  std::string exts;
  if (spec.authority_key_id_override) {
    exts += Ext("2.5.29.35", Tlv(0x30, Tlv(0x80, *spec.authority_key_id_override)), false);
  } else if (spec.authority_key_id) {
    const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(issuer);
    if (ski != nullptr) {
      std::string_view id(reinterpret_cast<const char*>(ASN1_STRING_get0_data(ski)),
                          static_cast<size_t>(ASN1_STRING_length(ski)));
      exts += Ext("2.5.29.35", Tlv(0x30, Tlv(0x80, id)), false);
    }
  }
  if (spec.crl_number) exts += Ext("2.5.29.20", Tlv(0x02, *spec.crl_number), false);
  if (spec.delta_base) exts += Ext("2.5.29.27", Tlv(0x02, *spec.delta_base), true);
  if (spec.idp) exts += Ext("2.5.29.28", IdpDer(*spec.idp), true);
  for (const CrlExtensionSpec& e : spec.extensions) exts += Ext(e.oid, e.der_value, e.critical);
  if (!exts.empty()) tbs += Tlv(0xA0, Tlv(0x30, exts));

  std::string crl_content = Tlv(0x30, tbs);
  tbs.clear();
  tbs.shrink_to_fit();

  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, signer) != 1) Die("EVP_DigestSignInit");
  size_t sig_len = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &sig_len, Bytes(crl_content), crl_content.size()) != 1) {
    Die("EVP_DigestSign (size)");
  }
  std::string sig(sig_len + 1, '\0');  // leading 0 = unused bits
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data() + 1), &sig_len, Bytes(crl_content),
                     crl_content.size()) != 1) {
    Die("EVP_DigestSign");
  }
  sig.resize(sig_len + 1);
  if (spec.corrupt_signature) sig[sig.size() - 1] = static_cast<char>(sig[sig.size() - 1] ^ 0x01);

  crl_content += alg;
  crl_content += Tlv(0x03, sig);
  std::string out;
  out.reserve(crl_content.size() + 6);
  AppendHeader(&out, 0x30, crl_content.size());
  out.append(crl_content);
  return out;
}

std::string ToPemCrl(std::string_view der) {
  certacl::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) Die("out of memory");
  if (!PEM_write_bio(bio.get(), "X509 CRL", "", Bytes(der), static_cast<long>(der.size()))) Die("PEM_write_bio");
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

X509CrlPtr ParseCrlWithOpenSsl(std::string_view der) {
  const unsigned char* p = Bytes(der);
  X509CrlPtr crl(d2i_X509_CRL(nullptr, &p, static_cast<long>(der.size())));
  if (!crl) Die("d2i_X509_CRL rejected the CRL");
  return crl;
}

std::string SerialFromUint64(uint64_t v) {
  std::string out;
  do {
    out.insert(out.begin(), static_cast<char>(v & 0xFF));
    v >>= 8;
  } while (v != 0);
  if (static_cast<unsigned char>(out[0]) & 0x80) out.insert(out.begin(), '\0');
  return out;
}

std::vector<std::string> RandomSerials(size_t n, uint64_t seed, size_t length) {
  if (length == 0) Die("RandomSerials: length 0");
  uint64_t state = seed;
  auto next = [&state] {  // splitmix64
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  std::vector<std::string> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    std::string s(length, '\0');
    for (size_t j = 0; j < length; j += 8) {
      uint64_t r = next();
      for (size_t k = 0; k < 8 && j + k < length; ++k) s[j + k] = static_cast<char>((r >> (8 * k)) & 0xFF);
    }
    s[0] = static_cast<char>(1 + static_cast<unsigned char>(s[0]) % 0x7F);  // 0x01..0x7F
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace certacl::testing
