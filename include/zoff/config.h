// Run configuration: the TOML files a user writes ([model], [policy], [optimizer], [data], [train]).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "zoff/model_spec.h"
#include "zoff/policy.h"

namespace zoff {

// Every key, its type, default and meaning: docs/config.md. Paths read from a config file are
// resolved against that file's folder and stored absolute (train.output_dir excepted: it is
// relative to the working directory). Paths given with --set are relative to the working directory.

struct ModelConfig {
  std::string preset_file;    // the configs/models/x.toml it came from, if any (absolute; informational)
  std::string checkpoint;     // HF folder (config.json + safetensors); empty = dummy weights
  bool dummy_weights = false;
  uint64_t dummy_seed = 0;    // seed of the dummy initialisation
  ModelSpec spec;             // from the checkpoint's config.json or the [model.spec] table
};

enum class OptimizerKind { MeZO, FZOO, SubZero, SVRG };
const char* optimizer_kind_name(OptimizerKind k);  // "mezo", "fzoo", "subzero", "svrg"

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::MeZO;
  double lr = 1e-6;
  double eps = 1e-3;
  double weight_decay = 0;
  std::string lr_schedule = "constant";  // constant | linear | cosine
  int64_t warmup_steps = 0;
  std::string direction = "gaussian";    // gaussian | rademacher (MeZO)
  int fzoo_n = 8;                        // FZOO perturbations per step (N >= 2)
  int mezo_q = 1;                        // MeZO/SubZero directions per step, averaged (n-SPSA)
  std::string fzoo_convention = "code";  // code: lr folds eps, population std; paper: 1/eps, N-1 variance
  int subzero_rank = 24;
  int64_t subzero_period = 1000;         // steps between resampling U, V
  int64_t svrg_q = 2;                    // full-batch anchor refresh every q steps
  double svrg_lr_inner = 1e-6;           // eta2
  double svrg_lr_full = 1e-6;            // eta1
  int64_t svrg_full_batch_size = 0;      // 0: the whole train split
  std::string svrg_anchor = "rebuild";   // rebuild | store
};

struct DataConfig {
  std::string task = "causal_lm";  // causal_lm | classification | pretokenized
  std::string train;               // empty: no train split (the trainer decides what that means)
  std::string eval;
  std::string tokenizer;
  int64_t max_length = 512;
  int64_t batch_size = 8;
  bool shuffle = true;
};

struct TrainConfig {
  int64_t steps = 1000;
  uint64_t seed = 0;
  int64_t eval_every = 0;  // 0 = never (only at the end)
  int64_t save_every = 0;  // 0 = never (only at the end)
  bool save_final = true;  // false: no checkpoint-final (throughput runs on dummy weights)
  int64_t log_every = 10;  // 0 = never
  std::string output_dir = "runs/default";
  std::string device = "auto";  // auto | cpu | cuda
  bool timeline = false;        // record a per-op timeline (Chrome trace) into output_dir
};

// Several processes (one per GPU) training one model: docs/distributed.md. Used only when the
// process runs with WORLD_SIZE > 1 (zoff launch, torchrun-style env).
enum class DistMode { Perturbation, Data };
const char* dist_mode_name(DistMode m);  // "perturbation", "data"

struct DistributedConfig {
  DistMode mode = DistMode::Perturbation;  // split the step's forwards, or the batch's rows
  std::string backend = "auto";            // auto (nccl on CUDA, gloo on the CPU) | gloo | nccl
  int64_t timeout_s = 300;                 // rendezvous and collective timeout
};

struct RunConfig {
  ModelConfig model;
  OffloadPolicy policy;
  OptimizerConfig optimizer;
  DataConfig data;
  TrainConfig train;
  DistributedConfig distributed;
  std::string source;  // path of the top config file, as given
};

// Loads a run file, its presets, then applies `overrides` ("key=value", e.g. "optimizer.lr=1e-5",
// "policy.gpu_memory_budget=12GiB", "model.spec.num_hidden_layers=2") in order. Throws InputError
// naming the file (or override) and the key at fault.
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The resolved config as TOML text, self-contained (no presets); load_run_config on it gives the
// same RunConfig (source and model.preset_file aside).
std::string dump_resolved_config(const RunConfig& cfg);
// Note [fp8 at the GPU site] (kernels/fp8_site.h): why c's fp8 transfers at the GPU update site
// cannot work, as {key, message}; key empty when they can (or c does not use them). The config
// loader reports it against the file that set the key; the trainer checks configs built in code.
struct ConfigProblem {
  std::string key, message;
};
ConfigProblem fp8_gpu_site_problem(const RunConfig& c);
// The same for split bf16 masters (transfer = "bf16-split", Note [Split bf16 masters]).
ConfigProblem split_problem(const RunConfig& c);
// Loads a policy file (a [policy] table, possibly naming a preset of its own).
OffloadPolicy load_policy_file(const std::string& path);

// String <-> enum for the config spellings; parse_* throw InputError naming `what`.
OptimizerKind parse_optimizer_kind(const std::string& s, const std::string& what);
const char* config_dtype_name(DType t);  // "fp32", "bf16", "fp16", "fp8"

}  // namespace zoff
