// Tests for IoPool (parallel reads, error propagation) and BackgroundWriter (serial background saves).
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "io_test_util.h"
#include "zoff/async_io.h"

namespace zoff {
namespace {

using iotest::expect_input_error;
using iotest::TempDir;

const std::string kOpt = std::string(ZOFF_TEST_DATA) + "/opt-tiny/model";

TEST(IoPool, ReadTensorsParallelFillsOneBuffer) {
  Checkpoint c = Checkpoint::open(kOpt);
  IoPool pool(4);
  EXPECT_EQ(pool.threads(), 4);
  // Every tensor into consecutive slices of one bf16 buffer, as a pinned block buffer is filled;
  // a 1000-byte chunk size splits the bigger tensors over many tasks.
  std::vector<std::string> names = c.names();
  int64_t total = 0;
  for (const auto& n : names) total += c.info(n).numel();
  at::Tensor buf = at::empty({total}, at::kBFloat16);
  std::vector<ReadRequest> reqs;
  int64_t off = 0;
  for (const auto& n : names) {
    const TensorInfo& t = c.info(n);
    reqs.push_back({n, t.shape, buf.narrow(0, off, t.numel()).view(t.shape)});
    off += t.numel();
  }
  pool.read_tensors_parallel(c, reqs, 1000);
  off = 0;
  for (const auto& n : names) {
    const TensorInfo& t = c.info(n);
    at::Tensor expect = c.load(n, t.shape, at::kBFloat16).view({-1});
    EXPECT_TRUE(at::equal(buf.narrow(0, off, t.numel()), expect)) << n;
    off += t.numel();
  }
}

TEST(IoPool, ReadErrorsAreRaisedBeforeAnyWork) {
  Checkpoint c = Checkpoint::open(kOpt);
  IoPool pool(2);
  at::Tensor dst = at::empty({512, 64});
  expect_input_error(
      [&] { pool.read_tensors_parallel(c, {{"model.decoder.embed_tokens.weight", {64, 512}, dst}}); },
      {kOpt + "/model.safetensors", "'model.decoder.embed_tokens.weight'", "[512, 64]", "[64, 512]"});
  expect_input_error([&] { pool.read_tensors_parallel(c, {{"nope", {1}, dst}}); }, {kOpt, "'nope'"});
  EXPECT_THROW(pool.read_tensors_parallel(c, {{"model.decoder.embed_tokens.weight", {512, 64},
                                               at::empty({512, 64}).t()}}),
               Error);  // not contiguous
}

TEST(IoPool, RunAllRethrowsTheFirstErrorAndSkipsTheRest) {
  IoPool pool(1);  // one thread: tasks run in order, so what is skipped is deterministic
  std::atomic<int> ran{0};
  std::vector<std::function<void()>> tasks;
  for (int i = 0; i < 10; ++i)
    tasks.push_back([&ran, i] {
      ++ran;
      if (i == 3) throw InputError("task 3 failed", "here");
      if (i == 5) throw std::runtime_error("task 5 failed");
    });
  try {
    pool.run_all(tasks);
    ADD_FAILURE() << "no exception";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "task 3 failed");
  }
  EXPECT_EQ(ran.load(), 4);
  // The pool is still usable, and run_all from inside a pool task does not deadlock.
  std::atomic<int> inner{0};
  pool.run_all({[&] { pool.run_all({[&] { ++inner; }, [&] { ++inner; }}); }});
  EXPECT_EQ(inner.load(), 2);
}

TEST(BackgroundWriter, SavesCheckpointAndExtraFiles) {
  TempDir d;
  IoPool pool(2);
  BackgroundWriter w(pool);
  std::vector<std::pair<std::string, at::Tensor>> snap = {{"a", at::randn({10})},
                                                          {"b", at::randn({3, 3}).to(at::kBFloat16)}};
  w.save(d.path + "/ckpt", snap, {{"config.json", "{\"model_type\": \"opt\"}\n"}});
  w.wait();
  EXPECT_FALSE(w.busy());
  Checkpoint c = Checkpoint::open(d.path + "/ckpt");
  EXPECT_TRUE(at::equal(c.view("a"), snap[0].second));
  EXPECT_TRUE(at::equal(c.view("b"), snap[1].second));
  std::ifstream in(d.path + "/ckpt/config.json");
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), "{\"model_type\": \"opt\"}\n");
}

TEST(BackgroundWriter, TwoSavesNeverOverlap) {
  TempDir d;
  IoPool pool(4);
  BackgroundWriter w(pool);
  // A save big enough to still be running when the next save() is called: that call must wait
  // for it, so right after save() returns the first checkpoint is complete on disk.
  at::Tensor big = at::randn({int64_t(8) << 20});  // 32 MB, in 4 shards
  w.save(d.path + "/one", {{"x", big}, {"y", big}, {"z", big}, {"w", big}}, {}, int64_t(40) << 20);
  w.save(d.path + "/two", {{"s", at::ones({4})}});
  Checkpoint one = Checkpoint::open(d.path + "/one");
  EXPECT_EQ(one.names().size(), 4u);
  EXPECT_TRUE(at::equal(one.view("w"), big));
  w.wait();
  EXPECT_TRUE(at::equal(Checkpoint::open(d.path + "/two").view("s"), at::ones({4})));
}

TEST(BackgroundWriter, ErrorSurfacesAtWaitOnce) {
  TempDir d;
  std::ofstream(d.file("blocker")) << "a file, not a folder";
  IoPool pool(2);
  BackgroundWriter w(pool);
  const std::string bad = d.file("blocker") + "/ckpt";
  w.save(bad, {{"a", at::ones({2})}});
  expect_input_error([&] { w.wait(); }, {bad});
  EXPECT_NO_THROW(w.wait());  // collected once
  // An error nobody waited for is raised by the next save(), which then starts nothing.
  w.save(bad, {{"a", at::ones({2})}});
  expect_input_error([&] { w.save(d.path + "/good", {{"a", at::ones({2})}}); }, {bad});
  EXPECT_FALSE(std::filesystem::exists(d.path + "/good"));
  w.save(d.path + "/good", {{"a", at::ones({2})}});
  w.wait();
  EXPECT_TRUE(std::filesystem::exists(d.path + "/good/model.safetensors"));
}

}  // namespace
}  // namespace zoff
