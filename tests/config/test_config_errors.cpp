// Every class of config error is an InputError naming the file (or override) and the key.
#include <gtest/gtest.h>

#include "config_test_util.h"
#include "zoff/config.h"

using namespace zoff;
using namespace zoff::testing;

namespace {

const char* kModel = R"(
[model]
dummy_weights = true
[model.spec]
model_type = "opt"
hidden_size = 64
num_attention_heads = 4
num_hidden_layers = 3
ffn_dim = 256
vocab_size = 512
max_position_embeddings = 64
)";

// A valid run file plus `extra` appended (later tables may add keys to [data] etc.).
struct Fixture {
  ScratchDir d;
  Fixture() { d.write("models/tiny.toml", kModel); }
  std::string run(const std::string& extra, const std::string& name = "run.toml") {
    return d.write(name, "[model]\npreset = \"models/tiny.toml\"\n" + extra);
  }
};

}  // namespace

TEST(ConfigErrors, UnknownKeysSuggestTheClosest) {
  Fixture f;
  std::string p = f.run("[optimizer]\nlrr = 1e-5\n");
  EXPECT_INPUT_ERROR(load_run_config(p), p + ": optimizer.lrr: unknown key", "did you mean 'lr'?", "line 4");
  p = f.run("[optimzer]\nlr = 1e-5\n");
  EXPECT_INPUT_ERROR(load_run_config(p), p + ": optimzer: unknown key", "did you mean 'optimizer'?");
  // A key in the wrong table points at its home.
  p = f.run("[train]\nlr = 1e-5\n");
  EXPECT_INPUT_ERROR(load_run_config(p), "train.lr: unknown key", "did you mean 'optimizer.lr'?");
  p = f.run("[policy]\nnum_slot = 3\n");
  EXPECT_INPUT_ERROR(load_run_config(p), "policy.num_slot", "did you mean 'num_slots'?");
  // Nothing close: no suggestion.
  p = f.run("[data]\nfrobnicate = 1\n");
  std::string m = input_error_of([&] { load_run_config(p); });
  EXPECT_NE(m.find("data.frobnicate: unknown key"), std::string::npos) << m;
  EXPECT_EQ(m.find("did you mean"), std::string::npos) << m;
  // Spec keys are checked too, in the preset that holds them.
  std::string preset = f.d.write("models/typo.toml", std::string(kModel) + "num_hiden_layers = 2\n");
  p = f.d.write("typo-run.toml", "[model]\npreset = \"models/typo.toml\"\n");
  EXPECT_INPUT_ERROR(load_run_config(p), preset + ": model.spec.num_hiden_layers: unknown key",
                     "did you mean 'num_hidden_layers'?");
}

TEST(ConfigErrors, WrongTypes) {
  Fixture f;
  std::string p = f.run("[optimizer]\nlr = \"fast\"\n");
  EXPECT_INPUT_ERROR(load_run_config(p), p + ": optimizer.lr: expected a number, got string");
  p = f.run("[train]\nsteps = 1.5\n");
  EXPECT_INPUT_ERROR(load_run_config(p), p + ": train.steps: expected an integer, got float");
  p = f.run("[policy]\noffload = \"yes\"\n");
  EXPECT_INPUT_ERROR(load_run_config(p), "policy.offload: expected a boolean, got string");
  p = f.run("[policy]\ngpu_memory_budget = \"12 parsecs\"\n");
  EXPECT_INPUT_ERROR(load_run_config(p), p + ": policy.gpu_memory_budget:", "unknown unit");
  p = f.d.write("top.toml", "optimizer = 3\n[model]\npreset = \"models/tiny.toml\"\n");
  EXPECT_INPUT_ERROR(load_run_config(p), p + ": optimizer: expected a table", "line 1");
  p = f.run("[data.train]\nx = 1\n");
  EXPECT_INPUT_ERROR(load_run_config(p), "data.train: expected a path string, got table");
}

