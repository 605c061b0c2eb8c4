// Fast host (CPU) ZO kernels: SIMD + oneTBB, bit-identical to the references in kernels/ref/.
#pragma once

#include <cstdint>

#include "kernels/zo_kernels.h"

namespace zoff::k {

// Note [Host kernels]
// The CPU update site (offloaded masters in pinned memory) and the fp8 transfer packing run on the
// host. The references (kernels/ref/) are built for exactness, not speed: no FMA instruction, one
// element at a time. These kernels give the same bits much faster:
//  - Philox4x32-10 runs on W blocks at once (SoA; 32x32->64 multiplies as mul_epu32), Box-Muller
//    runs on vectors of W pairs from the same correctly rounded operations as gaussian4 (hardware
//    FMA is correctly rounded, so std::fma and vfmadd give the same bits), then a 4xW transpose
//    puts z in element order. Rademacher expands 128 signs per Philox call with variable shifts.
//  - Work is done in tiles of 1024 elements aligned in the parameter's index space (so Gaussian
//    groups, Rademacher blocks and SR groups never straddle a tile); every pass of Note [Term
//    passes] rounds at the same points as the reference; partial tiles (unaligned `first`, any n)
//    are staged through a local buffer.
//  - oneTBB parallel_for over chunks of 64 tiles (64 Ki elements).
// Instruction sets: AVX-512F, AVX2+FMA+F16C, and a portable scalar build of the same tile driver;
// the best one the CPU supports is chosen at run time (Note [ISA translation units] in
// kernels/host/host_job.h explains how the per-ISA objects are kept from leaking into the rest).
// ZOFF_HOST_ISA=auto|scalar|avx2|avx512|ref overrides the choice (ref: the reference kernels).
enum class HostIsa : int { Auto = 0, Scalar = 1, Avx2 = 2, Avx512 = 3, Ref = 4 };

// Whether this CPU (and this build) can run `isa`. Auto, Scalar and Ref always can.
bool host_isa_supported(HostIsa isa);
// What Auto resolves to: ZOFF_HOST_ISA if set (zoff::InputError naming it if invalid or
// unsupported), else the widest supported instruction set. Read once per process.
HostIsa host_isa_auto();
const char* host_isa_name(HostIsa isa);

// Same contracts and results (bit for bit) as ref::zo_update / zo_perturb / pack_fp8_rows /
// fill_z; `isa` forces a path (tests), zoff::Error if the CPU lacks it.
void zo_update_host(const UpdateArgs& a, HostIsa isa = HostIsa::Auto);
void zo_perturb_host(const PerturbArgs& a, HostIsa isa = HostIsa::Auto);
void pack_fp8_rows_host(const PackFp8Args& a, HostIsa isa = HostIsa::Auto);
void fill_z_host(float* out, int64_t n, uint64_t pid, uint64_t seed, Dist d, HostIsa isa = HostIsa::Auto);
// Same result as ref::apply_delta (kernels/delta.h), fast (Note [Host apply_delta]); Ref forces it.
void apply_delta_host(const ApplyDeltaArgs& a, HostIsa isa = HostIsa::Auto);

}  // namespace zoff::k
