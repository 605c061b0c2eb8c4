// Tests for Checkpoint and the writers: round trips of every dtype, conversions, sharding, errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io_test_util.h"
#include "zoff/safetensors.h"

namespace zoff {
namespace {

namespace fs = std::filesystem;
using iotest::expect_input_error;
using iotest::TempDir;
using Named = std::vector<std::pair<std::string, at::Tensor>>;

bool same_bytes(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor x = a.contiguous(), y = b.contiguous();
  return x.numel() == y.numel() && x.element_size() == y.element_size() &&
         std::memcmp(x.data_ptr(), y.data_ptr(), x.numel() * x.element_size()) == 0;
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  for (auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Checkpoint, RoundTripEveryDtypeBitExact) {
  TempDir d;
  at::manual_seed(1);
  at::Tensor f32 = at::randn({3, 5});
  // bf16/f16 from raw random bits (NaN payloads included): the bytes must come back unchanged.
  at::Tensor bf16 = at::randint(-32768, 32767, {7, 3}, at::kShort).view(at::kBFloat16);
  at::Tensor f16 = at::randint(-32768, 32767, {4, 4}, at::kShort).view(at::kHalf);
  at::Tensor i64 = at::randint(-(int64_t(1) << 40), int64_t(1) << 40, {6}, at::kLong);
  at::Tensor i32 = at::randint(-100000, 100000, {2, 3}, at::kInt);
  at::Tensor u8 = at::randint(0, 256, {9}, at::kByte);
  at::Tensor b = at::randint(0, 2, {5}, at::kByte).to(at::kBool);
  at::Tensor f8 = at::arange(256, at::kInt).to(at::kByte).view({16, 16});
  at::Tensor scalar = at::full({}, 2.5f);
  at::Tensor empty = at::empty({0, 4});
  const std::string p = d.file("all.safetensors");
  write_safetensors_raw(p,
                        {{"f32", f32, DType::F32}, {"bf16", bf16, DType::BF16},
                         {"f16", f16, DType::F16}, {"i64", i64, DType::I64},
                         {"i32", i32, DType::I32}, {"u8", u8, DType::U8},
                         {"bool", b, DType::BOOL}, {"f8", f8, DType::F8_E4M3},
                         {"scalar", scalar, DType::F32}, {"empty", empty, DType::F32}},
                        {{"format", "pt"}, {"note", "hi"}});
  auto f = SafetensorsFile::open(p);
  EXPECT_EQ(f->metadata().at("note"), "hi");
  // The header is space-padded so the data section starts 8-byte aligned.
  uint64_t n = 0;
  std::ifstream(p, std::ios::binary).read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ((8 + n) % 8, 0u);

  Checkpoint c = Checkpoint::open(p);
  const std::pair<const char*, at::Tensor> expect[] = {
      {"f32", f32}, {"bf16", bf16}, {"f16", f16}, {"i64", i64}, {"i32", i32},
      {"u8", u8},   {"bool", b},    {"f8", f8},   {"scalar", scalar}, {"empty", empty}};
  for (const auto& [name, t] : expect) {
    at::Tensor v = c.view(name);
    EXPECT_EQ(v.sizes(), t.sizes()) << name;
    EXPECT_EQ(v.scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(same_bytes(v, t)) << name;
  }
  EXPECT_EQ(c.info("f8").dtype, DType::F8_E4M3);
  EXPECT_EQ(c.info("bf16").dtype, DType::BF16);
  // The plain writer derives dtypes from the tensors; bf16 survives it bit for bit too.
  write_safetensors(d.file("b.safetensors"), {{"bf16", bf16}, {"bool", b}});
  Checkpoint c2 = Checkpoint::open(d.file("b.safetensors"));
  EXPECT_EQ(c2.info("bool").dtype, DType::BOOL);
  EXPECT_TRUE(same_bytes(c2.view("bf16"), bf16));
  EXPECT_TRUE(same_bytes(c2.load("bf16", {7, 3}, at::kBFloat16), bf16));
}

TEST(Checkpoint, Bf16WidenedAndNarrowedIsExact) {
  TempDir d;
  at::Tensor x = at::randn({1000}).to(at::kBFloat16);  // finite values only
  write_safetensors(d.file("a.safetensors"), {{"x", x}});
  Checkpoint c = Checkpoint::open(d.file("a.safetensors"));
  at::Tensor f = c.load("x", {1000}, at::kFloat);
  EXPECT_TRUE(same_bytes(f.to(at::kBFloat16), x));
  EXPECT_TRUE(at::equal(f, x.to(at::kFloat)));
}

TEST(Checkpoint, F8E4M3Decoding) {
  TempDir d;
  at::Tensor bytes = at::arange(256, at::kInt).to(at::kByte);
  write_safetensors_raw(d.file("a.safetensors"), {{"q", bytes, DType::F8_E4M3}});
  Checkpoint c = Checkpoint::open(d.file("a.safetensors"));
  at::Tensor f = c.load("q", {256}, at::kFloat);
  const float* v = f.data_ptr<float>();
  // Hand-decoded e4m3fn values: s.eeee.mmm with bias 7.
  EXPECT_EQ(v[0x00], 0.0f);
  EXPECT_TRUE(std::signbit(v[0x80]) && v[0x80] == 0.0f);  // -0
  EXPECT_EQ(v[0x01], 0.001953125f);                        // smallest subnormal 2^-9
  EXPECT_EQ(v[0x07], 7.0f / 512.0f);                       // largest subnormal 7/8 * 2^-6
  EXPECT_EQ(v[0x08], 0.015625f);                           // smallest normal 2^-6
  EXPECT_EQ(v[0x38], 1.0f);
  EXPECT_EQ(v[0x3C], 1.5f);
  EXPECT_EQ(v[0x40], 2.0f);
  EXPECT_EQ(v[0xC0], -2.0f);
  EXPECT_EQ(v[0x7E], 448.0f);  // the largest finite value
  EXPECT_EQ(v[0xFE], -448.0f);
  EXPECT_TRUE(std::isnan(v[0x7F]) && std::isnan(v[0xFF]));
  EXPECT_EQ(v[0x78], 256.0f);  // 0.1111.000: e=15 is a normal exponent in e4m3fn
  // Exact in half and bfloat16 as well; raw bytes come back as kByte.
  at::Tensor h = c.load("q", {256}, at::kHalf).to(at::kFloat);
  at::Tensor bf = c.load("q", {256}, at::kBFloat16).to(at::kFloat);
  at::Tensor finite = f.isnan().logical_not();
  EXPECT_TRUE(at::equal(h.masked_select(finite), f.masked_select(finite)));
  EXPECT_TRUE(at::equal(bf.masked_select(finite), f.masked_select(finite)));
  EXPECT_TRUE(at::equal(c.load("q", {256}, at::kByte), bytes));
  EXPECT_EQ(c.view("q").scalar_type(), at::kByte);
  // A range decode lands at the right offset.
  at::Tensor part = at::empty({8}, at::kFloat);
  c.load_range_into("q", 0x38, part);
  EXPECT_TRUE(at::equal(part, f.narrow(0, 0x38, 8)));
}

TEST(Checkpoint, LoadConvertsAndLoadIntoFillsASlice) {
  TempDir d;
  at::Tensor w = at::randn({4, 6});
  at::Tensor ids = at::arange(5, at::kLong);
  write_safetensors(d.file("a.safetensors"), {{"w", w}, {"ids", ids}});
  Checkpoint c = Checkpoint::open(d.file("a.safetensors"));
  EXPECT_TRUE(at::equal(c.load("w", {4, 6}, at::kBFloat16), w.to(at::kBFloat16)));
  EXPECT_TRUE(at::equal(c.load("w", {4, 6}, at::kHalf), w.to(at::kHalf)));
  EXPECT_TRUE(at::equal(c.load("ids", {5}, at::kFloat), ids.to(at::kFloat)));
  // Round-to-nearest-even on exact ties, as ATen rounds: 1 + 2^-8 -> 1, 1 + 3*2^-8 -> 1 + 2^-6;
  // and every pair of float types gives the bits .to() gives.
  at::Tensor ties = at::tensor({1.0f + 1.0f / 256, 1.0f + 3.0f / 256, -1.0f - 1.0f / 256, 65504.0f,
                                70000.0f, 1e-8f, 3e38f});
  at::Tensor h = at::randn({300}).to(at::kHalf), bf = at::randn({300}).to(at::kBFloat16);
  write_safetensors(d.file("b.safetensors"), {{"ties", ties}, {"h", h}, {"bf", bf}});
  Checkpoint c2 = Checkpoint::open(d.file("b.safetensors"));
  for (const char* n : {"ties", "h", "bf"})
    for (at::ScalarType to : {at::kFloat, at::kHalf, at::kBFloat16}) {
      at::Tensor src = c2.view(n);
      EXPECT_TRUE(same_bytes(c2.load(n, src.sizes().vec(), to), src.to(to))) << n << " -> " << to;
    }
  // load_into a region in the middle of a larger buffer (how block buffers are filled).
  at::Tensor buf = at::zeros({100}, at::kBFloat16);
  c.load_into("w", {4, 6}, buf.narrow(0, 10, 24));
  EXPECT_TRUE(at::equal(buf.narrow(0, 10, 24), w.to(at::kBFloat16).view({-1})));
  EXPECT_EQ(buf.narrow(0, 0, 10).abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(buf.narrow(0, 34, 66).abs().sum().item<float>(), 0.0f);
  at::Tensor same = at::empty({4, 6});
  c.load_into("w", {4, 6}, same);
  EXPECT_TRUE(at::equal(same, w));
}

TEST(Checkpoint, ViewOutlivesCheckpoint) {
  TempDir d;
  at::Tensor w = at::randn({64});
  write_safetensors(d.file("a.safetensors"), {{"w", w}});
  at::Tensor v;
  {
    Checkpoint c = Checkpoint::open(d.file("a.safetensors"));
    v = c.view("w");
  }
  // Overwriting the file (atomic rename) does not disturb the mapped old inode either.
  write_safetensors(d.file("a.safetensors"), {{"w", at::zeros({64})}});
  EXPECT_TRUE(at::equal(v, w));
}

TEST(CheckpointErrors, ShapeMismatchNamesFileTensorAndShapes) {
  TempDir d;
  write_safetensors(d.file("a.safetensors"), {{"w", at::zeros({4, 6})}});
  Checkpoint c = Checkpoint::open(d.file("a.safetensors"));
  expect_input_error([&] { c.load("w", {6, 4}, at::kFloat); },
                     {d.file("a.safetensors"), "'w'", "[4, 6]", "[6, 4]"});
  expect_input_error([&] { c.load_into("w", {24}, at::empty({24})); },
                     {d.file("a.safetensors"), "'w'", "[4, 6]", "[24]"});
  expect_input_error([&] { c.view("nope"); }, {d.file("a.safetensors"), "'nope'"});
  EXPECT_FALSE(c.has("nope"));
}

TEST(CheckpointErrors, FolderWithoutCheckpoint) {
  TempDir d;
  expect_input_error([&] { Checkpoint::open(d.path); },
                     {d.path, "model.safetensors", "model.safetensors.index.json"});
  expect_input_error([&] { Checkpoint::open(d.file("missing")); }, {d.file("missing")});
}

TEST(Checkpoint, OpensEveryFixture) {
  for (const char* name : {"opt-tiny", "opt-tiny-postln-proj", "llama-tiny", "qwen2-tiny"}) {
    Checkpoint c = Checkpoint::open(std::string(ZOFF_TEST_DATA) + "/" + name + "/model");
    EXPECT_GT(c.names().size(), 20u) << name;
    for (const std::string& n : c.names()) EXPECT_EQ(c.info(n).dtype, DType::F32);
  }
}

Named some_tensors(int n, int64_t elems) {
  Named out;
  for (int i = 0; i < n; ++i)
    out.push_back({"layer." + std::to_string(i) + ".w", at::randn({elems})});
  return out;
}

TEST(Checkpoint, ShardedWriteAndRead) {
  TempDir d;
  Named t = some_tensors(5, 100);  // 400 bytes each
  write_checkpoint(d.path, t, 1000);  // 2 tensors a shard -> 3 shards
  EXPECT_EQ(files_in(d.path),
            (std::vector<std::string>{"model-00001-of-00003.safetensors",
                                      "model-00002-of-00003.safetensors",
                                      "model-00003-of-00003.safetensors",
                                      "model.safetensors.index.json"}));
  std::ifstream in(d.file("model.safetensors.index.json"));
  nlohmann::json idx = nlohmann::json::parse(in);
  EXPECT_EQ(idx["metadata"]["total_size"], 2000);
  EXPECT_EQ(idx["weight_map"]["layer.4.w"], "model-00003-of-00003.safetensors");
  Checkpoint c = Checkpoint::open(d.path);
  EXPECT_EQ(c.names().size(), 5u);
  for (const auto& [n, v] : t) EXPECT_TRUE(at::equal(c.load(n, {100}, at::kFloat), v)) << n;
  EXPECT_NE(c.file_of("layer.0.w"), c.file_of("layer.2.w"));

  // Small enough: one model.safetensors.
  TempDir d2;
  write_checkpoint(d2.path, t, 2000);
  EXPECT_EQ(files_in(d2.path), (std::vector<std::string>{"model.safetensors"}));
  // A tensor bigger than a shard gets a shard of its own.
  TempDir d3;
  write_checkpoint(d3.path, {{"a", at::zeros({10})}, {"big", at::zeros({1000})}, {"c", at::zeros({10})}}, 100);
  Checkpoint c3 = Checkpoint::open(d3.path);
  EXPECT_NE(c3.file_of("a"), c3.file_of("big"));
  EXPECT_NE(c3.file_of("big"), c3.file_of("c"));
}

TEST(Checkpoint, OverwriteNeverMixesOldAndNewShards) {
  TempDir d;
  Named a = some_tensors(4, 100), b = some_tensors(4, 100);
  write_checkpoint(d.path, a, 800);
  write_checkpoint(d.path, b, 800);  // same shard names: the new shards must not replace old ones in place
  Checkpoint c = Checkpoint::open(d.path);
  for (const auto& [n, v] : b) EXPECT_TRUE(at::equal(c.load(n, {100}, at::kFloat), v)) << n;
  auto files = files_in(d.path);
  EXPECT_EQ(files.size(), 3u);  // 2 new shards + index; the old shards are gone
  for (const auto& f : files) EXPECT_EQ(f.find(".tmp"), std::string::npos) << f;
  // Back to a single file: the index (which would shadow it) and the shards are removed.
  write_checkpoint(d.path, a, int64_t(1) << 30);
  EXPECT_EQ(files_in(d.path), (std::vector<std::string>{"model.safetensors"}));
  Checkpoint c2 = Checkpoint::open(d.path);
  EXPECT_TRUE(at::equal(c2.load("layer.3.w", {100}, at::kFloat), a[3].second));
}

TEST(Checkpoint, FailedWriteKeepsTheOldFile) {
  TempDir d;
  write_safetensors(d.file("a.safetensors"), {{"w", at::ones({3})}});
  EXPECT_THROW(write_safetensors(d.file("a.safetensors"), {{"w", at::ones({3}, at::kDouble)}}), Error);
  EXPECT_THROW(write_safetensors_raw(d.file("a.safetensors"), {{"w", at::ones({3}), DType::F16}}), Error);
  EXPECT_TRUE(at::equal(Checkpoint::open(d.file("a.safetensors")).view("w"), at::ones({3})));
  EXPECT_EQ(files_in(d.path), (std::vector<std::string>{"a.safetensors"}));
  // Writing into a folder that cannot exist is an InputError naming it.
  expect_input_error([&] { write_checkpoint(d.file("a.safetensors") + "/sub", {{"w", at::ones({3})}}); },
                     {d.file("a.safetensors") + "/sub"});
}

TEST(CheckpointErrors, ShardedIndexProblems) {
  TempDir d;
  write_checkpoint(d.path, some_tensors(4, 100), 800);
  const std::string index = d.file("model.safetensors.index.json");
  // A shard listed in the index is missing: both files are named.
  fs::rename(d.file("model-00002-of-00002.safetensors"), d.file("moved.safetensors"));
  expect_input_error([&] { Checkpoint::open(d.path); },
                     {index, "model-00002-of-00002.safetensors", d.file("model-00002-of-00002.safetensors")});
  // The index maps a tensor to a shard that does not hold it.
  fs::rename(d.file("moved.safetensors"), d.file("model-00002-of-00002.safetensors"));
  std::ifstream in(index);
  nlohmann::json j = nlohmann::json::parse(in);
  in.close();
  j["weight_map"]["ghost"] = "model-00001-of-00002.safetensors";
  std::ofstream(index) << j.dump();
  expect_input_error([&] { Checkpoint::open(d.path); },
                     {index, "'ghost'", d.file("model-00001-of-00002.safetensors")});
  std::ofstream(index) << R"({"metadata": {}})";
  expect_input_error([&] { Checkpoint::open(d.path); }, {index, "'weight_map'"});
  std::ofstream(index) << R"({"weight_map": {"a": 3}})";
  expect_input_error([&] { Checkpoint::open(d.path); }, {index, "'weight_map.a'"});
  std::ofstream(index) << "{oops";
  expect_input_error([&] { Checkpoint::open(d.path); }, {index, "not valid JSON"});
}

}  // namespace
}  // namespace zoff
