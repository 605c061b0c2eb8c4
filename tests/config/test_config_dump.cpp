// dump_resolved_config -> load_run_config gives back the same RunConfig, field by field.
#include "common/spec_expect.h"
#include <filesystem>

#include <gtest/gtest.h>

#include "config_test_util.h"
#include "zoff/config.h"

namespace fs = std::filesystem;
using namespace zoff;
using namespace zoff::testing;

namespace {

void expect_same(const RunConfig& a, const RunConfig& b) {
  EXPECT_EQ(a.model.checkpoint, b.model.checkpoint);
  EXPECT_EQ(a.model.dummy_weights, b.model.dummy_weights);
  EXPECT_EQ(a.model.dummy_seed, b.model.dummy_seed);
  zoff::testing::expect_same_spec(a.model.spec, b.model.spec);

  const OffloadPolicy &p = a.policy, &q = b.policy;
  EXPECT_EQ(p.name, q.name);
  EXPECT_EQ(p.storage_dtype, q.storage_dtype);
  EXPECT_EQ(p.transfer, q.transfer);
  EXPECT_EQ(p.compute_dtype, q.compute_dtype);
  EXPECT_EQ(p.offload, q.offload);
  EXPECT_EQ(p.num_slots, q.num_slots);
  EXPECT_EQ(p.prefetch_depth, q.prefetch_depth);
  EXPECT_EQ(p.resident_blocks, q.resident_blocks);
  EXPECT_EQ(p.gpu_memory_budget, q.gpu_memory_budget);
  EXPECT_EQ(p.update_site, q.update_site);
  EXPECT_EQ(p.pin_memory, q.pin_memory);
  EXPECT_EQ(p.write_back, q.write_back);
  EXPECT_EQ(p.delta_list_divisor, q.delta_list_divisor);

  const OptimizerConfig &o = a.optimizer, &r = b.optimizer;
  EXPECT_EQ(o.kind, r.kind);
  EXPECT_EQ(o.lr, r.lr);
  EXPECT_EQ(o.eps, r.eps);
  EXPECT_EQ(o.weight_decay, r.weight_decay);
  EXPECT_EQ(o.lr_schedule, r.lr_schedule);
  EXPECT_EQ(o.warmup_steps, r.warmup_steps);
  EXPECT_EQ(o.direction, r.direction);
  EXPECT_EQ(o.fzoo_n, r.fzoo_n);
  EXPECT_EQ(o.fzoo_convention, r.fzoo_convention);
  EXPECT_EQ(o.subzero_rank, r.subzero_rank);
  EXPECT_EQ(o.subzero_period, r.subzero_period);
  EXPECT_EQ(o.svrg_q, r.svrg_q);
  EXPECT_EQ(o.svrg_lr_inner, r.svrg_lr_inner);
  EXPECT_EQ(o.svrg_lr_full, r.svrg_lr_full);
  EXPECT_EQ(o.svrg_full_batch_size, r.svrg_full_batch_size);
  EXPECT_EQ(o.svrg_anchor, r.svrg_anchor);

  EXPECT_EQ(a.data.task, b.data.task);
  EXPECT_EQ(a.data.train, b.data.train);
  EXPECT_EQ(a.data.eval, b.data.eval);
  EXPECT_EQ(a.data.tokenizer, b.data.tokenizer);
  EXPECT_EQ(a.data.max_length, b.data.max_length);
  EXPECT_EQ(a.data.batch_size, b.data.batch_size);
  EXPECT_EQ(a.data.shuffle, b.data.shuffle);

  EXPECT_EQ(a.train.steps, b.train.steps);
  EXPECT_EQ(a.train.seed, b.train.seed);
  EXPECT_EQ(a.train.eval_every, b.train.eval_every);
  EXPECT_EQ(a.train.save_every, b.train.save_every);
  EXPECT_EQ(a.train.log_every, b.train.log_every);
  EXPECT_EQ(a.train.output_dir, b.train.output_dir);
  EXPECT_EQ(a.train.device, b.train.device);
  EXPECT_EQ(a.train.timeline, b.train.timeline);
}

RunConfig round_trip(const ScratchDir& d, const RunConfig& c, const std::string& name) {
  std::string text = dump_resolved_config(c);
  std::string p = d.write("dumps/" + name + ".toml", text);
  SCOPED_TRACE(text);
  return load_run_config(p);
}

}  // namespace

