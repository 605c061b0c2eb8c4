// Preset composition with relative paths, layering order, and typed --set overrides.
#include <filesystem>

#include <gtest/gtest.h>

#include "config_test_util.h"
#include "zoff/config.h"

namespace fs = std::filesystem;
using namespace zoff;
using namespace zoff::testing;

namespace {

const char* kTinyOpt = R"(
[model]
dummy_weights = true
dummy_seed = 7
[model.spec]
model_type = "opt"
hidden_size = 64
num_attention_heads = 4
num_hidden_layers = 3
ffn_dim = 256
vocab_size = 512
max_position_embeddings = 64
)";

std::string abs_norm(const std::string& p) { return fs::absolute(p).lexically_normal().string(); }

}  // namespace

TEST(ConfigCompose, PresetsResolveRelativeToTheNamingFile) {
  ScratchDir d;
  d.write("models/tiny.toml", kTinyOpt);
  d.write("policies/base.toml", "[policy]\noffload = true\nstorage_dtype = \"bf16\"\ncompute_dtype = \"bf16\"\nnum_slots = 4\n");
  // A policy preset naming a preset of its own, relative to its own folder.
  d.write("policies/derived.toml", "[policy]\npreset = \"base.toml\"\nprefetch_depth = 2\n");
  std::string run = d.write("runs/sub/run.toml", R"(
[model]
preset = "../../models/tiny.toml"
dummy_seed = 9          # overrides the preset
[model.spec]
num_hidden_layers = 2   # overrides one spec key of the preset
[policy]
preset = "../../policies/derived.toml"
num_slots = 5
[data]
train = "../data/train.jsonl"
tokenizer = "/abs/tok"
max_length = 32
[train]
output_dir = "out/x"
)");
  RunConfig c = load_run_config(run);
  EXPECT_EQ(c.source, run);
  EXPECT_EQ(c.model.preset_file, abs_norm(d.path("models/tiny.toml")));
  EXPECT_TRUE(c.model.dummy_weights);
  EXPECT_EQ(c.model.dummy_seed, 9u);
  EXPECT_EQ(c.model.spec.num_layers, 2);
  EXPECT_EQ(c.model.spec.hidden_size, 64);
  EXPECT_TRUE(c.policy.offload);
  EXPECT_EQ(c.policy.storage_dtype, DType::BF16);
  EXPECT_EQ(c.policy.num_slots, 5);
  EXPECT_EQ(c.policy.prefetch_depth, 2);
  EXPECT_EQ(c.policy.name, "derived");  // named after the policy file that was included
  EXPECT_EQ(c.data.train, abs_norm(d.path("runs/data/train.jsonl")));
  EXPECT_EQ(c.data.tokenizer, "/abs/tok");
  EXPECT_EQ(c.train.output_dir, "out/x");  // relative to the working directory, kept as written
}

TEST(ConfigCompose, BaseRunFileAndLayerOrder) {
  ScratchDir d;
  d.write("models/tiny.toml", kTinyOpt);
  d.write("base.toml", R"(
[model]
preset = "models/tiny.toml"
[optimizer]
kind = "fzoo"
lr = 1e-4
fzoo_n = 4
[data]
max_length = 16
)");
  std::string run = d.write("runs/child.toml", "base = \"../base.toml\"\n[optimizer]\nlr = 2e-4\n");
  RunConfig c = load_run_config(run);
  EXPECT_EQ(c.optimizer.kind, OptimizerKind::FZOO);
  EXPECT_EQ(c.optimizer.lr, 2e-4);
  EXPECT_EQ(c.optimizer.fzoo_n, 4);
  EXPECT_EQ(c.model.spec.num_layers, 3);
  // Overrides come last, in order.
  c = load_run_config(run, {"optimizer.lr=3e-4", "optimizer.lr=5e-4"});
  EXPECT_EQ(c.optimizer.lr, 5e-4);
}

TEST(ConfigCompose, CheckpointInALaterLayerSupersedesThePreset) {
  ScratchDir d;
  d.write("models/tiny.toml", kTinyOpt);
  std::string ck = fixture("opt-tiny-postln-proj/model");
  std::string run = d.write("run.toml", "[model]\npreset = \"models/tiny.toml\"\ncheckpoint = \"" + ck +
                                            "\"\n[data]\nmax_length = 16\n");
  RunConfig c = load_run_config(run);
  EXPECT_FALSE(c.model.dummy_weights);
  EXPECT_EQ(c.model.checkpoint, abs_norm(ck));
  EXPECT_FALSE(c.model.spec.do_layer_norm_before);  // from the checkpoint's config.json
  EXPECT_EQ(c.model.preset_file, "");
  // The same through an override.
  std::string dummy = d.write("dummy.toml", "[model]\npreset = \"models/tiny.toml\"\n[data]\nmax_length = 16\n");
  c = load_run_config(dummy, {"model.checkpoint=" + ck});
  EXPECT_FALSE(c.model.dummy_weights);
  EXPECT_FALSE(c.model.spec.do_layer_norm_before);
}

