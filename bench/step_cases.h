// bench_step's cases: model sizes, optimizers, policies, the RunConfig of each, and the ZOFF_BENCH_* options.
#pragma once

#include <fnmatch.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "zoff/config.h"
#include "zoff/error.h"
#include "zoff/model_spec.h"

namespace zoff::bench_step {

struct SizeDef {
  const char* name;
  int64_t hidden, heads, layers, ffn, vocab, max_pos;
};
// The HF shapes of facebook/opt-*; opt-tiny is the test fixture's shape (tests/data/opt-tiny) with
// one more layer, so the budget and streamed policies have blocks to stream on a CPU.
inline const SizeDef kSizes[] = {
    {"opt-tiny", 64, 4, 4, 256, 512, 64},
    {"opt-1.3b", 2048, 32, 24, 8192, 50272, 2048},
    {"opt-6.7b", 4096, 32, 32, 16384, 50272, 2048},
    {"opt-13b", 5120, 40, 40, 20480, 50272, 2048},
    {"opt-30b", 7168, 56, 48, 28672, 50272, 2048},
};

struct OptDef {
  const char* name;
  OptimizerKind kind;
};
inline const OptDef kOpts[] = {{"mezo", OptimizerKind::MeZO},
                               {"fzoo8", OptimizerKind::FZOO},
                               {"subzero", OptimizerKind::SubZero},
                               {"svrg", OptimizerKind::SVRG}};
inline const char* const kPolicies[] = {"all-resident",    "stream-bf16", "stream-bf16-dense", "stream-bf16-split",
                                        "stream-deferred", "stream-fp8",  "stream-fp8-cpu", "budget"};

struct Options {
  std::string device;  // "cpu" | "cuda"
  std::vector<const SizeDef*> sizes;
  std::vector<std::string> filters;  // fnmatch patterns over "size/optimizer/policy"
  int64_t iterations = 0, warmup = 0, batch = 1, seq = 0;  // seq 0: min(2048, max_positions)
  bool timeline = true;
  std::string runs_dir;   // empty: temporary run folders, removed after each case
  double h2d_bytes_per_s = 0;  // measured at start-up (CUDA only)
};

inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

inline std::string env_or(const char* key, const std::string& dflt) {
  const char* v = std::getenv(key);
  return v && *v ? std::string(v) : dflt;
}

inline int64_t env_int(const char* key, int64_t dflt, int64_t lo) {
  const std::string v = env_or(key, "");
  if (v.empty()) return dflt;
  size_t used = 0;
  int64_t x = 0;
  try {
    x = std::stoll(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  ZOFF_INPUT_CHECK(used == v.size() && x >= lo, "environment variable ", key, "='", v,
                   "': expected an integer >= ", lo);
  return x;
}

inline const SizeDef& find_size(const std::string& want) {
  for (const SizeDef& s : kSizes)
    if (want == s.name || "opt-" + want == s.name || (want == "tiny" && std::string(s.name) == "opt-tiny")) return s;
  std::string names;
  for (const SizeDef& s : kSizes) names += std::string(names.empty() ? "" : ", ") + s.name;
  ZOFF_INPUT_FAIL("environment variable ZOFF_BENCH_SIZES: unknown size '", want, "' (known: ", names, ")");
}

inline Options read_options() {
  Options o;
  o.device = env_or("ZOFF_BENCH_DEVICE", "auto");
  if (o.device == "auto") o.device = at::hasCUDA() ? "cuda" : "cpu";
  ZOFF_INPUT_CHECK(o.device == "cpu" || o.device == "cuda", "environment variable ZOFF_BENCH_DEVICE='", o.device,
                   "': expected auto, cpu or cuda");
  const bool gpu = o.device == "cuda";
  for (const std::string& s : split_list(env_or("ZOFF_BENCH_SIZES", gpu ? "1.3b,6.7b,13b,30b" : "tiny")))
    o.sizes.push_back(&find_size(s));
  o.filters = split_list(env_or("ZOFF_BENCH_FILTER", gpu ? "*/mezo/stream-bf16,*/mezo/all-resident" : "*"));
  o.iterations = env_int("ZOFF_BENCH_ITERS", gpu ? 4 : 3, 1);
  o.warmup = env_int("ZOFF_BENCH_WARMUP", 2, 0);
  o.batch = env_int("ZOFF_BENCH_BATCH", 1, 1);
  o.seq = env_int("ZOFF_BENCH_SEQ", 0, 0);
  o.timeline = env_int("ZOFF_BENCH_TIMELINE", 1, 0) != 0;
  o.runs_dir = env_or("ZOFF_BENCH_RUNS_DIR", "");
  return o;
}

inline bool selected(const Options& o, const std::string& name) {
  for (const std::string& f : o.filters)
    if (fnmatch(f.c_str(), name.c_str(), 0) == 0) return true;
  return false;
}

inline ModelSpec make_spec(const SizeDef& s) {
  const nlohmann::json j = {{"model_type", "opt"},           {"hidden_size", s.hidden},
                            {"num_attention_heads", s.heads}, {"num_hidden_layers", s.layers},
                            {"ffn_dim", s.ffn},               {"vocab_size", s.vocab},
                            {"max_position_embeddings", s.max_pos}, {"word_embed_proj_dim", s.hidden},
                            {"do_layer_norm_before", true},   {"activation_function", "relu"},
                            {"enable_bias", true},            {"tie_word_embeddings", true},
                            {"pad_token_id", 1},              {"bos_token_id", 2},
                            {"eos_token_id", 2}};
  const std::string src = std::string("bench_step ") + s.name;
  ModelSpec spec = model_spec_from_json(j, src);
  spec.validate(src);
  return spec;
}

// The policies of the bench (docs/bench.md): all bf16 master and compute. stream-bf16 writes
// blocks back as deltas (Note [Delta write-back]), stream-bf16-dense whole; stream-deferred is
// stream-bf16 at the deferred update site (Note [Deferred update site]: no write-back).
// stream-fp8 moves fp8 copies and updates at the GPU site (Note [fp8 at the GPU site]; SubZero,
// whose low-rank updates the GPU cannot decide from fp8, falls back to the CPU site there);
// stream-fp8-cpu is the same transfer with the host applying every update. stream-bf16-split is
// stream-bf16 with the masters stored and moved split (lossless, 1.5 bytes per element: Note
// [Split bf16] in kernels/split16.h; SubZero, which it does not support, runs plain stream-bf16).
inline OffloadPolicy make_policy(const std::string& name) {
  OffloadPolicy p;
  p.name = name;
  p.storage_dtype = DType::BF16;
  p.compute_dtype = DType::BF16;
  p.transfer = TransferFormat::Same;
  p.num_slots = 3;
  p.prefetch_depth = 1;
  p.update_site = UpdateSite::Gpu;
  p.offload = name != "all-resident";
  p.resident_blocks = 0;
  if (name == "stream-bf16-dense") {
    p.write_back = WriteBack::Dense;
  } else if (name == "stream-deferred") {
    p.update_site = UpdateSite::Deferred;
  } else if (name == "stream-bf16-split") {
    p.transfer = TransferFormat::BF16Split;
  } else if (name == "stream-fp8") {
    p.transfer = TransferFormat::FP8;
  } else if (name == "stream-fp8-cpu") {
    p.transfer = TransferFormat::FP8;
    p.update_site = UpdateSite::Cpu;
  } else if (name == "budget") {
    p.resident_blocks = -1;
    p.gpu_memory_budget = parse_byte_size("12GiB", "bench_step policy budget");
  }
  return p;
}

inline RunConfig make_config(const Options& o, const SizeDef& s, const OptDef& od, const std::string& policy) {
  RunConfig c;
  c.source = std::string("bench_step ") + s.name + "/" + od.name + "/" + policy;
  c.model.dummy_weights = true;
  c.model.spec = make_spec(s);
  c.policy = make_policy(policy);
  c.optimizer.kind = od.kind;
  if (policy == "stream-fp8" && od.kind == OptimizerKind::SubZero) c.policy.update_site = UpdateSite::Cpu;
  if (policy == "stream-bf16-split" && od.kind == OptimizerKind::SubZero) c.policy.transfer = TransferFormat::Same;
  c.optimizer.lr = 1e-7;
  c.optimizer.eps = 1e-3;
  c.optimizer.fzoo_n = 8;
  c.optimizer.svrg_lr_inner = c.optimizer.svrg_lr_full = 1e-7;
  c.data.batch_size = o.batch;
  c.data.max_length = o.seq > 0 ? o.seq : std::min<int64_t>(2048, s.max_pos);
  ZOFF_INPUT_CHECK(c.data.max_length <= s.max_pos, "environment variable ZOFF_BENCH_SEQ=", o.seq, " exceeds ",
                   s.name, "'s max_position_embeddings (", s.max_pos, ")");
  c.train.steps = 1000000;  // only sets the lr schedule's horizon; the bench calls train_step itself
  c.train.device = o.device;
  c.train.timeline = o.timeline;
  c.train.log_every = 0;
  return c;
}

}  // namespace zoff::bench_step
