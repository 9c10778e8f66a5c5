// p256_verifier.cc: see p256_verifier.h.
//
// The two table APIs are deprecated in OpenSSL 3.0 (not removed); this file
// alone asks for them.
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "policy/p256_verifier.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/opensslconf.h>

#include <cstdint>
#include <cstring>
#include <string_view>

#include "policy/openssl_ptr.h"
#include "policy/sha256.h"

namespace certacl {
namespace {

using EcGroupPtr = OpenSslPtr<EC_GROUP, EC_GROUP_free>;
using EcPointPtr = OpenSslPtr<EC_POINT, EC_POINT_free>;
using BnCtxPtr = OpenSslPtr<BN_CTX, BN_CTX_free>;
using EcdsaSigPtr = OpenSslPtr<ECDSA_SIG, ECDSA_SIG_free>;

// ---------------------------------------------------------------------------
// Arithmetic modulo n, the order of P-256, for s^-1: BN_mod_inverse takes
// ~155,000 instructions on 256 bits, Fermat in Montgomery form with 64-bit
// limbs ~185,000; this binary inversion ~45,000.

using Limbs = std::array<uint64_t, 4>;  // least significant limb first

constexpr Limbs kOrder = {0xF3B9CAC2FC632551, 0xBCE6FAADA7179E84, 0xFFFFFFFFFFFFFFFF, 0xFFFFFFFF00000000};

// a - b into *out (mod 2^256); the borrow out (1 when a < b).
uint64_t Sub(const Limbs& a, const Limbs& b, Limbs* out) {
  uint64_t borrow = 0;
  for (int i = 0; i < 4; ++i) {
    const uint64_t d = a[i] - b[i];
    const uint64_t under = a[i] < b[i] ? 1 : 0;
    (*out)[i] = d - borrow;
    borrow = under | (d < borrow ? 1 : 0);
  }
  return borrow;
}

// a + b into *out (mod 2^256); the carry out.
uint64_t Add(const Limbs& a, const Limbs& b, Limbs* out) {
  uint64_t carry = 0;
  for (int i = 0; i < 4; ++i) {
    const uint64_t sum = a[i] + b[i];
    const uint64_t over = sum < a[i] ? 1 : 0;
    (*out)[i] = sum + carry;
    carry = over | ((*out)[i] < sum ? 1 : 0);
  }
  return carry;
}

bool Less(const Limbs& a, const Limbs& b) {
  for (int i = 3; i >= 0; --i) {
    if (a[i] != b[i]) return a[i] < b[i];
  }
  return false;
}

bool IsOne(const Limbs& a) { return a[0] == 1 && (a[1] | a[2] | a[3]) == 0; }
bool IsZero(const Limbs& a) { return (a[0] | a[1] | a[2] | a[3]) == 0; }

// a / 2, with `top` as bit 256.
void Halve(Limbs* a, uint64_t top) {
  for (int i = 0; i < 3; ++i) (*a)[i] = ((*a)[i] >> 1) | ((*a)[i + 1] << 63);
  (*a)[3] = ((*a)[3] >> 1) | (top << 63);
}

// x / 2 mod n, for x < n: (x + n) / 2 when x is odd (n is odd).
void HalveModOrder(Limbs* x) {
  const uint64_t carry = ((*x)[0] & 1) ? Add(*x, kOrder, x) : 0;
  Halve(x, carry);
}

// x - y mod n, for x, y < n.
void SubModOrder(Limbs* x, const Limbs& y) {
  if (Sub(*x, y, x) != 0) Add(*x, kOrder, x);
}

Limbs FromBigEndian(const std::array<uint8_t, 32>& b) {
  Limbs x{};
  for (int i = 0; i < 32; ++i) x[(31 - i) / 8] |= static_cast<uint64_t>(b[i]) << (8 * ((31 - i) % 8));
  return x;
}

std::array<uint8_t, 32> ToBigEndian(const Limbs& x) {
  std::array<uint8_t, 32> b{};
  for (int i = 0; i < 32; ++i) b[i] = static_cast<uint8_t>(x[(31 - i) / 8] >> (8 * ((31 - i) % 8)));
  return b;
}

// ---------------------------------------------------------------------------
// DER.

// The first TLV of `der` (a SEQUENCE, tag 0x30, definite length): its whole
// encoding, or empty if `der` does not start with one.
std::string_view FirstSequence(std::string_view der) {
  if (der.size() < 2 || static_cast<uint8_t>(der[0]) != 0x30) return {};
  size_t len = static_cast<uint8_t>(der[1]);
  size_t header = 2;
  if (len & 0x80) {
    const size_t bytes = len & 0x7f;
    if (bytes == 0 || bytes > 4 || der.size() < 2 + bytes) return {};
    len = 0;
    for (size_t i = 0; i < bytes; ++i) len = (len << 8) | static_cast<uint8_t>(der[2 + i]);
    header += bytes;
  }
  if (der.size() - header < len) return {};
  return der.substr(0, header + len);
}

// The tbsCertificate exactly as encoded: the first element of the
// Certificate SEQUENCE. OpenSSL keeps the received encoding of the
// tbsCertificate and i2d_X509 reuses it, as X509_verify does.
std::string_view TbsOf(std::string_view cert_der) {
  const std::string_view outer = FirstSequence(cert_der);
  if (outer.size() < 2) return {};
  const size_t header = (static_cast<uint8_t>(outer[1]) & 0x80) ? 2 + (static_cast<uint8_t>(outer[1]) & 0x7f) : 2;
  return FirstSequence(outer.substr(header));
}

// (r, s) from the signature BIT STRING, only if it is exactly the DER
// encoding of an ECDSA-Sig-Value (OpenSSL's ECDSA verify asks the same).
EcdsaSigPtr StrictSignature(const ASN1_BIT_STRING* sig) {
  const int length = ASN1_STRING_length(sig);
  const unsigned char* data = ASN1_STRING_get0_data(sig);
  if (length <= 0 || data == nullptr) return nullptr;
  const unsigned char* p = data;
  EcdsaSigPtr parsed(d2i_ECDSA_SIG(nullptr, &p, length));
  if (!parsed || p != data + length) return nullptr;
  unsigned char* again = nullptr;
  const int again_length = i2d_ECDSA_SIG(parsed.get(), &again);
  OpenSslBytes owned(again);
  if (again_length != length || std::memcmp(again, data, static_cast<size_t>(length)) != 0) return nullptr;
  return parsed;
}

bool InRange(const BIGNUM* x, const BIGNUM* order) {
  return !BN_is_negative(x) && !BN_is_zero(x) && BN_cmp(x, order) < 0;
}

}  // namespace

namespace p256_internal {

std::array<uint8_t, 32> InverseModOrder(const std::array<uint8_t, 32>& s) {
  // Binary extended Euclid on (s, n), keeping x1 s == u and x2 s == v
  // (mod n). gcd(s, n) = 1 for 0 < s < n (n is prime), so u or v reaches 1;
  // a zero (s = 0 or a multiple of n) ends it with 0.
  Limbs u = FromBigEndian(s);
  Limbs v = kOrder;
  Limbs x1 = {1, 0, 0, 0};
  Limbs x2 = {0, 0, 0, 0};
  if (!Less(u, kOrder)) Sub(u, kOrder, &u);  // s < 2^256 < 2n
  while (!IsOne(u) && !IsOne(v)) {
    if (IsZero(u) || IsZero(v)) return {};
    while ((u[0] & 1) == 0) {
      Halve(&u, 0);
      HalveModOrder(&x1);
    }
    while ((v[0] & 1) == 0) {
      Halve(&v, 0);
      HalveModOrder(&x2);
    }
    if (!Less(u, v)) {
      Sub(u, v, &u);
      SubModOrder(&x1, x2);
    } else {
      Sub(v, u, &v);
      SubModOrder(&x2, x1);
    }
  }
  return ToBigEndian(IsOne(u) ? x1 : x2);
}

}  // namespace p256_internal

struct P256Verifier::State {
  EcGroupPtr curve;      // P-256, generator G (OpenSSL's built-in table)
  EcGroupPtr key_group;  // P-256 with the key Q as generator, and Q's table
};

P256Verifier::P256Verifier(std::unique_ptr<State> s) : s_(std::move(s)) {}
P256Verifier::~P256Verifier() = default;

#if defined(OPENSSL_NO_DEPRECATED_3_0) || defined(OPENSSL_NO_EC)

bool P256Verifier::Supports(EVP_PKEY*) { return false; }
std::unique_ptr<P256Verifier> P256Verifier::Create(EVP_PKEY*) { return nullptr; }
bool P256Verifier::Verify(X509*) const { return false; }

#else

bool P256Verifier::Supports(EVP_PKEY* key) {
  if (key == nullptr || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return false;
  char group_name[80] = {};
  size_t name_length = 0;
  const bool p256 = EVP_PKEY_get_group_name(key, group_name, sizeof group_name, &name_length) == 1 &&
                    OBJ_txt2nid(group_name) == NID_X9_62_prime256v1;
  ERR_clear_error();
  return p256;
}

std::unique_ptr<P256Verifier> P256Verifier::Create(EVP_PKEY* key) {
  if (!Supports(key)) return nullptr;
  auto s = std::make_unique<State>();
  BnCtxPtr ctx(BN_CTX_new());
  unsigned char encoded[133];
  size_t encoded_length = 0;
  s->curve.reset(EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1));
  s->key_group.reset(EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1));
  if (!ctx || !s->curve || !s->key_group ||
      EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, encoded, sizeof encoded, &encoded_length) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  EcPointPtr q(EC_POINT_new(s->curve.get()));
  EcPointPtr check(EC_POINT_new(s->curve.get()));
  EcPointPtr expected(EC_POINT_new(s->curve.get()));
  BignumPtr two(BN_new());
  const bool ok =
      q && check && expected && two && BN_set_word(two.get(), 2) == 1 &&
      EC_POINT_oct2point(s->curve.get(), q.get(), encoded, encoded_length, ctx.get()) == 1 &&
      EC_POINT_is_at_infinity(s->curve.get(), q.get()) == 0 &&
      EC_POINT_is_on_curve(s->curve.get(), q.get(), ctx.get()) == 1 &&
      EC_GROUP_set_generator(s->key_group.get(), q.get(), EC_GROUP_get0_order(s->curve.get()),
                             EC_GROUP_get0_cofactor(s->curve.get())) == 1 &&
      EC_GROUP_precompute_mult(s->key_group.get(), ctx.get()) == 1 &&
      // The table gives what the variable-point path gives: 2Q both ways.
      EC_POINT_mul(s->key_group.get(), check.get(), two.get(), nullptr, nullptr, ctx.get()) == 1 &&
      EC_POINT_mul(s->curve.get(), expected.get(), nullptr, q.get(), two.get(), ctx.get()) == 1 &&
      EC_POINT_cmp(s->curve.get(), check.get(), expected.get(), ctx.get()) == 0;
  if (!ok) {
    ERR_clear_error();
    return nullptr;
  }
  return std::unique_ptr<P256Verifier>(new P256Verifier(std::move(s)));
}

