// Seed-log replay rebuilds the trained weights bit for bit from the base checkpoint.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "common/remove_tree.h"
#include "common/tiny_run.h"
#include "zoff/replay.h"
#include "zoff/safetensors.h"
#include "zoff/trainer.h"
#include "zoff/weights.h"

namespace zoff {
namespace {

// A CPU run of opt-tiny for `steps` steps in a fresh temporary output folder.
RunConfig replay_config(int64_t steps) { return testing::tiny_cpu_run("replay-test", "zoff_replay_", steps); }

TEST(Replay, SeedLogRebuildsTrainedWeightsExactly) {
  for (OptimizerKind kind : {OptimizerKind::MeZO, OptimizerKind::FZOO, OptimizerKind::SubZero, OptimizerKind::SVRG}) {
    RunConfig c = replay_config(8);
    c.optimizer.kind = kind;
    c.optimizer.lr = 1e-3;
    c.optimizer.weight_decay = kind == OptimizerKind::SVRG ? 0.0 : 0.01;
    c.optimizer.fzoo_n = 3;
    c.optimizer.subzero_rank = 4;
    c.optimizer.subzero_period = 3;
    c.optimizer.svrg_q = 3;
    std::vector<at::Tensor> trained;
    {
      Trainer tr(c);
      for (int i = 0; i < 8; ++i) tr.train_step();
      trained = tr.snapshot_weights();
    }
    const std::string out = c.train.output_dir + "/replayed";
    EXPECT_EQ(rebuild_from_seed_log(c.train.output_dir, out), 8) << optimizer_kind_name(kind);
    Model m(c.model.spec);
    ModelWeights r = load_weights(m, out, at::kFloat);
    for (size_t g = 0; g < trained.size(); ++g)
      EXPECT_TRUE(at::equal(trained[g], r.flats[g])) << optimizer_kind_name(kind) << " group " << g;
    // Replaying only the first 3 steps gives different (earlier) weights.
    EXPECT_EQ(rebuild_from_seed_log(c.train.output_dir, out + "3", 2), 3);
    ModelWeights r3 = load_weights(m, out + "3", at::kFloat);
    EXPECT_FALSE(at::equal(r3.flats[1], r.flats[1]));
    zoff::testing::remove_tree(c.train.output_dir);
  }
}

// The seed log names its Gaussian sampler (kGaussianSampler). A line written by another sampler is
// refused with the file, the line and the field; a line without the field (older logs) replays.
TEST(Replay, SamplerFieldIsChecked) {
  const RunConfig c = replay_config(2);
  {
    Trainer tr(c);
    tr.train_step();
    tr.train_step();
  }
  const std::string log = c.train.output_dir + "/seed_log.jsonl";
  std::ifstream in(log);
  std::string l1, l2;
  std::getline(in, l1);
  std::getline(in, l2);
  in.close();
  const std::string field = ",\"z\":\"box-muller\"";
  ASSERT_NE(l2.find(field), std::string::npos) << l2;
  std::string old = l2, other = l2;
  old.erase(old.find(field), field.size());                       // an older log's line
  other.replace(other.find(field), field.size(), ",\"z\":\"ziggurat256\"");  // another sampler's
  std::ofstream(log) << l1 << "\n" << old << "\n";
  EXPECT_EQ(rebuild_from_seed_log(c.train.output_dir, c.train.output_dir + "/a"), 2);
  std::ofstream(log) << l1 << "\n" << other << "\n";
  try {
    rebuild_from_seed_log(c.train.output_dir, c.train.output_dir + "/b");
    ADD_FAILURE() << "replayed " << other;
  } catch (const std::exception& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("seed_log.jsonl:2"), std::string::npos) << m;
    EXPECT_NE(m.find("field \"z\" is 'ziggurat256'"), std::string::npos) << m;
  }
  zoff::testing::remove_tree(c.train.output_dir);
}

}  // namespace
}  // namespace zoff
