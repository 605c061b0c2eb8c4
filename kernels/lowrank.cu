// The low-rank update W += alpha * U * Z * V^T through cuBLAS (Note [Low-rank update]).
#include <climits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda_check.cuh"
#include "kernels/lowrank.h"
#include "kernels/ref/scalar.h"

namespace zoff::k {
namespace {

constexpr size_t kAlign = 256;

size_t round_up(size_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

template <Elem E>
__global__ void __launch_bounds__(256) round_factor(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = uint16_t(encode<E, false>(x[i], 0));
}

template <Elem E>
void round_to(const float* x, uint16_t* y, int64_t n, cudaStream_t s) {
  const int grid = grid_for(round_factor<E>, 256, n);
  round_factor<E><<<grid, 256, 0, s>>>(x, y, n);
  ZOFF_CUDA_LAUNCH_CHECK(round_factor);
}

}  // namespace

size_t lowrank_scratch_bytes(int64_t m, int64_t n, int64_t r, Elem elem) {
  size_t t = round_up(size_t(m * r) * sizeof(float));
  if (elem == Elem::F32) return t;
  return t + round_up(size_t(m * r) * 2) + round_up(size_t(n * r) * 2);
}

void lowrank_update(const LowRankArgs& a, cublasHandle_t handle, void* scratch, size_t scratch_bytes,
                    cudaStream_t s) {
  ZOFF_CHECK(a.m >= 0 && a.n >= 0 && a.r >= 0, "lowrank_update: m, n, r = ", a.m, ", ", a.n, ", ", a.r);
  ZOFF_CHECK(a.elem == Elem::F32 || a.elem == Elem::F16 || a.elem == Elem::BF16,
             "lowrank_update: W must be F32, F16 or BF16 (got Elem ", int(a.elem), ")");
  if (a.m == 0 || a.n == 0 || a.r == 0) return;
  ZOFF_CHECK(a.m <= INT_MAX && a.n <= INT_MAX && a.r <= INT_MAX, "lowrank_update: dimensions exceed cuBLAS's int");
  ZOFF_CHECK(a.w && a.u && a.z && a.v && handle, "lowrank_update: null W, U, Z, V or cuBLAS handle");
  const size_t need = lowrank_scratch_bytes(a.m, a.n, a.r, a.elem);
  ZOFF_CHECK(scratch != nullptr && scratch_bytes >= need, "lowrank_update: scratch of ", scratch_bytes,
             " bytes, need ", need);
  const int m = int(a.m), n = int(a.n), r = int(a.r);
  ZOFF_CUBLAS_CHECK(cublasSetStream(handle, s));
  // Row-major X (rows x cols) is column-major X^T with ld = cols. T^T (r x m) = Z^T (r x r) * U^T (r x m).
  float* t = static_cast<float*>(scratch);
  const float zero = 0.0f, one = 1.0f;
  ZOFF_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, r, m, r, &a.alpha, a.z, CUDA_R_32F, r, a.u,
                                 CUDA_R_32F, r, &zero, t, CUDA_R_32F, r, CUBLAS_COMPUTE_32F_PEDANTIC,
                                 CUBLAS_GEMM_DEFAULT));
  // W^T (n x m) += V (n x r, = (V^T)^T) * T^T (r x m).
  if (a.elem == Elem::F32) {
    ZOFF_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, r, &one, a.v, CUDA_R_32F, r, t, CUDA_R_32F,
                                   r, &one, a.w, CUDA_R_32F, n, CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT));
    return;
  }
  uint16_t* t16 = reinterpret_cast<uint16_t*>(static_cast<char*>(scratch) + round_up(size_t(a.m * a.r) * sizeof(float)));
  uint16_t* v16 = reinterpret_cast<uint16_t*>(reinterpret_cast<char*>(t16) + round_up(size_t(a.m * a.r) * 2));
  const cudaDataType dt = a.elem == Elem::BF16 ? CUDA_R_16BF : CUDA_R_16F;
  if (a.elem == Elem::BF16) {
    round_to<Elem::BF16>(t, t16, a.m * a.r, s);
    round_to<Elem::BF16>(a.v, v16, a.n * a.r, s);
  } else {
    round_to<Elem::F16>(t, t16, a.m * a.r, s);
    round_to<Elem::F16>(a.v, v16, a.n * a.r, s);
  }
  ZOFF_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, r, &one, v16, dt, r, t16, dt, r, &one, a.w,
                                 dt, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace zoff::k
