// The one elementwise ZO kernel behind zo_update and zo_perturb: a read-modify-write pass, z in registers.
#pragma once

#include <cooperative_groups.h>
#include <cooperative_groups/reduce.h>
#include <cooperative_groups/scan.h>
#include <cstdint>

#include "kernels/cuda_check.cuh"
#include "kernels/hw_convert.cuh"
#include "kernels/ref/ew_job.h"
#include "kernels/ref/scalar.h"
#include "kernels/zo_kernels.h"

namespace zoff::k {

// Note [Elementwise kernel layout]
// One launch = one pass of Note [Term passes]. Element i of the launch has parameter index
// g = first + i, and everything random is a function of g alone, so the work can be cut anywhere.
// - Vector body: the longest run [vbeg, vend) where out and src are 16-byte aligned and g is a
//   multiple of V = 16 / min(sizeof out, sizeof src) elements (4 for fp32, 8 for 16-bit, 16 from
//   fp8). A thread moves V elements with 16-byte loads/stores (streaming cache hints), so a
//   Gaussian group (4 elements, one Philox call, Note [Philox keying]) never straddles threads.
// - Warps walk 1024-index tiles (aligned to g = 0 mod 1024) in a grid-stride loop, loading a batch
//   of a tile's rows before computing so that several 16-byte loads per thread are in flight (all
//   rows for Rademacher, fewer for Gaussian: Note [Gaussian occupancy]).
// - Rademacher: a tile spans 8 Philox blocks of 128 signs; lane l computes word (l & 3) of block
//   (l >> 2) once per term, and the thread holding indices g.. fetches its word with one shuffle
//   from lane (g mod 1024) / 32: 1 Philox call per 1024 elements instead of one per thread.
// - Stochastic rounding bits: one Philox call per 8 elements (Note [Stochastic rounding]).
// - Scalar part: the head before vbeg, the tail after vend (fewer than V elements each), or the
//   whole range when the pointers or `first` do not allow vectors, is done by groups of 4 indices
//   aligned to g = 0 mod 4 (one Philox call per group and term) with scalar loads.
struct EwParams {
  void* out;
  void* out2;  // MIRROR kernels only (Note [Mirror perturbation])
  const void* src;
  const float* row_scales;
  int64_t row_len;
  int64_t n, first;
  float keep;
  PhiloxKey srk;  // philox_key(sr_key(...), pid): Note [Keyed Philox]
  int nterms;
  PhiloxKey key[kMaxTerms];  // philox_key(seed_k, pid)
  float coeff[kMaxTerms];
  int64_t vbeg, vend;  // the vector body in launch indices; empty when vbeg == vend
  // Note [Delta write-back] (updates of 16-bit theta only; codes == nullptr: none).
  uint8_t* codes;
  DeltaEntry* dlist;
  int64_t dcap;
  unsigned long long* dcount;
  uint16_t* doverflow;
  uint32_t dbase;
  unsigned long long* dstored;
  int dsparse;
};

// Note [Delta emission]
// Exceptions are rare (~1% of elements at MeZO's learning rates), but one atomicAdd per exception
// on a single counter would serialise in L2. The lanes that have any exception form a coalesced
// group, scan their counts, and the last one reserves the group's slots with one atomicAdd; each
// lane then writes its entries (8-byte stores, contiguous across the group) or, past capacity,
// the new bits straight into the host master.
__device__ __forceinline__ void delta_emit(const EwParams& p, int n, uint32_t exc, const uint32_t* nbits, int64_t i0) {
  namespace cg = cooperative_groups;
  const cg::coalesced_group grp = cg::coalesced_threads();
  const unsigned long long pre = cg::exclusive_scan(grp, (unsigned long long)n);
  unsigned long long base = 0;
  if (grp.thread_rank() == grp.size() - 1) base = atomicAdd(p.dcount, pre + (unsigned long long)n);
  unsigned long long slot = grp.shfl(base, grp.size() - 1) + pre;
  for (uint32_t m = exc; m != 0; m &= m - 1, ++slot) {
    const int j = __ffs(m) - 1;
    if (slot < (unsigned long long)p.dcap)
      *reinterpret_cast<uint2*>(p.dlist + slot) = make_uint2(p.dbase + uint32_t(i0 + j), nbits[j]);
    else
      p.doverflow[i0 + j] = uint16_t(nbits[j]);
  }
}

constexpr int kEwBlock = 256;

// Note [Gaussian term unrolling]
// A Philox call under a PhiloxKey read from the kernel parameters at a compile-time index costs no
// instruction for its key words (they are constant-bank operands); at a run-time index each word
// is a load. Unrolling the whole Box-Muller body for all kMaxTerms terms would multiply the code
// eightfold for terms that rarely exist, so the first kGaussUnrolled (1: an update or a
// perturbation; 2: the fused update + next perturbation) are unrolled and the rest loop.
constexpr int kGaussUnrolled = 2;
constexpr int kTile = 1024;

// Note [Gaussian occupancy]
// Rademacher passes are memory-bound: a thread keeps all of a tile's rows in flight (8 x 16 bytes
// for fp32). Gaussian passes are bound by Philox + Box-Muller arithmetic, whose long dependent
// chains want more resident warps instead: a thread loads ZOFF_EW_GAUSS_ROWS rows at a time and the
// register cap admits ZOFF_EW_GAUSS_MIN_BLOCKS blocks per SM. Both are tuning knobs (bench_kernels,
// docs/results-kernels.md), not semantics. 4 blocks (64 registers) beat 3 by 6% on the H200 once
// Note [Keyed Philox] had cut the instruction count (session 7); they were even before.
#ifndef ZOFF_EW_GAUSS_ROWS
#define ZOFF_EW_GAUSS_ROWS 2
#endif
#ifndef ZOFF_EW_GAUSS_MIN_BLOCKS
#define ZOFF_EW_GAUSS_MIN_BLOCKS 4
#endif
constexpr int ew_min_blocks(Dist d) { return d == Dist::Gaussian ? ZOFF_EW_GAUSS_MIN_BLOCKS : 3; }

template <Elem OUT, Elem SRC>
constexpr int ew_vec() {
  return 16 / (elem_size(OUT) < elem_size(SRC) ? elem_size(OUT) : elem_size(SRC));
}

// 32-bit word w of a vector held as uint4s (w a compile-time constant after unrolling: registers).
template <int N>
__device__ __forceinline__ uint32_t u4_word(const uint4 (&a)[N], int w) {
  const uint4& v = a[w >> 2];
  return (w & 3) == 0 ? v.x : (w & 3) == 1 ? v.y : (w & 3) == 2 ? v.z : v.w;
}

// Bits of element j (of ES bytes) of a vector held as uint4s.
template <int ES, int N>
__device__ __forceinline__ uint32_t vec_elem(const uint4 (&a)[N], int j) {
  if constexpr (ES == 4) return u4_word(a, j);
  else if constexpr (ES == 2) return (u4_word(a, j >> 1) >> (16 * (j & 1))) & 0xFFFFu;
  else return (u4_word(a, j >> 2) >> (8 * (j & 3))) & 0xFFu;
}

template <Elem SRC>
__device__ __forceinline__ float load_scalar(const EwParams& p, int64_t i) {
  if constexpr (SRC == Elem::F32) return __ldcs(static_cast<const float*>(p.src) + i);
  else if constexpr (SRC == Elem::F8E4M3)
    return mul_rn(decode<SRC>(static_cast<const uint8_t*>(p.src)[i]), p.row_scales[i / p.row_len]);
  else return decode<SRC>(static_cast<const uint16_t*>(p.src)[i]);
}

template <Elem OUT>
__device__ __forceinline__ void store_scalar(const EwParams& p, int64_t i, uint32_t bits) {
  if constexpr (OUT == Elem::F32) static_cast<uint32_t*>(p.out)[i] = bits;
  else static_cast<uint16_t*>(p.out)[i] = uint16_t(bits);
}

__device__ __forceinline__ uint32_t pick_word(const Philox4& r, int w) {
  return (w & 2) ? ((w & 1) ? r.v[3] : r.v[2]) : ((w & 1) ? r.v[1] : r.v[0]);
}

template <Elem OUT, Elem SRC, Dist D, bool SR, bool MIRROR = false>
__global__ void __launch_bounds__(kEwBlock, ew_min_blocks(D)) ew_kernel(const __grid_constant__ EwParams p) {
  static_assert(!(MIRROR && SR), "mirror outputs are perturbations: no stochastic rounding");
  constexpr int V = ew_vec<OUT, SRC>();
  constexpr int OS = elem_size(OUT), SS = elem_size(SRC);
  constexpr int SRC_U4 = V * SS / 16, OUT_U4 = V * OS / 16;
  constexpr int ROWS = kTile / (32 * V);
  constexpr int RB = D == Dist::Gaussian && ZOFF_EW_GAUSS_ROWS < ROWS ? ZOFF_EW_GAUSS_ROWS : ROWS;  // rows per batch
  static_assert(ROWS % RB == 0, "ZOFF_EW_GAUSS_ROWS must divide the rows of a tile");
  static_assert(!SR || V % 8 == 0, "stochastic rounding draws bits for groups of 8");
  const int lane = threadIdx.x & 31;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nthreads = int64_t(gridDim.x) * blockDim.x;
  [[maybe_unused]] uint32_t stored = 0;  // code bytes this thread stored (Note [Sparse code stores])

  // ---- vector body ----
  if (p.vend > p.vbeg) {
    const int64_t abeg = p.first + p.vbeg, aend = p.first + p.vend;
    const int64_t t1 = (aend + kTile - 1) / kTile;
    for (int64_t t = abeg / kTile + (tid >> 5); t < t1; t += nthreads >> 5) {
      const int64_t T0 = t * kTile;
      uint32_t rw[kMaxTerms];
      if constexpr (D == Dist::Rademacher) {
        ZOFF_UNROLL
        for (int k = 0; k < kMaxTerms; ++k)
          if (k < p.nterms) rw[k] = pick_word(philox_keyed(p.key[k], uint64_t(T0 >> 7) + (lane >> 2)), lane & 3);
      }
      for (int rb = 0; rb < ROWS; rb += RB) {
        uint4 sv[RB][SRC_U4];
        ZOFF_UNROLL
        for (int r = 0; r < RB; ++r) {
          const int64_t g = T0 + int64_t((rb + r) * 32 + lane) * V;
          if (g >= abeg && g < aend) {
            const uint4* s = reinterpret_cast<const uint4*>(static_cast<const char*>(p.src) + (g - p.first) * SS);
            ZOFF_UNROLL
            for (int u = 0; u < SRC_U4; ++u) sv[r][u] = __ldcs(s + u);
          }
        }
        ZOFF_UNROLL
        for (int r = 0; r < RB; ++r) {
          const int64_t g = T0 + int64_t((rb + r) * 32 + lane) * V;
          uint32_t zw[kMaxTerms];
          if constexpr (D == Dist::Rademacher) {
            ZOFF_UNROLL
            for (int k = 0; k < kMaxTerms; ++k)
              if (k < p.nterms) zw[k] = __shfl_sync(0xffffffffu, rw[k], int((g - T0) >> 5)) >> (g & 31);
          }
          if (g < abeg || g >= aend) continue;
          const int64_t i0 = g - p.first;
          float x[V];
          if constexpr (SRC == Elem::F8E4M3) {
            int64_t row = i0 / p.row_len, rem = i0 - row * p.row_len;
            ZOFF_UNROLL
            for (int j = 0; j < V; ++j) {
              x[j] = mul_rn(decode<SRC>(vec_elem<SS>(sv[r], j)), p.row_scales[row]);
              if (++rem == p.row_len) rem = 0, ++row;
            }
          } else {
            ZOFF_UNROLL
            for (int j = 0; j < V; ++j) x[j] = decode<SRC>(vec_elem<SS>(sv[r], j));
          }
          float acc[V], acc2[MIRROR ? V : 1];
          ZOFF_UNROLL
          for (int j = 0; j < V; ++j) acc[j] = -0.0f;  // Note [Term passes]
          ZOFF_UNROLL
          for (int j = 0; j < (MIRROR ? V : 1); ++j) acc2[j] = -0.0f;
          if constexpr (D == Dist::Gaussian) {
            // Note [Gaussian term unrolling]: the first kGaussUnrolled terms at compile-time
            // indices (key words as constant operands), any further ones in a rolled loop.
            const auto term = [&](const PhiloxKey& key, float coeff) {
              float z[V];
              ZOFF_UNROLL
              for (int q = 0; q < V / 4; ++q) gaussian4(philox_keyed(key, uint64_t(g >> 2) + q), z + 4 * q);
              ZOFF_UNROLL
              for (int j = 0; j < V; ++j) acc[j] = add_rn(acc[j], mul_rn(coeff, z[j]));
              if constexpr (MIRROR) {
                ZOFF_UNROLL
                for (int j = 0; j < V; ++j) acc2[j] = add_rn(acc2[j], mul_rn(-coeff, z[j]));
              }
            };
            ZOFF_UNROLL
            for (int k = 0; k < kGaussUnrolled; ++k)
              if (k < p.nterms) term(p.key[k], p.coeff[k]);
#pragma unroll 1
            for (int k = kGaussUnrolled; k < p.nterms; ++k) term(p.key[k], p.coeff[k]);
          } else {
            ZOFF_UNROLL
            for (int k = 0; k < kMaxTerms; ++k) {
              if (k >= p.nterms) break;
              ZOFF_UNROLL
              for (int j = 0; j < V; ++j) acc[j] = add_rn(acc[j], mul_rn(p.coeff[k], ((zw[k] >> j) & 1u) ? -1.0f : 1.0f));
              if constexpr (MIRROR) {
                ZOFF_UNROLL
                for (int j = 0; j < V; ++j)
                  acc2[j] = add_rn(acc2[j], mul_rn(-p.coeff[k], ((zw[k] >> j) & 1u) ? -1.0f : 1.0f));
              }
            }
          }
          uint32_t ow[OUT_U4 * 4], ow2[MIRROR ? OUT_U4 * 4 : 1];
          float vo[V], vo2[MIRROR ? V : 1];
          ZOFF_UNROLL
          for (int j = 0; j < V; ++j) {
            const float t = mul_rn(x[j], p.keep);
            vo[j] = p.nterms > 0 ? add_rn(t, acc[j]) : t;
            if constexpr (MIRROR) vo2[j] = p.nterms > 0 ? add_rn(t, acc2[j]) : t;
          }
          if constexpr (OUT == Elem::BF16 && !SR) {
            bf16_pack_rne<V>(vo, ow);
            if constexpr (MIRROR) bf16_pack_rne<V>(vo2, ow2);
          } else {
            ZOFF_UNROLL
            for (int u = 0; u < OUT_U4 * 4; ++u) ow[u] = 0;
            ZOFF_UNROLL
            for (int u = 0; u < (MIRROR ? OUT_U4 * 4 : 1); ++u) ow2[u] = 0;
            ZOFF_UNROLL
            for (int s8 = 0; s8 < (V + 7) / 8; ++s8) {
              Philox4 sr{};
              if constexpr (SR) sr = philox_keyed(p.srk, uint64_t(g >> 3) + s8);
              ZOFF_UNROLL
              for (int jj = 0; jj < 8 && s8 * 8 + jj < V; ++jj) {
                const int j = s8 * 8 + jj;
                uint32_t r16 = SR ? (sr.v[jj >> 1] >> (16 * (jj & 1))) & 0xFFFFu : 0u;
                uint32_t b = encode<OUT, SR>(vo[j], r16);
                if constexpr (OS == 4) ow[j] = b;
                else ow[j >> 1] |= b << (16 * (j & 1));
                if constexpr (MIRROR) {
                  const uint32_t b2 = encode<OUT, false>(vo2[j], 0u);
                  if constexpr (OS == 4) ow2[j] = b2;
                  else ow2[j >> 1] |= b2 << (16 * (j & 1));
                }
              }
            }
          }
          uint4* o = reinterpret_cast<uint4*>(static_cast<char*>(p.out) + i0 * OS);
          ZOFF_UNROLL
          for (int u = 0; u < OUT_U4; ++u) __stcs(o + u, make_uint4(ow[4 * u], ow[4 * u + 1], ow[4 * u + 2], ow[4 * u + 3]));
          if constexpr (OS == 2 && SS == 2 && !MIRROR) {
            if (p.codes != nullptr) {  // Note [Delta write-back]; V == 8: two code bytes
              uint32_t code = 0, exc = 0, nb[V];
              ZOFF_UNROLL
              for (int j = 0; j < V; ++j) {
                nb[j] = (ow[j >> 1] >> (16 * (j & 1))) & 0xFFFFu;
                const uint32_t c = delta_code(vec_elem<2>(sv[r], j), nb[j]);
                code |= c << (2 * j);
                exc |= uint32_t(c == kDeltaException) << j;
              }
              uint8_t* cb = p.codes + i0 / 4;
              // Note [Sparse code stores]: the lanes here this row (the others skipped it).
              const uint32_t nz = __ballot_sync(__activemask(), code != 0);
              if (code == 0 && __popc(nz) <= p.dsparse) {
              } else if ((reinterpret_cast<uintptr_t>(cb) & 1) == 0) {
                stored += 2;
                *reinterpret_cast<uint16_t*>(cb) = uint16_t(code);
              } else {
                stored += 2;
                cb[0] = uint8_t(code);
                cb[1] = uint8_t(code >> 8);
              }
              if (exc != 0) delta_emit(p, __popc(exc), exc, nb, i0);
            }
          }
          if constexpr (MIRROR) {
            uint4* o2 = reinterpret_cast<uint4*>(static_cast<char*>(p.out2) + i0 * OS);
            ZOFF_UNROLL
            for (int u = 0; u < OUT_U4; ++u)
              __stcs(o2 + u, make_uint4(ow2[4 * u], ow2[4 * u + 1], ow2[4 * u + 2], ow2[4 * u + 3]));
          }
        }
      }
    }
  }

  // ---- scalar part: groups of 4 parameter indices ----
  const bool has_vec = p.vend > p.vbeg;
  const int64_t ra0 = 0, ra1 = has_vec ? p.vbeg : p.n, rb0 = has_vec ? p.vend : p.n, rb1 = p.n;
  const int64_t qa0 = (p.first + ra0) >> 2, na = ra1 > ra0 ? ((p.first + ra1 - 1) >> 2) - qa0 + 1 : 0;
  const int64_t qb0 = (p.first + rb0) >> 2, nb = rb1 > rb0 ? ((p.first + rb1 - 1) >> 2) - qb0 + 1 : 0;
  for (int64_t w = tid; w < na + nb; w += nthreads) {
    const bool in_a = w < na;
    const int64_t q = in_a ? qa0 + w : qb0 + (w - na);
    const int64_t lo = p.first + (in_a ? ra0 : rb0), hi = p.first + (in_a ? ra1 : rb1);
    float acc[4] = {-0.0f, -0.0f, -0.0f, -0.0f}, acc2[4] = {-0.0f, -0.0f, -0.0f, -0.0f};
    for (int k = 0; k < p.nterms; ++k) {
      float z[4];
      z_group_keyed<D>(p.key[k], uint64_t(q), z);
      ZOFF_UNROLL
      for (int j = 0; j < 4; ++j) acc[j] = add_rn(acc[j], mul_rn(p.coeff[k], z[j]));
      if constexpr (MIRROR) {
        ZOFF_UNROLL
        for (int j = 0; j < 4; ++j) acc2[j] = add_rn(acc2[j], mul_rn(-p.coeff[k], z[j]));
      }
    }
    Philox4 sr{};
    if constexpr (SR) sr = philox_keyed(p.srk, uint64_t(q >> 1));
    uint32_t code = 0, exc = 0, nb[4] = {0u, 0u, 0u, 0u};
    ZOFF_UNROLL
    for (int j = 0; j < 4; ++j) {
      const int64_t g = 4 * q + j;
      if (g < lo || g >= hi) continue;
      const int64_t i = g - p.first;
      float t = mul_rn(load_scalar<SRC>(p, i), p.keep);
      float v = p.nterms > 0 ? add_rn(t, acc[j]) : t;
      const uint32_t bits = encode<OUT, SR>(v, SR ? sr_r16(sr, uint64_t(g)) : 0u);
      if constexpr (OS == 2 && SS == 2 && !MIRROR) {
        if (p.codes != nullptr) {
          // The source bits: an update reads and writes theta, so reload what this thread read.
          nb[j] = bits;
          const uint32_t c = delta_code(static_cast<const uint16_t*>(p.src)[i], bits);
          code |= c << (2 * j);
          exc |= uint32_t(c == kDeltaException) << j;
        }
      }
      store_scalar<OUT>(p, i, bits);
      if constexpr (MIRROR) {
        const uint32_t b2 = encode<OUT, false>(p.nterms > 0 ? add_rn(t, acc2[j]) : t, 0u);
        if constexpr (OUT == Elem::F32) static_cast<uint32_t*>(p.out2)[i] = b2;
        else static_cast<uint16_t*>(p.out2)[i] = uint16_t(b2);
      }
    }
    if constexpr (OS == 2 && SS == 2 && !MIRROR) {
      if (p.codes != nullptr) {  // the group owns code byte (4q - first) / 4 (first % 4 == 0)
        if (code != 0 || p.dsparse < 0) {
          p.codes[(4 * q - p.first) >> 2] = uint8_t(code);
          stored += 1;
        }
        if (exc != 0) delta_emit(p, __popc(exc), exc, nb, 4 * q - p.first);
      }
    }
  }
  if constexpr (OS == 2 && SS == 2 && !MIRROR) {
    if (stored != 0 && p.dstored != nullptr) {  // one atomic per group of threads that stored
      namespace cg = cooperative_groups;
      const cg::coalesced_group grp = cg::coalesced_threads();
      const unsigned long long sum = cg::reduce(grp, (unsigned long long)stored, cg::plus<unsigned long long>());
      if (grp.thread_rank() == 0) atomicAdd(p.dstored, sum);
    }
  }
}

// Blocks for a grid-stride launch of `threads` work items, at most one full wave of `kern`. The
// occupancy is read once per instantiation (zoff drives one device type per process).
template <typename Kernel>
int ew_grid(Kernel kern, int64_t threads) {
  int per_sm = 0;
  ZOFF_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kern, kEwBlock, 0));
  const int64_t wave = int64_t(sm_count()) * (per_sm > 0 ? per_sm : 1);
  const int64_t need = (threads + kEwBlock - 1) / kEwBlock;
  return int(need < 1 ? 1 : need < wave ? need : wave);
}