TEST(ConfigErrors, OutOfRangeValues) {
  Fixture f;
  struct Case { const char* toml; const char* key; const char* why; };
  const Case cases[] = {
      {"[optimizer]\neps = 0.0\n", "optimizer.eps", "must be > 0"},
      {"[optimizer]\neps = -1e-3\n", "optimizer.eps", "must be > 0"},
      {"[optimizer]\nlr = -1e-6\n", "optimizer.lr", "must be >= 0"},
      {"[optimizer]\nfzoo_n = 1\n", "optimizer.fzoo_n", "must be >= 2"},
      {"[optimizer]\nsubzero_rank = 0\n", "optimizer.subzero_rank", "must be >= 1"},
      {"[optimizer]\nsvrg_q = 0\n", "optimizer.svrg_q", "must be >= 1"},
      {"[policy]\nnum_slots = 1\n", "policy.num_slots", "must be >= 2"},
      {"[policy]\nnum_slots = 3000000000\n", "policy.num_slots", "must be <= 64"},
      {"[policy]\nnum_slots = 3\nprefetch_depth = 3\n", "policy.prefetch_depth", "must be < policy.num_slots"},
      {"[data]\nmax_length = 16\nbatch_size = 0\n", "data.batch_size", "must be >= 1"},
      {"[train]\nseed = -1\n", "train.seed", "must be >= 0"},
      {"[optimizer]\nkind = \"adam\"\n", "optimizer.kind", "expected one of: mezo, fzoo, subzero, svrg"},
      {"[optimizer]\nlr_schedule = \"cosin\"\n", "optimizer.lr_schedule", "did you mean 'cosine'?"},
      {"[policy]\ntransfer = \"int4\"\n", "policy.transfer", "expected one of: same, bf16, fp16, fp8, bf16-split"},
      {"[policy]\nstorage_dtype = \"fp8\"\n", "policy.storage_dtype", "expected one of: fp32, bf16, fp16"},
      {"[train]\ndevice = \"tpu\"\n", "train.device", "expected one of: auto, cpu, cuda"},
      {"[policy]\nname = \"\"\n", "policy.name", "must not be empty"},
      {"[data]\nmax_length = 65\n", "data.max_length", "exceeds the model's max_position_embeddings (64)"},
      {"[policy]\nresident_blocks = 4\n", "policy.resident_blocks", "exceeds the model's 3 layers"},
      {"[policy]\noffload = true\ntransfer = \"fp8\"\nstorage_dtype = \"fp16\"\n", "policy.transfer",
       "update_site = \"cpu\""},
      // fp8 copies of bf16 masters work at the GPU site, but not with what the fp8 copy cannot decide.
      {"[optimizer]\nweight_decay = 0.1\n[policy]\noffload = true\ntransfer = \"fp8\"\nstorage_dtype = \"bf16\"\n",
       "optimizer.weight_decay", "needs optimizer.weight_decay = 0"},
      {"[policy]\noffload = true\ntransfer = \"fp8\"\nstorage_dtype = \"bf16\"\nwrite_back = \"dense\"\n",
       "policy.write_back", "write_back = \"dense\" cannot be used"},
      {"[optimizer]\nkind = \"subzero\"\n[policy]\noffload = true\ntransfer = \"fp8\"\nstorage_dtype = \"bf16\"\n",
       "optimizer.kind", "SubZero's low-rank updates cannot be decided from the fp8 copy"},
      {"[policy]\noffload = true\nupdate_site = \"deferred\"\ntransfer = \"bf16\"\n", "policy.transfer",
       "update_site = \"deferred\" needs blocks to travel in their storage dtype"},
      {"[optimizer]\nkind = \"subzero\"\n[policy]\noffload = true\nupdate_site = \"deferred\"\n", "optimizer.kind",
       "SubZero's resampled low-rank basis"},
      {"[policy]\ndeferred_max_lag = 0\n", "policy.deferred_max_lag", "must be >= 1"},
      {"[policy]\nupdate_site = \"later\"\n", "policy.update_site", "expected one of: gpu, cpu, deferred"},
      {"[policy]\nwrite_back = \"sparse\"\n", "policy.write_back", "expected one of: auto, dense, delta"},
      {"[policy]\nwrite_back = \"delta\"\nstorage_dtype = \"bf16\"\n", "policy.write_back",
       "is how the GPU update site returns streamed blocks, but offload = false"},
      {"[policy]\noffload = true\nupdate_site = \"cpu\"\nstorage_dtype = \"bf16\"\nwrite_back = \"delta\"\n",
       "policy.write_back", "update_site = \"cpu\""},
      {"[policy]\noffload = true\nwrite_back = \"delta\"\n", "policy.write_back", "needs a 16-bit master"},
      {"[optimizer]\nkind = \"subzero\"\n[policy]\noffload = true\nstorage_dtype = \"bf16\"\nwrite_back = \"delta\"\n",
       "policy.write_back", "SubZero's low-rank updates report no change codes"},
      {"[policy]\ndelta_list_divisor = 0\n", "policy.delta_list_divisor", "must be >= 1"},
  };
  int i = 0;
  for (auto& c : cases) {
    SCOPED_TRACE(c.toml);
    // Every case but the [data] ones gets a max_length the 64-position model accepts.
    bool data = std::string(c.toml).rfind("[data]", 0) == 0;
    std::string p = f.run((data ? "" : "[data]\nmax_length = 16\n") + std::string(c.toml),
                          "range" + std::to_string(i++) + ".toml");
    EXPECT_INPUT_ERROR(load_run_config(p), p + ": " + c.key + ": ", c.why);
  }
  // The default max_length (512) against a 64-position model says it is the default.
  std::string p = f.run("");
  EXPECT_INPUT_ERROR(load_run_config(p), p + ": data.max_length: 512 (the default) exceeds");
}

