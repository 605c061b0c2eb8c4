// fill_z on the GPU: out[i] = z(seed, pid, i) as fp32, one Philox call per 4 elements (tests, benches);
// box_muller_pieces, the sampler's pieces for every input (tests).
#include "kernels/cuda_check.cuh"
#include "kernels/ref/scalar.h"
#include "kernels/zo_kernels.h"

namespace zoff::k {
namespace {

template <Dist D>
__global__ void __launch_bounds__(256) fill_z_kernel(float* out, int64_t n, uint64_t pid, uint64_t seed, bool aligned) {
  const int64_t groups = (n + 3) / 4;
  for (int64_t q = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; q < groups; q += int64_t(gridDim.x) * blockDim.x) {
    float z[4];
    z_group<D>(seed, pid, uint64_t(q), z);
    const int64_t g = 4 * q;
    if (aligned && g + 4 <= n) {
      __stcs(reinterpret_cast<float4*>(out + g), make_float4(z[0], z[1], z[2], z[3]));
    } else {
      for (int j = 0; j < 4 && g + j < n; ++j) out[g + j] = z[j];
    }
  }
}

__global__ void __launch_bounds__(256) box_muller_pieces_kernel(uint32_t first, int64_t n, float* out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    box_muller_pieces_at(first + uint32_t(i), out + 3 * i);
  }
}

}  // namespace

void box_muller_pieces(uint32_t first, int64_t n, float* out, cudaStream_t s) {
  ZOFF_CHECK(n >= 0 && int64_t(first) + n <= (int64_t(1) << 24) && (n == 0 || out != nullptr),
             "box_muller_pieces: first = ", first, ", n = ", n);
  if (n == 0) return;
  box_muller_pieces_kernel<<<grid_for(box_muller_pieces_kernel, 256, n), 256, 0, s>>>(first, n, out);
  ZOFF_CUDA_LAUNCH_CHECK(box_muller_pieces_kernel);
}

void fill_z(float* out, int64_t n, uint64_t pid, uint64_t seed, Dist d, cudaStream_t s) {
  ZOFF_CHECK(n >= 0 && (n == 0 || out != nullptr), "fill_z: n = ", n, ", out = ", static_cast<void*>(out));
  ZOFF_CHECK(d == Dist::Gaussian || d == Dist::Rademacher, "fill_z: unknown Dist ", int(d));
  if (n == 0) return;
  const bool aligned = reinterpret_cast<uintptr_t>(out) % 16 == 0;
  if (d == Dist::Gaussian) {
    const int grid = grid_for(fill_z_kernel<Dist::Gaussian>, 256, (n + 3) / 4);
    fill_z_kernel<Dist::Gaussian><<<grid, 256, 0, s>>>(out, n, pid, seed, aligned);
  } else {
    const int grid = grid_for(fill_z_kernel<Dist::Rademacher>, 256, (n + 3) / 4);
    fill_z_kernel<Dist::Rademacher><<<grid, 256, 0, s>>>(out, n, pid, seed, aligned);
  }
  ZOFF_CUDA_LAUNCH_CHECK(fill_z_kernel);
}

}  // namespace zoff::k
