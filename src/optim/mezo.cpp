// MeZO (ZO-SGD with two-point SPSA) and SubZero (the same step with low-rank directions).
#include <cmath>

#include "optimizers.h"
#include "zoff/log.h"

namespace zoff {
namespace {

// Note [MeZO step]
// Malladi et al. 2023, Algorithm 1: with z drawn from the step's seed,
//   L+ = L(theta + eps z), L- = L(theta - eps z), g = (L+ - L-) / (2 eps),
//   theta <- theta - lr_t (g z + wd theta)      (wd skipped for biases and norms).
// Tied weights are one parameter, so they are perturbed and updated once (ZO2 does it twice).
// SubZero (Yu et al. 2024) is the same step with z = sqrt(mn/r²) U Z Vᵀ for 2-D weights, U and V
// resampled every F steps; the update of step t carries its basis index t / F, so a delayed
// update applied during the first step of a new period still uses the old U, V.
class MeZO : public ZoOptimizer {
 public:
  MeZO(const OptimizerConfig& c, uint64_t seed, int64_t total, std::unique_ptr<Directions> d, bool subzero)
      : ZoOptimizer(c, seed, total, std::move(d)), subzero_(subzero) {}

  const char* name() const override { return subzero_ ? "subzero" : "mezo"; }

  StepRequest begin_step(int64_t t) override {
    step_ = t;
    seed_t_ = k::step_seed(seed_, uint64_t(t), 0);
    basis_ = subzero_ ? t / cfg_.subzero_period : 0;
    if (auto* lr = dynamic_cast<LowRankDirections*>(dirs_.get())) lr->evict_before(basis_ - 1);
    StepRequest r;
    r.step = t;
    r.forwards = {Perturbation{{DirTerm{seed_t_, cfg_.eps, basis_}}},
                  Perturbation{{DirTerm{seed_t_, -cfg_.eps, basis_}}}};
    return r;
  }

  nlohmann::json end_step(const std::vector<double>& L) override {
    const double g = (L.at(0) - L.at(1)) / (2.0 * cfg_.eps);
    const double lr = lr_at(step_);
    nlohmann::json info = {{"loss", 0.5 * (L[0] + L[1])}, {"projected_grad", g}, {"lr", lr}};
    if (!std::isfinite(g)) {
      log::warn("step {}: non-finite projected gradient (L+ = {}, L- = {}); update skipped", step_, L[0], L[1]);
      info["skipped"] = true;
      return info;
    }
    pending_.step = step_;
    pending_.terms = {DirTerm{seed_t_, -lr * g, basis_}};
    pending_.decay = lr * cfg_.weight_decay;
    pending_.lr = lr;
    return info;
  }

 private:
  bool subzero_;
  uint64_t seed_t_ = 0;
  int64_t basis_ = 0;
};

}  // namespace

std::unique_ptr<ZoOptimizer> make_mezo(const OptimizerConfig& c, uint64_t seed, int64_t total) {
  k::Dist d = c.direction == "rademacher" ? k::Dist::Rademacher : k::Dist::Gaussian;
  return std::make_unique<MeZO>(c, seed, total, std::make_unique<ElementwiseDirections>(d), false);
}

std::unique_ptr<ZoOptimizer> make_subzero(const OptimizerConfig& c, uint64_t seed, int64_t total) {
  return std::make_unique<MeZO>(c, seed, total,
                                std::make_unique<LowRankDirections>(c.subzero_rank, seed), true);
}

}  // namespace zoff
