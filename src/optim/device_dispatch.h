// Routes kernel calls to kernels/ref (CPU tensors) or kernels/*.cu on the current CUDA stream.
#pragma once

#include <ATen/ATen.h>

#include "kernels/fp8_site.h"
#include "kernels/lowrank.h"
#include "kernels/split16.h"
#include "kernels/zo_kernels.h"

namespace zoff {

k::Elem elem_of(at::ScalarType t);  // F32, F16, BF16 (kByte = packed fp8); Error otherwise

void dispatch_zo_perturb(const k::PerturbArgs& a, const at::Device& device);
void dispatch_zo_update(const k::UpdateArgs& a, const at::Device& device);
// Note [fp8 at the GPU site] (kernels/fp8_site.h): the reference on the CPU.
void dispatch_zo_update_fp8(const k::Fp8UpdateArgs& a, const at::Device& device);
void dispatch_fill_z(float* out, int64_t n, uint64_t pid, uint64_t seed, k::Dist d,
                     const at::Device& device);
// Note [Counted copy] (kernels/delta.h): the first min(*count, cap) elements; count in device
// memory on CUDA (read by the kernel), in host memory on the CPU.
void dispatch_copy_counted(void* dst, const void* src, const unsigned long long* count, int64_t cap,
                           int64_t elem_bytes, const at::Device& device);
// Note [Packed codes] (kernels/delta.h): the reference on the CPU, the three packing kernels on CUDA.
void dispatch_pack_codes(const k::PackCodesArgs& a, const at::Device& device);
// Note [Split bf16] (kernels/split16.h): the planes (and escapes, readable by the device) of n
// elements decoded into bf16 bits; the reference on the CPU.
void dispatch_split16_decode(const k::SplitPlanes& p, const k::SplitEscape* escapes, int64_t count, uint16_t* out,
                             const at::Device& device);
// Note [Low-rank stochastic rounding] (kernels/lowrank.h): the reference on the CPU, the fixed-order
// kernels (scratch from LibTorch's caching allocator) on CUDA; bit-identical.
void dispatch_lowrank_update_sr(const k::LowRankArgs& a, const at::Device& device);
// Note [Low-rank update] (kernels/lowrank.h): round-to-nearest W += alpha U Z V^T; cuBLAS (tensor
// cores, LibTorch's handle and current stream) on CUDA, the reference on the CPU.
void dispatch_lowrank_update(const k::LowRankArgs& a, const at::Device& device);

#ifdef ZOFF_WITH_CUDA
// Implemented in src/optim/cuda/ (only in CUDA builds).
void cuda_zo_perturb(const k::PerturbArgs& a);
void cuda_zo_update(const k::UpdateArgs& a);
void cuda_zo_update_fp8(const k::Fp8UpdateArgs& a);
void cuda_fill_z(float* out, int64_t n, uint64_t pid, uint64_t seed, k::Dist d);
void cuda_lowrank_update_sr(const k::LowRankArgs& a);
void cuda_lowrank_update(const k::LowRankArgs& a);
void cuda_copy_counted(void* dst, const void* src, const unsigned long long* count, int64_t cap, int64_t elem_bytes);
void cuda_pack_codes(const k::PackCodesArgs& a);
void cuda_split16_decode(const k::SplitPlanes& p, const k::SplitEscape* escapes, int64_t count, uint16_t* out);
#endif

}  // namespace zoff
