// The ZO kernels' interface: raw pointers and cudaStream_t, no torch. CPU references: kernels/ref/.
#pragma once

#include <cstdint>

#include "kernels/delta.h"
#include "kernels/philox.h"

typedef struct CUstream_st* cudaStream_t;

namespace zoff::k {

// Element types the kernels read and write. F8E4M3 only as a packed transfer format (with one
// float scale per row) and only as a source of zo_perturb / unpack.
enum class Elem : int { F32 = 0, F16 = 1, BF16 = 2, F8E4M3 = 3 };
enum class Dist : int { Gaussian = 0, Rademacher = 1 };

// One term c * z(seed) of a sum of directions. z is drawn per element from Philox (see
// Note [Philox keying]) with the parameter's id.
struct ZTerm {
  uint64_t seed;
  float coeff;
};

// Note [Fused update]
// zo_update is the one read-modify-write pass over a parameter that ZO training needs per step:
//   theta <- theta * (1 - decay) + sum_k coeff_k * z(seed_k, pid, i)
// The sum over k is formed in fp32 in the order given, added to theta (upcast to fp32), and
// written back in theta's dtype. For F16/BF16 theta, sr_seed != 0 rounds stochastically with
// Philox bits keyed by (sr_seed, pid, i) (unbiased: E[round(x)] = x; the exact bits: Note
// [Stochastic rounding], kernels/ref/scalar.h), so updates far below one ulp survive in
// expectation; sr_seed == 0 rounds to nearest even. Terms beyond kMaxTerms are applied by further
// passes (the wrappers split them; Note [Term passes]), so any count works. The GPU kernels and
// the CPU references give bit-identical results (Note [One arithmetic, two compilers]).
constexpr int kMaxTerms = 8;

// Out-of-place perturbation: out[i] = dequant(src)[i] + sum_k coeff_k * z(seed_k, pid, i), in out's
// dtype (round to nearest). src may be F8E4M3 with `row_scales` (one per row of `row_len`
// elements; value = fp8 * scale); otherwise row_scales is ignored. nterms == 0 is a plain cast.
struct PerturbArgs {
  void* out;
  Elem out_elem;
  const void* src;
  Elem src_elem;
  const float* row_scales;
  int64_t row_len;
  int64_t n;
  uint64_t pid;
  Dist dist;
  const ZTerm* terms;  // host array
  int nterms;
  int64_t first = 0;  // index of out[0] / src[0] within the parameter (z is drawn for first + i)
  // Optional mirror output (Note [Mirror perturbation]): out2[i] = dequant(src)[i] + sum_k
  // (-coeff_k) z_k, in out's dtype: bit for bit what a second call with negated coefficients
  // writes, from the same z (one Philox + Box-Muller for both). nullptr: none.
  void* out2 = nullptr;
};

// Note [Mirror perturbation]
// MeZO's two forwards see theta + eps z and theta - eps z. Perturbing into a scratch per forward
// generates z twice per step; the mirror output makes both copies in one pass, so a step costs two
// z generations (update + this pass) instead of three. The GPU kernel forms the second sum with
// its own accumulators and negated coefficients, so no sign-of-zero or rounding shortcut can make
// it differ from a separate call; the CPU reference is literally two calls.
struct UpdateArgs {
  void* theta;
  Elem elem;
  int64_t n;
  uint64_t pid;
  Dist dist;
  const ZTerm* terms;  // host array
  int nterms;
  float decay;       // 0 for no weight decay
  uint64_t sr_seed;  // 0: round to nearest even; else stochastic rounding (16-bit theta only)
  int64_t first = 0; // index of theta[0] within the parameter: a piece of a split tensor draws the
                     // same z as the whole (z and the rounding bits are drawn for first + i)
  // Optional (Note [Delta write-back]): also report the change of every element as codes and
  // exceptions. 16-bit theta, one pass (nterms <= kMaxTerms), first a multiple of 4.
  const DeltaOut* delta = nullptr;
};

// fp8 (e4m3fn) row-wise packing: scale_r = max|x_r| / 448 (1 for an all-zero row),
// q = round_to_nearest_even_e4m3(x / scale_r), saturating at +-448.
struct PackFp8Args {
  const void* src;
  Elem src_elem;
  int64_t rows;
  int64_t cols;
  uint8_t* dst;   // rows * cols bytes
  float* scales;  // rows floats
};

// CUDA kernels (kernels/*.cu; linked only where nvcc built them). Asynchronous on stream s.
void zo_perturb(const PerturbArgs& a, cudaStream_t s);
void zo_update(const UpdateArgs& a, cudaStream_t s);
void pack_fp8_rows(const PackFp8Args& a, cudaStream_t s);
// Fills out[i] = z(seed, pid, i) as float (tests and benches).
void fill_z(float* out, int64_t n, uint64_t pid, uint64_t seed, Dist d, cudaStream_t s);
// The Box-Muller pieces of kernels/philox.h for v = first .. first + n - 1 (v < 2^24), three floats
// each: sqrt(-2 ln u) of the word v << 8, then sin and cos of the angle input v + 1 (tests: every
// input the sampler can see, Note [Unchecked division and square root]).
void box_muller_pieces(uint32_t first, int64_t n, float* out, cudaStream_t s);

namespace ref {
// CPU references (oneTBB-parallel), bit-identical in the Philox words to the CUDA kernels.
void zo_perturb(const PerturbArgs& a);
void zo_update(const UpdateArgs& a);
void pack_fp8_rows(const PackFp8Args& a);
void fill_z(float* out, int64_t n, uint64_t pid, uint64_t seed, Dist d);
void box_muller_pieces(uint32_t first, int64_t n, float* out);
// Scalar conversions used by the references (and the tests).
float bf16_to_float(uint16_t h);
uint16_t float_to_bf16_rne(float f);
float f16_to_float(uint16_t h);
uint16_t float_to_f16_rne(float f);
float e4m3_to_float(uint8_t q);
uint8_t float_to_e4m3_rne(float f);  // saturating at +-448
// Inverse of pack_fp8_rows: out[r * cols + c] = e4m3(q[r * cols + c]) * scales[r].
void unpack_fp8_rows(const uint8_t* q, const float* scales, int64_t rows, int64_t cols, float* out);
}  // namespace ref

}  // namespace zoff::k
