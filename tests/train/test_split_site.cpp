// Split bf16 masters (Note [Split bf16 masters]) train to the same bits as resident bf16 training.
#include "common/remove_tree.h"
#include "common/tiny_run.h"
#include "common/train_expect.h"
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "zoff/error.h"
#include "zoff/run_plan.h"
#include "zoff/trainer.h"

namespace zoff {
namespace {

RunConfig base_config(OptimizerKind kind, double lr, double wd) {
  RunConfig c = testing::tiny_cpu_run("test", "zoff_split_", 6);
  testing::small_optimizer(c, kind, lr);
  c.optimizer.weight_decay = wd;
  c.policy.storage_dtype = DType::BF16;
  c.policy.compute_dtype = DType::F32;
  c.train.seed = 11;
  return c;
}

RunConfig streamed(RunConfig c, TransferFormat f, int slots, int resident = 0) {
  c.policy.offload = true;
  c.policy.num_slots = slots;
  c.policy.prefetch_depth = 1;
  c.policy.resident_blocks = resident;
  c.policy.update_site = UpdateSite::Gpu;
  c.policy.write_back = WriteBack::Auto;
  c.policy.transfer = f;
  return c;
}

struct Result {
  std::vector<at::Tensor> weights;
  std::vector<nlohmann::json> stats;
  std::vector<double> losses;
};

Result run(RunConfig c, int steps) {
  Result r;
  {
    Trainer t(c);
    for (int i = 0; i < steps; ++i) {
      r.losses.push_back(t.train_step().loss);
      r.stats.push_back(t.engine_stats());
    }
    r.weights = t.snapshot_weights();
  }
  zoff::testing::remove_tree(c.train.output_dir);
  return r;
}

void expect_identical(const Result& a, const Result& b, const std::string& what) {
  testing::expect_same_weights(a.weights, b.weights, what);
  ASSERT_EQ(a.losses.size(), b.losses.size());
  for (size_t i = 0; i < a.losses.size(); ++i) EXPECT_EQ(a.losses[i], b.losses[i]) << what << ": step " << i;
}

int64_t sum_stat(const Result& r, const char* key) {
  int64_t n = 0;
  for (auto& s : r.stats)
    if (s.contains(key)) n += s.at(key).get<int64_t>();
  return n;
}

// MeZO, FZOO and SVRG, with and without weight decay, at a large and a MeZO-sized rate, 2 and 3
// slots: the same bits and losses as resident bf16 training, every update returned as a delta,
// and fewer bytes uploaded than plain bf16 streaming.
TEST(SplitSite, MastersMatchResidentTraining) {
  for (OptimizerKind kind : {OptimizerKind::MeZO, OptimizerKind::FZOO, OptimizerKind::SVRG})
    for (double lr : {1e-3, 1e-6}) {
      const double wd = kind == OptimizerKind::SVRG ? 0.0 : 0.01;
      const std::string what = std::string(optimizer_kind_name(kind)) + " lr " + std::to_string(lr);
      const Result ref = run(base_config(kind, lr, wd), 6);
      const Result plain = run(streamed(base_config(kind, lr, wd), TransferFormat::Same, 2), 2);
      for (int K : {2, 3}) {
        const Result split = run(streamed(base_config(kind, lr, wd), TransferFormat::BF16Split, K), 6);
        expect_identical(split, ref, what + " K " + std::to_string(K));
        EXPECT_EQ(split.stats.front().at("write_back").get<std::string>(), "none") << what;
        for (size_t i = 1; i < split.stats.size(); ++i)
          EXPECT_EQ(split.stats[i].at("write_back").get<std::string>(), "delta") << what << " step " << i;
        if (lr > 1e-4) {
          EXPECT_GT(sum_stat(split, "delta_exceptions"), 0) << what << ": no exception path exercised";
        }
        const double ratio = double(split.stats.back().at("h2d_bytes").get<int64_t>()) /
                             double(plain.stats.back().at("h2d_bytes").get<int64_t>());
        EXPECT_LT(ratio, 0.78) << what;
        EXPECT_GT(ratio, 0.74) << what;
      }
    }
}

// Exceptions past the list's capacity (a list of one entry per block) are recomputed by the host
// from the update's recipe: still the same bits.
TEST(SplitSite, OverflowingListsStillExact) {
  for (double wd : {0.0, 0.01}) {
    const Result ref = run(base_config(OptimizerKind::MeZO, 1e-3, wd), 5);
    RunConfig c = streamed(base_config(OptimizerKind::MeZO, 1e-3, wd), TransferFormat::BF16Split, 3);
    c.policy.delta_list_divisor = 1 << 20;
    const Result r = run(c, 5);
    expect_identical(r, ref, "overflowing lists, wd " + std::to_string(wd));
    EXPECT_GT(sum_stat(r, "delta_exceptions"), 4) << "the lists did not overflow";
  }
}

// Resident blocks of a split store live on the device in bf16 (decoded once, encoded back for
// snapshots): a partly resident run matches too.
TEST(SplitSite, PartlyResidentRunMatches) {
  const Result ref = run(base_config(OptimizerKind::MeZO, 1e-3, 0.01), 5);
  const Result r = run(streamed(base_config(OptimizerKind::MeZO, 1e-3, 0.01), TransferFormat::BF16Split, 2, 1), 5);
  expect_identical(r, ref, "one resident block");
}

// Trains 6 steps with `full_cfg`; trains 3 with `save_cfg`, checkpoints, resumes with `resume_cfg`
// and trains 3 more: the two must end on the same bits.
void expect_resume_matches(const RunConfig& full_cfg, const RunConfig& save_cfg, const RunConfig& resume_cfg,
                           const std::string& what) {
  std::vector<at::Tensor> full, resumed;
  {
    Trainer t(full_cfg);
    for (int i = 0; i < 6; ++i) t.train_step();
    full = t.snapshot_weights();
  }
  const std::string ck = save_cfg.train.output_dir + "/ck3";
  {
    Trainer t(save_cfg);
    for (int i = 0; i < 3; ++i) t.train_step();
    t.save_checkpoint(ck);
  }
  {
    Trainer t(resume_cfg);
    t.resume_from(ck);
    EXPECT_EQ(t.step(), 3) << what;
    for (int i = 3; i < 6; ++i) t.train_step();
    resumed = t.snapshot_weights();
  }
  for (const RunConfig* c : {&full_cfg, &save_cfg, &resume_cfg}) zoff::testing::remove_tree(c->train.output_dir);
  testing::expect_same_weights(resumed, full, what);
}

// A checkpoint of a split run resumes to the same bits as an uninterrupted run.
TEST(SplitSite, CheckpointResumes) {
  auto config = [] { return streamed(base_config(OptimizerKind::MeZO, 1e-3, 0.01), TransferFormat::BF16Split, 2); };
  expect_resume_matches(config(), config(), config(), "resumed at step 3");
}

// What split masters cannot do is refused up front, naming the key.
TEST(SplitSite, UnsupportedCombinationsNameTheKey) {
  const std::vector<std::pair<std::string, std::function<void(RunConfig&)>>> cases = {
      {"policy.storage_dtype", [](RunConfig& c) { c.policy.storage_dtype = DType::F32; }},
      {"policy.update_site", [](RunConfig& c) { c.policy.update_site = UpdateSite::Cpu; }},
      {"policy.write_back", [](RunConfig& c) { c.policy.write_back = WriteBack::Dense; }},
      {"optimizer.kind", [](RunConfig& c) { c.optimizer.kind = OptimizerKind::SubZero; }}};
  for (const auto& [key, change] : cases) {
    RunConfig c = streamed(base_config(OptimizerKind::MeZO, 1e-3, 0.0), TransferFormat::BF16Split, 2);
    change(c);
    testing::expect_config_error(c, key);
  }
}

// A checkpoint moves between transfer formats (what "auto" may pick differs between machines): saved
// from a plain bf16 stream and resumed split, or the other way round, it ends where an uninterrupted
// run ends.
TEST(SplitSite, CheckpointResumesAcrossTransferFormats) {
  const std::pair<TransferFormat, TransferFormat> moves[] = {{TransferFormat::Same, TransferFormat::BF16Split},
                                                             {TransferFormat::BF16Split, TransferFormat::Same}};
  for (const auto& [from, to] : moves) {
    auto config = [](TransferFormat f) { return streamed(base_config(OptimizerKind::MeZO, 1e-3, 0.01), f, 2); };
    expect_resume_matches(config(from), config(from), config(to),
                          std::string(transfer_format_name(from)) + " -> " + transfer_format_name(to));
  }
}

// Note [Auto transfer]: split exactly where it runs, with a reason for every "same".
TEST(SplitSite, AutoPicksSplitOnlyWhereItRuns) {
  const RunConfig ok = streamed(base_config(OptimizerKind::MeZO, 1e-3, 0.01), TransferFormat::Auto, 2);
  std::string why;
  EXPECT_EQ(auto_transfer(ok, true, false, &why), TransferFormat::BF16Split);
  EXPECT_NE(why.find("bf16-split"), std::string::npos) << why;
  const std::vector<std::pair<std::string, std::function<void(RunConfig&, bool&, bool&)>>> cases = {
      {"the CPU", [](RunConfig&, bool& cuda, bool&) { cuda = false; }},
      {"several processes", [](RunConfig&, bool&, bool& dist) { dist = true; }},
      {"all resident", [](RunConfig& c, bool&, bool&) { c.policy.offload = false; }},
      {"fp32 masters", [](RunConfig& c, bool&, bool&) { c.policy.storage_dtype = DType::F32; }},
      {"cpu site", [](RunConfig& c, bool&, bool&) { c.policy.update_site = UpdateSite::Cpu; }},
      {"deferred site", [](RunConfig& c, bool&, bool&) { c.policy.update_site = UpdateSite::Deferred; }},
      {"dense write-back", [](RunConfig& c, bool&, bool&) { c.policy.write_back = WriteBack::Dense; }},
      {"pageable masters", [](RunConfig& c, bool&, bool&) { c.policy.pin_memory = false; }},
      {"SubZero", [](RunConfig& c, bool&, bool&) { c.optimizer.kind = OptimizerKind::SubZero; }},
      {"FZOO N = 9", [](RunConfig& c, bool&, bool&) { c.optimizer.kind = OptimizerKind::FZOO, c.optimizer.fzoo_n = 9; }},
      {"MeZO q = 9", [](RunConfig& c, bool&, bool&) { c.optimizer.mezo_q = 9; }}};
  for (const auto& [what, change] : cases) {
    RunConfig c = ok;
    bool cuda = true, dist = false;
    change(c, cuda, dist);
    why.clear();
    EXPECT_EQ(auto_transfer(c, cuda, dist, &why), TransferFormat::Same) << what;
    EXPECT_EQ(why.rfind("same (", 0), 0u) << what << ": " << why;
  }
  for (OptimizerKind kind : {OptimizerKind::FZOO, OptimizerKind::SVRG}) {
    RunConfig c = ok;
    c.optimizer.kind = kind;
    c.optimizer.fzoo_n = 8;
    EXPECT_EQ(auto_transfer(c, true, false), TransferFormat::BF16Split) << optimizer_kind_name(kind);
  }
  RunConfig fixed = ok;  // an explicit format is never changed
  fixed.policy.transfer = TransferFormat::FP8;
  EXPECT_EQ(auto_transfer(fixed, true, false), TransferFormat::FP8);
}

// On the CPU auto streams the storage dtype, and the run is resident training's, bit for bit.
TEST(SplitSite, AutoOnTheCpuStreamsSame) {
  const Result ref = run(base_config(OptimizerKind::MeZO, 1e-3, 0.01), 4);
  RunConfig c = streamed(base_config(OptimizerKind::MeZO, 1e-3, 0.01), TransferFormat::Auto, 2);
  {
    Trainer t(c);
    EXPECT_NE(t.plan_report().find("transfer same"), std::string::npos) << t.plan_report();
  }
  zoff::testing::remove_tree(c.train.output_dir);
  expect_identical(run(streamed(base_config(OptimizerKind::MeZO, 1e-3, 0.01), TransferFormat::Auto, 2), 4), ref,
                   "auto on the CPU");
}

// Under a GPU memory budget auto keeps split only where its plan fits and is predicted no slower.
TEST(SplitSite, AutoYieldsToSameUnderATightBudget) {
  PlannerInput in;
  for (int b = 0; b < 8; ++b) in.blocks.push_back(BlockDesc{1 << 20, {RowSegment{1024, 1024}}});
  in.flops_per_step = 1;
  OffloadPolicy p;
  p.storage_dtype = DType::BF16;
  p.offload = true;
  p.num_slots = 3;
  p.update_site = UpdateSite::Gpu;
  p.transfer = TransferFormat::BF16Split;
  std::string why;
  OffloadPolicy q = p;
  plan_auto(in, &q, true, &why);
  EXPECT_EQ(q.transfer, TransferFormat::BF16Split) << why;
  OffloadPolicy same = p;
  same.transfer = TransferFormat::Same;
  same.resident_blocks = p.resident_blocks = 0;
  const int64_t same_min = plan_offload(in, same).gpu_total, split_min = plan_offload(in, p).gpu_total;
  ASSERT_GT(split_min, same_min);  // the decode buffer outweighs the smaller slots at K = 3
  same.resident_blocks = p.resident_blocks = -1;
  q = p;
  q.gpu_memory_budget = (same_min + split_min) / 2;
  why.clear();
  const PlanReport tight = plan_auto(in, &q, true, &why);
  EXPECT_EQ(q.transfer, TransferFormat::Same);
  EXPECT_NE(why.find("does not fit"), std::string::npos) << why;
  EXPECT_EQ(tight.transfer, TransferFormat::Same);
  // Room for 1, 3 and 5 blocks (2 MiB each) past split's fixed parts: auto's pick is the plan
  // predicted faster (here split: "same" keeps no more blocks resident, and moves more bytes).
  for (int64_t extra : {int64_t(1) << 21, int64_t(3) << 21, int64_t(5) << 21}) {
    OffloadPolicy split_b = p, same_b = same;
    split_b.gpu_memory_budget = same_b.gpu_memory_budget = split_min + extra;
    q = split_b;
    const PlanReport r = plan_auto(in, &q, true, &why);
    const PlanReport s = plan_offload(in, same_b), t = plan_offload(in, split_b);
    EXPECT_EQ(q.transfer, t.step_seconds <= s.step_seconds ? TransferFormat::BF16Split : TransferFormat::Same) << extra;
    EXPECT_EQ(r.step_seconds, std::min(t.step_seconds, s.step_seconds)) << extra;
    EXPECT_EQ(r.resident_count, t.resident_count) << extra;
  }
  q = p;
  plan_auto(in, &q, false, &why);  // an explicit bf16-split is planned as it is
  EXPECT_EQ(q.transfer, TransferFormat::BF16Split);
}

}  // namespace
}  // namespace zoff