TEST(ConfigDump, EveryFieldRoundTrips) {
  ScratchDir d;
  // Start from C++ values that differ from every default, so a key missing from the dump shows.
  RunConfig c;
  c.model.dummy_weights = true;
  c.model.dummy_seed = 12345678901234ull;
  c.model.spec = parse_hf_config(fixture("llama-tiny/model/config.json"));
  c.model.spec.rope_theta = 123456.789;
  c.model.spec.rms_norm_eps = 3e-7;
  c.policy.name = "my \"quoted\" policy\\x";
  c.policy.storage_dtype = DType::F16;
  c.policy.transfer = TransferFormat::FP8;
  c.policy.compute_dtype = DType::BF16;
  c.policy.offload = true;
  c.policy.num_slots = 5;
  c.policy.prefetch_depth = 3;
  c.policy.resident_blocks = 2;
  c.policy.gpu_memory_budget = (int64_t(12) << 30) + 1;  // not a whole unit: written as an integer
  c.policy.update_site = UpdateSite::Cpu;
  c.policy.pin_memory = false;
  c.policy.write_back = WriteBack::Dense;  // "auto" is resolved on load (to dense at the CPU site)
  c.policy.delta_list_divisor = 77;
  c.optimizer.kind = OptimizerKind::SVRG;
  c.optimizer.lr = 0.1 + 0.2;  // not exactly representable in short decimal
  c.optimizer.eps = 1.0 / 3.0;
  c.optimizer.weight_decay = 1e-300;
  c.optimizer.lr_schedule = "cosine";
  c.optimizer.warmup_steps = 17;
  c.optimizer.direction = "rademacher";
  c.optimizer.fzoo_n = 3;
  c.optimizer.fzoo_convention = "paper";
  c.optimizer.subzero_rank = 5;
  c.optimizer.subzero_period = 77;
  c.optimizer.svrg_q = 9;
  c.optimizer.svrg_lr_inner = 2.5e-7;
  c.optimizer.svrg_lr_full = 7e-5;
  c.optimizer.svrg_full_batch_size = 4096;
  c.optimizer.svrg_anchor = "store";
  c.data.task = "pretokenized";
  c.data.train = "/data/train with space.jsonl";
  c.data.eval = "/data/eval.jsonl";
  c.data.tokenizer = "/data/tok";
  c.data.max_length = 48;
  c.data.batch_size = 3;
  c.data.shuffle = false;
  c.train.steps = 31;
  c.train.seed = 99;
  c.train.eval_every = 11;
  c.train.save_every = 13;
  c.train.log_every = 0;
  c.train.output_dir = "out/run one";
  c.train.device = "cpu";
  c.train.timeline = true;
  RunConfig back = round_trip(d, c, "every");
  expect_same(c, back);
  // The dump is a fixed point.
  EXPECT_EQ(dump_resolved_config(back).substr(dump_resolved_config(back).find('\n')),
            dump_resolved_config(c).substr(dump_resolved_config(c).find('\n')));
}

TEST(ConfigDump, ShippedConfigsRoundTrip) {
  ScratchDir d;
  int n = 0;
  for (const char* sub : {"models", "runs"}) {
    for (auto& e : fs::directory_iterator(configs_dir() + "/" + sub)) {
      if (e.path().extension() != ".toml") continue;
      SCOPED_TRACE(e.path().string());
      RunConfig c;
      try {
        c = load_run_config(e.path().string());
      } catch (const InputError&) {  // a checkpoint not built yet (demo): use the fixture
        c = load_run_config(e.path().string(), {"model.checkpoint=" + fixture("opt-tiny/model")});
      }
      expect_same(c, round_trip(d, c, std::string(sub) + "-" + e.path().stem().string()));
      ++n;
    }
  }
  EXPECT_GE(n, 15);
}

TEST(ConfigDump, CheckpointRunsKeepTheCheckpointNotTheSpec) {
  ScratchDir d;
  RunConfig c = load_run_config(configs_dir() + "/runs/opt-tiny-mezo.toml");
  std::string text = dump_resolved_config(c);
  EXPECT_EQ(text.find("[model.spec]"), std::string::npos) << text;
  EXPECT_NE(text.find("checkpoint = \"" + c.model.checkpoint + "\""), std::string::npos) << text;
  // Presets are expanded: the dump names none, only a comment records where the model came from.
  RunConfig o = load_run_config(configs_dir() + "/runs/opt-13b-stream.toml");
  text = dump_resolved_config(o);
  EXPECT_EQ(text.find("preset ="), std::string::npos) << text;
  EXPECT_NE(text.find("# model preset: " + o.model.preset_file), std::string::npos) << text;
  EXPECT_NE(text.find("gpu_memory_budget = 0"), std::string::npos) << text;
  RunConfig b = load_run_config(configs_dir() + "/runs/opt-175b-12g-fp8.toml");
  EXPECT_NE(dump_resolved_config(b).find("gpu_memory_budget = \"12GiB\""), std::string::npos);
}