TEST(ConfigErrors, BadOverrides) {
  Fixture f;
  std::string p = f.run("[data]\nmax_length = 16\n");
  EXPECT_INPUT_ERROR(load_run_config(p, {"optimizer.lr=abc"}),
                     "--set optimizer.lr=abc: optimizer.lr: expected a number, got 'abc'");
  EXPECT_INPUT_ERROR(load_run_config(p, {"train.steps=1e3"}), "--set train.steps=1e3: train.steps: expected an integer");
  EXPECT_INPUT_ERROR(load_run_config(p, {"policy.offload=maybe"}), "policy.offload: expected a boolean");
  EXPECT_INPUT_ERROR(load_run_config(p, {"optimizer.eps=0"}), "--set optimizer.eps=0: optimizer.eps: must be > 0");
  EXPECT_INPUT_ERROR(load_run_config(p, {"optimizer.lrr=1"}), "optimizer.lrr: unknown key", "did you mean 'lr'?");
  EXPECT_INPUT_ERROR(load_run_config(p, {"lr=1"}), "--set lr=1: lr: unknown key", "did you mean 'optimizer.lr'?");
  EXPECT_INPUT_ERROR(load_run_config(p, {"optimiser.lr=1"}), "did you mean 'optimizer'?");
  EXPECT_INPUT_ERROR(load_run_config(p, {"optimizer.lr"}), "--set optimizer.lr: expected key=value");
  EXPECT_INPUT_ERROR(load_run_config(p, {"optimizer=1"}), "name a key inside [optimizer]");
  EXPECT_INPUT_ERROR(load_run_config(p, {"optimizer.kind=zo"}), "optimizer.kind: unknown value 'zo'");
  EXPECT_INPUT_ERROR(load_run_config(p, {"policy.gpu_memory_budget=12GB!"}), "--set policy.gpu_memory_budget=12GB!");
  EXPECT_INPUT_ERROR(load_run_config(p, {"model.spec.hiden_size=3"}), "model.spec.hiden_size: unknown key",
                     "did you mean 'hidden_size'?");
  EXPECT_INPUT_ERROR(load_run_config(p, {"policy.preset=no/such/policy.toml"}),
                     "--set policy.preset=no/such/policy.toml: no such file", "tried");
  // A prefetch depth made invalid by a later override is blamed on that override.
  EXPECT_INPUT_ERROR(load_run_config(p, {"policy.num_slots=2", "policy.prefetch_depth=2"}),
                     "--set policy.prefetch_depth=2: policy.prefetch_depth");
}

TEST(ConfigErrors, MissingFilesNameThePathTried) {
  Fixture f;
  std::string missing = f.d.path("nope.toml");
  EXPECT_INPUT_ERROR(load_run_config(missing), missing + ": no such file (tried " + missing + ")");
  std::string p = f.d.write("r1.toml", "[model]\npreset = \"models/tinny.toml\"\n");
  EXPECT_INPUT_ERROR(load_run_config(p), p + ": model.preset: no such file", f.d.path("models/tinny.toml"),
                     "did you mean 'tiny.toml'?");
  p = f.d.write("r2.toml", "[model]\ncheckpoint = \"no-model\"\n");
  EXPECT_INPUT_ERROR(load_run_config(p), p + ": model.checkpoint: no such folder", f.d.path("no-model"));
  f.d.write("empty-ckpt/weights.bin", "");
  p = f.d.write("r3.toml", "[model]\ncheckpoint = \"empty-ckpt\"\n");
  EXPECT_INPUT_ERROR(load_run_config(p), "model.checkpoint: no config.json", f.d.path("empty-ckpt/config.json"));
  EXPECT_INPUT_ERROR(load_policy_file(f.d.path("p.toml")), "p.toml: no such file");
}

