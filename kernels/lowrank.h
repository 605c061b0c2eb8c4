// SubZero's low-rank step W += alpha * U * Z * V^T: cuBLAS or fixed-order SR kernels, oneTBB references.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/zo_kernels.h"

typedef struct cublasContext* cublasHandle_t;

namespace zoff::k {

// W is m x n row-major (F32, F16 or BF16); U is m x r, Z is r x r, V is n x r, all fp32 row-major
// and on the same device as W (host memory for the reference).
struct LowRankArgs {
  void* w;
  Elem elem;
  int64_t m, n, r;
  const float* u;
  const float* z;
  const float* v;
  float alpha;
  // lowrank_update_sr only (lowrank_update requires these defaults), Note [Low-rank stochastic rounding]:
  uint64_t sr_seed = 0;  // 0: round to nearest even; else stochastic rounding of 16-bit W
  uint64_t pid = 0;      // the parameter's id, in the rounding bits' key like zo_update's
  int sr_pass = 0;       // the bits come from sr_key(sr_seed, sr_pass) (Note [Term passes])
  float keep = 1.0f;     // W is read as W * keep (1 - weight decay)
};

// Note [Low-rank update]
// The product is never formed as an m x n matrix. T = alpha * U * Z (m x r, fp32) goes to the
// caller's scratch, then one rank-r GEMM accumulates T * V^T into W with beta = 1: a single
// read-modify-write pass over W, the least traffic possible (2 * m * n * sizeof(elem) bytes).
// cuBLAS accumulates into a 16-bit C only from 16-bit A and B, so for F16/BF16 W the factors T and
// V are first rounded (nearest even) to W's dtype (scratch of (m + n) * r 16-bit values) and the
// GEMM runs with fp32 accumulation, rounding W once: the applied direction is U Z V^T up to a
// relative 2^-8 (bf16) / 2^-11 (f16) per factor entry, the same every time it is applied within a
// step, which keeps +eps and -eps perturbations exact mirror images. An fp32 m x n scratch (the
// alternative) would cost 3x the bytes. fp32 GEMMs use CUBLAS_COMPUTE_32F_PEDANTIC, so a handle
// set to TF32 math by the caller does not degrade them. The handle is bound to stream s.
size_t lowrank_scratch_bytes(int64_t m, int64_t n, int64_t r, Elem elem);
void lowrank_update(const LowRankArgs& a, cublasHandle_t handle, void* scratch, size_t scratch_bytes,
                    cudaStream_t s);

// Note [Low-rank stochastic rounding]
// lowrank_update_sr applies W <- round(W * keep + alpha * U Z V^T), rounding each element of W
// once, in an arithmetic fixed to the last bit, so that the CUDA kernel and the reference agree
// bit for bit (Note [One arithmetic, two compilers]). Each operation is a correctly rounded fp32
// mul_rn / add_rn (no FMA, so the host loop vectorises without FMA hardware), in this order:
//   s      = U[i,0] Z[0,k];  s = s + U[i,l] Z[l,k] for l = 1 .. r-1;   T[i,k] = alpha * s
//   x      = T[i,0] V[j,0];  x = x + T[i,k] V[j,k] for k = 1 .. r-1
//   y      = W[i,j] * keep + x                                  (W decoded to fp32)
//   W[i,j] = y for F32 (sr_seed ignored); for F16/BF16 y rounded to nearest even when sr_seed == 0,
//            else stochastically with the bits zo_update would use for element g = i * n + j:
//            sr_r16(philox_block(sr_key(sr_seed, sr_pass), pid, g >> 3), g)  (Note [Stochastic rounding])
// so the update is unbiased, E[W'] = W * keep + x, and progress far below an ulp survives in
// expectation. No order is left to a library: cuBLAS does not specify its summation order, so the
// GPU runs its own two kernels: T (m x r, fp32, the caller's scratch) one thread per entry, then
// one thread per column j holding V[j,:] in registers and walking a tile of rows whose T rows sit
// in shared memory; W is read and written once (memory-bound like zo_update; one Philox call per
// element when SR). The reference vectorises over j with the same per-element order. Negating
// alpha (or Z) negates T and x exactly (round to nearest is symmetric), so perturbations
// theta +- eps z of one seed stay exact mirror images; unlike lowrank_update no factor is rounded
// to 16 bits. Requires r >= 1 (when m, n > 0); r <= 64 keeps V's row in registers, larger r reads
// it from memory (same arithmetic, slower).
size_t lowrank_sr_scratch_bytes(int64_t m, int64_t r);
void lowrank_update_sr(const LowRankArgs& a, void* scratch, size_t scratch_bytes, cudaStream_t s);

namespace ref {
// Same arithmetic contract in double precision: T = alpha * U * Z (rounded to fp32, then to W's
// dtype for 16-bit W, like the GPU), W = round(W + sum_k T[i,k] * V'[j,k]) with V' likewise.
void lowrank_update(const LowRankArgs& a);
// Note [Low-rank stochastic rounding], bit for bit (oneTBB over rows).
void lowrank_update_sr(const LowRankArgs& a);
}  // namespace ref

}  // namespace zoff::k
