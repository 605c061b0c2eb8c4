// Optimizers on CUDA: the fixture MeZO step, and same-seed / resume determinism for all four.
#include <gtest/gtest.h>

#include <c10/core/InferenceMode.h>

#include "optim/test_helpers.h"
#include "zoff/remove_tree.h"
#include "zoff/trainer.h"

namespace zoff {
namespace {
using namespace zoff::testing;

TEST(GpuOptim, FixtureMezoStepOnCuda) {
  c10::InferenceMode guard;
  for (const char* name : {"opt-tiny", "llama-tiny"}) {
    const std::string dir = fixture(name);
    Model m(parse_hf_config(dir + "/model/config.json"));
    ModelWeights w = load_weights(m, dir + "/model", at::kFloat);
    for (auto& f : w.flats) f = f.to(at::kCUDA);
    auto ref = SafetensorsFile::open(dir + "/reference.safetensors");
    StepBatch b{read_tensor(*ref, "input_ids"), read_tensor(*ref, "attention_mask"), at::Tensor()};
    OptimizerConfig cfg;
    cfg.eps = 1e-3;
    cfg.lr = 1e-2;
    auto opt = make_optimizer(cfg, 0, 1, "test", std::make_unique<FileDirections>(dir + "/zo_directions.safetensors"));
    ZoStep step(m, opt.get(), at::kFloat, at::Device(at::kCUDA));
    StepRequest req = opt->begin_step(0);
    auto L = run_pass(m, step, req, b, w, true);
    const double lp = read_tensor(*ref, "zo.loss_plus").item<double>();
    const double lm = read_tensor(*ref, "zo.loss_minus").item<double>();
    EXPECT_NEAR(L[0], lp, 1e-5) << name;
    EXPECT_NEAR(L[1], lm, 1e-5) << name;
    opt->end_step({lp, lm});
    flush(m, *opt, w);
    EXPECT_NEAR(clean_loss(m, w, b, at::Device(at::kCUDA)), read_tensor(*ref, "zo.loss_after").item<double>(), 1e-5)
        << name;
  }
}

RunConfig cfg_for(OptimizerKind kind) {
  RunConfig c;
  c.source = "gpu-test";
  c.model.checkpoint = fixture("llama-tiny") + "/model";
  c.model.spec = parse_hf_config(c.model.checkpoint + "/config.json");
  c.optimizer.kind = kind;
  c.optimizer.lr = 1e-3;
  c.optimizer.fzoo_n = 3;
  c.optimizer.subzero_rank = 4;
  c.optimizer.subzero_period = 4;
  c.optimizer.svrg_q = 3;
  c.optimizer.svrg_lr_full = c.optimizer.svrg_lr_inner = 1e-3;
  c.data.batch_size = 2;
  c.data.max_length = 16;
  c.train.steps = 12;
  c.train.device = "cuda";
  c.train.seed = 9;
  c.train.log_every = 0;
  c.policy.offload = true;  // streamed through the CUDA engine
  c.policy.resident_blocks = 0;
  char t[] = "/tmp/zoff_gpuopt_XXXXXX";
  c.train.output_dir = mkdtemp(t);
  return c;
}

TEST(GpuOptim, SameSeedSameBitsAndResumeOnCuda) {
  for (OptimizerKind kind : {OptimizerKind::MeZO, OptimizerKind::FZOO, OptimizerKind::SubZero, OptimizerKind::SVRG}) {
    auto run = [&](RunConfig c) {
      Trainer t(c);
      for (int i = 0; i < 12; ++i) t.train_step();
      auto w = t.snapshot_weights();
      remove_tree(c.train.output_dir);
      return w;
    };
    auto a = run(cfg_for(kind)), b = run(cfg_for(kind));
    RunConfig c1 = cfg_for(kind);
    {
      Trainer t(c1);
      for (int i = 0; i < 6; ++i) t.train_step();
      t.save_checkpoint(c1.train.output_dir + "/ck");
    }
    RunConfig c2 = cfg_for(kind);
    Trainer t2(c2);
    t2.resume_from(c1.train.output_dir + "/ck");
    for (int i = 6; i < 12; ++i) t2.train_step();
    auto r = t2.snapshot_weights();
    for (size_t g = 0; g < a.size(); ++g) {
      EXPECT_TRUE(at::equal(a[g], b[g])) << optimizer_kind_name(kind) << " run to run, group " << g;
      EXPECT_TRUE(at::equal(a[g], r[g])) << optimizer_kind_name(kind) << " resume, group " << g;
    }
    remove_tree(c1.train.output_dir);
    remove_tree(c2.train.output_dir);
  }
}

}  // namespace
}  // namespace zoff