bool P256Verifier::Verify(X509* cert) const {
  if (cert == nullptr) return false;
  // 1. ecdsa-with-SHA256, no parameters, the same inside and outside.
  const ASN1_BIT_STRING* sig = nullptr;
  const X509_ALGOR* outer = nullptr;
  X509_get0_signature(&sig, &outer, cert);
  const X509_ALGOR* inner = X509_get0_tbs_sigalg(cert);
  if (sig == nullptr || outer == nullptr || inner == nullptr || X509_ALGOR_cmp(outer, inner) != 0) return false;
  const ASN1_OBJECT* oid = nullptr;
  int parameter_type = 0;
  const void* parameter = nullptr;
  X509_ALGOR_get0(&oid, &parameter_type, &parameter, outer);
  if (OBJ_obj2nid(oid) != NID_ecdsa_with_SHA256 || parameter_type != V_ASN1_UNDEF) return false;
  if ((sig->flags & 0x07) != 0) return false;  // unused bits: X509_verify refuses these

  ERR_set_mark();
  const bool valid = [&] {
    // 2. (r, s), exactly DER, each in [1, n-1].
    const EcdsaSigPtr rs = StrictSignature(sig);
    if (!rs) return false;
    const BIGNUM* r = ECDSA_SIG_get0_r(rs.get());
    const BIGNUM* s = ECDSA_SIG_get0_s(rs.get());
    const BIGNUM* order = EC_GROUP_get0_order(s_->curve.get());
    if (!InRange(r, order) || !InRange(s, order)) return false;

    // 3. e: SHA-256 of the tbsCertificate (256 bits: nothing to truncate).
    unsigned char* der = nullptr;
    const int der_length = i2d_X509(cert, &der);
    const OpenSslBytes der_owned(der);
    if (der_length <= 0) return false;
    const std::string_view tbs =
        TbsOf(std::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(der_length)));
    std::array<unsigned char, 32> digest{};
    if (tbs.empty() || !Sha256(tbs, &digest)) return false;

    // 4. w = s^-1, u1 = e w, u2 = r w (mod n).
    std::array<uint8_t, 32> s_bytes{};
    if (BN_bn2binpad(s, s_bytes.data(), 32) != 32) return false;
    const std::array<uint8_t, 32> w_bytes = p256_internal::InverseModOrder(s_bytes);
    BnCtxPtr ctx(BN_CTX_new());
    if (!ctx) return false;
    BN_CTX_start(ctx.get());
    struct End {
      BN_CTX* c;
      ~End() { BN_CTX_end(c); }
    } end{ctx.get()};
    BIGNUM* e = BN_CTX_get(ctx.get());
    BIGNUM* w = BN_CTX_get(ctx.get());
    BIGNUM* u1 = BN_CTX_get(ctx.get());
    BIGNUM* u2 = BN_CTX_get(ctx.get());
    BIGNUM* x = BN_CTX_get(ctx.get());
    BIGNUM* y = BN_CTX_get(ctx.get());
    BIGNUM* z = BN_CTX_get(ctx.get());
    BIGNUM* zz = BN_CTX_get(ctx.get());
    BIGNUM* want = BN_CTX_get(ctx.get());
    if (want == nullptr) return false;  // BN_CTX_get fails from then on: the last is null
    if (BN_bin2bn(digest.data(), 32, e) == nullptr || BN_bin2bn(w_bytes.data(), 32, w) == nullptr ||
        BN_mod_mul(u1, e, w, order, ctx.get()) != 1 || BN_mod_mul(u2, r, w, order, ctx.get()) != 1) {
      return false;
    }

    // 5. R = u1 G + u2 Q, each from its table.
    EcPointPtr point(EC_POINT_new(s_->curve.get()));
    EcPointPtr key_part(EC_POINT_new(s_->key_group.get()));
    if (!point || !key_part || EC_POINT_mul(s_->curve.get(), point.get(), u1, nullptr, nullptr, ctx.get()) != 1 ||
        EC_POINT_mul(s_->key_group.get(), key_part.get(), u2, nullptr, nullptr, ctx.get()) != 1 ||
        EC_POINT_add(s_->curve.get(), point.get(), point.get(), key_part.get(), ctx.get()) != 1 ||
        EC_POINT_is_at_infinity(s_->curve.get(), point.get()) != 0) {
      return false;
    }

    // 6. R's affine x, X / Z^2, is r: compared as X == r Z^2 (mod p),
    // without the inversion. Z is reduced first, and zero (the point at
    // infinity) is refused, or any X == 0 would pass. (An x of r + n, which
    // X509_verify also accepts, is left to it: a chance of ~2^-128.)
    const BIGNUM* p = EC_GROUP_get0_field(s_->curve.get());
    return EC_POINT_get_Jprojective_coordinates_GFp(s_->curve.get(), point.get(), x, y, z, ctx.get()) == 1 &&
           BN_nnmod(x, x, p, ctx.get()) == 1 && BN_nnmod(z, z, p, ctx.get()) == 1 && !BN_is_zero(z) &&
           BN_mod_sqr(zz, z, p, ctx.get()) == 1 && BN_mod_mul(want, r, zz, p, ctx.get()) == 1 &&
           BN_cmp(want, x) == 0;
  }();
  ERR_pop_to_mark();
  return valid;
}

#endif

}  // namespace certacl
