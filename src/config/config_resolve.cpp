// After all layers are applied: the model spec (checkpoint or [model.spec]) and the checks that
// involve more than one key.
#include <filesystem>
#include <set>

#include "config_loader.h"
#include "zoff/error.h"

namespace fs = std::filesystem;

namespace zoff::config_detail {

namespace {

std::string describe(const Origin& o) {
  if (!o.override.empty()) return "--set " + o.override;
  return o.line > 0 ? o.file + " line " + std::to_string(o.line) : o.file;
}

DType transfer_dtype(const OffloadPolicy& p) {
  switch (p.transfer) {
    case TransferFormat::BF16: return DType::BF16;
    case TransferFormat::F16: return DType::F16;
    case TransferFormat::FP8: return DType::F8_E4M3;
    case TransferFormat::BF16Split: return DType::BF16;  // lossless: the values are the bf16 master's
    case TransferFormat::Auto:  // lossless either way (Note [Auto transfer] in src/train/run_plan.cpp)
    case TransferFormat::Same: break;
  }
  return p.storage_dtype;
}

}  // namespace

// Note [Checkpoint or spec]
// A model has weights from exactly one place: a checkpoint folder (its config.json gives the
// architecture) or dummy weights (the architecture comes from [model.spec], usually through a
// preset). A checkpoint set in a later layer than a preset supersedes the preset's spec and
// dummy_weights (so `[model] preset = "../models/opt-125m.toml"` + `checkpoint = "..."` in a run
// file means "that checkpoint"); spec keys or dummy_weights = true set in the same layer as the
// checkpoint or later contradict it and are errors.
void Loader::resolve_model() {
  ModelConfig& m = cfg_.model;
  if (!m.checkpoint.empty()) {
    Origin ck = origin_of("model.checkpoint");
    for (auto& [k, o] : spec_origin_)
      if (o.layer >= ck.layer)
        fail(o, "model.spec." + k,
             "conflicts with model.checkpoint (" + describe(ck) +
                 "): a checkpoint's architecture comes from its config.json");
    if (m.dummy_weights) {
      Origin d = origin_of("model.dummy_weights");
      if (d.layer >= ck.layer)
        fail(d, "model.dummy_weights",
             "true conflicts with model.checkpoint (" + describe(ck) + "); set one of them");
      m.dummy_weights = false;
    }
    if (!spec_origin_.empty()) m.preset_file.clear();  // the preset was superseded
    std::error_code ec;
    if (!fs::is_directory(m.checkpoint, ec))
      fail(ck, "model.checkpoint", "no such folder (tried " + m.checkpoint + ")");
    std::string cj = (fs::path(m.checkpoint) / "config.json").string();
    if (!fs::is_regular_file(cj, ec))
      fail(ck, "model.checkpoint", "no config.json in the checkpoint folder (tried " + cj + ")");
    m.spec = parse_hf_config(cj);
    return;
  }
  if (!m.dummy_weights)
    fail(origin_of("model.dummy_weights"), "model",
         "no weights: set model.checkpoint = \"<HF folder>\" or model.dummy_weights = true");
  if (spec_origin_.empty())
    fail(origin_of("model.dummy_weights"), "model.spec",
         "dummy weights need an architecture: add a [model.spec] table or a preset "
         "(model.preset = \"../models/opt-125m.toml\")");
  std::set<std::string> seen;
  std::string label;
  for (auto& [k, o] : spec_origin_) {
    std::string s = o.override.empty() ? o.file : "--set " + o.override;
    if (seen.insert(s).second) label += (label.empty() ? "" : ", ") + s;
  }
  label += " [model.spec]";
  m.spec = model_spec_from_json(spec_, label);
  m.spec.validate(label);
}

void Loader::check_policy() {
  const OffloadPolicy& p = cfg_.policy;
  auto later = [&](const char* a, const char* b) {
    Origin oa = origin_of(a), ob = origin_of(b);
    return oa.layer >= ob.layer ? std::make_pair(oa, std::string(a)) : std::make_pair(ob, std::string(b));
  };
  if (p.prefetch_depth >= p.num_slots) {
    auto [o, key] = later("policy.prefetch_depth", "policy.num_slots");
    fail(o, key,
         "policy.prefetch_depth (" + std::to_string(p.prefetch_depth) + ") must be < policy.num_slots (" +
             std::to_string(p.num_slots) + "): one slot holds the block being computed");
  }
  // Note [Lossy transfers need the CPU update site]
  // With the GPU update site the device updates the block it received and writes it back as the
  // master (shared/design/step-pipeline.md §2). If the block travelled in a narrower format than
  // it is stored in (bf16 from an fp32 master, fp8 from fp16), that write-back would replace the
  // master with a rounded copy every step. So a lossy transfer requires update_site = "cpu", with
  // one exception: fp8 copies of bf16 masters, whose update the GPU decides exactly from the fp8
  // copy and returns as a delta (Note [fp8 at the GPU site] in kernels/fp8_site.h), when the update
  // is element-wise, without weight decay.
  if (const ConfigProblem pr = zoff::fp8_gpu_site_problem(cfg_); !pr.key.empty()) {
    auto [o, key] = later(pr.key.c_str(), "policy.transfer");
    fail(o, key, pr.message);
  }
  if (const ConfigProblem pr = zoff::split_problem(cfg_); !pr.key.empty()) {
    auto [o, key] = later(pr.key.c_str(), "policy.transfer");
    fail(o, key, pr.message);
  }
  if (!fp8_gpu_site(p) && p.offload && transfer_dtype(p) != p.storage_dtype && p.update_site == UpdateSite::Gpu) {
    auto [o, key] = later("policy.transfer", "policy.update_site");
    fail(o, key,
         std::string("update_site = \"gpu\" needs blocks to travel in their storage dtype, but transfer = \"") +
             transfer_format_name(p.transfer) + "\" and storage_dtype = \"" +
             config_dtype_name(p.storage_dtype) +
             "\": the GPU would write a rounded copy back over the master. Set policy.update_site = "
             "\"cpu\" or policy.transfer = \"same\" (fp8 transfers work at the GPU site with storage_dtype = \"bf16\")");
  }
  // Note [Deferred site preconditions]: the device applies the updates the master has not yet
  // had on top of the block it received, and must end with exactly the bits the master will
  // hold. That needs the block to travel unrounded (transfer = storage dtype) and every pending
  // update to be replayable from seeds later (element-wise directions: SubZero's low-rank basis
  // is resampled, so an old update cannot be replayed after the basis changed).
  if (p.offload && p.update_site == UpdateSite::Deferred) {
    if (transfer_dtype(p) != p.storage_dtype) {
      auto [o, key] = later("policy.transfer", "policy.update_site");
      fail(o, key,
           std::string("update_site = \"deferred\" needs blocks to travel in their storage dtype, but transfer = \"") +
               transfer_format_name(p.transfer) + "\" and storage_dtype = \"" + config_dtype_name(p.storage_dtype) +
               "\". Set policy.transfer = \"same\" (store in bf16 to move bf16) or use update_site = \"cpu\"");
    }
    if (cfg_.optimizer.kind == OptimizerKind::SubZero) {
      auto [o, key] = later("optimizer.kind", "policy.update_site");
      fail(o, key,
           "update_site = \"deferred\" replays old updates from seeds, which SubZero's resampled low-rank "
           "basis does not allow. Use update_site = \"gpu\" or \"cpu\" with optimizer.kind = \"subzero\"");
    }
  }
  // Note [Delta write-back] (kernels/delta.h): codes describe 16-bit bit patterns, the element-wise
  // update kernel writes them, and only the GPU site writes blocks back.
  const bool gpu_site = p.offload && p.update_site == UpdateSite::Gpu;
  const bool subzero = cfg_.optimizer.kind == OptimizerKind::SubZero;
  if (p.write_back == WriteBack::Delta) {
    if (!gpu_site) {
      auto [o, key] = later("policy.write_back", "policy.update_site");
      fail(o, key,
           std::string("write_back = \"delta\" is how the GPU update site returns streamed blocks, but ") +
               (p.offload ? "update_site = \"" + std::string(update_site_name(p.update_site)) + "\""
                          : std::string("offload = false")) +
               ". Use write_back = \"auto\" or \"dense\"");
    }
    if (p.storage_dtype == DType::F32) {
      auto [o, key] = later("policy.write_back", "policy.storage_dtype");
      fail(o, key,
           "write_back = \"delta\" needs a 16-bit master (storage_dtype = \"bf16\" or \"fp16\"): an fp32 "
           "update moves most elements by several ulps. Use write_back = \"dense\" or \"auto\"");
    }
    if (subzero) {
      auto [o, key] = later("policy.write_back", "optimizer.kind");
      fail(o, key,
           "write_back = \"delta\" needs element-wise update kernels; SubZero's low-rank updates report no "
           "change codes. Use write_back = \"dense\" or \"auto\" with optimizer.kind = \"subzero\"");
    }
  }
  if (p.write_back == WriteBack::Auto)
    cfg_.policy.write_back = gpu_site && p.storage_dtype != DType::F32 && !subzero ? WriteBack::Delta : WriteBack::Dense;
}

void Loader::check_cross_fields() {
  const ModelSpec& s = cfg_.model.spec;
  const OffloadPolicy& p = cfg_.policy;
  if (p.resident_blocks > s.num_layers)
    fail(origin_of("policy.resident_blocks"), "policy.resident_blocks",
         std::to_string(p.resident_blocks) + " exceeds the model's " + std::to_string(s.num_layers) +
             " layers");
  if (s.max_positions > 0 && cfg_.data.max_length > s.max_positions) {
    bool dflt = !origin_.count("data.max_length");
    fail(origin_of("data.max_length"), "data.max_length",
         std::to_string(cfg_.data.max_length) + (dflt ? " (the default)" : "") +
             " exceeds the model's max_position_embeddings (" + std::to_string(s.max_positions) + ")");
  }
}

RunConfig Loader::finish() {
  resolve_model();
  check_policy();
  check_cross_fields();
  return cfg_;
}

OffloadPolicy Loader::finish_policy() {
  check_policy();
  return cfg_.policy;
}

}  // namespace zoff::config_detail

