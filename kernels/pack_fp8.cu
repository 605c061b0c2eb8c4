// pack_fp8_rows on the GPU: per-row absmax scale and e4m3 codes, one block per row (Note [fp8 row scale]).
#include "kernels/cuda_check.cuh"
#include "kernels/ref/ew_job.h"
#include "kernels/ref/scalar.h"
#include "kernels/zo_kernels.h"

namespace zoff::k {
namespace {

constexpr int kPackBlock = 256;

// Note [fp8 pack kernel]
// A block owns a row (grid-stride over rows): pass 1 takes max |x| (fmaxf, exact and order-free,
// so the scale equals the reference's bit for bit), pass 2 re-reads the row (an L2 hit for rows of
// up to a few hundred KB) and writes e4m3(x / scale) with an IEEE division, as the reference does.
// When every row starts 16-byte aligned (aligned base, cols * sizeof(src) % 16 == 0) threads move
// 16 bytes of source per access; otherwise they fall back to one element per access.
template <Elem E, bool VEC>
__global__ void __launch_bounds__(kPackBlock) pack_kernel(const void* src, int64_t rows, int64_t cols, uint8_t* dst,
                                                          float* scales) {
  using T = std::conditional_t<E == Elem::F32, uint32_t, uint16_t>;
  constexpr int V = 16 / sizeof(T);
  __shared__ float warp_max[kPackBlock / 32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* x = static_cast<const T*>(src) + r * cols;
    uint8_t* q = dst + r * cols;
    float m = 0.0f;
    if constexpr (VEC) {
      const uint4* xv = reinterpret_cast<const uint4*>(x);
      for (int64_t c = threadIdx.x; c < cols / V; c += kPackBlock) {
        uint4 u = xv[c];
        uint32_t w[4] = {u.x, u.y, u.z, u.w};
        ZOFF_UNROLL
        for (int j = 0; j < V; ++j) {
          uint32_t b = sizeof(T) == 4 ? w[j] : (w[j >> 1] >> (16 * (j & 1))) & 0xFFFFu;
          m = fmaxf(m, fabsf(decode<E>(b)));
        }
      }
    } else {
      for (int64_t c = threadIdx.x; c < cols; c += kPackBlock) m = fmaxf(m, fabsf(decode<E>(x[c])));
    }
    ZOFF_UNROLL
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = m;
    __syncthreads();
    m = warp_max[0];
    ZOFF_UNROLL
    for (int w = 1; w < kPackBlock / 32; ++w) m = fmaxf(m, warp_max[w]);
    __syncthreads();  // warp_max is reused by the next row
    float s = m > 0.0f ? div_rn(m, 448.0f) : 1.0f;
    if (s == 0.0f) s = 1.0f;
    if (threadIdx.x == 0) scales[r] = s;
    if constexpr (VEC) {
      const uint4* xv = reinterpret_cast<const uint4*>(x);
      for (int64_t c = threadIdx.x; c < cols / V; c += kPackBlock) {
        uint4 u = xv[c];
        uint32_t w[4] = {u.x, u.y, u.z, u.w}, o[V / 4] = {};
        ZOFF_UNROLL
        for (int j = 0; j < V; ++j) {
          uint32_t b = sizeof(T) == 4 ? w[j] : (w[j >> 1] >> (16 * (j & 1))) & 0xFFFFu;
          o[j >> 2] |= uint32_t(f32_to_e4m3_bits_rne(div_rn(decode<E>(b), s))) << (8 * (j & 3));
        }
        if constexpr (V == 4) reinterpret_cast<uint32_t*>(q)[c] = o[0];
        else reinterpret_cast<uint2*>(q)[c] = make_uint2(o[0], o[1]);
      }
    } else {
      for (int64_t c = threadIdx.x; c < cols; c += kPackBlock) q[c] = f32_to_e4m3_bits_rne(div_rn(decode<E>(x[c]), s));
    }
  }
}

template <Elem E>
void pack(const PackFp8Args& a, cudaStream_t s) {
  constexpr int es = elem_size(E);
  const bool vec = reinterpret_cast<uintptr_t>(a.src) % 16 == 0 && (a.cols * es) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(a.dst) % 8 == 0;
  const int64_t rows = a.rows;
  if (vec) {
    const int grid = grid_for(pack_kernel<E, true>, kPackBlock, rows * kPackBlock);
    pack_kernel<E, true><<<grid, kPackBlock, 0, s>>>(a.src, rows, a.cols, a.dst, a.scales);
  } else {
    const int grid = grid_for(pack_kernel<E, false>, kPackBlock, rows * kPackBlock);
    pack_kernel<E, false><<<grid, kPackBlock, 0, s>>>(a.src, rows, a.cols, a.dst, a.scales);
  }
  ZOFF_CUDA_LAUNCH_CHECK(pack_kernel);
}

}  // namespace

void pack_fp8_rows(const PackFp8Args& a, cudaStream_t s) {
  check_pack(a);
  if (a.rows == 0) return;
  switch (a.src_elem) {
    case Elem::F32: return pack<Elem::F32>(a, s);
    case Elem::F16: return pack<Elem::F16>(a, s);
    case Elem::BF16: return pack<Elem::BF16>(a, s);
    case Elem::F8E4M3: break;  // rejected by check_pack
  }
}

}  // namespace zoff::k
