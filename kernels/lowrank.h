// SubZero's low-rank step W += alpha * U * Z * V^T on a weight matrix: cuBLAS on the GPU, oneTBB reference.
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

namespace ref {
// Same arithmetic contract in double precision: T = alpha * U * Z (rounded to fp32, then to W's
// dtype for 16-bit W, like the GPU), W = round(W + sum_k T[i,k] * V'[j,k]) with V' likewise.
void lowrank_update(const LowRankArgs& a);
}  // namespace ref

}  // namespace zoff::k
