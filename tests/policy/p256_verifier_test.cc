// p256_verifier_test.cc: P256Verifier against X509_verify. The contract is
// one-sided (a yes only where X509_verify says yes), so every case asserts
// that implication, and the exact answer where the verifier must read the
// signature itself: valid signatures, high s, and each malformed (r, s).
#include "policy/p256_verifier.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <array>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tests/testing/cert_builder.h"

namespace {

namespace ct = certacl::testing;
using certacl::BignumPtr;
using certacl::P256Verifier;
using certacl::X509Ptr;

using SigPtr = certacl::OpenSslPtr<ECDSA_SIG, ECDSA_SIG_free>;
using Bytes = std::array<uint8_t, 32>;

// The P-256 group order n.
BignumPtr Order() {
  BIGNUM* n = nullptr;
  BN_hex2bn(&n, "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551");
  return BignumPtr(n);
}

Bytes ToBytes(const BIGNUM* x) {
  Bytes b{};
  EXPECT_EQ(BN_bn2binpad(x, b.data(), 32), 32);
  return b;
}

bool X509Says(X509* cert, EVP_PKEY* key) {
  const bool yes = X509_verify(cert, key) == 1;
  ERR_clear_error();
  return yes;
}

// A copy of `cert` with its signature value replaced by `content` (the BIT
// STRING's bytes), through DER so the copy is an ordinary parsed certificate.
X509Ptr WithSignature(X509* cert, const std::string& content) {
  X509Ptr copy(X509_dup(cert));
  const ASN1_BIT_STRING* sig = nullptr;
  const X509_ALGOR* alg = nullptr;
  X509_get0_signature(&sig, &alg, copy.get());
  auto* writable = const_cast<ASN1_BIT_STRING*>(sig);
  EXPECT_EQ(ASN1_BIT_STRING_set(writable, reinterpret_cast<unsigned char*>(const_cast<char*>(content.data())),
                                static_cast<int>(content.size())),
            1);
  writable->flags = (writable->flags & ~0x07L) | ASN1_STRING_FLAG_BITS_LEFT;
  const std::string der = ct::ToDer(copy.get());
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  return X509Ptr(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

// DER SEQUENCE { INTEGER r, INTEGER s } for any r and s, zero and negative
// included (i2d_ECDSA_SIG refuses some of those).
std::string Encode(const BIGNUM* r, const BIGNUM* s) {
  std::string body;
  for (const BIGNUM* v : {r, s}) {
    certacl::IntegerPtr integer(BN_to_ASN1_INTEGER(v, nullptr));
    unsigned char* der = nullptr;
    const int n = i2d_ASN1_INTEGER(integer.get(), &der);
    EXPECT_GT(n, 0);
    body.append(reinterpret_cast<char*>(der), static_cast<size_t>(n));
    OPENSSL_free(der);
  }
  return ct::DerTlv(0x30, body);
}

// (r, s) of a certificate's signature.
std::pair<BignumPtr, BignumPtr> RsOf(X509* cert) {
  const ASN1_BIT_STRING* sig = nullptr;
  const X509_ALGOR* alg = nullptr;
  X509_get0_signature(&sig, &alg, cert);
  const unsigned char* p = sig->data;
  SigPtr parsed(d2i_ECDSA_SIG(nullptr, &p, sig->length));
  return {BignumPtr(BN_dup(ECDSA_SIG_get0_r(parsed.get()))), BignumPtr(BN_dup(ECDSA_SIG_get0_s(parsed.get())))};
}

class P256VerifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = ct::TestCa::Create("Acme Issuing CA");
    other_ = ct::TestCa::Create("Other CA");
    verifier_ = P256Verifier::Create(ca_.key.get());
    ASSERT_NE(verifier_, nullptr);
  }
  X509Ptr Device(int i) {
    return ca_.Issue().Subject("O", "Acme").Subject("CN", "d-" + std::to_string(i)).Build();
  }
  EVP_PKEY* ca_key() { return X509_get0_pubkey(ca_.cert.get()); }

  ct::TestCa ca_;
  ct::TestCa other_;
  std::unique_ptr<P256Verifier> verifier_;
};

TEST(P256Inverse, MatchesBnModInverse) {
  const BignumPtr n = Order();
  BignumPtr s(BN_new());
  BignumPtr want(BN_new());
  certacl::OpenSslPtr<BN_CTX, BN_CTX_free> ctx(BN_CTX_new());
  std::vector<BignumPtr> cases;
  // Powers of 2 and their neighbours: trailing zeros across whole limbs.
  for (const char* hex : {"1", "2", "3", "FFFFFFFF", "100000000000000000000000000000001",
                          "8000000000000000000000000000000000000000000000000000000000000000",
                          "10000000000000000", "8000000000000000", "20000000000000000000000000000000",
                          "1000000000000000000000000000000000000000000000000",
                          "4000000000000000000000000000000000000000000000000000000000000000",
                          "4000000000000000000000000000000000000000000000000000000000000001",
                          "FFFFFFFFFFFFFFFF0000000000000000"}) {
    BIGNUM* v = nullptr;
    BN_hex2bn(&v, hex);
    cases.emplace_back(v);
  }
  for (int k : {1, 2, 3}) {
    BignumPtr v(BN_dup(n.get()));
    BN_sub_word(v.get(), static_cast<BN_ULONG>(k));
    cases.push_back(std::move(v));
  }
  for (int i = 0; i < 3000; ++i) {
    BignumPtr v(BN_new());
    ASSERT_EQ(BN_rand_range(v.get(), n.get()), 1);
    if (BN_is_zero(v.get())) continue;
    cases.push_back(std::move(v));
  }
  for (const BignumPtr& v : cases) {
    ASSERT_NE(BN_mod_inverse(want.get(), v.get(), n.get(), ctx.get()), nullptr);
    EXPECT_EQ(certacl::p256_internal::InverseModOrder(ToBytes(v.get())), ToBytes(want.get()))
        << BN_bn2hex(v.get());
  }
  // No inverse: 0 for 0 and n; above n, that of s - n.
  EXPECT_EQ(certacl::p256_internal::InverseModOrder(Bytes{}), Bytes{});
  EXPECT_EQ(certacl::p256_internal::InverseModOrder(ToBytes(n.get())), Bytes{});
  BignumPtr above(BN_dup(n.get()));
  BN_add_word(above.get(), 5);
  BignumPtr five(BN_new());
  BN_set_word(five.get(), 5);
  ASSERT_NE(BN_mod_inverse(want.get(), five.get(), n.get(), ctx.get()), nullptr);
  EXPECT_EQ(certacl::p256_internal::InverseModOrder(ToBytes(above.get())), ToBytes(want.get()));
}

// The field's Montgomery product, a·b·2^-256 mod p, against BN: the
// generic product always, and the mulx/adx one where this build and CPU
// have it (which Verify then uses). Limbs drawn from values that stress the
// carries (all ones, p's own limbs, 2^63, 0, 1), p - 1 and its neighbours,
// and random values below p.
TEST(P256Field, ProductsMatchBn) {
  using Limbs = std::array<uint64_t, 4>;
  certacl::OpenSslPtr<BN_CTX, BN_CTX_free> ctx(BN_CTX_new());
  BIGNUM* raw = nullptr;
  ASSERT_GT(BN_hex2bn(&raw, "FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF"), 0);
  const BignumPtr p(raw);
  BignumPtr r_inverse(BN_new());
  BN_set_bit(r_inverse.get(), 256);
  ASSERT_NE(BN_mod_inverse(r_inverse.get(), r_inverse.get(), p.get(), ctx.get()), nullptr);
  auto to_bn = [](const Limbs& x) {
    Bytes b{};
    for (int i = 0; i < 32; ++i) b[31 - i] = static_cast<uint8_t>(x[i / 8] >> (8 * (i % 8)));
    return BignumPtr(BN_bin2bn(b.data(), 32, nullptr));
  };
  auto to_limbs = [](const BIGNUM* v) {
    const Bytes b = ToBytes(v);
    Limbs x{};
    for (int i = 0; i < 32; ++i) x[i / 8] |= static_cast<uint64_t>(b[31 - i]) << (8 * (i % 8));
    return x;
  };
  std::vector<Limbs> values;
  const uint64_t alphabet[] = {0, 1, 2, ~0ULL, ~0ULL - 1, 0xFFFFFFFF00000001, 0x00000000FFFFFFFF,
                               0xFFFFFFFF00000000, 0x8000000000000000, 0x7FFFFFFFFFFFFFFF};
  std::mt19937_64 rng(20261128);
  for (int i = 0; i < 400; ++i) {
    Limbs x{};
    for (uint64_t& limb : x) limb = alphabet[rng() % (sizeof alphabet / sizeof alphabet[0])];
    values.push_back(x);
  }
  for (uint64_t k = 1; k <= 4; ++k) {
    BignumPtr v(BN_dup(p.get()));
    BN_sub_word(v.get(), k);
    values.push_back(to_limbs(v.get()));
  }
  for (int i = 0; i < 400; ++i) {
    BignumPtr v(BN_new());
    ASSERT_EQ(BN_rand_range(v.get(), p.get()), 1);
    values.push_back(to_limbs(v.get()));
  }
  // Below p, as the product's contract asks (those from the alphabet may not be).
  for (Limbs& x : values) {
    BignumPtr v = to_bn(x);
    ASSERT_EQ(BN_nnmod(v.get(), v.get(), p.get(), ctx.get()), 1);
    x = to_limbs(v.get());
  }
  const bool has_mulx_adx = certacl::p256_internal::FieldProduct(values[0], values[0], true).has_value();
  BignumPtr want(BN_new());
  int checked = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    for (size_t j = i; j < values.size(); j += 1 + (i + j) % 7) {
      const BignumPtr a = to_bn(values[i]);
      const BignumPtr b = to_bn(values[j]);
      ASSERT_EQ(BN_mod_mul(want.get(), a.get(), b.get(), p.get(), ctx.get()), 1);
      ASSERT_EQ(BN_mod_mul(want.get(), want.get(), r_inverse.get(), p.get(), ctx.get()), 1);
      const Limbs expected = to_limbs(want.get());
      ASSERT_EQ(certacl::p256_internal::FieldProduct(values[i], values[j], false), expected) << i << " " << j;
      if (has_mulx_adx) {
        ASSERT_EQ(certacl::p256_internal::FieldProduct(values[i], values[j], true), expected) << i << " " << j;
        ASSERT_EQ(certacl::p256_internal::FieldProduct(values[j], values[i], true), expected) << j << " " << i;
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 50000);
  if (!has_mulx_adx) std::printf("[ note ] no mulx/adx product in this build or CPU: the generic one only\n");
}

// k·G from the verifier's table of G against OpenSSL's EC_POINT_mul: the
// edges of the signed 7-bit digits (every window 64, 65, 127, 63; carries
// through every row), 0, n and its neighbours, 2^256 - 1, and random k.
TEST(P256Generator, TimesGeneratorMatchesOpenSsl) {
  certacl::OpenSslPtr<EC_GROUP, EC_GROUP_free> group(EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1));
  certacl::OpenSslPtr<BN_CTX, BN_CTX_free> ctx(BN_CTX_new());
  ASSERT_TRUE(group && ctx);
  const BignumPtr n = Order();
  std::vector<BignumPtr> cases;
  for (const char* hex : {"0", "1", "2", "3", "3F", "40", "41", "7F", "80", "81", "FF", "2000", "1FFF",
                          "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
                          "8000000000000000000000000000000000000000000000000000000000000000",
                          "F000000000000000000000000000000000000000000000000000000000000000"}) {
    BIGNUM* v = nullptr;
    ASSERT_GT(BN_hex2bn(&v, hex), 0);
    cases.emplace_back(v);
  }
  for (int window : {63, 64, 65, 127}) {  // the same 7-bit window in every row
    BignumPtr v(BN_new());
    BN_zero(v.get());
    for (int row = 0; row < 37; ++row) {
      BignumPtr part(BN_new());
      BN_set_word(part.get(), static_cast<BN_ULONG>(window));
      BN_lshift(part.get(), part.get(), 7 * row);
      BN_add(v.get(), v.get(), part.get());
    }
    BN_mask_bits(v.get(), 256);
    cases.push_back(std::move(v));
  }
  for (int k : {-2, -1, 0, 1, 2}) {
    BignumPtr v(BN_dup(n.get()));
    if (k < 0) BN_sub_word(v.get(), static_cast<BN_ULONG>(-k));
    if (k > 0) BN_add_word(v.get(), static_cast<BN_ULONG>(k));
    cases.push_back(std::move(v));
  }
  for (int i = 0; i < 300; ++i) {
    BignumPtr v(BN_new());
    ASSERT_EQ(BN_rand(v.get(), 256, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY), 1);
    cases.push_back(std::move(v));
  }
  certacl::OpenSslPtr<EC_POINT, EC_POINT_free> point(EC_POINT_new(group.get()));
  BignumPtr x(BN_new());
  BignumPtr y(BN_new());
  for (const BignumPtr& k : cases) {
    ASSERT_EQ(EC_POINT_mul(group.get(), point.get(), k.get(), nullptr, nullptr, ctx.get()), 1);
    const std::optional<std::array<uint8_t, 64>> got = certacl::p256_internal::TimesGenerator(ToBytes(k.get()));
    if (EC_POINT_is_at_infinity(group.get(), point.get()) == 1) {
      EXPECT_FALSE(got.has_value()) << BN_bn2hex(k.get());
      continue;
    }
    ASSERT_EQ(EC_POINT_get_affine_coordinates(group.get(), point.get(), x.get(), y.get(), ctx.get()), 1);
    std::array<uint8_t, 64> want{};
    ASSERT_EQ(BN_bn2binpad(x.get(), want.data(), 32), 32);
    ASSERT_EQ(BN_bn2binpad(y.get(), want.data() + 32, 32), 32);
    ASSERT_TRUE(got.has_value()) << BN_bn2hex(k.get());
    EXPECT_EQ(*got, want) << BN_bn2hex(k.get());
  }
}

TEST_F(P256VerifierTest, ValidSignaturesAreYesAsWithX509Verify) {
  for (int i = 0; i < 150; ++i) {  // 150 certificates: 150 random nonces, so 150 values of s
    X509Ptr cert = Device(i);
    EXPECT_TRUE(X509Says(cert.get(), ca_key()));
    EXPECT_TRUE(verifier_->Verify(cert.get())) << i;
  }
}

TEST_F(P256VerifierTest, AnotherKeysSignatureIsNo) {
  X509Ptr theirs = other_.Issue().Subject("CN", "d-1").Build();
  // The same issuer name and key identifier as ours, another key's signature.
  const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(ca_.cert.get());
  ASSERT_NE(ski, nullptr);
  const std::string ski_bytes(reinterpret_cast<const char*>(ASN1_STRING_get0_data(ski)),
                              static_cast<size_t>(ASN1_STRING_length(ski)));
  X509Ptr forged = other_.Issue()
                       .IssuerName(X509_get_subject_name(ca_.cert.get()))
                       .AuthorityKeyId(ski_bytes)
                       .Subject("CN", "d-1")
                       .Build();
  for (X509* cert : {theirs.get(), forged.get()}) {
    EXPECT_FALSE(X509Says(cert, ca_key()));
    EXPECT_FALSE(verifier_->Verify(cert));
  }
  // And ours, under a verifier of their key.
  std::unique_ptr<P256Verifier> theirs_verifier = P256Verifier::Create(other_.key.get());
  ASSERT_NE(theirs_verifier, nullptr);
  X509Ptr ours = Device(1);
  EXPECT_FALSE(theirs_verifier->Verify(ours.get()));
  EXPECT_TRUE(theirs_verifier->Verify(theirs.get()));
}

TEST_F(P256VerifierTest, HighSIsYesAsWithX509Verify) {
  // ECDSA accepts (r, n - s) as well as (r, s); OpenSSL does too.
  const BignumPtr n = Order();
  for (int i = 0; i < 20; ++i) {
    X509Ptr cert = Device(i);
    auto [r, s] = RsOf(cert.get());
    BignumPtr high(BN_new());
    ASSERT_EQ(BN_sub(high.get(), n.get(), s.get()), 1);
    X509Ptr flipped = WithSignature(cert.get(), Encode(r.get(), high.get()));
    ASSERT_NE(flipped, nullptr);
    EXPECT_TRUE(X509Says(flipped.get(), ca_key()));
    EXPECT_TRUE(verifier_->Verify(flipped.get()));
  }
}

TEST_F(P256VerifierTest, OutOfRangeOrLooseSignaturesAreNo) {
  X509Ptr cert = Device(7);
  auto [r, s] = RsOf(cert.get());
  const BignumPtr n = Order();
  BignumPtr zero(BN_new());
  BN_zero(zero.get());
  BignumPtr r_plus_n(BN_new());
  BN_add(r_plus_n.get(), r.get(), n.get());
  BignumPtr s_plus_n(BN_new());
  BN_add(s_plus_n.get(), s.get(), n.get());
  BignumPtr minus_r(BN_dup(r.get()));
  BN_set_negative(minus_r.get(), 1);
  const std::string good = Encode(r.get(), s.get());
  // The same (r, s) with a needless leading zero in r's INTEGER.
  std::string padded = good;
  {
    const size_t r_length = static_cast<uint8_t>(padded[3]);
    padded.insert(4, 1, '\0');
    padded[3] = static_cast<char>(r_length + 1);
    padded[1] = static_cast<char>(static_cast<uint8_t>(padded[1]) + 1);
  }
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"r = 0", Encode(zero.get(), s.get())},
      {"s = 0", Encode(r.get(), zero.get())},
      {"r = n", Encode(n.get(), s.get())},
      {"s = n", Encode(r.get(), n.get())},
      {"r + n", Encode(r_plus_n.get(), s.get())},
      {"s + n", Encode(s.get(), s_plus_n.get())},
      {"-r", Encode(minus_r.get(), s.get())},
      {"non-minimal INTEGER", padded},
      {"trailing byte", good + std::string(1, '\0')},
      {"truncated", good.substr(0, good.size() - 1)},
      {"empty", std::string()},
      {"r and s swapped", Encode(s.get(), r.get())},
  };
  for (const auto& [name, content] : cases) {
    X509Ptr bad = WithSignature(cert.get(), content);
    ASSERT_NE(bad, nullptr) << name;
    EXPECT_FALSE(X509Says(bad.get(), ca_key())) << name;
    EXPECT_FALSE(verifier_->Verify(bad.get())) << name;
  }
  // The control: the same route with the original bytes is a yes.
  X509Ptr same = WithSignature(cert.get(), good);
  ASSERT_NE(same, nullptr);
  EXPECT_TRUE(verifier_->Verify(same.get()));
}