namespace zoff {

ConfigProblem fp8_gpu_site_problem(const RunConfig& c) {
  const OffloadPolicy& p = c.policy;
  if (!fp8_gpu_site(p)) return {};
  if (p.write_back == WriteBack::Dense)
    return {"policy.write_back",
            "transfer = \"fp8\" at update_site = \"gpu\" returns updates as a delta (the GPU never holds the bf16 "
            "master); write_back = \"dense\" cannot be used. Set policy.write_back = \"auto\" or \"delta\""};
  if (c.optimizer.kind == OptimizerKind::SubZero)
    return {"optimizer.kind",
            "transfer = \"fp8\" at update_site = \"gpu\" needs element-wise updates; SubZero's low-rank updates "
            "cannot be decided from the fp8 copy. Use update_site = \"cpu\" or transfer = \"same\" with SubZero"};
  if (c.optimizer.weight_decay != 0)
    return {"optimizer.weight_decay",
            "transfer = \"fp8\" at update_site = \"gpu\" needs optimizer.weight_decay = 0 (the decay term depends "
            "on the bf16 master's low bits, which the fp8 copy lacks). Use update_site = \"cpu\" or transfer = "
            "\"same\""};
  return {};
}

// Note [Split bf16 masters] (offload/block_store.h): split masters are bf16, updated only at the
// GPU site by element-wise kernels whose change returns as a delta.
ConfigProblem split_problem(const RunConfig& c) {
  const OffloadPolicy& p = c.policy;
  if (!p.offload || p.transfer != TransferFormat::BF16Split) return {};
  if (p.storage_dtype != DType::BF16)
    return {"policy.storage_dtype", "transfer = \"bf16-split\" stores bf16 masters split; set policy.storage_dtype = \"bf16\""};
  if (p.update_site != UpdateSite::Gpu)
    return {"policy.update_site", "transfer = \"bf16-split\" needs update_site = \"gpu\" (the host only applies the "
                                  "GPU's delta to split masters); use transfer = \"same\" at the other sites"};
  if (p.write_back == WriteBack::Dense)
    return {"policy.write_back", "transfer = \"bf16-split\" returns updates as a delta; set policy.write_back = \"auto\" "
                                 "or \"delta\""};
  if (c.optimizer.kind == OptimizerKind::SubZero)
    return {"optimizer.kind", "transfer = \"bf16-split\" needs element-wise updates (their change returns as a delta); "
                              "use transfer = \"same\" with SubZero"};
  return {};
}

}  // namespace zoff
