// ZoStep: one pass of a ZO step, fed one resident parameter group at a time (any visit engine).
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <vector>

#include "zoff/model.h"
#include "zoff/optimizer.h"

namespace zoff {

// One batch, token ids and masks [B,T] int64 (any device; moved to the compute device).
struct StepBatch {
  at::Tensor input_ids;
  at::Tensor attention_mask;
  at::Tensor labels;  // -100 = not scored; undefined: labels_from_inputs
};

// Note [Visit protocol]
// A pass runs every forward of a StepRequest through the model group by group, in order
// embed, layers 0..L-1, head. visit(g, flat) is called once per group while its flat buffer is
// resident (a GPU slot, a resident buffer, or host memory on the CPU path): it applies the
// optimizer's pending update to the group (first pass of a step only), then pushes every
// forward's activations through it, asking a PerturbedSource for each weight. The embed group's
// buffer must stay valid until the head is visited (tied lm_head). The same code runs for
// resident training, offloaded training and evaluation, so they agree bit for bit.
class ZoStep {
 public:
  ZoStep(const Model& m, ZoOptimizer* opt, at::ScalarType compute, const at::Device& device);
  ~ZoStep();

  // Starts a pass. apply_pending: apply the optimizer's pending update on each visit (the first
  // pass of a step). keep_rows: also keep per-row losses (classification scoring).
  void begin_pass(const StepRequest& req, const StepBatch& batch, bool apply_pending, bool keep_rows = false);
  // apply_here = false: this group's pending update was already applied elsewhere (the host
  // master at the CPU update site). delta != nullptr: the update also reports its change for
  // the whole flat buffer (Note [Delta write-back]; the optimizer must have delta_ok).
  // fp8 != nullptr: `flat` holds the group's exponent-exact fp8 transfer bytes and the pending
  // update is decided from them (Note [fp8 at the GPU site], kernels/fp8_site.h): the master's
  // change goes to fp8->delta, the forwards see the fp8 weights plus the update, built in a
  // bf16 buffer of one group (allocated on first use).
  struct Fp8Visit {
    k::Fp8DeltaOut delta{};
    k::Fp8RecomputeRecipe* recipe = nullptr;
  };
  void visit(int group, const at::Tensor& flat, bool apply_here = true, const k::DeltaOut* delta = nullptr,
             const Fp8Visit* fp8 = nullptr);
  // Note [Split bf16 masters] (offload/block_store.h): `planes` holds the group's split bf16
  // planes (kernels/split16.h) and `escapes` (device-readable) its escape list. The planes are
  // decoded into the bf16 work buffer of one group (shared with fp8 updates), the pending update is
  // applied there with its change reported to `delta` (exceptions past the list's capacity are
  // stored into the work buffer itself, a no-op, and the host recomputes them from `recipe`,
  // filled here), and the forwards run on it.
  struct SplitVisit {
    const k::SplitEscape* escapes = nullptr;
    int64_t escape_count = 0;
    const k::DeltaOut* delta = nullptr;  // required when this visit applies an update
    k::SplitRecipe* recipe = nullptr;
  };
  void visit_split(int group, const at::Tensor& planes, bool apply_here, const SplitVisit& v);
  bool done() const { return next_group_ == model_.num_groups(); }
  // After the head: mean loss per forward (one host sync). Clears the applied pending update.
  std::vector<double> losses();
  // Per-row target NLL sums and counts [F, B] (keep_rows passes only), on the CPU.
  const at::Tensor& row_nll() const { return row_nll_; }
  const at::Tensor& row_count() const { return row_count_; }
  int64_t scored_tokens() const;
  // Bytes of the perturbation scratch (one largest matrix in the compute dtype), plus the mirror
  // buffer when mirroring is on.
  int64_t scratch_bytes() const;
  // Bytes of the bf16 work buffer of fp8 updates and split visits (0 until one allocated it).
  int64_t work16_bytes() const;
  // Note [Mirror forwards]: when on, a forward whose terms are exactly the negation of an earlier
  // forward's (MeZO's theta - eps z after theta + eps z) gets its matrices from a mirror buffer
  // that the earlier forward's perturbation pass filled (one z generation for both). Costs one
  // largest group in the compute dtype; the trainer turns it on for resident runs.
  void set_mirror(bool on);
  // Matrices a forward took from the mirror buffer so far (tests, stats).
  int64_t mirror_reads() const;

 private:
  class Source;
  const Model& model_;
  ZoOptimizer* opt_;
  at::ScalarType compute_;
  at::Device device_;
  std::unique_ptr<Source> src_;
  StepRequest req_;
  StepBatch batch_;
  AttnContext ctx_;
  bool apply_pending_ = false;
  bool keep_rows_ = false;
  int next_group_ = 0;
  std::vector<at::Tensor> h_;
  std::vector<at::Tensor> loss_;
  std::vector<int> role_;  // per forward: 0, 1 fills the mirror buffer, 2 reads it
  at::Tensor row_nll_, row_count_;
  at::Tensor count_;
};

}  // namespace zoff