TEST_F(P256VerifierTest, ASignatureLeadingToThePointAtInfinityIsNo) {
  // With the CA's private key d, r = -e / d (mod n) makes u1 G + u2 Q =
  // (e + r d) w G the point at infinity, whatever s is.
  X509Ptr cert = Device(3);
  BIGNUM* d_raw = nullptr;
  ASSERT_EQ(EVP_PKEY_get_bn_param(ca_.key.get(), OSSL_PKEY_PARAM_PRIV_KEY, &d_raw), 1);
  BignumPtr d(d_raw);
  unsigned char* tbs = nullptr;
  const int tbs_length = i2d_re_X509_tbs(cert.get(), &tbs);
  ASSERT_GT(tbs_length, 0);
  unsigned char digest[32];
  ASSERT_EQ(EVP_Digest(tbs, static_cast<size_t>(tbs_length), digest, nullptr, EVP_sha256(), nullptr), 1);
  OPENSSL_free(tbs);
  const BignumPtr n = Order();
  certacl::OpenSslPtr<BN_CTX, BN_CTX_free> ctx(BN_CTX_new());
  BignumPtr e(BN_bin2bn(digest, 32, nullptr));
  BignumPtr r(BN_new());
  ASSERT_NE(BN_mod_inverse(r.get(), d.get(), n.get(), ctx.get()), nullptr);
  ASSERT_EQ(BN_mod_mul(r.get(), r.get(), e.get(), n.get(), ctx.get()), 1);
  ASSERT_EQ(BN_sub(r.get(), n.get(), r.get()), 1);  // -e/d
  auto [unused_r, s] = RsOf(cert.get());
  X509Ptr bad = WithSignature(cert.get(), Encode(r.get(), s.get()));
  ASSERT_NE(bad, nullptr);
  EXPECT_FALSE(X509Says(bad.get(), ca_key()));
  EXPECT_FALSE(verifier_->Verify(bad.get()));
}

