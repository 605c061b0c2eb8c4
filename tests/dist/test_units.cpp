// In-process tests of the distributed layer: shares, env parsing, [distributed] config, MeZO q.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>

#include "common/remove_tree.h"
#include "zoff/collective.h"
#include "zoff/distributed.h"
#include "zoff/error.h"
#include "zoff/optimizer.h"

namespace zoff {
namespace {

TEST(SplitRange, SharesAreContiguousBalancedAndCoverEverything) {
  for (int64_t n : {0, 1, 2, 5, 9, 16})
    for (int w : {1, 2, 3, 4, 7}) {
      int64_t next = 0, lo = n, hi = 0;
      for (int r = 0; r < w; ++r) {
        Span s = split_range(n, r, w);
        EXPECT_EQ(s.begin, next) << n << " " << w << " " << r;
        next = s.end;
        lo = std::min(lo, s.size());
        hi = std::max(hi, s.size());
      }
      EXPECT_EQ(next, n);
      EXPECT_LE(hi - lo, 1);
    }
  EXPECT_EQ(split_range(5, 0, 2).size(), 3);  // FZOO N=4: l0 + 2 perturbed on rank 0, 2 on rank 1
  EXPECT_EQ(split_range(5, 1, 2).begin, 3);
}

// Sets the variables for one test, restores an unset environment after.
struct Env {
  explicit Env(std::vector<std::pair<const char*, const char*>> kv) : kv_(std::move(kv)) {
    for (auto& [k, v] : kv_) setenv(k, v, 1);
  }
  ~Env() {
    for (auto& [k, v] : kv_) unsetenv(k);
  }
  std::vector<std::pair<const char*, const char*>> kv_;
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(DistEnv, NoEnvironmentIsAWorldOfOne) {
  DistEnv e = DistEnv::from_env();
  EXPECT_EQ(e.world, 1);
  EXPECT_EQ(e.rank, 0);
  auto c = make_collective(e, {});
  EXPECT_STREQ(c->backend(), "local");
  std::vector<double> v = {1.5, -0.0};
  EXPECT_EQ(sum_in_rank_order(*c, v), v);
}

TEST(DistEnv, TorchrunVariablesAreReadAndCheckedByName) {
  {
    Env env({{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "10.0.0.2"}, {"MASTER_PORT", "29511"}});
    DistEnv e = DistEnv::from_env();
    EXPECT_EQ(e.world, 2);
    EXPECT_EQ(e.rank, 1);
    EXPECT_EQ(e.local_rank, 1);
    EXPECT_EQ(e.master_addr, "10.0.0.2");
    EXPECT_EQ(e.master_port, 29511);
  }
  {
    Env env({{"WORLD_SIZE", "2"}, {"RANK", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}});
    EXPECT_NE(error_of([] { DistEnv::from_env(); }).find("RANK=2 must be in [0, 1]"), std::string::npos);
  }
  {
    Env env({{"WORLD_SIZE", "two"}, {"UNUSED_ZOFF_TEST", "1"}});
    EXPECT_NE(error_of([] { DistEnv::from_env(); }).find("WORLD_SIZE='two' is not an integer"), std::string::npos);
  }
  {
    Env env({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_PORT", "29500"}});
    EXPECT_NE(error_of([] { DistEnv::from_env(); }).find("MASTER_ADDR is not set"), std::string::npos);
  }
  {
    Env env({{"RANK", "1"}, {"UNUSED_ZOFF_TEST", "1"}});
    EXPECT_NE(error_of([] { DistEnv::from_env(); }).find("WORLD_SIZE is not"), std::string::npos);
  }
}

std::string write_run(const std::string& body) {
  char t[] = "/tmp/zoff_dist_cfg_XXXXXX";
  const std::string dir = mkdtemp(t);
  std::ofstream(dir + "/run.toml") << "[model]\ncheckpoint = \"" << ZOFF_TEST_DATA << "/opt-tiny/model\"\n[data]\nmax_length = 16\n" << body;
  return dir + "/run.toml";
}

TEST(DistributedConfig, SectionLoadsDumpsAndRejectsBadValuesNamingFileAndKey) {
  const std::string p = write_run("[distributed]\nmode = \"data\"\nbackend = \"gloo\"\ntimeout_s = 30\n");
  RunConfig c = load_run_config(p);
  EXPECT_EQ(c.distributed.mode, DistMode::Data);
  EXPECT_EQ(c.distributed.backend, "gloo");
  EXPECT_EQ(c.distributed.timeout_s, 30);
  EXPECT_NE(dump_resolved_config(c).find("[distributed]\nmode = \"data\"\nbackend = \"gloo\"\ntimeout_s = 30"),
            std::string::npos);
  const std::string bad = write_run("[distributed]\nmode = \"pipeline\"\n");
  std::string e = error_of([&] { load_run_config(bad); });
  EXPECT_NE(e.find("run.toml"), std::string::npos) << e;
  EXPECT_NE(e.find("distributed.mode"), std::string::npos) << e;
  e = error_of([&] { load_run_config(p, {"distributed.timeout_s=0"}); });
  EXPECT_NE(e.find("distributed.timeout_s"), std::string::npos) << e;
  e = error_of([&] { load_run_config(p, {"optimizer.mezo_q=0"}); });
  EXPECT_NE(e.find("optimizer.mezo_q"), std::string::npos) << e;
  e = error_of([&] { load_run_config(write_run("[distributed]\nmodes = \"data\"\n")); });
  EXPECT_NE(e.find("did you mean 'mode'"), std::string::npos) << e;
}

TEST(DistributedConfig, BackendMissingFromTheBuildIsAnInputError) {
  DistEnv env;
  env.world = 2;
  CollectiveOptions o;
  o.backend = "nccl";
  const std::string e = error_of([&] { make_collective(env, o); });
  if (collective_backends().find("nccl") == std::string::npos)
    EXPECT_NE(e.find("built without it"), std::string::npos) << e;
  else
    EXPECT_NE(e.find("needs train.device = \"cuda\""), std::string::npos) << e;
}

// Note [MeZO step], n-SPSA: q directions, forwards (+z_i, -z_i), update -lr/q sum g_i z_i.
TEST(MeZOq, QDirectionsGiveTwoQForwardsAndTheAveragedUpdate) {
  OptimizerConfig c;
  c.kind = OptimizerKind::MeZO;
  c.lr = 0.1;
  c.eps = 0.01;
  c.mezo_q = 3;
  auto o = make_optimizer(c, 7, 10);
  StepRequest r = o->begin_step(2);
  ASSERT_EQ(r.forwards.size(), 6u);
  for (int i = 0; i < 3; ++i) {
    auto& p = r.forwards[size_t(2 * i)].terms;
    auto& m = r.forwards[size_t(2 * i + 1)].terms;
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(p[0].seed, m[0].seed);
    EXPECT_EQ(p[0].coeff, 0.01);
    EXPECT_EQ(m[0].coeff, -0.01);
    if (i > 0) {
      EXPECT_NE(p[0].seed, r.forwards[0].terms[0].seed);
    }
  }
  auto info = o->end_step({1.0, 0.9, 2.0, 2.0, 0.5, 0.7});
  const auto& u = o->pending();
  ASSERT_EQ(u.terms.size(), 3u);
  EXPECT_DOUBLE_EQ(u.terms[0].coeff, -0.1 * 5.0 / 3);
  EXPECT_DOUBLE_EQ(u.terms[1].coeff, 0.0);
  EXPECT_DOUBLE_EQ(u.terms[2].coeff, -0.1 * -10.0 / 3);
  EXPECT_DOUBLE_EQ(info["loss"].get<double>(), (0.95 + 2.0 + 0.6) / 3);
  // q = 1 is the plain MeZO step: the same seed as the first of q directions.
  c.mezo_q = 1;
  auto o1 = make_optimizer(c, 7, 10);
  StepRequest r1 = o1->begin_step(2);
  ASSERT_EQ(r1.forwards.size(), 2u);
  EXPECT_EQ(r1.forwards[0].terms[0].seed, r.forwards[0].terms[0].seed);
}

}  // namespace
}  // namespace zoff
