// The low-rank update W += alpha * U * Z * V^T: cuBLAS (Note [Low-rank update]) and fixed-order SR kernels.
#include <algorithm>
#include <climits>
#include <type_traits>

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

// ---- Note [Low-rank stochastic rounding] ---------------------------------------------------------

constexpr int kCols = 128;  // threads per block, one column of W each
constexpr int kRows = 32;   // rows of W per tile (their T rows are staged in shared memory)

__global__ void __launch_bounds__(256) lowrank_t_kernel(const float* u, const float* z, float* t, int64_t m,
                                                        int64_t r, float alpha) {
  for (int64_t x = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; x < m * r; x += int64_t(gridDim.x) * blockDim.x)
    t[x] = lowrank_t(u + (x / r) * r, z, r, x % r, alpha);
}

struct SrApply {
  void* w;
  int64_t m, n, r;
  const float* t;
  const float* v;
  float keep;
  uint64_t key, pid;
};

template <Elem E, bool SR>
__device__ __forceinline__ void sr_store(const SrApply& p, int64_t i, int64_t j, float x, uint32_t r16) {
  using T = std::conditional_t<E == Elem::F32, uint32_t, uint16_t>;
  T* w = static_cast<T*>(p.w) + (i * p.n + j);
  *w = T(lowrank_round<E, SR>(*w, p.keep, x, r16));
}

// Note [Shared SR bits]: element g's rounding bits are half of word (g >> 1) & 3 of Philox block
// g >> 3, so 8 consecutive elements of a row share one block. With n % 8 == 0 the 32 columns of a
// warp are 4 whole octets in every row, and for 8 rows at a time lane L computes the block of row
// L >> 2, octet L & 3; each lane then fetches its block's four words with shuffles. One Philox call
// per lane and 8 rows instead of one per element, and the same bits (KernelsGpu test, bit for bit).
__device__ __forceinline__ uint32_t shared_r16(const Philox4& mine, int ro, int64_t g) {
  const int src = (ro << 2) | ((threadIdx.x & 31) >> 3);
  const uint32_t w0 = __shfl_sync(0xffffffffu, mine.v[0], src), w1 = __shfl_sync(0xffffffffu, mine.v[1], src);
  const uint32_t w2 = __shfl_sync(0xffffffffu, mine.v[2], src), w3 = __shfl_sync(0xffffffffu, mine.v[3], src);
  const int w = int(g >> 1) & 3;
  const uint32_t word = w == 0 ? w0 : w == 1 ? w1 : w == 2 ? w2 : w3;
  return (word >> (16u * uint32_t(g & 1))) & 0xFFFFu;
}

// R > 0: r <= R, V[j,:] in registers and the tile's T rows in shared memory. R == 0: any r, both
// read from global memory. Each block walks tiles blockIdx.y, blockIdx.y + gridDim.y, ...
template <Elem E, bool SR, int R>
__global__ void __launch_bounds__(kCols) lowrank_sr_kernel(SrApply p) {
  __shared__ float ts[kRows * (R > 0 ? R : 1)];
  const int64_t j = int64_t(blockIdx.x) * kCols + threadIdx.x;
  const int r = int(p.r);
  const bool live = j < p.n;
  float vr[R > 0 ? R : 1];
  if constexpr (R > 0) {
ZOFF_UNROLL
    for (int k = 0; k < R; ++k) vr[k] = (live && k < r) ? p.v[j * r + k] : 0.0f;
  }
  const int64_t tiles = (p.m + kRows - 1) / kRows;
  for (int64_t tile = blockIdx.y; tile < tiles; tile += gridDim.y) {
    const int64_t i0 = tile * kRows;
    const int rows = int(min(int64_t(kRows), p.m - i0));
    if constexpr (R > 0) {
      __syncthreads();  // every thread is done with the previous tile's rows
      for (int x = threadIdx.x; x < rows * r; x += kCols) ts[x] = p.t[i0 * r + x];
      __syncthreads();
    }
    // Shared SR bits need every lane of the warp at each shuffle, so dead columns ride along.
    const bool shared = SR && p.n % 8 == 0;
    if (!live && !shared) continue;
    Philox4 mine{};
    for (int row = 0; row < rows; ++row) {
      const int ro = row & 7;
      if constexpr (SR) {
        if (shared && ro == 0) {
          const int lane = int(threadIdx.x & 31);
          const int64_t g0 = (i0 + row + (lane >> 2)) * p.n + (j - lane + 8 * (lane & 3));
          mine = philox_block(p.key, p.pid, uint64_t(g0) >> 3);
        }
      }
      const int64_t g = (i0 + row) * p.n + j;
      uint32_t r16 = 0;
      if constexpr (SR) r16 = shared ? shared_r16(mine, ro, g) : sr_r16(philox_block(p.key, p.pid, uint64_t(g) >> 3), uint64_t(g));
      if (!live) continue;
      float x;
      if constexpr (R > 0) {
        const float* tr = ts + row * r;
        x = mul_rn(tr[0], vr[0]);
ZOFF_UNROLL
        for (int k = 1; k < R; ++k)
          if (k < r) x = add_rn(x, mul_rn(tr[k], vr[k]));
      } else {
        const float* tr = p.t + (i0 + row) * p.r;
        const float* vj = p.v + j * p.r;
        x = mul_rn(tr[0], vj[0]);
        for (int64_t k = 1; k < p.r; ++k) x = add_rn(x, mul_rn(tr[k], vj[k]));
      }
      sr_store<E, SR>(p, i0 + row, j, x, r16);
    }
  }
}

