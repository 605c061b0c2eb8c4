// MeZO (ZO-SGD with two-point SPSA) and SubZero (the same step with low-rank directions).
#include <cmath>

#include "optimizers.h"
#include "zoff/error.h"
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
// optimizer.mezo_q = q > 1 is the paper's n-SPSA (Malladi et al. 2023, Appendix: q directions
// z_1..z_q from seeds (t, 0..q-1), forwards +eps z_i, -eps z_i in that order, and
//   theta <- theta - lr_t (1/q sum_i g_i z_i + wd theta).
// q = 1 gives the seeds, forwards and bits of the plain MeZO step. The 2q forwards are what
// perturbation-parallel training splits among processes (docs/distributed.md).
class MeZO : public ZoOptimizer {
 public:
  MeZO(const OptimizerConfig& c, uint64_t seed, int64_t total, std::unique_ptr<Directions> d, bool subzero)
      : ZoOptimizer(c, seed, total, std::move(d)), subzero_(subzero) {}

  const char* name() const override { return subzero_ ? "subzero" : "mezo"; }

  StepRequest begin_step(int64_t t) override {
    step_ = t;
    basis_ = subzero_ ? t / cfg_.subzero_period : 0;
    if (auto* lr = dynamic_cast<LowRankDirections*>(dirs_.get())) lr->evict_before(basis_ - 1);
    StepRequest r;
    r.step = t;
    seeds_.clear();
    for (int i = 0; i < cfg_.mezo_q; ++i) {
      seeds_.push_back(k::step_seed(seed_, uint64_t(t), uint64_t(i)));
      r.forwards.push_back(Perturbation{{DirTerm{seeds_.back(), cfg_.eps, basis_}}});
      r.forwards.push_back(Perturbation{{DirTerm{seeds_.back(), -cfg_.eps, basis_}}});
    }
    return r;
  }

  nlohmann::json end_step(const std::vector<double>& L) override {
    const int q = cfg_.mezo_q;
    ZOFF_CHECK(L.size() == size_t(2 * q), "MeZO with q = ", q, " needs ", 2 * q, " losses, got ", L.size());
    const double lr = lr_at(step_);
    std::vector<double> g(static_cast<size_t>(q));
    double loss = 0;
    bool finite = true;
    for (int i = 0; i < q; ++i) {
      g[size_t(i)] = (L[size_t(2 * i)] - L[size_t(2 * i + 1)]) / (2.0 * cfg_.eps);
      loss += 0.5 * (L[size_t(2 * i)] + L[size_t(2 * i + 1)]);
      finite = finite && std::isfinite(g[size_t(i)]);
    }
    nlohmann::json info = {{"loss", loss / q}, {"projected_grad", q == 1 ? nlohmann::json(g[0]) : nlohmann::json(g)},
                           {"lr", lr}};
    if (!finite) {
      log::warn("step {}: non-finite projected gradient (losses {}); update skipped", step_, nlohmann::json(L).dump());
      info["skipped"] = true;
      return info;
    }
    pending_.step = step_;
    pending_.terms.clear();
    for (int i = 0; i < q; ++i) pending_.terms.push_back(DirTerm{seeds_[size_t(i)], -lr * g[size_t(i)] / q, basis_});
    pending_.decay = lr * cfg_.weight_decay;
    pending_.lr = lr;
    return info;
  }

 private:
  bool subzero_;
  std::vector<uint64_t> seeds_;  // one per direction; seeds_[0] is the q = 1 seed
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
