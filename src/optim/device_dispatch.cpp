// CPU/CUDA routing of the ZO kernels by tensor device.
#include "device_dispatch.h"

#include "kernels/host/zo_host.h"
#include "zoff/error.h"

namespace zoff {

k::Elem elem_of(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return k::Elem::F32;
    case at::kHalf: return k::Elem::F16;
    case at::kBFloat16: return k::Elem::BF16;
    case at::kByte: return k::Elem::F8E4M3;
    default: ZOFF_FAIL("ZO kernels do not support dtype ", c10::toString(t));
  }
}

void dispatch_zo_perturb(const k::PerturbArgs& a, const at::Device& device) {
  if (device.is_cpu()) return k::zo_perturb_host(a);
#ifdef ZOFF_WITH_CUDA
  if (device.is_cuda()) return cuda_zo_perturb(a);
#endif
  ZOFF_FAIL("zo_perturb: unsupported device ", device.str());
}

void dispatch_zo_update(const k::UpdateArgs& a, const at::Device& device) {
  if (device.is_cpu()) return k::zo_update_host(a);
#ifdef ZOFF_WITH_CUDA
  if (device.is_cuda()) return cuda_zo_update(a);
#endif
  ZOFF_FAIL("zo_update: unsupported device ", device.str());
}

void dispatch_zo_update_fp8(const k::Fp8UpdateArgs& a, const at::Device& device) {
  if (device.is_cpu()) return k::ref::zo_update_fp8(a);
#ifdef ZOFF_WITH_CUDA
  if (device.is_cuda()) return cuda_zo_update_fp8(a);
#endif
  ZOFF_FAIL("zo_update_fp8: unsupported device ", device.str());
}

void dispatch_fill_z(float* out, int64_t n, uint64_t pid, uint64_t seed, k::Dist d,
                     const at::Device& device) {
  if (device.is_cpu()) return k::fill_z_host(out, n, pid, seed, d);
#ifdef ZOFF_WITH_CUDA
  if (device.is_cuda()) return cuda_fill_z(out, n, pid, seed, d);
#endif
  ZOFF_FAIL("fill_z: unsupported device ", device.str());
}

void dispatch_split16_decode(const k::SplitPlanes& p, const k::SplitEscape* escapes, int64_t count, uint16_t* out,
                             const at::Device& device) {
  if (device.is_cpu()) return k::ref::split16_decode(p, escapes, count, out);
#ifdef ZOFF_WITH_CUDA
  if (device.is_cuda()) return cuda_split16_decode(p, escapes, count, out);
#endif
  ZOFF_FAIL("split16_decode: unsupported device ", device.str());
}

void dispatch_copy_counted(void* dst, const void* src, const unsigned long long* count, int64_t cap,
                           int64_t elem_bytes, const at::Device& device) {
  if (device.is_cpu()) return k::ref::copy_counted(dst, src, count, cap, elem_bytes);
#ifdef ZOFF_WITH_CUDA
  if (device.is_cuda()) return cuda_copy_counted(dst, src, count, cap, elem_bytes);
#endif
  ZOFF_FAIL("copy_counted: unsupported device ", device.str());
}

void dispatch_pack_codes(const k::PackCodesArgs& a, const at::Device& device) {
  if (device.is_cpu()) return k::ref::pack_codes(a);
#ifdef ZOFF_WITH_CUDA
  if (device.is_cuda()) return cuda_pack_codes(a);
#endif
  ZOFF_FAIL("pack_codes: unsupported device ", device.str());
}

void dispatch_lowrank_update_sr(const k::LowRankArgs& a, const at::Device& device) {
  if (device.is_cpu()) return k::ref::lowrank_update_sr(a);
#ifdef ZOFF_WITH_CUDA
  if (device.is_cuda()) return cuda_lowrank_update_sr(a);
#endif
  ZOFF_FAIL("lowrank_update_sr: unsupported device ", device.str());
}

void dispatch_lowrank_update(const k::LowRankArgs& a, const at::Device& device) {
  if (device.is_cpu()) return k::ref::lowrank_update(a);
#ifdef ZOFF_WITH_CUDA
  if (device.is_cuda()) return cuda_lowrank_update(a);
#endif
  ZOFF_FAIL("lowrank_update: unsupported device ", device.str());
}

}  // namespace zoff