TEST_F(P256VerifierTest, EveryFlippedByteIsNoUnlessX509VerifySaysYes) {
  for (int i = 0; i < 3; ++i) {
    X509Ptr cert = Device(100 + i);
    ASSERT_TRUE(verifier_->Verify(cert.get()));
    const std::string der = ct::ToDer(cert.get());
    int parsed = 0;
    for (size_t at = 0; at < der.size(); ++at) {
      std::string changed = der;
      changed[at] = static_cast<char>(changed[at] ^ (at % 2 ? 0x01 : 0x80));
      const unsigned char* p = reinterpret_cast<const unsigned char*>(changed.data());
      X509Ptr mutated(d2i_X509(nullptr, &p, static_cast<long>(changed.size())));
      ERR_clear_error();
      if (!mutated) continue;
      ++parsed;
      const bool x509 = X509Says(mutated.get(), ca_key());
      const bool fast = verifier_->Verify(mutated.get());
      EXPECT_FALSE(fast && !x509) << "byte " << at;
      EXPECT_FALSE(fast) << "byte " << at;  // any change to signed bytes or signature voids it
    }
    EXPECT_GT(parsed, static_cast<int>(der.size()) / 2);
  }
}

// Random mutations, 0 to 3 bytes each (a quarter of the copies left
// intact), half of them in the certificate's last 80 bytes (the
// signature), over 3,000 copies of 20 certificates; a fixed seed, so a
// failure repeats. The verifier says yes exactly where X509_verify does.
TEST_F(P256VerifierTest, RandomMutationsAreYesExactlyWhereX509VerifySaysYes) {
  std::vector<std::string> ders;
  for (int i = 0; i < 20; ++i) ders.push_back(ct::ToDer(Device(i).get()));
  std::mt19937_64 rng(20261128);
  int parsed = 0;
  int yes = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string der = ders[rng() % ders.size()];
    const int mutations = static_cast<int>(rng() % 4);
    for (int k = 0; k < mutations; ++k) {
      const size_t at = (rng() % 2) ? der.size() - 1 - rng() % 80 : rng() % der.size();
      der[at] = static_cast<char>(rng() & 0xff);
    }
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
    X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    ERR_clear_error();
    if (!cert) continue;
    ++parsed;
    const bool x509 = X509Says(cert.get(), ca_key());
    EXPECT_EQ(verifier_->Verify(cert.get()), x509) << "mutation " << i;
    yes += x509 ? 1 : 0;
  }
  EXPECT_GT(parsed, 1500);
  EXPECT_GT(yes, 500);
}

