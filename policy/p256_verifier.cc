// p256_verifier.cc: see p256_verifier.h.
//
// Layout: 256-bit limb helpers; Montgomery arithmetic modulo p (the field)
// and n (the group order); points; the tables; DER; the verifier.
#include "policy/p256_verifier.h"

// x86-64 builds use the carry intrinsics; CERTACL_PORTABLE_ARITHMETIC
// forces the portable forms (what other architectures run), so that the
// tests can hold those to the same answers (p256_portable_tests).
#if defined(__x86_64__) && !defined(CERTACL_PORTABLE_ARITHMETIC)
#define CERTACL_CARRY_INTRINSICS 1
#include <cpuid.h>
#include <x86intrin.h>
#endif

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>

#include <algorithm>
#include <type_traits>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "policy/openssl_ptr.h"
#include "policy/sha256.h"

namespace certacl {
namespace {

__extension__ typedef unsigned __int128 Wide;

// ---------------------------------------------------------------------------
// 256-bit integers as four 64-bit limbs, least significant first.

using Limbs = std::array<uint64_t, 4>;

// x + y + carry_in into *out, and x - y - borrow_in; the carry or borrow
// out. On x86-64 the intrinsics, which compilers keep in the carry flag
// (add/adc and sub/sbb chains; the portable forms compile to compares);
// elsewhere, and in constant expressions, portable.
constexpr uint8_t AddCarry(uint8_t carry_in, uint64_t x, uint64_t y, uint64_t* out) {
#if defined(CERTACL_CARRY_INTRINSICS)
  if (!std::is_constant_evaluated()) {
    unsigned long long sum = 0;
    const uint8_t carry = _addcarry_u64(carry_in, x, y, &sum);
    *out = sum;
    return carry;
  }
#endif
  const Wide v = static_cast<Wide>(x) + y + carry_in;
  *out = static_cast<uint64_t>(v);
  return static_cast<uint8_t>(v >> 64);
}

constexpr uint8_t SubBorrow(uint8_t borrow_in, uint64_t x, uint64_t y, uint64_t* out) {
#if defined(CERTACL_CARRY_INTRINSICS)
  if (!std::is_constant_evaluated()) {
    unsigned long long difference = 0;
    const uint8_t borrow = _subborrow_u64(borrow_in, x, y, &difference);
    *out = difference;
    return borrow;
  }
#endif
  const Wide v = static_cast<Wide>(x) - y - borrow_in;
  *out = static_cast<uint64_t>(v);
  return static_cast<uint8_t>((v >> 64) & 1);
}

// a - b into *out (mod 2^256); the borrow out (1 when a < b).
constexpr uint64_t Sub(const Limbs& a, const Limbs& b, Limbs* out) {
  uint8_t borrow = 0;
  for (int i = 0; i < 4; ++i) borrow = SubBorrow(borrow, a[i], b[i], &(*out)[i]);
  return borrow;
}

// a + b into *out (mod 2^256); the carry out.
constexpr uint64_t Add(const Limbs& a, const Limbs& b, Limbs* out) {
  uint8_t carry = 0;
  for (int i = 0; i < 4; ++i) carry = AddCarry(carry, a[i], b[i], &(*out)[i]);
  return carry;
}

// a where mask is all ones, b where it is zero: a select without a branch
// (the field's carries are unpredictable; a mispredicted branch costs more
// than the select).
constexpr Limbs Select(uint64_t mask, const Limbs& a, const Limbs& b) {
  Limbs out{};
  for (int i = 0; i < 4; ++i) out[i] = (a[i] & mask) | (b[i] & ~mask);
  return out;
}

constexpr bool Less(const Limbs& a, const Limbs& b) {
  for (int i = 3; i >= 0; --i) {
    if (a[i] != b[i]) return a[i] < b[i];
  }
  return false;
}

constexpr bool IsOne(const Limbs& a) { return a[0] == 1 && (a[1] | a[2] | a[3]) == 0; }
constexpr bool IsZero(const Limbs& a) { return (a[0] | a[1] | a[2] | a[3]) == 0; }

constexpr Limbs kOrderLimbs = {0xF3B9CAC2FC632551, 0xBCE6FAADA7179E84, 0xFFFFFFFFFFFFFFFF, 0xFFFFFFFF00000000};

// x - y mod n, for x, y < n.
void SubModOrder(Limbs* x, const Limbs& y) {
  if (Sub(*x, y, x) != 0) Add(*x, kOrderLimbs, x);
}

Limbs FromBigEndian(const uint8_t* b, size_t length) {  // length <= 32
  Limbs x{};
  for (size_t i = 0; i < length; ++i) {
    const size_t bit = 8 * (length - 1 - i);
    x[bit / 64] |= static_cast<uint64_t>(b[i]) << (bit % 64);
  }
  return x;
}

Limbs FromBigEndian(const std::array<uint8_t, 32>& b) { return FromBigEndian(b.data(), 32); }

std::array<uint8_t, 32> ToBigEndian(const Limbs& x) {
  std::array<uint8_t, 32> b{};
  for (int i = 0; i < 32; ++i) b[i] = static_cast<uint8_t>(x[(31 - i) / 8] >> (8 * ((31 - i) % 8)));
  return b;
}

// ---------------------------------------------------------------------------
// Montgomery arithmetic modulo an odd m < 2^256, with R = 2^256: a value a
// is held as a R mod m, fully reduced, so equality is equality of limbs.

struct Modulus {
  Limbs m;
  uint64_t n0;  // -m^-1 mod 2^64
  Limbs r2;     // R^2 mod m, to enter the form
};

// -m0^-1 mod 2^64 by Newton's iteration (each step doubles the good bits).
constexpr uint64_t NegInverse64(uint64_t m0) {
  uint64_t x = 1;
  for (int i = 0; i < 6; ++i) x *= 2 - m0 * x;
  return 0 - x;
}

// (a + b) mod m, for a, b < m.
constexpr Limbs AddMod(const Limbs& a, const Limbs& b, const Limbs& m) {
  Limbs sum{};
  const uint64_t carry = Add(a, b, &sum);
  Limbs reduced{};
  const uint64_t borrow = Sub(sum, m, &reduced);
  return Select(0 - (carry | (borrow ^ 1)), reduced, sum);
}

constexpr Modulus MakeModulus(const Limbs& m) {
  Limbs r{};  // R mod m = 2^256 - m, for m > 2^255
  Sub(Limbs{}, m, &r);
  for (int i = 0; i < 256; ++i) r = AddMod(r, r, m);
  return Modulus{m, NegInverse64(m[0]), r};
}

constexpr Modulus kField = MakeModulus(
    {0xFFFFFFFFFFFFFFFF, 0x00000000FFFFFFFF, 0x0000000000000000, 0xFFFFFFFF00000001});
constexpr Modulus kOrder = MakeModulus(kOrderLimbs);
static_assert(kField.n0 == 1);

// a b R^-1 mod n, for a, b < n (CIOS: the product and the reduction
// interleaved word by word; the sum stays below 2n). The field has its own
// multiplication, below, which uses p's form.
inline Limbs MulModOrder(const Limbs& a, const Limbs& b) {
  constexpr const Modulus& mod = kOrder;
  uint64_t t[6] = {};
  for (int i = 0; i < 4; ++i) {
    Wide carry = 0;
    for (int j = 0; j < 4; ++j) {
      const Wide v = static_cast<Wide>(a[j]) * b[i] + t[j] + carry;
      t[j] = static_cast<uint64_t>(v);
      carry = v >> 64;
    }
    Wide v = static_cast<Wide>(t[4]) + carry;
    t[4] = static_cast<uint64_t>(v);
    t[5] = static_cast<uint64_t>(v >> 64);
    const uint64_t q = t[0] * mod.n0;
    v = static_cast<Wide>(q) * mod.m[0] + t[0];
    carry = v >> 64;
    for (int j = 1; j < 4; ++j) {
      v = static_cast<Wide>(q) * mod.m[j] + t[j] + carry;
      t[j - 1] = static_cast<uint64_t>(v);
      carry = v >> 64;
    }
    v = static_cast<Wide>(t[4]) + carry;
    t[3] = static_cast<uint64_t>(v);
    t[4] = t[5] + static_cast<uint64_t>(v >> 64);
  }
  const Limbs sum = {t[0], t[1], t[2], t[3]};
  Limbs reduced{};
  const uint64_t borrow = Sub(sum, mod.m, &reduced);
  return Select(0 - ((t[4] != 0 ? 1 : 0) | (borrow ^ 1)), reduced, sum);
}

// The field, GF(p), in Montgomery form.
//
// a b R^-1 mod p, for a, b < p: the 512-bit product, then four reduction
// steps that each add q p, q the lowest limb left (n0 = 1 for p), which
// clears that limb. p's form, 2^256 - 2^224 + 2^192 + 2^96 - 1, makes a
// step three additions and one multiplication: t_i + q (2^64 - 1) is q 2^64,
// so the next limb gains q (2^32 - 1) + q = q 2^32, the one after nothing,
// and the fourth q (2^64 - 2^32 + 1).

// t[0..7] (t[8] zero) times R^-1, reduced below p.
inline Limbs Reduce(uint64_t (&t)[9]) {
  for (int i = 0; i < 4; ++i) {
    const uint64_t q = t[i];
    const Wide top = static_cast<Wide>(q) * 0xFFFFFFFF00000001;
    uint8_t c = AddCarry(0, t[i + 1], q << 32, &t[i + 1]);
    c = AddCarry(c, t[i + 2], q >> 32, &t[i + 2]);
    c = AddCarry(c, t[i + 3], static_cast<uint64_t>(top), &t[i + 3]);
    c = AddCarry(c, t[i + 4], static_cast<uint64_t>(top >> 64), &t[i + 4]);
    for (int j = i + 5; j < 9; ++j) c = AddCarry(c, t[j], 0, &t[j]);
  }
  const Limbs sum = {t[4], t[5], t[6], t[7]};  // + t[8] 2^256; below 2p
  Limbs reduced{};
  const uint64_t borrow = Sub(sum, kField.m, &reduced);
  return Select(0 - (t[8] | (borrow ^ 1)), reduced, sum);
}

// Row by row: a b_i as five limbs (the high halves of the products shifted
// by one), added into t. Portable; x86-64 CPUs with BMI2 and ADX run
// MulxAdx, below, instead.
inline Limbs MulGeneric(const Limbs& a, const Limbs& b) {
  uint64_t t[9] = {};
  for (int i = 0; i < 4; ++i) {
    uint64_t lo[4];
    uint64_t hi[4];
    for (int j = 0; j < 4; ++j) {
      const Wide v = static_cast<Wide>(a[j]) * b[i];
      lo[j] = static_cast<uint64_t>(v);
      hi[j] = static_cast<uint64_t>(v >> 64);
    }
    uint64_t row[5];
    row[0] = lo[0];
    uint8_t c = AddCarry(0, lo[1], hi[0], &row[1]);
    c = AddCarry(c, lo[2], hi[1], &row[2]);
    c = AddCarry(c, lo[3], hi[2], &row[3]);
    AddCarry(c, hi[3], 0, &row[4]);
    c = 0;
    for (int j = 0; j < 5; ++j) c = AddCarry(c, t[i + j], row[j], &t[i + j]);
  }
  return Reduce(t);
}

#if defined(CERTACL_CARRY_INTRINSICS)
// The same product with mulx, adcx and adox (BMI2 and ADX: x86-64 CPUs
// since 2013-2014), ~1.5 times faster in a verification: mulx leaves the
// flags alone, and adcx and adox carry two chains of additions at once (the
// low and the high halves of a row of products), where the portable form
// has one chain and spills. Operand scanning, the reduction interleaved:
// round i adds a b_i to the five-limb sum, then reduces its lowest limb as
// Reduce does, and the sum moves down one register. Registers r8-r13 hold
// the sum (rotating), rax/rcx/r14/r15 the products, rdx the multiplier.
// Held, with MulGeneric, to BN's answers by P256Field.ProductsMatchBn.

// Round 0: (r8..r12) = a b_0, r13 = 0.
#define CERTACL_MUL_FIRST_ROW        \
  "movq 0(%[b]), %%rdx\n\t"          \
  "mulxq 0(%[a]), %%r8, %%r9\n\t"    \
  "mulxq 8(%[a]), %%rax, %%r10\n\t"  \
  "addq %%rax, %%r9\n\t"             \
  "mulxq 16(%[a]), %%rax, %%r11\n\t" \
  "adcq %%rax, %%r10\n\t"            \
  "mulxq 24(%[a]), %%rax, %%r12\n\t" \
  "adcq %%rax, %%r11\n\t"            \
  "adcq $0, %%r12\n\t"               \
  "xorl %%r13d, %%r13d\n\t"
// (U0..U4, F) += a b_i at byte offset I of b, F zeroed first.
#define CERTACL_MUL_ROW(I, U0, U1, U2, U3, U4, F, F32) \
  "movq " I "(%[b]), %%rdx\n\t"                         \
  "xorl %%" F32 ", %%" F32 "\n\t"                       \
  "mulxq 0(%[a]), %%rax, %%rcx\n\t"                     \
  "adcxq %%rax, %%" U0 "\n\t"                           \
  "adoxq %%rcx, %%" U1 "\n\t"                           \
  "mulxq 8(%[a]), %%rax, %%rcx\n\t"                     \
  "adcxq %%rax, %%" U1 "\n\t"                           \
  "adoxq %%rcx, %%" U2 "\n\t"                           \
  "mulxq 16(%[a]), %%rax, %%rcx\n\t"                    \
  "adcxq %%rax, %%" U2 "\n\t"                           \
  "adoxq %%rcx, %%" U3 "\n\t"                           \
  "mulxq 24(%[a]), %%rax, %%rcx\n\t"                    \
  "adcxq %%rax, %%" U3 "\n\t"                           \
  "adoxq %%rcx, %%" U4 "\n\t"                           \
  "adcxq %%" F ", %%" U4 "\n\t"                         \
  "adoxq %%" F ", %%" F "\n\t"                          \
  "adcq $0, %%" F "\n\t"
// Adds q p, q = U0, which clears U0: U1 += q << 32, U2 += q >> 32, (U3, U4)
// += q (2^64 - 2^32 + 1), the carry into F.
#define CERTACL_MUL_REDUCE(U0, U1, U2, U3, U4, F) \
  "movq %%" U0 ", %%rax\n\t"                       \
  "shlq $32, %%rax\n\t"                            \
  "movq %%" U0 ", %%rcx\n\t"                       \
  "shrq $32, %%rcx\n\t"                            \
  "movq %%" U0 ", %%rdx\n\t"                       \
  "mulxq %[p3], %%r14, %%r15\n\t"                  \
  "addq %%rax, %%" U1 "\n\t"                       \
  "adcq %%rcx, %%" U2 "\n\t"                       \
  "adcq %%r14, %%" U3 "\n\t"                       \
  "adcq %%r15, %%" U4 "\n\t"                       \
  "adcq $0, %%" F "\n\t"

inline Limbs MulxAdx(const Limbs& a, const Limbs& b) {
  static constexpr uint64_t kP3 = 0xFFFFFFFF00000001;
  Limbs out;
  __asm__(
      CERTACL_MUL_FIRST_ROW
      CERTACL_MUL_REDUCE("r8", "r9", "r10", "r11", "r12", "r13")
      CERTACL_MUL_ROW("8", "r9", "r10", "r11", "r12", "r13", "r8", "r8d")
      CERTACL_MUL_REDUCE("r9", "r10", "r11", "r12", "r13", "r8")
      CERTACL_MUL_ROW("16", "r10", "r11", "r12", "r13", "r8", "r9", "r9d")
      CERTACL_MUL_REDUCE("r10", "r11", "r12", "r13", "r8", "r9")
      CERTACL_MUL_ROW("24", "r11", "r12", "r13", "r8", "r9", "r10", "r10d")
      CERTACL_MUL_REDUCE("r11", "r12", "r13", "r8", "r9", "r10")
      // (r12, r13, r8, r9) + r10 2^256 is below 2p: p subtracted unless
      // that borrows.
      "movl $0xFFFFFFFF, %%r15d\n\t"
      "movq %%r12, %%rax\n\t"
      "movq %%r13, %%rcx\n\t"
      "movq %%r8, %%rdx\n\t"
      "movq %%r9, %%r14\n\t"
      "subq $-1, %%rax\n\t"
      "sbbq %%r15, %%rcx\n\t"
      "sbbq $0, %%rdx\n\t"
      "sbbq %[p3], %%r14\n\t"
      "sbbq $0, %%r10\n\t"
      "cmovcq %%r12, %%rax\n\t"
      "cmovcq %%r13, %%rcx\n\t"
      "cmovcq %%r8, %%rdx\n\t"
      "cmovcq %%r9, %%r14\n\t"
      "movq %%rax, 0(%[out])\n\t"
      "movq %%rcx, 8(%[out])\n\t"
      "movq %%rdx, 16(%[out])\n\t"
      "movq %%r14, 24(%[out])\n\t"
      :
      : [a] "r"(a.data()), [b] "r"(b.data()), [out] "r"(out.data()), [p3] "m"(kP3)
      : "rax", "rcx", "rdx", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "cc", "memory");
  return out;
}
#undef CERTACL_MUL_FIRST_ROW
#undef CERTACL_MUL_ROW
#undef CERTACL_MUL_REDUCE

bool CpuHasMulxAdx() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
  return (ebx & (1u << 8)) != 0 && (ebx & (1u << 19)) != 0;  // BMI2, ADX
}
// Read once at load. Before that (a static initializer elsewhere) it is
// false, and the generic product gives the same answers.
const bool kMulxAdx = CpuHasMulxAdx();

// Out of line: on a CPU without BMI2 and ADX (none since ~2014) a call per
// product; on the others, no copy of the generic product beside each asm one.
[[gnu::noinline]] Limbs MulGenericCall(const Limbs& a, const Limbs& b) { return MulGeneric(a, b); }
#endif

inline Limbs Mul(const Limbs& a, const Limbs& b) {
#if defined(CERTACL_CARRY_INTRINSICS)
  if (__builtin_expect(kMulxAdx, 1)) return MulxAdx(a, b);
  return MulGenericCall(a, b);
#else
  return MulGeneric(a, b);
#endif
}

inline Limbs Sqr(const Limbs& a) { return Mul(a, a); }
inline Limbs FAdd(const Limbs& a, const Limbs& b) { return AddMod(a, b, kField.m); }
inline Limbs FSub(const Limbs& a, const Limbs& b) {
  Limbs d{};
  const uint64_t mask = 0 - Sub(a, b, &d);
  Add(d, Select(mask, kField.m, Limbs{}), &d);
  return d;
}
inline Limbs FNeg(const Limbs& a) { return FSub(Limbs{}, a); }
inline Limbs ToField(const Limbs& a) { return Mul(a, kField.r2); }  // a < p
inline Limbs FromField(const Limbs& a) { return Mul(a, Limbs{1, 0, 0, 0}); }

constexpr Limbs kFieldOne = {1, 0xFFFFFFFF00000000, 0xFFFFFFFFFFFFFFFF, 0x00000000FFFFFFFE};  // R mod p

// a^(p-2) = a^-1 (0 for 0), left to right; for the tables only.
Limbs Invert(const Limbs& a) {
  Limbs exponent{};
  Sub(kField.m, Limbs{2, 0, 0, 0}, &exponent);
  Limbs result = kFieldOne;
  for (int bit = 255; bit >= 0; --bit) {
    result = Sqr(result);
    if ((exponent[bit / 64] >> (bit % 64)) & 1) result = Mul(result, a);
  }
  return result;
}

// ---------------------------------------------------------------------------
// Points of y^2 = x^3 - 3x + b, coordinates in Montgomery form.

constexpr Limbs kB = {0x3BCE3C3E27D2604B, 0x651D06B0CC53B0F6, 0xB3EBBD55769886BC, 0x5AC635D8AA3A93E7};
constexpr Limbs kGx = {0xF4A13945D898C296, 0x77037D812DEB33A0, 0xF8BCE6E563A440F2, 0x6B17D1F2E12C4247};
constexpr Limbs kGy = {0xCBB6406837BF51F5, 0x2BCE33576B315ECE, 0x8EE7EB4A7C0F9E16, 0x4FE342E2FE1A7F9B};

struct Affine {
  Limbs x, y;
};

// A table entry: one cache line.
struct alignas(64) Entry {
  Affine point;
};

// (X, Y, Z) is (X / Z^2, Y / Z^3); Z = 0 is the point at infinity.
struct Jacobian {
  Limbs x, y, z;
};

bool OnCurve(const Affine& a) {
  const Limbs x3 = Mul(Sqr(a.x), a.x);
  const Limbs three_x = FAdd(FAdd(a.x, a.x), a.x);
  return Sqr(a.y) == FAdd(FSub(x3, three_x), ToField(kB));
}

// 2P (dbl-2001-b, for a = -3).
Jacobian Double(const Jacobian& p) {
  if (IsZero(p.z)) return p;
  const Limbs delta = Sqr(p.z);
  const Limbs gamma = Sqr(p.y);
  const Limbs beta = Mul(p.x, gamma);
  const Limbs t = Mul(FSub(p.x, delta), FAdd(p.x, delta));
  const Limbs alpha = FAdd(FAdd(t, t), t);
  const Limbs beta2 = FAdd(beta, beta);
  const Limbs beta4 = FAdd(beta2, beta2);
  Jacobian out;
  out.x = FSub(Sqr(alpha), FAdd(beta4, beta4));
  out.z = FSub(FSub(Sqr(FAdd(p.y, p.z)), gamma), delta);
  const Limbs g2 = Sqr(gamma);
  const Limbs g2x = FAdd(g2, g2);
  const Limbs g4x = FAdd(g2x, g2x);
  out.y = FSub(Mul(alpha, FSub(beta4, out.x)), FAdd(g4x, g4x));
  return out;
}

// P + A, for an affine A (madd: 8 multiplications and 3 squarings), with
// the cases the formula does not cover: P at infinity, P = A, P = -A.
Jacobian AddAffine(const Jacobian& p, const Affine& a) {
  if (IsZero(p.z)) return Jacobian{a.x, a.y, kFieldOne};
  const Limbs z1z1 = Sqr(p.z);
  const Limbs u2 = Mul(a.x, z1z1);
  const Limbs s2 = Mul(a.y, Mul(p.z, z1z1));
  const Limbs h = FSub(u2, p.x);
  const Limbs r = FSub(s2, p.y);
  if (IsZero(h)) return IsZero(r) ? Double(p) : Jacobian{};
  const Limbs hh = Sqr(h);
  const Limbs hhh = Mul(h, hh);
  const Limbs v = Mul(p.x, hh);
  Jacobian out;
  out.x = FSub(FSub(Sqr(r), hhh), FAdd(v, v));
  out.y = FSub(Mul(r, FSub(v, out.x)), Mul(p.y, hhh));
  out.z = Mul(p.z, h);
  return out;
}

// Whether the Jacobian point is the affine one (X = x Z^2, Y = y Z^3).
bool Equals(const Jacobian& p, const Affine& a) {
  if (IsZero(p.z)) return false;
  const Limbs zz = Sqr(p.z);
  return p.x == Mul(a.x, zz) && p.y == Mul(a.y, Mul(zz, p.z));
}

// ---------------------------------------------------------------------------
// A point's table: row i holds d 2^(7i) P for d = 1..64, affine, so that
// k P for k < 2^256 is at most 37 additions of table entries, one per
// signed 7-bit digit of k, and no doubling. Unlike OpenSSL's tables, which
// read all 64 entries of a row to hide which one is used (constant time, for
// secret scalars), an entry is read directly: a verification's scalars are
// public, and it touches ~4.7 KB of the tables instead of ~300 KB.

constexpr int kRows = 37;
constexpr int kColumns = 64;

struct Table {
  std::array<Entry, kRows * kColumns> entries;
};
static_assert(sizeof(Table) == P256Verifier::kTableBytes);

// Signed 7-bit digits d_i in [-63, 64] with k = sum d_i 2^(7i); k < 2^256.
std::array<int8_t, kRows> Recode(const Limbs& k) {
  std::array<int8_t, kRows> digits{};
  int carry = 0;
  for (int i = 0; i < kRows; ++i) {
    const int bit = 7 * i;
    const int limb = bit / 64;
    const int shift = bit % 64;
    uint64_t window = k[limb] >> shift;
    if (shift > 57 && limb < 3) window |= k[limb + 1] << (64 - shift);
    const int value = static_cast<int>(window & 0x7F) + carry;  // the top row: at most 15 + 1
    carry = value > 64 ? 1 : 0;
    digits[i] = static_cast<int8_t>(value - 128 * carry);
  }
  return digits;
}

// The entries k P adds from P's table, one per nonzero digit, with their
// signs. Their addresses are known before the first addition, so all are
// prefetched at once: a table that has left the caches costs one memory
// latency, not one per entry.
struct Plan {
  std::array<const Affine*, kRows> entries;
  std::array<bool, kRows> negate;
  int count = 0;
};

void PlanMultiple(const Table& table, const Limbs& k, Plan* plan) {
  const std::array<int8_t, kRows> digits = Recode(k);
  for (int i = 0; i < kRows; ++i) {
    const int d = digits[i];
    if (d == 0) continue;
    const Affine* entry = &table.entries[i * kColumns + (d > 0 ? d : -d) - 1].point;
    __builtin_prefetch(entry);
    plan->entries[plan->count] = entry;
    plan->negate[plan->count] = d < 0;
    ++plan->count;
  }
}

Jacobian AddPlanned(Jacobian acc, const Plan& plan) {
  for (int i = 0; i < plan.count; ++i) {
    const Affine& entry = *plan.entries[i];
    acc = AddAffine(acc, plan.negate[i] ? Affine{entry.x, FNeg(entry.y)} : entry);
  }
  return acc;
}

// acc + k P for the table of P, k < 2^256.
Jacobian AddMultiple(Jacobian acc, const Table& table, const Limbs& k) {
  Plan plan;
  PlanMultiple(table, k, &plan);
  return AddPlanned(acc, plan);
}

// Affine forms of `points` (none at infinity) with one inversion: the
// inverse of the product of all Z, unwound (Montgomery's trick).
bool ToAffine(const std::vector<Jacobian>& points, std::vector<Affine>* out) {
  std::vector<Limbs> prefix(points.size());
  Limbs product = kFieldOne;
  for (size_t i = 0; i < points.size(); ++i) {
    if (IsZero(points[i].z)) return false;
    prefix[i] = product;
    product = Mul(product, points[i].z);
  }
  Limbs inverse = Invert(product);
  out->resize(points.size());
  for (size_t i = points.size(); i-- > 0;) {
    const Limbs z_inverse = Mul(inverse, prefix[i]);
    inverse = Mul(inverse, points[i].z);
    const Limbs zz = Sqr(z_inverse);
    (*out)[i] = Affine{Mul(points[i].x, zz), Mul(points[i].y, Mul(zz, z_inverse))};
  }
  return true;
}

// P's table, checked: (n - 1) P from it must be -P. Null if P is not a
// point of the curve or the check fails.
std::unique_ptr<Table> BuildTable(const Affine& p) {
  if (!OnCurve(p)) return nullptr;
  auto table = std::make_unique<Table>();
  std::vector<Jacobian> row(kColumns + 1);
  std::vector<Affine> affine;
  Affine base = p;
  for (int i = 0; i < kRows; ++i) {
    row[0] = Jacobian{base.x, base.y, kFieldOne};
    for (int j = 1; j < kColumns; ++j) row[j] = AddAffine(row[j - 1], base);
    row[kColumns] = Double(row[kColumns - 1]);  // 128 base: the next row's
    if (!ToAffine(row, &affine)) return nullptr;
    for (int j = 0; j < kColumns; ++j) table->entries[i * kColumns + j].point = affine[j];
    base = affine[kColumns];
  }
  Limbs n_minus_1{};
  Sub(kOrder.m, Limbs{1, 0, 0, 0}, &n_minus_1);
  if (!Equals(AddMultiple(Jacobian{}, *table, n_minus_1), Affine{p.x, FNeg(p.y)})) return nullptr;
  return table;
}

// G's table, built once per process (~150 KB) and shared by all verifiers.
const Table* GeneratorTable() {
  static const std::unique_ptr<Table> table = BuildTable(Affine{ToField(kGx), ToField(kGy)});
  return table.get();
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

// One INTEGER at *p, before `end`, if it is positive, minimally encoded
// and at most 256 bits; *p then moves past it.
bool ReadPositiveInteger(const uint8_t** p, const uint8_t* end, Limbs* out) {
  if (end - *p < 2 || (*p)[0] != 0x02) return false;
  const size_t length = (*p)[1];  // a long form (>= 0x80) is over 33
  const uint8_t* content = *p + 2;
  if (length == 0 || length > 33 || static_cast<size_t>(end - content) < length) return false;
  if (content[0] & 0x80) return false;                                        // negative
  if (length > 1 && content[0] == 0 && (content[1] & 0x80) == 0) return false;  // not minimal
  if (length == 33 && content[0] != 0) return false;                          // over 256 bits
  const size_t skip = length == 33 ? 1 : 0;
  *out = FromBigEndian(content + skip, length - skip);
  *p = content + length;
  return true;
}

// (r, s) from the signature BIT STRING's bytes, only if they are exactly
// the DER encoding of an ECDSA-Sig-Value with positive integers: what
// OpenSSL's ECDSA verify accepts (it re-encodes and compares), less the
// zero and negative values it refuses afterwards.
bool StrictSignature(const ASN1_BIT_STRING* sig, Limbs* r, Limbs* s) {
  const int length = ASN1_STRING_length(sig);
  const uint8_t* data = ASN1_STRING_get0_data(sig);
  if (data == nullptr || length < 2 || length > 2 + 127) return false;
  const uint8_t* end = data + length;
  if (data[0] != 0x30 || data[1] != length - 2) return false;  // short-form length, nothing after
  const uint8_t* p = data + 2;
  return ReadPositiveInteger(&p, end, r) && ReadPositiveInteger(&p, end, s) && p == end;
}

// u / 2^k, k the number of trailing zeros of u (u != 0), and x / 2^k mod n
// alongside (x < n), at most 63 bits at a time: x + m n, m = x (-n^-1) mod
// 2^j, is a multiple of 2^j (Montgomery's reduction) and below 2^j n, so
// the quotient is below n again.
void RemoveTwos(Limbs* u, Limbs* x) {
  for (;;) {
    int limb = 0;
    while ((*u)[limb] == 0) ++limb;  // u != 0
    const int k = 64 * limb + __builtin_ctzll((*u)[limb]);
    if (k == 0) return;
    const int j = k < 63 ? k : 63;
    for (int i = 0; i < 3; ++i) (*u)[i] = ((*u)[i] >> j) | ((*u)[i + 1] << (64 - j));
    (*u)[3] >>= j;
    const uint64_t m = ((*x)[0] * kOrder.n0) & ((uint64_t{1} << j) - 1);
    uint64_t t[5];
    Wide carry = 0;
    for (int i = 0; i < 4; ++i) {
      const Wide v = static_cast<Wide>(m) * kOrder.m[i] + (*x)[i] + carry;
      t[i] = static_cast<uint64_t>(v);
      carry = v >> 64;
    }
    t[4] = static_cast<uint64_t>(carry);
    for (int i = 0; i < 4; ++i) (*x)[i] = (t[i] >> j) | (t[i + 1] << (64 - j));
  }
}

// s^-1 mod n (0 for s = 0 or a multiple of n), s < 2^256: binary extended
// Euclid on (s, n), keeping x1 s == u and x2 s == v (mod n), u and v odd
// at the top of each step. Each step subtracts the smaller from the larger
// and strips all the factors of 2 that leaves at once (one branch per step
// where halving bit by bit had two per bit). gcd(s, n) = 1 for 0 < s < n (n
// is prime), so u and v meet at 1.
Limbs InvertModOrder(Limbs u) {
  if (!Less(u, kOrder.m)) Sub(u, kOrder.m, &u);  // s < 2^256 < 2n
  if (IsZero(u)) return {};
  Limbs v = kOrder.m;
  Limbs x1 = {1, 0, 0, 0};
  Limbs x2 = {0, 0, 0, 0};
  RemoveTwos(&u, &x1);
  while (u != v) {
    if (Less(v, u)) {
      Sub(u, v, &u);
      SubModOrder(&x1, x2);
      RemoveTwos(&u, &x1);
    } else {
      Sub(v, u, &v);
      SubModOrder(&x2, x1);
      RemoveTwos(&v, &x2);
    }
  }
  return IsOne(u) ? x1 : Limbs{};
}

bool InOrderRange(const Limbs& x) { return !IsZero(x) && Less(x, kOrder.m); }

}  // namespace

namespace p256_internal {

std::optional<std::array<uint64_t, 4>> FieldProduct(const std::array<uint64_t, 4>& a, const std::array<uint64_t, 4>& b,
                                                    bool mulx_adx) {
  if (!mulx_adx) return MulGeneric(a, b);
#if defined(CERTACL_CARRY_INTRINSICS)
  if (kMulxAdx) return MulxAdx(a, b);
#endif
  return std::nullopt;
}

std::array<uint8_t, 32> InverseModOrder(const std::array<uint8_t, 32>& s) {
  return ToBigEndian(InvertModOrder(FromBigEndian(s)));
}

std::optional<std::array<uint8_t, 64>> TimesGenerator(const std::array<uint8_t, 32>& k) {
  const Table* g = GeneratorTable();
  if (g == nullptr) return std::nullopt;
  std::vector<Affine> affine;
  if (!ToAffine({AddMultiple(Jacobian{}, *g, FromBigEndian(k))}, &affine)) return std::nullopt;  // infinity
  const std::array<uint8_t, 32> x = ToBigEndian(FromField(affine[0].x));
  const std::array<uint8_t, 32> y = ToBigEndian(FromField(affine[0].y));
  std::array<uint8_t, 64> xy{};
  std::copy(x.begin(), x.end(), xy.begin());
  std::copy(y.begin(), y.end(), xy.begin() + 32);
  return xy;
}

}  // namespace p256_internal

struct P256Verifier::State {
  const Table* generator = nullptr;  // G's, shared
  std::unique_ptr<Table> key;        // Q's
};

P256Verifier::P256Verifier(std::unique_ptr<State> s) : s_(std::move(s)) {}
P256Verifier::~P256Verifier() = default;

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
  BIGNUM* x = nullptr;
  BIGNUM* y = nullptr;
  const bool got = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x) == 1 &&
                   EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y) == 1;
  const BignumPtr x_owned(x);
  const BignumPtr y_owned(y);
  std::array<uint8_t, 32> x_bytes{};
  std::array<uint8_t, 32> y_bytes{};
  if (!got || BN_bn2binpad(x, x_bytes.data(), 32) != 32 || BN_bn2binpad(y, y_bytes.data(), 32) != 32) {
    ERR_clear_error();
    return nullptr;
  }
  const Limbs qx = FromBigEndian(x_bytes);
  const Limbs qy = FromBigEndian(y_bytes);
  if (!Less(qx, kField.m) || !Less(qy, kField.m)) return nullptr;
  auto s = std::make_unique<State>();
  s->generator = GeneratorTable();
  s->key = BuildTable(Affine{ToField(qx), ToField(qy)});  // checks that Q is on the curve
  if (s->generator == nullptr || !s->key) return nullptr;
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

  // 2. (r, s), exactly DER, each in [1, n-1].
  Limbs r{};
  Limbs s{};
  if (!StrictSignature(sig, &r, &s) || !InOrderRange(r) || !InOrderRange(s)) return false;

  // 3. e: SHA-256 of the tbsCertificate (256 bits: nothing to truncate),
  // reduced modulo n (e < 2^256 < 2n).
  ERR_set_mark();
  unsigned char* der = nullptr;
  const int der_length = i2d_X509(cert, &der);
  const OpenSslBytes der_owned(der);
  std::array<unsigned char, 32> digest{};
  const std::string_view tbs =
      der_length > 0 ? TbsOf(std::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(der_length)))
                     : std::string_view();
  const bool hashed = !tbs.empty() && Sha256(tbs, &digest);
  ERR_pop_to_mark();
  if (!hashed) return false;
  Limbs e = FromBigEndian(digest);
  if (!Less(e, kOrder.m)) Sub(e, kOrder.m, &e);

  // 4. w = s^-1, u1 = e w, u2 = r w (mod n): each product is a Montgomery
  // product (a b R^-1) brought back by one more with R^2.
  const Limbs w = InvertModOrder(s);
  const Limbs u1 = MulModOrder(MulModOrder(e, w), kOrder.r2);
  const Limbs u2 = MulModOrder(MulModOrder(r, w), kOrder.r2);

  // 5. R = u1 G + u2 Q, from the two tables.
  Plan g_part;
  Plan q_part;
  PlanMultiple(*s_->generator, u1, &g_part);
  PlanMultiple(*s_->key, u2, &q_part);
  const Jacobian point = AddPlanned(AddPlanned(Jacobian{}, g_part), q_part);
  if (IsZero(point.z)) return false;

  // 6. R's affine x, X / Z^2, taken modulo n, is r: X = r Z^2 (mod p),
  // without the inversion; or, when r + n < p, X = (r + n) Z^2, which is
  // an x in [n, p) that reduces to r.
  const Limbs zz = Sqr(point.z);
  if (point.x == Mul(ToField(r), zz)) return true;
  Limbs r_plus_n{};
  return Add(r, kOrder.m, &r_plus_n) == 0 && Less(r_plus_n, kField.m) && point.x == Mul(ToField(r_plus_n), zz);
}

}  // namespace certacl
