// Every TOML file shipped in configs/ loads, and the model presets carry the exact HF shapes.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include <gtest/gtest.h>

#include "config_test_util.h"
#include "zoff/config.h"

namespace fs = std::filesystem;
using namespace zoff;
using namespace zoff::testing;

namespace {

std::vector<std::string> tomls_in(const std::string& sub) {
  std::vector<std::string> out;
  for (auto& e : fs::directory_iterator(configs_dir() + "/" + sub))
    if (e.path().extension() == ".toml") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string stem(const std::string& p) { return fs::path(p).stem().string(); }

// A run whose checkpoint is not there yet (the demo model is built by scripts/) is loaded with the
// opt-tiny fixture in its place, so every other key of the file is still checked.
RunConfig load_run_or_fixture(const std::string& path, bool* substituted) {
  *substituted = false;
  try {
    return load_run_config(path);
  } catch (const InputError& e) {
    std::string m = e.what();
    if (m.find("model.checkpoint: no such folder") == std::string::npos) throw;
    *substituted = true;
    return load_run_config(path, {"model.checkpoint=" + fixture("opt-tiny/model")});
  }
}

}  // namespace

struct Shape {
  Arch arch;
  int64_t hidden, heads, kv_heads, layers, ffn, vocab, max_pos, proj;
  bool pre_ln, tied;
  double nominal_params;
};

TEST(ShippedConfigs, ModelPresetsHaveTheHfShapes) {
  const std::map<std::string, Shape> expected = {
      {"opt-125m", {Arch::OPT, 768, 12, 12, 12, 3072, 50272, 2048, 768, true, true, 125e6}},
      {"opt-350m", {Arch::OPT, 1024, 16, 16, 24, 4096, 50272, 2048, 512, false, true, 350e6}},
      {"opt-1.3b", {Arch::OPT, 2048, 32, 32, 24, 8192, 50272, 2048, 2048, true, true, 1.3e9}},
      {"opt-2.7b", {Arch::OPT, 2560, 32, 32, 32, 10240, 50272, 2048, 2560, true, true, 2.7e9}},
      {"opt-6.7b", {Arch::OPT, 4096, 32, 32, 32, 16384, 50272, 2048, 4096, true, true, 6.7e9}},
      {"opt-13b", {Arch::OPT, 5120, 40, 40, 40, 20480, 50272, 2048, 5120, true, true, 13e9}},
      {"opt-30b", {Arch::OPT, 7168, 56, 56, 48, 28672, 50272, 2048, 7168, true, true, 30e9}},
      {"opt-66b", {Arch::OPT, 9216, 72, 72, 64, 36864, 50272, 2048, 9216, true, true, 66e9}},
      {"opt-175b", {Arch::OPT, 12288, 96, 96, 96, 49152, 50272, 2048, 12288, true, true, 175e9}},
      {"llama-7b", {Arch::Llama, 4096, 32, 32, 32, 11008, 32000, 2048, 0, true, false, 6.7e9}},
      {"qwen2-0.5b", {Arch::Qwen2, 896, 14, 2, 24, 4864, 151936, 131072, 0, true, true, 0.5e9}},
  };
  auto files = tomls_in("models");
  ASSERT_EQ(files.size(), expected.size());
  for (auto& f : files) {
    SCOPED_TRACE(f);
    RunConfig c = load_run_config(f);
    auto it = expected.find(stem(f));
    ASSERT_NE(it, expected.end()) << "no expected shape for " << f;
    const Shape& e = it->second;
    const ModelSpec& s = c.model.spec;
    EXPECT_TRUE(c.model.dummy_weights);
    EXPECT_TRUE(c.model.checkpoint.empty());
    EXPECT_EQ(c.model.preset_file, "");  // loaded as the top file, not as a preset
    EXPECT_EQ(s.arch, e.arch);
    EXPECT_EQ(s.hidden_size, e.hidden);
    EXPECT_EQ(s.num_heads, e.heads);
    EXPECT_EQ(s.num_kv_heads, e.kv_heads);
    EXPECT_EQ(s.num_layers, e.layers);
    EXPECT_EQ(s.ffn_dim, e.ffn);
    EXPECT_EQ(s.vocab_size, e.vocab);
    EXPECT_EQ(s.max_positions, e.max_pos);
    if (e.arch == Arch::OPT) {
      EXPECT_EQ(s.word_embed_proj_dim, e.proj);
      EXPECT_EQ(s.do_layer_norm_before, e.pre_ln);
    } else {
      EXPECT_EQ(s.rope_theta, e.arch == Arch::Qwen2 ? 1e6 : 1e4);
    }
    EXPECT_EQ(s.tie_word_embeddings, e.tied);
    EXPECT_LT(std::fabs(double(s.num_params()) - e.nominal_params) / e.nominal_params, 0.06)
        << s.num_params();
  }
  // HF's count for facebook/opt-125m, to the parameter.
  EXPECT_EQ(load_run_config(configs_dir() + "/models/opt-125m.toml").model.spec.num_params(), 125239296);
}

TEST(ShippedConfigs, PoliciesLoad) {
  auto files = tomls_in("policies");
  ASSERT_GE(files.size(), 5u);
  std::map<std::string, OffloadPolicy> p;
  for (auto& f : files) {
    SCOPED_TRACE(f);
    p[stem(f)] = load_policy_file(f);
    EXPECT_EQ(p[stem(f)].name, stem(f));
  }
  const OffloadPolicy& res = p.at("all-resident");
  EXPECT_FALSE(res.offload);
  EXPECT_EQ(res.storage_dtype, DType::F32);
  EXPECT_EQ(res.compute_dtype, DType::F32);

  const OffloadPolicy& s = p.at("stream-all");
  EXPECT_TRUE(s.offload);
  EXPECT_EQ(s.storage_dtype, DType::BF16);
  EXPECT_EQ(s.compute_dtype, DType::BF16);
  EXPECT_EQ(s.num_slots, 3);
  EXPECT_EQ(s.resident_blocks, 0);
  EXPECT_EQ(s.update_site, UpdateSite::Gpu);
  EXPECT_EQ(s.transfer, TransferFormat::Auto);  // Note [Auto transfer]: split on a GPU where it runs

  const OffloadPolicy& f8 = p.at("stream-all-fp8");
  EXPECT_EQ(f8.storage_dtype, DType::BF16);
  EXPECT_EQ(f8.transfer, TransferFormat::FP8);
  EXPECT_EQ(f8.update_site, UpdateSite::Gpu);  // Note [fp8 at the GPU site]

  EXPECT_EQ(p.at("budget-18g").gpu_memory_budget, int64_t(18) << 30);
  EXPECT_EQ(p.at("budget-18g").resident_blocks, -1);
  EXPECT_EQ(p.at("budget-18g").transfer, TransferFormat::Auto);
  EXPECT_EQ(p.at("stream-all-split").transfer, TransferFormat::BF16Split);
  // budget-12g-fp8 composes stream-all-fp8 and overrides the budget.
  const OffloadPolicy& b12 = p.at("budget-12g-fp8");
  EXPECT_EQ(b12.gpu_memory_budget, int64_t(12) << 30);
  EXPECT_EQ(b12.transfer, TransferFormat::FP8);
  EXPECT_EQ(b12.update_site, UpdateSite::Cpu);
  EXPECT_EQ(b12.resident_blocks, -1);
}

TEST(ShippedConfigs, RunsLoad) {
  auto files = tomls_in("runs");
  ASSERT_GE(files.size(), 4u);
  std::map<std::string, RunConfig> runs;
  for (auto& f : files) {
    SCOPED_TRACE(f);
    bool substituted = false;
    runs[stem(f)] = load_run_or_fixture(f, &substituted);
    if (substituted) std::printf("[ note ] %s: checkpoint missing, loaded with the opt-tiny fixture\n", f.c_str());
    EXPECT_EQ(runs[stem(f)].source, f);
  }
  const RunConfig& tiny = runs.at("opt-tiny-mezo");
  EXPECT_EQ(tiny.model.checkpoint, fs::absolute(fixture("opt-tiny/model")).lexically_normal().string());
  EXPECT_EQ(tiny.model.spec.hidden_size, 64);
  EXPECT_FALSE(tiny.model.dummy_weights);
  EXPECT_EQ(tiny.policy.name, "all-resident");
  EXPECT_EQ(tiny.train.device, "cpu");

  const RunConfig& o13 = runs.at("opt-13b-stream");
  EXPECT_EQ(o13.model.spec.hidden_size, 5120);
  EXPECT_EQ(o13.policy.name, "stream-all");
  EXPECT_EQ(o13.data.max_length, 2048);
  EXPECT_EQ(fs::path(o13.model.preset_file).filename(), "opt-13b.toml");

  const RunConfig& o175 = runs.at("opt-175b-12g-fp8");
  EXPECT_EQ(o175.model.spec.num_layers, 96);
  EXPECT_EQ(o175.policy.name, "budget-12g-fp8");
  EXPECT_EQ(o175.policy.gpu_memory_budget, int64_t(12) << 30);
  const RunConfig& b175 = runs.at("opt-175b-12g");
  EXPECT_EQ(b175.model.spec.num_layers, 96);
  EXPECT_EQ(b175.policy.name, "budget-12g-bf16");
  EXPECT_EQ(b175.policy.num_slots, 2);
  EXPECT_EQ(b175.policy.transfer, TransferFormat::Same);
  EXPECT_FALSE(b175.train.save_final);

  // demo.toml's data paths resolve against configs/runs/, whether or not they exist yet.
  const RunConfig& demo = runs.at("demo");
  std::string data = fs::absolute(configs_dir() + "/data/sentiment").lexically_normal().string();
  EXPECT_EQ(demo.data.train, data + "/train.jsonl");
  EXPECT_EQ(demo.data.eval, data + "/test.jsonl");
  EXPECT_EQ(demo.data.tokenizer, data + "/tokenizer");
  EXPECT_EQ(demo.data.task, "classification");
}
