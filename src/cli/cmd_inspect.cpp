// zoff inspect: a model's architecture, parameter groups and their sizes, and its checkpoint tensors.
#include <cstdio>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "group_sizes.h"
#include "zoff/config.h"
#include "zoff/error.h"
#include "zoff/model.h"
#include "zoff/policy.h"
#include "zoff/safetensors.h"

namespace zoff::cli {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

struct InspectOptions {
  std::string model_dir;
  std::string config;
  std::vector<std::string> sets;
  bool json = false;
};

std::string spec_summary(const ModelSpec& s) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "%s: vocab %lld, hidden %lld, layers %lld, heads %lld (kv %lld, head_dim %lld), ffn %lld, "
                "max positions %lld, %s embeddings, activation %s",
                arch_name(s.arch), (long long)s.vocab_size, (long long)s.hidden_size, (long long)s.num_layers,
                (long long)s.num_heads, (long long)s.num_kv_heads, (long long)s.head_dim, (long long)s.ffn_dim,
                (long long)s.max_positions, s.tie_word_embeddings ? "tied" : "untied", s.activation.c_str());
  std::string out = buf;
  if (s.arch == Arch::OPT) {
    out += s.do_layer_norm_before ? ", pre-LN" : ", post-LN";
    if (s.has_project_in_out()) out += ", word_embed_proj_dim " + std::to_string(s.word_embed_proj_dim);
  } else {
    char r[64];
    std::snprintf(r, sizeof r, ", rope_theta %g", s.rope_theta);
    out += r;
  }
  return out;
}

json groups_json(const Model& m) {
  json groups = json::array();
  for (const GroupLayout& g : m.groups())
    groups.push_back({{"name", g.name},
                      {"params", group_params(g)},
                      {"numel", g.numel},
                      {"bytes", {{"fp32", group_bytes(g, DType::F32)},
                                 {"bf16", group_bytes(g, DType::BF16)},
                                 {"fp8", group_transfer_bytes(g, DType::BF16, TransferFormat::FP8)},
                                 {"bf16-split", group_transfer_bytes(g, DType::BF16, TransferFormat::BF16Split)}}}});
  return groups;
}

// Every checkpoint tensor, and what is wrong between the checkpoint and the model's parameters.
json tensors_json(const Model& m, const Checkpoint& ckpt, json* problems) {
  json tensors = json::array();
  for (const std::string& name : ckpt.names()) {
    const TensorInfo& t = ckpt.info(name);
    int g = -1, p = -1;
    const bool used = m.find_param(name, &g, &p);
    tensors.push_back({{"name", name},
                       {"dtype", dtype_name(t.dtype)},
                       {"shape", t.shape},
                       {"bytes", t.nbytes},
                       {"file", fs::path(ckpt.file_of(name)).filename().string()},
                       {"group", used ? m.group(g).name : ""}});
    if (used && m.group(g).params[size_t(p)].shape != t.shape)
      problems->push_back(name + ": shape " + shape_str(t.shape) + " in the checkpoint, the model expects " +
                          shape_str(m.group(g).params[size_t(p)].shape));
  }
  for (const GroupLayout& g : m.groups())
    for (const ParamInfo& p : g.params)
      if (!ckpt.has(p.name)) problems->push_back(p.name + ": missing from the checkpoint");
  return tensors;
}