TEST(ConfigCompose, CheckpointSpecComesFromConfigJson) {
  ScratchDir d;
  // Relative to the config file.
  std::string rel = fs::relative(fixture("qwen2-tiny/model"), d.path("")).string();
  std::string run = d.write("run.toml", "[model]\ncheckpoint = \"" + rel + "\"\n[data]\nmax_length = 64\n");
  RunConfig c = load_run_config(run);
  EXPECT_EQ(c.model.spec.arch, Arch::Qwen2);
  EXPECT_EQ(c.model.spec.num_kv_heads, 2);
  EXPECT_EQ(c.model.spec.rope_theta, 1e6);
}

TEST(ConfigCompose, OverridesAreTypedByTheirField) {
  ScratchDir d;
  d.write("models/tiny.toml", kTinyOpt);
  std::string run = d.write("run.toml", "[model]\npreset = \"models/tiny.toml\"\n[data]\nmax_length = 16\n");
  RunConfig c = load_run_config(
      run, {"optimizer.lr=1e-5", "optimizer.eps = 0.01", "train.steps=20", "train.seed=123",
            "policy.gpu_memory_budget=12GiB", "policy.offload=true", "policy.storage_dtype=bfloat16",
            "policy.compute_dtype=BF16", "policy.transfer=fp8", "policy.update_site=cpu",
            "optimizer.kind=SubZero", "optimizer.subzero_rank=8", "data.train=rel/train.jsonl",
            "data.task=\"pretokenized\"", "train.output_dir='runs/o'", "train.device=gpu",
            "data.shuffle=false", "model.spec.num_hidden_layers=2", "model.spec.rope_theta=5e5",
            "model.spec.activation_function=gelu", "train.timeline=1", "optimizer.weight_decay=0"});
  EXPECT_EQ(c.optimizer.lr, 1e-5);
  EXPECT_EQ(c.optimizer.eps, 0.01);
  EXPECT_EQ(c.train.steps, 20);
  EXPECT_EQ(c.train.seed, 123u);
  EXPECT_EQ(c.policy.gpu_memory_budget, int64_t(12) << 30);
  EXPECT_TRUE(c.policy.offload);
  EXPECT_EQ(c.policy.storage_dtype, DType::BF16);
  EXPECT_EQ(c.policy.compute_dtype, DType::BF16);
  EXPECT_EQ(c.policy.transfer, TransferFormat::FP8);
  EXPECT_EQ(c.policy.update_site, UpdateSite::Cpu);
  EXPECT_EQ(c.optimizer.kind, OptimizerKind::SubZero);
  EXPECT_EQ(c.optimizer.subzero_rank, 8);
  EXPECT_EQ(c.data.train, abs_norm((fs::current_path() / "rel/train.jsonl").string()));
  EXPECT_EQ(c.data.task, "pretokenized");
  EXPECT_EQ(c.train.output_dir, "runs/o");
  EXPECT_EQ(c.train.device, "cuda");
  EXPECT_FALSE(c.data.shuffle);
  EXPECT_TRUE(c.train.timeline);
  EXPECT_EQ(c.model.spec.num_layers, 2);
  EXPECT_EQ(c.model.spec.activation, "gelu");
  EXPECT_EQ(c.optimizer.weight_decay, 0.0);
  // A preset can be switched from the command line (relative to the working directory).
  c = load_run_config(run, {"policy.preset=" + configs_dir() + "/policies/stream-all.toml"});
  EXPECT_EQ(c.policy.name, "stream-all");
  EXPECT_TRUE(c.policy.offload);
}

TEST(ConfigCompose, InlinePolicyWithoutANameIsCustom) {
  ScratchDir d;
  d.write("models/tiny.toml", kTinyOpt);
  std::string run = d.write("run.toml", "[model]\npreset = \"models/tiny.toml\"\n[data]\nmax_length = 16\n"
                                        "[policy]\noffload = true\n");
  EXPECT_EQ(load_run_config(run).policy.name, "custom");
  std::string plain = d.write("plain.toml", "[model]\npreset = \"models/tiny.toml\"\n[data]\nmax_length = 16\n");
  EXPECT_EQ(load_run_config(plain).policy.name, "all-resident");  // the default policy
}

// policy.write_back = "auto" resolves to delta exactly where it applies (Note [Delta write-back]).
TEST(ConfigCompose, AutoWriteBackResolves) {
  ScratchDir d;
  d.write("models/tiny.toml", kTinyOpt);
  auto resolved = [&](const std::string& extra) {
    std::string run = d.write("wb.toml", "[model]\npreset = \"models/tiny.toml\"\n[data]\nmax_length = 16\n" + extra);
    return write_back_name(load_run_config(run).policy.write_back);
  };
  EXPECT_STREQ(resolved("[policy]\noffload = true\nstorage_dtype = \"bf16\"\n"), "delta");
  EXPECT_STREQ(resolved("[policy]\noffload = true\nstorage_dtype = \"fp16\"\n"), "delta");
  EXPECT_STREQ(resolved("[policy]\noffload = true\n"), "dense");  // fp32 master
  EXPECT_STREQ(resolved("[policy]\noffload = true\nstorage_dtype = \"bf16\"\nupdate_site = \"cpu\"\n"), "dense");
  EXPECT_STREQ(resolved("[optimizer]\nkind = \"subzero\"\n[policy]\noffload = true\nstorage_dtype = \"bf16\"\n"), "dense");
  EXPECT_STREQ(resolved("[policy]\noffload = true\nstorage_dtype = \"bf16\"\nwrite_back = \"dense\"\n"), "dense");
}
