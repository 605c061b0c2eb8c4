// CUDA side of the kernel routing: launches on LibTorch's current stream of the current device.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAStream.h>

#include "../device_dispatch.h"

namespace zoff {

static cudaStream_t current() { return c10::cuda::getCurrentCUDAStream().stream(); }

void cuda_zo_perturb(const k::PerturbArgs& a) { k::zo_perturb(a, current()); }
void cuda_zo_update(const k::UpdateArgs& a) { k::zo_update(a, current()); }
void cuda_zo_update_fp8(const k::Fp8UpdateArgs& a) { k::zo_update_fp8(a, current()); }
void cuda_fill_z(float* out, int64_t n, uint64_t pid, uint64_t seed, k::Dist d) {
  k::fill_z(out, n, pid, seed, d, current());
}
// T's scratch comes from the caching allocator on the current stream, so it is reused, not freed,
// while the kernels that read it are still queued.
void cuda_lowrank_update_sr(const k::LowRankArgs& a) {
  const size_t bytes = k::lowrank_sr_scratch_bytes(a.m, a.r);
  at::Tensor scratch = at::empty({int64_t(bytes)}, at::TensorOptions().dtype(at::kByte).device(at::kCUDA));
  k::lowrank_update_sr(a, scratch.data_ptr(), bytes, current());
}

void cuda_lowrank_update(const k::LowRankArgs& a) {
  const size_t bytes = k::lowrank_scratch_bytes(a.m, a.n, a.r, a.elem);
  at::Tensor scratch = at::empty({int64_t(bytes)}, at::TensorOptions().dtype(at::kByte).device(at::kCUDA));
  // LibTorch's handle for the current stream (lowrank_update binds it to the stream it is given).
  k::lowrank_update(a, at::cuda::getCurrentCUDABlasHandle(), scratch.data_ptr(), bytes, current());
}

void cuda_pack_codes(const k::PackCodesArgs& a) { k::pack_codes(a, current()); }
void cuda_split16_decode(const k::SplitPlanes& p, const k::SplitEscape* escapes, int64_t count, uint16_t* out) {
  k::split16_decode(p, escapes, count, out, current());
}

void cuda_copy_counted(void* dst, const void* src, const unsigned long long* count, int64_t cap, int64_t elem_bytes) {
  k::copy_counted(dst, src, count, cap, elem_bytes, current());
}

}  // namespace zoff