void print_text(const json& r) {
  std::printf("source: %s\n", r["source"].get<std::string>().c_str());
  std::printf("architecture: %s\n", r["summary"].get<std::string>().c_str());
  std::printf("parameters: %lld (a tied lm_head counted once)\n\n", (long long)r["num_params"].get<int64_t>());
  std::printf("%-12s %16s %12s %12s %12s\n", "group", "params", "fp32", "bf16", "fp8+scales");
  int64_t tp = 0, t32 = 0, t16 = 0, t8 = 0;
  for (const json& g : r["groups"]) {
    const int64_t p = g["params"], b32 = g["bytes"]["fp32"], b16 = g["bytes"]["bf16"], b8 = g["bytes"]["fp8"];
    std::printf("%-12s %16lld %12s %12s %12s\n", g["name"].get<std::string>().c_str(), (long long)p,
                format_bytes(b32).c_str(), format_bytes(b16).c_str(), format_bytes(b8).c_str());
    tp += p, t32 += b32, t16 += b16, t8 += b8;
  }
  std::printf("%-12s %16lld %12s %12s %12s\n", "total", (long long)tp, format_bytes(t32).c_str(),
              format_bytes(t16).c_str(), format_bytes(t8).c_str());
  if (!r.contains("tensors")) {
    std::printf("\nno checkpoint (dummy weights): sizes only\n");
    return;
  }
  std::printf("\ncheckpoint %s: %zu tensors\n", r["checkpoint"].get<std::string>().c_str(), r["tensors"].size());
  std::printf("%-60s %-8s %-16s %12s  %s\n", "name", "dtype", "shape", "bytes", "file");
  for (const json& t : r["tensors"]) {
    std::string shape = shape_str(t["shape"].get<std::vector<int64_t>>());
    std::string note = t["group"].get<std::string>().empty() ? "  (not a model parameter)" : "";
    std::printf("%-60s %-8s %-16s %12s  %s%s\n", t["name"].get<std::string>().c_str(),
                t["dtype"].get<std::string>().c_str(), shape.c_str(), format_bytes(t["bytes"]).c_str(),
                t["file"].get<std::string>().c_str(), note.c_str());
  }
  for (const json& p : r["problems"]) std::printf("problem: %s\n", p.get<std::string>().c_str());
}

int run_inspect(const InspectOptions& o) {
  ZOFF_INPUT_CHECK(o.model_dir.empty() != o.config.empty(),
                   "inspect: give either MODEL_DIR or --config FILE (not both)");
  ZOFF_INPUT_CHECK(o.sets.empty() || !o.config.empty(), "inspect: --set needs --config");
  ModelSpec spec;
  std::string checkpoint, source;
  if (!o.config.empty()) {
    // A run file or a model preset (a preset is a run file holding only [model]).
    RunConfig cfg = load_run_config(o.config, o.sets);
    spec = cfg.model.spec;
    checkpoint = cfg.model.checkpoint;
    source = o.config;
  } else {
    spec = parse_hf_config(o.model_dir + "/config.json");
    checkpoint = o.model_dir;
    source = o.model_dir;
  }
  Model m(spec);  // shapes only: the constructor allocates no weights

  json r = {{"source", source},
            {"summary", spec_summary(spec)},
            {"architecture", model_spec_to_json(spec)},
            {"num_params", m.num_params()},
            {"groups", groups_json(m)}};
  json problems = json::array();
  if (!checkpoint.empty()) {
    Checkpoint ckpt = Checkpoint::open(checkpoint);
    r["checkpoint"] = checkpoint;
    r["tensors"] = tensors_json(m, ckpt, &problems);
    r["problems"] = problems;
  }
  if (o.json)
    std::printf("%s\n", r.dump(2).c_str());
  else
    print_text(r);
  ZOFF_INPUT_CHECK(problems.empty(), checkpoint, ": ", problems.size(),
                   " tensor(s) do not fit the model (listed above), first: ", problems.empty() ? "" : problems[0].get<std::string>());
  return kExitOk;
}

}  // namespace

Command add_inspect_command(CLI::App& top) {
  auto o = std::make_shared<InspectOptions>();
  CLI::App* sub = top.add_subcommand(
      "inspect",
      "Show a model: architecture, parameter count, every parameter group (embed, layers.i, head) with its "
      "bytes in fp32/bf16/fp8, and the checkpoint's tensors (name, dtype, shape, bytes, shard file). "
      "With --config, a run file or model preset (dummy shapes need no weights). Exits 2 when checkpoint "
      "tensors are missing or have the wrong shape.");
  sub->add_option("MODEL_DIR", o->model_dir, "HF checkpoint folder (config.json + *.safetensors)");
  sub->add_option("--config", o->config, "run file or model preset (configs/models/*.toml) instead of MODEL_DIR");
  sub->add_option("--set", o->sets, "override a config key, key=value (repeatable; with --config)")
      ->allow_extra_args(false);
  sub->add_flag("--json", o->json, "machine-readable JSON instead of tables");
  return {sub, [o] { return run_inspect(*o); }};
}

}  // namespace zoff::cli
