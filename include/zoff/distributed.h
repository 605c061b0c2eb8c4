// Distributed ZO steps: which forwards or rows this rank evaluates and how the losses are combined.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "zoff/collective.h"
#include "zoff/config.h"
#include "zoff/zo_step.h"

namespace zoff {

// [begin, end) of n items for `rank` of `world`: contiguous, sizes differ by at most one, the
// first n % world ranks take the larger share.
struct Span {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};
Span split_range(int64_t n, int rank, int world);

// What one rank measured in a step (or an SVRG full-batch pass), before the reduction.
struct LocalLosses {
  std::vector<double> mean;    // perturbation mode: the mean loss of each forward of local_request()
  std::vector<double> nll;     // data mode: per forward, sum of the token NLL over this rank's rows
  std::vector<double> tokens;  // data mode: per forward, scored tokens in this rank's rows
  double evaluated_tokens = 0; // tokens x forwards this rank pushed through the model (throughput)
  bool stop = false;           // this rank was asked to stop (SIGINT/SIGTERM)
};

// The step's result, bitwise identical on every rank (Note [Exact reductions]).
struct GlobalLosses {
  std::vector<double> losses;  // one per forward of the full request, as one process would see them
  double evaluated_tokens = 0;
  bool stop = false;           // some rank was asked to stop: all stop after this step
};

// Note [Distributed ZO step]
// Weights never travel: every rank holds the whole model, draws the same seeds and computes the
// same update from the same losses, so it stays bit-identical to the others.
//  - perturbation mode: the step's F perturbed forwards are split into contiguous shares
//    (split_range); each rank runs its share on the same batch, and the losses are gathered into
//    the full vector. Each loss is computed exactly as one process computes it, so the weights
//    equal a one-process run's bit for bit.
//  - data mode: each rank runs all F forwards on its rows of the global batch (split_range over
//    rows); per forward the (sum of token NLL, token count) pairs are summed in rank order and
//    divided, which is the global batch's token-mean loss. One process sums the same terms in
//    another order (one fp32 reduction over all rows), so the two agree to rounding, not bitwise.
// With world == 1 both modes are the plain one-process step.
class Distributed {
 public:
  // env.world == 1: a world of one (no store, no env). cuda_device: this rank's GPU, -1 on the CPU.
  Distributed(const DistributedConfig& cfg, const std::string& source, const DistEnv& env, int cuda_device);
  ~Distributed();

  int rank() const { return env_.rank; }
  int world() const { return env_.world; }
  int local_rank() const { return env_.local_rank; }
  bool is_root() const { return env_.rank == 0; }
  bool active() const { return env_.world > 1; }
  DistMode mode() const { return mode_; }
  Collective& collective() { return *coll_; }

  // Perturbation mode: this rank's share of the forwards; otherwise all of them.
  Span forward_share(int64_t num_forwards) const;
  StepRequest local_request(const StepRequest& req) const;
  // Data mode: this rank's rows of the global batch; otherwise the batch itself. `counts` is set
  // to false when the batch has fewer rows than ranks and this rank got none: it then runs row 0
  // (its pass still applies the pending update) and contributes nothing.
  StepBatch local_batch(const StepBatch& global, bool* counts) const;
  // All ranks' LocalLosses -> the full request's losses (one collective).
  GlobalLosses combine(int64_t num_forwards, const LocalLosses& mine);
  // Fails on every rank, naming the first differing line, when the ranks' resolved configs differ.
  void check_same_config(const std::string& resolved_toml);
  // The local sums of several numbers over the ranks, in rank order (eval statistics).
  std::vector<double> sum(const std::vector<double>& mine) { return sum_in_rank_order(*coll_, mine); }

 private:
  DistEnv env_;
  DistMode mode_;
  std::string source_;
  std::unique_ptr<Collective> coll_;
};

// GPUs this process sees (0 without CUDA), and making `index` the current one (LibTorch and CUDA).
int cuda_device_count();
void select_cuda_device(int index);

}  // namespace zoff
