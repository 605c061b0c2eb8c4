// The host kernels built with -mavx512f -mavx2 -mfma -mf16c (run only where the CPU has them; Note [ISA translation units]).
#include "kernels/host/host_job.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__FMA__) && defined(__F16C__)
// GCC 12 warns inside its own avx512fintrin.h: the intrinsics' _mm512_undefined_*() operands look
// uninitialized to -Wmaybe-uninitialized (GCC bug 105593). Nothing of ours is silenced by this.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include "kernels/host/simd_avx512.h"
#include "kernels/host/isa_impl.h"

namespace zoff::k::host {
IsaKernels avx512_kernels() { return make_kernels<Avx512>(); }
}  // namespace zoff::k::host
#else
namespace zoff::k::host {
IsaKernels avx512_kernels() { return IsaKernels{nullptr, nullptr, nullptr}; }  // not built for this target
}  // namespace zoff::k::host
#endif
