// Distributed training on the CPU (Gloo, 2 processes) against one process; failures end in errors, not hangs.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "common/remove_tree.h"
#include "dist_harness.h"
#include "worker.h"
#include "zoff/collective.h"
#include "zoff/distributed.h"
#include "zoff/error.h"
#include "zoff/optimizer.h"

namespace zoff::testing {
namespace {

std::string tmpdir() {
  char t[] = "/tmp/zoff_dist_XXXXXX";
  return mkdtemp(t);
}

std::vector<float> read_weights(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  EXPECT_TRUE(f.good()) << "no weights at " << path;
  std::vector<float> w(size_t(f.tellg()) / 4);
  f.seekg(0);
  f.read(reinterpret_cast<char*>(w.data()), std::streamsize(w.size() * 4));
  return w;
}

// Trains `world` ranks with the given settings; returns rank 0's weights (and checks every rank
// ended with exactly rank 0's bits).
std::vector<float> train(int world, const std::vector<std::string>& kv, const std::string& dir) {
  const std::string prefix = dir + "/w" + std::to_string(world);
  std::vector<std::string> args = {"train", prefix, "out=" + dir + "/run" + std::to_string(world)};
  args.insert(args.end(), kv.begin(), kv.end());
  auto res = run_workers(world, args);
  for (int r = 0; r < world; ++r) {
    EXPECT_FALSE(res[size_t(r)].hung) << "rank " << r << " hung";
    EXPECT_EQ(res[size_t(r)].code, 0) << "rank " << r << ": " << read_text(prefix + ".rank" + std::to_string(r) + ".err");
  }
  auto w0 = read_weights(prefix + ".rank0.bin");
  for (int r = 1; r < world; ++r)
    EXPECT_TRUE(read_weights(prefix + ".rank" + std::to_string(r) + ".bin") == w0) << "rank " << r << " drifted from rank 0";
  return w0;
}

// The fixture's weights (0 steps): a run must move them, or equality would prove nothing.
std::vector<float> initial_weights() {
  const std::string d = tmpdir();
  auto w = train(1, {"steps=0"}, d);
  remove_tree(d);
  return w;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

// A pip LibTorch may come without gloo's headers (docs/distributed.md): nothing to run on the CPU then.
#define ZOFF_NEEDS_GLOO()                                                          \
  if (collective_backends().find("gloo") == std::string::npos) GTEST_SKIP() << "built without Gloo"

struct ParallelCase {
  const char* name;
  std::vector<std::string> kv;
};

class PerturbationParallel : public ::testing::TestWithParam<ParallelCase> {};

// Each rank runs its share of the forwards; the gathered losses are bitwise one process's losses,
// so the weights are too (Note [Distributed ZO step]).
TEST_P(PerturbationParallel, TwoProcessesEqualOneBitwise) {
  ZOFF_NEEDS_GLOO();
  const std::string dir = tmpdir();
  auto kv = GetParam().kv;
  kv.push_back("mode=perturbation");
  auto w1 = train(1, kv, dir);
  auto w2 = train(2, kv, dir);
  EXPECT_GT(max_abs_diff(w1, initial_weights()), 0.0);
  EXPECT_TRUE(w1 == w2) << "max |diff| " << max_abs_diff(w1, w2);
  // Only rank 0 wrote outputs.
  EXPECT_TRUE(std::ifstream(dir + "/run2/metrics.jsonl").good());
  EXPECT_TRUE(std::ifstream(dir + "/run2/checkpoint-final/trainer_state.json").good());
  remove_tree(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Dist, PerturbationParallel,
    ::testing::Values(ParallelCase{"fzoo_n4", {"kind=fzoo", "fzoo_n=4"}},  // 5 forwards: shares 3 + 2
                      ParallelCase{"mezo_q2", {"kind=mezo", "mezo_q=2"}},  // 4 forwards: 2 + 2
                      ParallelCase{"fzoo_n3_offloaded", {"kind=fzoo", "fzoo_n=3", "offload=1"}}),
    [](const auto& i) { return std::string(i.param.name); });

// Each rank runs every forward on half the rows; (NLL sum, tokens) meet in rank order. One process
// sums all rows in one fp32 reduction, so the losses agree to rounding and the weights nearly.
TEST(DataParallel, TwoProcessesMatchOneOnTheGlobalBatch) {
  ZOFF_NEEDS_GLOO();
  for (auto kind : {"mezo", "fzoo"}) {
    SCOPED_TRACE(kind);
    const std::string dir = tmpdir();
    std::vector<std::string> kv = {std::string("kind=") + kind, "fzoo_n=3", "mode=data", "batch=4"};
    auto w1 = train(1, kv, dir);
    auto w2 = train(2, kv, dir);
    auto w0 = initial_weights();
    const double moved = max_abs_diff(w1, w0), diff = max_abs_diff(w1, w2);
    EXPECT_GT(moved, 0.0);
    EXPECT_LE(diff, 1e-3 * moved) << "moved " << moved;
    std::printf("data mode, %s: max |w(2 ranks) - w(1)| = %.3g, max |w(1) - w(0)| = %.3g\n", kind, diff, moved);
    // The logged losses: one process vs two, per step.
    std::ifstream a(dir + "/run1/metrics.jsonl"), b(dir + "/run2/metrics.jsonl");
    std::string la, lb;
    int steps = 0;
    while (std::getline(a, la) && std::getline(b, lb)) {
      auto ja = nlohmann::json::parse(la), jb = nlohmann::json::parse(lb);
      for (size_t f = 0; f < ja["losses"].size(); ++f)
        EXPECT_NEAR(ja["losses"][f].get<double>(), jb["losses"][f].get<double>(), 1e-5 * ja["losses"][f].get<double>());
      EXPECT_EQ(jb["ranks"].get<int>(), 2);
      ++steps;
    }
    EXPECT_EQ(steps, 4);
    remove_tree(dir);
  }
}

TEST(Collective, GlooAllReduceBroadcastBarrierOnThreeRanks) {
  ZOFF_NEEDS_GLOO();
  const std::string dir = tmpdir();
  auto res = run_workers(3, {"collective", dir + "/c"});
  for (int r = 0; r < 3; ++r) {
    EXPECT_FALSE(res[size_t(r)].hung);
    EXPECT_EQ(res[size_t(r)].code, 0) << read_text(dir + "/c.rank" + std::to_string(r) + ".err");
    EXPECT_EQ(read_text(dir + "/c.rank" + std::to_string(r) + ".ok"), "ok");
  }
  remove_tree(dir);
}

// A peer that dies is noticed at once (its sockets close); one that stops answering, after
// distributed.timeout_s. Neither hangs.
TEST(Failure, DeadOrStalledPeerIsAnErrorNotAHang) {
  ZOFF_NEEDS_GLOO();
  for (auto how : {"die", "stall"}) {
    SCOPED_TRACE(how);
    const std::string dir = tmpdir();
    auto res = run_workers(2, {"peer", dir + "/p", std::string("how=") + how}, std::chrono::seconds(60));
    EXPECT_FALSE(res[0].hung) << "rank 0 hung waiting for a " << how << " peer";
    const std::string msg = read_text(dir + "/p.rank0.err");
    EXPECT_EQ(res[0].code, 0) << msg;
    EXPECT_NE(msg.find("rank 0: Gloo all-reduce failed"), std::string::npos) << msg;
    const double secs = std::stod(msg.substr(msg.find("seconds=") + 8));
    std::printf("%s peer: rank 0 failed after %.2f s: %s\n", how, secs, msg.substr(0, msg.find('\n')).c_str());
    EXPECT_LT(secs, std::string(how) == "die" ? 30.0 : 15.0) << msg;
    remove_tree(dir);
  }
}

TEST(Failure, MismatchedConfigFailsOnEveryRankNamingTheKey) {
  ZOFF_NEEDS_GLOO();
  const std::string dir = tmpdir();
  // Rank 1 gets another learning rate (ZOFF_TEST_LR, read by worker_config).
  const std::string prefix = dir + "/m";
  auto res = run_workers(2, {"train", prefix, "out=" + dir + "/run"}, std::chrono::seconds(120),
                         {{}, {"ZOFF_TEST_LR=5e-4"}});
  for (int r = 0; r < 2; ++r) {
    EXPECT_FALSE(res[size_t(r)].hung);
    EXPECT_EQ(res[size_t(r)].code, 2) << "rank " << r;
  }
  const std::string e0 = read_text(prefix + ".rank0.err"), e1 = read_text(prefix + ".rank1.err");
  EXPECT_NE(e1.find("rank 1 runs a different config than rank 0"), std::string::npos) << e1;
  EXPECT_NE(e1.find("(optimizer.lr, line "), std::string::npos) << e1;
  EXPECT_NE(e0.find("rank(s) 1 run a different config"), std::string::npos) << e0;
  EXPECT_NE(e0.find("dist-test.toml"), std::string::npos) << e0;
  std::printf("rank 0: %s\nrank 1: %s\n", e0.c_str(), e1.c_str());
  remove_tree(dir);
}

TEST(Failure, MissingPeerAtRendezvousTimesOut) {
  ZOFF_NEEDS_GLOO();
  DistEnv env;
  env.world = 2;
  env.rank = 0;
  env.master_port = free_port();
  CollectiveOptions o;
  o.backend = "gloo";
  o.timeout = std::chrono::seconds(2);
  const auto t0 = std::chrono::steady_clock::now();
  try {
    make_collective(env, o);
    FAIL() << "rendezvous without the peer succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 0: rendezvous at 127.0.0.1:"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 30.0);
}

}  // namespace
}  // namespace zoff::testing
