// The interface between the host kernels' dispatcher (zo_host.cpp) and the per-ISA translation units.
#pragma once

#include <cstdint>

#include "kernels/ref/ew_job.h"
#include "kernels/zo_kernels.h"

namespace zoff::k::host {

// Note [ISA translation units]
// isa_avx2.cpp and isa_avx512.cpp are compiled with -mavx2/-mavx512f and run only after
// __builtin_cpu_supports said yes. Any function with vague linkage they emit (an inline function,
// a template instance outside an anonymous namespace: std::min, a TBB helper, zoff::detail::cat)
// would be a weak symbol the linker may pick for the WHOLE program, so a baseline caller on an
// older CPU would run AVX-512 code and die with SIGILL. Hence: those files include only this
// header (plain structs), <immintrin.h> and <cstring>; everything they define lives in an
// anonymous namespace except the entry points below; they call no inline function from
// kernels/philox.h or kernels/ref/scalar.h (the SIMD code reimplements them), never throw, and
// never touch TBB. Validation, sr_key and the parallel_for stay in zo_host.cpp (baseline flags).
// `nm -C` on the ISA objects lists only the entry points as defined symbols (checked when added).

constexpr int64_t kTile = 1024;  // elements per tile, aligned in the parameter's index space

struct HostJob {
  EwJob job;                // validated, not a noop
  const uint64_t* sr_keys;  // sr_key(sr_seed, p) per pass, when job.sr_seed != 0
};

// Tiles [t0, t1) of the job: elements [t * kTile, (t + 1) * kTile) of the parameter, clipped to
// [first, first + n).
using EwTilesFn = void (*)(const HostJob& h, int64_t t0, int64_t t1);
// Rows [r0, r1) of a validated pack.
using PackRowsFn = void (*)(const PackFp8Args& a, int64_t r0, int64_t r1);
// Tiles [t0, t1) of fill_z over [0, n).
using FillTilesFn = void (*)(float* out, int64_t n, uint64_t pid, uint64_t seed, Dist d, int64_t t0, int64_t t1);

struct IsaKernels {
  EwTilesFn ew;
  PackRowsFn pack;
  FillTilesFn fill;
};

// Defined in isa_scalar.cpp / isa_avx2.cpp / isa_avx512.cpp (the latter two on x86-64 only).
IsaKernels scalar_kernels();
IsaKernels avx2_kernels();
IsaKernels avx512_kernels();

}  // namespace zoff::k::host
