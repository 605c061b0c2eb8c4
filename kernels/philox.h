// Philox4x32-10 counter-based random numbers and the z distributions zoff draws, for host and device.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define ZOFF_HD __host__ __device__ __forceinline__
#define ZOFF_UNROLL _Pragma("unroll")
#else
#define ZOFF_HD inline
#define ZOFF_UNROLL _Pragma("GCC unroll 16")
#endif

namespace zoff::k {

// Note [Philox keying]
// z for element i of parameter p at step seed s is a pure function of (s, p, i):
//   key     = (lo32(s), hi32(s))
//   counter = (lo32(i / 4), hi32(i / 4), lo32(p), hi32(p))       -- Gaussian: 4 values a call
//   counter = (lo32(i / 128), hi32(i / 128), lo32(p), hi32(p))   -- Rademacher: 128 signs a call
// p is a 64-bit hash of the parameter's name (param_id()), so z does not depend on the order in
// which blocks are visited, on the device, or on how a tensor is split into pieces. Gaussian
// values use Box-Muller on (u0,u1) -> (z0,z1) and (u2,u3) -> (z2,z3); CPU and GPU produce the
// same 32-bit words and the same Gaussian values, bit for bit (Note [Bit-identical Box-Muller]).

struct Philox4 {
  uint32_t v[4];
};

ZOFF_HD uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
#if defined(__CUDA_ARCH__) && !defined(ZOFF_PHILOX_WIDE)  // IMAD.HI + IMAD: +4% on the Gaussian update (H200)
  *hi = __umulhi(a, b);
  return a * b;
#else
  uint64_t p = uint64_t(a) * uint64_t(b);
  *hi = uint32_t(p >> 32);
  return uint32_t(p);
#endif
}

ZOFF_HD Philox4 philox4x32_10(Philox4 c, uint32_t k0, uint32_t k1) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
ZOFF_UNROLL
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo32(M0, c.v[0], &hi0);
    uint32_t lo1 = mulhilo32(M1, c.v[2], &hi1);
    c = Philox4{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
    k0 += W0;
    k1 += W1;
  }
  return c;
}

// The 4 words for block `blk` (= element / 4 or element / 128) of parameter `pid` at `seed`.
ZOFF_HD Philox4 philox_block(uint64_t seed, uint64_t pid, uint64_t blk) {
  Philox4 c{{uint32_t(blk), uint32_t(blk >> 32), uint32_t(pid), uint32_t(pid >> 32)}};
  return philox4x32_10(c, uint32_t(seed), uint32_t(seed >> 32));
}

// Note [Keyed Philox]
// In a kernel the key words (seed) and the counter's upper half (pid) are the same for every call
// of a launch; only the block index varies. philox_key() folds everything that depends on them
// alone into 20 words, once on the host: the round keys (k0 + r W0, k1 + r W1), the product
// M1 * lo32(pid) of round 0 and the constants it feeds into. philox_keyed() then needs 19 32x32
// multiplies and 20 three-way xors, with the key words as constant-bank operands when the PhiloxKey
// sits in the kernel parameters at a compile-time index. It returns exactly philox_block(seed, pid,
// blk) (tests/kernels/test_philox.cpp, Philox.KeyedEqualsBlock). Round 0 and round 1 unrolled:
//   round 0: (lo0, hi0) = M0 * blk_lo; (lo1, hi1) = M1 * pid_lo           -- the latter constant
//            c = (hi1 ^ blk_hi ^ k0, lo1, hi0 ^ pid_hi ^ k1, lo0)
//   round 1: (lo0', hi0') = M0 * c0; (lo1', hi1') = M1 * c2
//            c = (hi1' ^ lo1 ^ (k0 + W0), lo1', hi0' ^ lo0 ^ (k1 + W1), lo0')
// w[0] = hi1 ^ k0, w[1] = pid_hi ^ k1, w[2] = lo1 ^ (k0 + W0), w[3] = k1 + W1, and for rounds
// r = 2..9: w[2r] = k0 + r W0, w[2r + 1] = k1 + r W1.
struct PhiloxKey {
  uint32_t w[20];
};

