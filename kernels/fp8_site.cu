// zo_update_fp8 on the GPU: fp8 copy in, forward weights and the master's delta codes out (Note [fp8 at the GPU site]).
#include "kernels/cuda_check.cuh"
#include "kernels/fast_div.h"
#include "kernels/fp8_site.h"
#include "kernels/hw_convert.cuh"

namespace zoff::k {
namespace {

// Note [fp8 update kernel layout]
// Session 11's profile had this kernel at ~40% of the bf16 stochastic-rounding update's element rate
// (bench_kernels BM_ZoUpdateFp8 against BM_ZoUpdate: 98 vs 282 Gelem/s, Rademacher 122 vs 425), though
// it moves fewer bytes (1 + 2 + 0.25 per element against 4). What it did beyond that kernel, per 8
// elements: a 64-bit division for the row, a row walk and a scale load per element, a second Philox
// call for Rademacher signs that the first call already holds, and a coalesced-group scan (a
// generic one, over 64-bit counts) wherever a lane had an exception. Now:
// - a thread's 8 elements share one row whenever row_len % 8 == 0 (every OPT/Llama matrix and
//   vector; first % 8 == 0 is required): one 32-bit division by multiply-high (FastDiv,
//   kernels/fast_div.h), one scale load, one scale exponent; other row lengths keep the walk;
// - Rademacher: one Philox block serves both groups of 4 (q even, so q and q + 1 share q >> 5);
// - the warp walks the chunks together (lanes past the end idle), so the exception slots are
//   reserved with full-warp ballots: a lane's count (0..8) is 4 bits, its exclusive prefix is
//   sum_b 2^b * popc(ballot(bit b) & lanes below), and lane 0 does the one atomicAdd.
// Outputs are unchanged bit for bit (tests/gpu/test_fp8_site_gpu.cpp against ref::zo_update_fp8).
// Measured (docs/results.md, session 12): 98 -> 116 Gelem/s at 1.4% exceptions, but at the step's
// 0.15% the gain is small (~125 against ~110 in session 11's step profile). ncu then showed the
// kernel issue-bound at 165 instructions per element (the bf16 update: 83), 17 of them branches
// of fp8_site_code's early returns; its select form gained another 1.4%. Session 15: the e4m3 decode
// and the bf16 rounding by hardware conversions (kernels/hw_convert.cuh): 126.9 -> 148.7 Gelem/s at
// the step's rate, the 30B step's device part 0.73 -> 0.70 s. The rest is arithmetic.

struct Fp8Params {
  const uint8_t* q;
  const float* row_scales;
  int64_t row_len;
  FastDiv rows;  // row_len, when it fits 32 bits and n < 2^32
  bool fast_rows;
  void* w;
  int64_t n, first;
  PhiloxKey srk;
  int nterms;
  PhiloxKey key[kMaxTerms];
  float coeff[kMaxTerms];
  Fp8DeltaOut d;
};

// The first list slot for this lane's `cnt` exceptions (0 <= cnt <= 8), reserved for the whole
// warp with one atomicAdd; every lane of the warp calls it (Note [fp8 update kernel layout]).
__device__ __forceinline__ unsigned long long fp8_reserve(const Fp8Params& p, uint32_t cnt) {
  const uint32_t lane = threadIdx.x & 31u, below = (1u << lane) - 1u;
  uint32_t pre = 0, total = 0;
#pragma unroll
  for (int b = 0; b < 4; ++b) {
    const uint32_t m = __ballot_sync(0xFFFFFFFFu, (cnt >> b) & 1u);
    pre += uint32_t(__popc(m & below)) << b;
    total += uint32_t(__popc(m)) << b;
  }
  unsigned long long base = 0;
  if (lane == 0) base = atomicAdd(p.d.count, (unsigned long long)total);
  return __shfl_sync(0xFFFFFFFFu, base, 0) + pre;
}

// One thread = 8 elements (one stochastic-rounding Philox call, two code bytes). ROW8: the 8 share
// a row (row_len % 8 == 0).
template <Dist D, Elem W, bool ROW8>
__global__ void __launch_bounds__(256, 4) fp8_update_kernel(const __grid_constant__ Fp8Params p) {
  const int64_t chunks = (p.n + 7) / 8;
  const int64_t warp0 = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) & ~int64_t(31);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t cb = warp0; cb < chunks; cb += stride) {  // warp-uniform trip count
    const int64_t c = cb + (threadIdx.x & 31);
    const bool live = c < chunks;
    const int64_t i0 = 8 * c, g0 = p.first + i0;
    const bool full = i0 + 8 <= p.n;
    uint32_t qb[8];
    float qf[8];  // dequant(q) / scale (Note [Hardware e4m3 decode])
    {
      uint2 v;
      if (full) {
        v = __ldcs(reinterpret_cast<const uint2*>(p.q + i0));
      } else {
        v = make_uint2(0u, 0u);
#pragma unroll
        for (int j = 0; j < 8; ++j)
          if (live && i0 + j < p.n) (j < 4 ? v.x : v.y) |= uint32_t(p.q[i0 + j]) << (8 * (j & 3));
      }
#pragma unroll
      for (int j = 0; j < 8; ++j) qb[j] = ((j < 4 ? v.x : v.y) >> (8 * (j & 3))) & 0xFFu;
      float lo[4], hi[4];
      e4m3x4_to_f32(v.x, lo);
      e4m3x4_to_f32(v.y, hi);
#pragma unroll
      for (int j = 0; j < 4; ++j) qf[j] = lo[j], qf[j + 4] = hi[j];
    }
    float acc[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[j] = -0.0f;
#pragma unroll
    for (int k = 0; k < kMaxTerms; ++k) {
      if (k >= p.nterms) break;
      float z[8];
      if constexpr (D == Dist::Rademacher) {  // groups q, q + 1 (q even) share one Philox block
        const Philox4 r = philox_keyed(p.key[k], z_group_block<D>(uint64_t(g0 >> 2)));
        z_group_from<D>(r, uint64_t(g0 >> 2), z);
        z_group_from<D>(r, uint64_t(g0 >> 2) + 1, z + 4);
      } else {
        z_group_keyed<D>(p.key[k], uint64_t(g0 >> 2), z);
        z_group_keyed<D>(p.key[k], uint64_t(g0 >> 2) + 1, z + 4);
      }
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[j] = add_rn(acc[j], mul_rn(p.coeff[k], z[j]));
    }
    const Philox4 sr = philox_keyed(p.srk, uint64_t(g0 >> 3));
    uint32_t code = 0, exc = 0, r16[8];
    float wv[8];
    if constexpr (ROW8) {
      const int64_t row = p.fast_rows ? int64_t(p.rows.div(uint32_t(i0))) : i0 / p.row_len;
      const float scale = live ? p.row_scales[row] : 1.0f;
      const int k2 = int((f32_bits(scale) >> 23) & 0xFFu) - 127;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        r16[j] = (sr.v[j >> 1] >> (16 * (j & 1))) & 0xFFFFu;
        const uint32_t cj = live && (full || i0 + j < p.n) ? fp8_site_code(qb[j], k2, acc[j], r16[j]) : kDeltaSame;
        code |= cj << (2 * j);
        exc |= uint32_t(cj == kDeltaException) << j;
        wv[j] = add_rn(mul_rn(qf[j], scale), acc[j]);
      }
    } else {
      int64_t row = 0, rem = 0;
      if (live) {
        row = i0 / p.row_len;
        rem = i0 - row * p.row_len;
      }
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const bool in = live && i0 + j < p.n;
        const float scale = in ? p.row_scales[row] : 1.0f;
        r16[j] = (sr.v[j >> 1] >> (16 * (j & 1))) & 0xFFFFu;
        const uint32_t cj = in ? fp8_site_code(qb[j], int((f32_bits(scale) >> 23) & 0xFFu) - 127, acc[j], r16[j]) : kDeltaSame;
        code |= cj << (2 * j);
        exc |= uint32_t(cj == kDeltaException) << j;
        wv[j] = add_rn(mul_rn(qf[j], scale), acc[j]);
        if (++rem == p.row_len) rem = 0, ++row;
      }
    }
    if (live) {
      if (i0 + 4 < p.n) *reinterpret_cast<uint16_t*>(p.d.codes + i0 / 4) = uint16_t(code);
      else p.d.codes[i0 / 4] = uint8_t(code);  // the block's codes may end after this byte
    }
    if (__any_sync(0xFFFFFFFFu, exc != 0)) {
      // Compile-time element indices only, so acc and r16 stay in registers (a runtime index
      // would put them in local memory for every element).
      const unsigned long long base = fp8_reserve(p, uint32_t(__popc(exc)));
#pragma unroll
      for (int j = 0; j < 8; ++j)
        if ((exc >> j) & 1u) {
          const unsigned long long slot = base + (unsigned long long)__popc(exc & ((1u << j) - 1u));
          if (slot < (unsigned long long)p.d.capacity)
            *reinterpret_cast<uint4*>(p.d.list + slot) =
                make_uint4(uint32_t(p.d.index_base + i0 + j), r16[j], f32_bits(acc[j]), 0u);
        }
    }
    if (!live) continue;
    if constexpr (W == Elem::F32) {
      float* o = static_cast<float*>(p.w) + i0;
      if (full) {
        __stcs(reinterpret_cast<float4*>(o), make_float4(wv[0], wv[1], wv[2], wv[3]));
        __stcs(reinterpret_cast<float4*>(o) + 1, make_float4(wv[4], wv[5], wv[6], wv[7]));
      } else {
        for (int j = 0; j < 8 && i0 + j < p.n; ++j) o[j] = wv[j];
      }
    } else {
      uint32_t ow[4];  // element 2u in the low half of ow[u]
      if constexpr (W == Elem::BF16) {
        bf16_pack_rne<8>(wv, ow);  // Note [Hardware bf16 rounding]
      } else {
#pragma unroll
        for (int u = 0; u < 4; ++u) ow[u] = encode<W, false>(wv[2 * u], 0u) | (encode<W, false>(wv[2 * u + 1], 0u) << 16);
      }
      uint16_t* o = static_cast<uint16_t*>(p.w) + i0;
      if (full) {
        __stcs(reinterpret_cast<uint4*>(o), make_uint4(ow[0], ow[1], ow[2], ow[3]));
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j)  // compile-time j: ow stays in registers
          if (i0 + j < p.n) o[j] = uint16_t(ow[j / 2] >> (16 * (j & 1)));
      }
    }
  }
}