template <Elem E, bool SR, int R>
void launch_sr(const SrApply& p, cudaStream_t s) {
  const int64_t cols = (p.n + kCols - 1) / kCols, tiles = (p.m + kRows - 1) / kRows;
  // About two waves of blocks; each keeps its V registers across the tiles it walks.
  int per_sm = 0;
  ZOFF_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, lowrank_sr_kernel<E, SR, R>, kCols, 0));
  const int64_t want = 2 * int64_t(sm_count()) * std::max(per_sm, 1);
  const int64_t ty = std::min<int64_t>({tiles, std::max<int64_t>(1, (want + cols - 1) / cols), 65535});
  ZOFF_CHECK(cols <= INT_MAX, "lowrank_update_sr: n = ", p.n, " is too large");
  lowrank_sr_kernel<E, SR, R><<<dim3(unsigned(cols), unsigned(ty)), kCols, 0, s>>>(p);
  ZOFF_CUDA_LAUNCH_CHECK(lowrank_sr_kernel);
}

template <Elem E, bool SR>
void launch_rank(const SrApply& p, cudaStream_t s) {
  if (p.r <= 8) return launch_sr<E, SR, 8>(p, s);
  if (p.r <= 16) return launch_sr<E, SR, 16>(p, s);
  if (p.r <= 32) return launch_sr<E, SR, 32>(p, s);
  if (p.r <= 64) return launch_sr<E, SR, 64>(p, s);
  launch_sr<E, SR, 0>(p, s);
}

}  // namespace

size_t lowrank_sr_scratch_bytes(int64_t m, int64_t r) { return round_up(size_t(m * r) * sizeof(float)); }

void lowrank_update_sr(const LowRankArgs& a, void* scratch, size_t scratch_bytes, cudaStream_t s) {
  ZOFF_CHECK(a.m >= 0 && a.n >= 0 && a.r >= 0, "lowrank_update_sr: m, n, r = ", a.m, ", ", a.n, ", ", a.r);
  ZOFF_CHECK(a.elem == Elem::F32 || a.elem == Elem::F16 || a.elem == Elem::BF16,
             "lowrank_update_sr: W must be F32, F16 or BF16 (got Elem ", int(a.elem), ")");
  if (a.m == 0 || a.n == 0) return;
  ZOFF_CHECK(a.r >= 1 && a.r <= INT_MAX, "lowrank_update_sr: rank ", a.r);
  ZOFF_CHECK(a.w && a.u && a.z && a.v, "lowrank_update_sr: null W, U, Z or V");
  const size_t need = lowrank_sr_scratch_bytes(a.m, a.r);
  ZOFF_CHECK(scratch != nullptr && scratch_bytes >= need, "lowrank_update_sr: scratch of ", scratch_bytes,
             " bytes, need ", need);
  float* t = static_cast<float*>(scratch);
  const int tg = grid_for(lowrank_t_kernel, 256, a.m * a.r);
  lowrank_t_kernel<<<tg, 256, 0, s>>>(a.u, a.z, t, a.m, a.r, a.alpha);
  ZOFF_CUDA_LAUNCH_CHECK(lowrank_t_kernel);
  const bool sr = a.sr_seed != 0 && a.elem != Elem::F32;
  const SrApply p{a.w, a.m, a.n, a.r, t, a.v, a.keep, sr ? sr_key(a.sr_seed, a.sr_pass) : 0, a.pid};
  switch (a.elem) {
    case Elem::F32: return launch_rank<Elem::F32, false>(p, s);
    case Elem::F16: return sr ? launch_rank<Elem::F16, true>(p, s) : launch_rank<Elem::F16, false>(p, s);
    case Elem::BF16: return sr ? launch_rank<Elem::BF16, true>(p, s) : launch_rank<Elem::BF16, false>(p, s);
    case Elem::F8E4M3: return;
  }
}

size_t lowrank_scratch_bytes(int64_t m, int64_t n, int64_t r, Elem elem) {
  size_t t = round_up(size_t(m * r) * sizeof(float));
  if (elem == Elem::F32) return t;
  return t + round_up(size_t(m * r) * 2) + round_up(size_t(n * r) * 2);
}

void lowrank_update(const LowRankArgs& a, cublasHandle_t handle, void* scratch, size_t scratch_bytes,
                    cudaStream_t s) {
  ZOFF_CHECK(a.sr_seed == 0 && a.keep == 1.0f, "lowrank_update rounds to nearest and has no decay: use lowrank_update_sr");
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
