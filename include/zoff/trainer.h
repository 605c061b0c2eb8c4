// Trainer: builds model, weights, optimizer, data and the visit engine from a RunConfig and runs it.
#pragma once

#include <ATen/ATen.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "zoff/config.h"

namespace zoff {

struct EvalResult {
  double loss = 0;          // mean token NLL (causal LM) or mean NLL of the correct candidate
  double perplexity = 0;    // exp(loss)
  double accuracy = -1;     // classification only (else -1)
  int64_t examples = 0;
  int64_t tokens = 0;
};

struct StepStats {
  int64_t step = 0;
  double loss = 0;
  double seconds = 0;
  double tokens_per_second = 0;
  int64_t gpu_peak_bytes = 0;
  nlohmann::json info;  // optimizer scalars (projected_grad, lr, ...)
};

// Note [Trainer]
// One Trainer owns one run: it resolves the device (train.device auto -> cuda when available),
// builds the model from the checkpoint or dummy weights, places every parameter group according
// to the policy (resident on the device, or streamed from a pinned host master through the
// offload engine), and runs ZO steps through ZoStep (Note [Visit protocol]). It writes
// output_dir/{config.toml, metrics.jsonl, seed_log.jsonl, checkpoint-*/}. request_stop() (from a
// signal handler) makes train() finish the current step, flush the pending update, save a
// checkpoint and return false.
class Trainer {
 public:
  explicit Trainer(RunConfig cfg);
  ~Trainer();

  // Runs train.steps steps (from the resumed step, if any). Returns false when stopped early.
  bool train();
  // Evaluates the given JSONL split (empty: data.eval) with clean forwards (no perturbation).
  EvalResult evaluate(const std::string& split_path = "");
  // Flushes the pending update and writes an HF checkpoint + optimizer state + seed log into dir.
  void save_checkpoint(const std::string& dir);
  // Restores weights, optimizer state and data position from a checkpoint written by save_checkpoint.
  void resume_from(const std::string& dir);
  void request_stop() { stop_.store(true); }
  int64_t step() const;
  // The engine's numbers for the last pass (h2d/d2h bytes, deferred-site lag, ...).
  nlohmann::json engine_stats() const;
  const RunConfig& config() const { return cfg_; }
  // Human-readable memory/transfer plan of this run (what `zoff plan` prints).
  std::string plan_report() const;
  // Flushes the pending update and returns a float32 CPU copy of every group's flat buffer.
  std::vector<at::Tensor> snapshot_weights();
  // Runs one step and returns its stats (train() calls this in a loop).
  StepStats train_step();
  // Blocks until the host work that trails finished steps (the fp8 GPU site's delta applies, Note
  // [Applies across passes]) is done; returns the ms waited. Benches time it with the last step.
  double wait_background();

 private:
  struct Impl;
  RunConfig cfg_;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> stop_{false};
};

}  // namespace zoff