template <Dist D, Elem W, bool ROW8>
void launch_rows(const Fp8Params& p, cudaStream_t s) {
  const int grid = grid_for(fp8_update_kernel<D, W, ROW8>, 256, (p.n + 7) / 8);
  fp8_update_kernel<D, W, ROW8><<<grid, 256, 0, s>>>(p);
  ZOFF_CUDA_LAUNCH_CHECK(fp8_update_kernel);
}

template <Dist D, Elem W>
void launch(const Fp8Params& p, cudaStream_t s) {
  if (p.row_len % 8 == 0) launch_rows<D, W, true>(p, s);
  else launch_rows<D, W, false>(p, s);
}

template <Dist D>
void launch_w(const Fp8Params& p, Elem w, cudaStream_t s) {
  switch (w) {
    case Elem::BF16: return launch<D, Elem::BF16>(p, s);
    case Elem::F16: return launch<D, Elem::F16>(p, s);
    case Elem::F32: return launch<D, Elem::F32>(p, s);
    case Elem::F8E4M3: break;
  }
  ZOFF_CHECK(false, "zo_update_fp8: w must be bf16, fp16 or fp32");
}

}  // namespace

void zo_update_fp8(const Fp8UpdateArgs& a, cudaStream_t s) {
  check_fp8_update_args(a);
  const int64_t wsize = a.w_elem == Elem::F32 ? 4 : 2;
  ZOFF_CHECK(reinterpret_cast<uintptr_t>(a.q) % 8 == 0 && reinterpret_cast<uintptr_t>(a.w) % (8 * wsize) == 0 &&
                 reinterpret_cast<uintptr_t>(a.delta.codes) % 2 == 0 && reinterpret_cast<uintptr_t>(a.delta.list) % 16 == 0,
             "zo_update_fp8: q, w, codes and list must be aligned to 8 elements (8 / 16 / 32 bytes, 2, 16)");
  if (a.n <= 0) return;
  Fp8Params p{};
  p.q = a.q;
  p.row_scales = a.row_scales;
  p.row_len = a.row_len;
  p.fast_rows = a.row_len <= int64_t(UINT32_MAX) && a.n <= int64_t(UINT32_MAX);
  if (p.fast_rows) p.rows = FastDiv(uint32_t(a.row_len));
  p.w = a.w;
  p.n = a.n;
  p.first = a.first;
  p.srk = philox_key(sr_key(a.sr_seed, 0), a.pid);
  p.nterms = a.nterms;
  for (int k = 0; k < a.nterms; ++k) {
    p.key[k] = philox_key(a.terms[k].seed, a.pid);
    p.coeff[k] = a.terms[k].coeff;
  }
  p.d = a.delta;
  if (a.dist == Dist::Gaussian) launch_w<Dist::Gaussian>(p, a.w_elem, s);
  else launch_w<Dist::Rademacher>(p, a.w_elem, s);
}

}  // namespace zoff::k