// One pass: the vector body for (out, src) and the launch of ew_kernel<OUT, SRC, D, SR>.
template <Elem OUT, Elem SRC, Dist D, bool SR, bool MIRROR = false>
void ew_pass(EwParams& p, cudaStream_t s) {
  constexpr int V = ew_vec<OUT, SRC>();
  constexpr int OS = elem_size(OUT), SS = elem_size(SRC);
  const uintptr_t ao = reinterpret_cast<uintptr_t>(p.out), as = reinterpret_cast<uintptr_t>(p.src);
  const uintptr_t a2 = MIRROR ? reinterpret_cast<uintptr_t>(p.out2) : ao;
  p.vbeg = p.vend = 0;
  if (ao % OS == 0 && as % SS == 0 && a2 % 16 == ao % 16) {
    const int64_t h = int64_t((16 - ao % 16) % 16) / OS;
    if ((as + uint64_t(h) * SS) % 16 == 0 && (p.first + h) % V == 0 && p.n - h >= V) {
      p.vbeg = h;
      p.vend = h + (p.n - h) / V * V;
    }
  }
  const bool vec = p.vend > p.vbeg;
  const int64_t tiles = vec ? (p.first + p.vend + kTile - 1) / kTile - (p.first + p.vbeg) / kTile : 0;
  const int64_t groups = vec ? 6 : p.n / 4 + 2;
  static const int grid_cap = ew_grid(ew_kernel<OUT, SRC, D, SR, MIRROR>, int64_t(1) << 40);
  const int64_t need = ((tiles * 32 > groups ? tiles * 32 : groups) + kEwBlock - 1) / kEwBlock;
  const int grid = int(need < grid_cap ? (need < 1 ? 1 : need) : grid_cap);
  ew_kernel<OUT, SRC, D, SR, MIRROR><<<grid, kEwBlock, 0, s>>>(p);
  ZOFF_CUDA_LAUNCH_CHECK(ew_kernel);
}

