// The host kernels built with -mavx2 -mfma -mf16c (run only where the CPU has them; Note [ISA translation units]).
#include "kernels/host/host_job.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include "kernels/host/simd_avx2.h"
#include "kernels/host/isa_impl.h"

namespace zoff::k::host {
IsaKernels avx2_kernels() { return make_kernels<Avx2>(); }
}  // namespace zoff::k::host
#else
namespace zoff::k::host {
IsaKernels avx2_kernels() { return IsaKernels{nullptr, nullptr, nullptr}; }  // not built for this target
}  // namespace zoff::k::host
#endif