TEST_F(P256VerifierTest, WhatItDoesNotReadIsLeftToX509Verify) {
  // ecdsa-with-SHA384: valid, and not this verifier's to say.
  X509Ptr sha384 = Device(1);
  ASSERT_GT(X509_sign(sha384.get(), ca_.key.get(), EVP_sha384()), 0);
  EXPECT_TRUE(X509Says(sha384.get(), ca_key()));
  EXPECT_FALSE(verifier_->Verify(sha384.get()));

  // Unused bits in the signature BIT STRING.
  X509Ptr bits(X509_dup(Device(2).get()));
  const ASN1_BIT_STRING* sig = nullptr;
  const X509_ALGOR* alg = nullptr;
  X509_get0_signature(&sig, &alg, bits.get());
  const_cast<ASN1_BIT_STRING*>(sig)->flags = ASN1_STRING_FLAG_BITS_LEFT | 1;
  EXPECT_FALSE(verifier_->Verify(bits.get()));

  // An outer algorithm with a NULL parameter: no longer the inner one.
  X509Ptr params(X509_dup(Device(3).get()));
  X509_get0_signature(&sig, &alg, params.get());
  ASSERT_EQ(X509_ALGOR_set0(const_cast<X509_ALGOR*>(alg), OBJ_nid2obj(NID_ecdsa_with_SHA256), V_ASN1_NULL, nullptr),
            1);
  EXPECT_FALSE(X509Says(params.get(), ca_key()));
  EXPECT_FALSE(verifier_->Verify(params.get()));

  EXPECT_FALSE(verifier_->Verify(nullptr));
}

