// The host kernels' entry points for one lane type S: zo_update/zo_perturb tiles, fp8 rows, fill_z.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/host/ew_tile.h"
#include "kernels/host/host_job.h"

namespace zoff::k::host {
namespace {  // Note [ISA translation units]

constexpr int esize(Elem e) { return e == Elem::F32 ? 4 : e == Elem::F8E4M3 ? 1 : 2; }

// Note [Tile passes on the host]
// A tile runs Note [Term passes] exactly as ew_blocks in kernels/ref/zo_ref.cpp does per element:
// pass p starts the sum at -0, adds coeff_k * z_k for its terms in order (z for the whole tile, one term at
// a time), forms t * keep (+ sum), rounds to the output dtype (with the pass's SR bits) and, unless
// it is the last pass, decodes that for the next pass. Each operation is the same IEEE operation on
// the same operands as in the reference, only W lanes at a time. The mirror output (Note [Mirror
// perturbation]) keeps its own value and sum with the negated coefficients, sharing z.
template <class S, Elem OUT, bool SR>
struct Ew {
  using K = Tile<S>;
  using U = typename S::U;
  using F = typename S::F;
  static constexpr int W = S::W;
  static constexpr int64_t T = kTile;

  static void store_out(void* out, int64_t i, U b) {
    if constexpr (OUT == Elem::F32) S::store(static_cast<uint32_t*>(out) + i, b);
    else S::store_u16(static_cast<uint16_t*>(out) + i, b);
  }

  // One pass's rounding step over the tile for one output (val, acc) -> val or out.
  static void finish(float* val, const float* acc, bool has_terms, F keep, const uint16_t* r16, bool last, void* out) {
    for (int64_t i = 0; i < T; i += W) {
      const F t = S::fmul(S::fload(val + i), keep);
      const F v = has_terms ? S::fadd(t, S::fload(acc + i)) : t;
      const U b = K::template encode<OUT, SR>(v, SR ? S::load_u16(r16 + i) : S::set1(0u));
      if (last) store_out(out, i, b);
      else S::fstore(val + i, K::template decode<OUT>(b));
    }
  }

  // One whole tile; src, scales, out and out2 point at the tile's element 0 (staged when partial).
  static void tile(const HostJob& h, int64_t t, const void* src, const float* scales, void* out, void* out2) {
    const EwJob& j = h.job;
    alignas(64) float val[T], acc[T], z[T], val2[T], acc2[T];
    alignas(64) uint16_t r16[SR ? T : 1];
    const bool mirror = out2 != nullptr;
    K::load_src(j.src_elem, src, scales, val);
    if (mirror) std::memcpy(val2, val, sizeof val);
    const int passes = j.nterms <= 0 ? 1 : (j.nterms + kMaxTerms - 1) / kMaxTerms;
    for (int p = 0; p < passes; ++p) {
      const int k0 = p * kMaxTerms, k1 = int(imin(j.nterms, k0 + kMaxTerms));
      for (int k = k0; k < k1; ++k) {
        K::z_tile(j.dist, j.terms[k].seed, j.pid, t, z);
        const F c = S::fset1(j.terms[k].coeff), nc = S::fset1(-j.terms[k].coeff);
        const F zero = S::fset1(-0.0f);  // Note [Term passes]: the sum starts at -0
        for (int64_t i = 0; i < T; i += W) {
          const F zi = S::fload(z + i);
          S::fstore(acc + i, S::fadd(k == k0 ? zero : S::fload(acc + i), S::fmul(c, zi)));
          if (mirror) S::fstore(acc2 + i, S::fadd(k == k0 ? zero : S::fload(acc2 + i), S::fmul(nc, zi)));
        }
      }
      if constexpr (SR) K::sr_tile(h.sr_keys[p], j.pid, t, r16);
      const F keep = S::fset1(p == 0 ? j.keep : 1.0f);
      const bool last = p + 1 == passes;
      finish(val, acc, k1 > k0, keep, r16, last, out);
      if (mirror) finish(val2, acc2, k1 > k0, keep, r16, last, out2);
    }
  }