TEST(ConfigErrors, SyntaxErrorsGiveLineAndColumn) {
  Fixture f;
  std::string p = f.d.write("bad.toml", "[model]\ndummy_weights = true\n\n[optimizer]\nlr = = 3\n");
  EXPECT_INPUT_ERROR(load_run_config(p), p + ":5:", "TOML syntax error");
  // In a preset, the preset's own path is named.
  std::string pre = f.d.write("models/broken.toml", "[model\n");
  p = f.d.write("r.toml", "[model]\npreset = \"models/broken.toml\"\n");
  EXPECT_INPUT_ERROR(load_run_config(p), pre + ":1:", "TOML syntax error");
  // Duplicate keys are syntax errors too.
  p = f.d.write("dup.toml", "[optimizer]\nlr = 1.0\nlr = 2.0\n");
  EXPECT_INPUT_ERROR(load_run_config(p), p + ":3:");
}

TEST(ConfigErrors, StructuralMistakes) {
  Fixture f;
  // Presets hold only their own table.
  std::string pre = f.d.write("models/mixed.toml", std::string(kModel) + "[optimizer]\nlr = 1.0\n");
  std::string p = f.d.write("r.toml", "[model]\npreset = \"models/mixed.toml\"\n");
  EXPECT_INPUT_ERROR(load_run_config(p), pre + ": optimizer: a model preset holds only [model]");
  // Cycles.
  f.d.write("a.toml", "base = \"b.toml\"\n");
  p = f.d.write("b.toml", "base = \"a.toml\"\n");
  EXPECT_INPUT_ERROR(load_run_config(p), "preset cycle");
  // No weights at all.
  p = f.d.write("noweights.toml", "[optimizer]\nlr = 1.0\n");
  EXPECT_INPUT_ERROR(load_run_config(p), p + ": model: no weights");
  p = f.d.write("nospec.toml", "[model]\ndummy_weights = true\n");
  EXPECT_INPUT_ERROR(load_run_config(p), p + ": model.spec: dummy weights need an architecture");
  // A checkpoint and a spec in the same layer contradict each other.
  std::string ck = fixture("opt-tiny/model");
  p = f.d.write("both.toml", "[model]\ncheckpoint = \"" + ck + "\"\n[model.spec]\nhidden_size = 32\n");
  EXPECT_INPUT_ERROR(load_run_config(p), p + ": model.spec.hidden_size: conflicts with model.checkpoint");
  p = f.d.write("both2.toml", "[model]\ncheckpoint = \"" + ck + "\"\ndummy_weights = true\n");
  EXPECT_INPUT_ERROR(load_run_config(p), p + ": model.dummy_weights: true conflicts with model.checkpoint");
  // The spec's own rules (src/io) report the preset file.
  std::string model = kModel;
  model.replace(model.find("\"opt\""), 5, "\"gpt2\"");
  std::string bad = f.d.write("models/odd.toml", model);
  p = f.d.write("odd.toml", "[model]\npreset = \"models/odd.toml\"\n");
  EXPECT_INPUT_ERROR(load_run_config(p), bad, "gpt2");
}

TEST(ConfigErrors, SpecRulesAreSharedWithConfigJson) {
  Fixture f;
  std::string pre = f.d.write("models/heads.toml", R"(
[model]
dummy_weights = true
[model.spec]
model_type = "llama"
hidden_size = 64
num_attention_heads = 4
num_key_value_heads = 3
num_hidden_layers = 2
intermediate_size = 128
vocab_size = 100
max_position_embeddings = 64
)");
  std::string p = f.d.write("r.toml", "[model]\npreset = \"models/heads.toml\"\n[data]\nmax_length = 8\n");
  EXPECT_INPUT_ERROR(load_run_config(p), pre, "num_key_value_heads");
}