ZOFF_HD PhiloxKey philox_key(uint64_t seed, uint64_t pid) {
  constexpr uint32_t M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  const uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  uint32_t hi1;
  const uint32_t lo1 = mulhilo32(M1, uint32_t(pid), &hi1);
  PhiloxKey k{};
  k.w[0] = hi1 ^ k0;
  k.w[1] = uint32_t(pid >> 32) ^ k1;
  k.w[2] = lo1 ^ (k0 + W0);
  k.w[3] = k1 + W1;
  for (uint32_t r = 2; r < 10; ++r) k.w[2 * r] = k0 + r * W0, k.w[2 * r + 1] = k1 + r * W1;
  return k;
}

ZOFF_HD Philox4 philox_keyed(const PhiloxKey& k, uint64_t blk) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  uint32_t h0, h1;
  const uint32_t l0 = mulhilo32(M0, uint32_t(blk), &h0);       // round 0
  const uint32_t c0 = uint32_t(blk >> 32) ^ k.w[0], c2 = h0 ^ k.w[1];
  uint32_t a0, a1;
  const uint32_t b0 = mulhilo32(M0, c0, &a0), b1 = mulhilo32(M1, c2, &a1);  // round 1
  Philox4 c{{a1 ^ k.w[2], b1, a0 ^ l0 ^ k.w[3], b0}};
ZOFF_UNROLL
  for (int r = 2; r < 10; ++r) {
    const uint32_t lo0 = mulhilo32(M0, c.v[0], &h0);
    const uint32_t lo1 = mulhilo32(M1, c.v[2], &h1);
    c = Philox4{{h1 ^ c.v[1] ^ k.w[2 * r], lo1, h0 ^ c.v[3] ^ k.w[2 * r + 1], lo0}};
  }
  return c;
}

// Uniform in (0, 1]: never 0, so log() is finite.
ZOFF_HD float u32_to_unit(uint32_t x) { return (float(x >> 8) + 1.0f) * (1.0f / 16777216.0f); }

// ---- correctly rounded fp32 primitives, the same on host and device ------------------------------

ZOFF_HD uint32_t f32_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

ZOFF_HD float bits_f32(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

ZOFF_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

ZOFF_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

ZOFF_HD float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

ZOFF_HD float fma_rn(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

ZOFF_HD float sqrt_rn(float a) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}

// Note [Unchecked division and square root]
// div.rn and sqrt.rn compile to a short Newton sequence from MUFU.RCP / MUFU.RSQ plus a range check
// (FCHK, or an exponent test) that branches to a slow path for zeros, subnormals, infinities and
// extreme exponents. In Box-Muller the operands are known: s = f / (2 + f) has |f| <= 0.415 (0 or
// >= 2^-24) over a denominator in [1.7, 2.5], and sqrt takes -2 ln u in {+-0} U [1.1e-7, 33.3].
// There the fast path alone is the correctly rounded result, so on the GPU these two use it without
// the check (about 8 instructions a Box-Muller pair, and a divergent branch). Host: plain / and
// sqrt. Exact agreement over every input the sampler can produce is a GPU test
// (KernelsGpu.BoxMullerPiecesExhaustive, all 2^24 radius and 2^24 angle inputs).
ZOFF_HD float div_rn_bm(float a, float b) {  // a / b for |a| < 1, b in [1, 4): Box-Muller's s only
#if defined(__CUDA_ARCH__)
  float r;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(b));
  r = __fmaf_rn(__fmaf_rn(-b, r, 1.0f), r, r);
  const float q = __fmaf_rn(a, r, 0.0f);
  return __fmaf_rn(__fmaf_rn(-b, q, a), r, q);
#else
  return a / b;
#endif
}