  static void run(const HostJob& h, int64_t t0, int64_t t1) {
    const EwJob& j = h.job;
    const int ss = esize(j.src_elem), os = esize(j.out_elem);
    const bool f8 = j.src_elem == Elem::F8E4M3;
    const char* src = static_cast<const char*>(j.src);
    char* out = static_cast<char*>(j.out);
    char* out2 = static_cast<char*>(j.out2);
    alignas(64) unsigned char sbuf[T * 4], obuf[T * 4], obuf2[T * 4];
    alignas(64) float scales[f8 ? T : 1];
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t e0 = t * T, i0 = imax(e0, j.first), i1 = imin(e0 + T, j.first + j.n);
      const int64_t lo = i0 - e0, cnt = i1 - i0, off = i0 - j.first;  // off: index into src / out
      if (f8) {
        if (cnt < T) std::memset(scales, 0, sizeof(float) * T);
        int64_t r = off / j.row_len, c = off % j.row_len;
        for (int64_t i = lo; i < lo + cnt; ++i) {
          scales[i] = j.row_scales[r];
          if (++c == j.row_len) c = 0, ++r;
        }
      }
      if (cnt == T) {
        tile(h, t, src + off * ss, scales, out + off * os, out2 ? out2 + off * os : nullptr);
        continue;
      }
      std::memset(sbuf, 0, sizeof sbuf);
      std::memcpy(sbuf + lo * ss, src + off * ss, size_t(cnt * ss));
      tile(h, t, sbuf, scales, obuf, out2 ? obuf2 : nullptr);
      std::memcpy(out + off * os, obuf + lo * os, size_t(cnt * os));
      if (out2) std::memcpy(out2 + off * os, obuf2 + lo * os, size_t(cnt * os));
    }
  }
};

template <class S>
void ew_entry(const HostJob& h, int64_t t0, int64_t t1) {
  const bool sr = h.job.sr_seed != 0;
  switch (h.job.out_elem) {
    case Elem::F32: return Ew<S, Elem::F32, false>::run(h, t0, t1);
    case Elem::F16: return sr ? Ew<S, Elem::F16, true>::run(h, t0, t1) : Ew<S, Elem::F16, false>::run(h, t0, t1);
    case Elem::BF16: return sr ? Ew<S, Elem::BF16, true>::run(h, t0, t1) : Ew<S, Elem::BF16, false>::run(h, t0, t1);
    case Elem::F8E4M3: return;  // rejected by perturb_job / update_job
  }
}

// Note [Signalling NaN in a row max]
// The reference's row max is a chain of glibc fmaxf calls, and fmaxf returns NaN when either
// argument is a signalling NaN (quiet NaNs are skipped), so the chain ends as the max of the non-NaN
// values after the last signalling NaN, or NaN (scale 1) if there are none. The vector max skips
// every NaN; rows holding a signalling NaN (never produced by arithmetic, only by crafted bits) are
// detected and their max is redone in order with those semantics. The GPU's fmaxf skips all NaNs.
inline float fmaxf_glibc(float m, float y) {
  uint32_t mb, yb;
  std::memcpy(&mb, &m, 4);
  std::memcpy(&yb, &y, 4);
  const auto snan = [](uint32_t b) { b &= 0x7FFFFFFFu; return b > 0x7F800000u && b < 0x7FC00000u; };
  if (snan(mb) || snan(yb)) return __builtin_nanf("");
  if (y != y) return m;
  if (m != m) return y;
  return y > m ? y : m;
}

// Note [fp8 row scale] (kernels/ref/fp8_ref.cpp) W columns at a time; a row's last cols % W
// columns go through a zero-padded buffer (zeros never raise the max).
template <class S, Elem E>
void pack_rows(const PackFp8Args& a, int64_t r0, int64_t r1) {
  using K = Tile<S>;
  using F = typename S::F;
  using U = typename S::U;
  constexpr int W = S::W, es = esize(E);
  const int64_t full = a.cols / W * W, rest = a.cols - full;
  const auto abs = [](F x) { return S::and_(S::as_u(x), S::set1(0x7FFFFFFFu)); };
  const auto snan = [](U b) {
    return S::select(S::m_and(S::gt(b, S::set1(0x7F800000u)), S::gt(S::set1(0x7FC00000u), b)), S::set1(1u), S::set1(0u));
  };
  for (int64_t r = r0; r < r1; ++r) {
    const char* x = static_cast<const char*>(a.src) + r * a.cols * es;
    uint8_t* q = a.dst + r * a.cols;
    alignas(64) unsigned char tail[W * 4] = {};
    std::memcpy(tail, x + full * es, size_t(rest * es));
    F m = S::fset1(0.0f);
    U sig = S::set1(0u);
    for (int64_t c = 0; c < full; c += W) {
      const U b = abs(K::template load_elems<E>(x, c));
      m = S::fmax(S::as_f(b), m);
      sig = S::or_(sig, snan(b));
    }
    if (rest) {
      const U b = abs(K::template load_elems<E>(tail, 0));
      m = S::fmax(S::as_f(b), m);
      sig = S::or_(sig, snan(b));
    }
    float mx = S::hmax(m);
    if (S::hmax(S::cvt(sig)) > 0.0f) {  // Note [Signalling NaN in a row max]
      mx = 0.0f;
      alignas(64) float v[W];
      for (int64_t c = 0; c < a.cols; c += W) {
        S::fstore(v, S::as_f(abs(K::template load_elems<E>(c < full ? static_cast<const void*>(x) : tail, c < full ? c : 0))));
        for (int l = 0; l < W && c + l < a.cols; ++l) mx = fmaxf_glibc(mx, v[l]);
      }
    }
    float s = mx > 0.0f ? mx / 448.0f : 1.0f;
    if (s == 0.0f) s = 1.0f;
    a.scales[r] = s;
    const F sv = S::fset1(s);
    for (int64_t c = 0; c < full; c += W) S::store_u8(q + c, K::e4m3_rne(S::fdiv(K::template load_elems<E>(x, c), sv)));
    if (rest) {
      alignas(64) uint8_t qt[W];
      S::store_u8(qt, K::e4m3_rne(S::fdiv(K::template load_elems<E>(tail, 0), sv)));
      std::memcpy(q + full, qt, size_t(rest));
    }
  }
}

template <class S>
void pack_entry(const PackFp8Args& a, int64_t r0, int64_t r1) {
  switch (a.src_elem) {
    case Elem::F32: return pack_rows<S, Elem::F32>(a, r0, r1);
    case Elem::F16: return pack_rows<S, Elem::F16>(a, r0, r1);
    case Elem::BF16: return pack_rows<S, Elem::BF16>(a, r0, r1);
    case Elem::F8E4M3: return;  // rejected by check_pack
  }
}

template <class S>
void fill_entry(float* out, int64_t n, uint64_t pid, uint64_t seed, Dist d, int64_t t0, int64_t t1) {
  alignas(64) float z[kTile];
  for (int64_t t = t0; t < t1; ++t) {
    Tile<S>::z_tile(d, seed, pid, t, z);
    std::memcpy(out + t * kTile, z, sizeof(float) * size_t(imin(kTile, n - t * kTile)));
  }
}

template <class S>
IsaKernels make_kernels() {
  return IsaKernels{&ew_entry<S>, &pack_entry<S>, &fill_entry<S>};
}

}  // namespace
}  // namespace zoff::k::host
