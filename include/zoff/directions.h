// ZO directions: how z (element-wise Philox, or SubZero's low-rank U·Z·Vᵀ) enters weights.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "kernels/zo_kernels.h"
#include "zoff/model.h"

namespace zoff {

// One term c · z(seed) of a sum of directions. `basis` selects SubZero's U,V period (the period
// the step that drew `seed` belonged to); element-wise directions ignore it.
struct DirTerm {
  uint64_t seed = 0;
  double coeff = 0;
  int64_t basis = 0;
};

// Note [Directions]
// Every optimizer expresses both the weights a forward sees and the update it applies as
//   theta' = theta * (1 - decay) + sum_k coeff_k * z(seed_k)
// so one interface serves them all: perturb() writes that sum out of place into a buffer of the
// compute dtype (the forward's weight), update() applies it in place to the master. z never
// exists as a whole; it is regenerated per parameter from (seed, parameter id, element).
class Directions {
 public:
  virtual ~Directions() = default;
  // out = theta + sum terms (out: the parameter's shape, any float dtype, same device as theta).
  virtual void perturb(const ParamInfo& p, const at::Tensor& theta, const std::vector<DirTerm>& terms,
                       at::Tensor out) = 0;
  // theta <- theta * (1 - decay) + sum terms, in place. sr_seed != 0: stochastic rounding for
  // 16-bit theta (Note [Fused update]). delta != nullptr (only where supports_delta()): also
  // report the change as codes and exceptions (Note [Delta write-back], kernels/delta.h), with
  // codes and overflow at theta's element 0 and index_base its offset in the group.
  virtual void update(const ParamInfo& p, at::Tensor theta, const std::vector<DirTerm>& terms,
                      double decay, uint64_t sr_seed, const k::DeltaOut* delta = nullptr) = 0;
  // Whether update() can report a delta for every parameter (one fused pass per parameter).
  virtual bool supports_delta() const { return false; }
  // Bytes of state kept on the side (SubZero's U,V), for reporting.
  virtual int64_t state_bytes() const { return 0; }
};

// Element-wise Gaussian or Rademacher z from Philox, through kernels/ (CUDA) or kernels/ref (CPU).
class ElementwiseDirections : public Directions {
 public:
  explicit ElementwiseDirections(k::Dist dist) : dist_(dist) {}
  void perturb(const ParamInfo& p, const at::Tensor& theta, const std::vector<DirTerm>& terms,
               at::Tensor out) override;
  void update(const ParamInfo& p, at::Tensor theta, const std::vector<DirTerm>& terms, double decay,
              uint64_t sr_seed, const k::DeltaOut* delta = nullptr) override;
  bool supports_delta() const override { return true; }
  // perturb() into out and, in the same pass, the mirror: theta - sum terms into out2
  // (Note [Mirror perturbation], kernels/zo_kernels.h).
  void perturb_mirror(const ParamInfo& p, const at::Tensor& theta, const std::vector<DirTerm>& terms,
                      at::Tensor out, at::Tensor out2);
  k::Dist dist() const { return dist_; }

 private:
  k::Dist dist_;
};

// SubZero: 2-D weights get z = sqrt(m·n / r²) · U Z Vᵀ with U (m×r), V (n×r) orthonormal (QR of
// Gaussian matrices drawn from (basis seed, parameter id)), Z an r×r Gaussian from the step seed;
// every other parameter gets element-wise Gaussian z. U,V are cached per (parameter, basis) for
// the current and the previous basis (the delayed update at a resampling boundary needs the old
// one) and rebuilt from seeds when missing.
class LowRankDirections : public Directions {
 public:
  LowRankDirections(int rank, uint64_t base_seed) : rank_(rank), base_seed_(base_seed) {}
  void perturb(const ParamInfo& p, const at::Tensor& theta, const std::vector<DirTerm>& terms,
               at::Tensor out) override;
  // delta: not supported (the low-rank SR kernel reports no codes): zoff::Error.
  void update(const ParamInfo& p, at::Tensor theta, const std::vector<DirTerm>& terms, double decay,
              uint64_t sr_seed, const k::DeltaOut* delta = nullptr) override;
  int64_t state_bytes() const override;
  // U and V of parameter p for `basis` on `device` (cached).
  std::pair<at::Tensor, at::Tensor> basis(const ParamInfo& p, int64_t basis, const at::Device& device);
  // The r×r core Z for `seed` (float32, on device).
  at::Tensor core(const ParamInfo& p, uint64_t seed, const at::Device& device) const;
  bool is_low_rank(const ParamInfo& p) const { return p.shape.size() == 2; }
  int rank() const { return rank_; }
  // Drops cached bases older than `keep_from`.
  void evict_before(int64_t keep_from);

 private:
  // Note [Low-rank terms] (src/optim/directions.cpp).
  // perturbation: round to nearest through the cuBLAS kernel (keep and sr_seed unused).
  void add_low_rank(const ParamInfo& p, at::Tensor target2d, const std::vector<DirTerm>& terms, float keep,
                    uint64_t sr_seed, bool perturbation);
  int rank_;
  uint64_t base_seed_;
  ElementwiseDirections elementwise_{k::Dist::Gaussian};
  mutable std::mutex mu_;
  std::map<std::pair<uint64_t, int64_t>, std::pair<at::Tensor, at::Tensor>> cache_;
};

// Plain terms -> kernel terms (coefficients rounded to float).
std::vector<k::ZTerm> to_kernel_terms(const std::vector<DirTerm>& t);

// A [n] float32 tensor of z(seed, pid, i), on `device` (tests, SubZero's Gaussian factors).
at::Tensor draw_z(int64_t n, uint64_t pid, uint64_t seed, k::Dist dist, const at::Device& device);

}  // namespace zoff