ZOFF_HD float sqrt_rn_bm(float x) {  // sqrt(x) for x = +-0 or x in [2^-100, 2^100]: Box-Muller's radius only
#if defined(__CUDA_ARCH__)
  float y;
  asm("rsqrt.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  const float sx = __fmul_rn(x, y), h = __fmul_rn(y, 0.5f);
  const float r = __fmaf_rn(__fmaf_rn(-sx, sx, x), h, sx);
  return x == 0.0f ? x : r;
#else
  return std::sqrt(x);
#endif
}

// Note [Bit-identical Box-Muller]
// z must be the same on the CPU and the GPU, so gaussian4 uses neither libm nor CUDA's logf/sinf/
// cosf (they differ by an ulp or two, and CUDA's accurate sincosf is slow). It is built only from
// correctly rounded operations (+, *, /, sqrt and fma, each explicit, so no compiler contraction can
// apply: no product ever feeds a plain + or -) and integer bit manipulation:
//   u1 = (v1 + 1) / 2^24, v1 = word >> 8, so u1 in [2^-24, 1]; rad = sqrt(-2 ln u1), with ln from
//     musl's (fdlibm's) logf: u1 = 2^k m, m in [sqrt(2)/2, sqrt(2)), s = f / (2 + f), f = m - 1,
//     Lg1..Lg4 polynomial (error < 1 ulp), evaluated with fma;
//   the angle 2 pi (v2 + 1) / 2^24 is split exactly in integers into a quarter turn q and a
//     remainder x in [-pi/4, pi/4] (one rounding, with a two-term constant), and sin x, cos x are
//     Cephes' sinf/cosf polynomials (about 1 ulp on that range), then rotated by q.
// Results agree with the exact Box-Muller values to a few ulp (tests/kernels/test_philox.cpp checks
// all 2^24 inputs of each half), and CPU and GPU agree bit for bit.
// -2 ln u for u > 0 normal, given as its bits.
ZOFF_HD float neg2_log_bits(uint32_t ubits) {
  constexpr float ln2_hi = 6.9313812256e-01f, ln2_lo = 9.0580006145e-06f;
  constexpr float Lg1 = 0.66666662693f, Lg2 = 0.40000972152f, Lg3 = 0.28498786688f, Lg4 = 0.24279078841f;
  uint32_t ix = ubits + (0x3f800000u - 0x3f3504f3u);
  const float dk = float(int32_t(ix >> 23) - 0x7f);
  const float f = add_rn(bits_f32((ix & 0x007fffffu) + 0x3f3504f3u), -1.0f);  // exact
  const float s = div_rn_bm(f, add_rn(2.0f, f));
  const float z = mul_rn(s, s), w = mul_rn(z, z);
  const float t1 = mul_rn(w, fma_rn(w, Lg4, Lg2));
  const float R = fma_rn(z, fma_rn(w, Lg3, Lg1), t1);
  const float half_f = mul_rn(0.5f, f);
  const float a = fma_rn(s, fma_rn(half_f, f, R), mul_rn(dk, ln2_lo));
  const float b = fma_rn(-half_f, f, a);
  return mul_rn(-2.0f, fma_rn(dk, ln2_hi, add_rn(b, f)));
}

ZOFF_HD float neg2_log_unit(float u) { return neg2_log_bits(f32_bits(u)); }

// neg2_log_unit(u32_to_unit(word)): u = (v + 1) 2^-24 with v = word >> 8 is float(v + 1), exact
// (<= 2^24), with 24 taken off its exponent field, so no float multiply is needed.
ZOFF_HD float neg2_log_word(uint32_t word) {
  return neg2_log_bits(f32_bits(float((word >> 8) + 1u)) - (24u << 23));
}

// sin and cos of 2 pi v / 2^24 for v in [1, 2^24].
ZOFF_HD void sincos_turn24(uint32_t v, float* sn, float* cs) {
  constexpr float c_hi = 3.74507028e-07f;                           // 2 pi / 2^24, rounded
  constexpr float c_lo = float(6.28318530717958647692 / 16777216.0 - double(c_hi));
  const uint32_t q = (v + (1u << 21)) >> 22;  // nearest quarter turn, 0..4
  const float r = float(int32_t(v) - int32_t(q << 22));  // exact, |r| <= 2^21
  const float x = fma_rn(r, c_hi, mul_rn(r, c_lo));
  const float z = mul_rn(x, x);
  const float sp = fma_rn(fma_rn(-1.9515295891e-4f, z, 8.3321608736e-3f), z, -1.6666654611e-1f);
  const float s = fma_rn(mul_rn(sp, z), x, x);
  const float cp = fma_rn(fma_rn(2.443315711809948e-5f, z, -1.388731625493765e-3f), z, 4.166664568298827e-2f);
  const float c = fma_rn(mul_rn(cp, z), z, fma_rn(-0.5f, z, 1.0f));
  // Rotate by q quarter turns: (s, c), (c, -s), (-s, -c), (-c, s) for q = 0..3, without branches
  // (a warp's lanes have different q): swap on odd q, then flip sign bits (exactly negation).
  const bool odd = (q & 1u) != 0;
  const uint32_t sb = f32_bits(odd ? c : s), cb = f32_bits(odd ? s : c);
  *sn = bits_f32(sb ^ ((q & 2u) << 30));
  *cs = bits_f32(cb ^ (((q + 1u) & 2u) << 30));
}

// The seed log's "z" field (Note [Seed log replay]): a log is replayed only with the sampler that
// drew it. Logs without the field predate it and were drawn by this same Box-Muller.
constexpr const char* kGaussianSampler = "box-muller";

// Four standard normals from one Philox call (Box-Muller on (v0,v1) -> (z0,z1), (v2,v3) -> (z2,z3)):
// z_{2j} = sqrt(-2 ln u1) cos(2 pi u2), z_{2j+1} = sqrt(-2 ln u1) sin(2 pi u2), u = u32_to_unit(v).
ZOFF_HD void gaussian4(Philox4 r, float out[4]) {
ZOFF_UNROLL
  for (int j = 0; j < 2; ++j) {
    const float rad = sqrt_rn_bm(neg2_log_word(r.v[2 * j]));
    float sn, cs;
    sincos_turn24((r.v[2 * j + 1] >> 8) + 1u, &sn, &cs);
    out[2 * j] = mul_rn(rad, cs);
    out[2 * j + 1] = mul_rn(rad, sn);
  }
}

// The Box-Muller pieces for input v < 2^24 (tests: k::box_muller_pieces): out[0] the radius of the
// word v << 8, out[1], out[2] sin and cos of the angle input v + 1.
ZOFF_HD void box_muller_pieces_at(uint32_t v, float out[3]) {
  sincos_turn24(v + 1u, &out[1], &out[2]);
  out[0] = sqrt_rn_bm(neg2_log_word(v << 8));
}

// z_i ~ N(0,1) for one element (computes the whole group of 4; kernels use gaussian4 directly).
ZOFF_HD float gaussian_at(uint64_t seed, uint64_t pid, uint64_t i) {
  float g[4];
  gaussian4(philox_block(seed, pid, i >> 2), g);
  return g[i & 3];
}

// z_i in {-1, +1}: bit (i % 128) of the 128-bit Philox block i / 128; bit set means -1.
ZOFF_HD float rademacher_at(uint64_t seed, uint64_t pid, uint64_t i) {
  Philox4 r = philox_block(seed, pid, i >> 7);
  uint32_t w = r.v[(i >> 5) & 3];
  return ((w >> (i & 31)) & 1u) ? -1.0f : 1.0f;
}

// 64-bit FNV-1a of a parameter name, finished with a splitmix64 mix: the parameter id in z's key.
ZOFF_HD uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline uint64_t param_id(const char* name) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (const char* p = name; *p; ++p) h = (h ^ uint8_t(*p)) * 0x100000001B3ull;
  return splitmix64(h);
}

// Seed of perturbation `j` of step `step` in a run with base seed `base`.
ZOFF_HD uint64_t step_seed(uint64_t base, uint64_t step, uint64_t j) {
  return splitmix64(splitmix64(base ^ splitmix64(step)) + j);
}

}  // namespace zoff::k
