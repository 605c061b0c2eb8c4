// FZOO: N one-sided Rademacher perturbations, step normalised by the std of the perturbed losses.
#include <cmath>

#include "optimizers.h"
#include "zoff/log.h"

namespace zoff {
namespace {

// Note [FZOO conventions]
// Dang et al. 2025: losses l_0 = L(theta), l_i = L(theta + eps u_i) for N Rademacher u_i; sigma is
// the std of l_1..l_N and
//   paper:  theta <- theta - lr / (N eps sigma) * sum_i (l_i - l_0) u_i,  sigma with N-1 (sample std)
//   code:   theta <- theta - lr / (N sigma)     * sum_i (l_i - l_0) u_i,  sigma population std
// (the official code folds eps into lr). optimizer.fzoo_convention picks one; "code" is default.
// sigma == 0 (all perturbed losses equal) would divide by zero: the step is skipped and logged.
class FZOO : public ZoOptimizer {
 public:
  using ZoOptimizer::ZoOptimizer;
  const char* name() const override { return "fzoo"; }

  StepRequest begin_step(int64_t t) override {
    step_ = t;
    StepRequest r;
    r.step = t;
    r.forwards.push_back(Perturbation{});  // l_0: clean weights
    seeds_.clear();
    for (int i = 1; i <= cfg_.fzoo_n; ++i) {
      seeds_.push_back(k::step_seed(seed_, uint64_t(t), uint64_t(i)));
      r.forwards.push_back(Perturbation{{DirTerm{seeds_.back(), cfg_.eps, 0}}});
    }
    return r;
  }

  nlohmann::json end_step(const std::vector<double>& L) override {
    const int n = cfg_.fzoo_n;
    const double l0 = L.at(0);
    double mean = 0;
    for (int i = 1; i <= n; ++i) mean += L.at(size_t(i));
    mean /= n;
    double ss = 0;
    for (int i = 1; i <= n; ++i) ss += (L[size_t(i)] - mean) * (L[size_t(i)] - mean);
    const bool paper = cfg_.fzoo_convention == "paper";
    const double sigma = std::sqrt(ss / (paper ? n - 1 : n));
    const double lr = lr_at(step_);
    nlohmann::json info = {{"loss", l0}, {"sigma", sigma}, {"lr", lr}};
    if (!(sigma > 0) || !std::isfinite(sigma)) {
      log::warn("step {}: FZOO loss std is {} (perturbed losses all equal or not finite); update skipped",
                step_, sigma);
      info["skipped"] = true;
      return info;
    }
    const double scale = -lr / (n * sigma * (paper ? cfg_.eps : 1.0));
    pending_.step = step_;
    pending_.terms.clear();
    for (int i = 1; i <= n; ++i)
      pending_.terms.push_back(DirTerm{seeds_[size_t(i - 1)], scale * (L[size_t(i)] - l0), 0});
    pending_.decay = lr * cfg_.weight_decay;
    pending_.lr = lr;
    return info;
  }

 private:
  std::vector<uint64_t> seeds_;
};

}  // namespace

std::unique_ptr<ZoOptimizer> make_fzoo(const OptimizerConfig& c, uint64_t seed, int64_t total) {
  return std::make_unique<FZOO>(c, seed, total, std::make_unique<ElementwiseDirections>(k::Dist::Rademacher));
}

}  // namespace zoff
