// zo_update_fp8 on the GPU: fp8 copy in, forward weights and the master's delta codes out (Note [fp8 at the GPU site]).
#include <cooperative_groups.h>
#include <cooperative_groups/scan.h>

#include "kernels/cuda_check.cuh"
#include "kernels/fp8_site.h"

namespace zoff::k {
namespace {

struct Fp8Params {
  const uint8_t* q;
  const float* row_scales;
  int64_t row_len;
  void* w;
  int64_t n, first;
  PhiloxKey srk;
  int nterms;
  PhiloxKey key[kMaxTerms];
  float coeff[kMaxTerms];
  Fp8DeltaOut d;
};

// The first of n list slots for this thread's exceptions: the lanes with any form a coalesced
// group that reserves its slots with one atomicAdd (as Note [Delta emission]).
__device__ __forceinline__ unsigned long long fp8_reserve(const Fp8Params& p, unsigned long long n) {
  namespace cg = cooperative_groups;
  const cg::coalesced_group grp = cg::coalesced_threads();
  const unsigned long long pre = cg::exclusive_scan(grp, n);
  unsigned long long base = 0;
  if (grp.thread_rank() == grp.size() - 1) base = atomicAdd(p.d.count, pre + n);
  return grp.shfl(base, grp.size() - 1) + pre;
}

// One thread = 8 elements (one stochastic-rounding Philox call, two code bytes).
template <Dist D, Elem W>
__global__ void __launch_bounds__(256) fp8_update_kernel(const __grid_constant__ Fp8Params p) {
  const int64_t chunks = (p.n + 7) / 8;
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < chunks; c += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i0 = 8 * c, g0 = p.first + i0;
    const bool full = i0 + 8 <= p.n;
    uint32_t qb[8];
    if (full) {
      const uint2 v = __ldcs(reinterpret_cast<const uint2*>(p.q + i0));
#pragma unroll
      for (int j = 0; j < 8; ++j) qb[j] = ((j < 4 ? v.x : v.y) >> (8 * (j & 3))) & 0xFFu;
    } else {
#pragma unroll
      for (int j = 0; j < 8; ++j) qb[j] = i0 + j < p.n ? p.q[i0 + j] : 0u;
    }
    float acc[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[j] = -0.0f;
#pragma unroll
    for (int k = 0; k < kMaxTerms; ++k) {
      if (k >= p.nterms) break;
      float z[8];
      z_group_keyed<D>(p.key[k], uint64_t(g0 >> 2), z);
      z_group_keyed<D>(p.key[k], uint64_t(g0 >> 2) + 1, z + 4);
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[j] = add_rn(acc[j], mul_rn(p.coeff[k], z[j]));
    }
    const Philox4 sr = philox_keyed(p.srk, uint64_t(g0 >> 3));
    int64_t row = i0 / p.row_len, rem = i0 - row * p.row_len;
    uint32_t code = 0, exc = 0, r16[8];
    float wv[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float scale = p.row_scales[row];
      r16[j] = (sr.v[j >> 1] >> (16 * (j & 1))) & 0xFFFFu;
      const uint32_t cj = i0 + j < p.n ? fp8_site_code(qb[j], int((f32_bits(scale) >> 23) & 0xFFu) - 127, acc[j], r16[j])
                                       : kDeltaSame;
      code |= cj << (2 * j);
      exc |= uint32_t(cj == kDeltaException) << j;
      wv[j] = add_rn(mul_rn(e4m3_bits_to_f32(uint8_t(qb[j])), scale), acc[j]);
      if (++rem == p.row_len) rem = 0, ++row;
    }
    if (i0 + 4 < p.n) *reinterpret_cast<uint16_t*>(p.d.codes + i0 / 4) = uint16_t(code);
    else p.d.codes[i0 / 4] = uint8_t(code);  // the block's codes may end after this byte
    if (exc != 0) {
      // Compile-time element indices only, so acc and r16 stay in registers (a runtime index
      // would put them in local memory for every element).
      const unsigned long long base = fp8_reserve(p, (unsigned long long)__popc(exc));
#pragma unroll
      for (int j = 0; j < 8; ++j)
        if ((exc >> j) & 1u) {
          const unsigned long long slot = base + (unsigned long long)__popc(exc & ((1u << j) - 1u));
          if (slot < (unsigned long long)p.d.capacity)
            *reinterpret_cast<uint4*>(p.d.list + slot) =
                make_uint4(uint32_t(p.d.index_base + i0 + j), r16[j], f32_bits(acc[j]), 0u);
        }
    }
    if constexpr (W == Elem::F32) {
      float* o = static_cast<float*>(p.w) + i0;
      if (full) {
        __stcs(reinterpret_cast<float4*>(o), make_float4(wv[0], wv[1], wv[2], wv[3]));
        __stcs(reinterpret_cast<float4*>(o) + 1, make_float4(wv[4], wv[5], wv[6], wv[7]));
      } else {
        for (int j = 0; j < 8 && i0 + j < p.n; ++j) o[j] = wv[j];
      }
    } else {
      uint32_t b[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) b[j] = encode<W, false>(wv[j], 0u);
      uint16_t* o = static_cast<uint16_t*>(p.w) + i0;
      if (full) {
        __stcs(reinterpret_cast<uint4*>(o), make_uint4(b[0] | (b[1] << 16), b[2] | (b[3] << 16), b[4] | (b[5] << 16),
                                                       b[6] | (b[7] << 16)));
      } else {
        for (int j = 0; j < 8 && i0 + j < p.n; ++j) o[j] = uint16_t(b[j]);
      }
    }
  }
}

template <Dist D, Elem W>
void launch(const Fp8Params& p, cudaStream_t s) {
  const int grid = grid_for(fp8_update_kernel<D, W>, 256, (p.n + 7) / 8);
  fp8_update_kernel<D, W><<<grid, 256, 0, s>>>(p);
  ZOFF_CUDA_LAUNCH_CHECK(fp8_update_kernel);
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
