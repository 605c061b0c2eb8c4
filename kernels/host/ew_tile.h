// The host tile driver, generic over a lane type S (simd_scalar.h, simd_avx2.h, simd_avx512.h).
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/host/host_job.h"

namespace zoff::k::host {
namespace {  // Note [ISA translation units]: everything here has internal linkage

constexpr int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
constexpr int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "SR bits are read as 16-bit halves of words");

template <class S>
struct Tile {
  using U = typename S::U;
  using F = typename S::F;
  using M = typename S::M;
  static constexpr int W = S::W;
  static constexpr int64_t T = kTile;
  static_assert(T % (4 * 2 * 16) == 0 && T % (8 * 2 * 16) == 0 && T % 128 == 0, "a tile holds whole Gaussian, SR and Rademacher batches");

  // ---- Philox4x32-10 on W consecutive blocks (kernels/philox.h, SoA) ------------------------------
  // Note [Two Philox batches at once]: the 10 rounds are one dependency chain (multiply, blend,
  // xor); running batches a (blocks blk..) and b (blocks blk + W..) in lockstep gives the core two
  // independent chains to overlap.
  static void counters(uint64_t blk, U& c0, U& c1) {
    if (uint32_t(blk) <= 0xFFFFFFFFu - uint32_t(W - 1)) {  // no carry into the high word
      c0 = S::add(S::set1(uint32_t(blk)), S::iota());
      c1 = S::set1(uint32_t(blk >> 32));
    } else {
      alignas(64) uint32_t lo[W], hi[W];
      for (int l = 0; l < W; ++l) lo[l] = uint32_t(blk + uint64_t(l)), hi[l] = uint32_t((blk + uint64_t(l)) >> 32);
      c0 = S::load(lo), c1 = S::load(hi);
    }
  }
  static void round(U c[4], uint32_t k0, uint32_t k1) {
    U lo0, hi0, lo1, hi1;
    S::mulhilo(c[0], 0xD2511F53u, lo0, hi0);
    S::mulhilo(c[2], 0xCD9E8D57u, lo1, hi1);
    c[0] = S::xor_(S::xor_(hi1, c[1]), S::set1(k0));
    c[2] = S::xor_(S::xor_(hi0, c[3]), S::set1(k1));
    c[1] = lo1;
    c[3] = lo0;
  }
  static void philox2(uint64_t seed, uint64_t pid, uint64_t blk, U a[4], U b[4]) {
    counters(blk, a[0], a[1]);
    counters(blk + uint64_t(W), b[0], b[1]);
    a[2] = b[2] = S::set1(uint32_t(pid));
    a[3] = b[3] = S::set1(uint32_t(pid >> 32));
    uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
    for (int r = 0; r < 10; ++r) {
      round(a, k0, k1);
      round(b, k0, k1);
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
  }
  static void philox(uint64_t seed, uint64_t pid, uint64_t blk, U v[4]) {
    counters(blk, v[0], v[1]);
    v[2] = S::set1(uint32_t(pid));
    v[3] = S::set1(uint32_t(pid >> 32));
    uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
    for (int r = 0; r < 10; ++r) {
      round(v, k0, k1);
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
  }

  // ---- Box-Muller, operation for operation as neg2_log_unit / sincos_turn24 / gaussian4 ----------
  static F fneg(F a) { return S::as_f(S::xor_(S::as_u(a), S::set1(0x80000000u))); }

  static F neg2_log_unit(F u) {
    const F ln2_hi = S::fset1(6.9313812256e-01f), ln2_lo = S::fset1(9.0580006145e-06f);
    const F Lg1 = S::fset1(0.66666662693f), Lg2 = S::fset1(0.40000972152f), Lg3 = S::fset1(0.28498786688f),
            Lg4 = S::fset1(0.24279078841f);
    const U ix = S::add(S::as_u(u), S::set1(0x3f800000u - 0x3f3504f3u));
    const F dk = S::cvt(S::sub(S::template srli<23>(ix), S::set1(0x7f)));
    const F f = S::fadd(S::as_f(S::add(S::and_(ix, S::set1(0x007fffffu)), S::set1(0x3f3504f3u))), S::fset1(-1.0f));
    const F s = S::fdiv(f, S::fadd(S::fset1(2.0f), f));
    const F z = S::fmul(s, s), w = S::fmul(z, z);
    const F t1 = S::fmul(w, S::ffma(w, Lg4, Lg2));
    const F R = S::ffma(z, S::ffma(w, Lg3, Lg1), t1);
    const F half_f = S::fmul(S::fset1(0.5f), f);
    const F a = S::ffma(s, S::ffma(half_f, f, R), S::fmul(dk, ln2_lo));
    const F b = S::ffma(fneg(half_f), f, a);
    return S::fmul(S::fset1(-2.0f), S::ffma(dk, ln2_hi, S::fadd(b, f)));
  }

  // (rad * cos, rad * sin) for the pair (wr, wa): rad from word wr, angle from word wa.
  static void box_muller(U wr, U wa, F& zc, F& zs) {
    const F u = S::fmul(S::fadd(S::cvt(S::template srli<8>(wr)), S::fset1(1.0f)), S::fset1(1.0f / 16777216.0f));
    const F rad = S::fsqrt(neg2_log_unit(u));
    constexpr float c_hi = 3.74507028e-07f;
    constexpr float c_lo = float(6.28318530717958647692 / 16777216.0 - double(c_hi));
    const U v = S::add(S::template srli<8>(wa), S::set1(1u));
    const U q = S::template srli<22>(S::add(v, S::set1(1u << 21)));
    const F r = S::cvt(S::sub(v, S::template slli<22>(q)));
    const F x = S::ffma(r, S::fset1(c_hi), S::fmul(r, S::fset1(c_lo)));
    const F z = S::fmul(x, x);
    const F sp = S::ffma(S::ffma(S::fset1(-1.9515295891e-4f), z, S::fset1(8.3321608736e-3f)), z,
                         S::fset1(-1.6666654611e-1f));
    const F sn = S::ffma(S::fmul(sp, z), x, x);
    const F cp = S::ffma(S::ffma(S::fset1(2.443315711809948e-5f), z, S::fset1(-1.388731625493765e-3f)), z,
                         S::fset1(4.166664568298827e-2f));
    const F cs = S::ffma(S::fmul(cp, z), z, S::ffma(S::fset1(-0.5f), z, S::fset1(1.0f)));
    // Quarter turn q & 3: 0 (s, c), 1 (c, -s), 2 (-s, -c), 3 (-c, s) as (sin, cos).
    const U su = S::as_u(sn), cu = S::as_u(cs);
    const U swap = S::and_(S::xor_(su, cu), S::sub(S::set1(0), S::and_(q, S::set1(1))));
    const U sin_sign = S::template slli<30>(S::and_(q, S::set1(2)));
    const U cos_sign = S::template slli<31>(S::xor_(q, S::template srli<1>(q)));
    const F sin_v = S::as_f(S::xor_(S::xor_(su, swap), sin_sign));
    const F cos_v = S::as_f(S::xor_(S::xor_(cu, swap), cos_sign));
    zc = S::fmul(rad, cos_v);
    zs = S::fmul(rad, sin_v);
  }

  // ---- z and SR bits for one tile, in element order ------------------------------------------------
  // z[i] for elements t * T + i, i < T.
  static void gaussian_tile(uint64_t seed, uint64_t pid, int64_t t, float* z) {
    const uint64_t b0 = uint64_t(t) * uint64_t(T / 4);
    for (int64_t b = 0; b < T / 4; b += 2 * W) {
      U v[2][4];
      philox2(seed, pid, b0 + uint64_t(b), v[0], v[1]);
      for (int h = 0; h < 2; ++h) {
        F z0, z1, z2, z3;
        box_muller(v[h][0], v[h][1], z0, z1);
        box_muller(v[h][2], v[h][3], z2, z3);
        S::transpose_store(S::as_u(z0), S::as_u(z1), S::as_u(z2), S::as_u(z3),
                           reinterpret_cast<uint32_t*>(z + 4 * (b + h * W)));
      }
    }
  }

  static void rademacher_tile(uint64_t seed, uint64_t pid, int64_t t, float* z) {
    constexpr int64_t nb = T / 128;                  // Philox blocks in a tile
    constexpr int64_t nw = 4 * (nb > W ? nb : W);    // words computed (W > nb computes spare blocks)
    alignas(64) uint32_t words[nw];
    const uint64_t b0 = uint64_t(t) * uint64_t(nb);
    for (int64_t b = 0; b < nb; b += W) {
      U v[4];
      philox(seed, pid, b0 + uint64_t(b), v);
      S::transpose_store(v[0], v[1], v[2], v[3], words + 4 * b);
    }
    // Element i is bit (i & 31) of word i >> 5 (word k of block b is word 4 b + k); set means -1.
    const U one = S::set1(0x3f800000u);
    for (int64_t wi = 0; wi < T / 32; ++wi) {
      const U w = S::set1(words[wi]);
      for (int m = 0; m < 32; m += W) {
        const U bit = S::template slli<31>(S::srlv(w, S::add(S::iota(), S::set1(uint32_t(m)))));
        S::store(reinterpret_cast<uint32_t*>(z + 32 * wi + m), S::or_(bit, one));
      }
    }
  }

  static void z_tile(Dist d, uint64_t seed, uint64_t pid, int64_t t, float* z) {
    if (d == Dist::Gaussian) gaussian_tile(seed, pid, t, z);
    else rademacher_tile(seed, pid, t, z);
  }

  // r16 for the elements of tile t (Note [Stochastic rounding]): 8 elements per Philox block, word
  // (g >> 1) & 3, half g & 1, so the block-major words read as uint16 are r16 in element order.
  static void sr_tile(uint64_t key, uint64_t pid, int64_t t, uint16_t* r16) {
    const uint64_t b0 = uint64_t(t) * uint64_t(T / 8);
    for (int64_t b = 0; b < T / 8; b += 2 * W) {
      U v[2][4];
      philox2(key, pid, b0 + uint64_t(b), v[0], v[1]);
      for (int h = 0; h < 2; ++h)
        S::transpose_store(v[h][0], v[h][1], v[h][2], v[h][3], reinterpret_cast<uint32_t*>(r16) + 4 * (b + h * W));
    }
  }

  // ---- element conversions (kernels/ref/scalar.h) ---------------------------------------------
  static U bf16_rne(U u) {
    const M nan = S::gt(S::and_(u, S::set1(0x7FFFFFFFu)), S::set1(0x7F800000u));
    const U r = S::template srli<16>(S::add(u, S::add(S::set1(0x7FFFu), S::and_(S::template srli<16>(u), S::set1(1u)))));
    return S::select(nan, S::or_(S::template srli<16>(u), S::set1(0x40u)), r);
  }
  static U bf16_sr(U u, U r16) {
    const M special = S::gt(S::and_(u, S::set1(0x7FFFFFFFu)), S::set1(0x7F7FFFFFu));
    const U up = S::select(S::gt(S::and_(u, S::set1(0xFFFFu)), r16), S::set1(1u), S::set1(0u));
    return S::select(special, bf16_rne(u), S::add(S::template srli<16>(u), up));
  }
  static U f16_rne(F f) {
    const M nan = S::gt(S::and_(S::as_u(f), S::set1(0x7FFFFFFFu)), S::set1(0x7F800000u));
    return S::select(nan, S::set1(0x7FFFu), S::f2h(f));
  }
  static U f16_sr(F f, U r16) {
    const U fu = S::as_u(f);
    const F a = S::as_f(S::and_(fu, S::set1(0x7FFFFFFFu)));
    const U sgn = S::and_(S::template srli<16>(fu), S::set1(0x8000u));
    const U r = S::f2h(a);  // a is not NaN where this is used
    const F rv = S::h2f(r);
    const U lo = S::select(S::fgt(rv, a), S::sub(r, S::set1(1u)), r);
    const F lov = S::h2f(lo);
    const F step = S::fsub(S::h2f(S::add(lo, S::set1(1u))), lov);
    const F frac16 = S::fmul(S::fdiv(S::fsub(a, lov), step), S::fset1(65536.0f));
    const U up = S::select(S::flt(S::cvt(r16), frac16), S::set1(1u), S::set1(0u));
    const U mag = S::select(S::feq(rv, a), r, S::add(lo, up));
    return S::select(S::flt(a, S::fset1(65504.0f)), S::or_(sgn, mag), f16_rne(f));
  }
  static F e4m3_decode(U q) {
    const U s = S::template slli<24>(S::and_(q, S::set1(0x80u)));
    const U e = S::and_(S::template srli<3>(q), S::set1(15u)), m = S::and_(q, S::set1(7u));
    const U normal = S::or_(s, S::or_(S::template slli<23>(S::add(e, S::set1(120u))), S::template slli<20>(m)));
    const U sub = S::or_(s, S::as_u(S::fmul(S::cvt(m), S::fset1(0.001953125f))));
    const U v = S::select(S::eq(e, S::set1(0u)), sub, normal);
    return S::as_f(S::select(S::eq(S::and_(q, S::set1(0x7Fu)), S::set1(0x7Fu)), S::or_(s, S::set1(0x7FC00000u)), v));
  }
  static U e4m3_rne(F f) {
    const U u = S::as_u(f);
    const U s = S::and_(S::template srli<24>(u), S::set1(0x80u));
    const U a = S::and_(u, S::set1(0x7FFFFFFFu));
    const U rn = S::add(a, S::add(S::set1(0x7FFFFu), S::and_(S::template srli<20>(a), S::set1(1u))));
    const U qn = S::template srli<20>(S::sub(rn, S::set1(0x3C000000u)));
    // Subnormal result, exponent e in [117, 120]: q = rne(mantissa >> (141 - e)).
    const U sh = S::sub(S::set1(141u), S::template srli<23>(a));
    const U mm = S::or_(S::and_(a, S::set1(0x7FFFFFu)), S::set1(0x800000u));
    const U q = S::srlv(mm, sh);
    const U rem = S::and_(mm, S::sub(S::sllv(S::set1(1u), sh), S::set1(1u)));
    const U half = S::sllv(S::set1(1u), S::sub(sh, S::set1(1u)));
    const M up = S::m_or(S::gt(rem, half), S::m_and(S::eq(rem, half), S::eq(S::and_(q, S::set1(1u)), S::set1(1u))));
    U r = S::select(up, S::add(q, S::set1(1u)), q);
    r = S::select(S::gt(S::set1(117u << 23), a), S::set1(0u), r);
    r = S::select(S::gt(a, S::set1(0x3C7FFFFFu)), qn, r);
    r = S::select(S::gt(a, S::set1(0x43DFFFFFu)), S::set1(0x7Eu), r);
    r = S::select(S::gt(a, S::set1(0x7F800000u)), S::set1(0x7Fu), r);
    return S::or_(s, r);
  }

  // W elements of type E at p + i as floats (fp8 without its scale).
  template <Elem E>
  static F load_elems(const void* p, int64_t i) {
    if constexpr (E == Elem::F32) return S::fload(static_cast<const float*>(p) + i);
    else if constexpr (E == Elem::BF16) return S::as_f(S::template slli<16>(S::load_u16(static_cast<const uint16_t*>(p) + i)));
    else if constexpr (E == Elem::F16) return S::h2f(S::load_u16(static_cast<const uint16_t*>(p) + i));
    else return e4m3_decode(S::load_u8(static_cast<const uint8_t*>(p) + i));
  }
  template <Elem E>
  static void load_tile(const void* src, const float* scales, float* val) {
    for (int64_t i = 0; i < T; i += W) {
      F x = load_elems<E>(src, i);
      if constexpr (E == Elem::F8E4M3) x = S::fmul(x, S::fload(scales + i));
      S::fstore(val + i, x);
    }
  }
  static void load_src(Elem e, const void* src, const float* scales, float* val) {
    switch (e) {
      case Elem::F32: return load_tile<Elem::F32>(src, scales, val);
      case Elem::F16: return load_tile<Elem::F16>(src, scales, val);
      case Elem::BF16: return load_tile<Elem::BF16>(src, scales, val);
      case Elem::F8E4M3: return load_tile<Elem::F8E4M3>(src, scales, val);
    }
  }

  template <Elem OUT, bool SR>
  static U encode(F v, U r16) {
    if constexpr (OUT == Elem::F32) return S::as_u(v);
    else if constexpr (OUT == Elem::BF16) return SR ? bf16_sr(S::as_u(v), r16) : bf16_rne(S::as_u(v));
    else return SR ? f16_sr(v, r16) : f16_rne(v);
  }
  template <Elem OUT>
  static F decode(U bits) {
    if constexpr (OUT == Elem::F32) return S::as_f(bits);
    else if constexpr (OUT == Elem::BF16) return S::as_f(S::template slli<16>(bits));
    else return S::h2f(bits);
  }
};

}  // namespace
}  // namespace zoff::k::host
