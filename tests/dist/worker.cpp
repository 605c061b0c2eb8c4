// The worker side of tests/dist (and the binary's main): `test_dist --worker <scenario> ...`.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <thread>

#include "common/remove_tree.h"
#include "worker.h"
#include "zoff/collective.h"
#include "zoff/error.h"
#include "zoff/trainer.h"

namespace zoff::testing {

RunConfig worker_config(const std::map<std::string, std::string>& kv) {
  auto get = [&](const std::string& k, const std::string& d) {
    auto it = kv.find(k);
    return it == kv.end() ? d : it->second;
  };
  RunConfig c;
  c.source = "dist-test.toml";
  c.model.checkpoint = std::string(ZOFF_TEST_DATA) + "/opt-tiny/model";
  c.model.spec = parse_hf_config(c.model.checkpoint + "/config.json");
  c.optimizer.kind = parse_optimizer_kind(get("kind", "mezo"), "kind");
  c.optimizer.lr = std::stod(get("lr", "1e-3"));
  if (const char* lr = std::getenv("ZOFF_TEST_LR")) c.optimizer.lr = std::stod(lr);  // one rank's mismatch
  c.optimizer.eps = 1e-3;
  c.optimizer.weight_decay = 0.01;
  c.optimizer.fzoo_n = std::stoi(get("fzoo_n", "4"));
  c.optimizer.mezo_q = std::stoi(get("mezo_q", "1"));
  c.data.batch_size = std::stoi(get("batch", "4"));
  c.data.max_length = 16;
  c.train.steps = std::stoi(get("steps", "4"));
  c.train.seed = 42;
  c.train.device = "cpu";
  c.train.log_every = 0;
  c.train.output_dir = get("out", "");
  c.policy.offload = get("offload", "0") == "1";
  if (c.policy.offload) {
    c.policy.num_slots = 2;
    c.policy.resident_blocks = 0;
  }
  c.distributed.mode = get("mode", "perturbation") == "data" ? DistMode::Data : DistMode::Perturbation;
  c.distributed.timeout_s = std::stoi(get("timeout", "60"));
  return c;
}

namespace {

int rank_from_env() {
  const char* r = std::getenv("RANK");
  return r ? std::atoi(r) : 0;
}

void write_error(const std::string& prefix, const std::string& msg) {
  std::ofstream(prefix + ".rank" + std::to_string(rank_from_env()) + ".err") << msg;
}

// train <prefix> key=value...: trains, writes every group's float32 weights to <prefix>.rankR.bin.
int train(const std::string& prefix, const std::map<std::string, std::string>& kv) {
  RunConfig c = worker_config(kv);
  try {
    Trainer t(c);
    t.train();
    std::ofstream f(prefix + ".rank" + std::to_string(rank_from_env()) + ".bin", std::ios::binary);
    for (const at::Tensor& g : t.snapshot_weights()) {
      at::Tensor x = g.to(at::kFloat).contiguous();
      f.write(reinterpret_cast<const char*>(x.data_ptr<float>()), std::streamsize(x.numel() * 4));
    }
    return 0;
  } catch (const InputError& e) {
    write_error(prefix, e.what());
    return 2;
  } catch (const std::exception& e) {
    write_error(prefix, e.what());
    return 1;
  }
}

// collective <prefix>: all-reduce, broadcast, barrier and the exact gather on real ranks.
int collective(const std::string& prefix) {
  CollectiveOptions o;
  o.backend = "gloo";
  o.timeout = std::chrono::seconds(60);
  auto c = make_collective(DistEnv::from_env(), o);
  const int r = c->rank(), W = c->world();
  std::vector<double> v = {double(r + 1), 0.1 * r, -1.0};
  c->allreduce_sum(v);
  bool ok = v[0] == W * (W + 1) / 2.0 && v[2] == -double(W);
  std::string b = r == 0 ? std::string("hello from rank 0\0with a nul", 28) : std::string("x");
  c->broadcast(b, 0);
  ok = ok && b == std::string("hello from rank 0\0with a nul", 28);
  std::string e = r == 1 ? "" : "not empty";
  c->broadcast(e, 1);
  ok = ok && e.empty();
  c->barrier();
  // Values whose sum depends on the order (1e16 + 1 - 1e16 is 0 in rank order, 1 otherwise):
  // every rank must get rank order's bits.
  auto value = [](int k) { return k == 0 ? 1e16 : k == 1 ? 1.0 : k == 2 ? -1e16 : 0.1 * k; };
  double expect = 0;
  for (int k = 0; k < W; ++k) expect = k == 0 ? value(0) : expect + value(k);
  std::vector<double> s = sum_in_rank_order(*c, {value(r), -value(r)});
  ok = ok && s[0] == expect && s[1] == -expect;
  std::string bytes(reinterpret_cast<const char*>(s.data()), s.size() * sizeof(double));
  c->broadcast(bytes, 0);  // rank 0's bits
  ok = ok && std::memcmp(bytes.data(), s.data(), bytes.size()) == 0;
  std::ofstream(prefix + ".rank" + std::to_string(r) + ".ok") << (ok ? "ok" : "bad");
  return ok ? 0 : 3;
}

// peer <prefix> die|stall: rank 1 leaves (exits, or never calls); rank 0's all-reduce must fail
// with an error in bounded time. Rank 0 writes the message and the seconds it took.
int peer(const std::string& prefix, const std::string& how) {
  CollectiveOptions o;
  o.backend = "gloo";
  o.timeout = std::chrono::seconds(how == "stall" ? 3 : 60);
  auto c = make_collective(DistEnv::from_env(), o);
  c->barrier();
  if (c->rank() == 1) {
    if (how == "die") ::_exit(0);
    std::this_thread::sleep_for(std::chrono::seconds(8));
    return 0;
  }
  const auto t0 = std::chrono::steady_clock::now();
  try {
    std::vector<double> v = {1.0};
    c->allreduce_sum(v);
  } catch (const std::exception& e) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    write_error(prefix, std::string(e.what()) + "\nseconds=" + std::to_string(s));
    std::fflush(nullptr);
    ::_exit(0);  // do not wait for Gloo's threads to notice the peer again
  }
  write_error(prefix, "no error");
  return 4;
}

}  // namespace

int worker_main(int argc, char** argv) {
  at::set_num_threads(1);
  const std::string scenario = argc > 2 ? argv[2] : "";
  const std::string prefix = argc > 3 ? argv[3] : "";
  std::map<std::string, std::string> kv;
  for (int i = 4; i < argc; ++i) {
    const char* eq = std::strchr(argv[i], '=');
    if (eq) kv[std::string(argv[i], size_t(eq - argv[i]))] = eq + 1;
  }
  try {
    if (scenario == "train") return train(prefix, kv);
    if (scenario == "collective") return collective(prefix);
    if (scenario == "peer") return peer(prefix, kv.count("how") ? kv["how"] : "die");
  } catch (const std::exception& e) {
    write_error(prefix, e.what());
    return 1;
  }
  std::fprintf(stderr, "unknown worker scenario '%s'\n", scenario.c_str());
  return 64;
}

}  // namespace zoff::testing

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--worker") == 0) return zoff::testing::worker_main(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
