// Zeroth-order optimizers (MeZO, FZOO, SubZero, MeZO-SVRG) as step requests plus pending updates.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "zoff/config.h"
#include "kernels/fp8_site.h"
#include "kernels/split16.h"
#include "zoff/directions.h"

namespace zoff {

// The weights one forward of a step sees: theta + sum of terms (empty = clean theta).
struct Perturbation {
  std::vector<DirTerm> terms;
};

// What the trainer must evaluate for step t.
struct StepRequest {
  int64_t step = 0;
  std::vector<Perturbation> forwards;  // all run while a block is resident (Note [One visit])
  bool full_batch = false;             // SVRG anchor: average the losses over the full-batch set
};

// The update of a finished step, applied lazily when each group is next visited:
//   theta <- theta * (1 - decay) + sum terms    (decay only on parameters that decay)
struct PendingUpdate {
  int64_t step = -1;  // -1: nothing pending
  std::vector<DirTerm> terms;
  double decay = 0;
  double lr = 0;
  bool empty() const { return step < 0; }
};

// Note [One visit]
// A ZO step is split so that the offload engine can visit each block once: begin_step() says
// which perturbed forwards step t needs; while a group is resident the engine first applies the
// pending update of step t-1 to it (apply_update), then runs every forward of step t through it;
// when all losses are in, end_step() turns them into the next pending update. Before eval,
// checkpoint or exit the engine flushes the pending update into every group.
class ZoOptimizer {
 public:
  virtual ~ZoOptimizer() = default;
  virtual const char* name() const = 0;
  virtual StepRequest begin_step(int64_t step) = 0;
  // Losses of request.forwards, same order (averaged over the batches for full-batch steps).
  // Returns the scalars worth logging (projected gradient etc.).
  virtual nlohmann::json end_step(const std::vector<double>& losses) = 0;

  const PendingUpdate& pending() const { return pending_; }
  void clear_pending() { pending_ = PendingUpdate{}; }
  // Seed-log replay (Note [Seed log replay]): install a logged update to apply.
  void set_pending(PendingUpdate p) { pending_ = std::move(p); }
  // Applies pending() to the parameters of one group (flat buffer of group g, any device).
  void apply_update(const GroupLayout& g, const at::Tensor& flat) const { apply_update(pending_, g, flat); }
  // Applies an earlier pending update `u` (the deferred update site replays them).
  void apply_update(const PendingUpdate& u, const GroupLayout& g, const at::Tensor& flat) const;
  // As apply_update, also reporting the change of the whole flat buffer (Note [Delta write-back]):
  // group_delta describes element 0 of `flat` (index_base 0); each parameter gets its slice.
  // Needs delta_ok(pending()).
  void apply_update(const GroupLayout& g, const at::Tensor& flat, const k::DeltaOut& group_delta) const;
  // Note [fp8 at the GPU site] (kernels/fp8_site.h): the pending update of one group that
  // travelled as exponent-exact fp8 (`q`: the group's transfer bytes, payload then row scales;
  // param_rows: each parameter's first row), decided from the fp8 copy. Writes the group's forward
  // weights into `w` (numel elements) and the master's change into group_delta; `recipe` receives
  // what the host needs to recompute exceptions. Needs delta_ok(pending()), element-wise
  // directions and no weight decay.
  void apply_update_fp8(const GroupLayout& g, const at::Tensor& q, const std::vector<int64_t>& param_rows,
                        at::Tensor w, const k::Fp8DeltaOut& group_delta, k::Fp8RecomputeRecipe* recipe) const;
  // Note [Split bf16 masters]: what the host needs to recompute the exceptions of the pending
  // update of group g on a bf16 master (the list overflowed): its terms, per-parameter decay and
  // rounding seed, as the element-wise kernel applies them. Needs element-wise directions.
  void split_recipe(const GroupLayout& g, k::SplitRecipe* recipe) const;
  // Whether pending update u can be applied with a delta: directions that support it, and one
  // kernel pass (at most k::kMaxTerms terms).
  bool delta_ok(const PendingUpdate& u) const;
  Directions& directions() { return *dirs_; }
  void replace_directions(std::unique_ptr<Directions> d) { dirs_ = std::move(d); }
  const OptimizerConfig& config() const { return cfg_; }
  uint64_t base_seed() const { return seed_; }

  // Everything needed to continue bit-identically (seeds, anchor terms, pending update).
  virtual nlohmann::json state() const;
  virtual void load_state(const nlohmann::json& j);

  double lr_at(int64_t step) const;  // the schedule
  int64_t total_steps() const { return total_steps_; }

  // (Abstract; public so that subclasses can inherit it with `using`.)
  ZoOptimizer(OptimizerConfig cfg, uint64_t seed, int64_t total_steps, std::unique_ptr<Directions> d);

 protected:
  OptimizerConfig cfg_;
  uint64_t seed_;
  int64_t total_steps_;
  std::unique_ptr<Directions> dirs_;
  PendingUpdate pending_;
  int64_t step_ = -1;  // step of the open request

 private:
  void apply_impl(const PendingUpdate& u, const GroupLayout& g, const at::Tensor& flat, const k::DeltaOut* gd) const;
  uint64_t sr_seed_of(const PendingUpdate& u) const;
};

// Validates cfg (InputError naming `source` and the key) and builds the optimizer. `dirs`
// replaces the optimizer's own directions (tests feed explicit z from a file).
std::unique_ptr<ZoOptimizer> make_optimizer(const OptimizerConfig& cfg, uint64_t seed,
                                            int64_t total_steps, const std::string& source = "optimizer",
                                            std::unique_ptr<Directions> dirs = nullptr);
void validate_optimizer_config(const OptimizerConfig& cfg, const std::string& source);

}  // namespace zoff