// Runs one EwJob (all its passes, Note [Term passes]) on stream s (no mirror output: see
// zo_perturb.cu).
template <Elem OUT, Elem SRC, Dist D, bool SR>
void ew_launch(const EwJob& j, cudaStream_t s) {
  if (j.noop) return;
  ZOFF_CHECK(j.out2 == nullptr, "ew_launch: a mirror output goes through zo_perturb");
  const int passes = term_passes(j.nterms);
  for (int pass = 0; pass < passes; ++pass) {
    EwParams p{};
    p.out = j.out;
    p.src = pass == 0 ? j.src : j.out;
    p.row_scales = j.row_scales;
    p.row_len = j.row_len;
    p.n = j.n;
    p.first = j.first;
    p.keep = pass == 0 ? j.keep : 1.0f;
    p.srk = philox_key(sr_key(j.sr_seed, pass), j.pid);
    if (j.delta != nullptr) {  // one pass (update_job checked)
      p.codes = j.delta->codes;
      p.dlist = j.delta->list;
      p.dcap = j.delta->capacity;
      p.dcount = j.delta->count;
      p.doverflow = j.delta->overflow;
      p.dbase = uint32_t(j.delta->index_base);
      p.dstored = j.delta->stored;
      p.dsparse = j.delta->sparse_lanes;
    }
    const int k0 = pass * kMaxTerms, k1 = j.nterms < k0 + kMaxTerms ? j.nterms : k0 + kMaxTerms;
    p.nterms = k1 > k0 ? k1 - k0 : 0;
    for (int k = 0; k < p.nterms; ++k) p.key[k] = philox_key(j.terms[k0 + k].seed, j.pid), p.coeff[k] = j.terms[k0 + k].coeff;
    if (pass == 0) ew_pass<OUT, SRC, D, SR>(p, s);
    else ew_pass<OUT, OUT, D, SR>(p, s);  // later passes read what the previous one wrote
  }
}

}  // namespace zoff::k