TEST_F(P256VerifierTest, LeavesTheErrorQueueAsItFoundIt) {
  ERR_clear_error();
  X509Ptr bad = WithSignature(Device(1).get(), std::string("\x30\x02\x02\x00", 4));
  ERR_clear_error();
  EXPECT_FALSE(verifier_->Verify(bad.get()));
  EXPECT_EQ(ERR_peek_error(), 0UL);
}

TEST(P256VerifierCreate, OnlyForP256Keys) {
  EXPECT_NE(P256Verifier::Create(ct::CachedKey(ct::KeyType::kEcP256).get()), nullptr);
  EXPECT_TRUE(P256Verifier::Supports(ct::CachedKey(ct::KeyType::kEcP256).get()));
  for (ct::KeyType type : {ct::KeyType::kEcP384, ct::KeyType::kEcP521, ct::KeyType::kRsa2048,
                           ct::KeyType::kEd25519}) {
    EXPECT_EQ(P256Verifier::Create(ct::CachedKey(type).get()), nullptr) << static_cast<int>(type);
    EXPECT_FALSE(P256Verifier::Supports(ct::CachedKey(type).get())) << static_cast<int>(type);
  }
  EXPECT_FALSE(P256Verifier::Supports(nullptr));
  EXPECT_EQ(P256Verifier::Create(nullptr), nullptr);
  EXPECT_EQ(ERR_peek_error(), 0UL);
}

}  // namespace
