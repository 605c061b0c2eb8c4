// Tests for SafetensorsFile: reading the fixtures and rejecting every kind of malformed file.
#include <gtest/gtest.h>

#include <fstream>

#include "io_test_util.h"
#include "zoff/safetensors.h"

namespace zoff {
namespace {

using iotest::expect_input_error;
using iotest::TempDir;

// A file made of an 8-byte length, `header` and `data_bytes` zero bytes.
void write_raw(const std::string& path, const std::string& header, size_t data_bytes,
               int64_t length_override = -1) {
  std::ofstream out(path, std::ios::binary);
  uint64_t n = length_override >= 0 ? uint64_t(length_override) : header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << std::string(data_bytes, '\0');
}

TEST(Safetensors, ReadsFixture) {
  auto f = SafetensorsFile::open(ZOFF_TEST_DATA "/opt-tiny/model/model.safetensors");
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->tensors().size(), 52u);
  const TensorInfo* t = f->find("model.decoder.embed_tokens.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, DType::F32);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(t->numel(), 512 * 64);
  EXPECT_EQ(t->nbytes, 512 * 64 * 4);
  EXPECT_EQ(f->find("lm_head.weight"), nullptr);  // tied: HF does not store it
  // tensors() is in data-offset order and the ranges tile without overlap.
  for (size_t i = 1; i < f->tensors().size(); ++i)
    EXPECT_GE(f->tensors()[i].offset, f->tensors()[i - 1].offset + f->tensors()[i - 1].nbytes);
}

TEST(Safetensors, EmptyAndScalarTensors) {
  TempDir d;
  write_raw(d.file("a.safetensors"),
            R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
            R"("e":{"dtype":"F16","shape":[0,3],"data_offsets":[4,4]}})", 4);
  auto f = SafetensorsFile::open(d.file("a.safetensors"));
  EXPECT_EQ(f->find("s")->numel(), 1);
  EXPECT_EQ(f->find("e")->numel(), 0);
  EXPECT_TRUE(f->metadata().empty());
}

TEST(SafetensorsErrors, MissingFile) {
  expect_input_error([] { SafetensorsFile::open("/nonexistent/x.safetensors"); },
                     {"/nonexistent/x.safetensors"});
}

TEST(SafetensorsErrors, ShorterThan8Bytes) {
  TempDir d;
  std::ofstream(d.file("short.safetensors")) << "abc";
  expect_input_error([&] { SafetensorsFile::open(d.file("short.safetensors")); },
                     {d.file("short.safetensors"), "3 bytes", "8-byte"});
}

TEST(SafetensorsErrors, HeaderLengthPastEnd) {
  TempDir d;
  write_raw(d.file("a.safetensors"), "{}", 0, 1000);
  expect_input_error([&] { SafetensorsFile::open(d.file("a.safetensors")); },
                     {d.file("a.safetensors"), "header length 1000", "past the end"});
}

TEST(SafetensorsErrors, InvalidJson) {
  TempDir d;
  write_raw(d.file("a.safetensors"), R"({"x": {"dtype": )", 0);
  expect_input_error([&] { SafetensorsFile::open(d.file("a.safetensors")); },
                     {d.file("a.safetensors"), "not valid JSON"});
  write_raw(d.file("b.safetensors"), "[1, 2]", 0);
  expect_input_error([&] { SafetensorsFile::open(d.file("b.safetensors")); },
                     {d.file("b.safetensors"), "JSON object"});
}

TEST(SafetensorsErrors, UnknownDtype) {
  TempDir d;
  write_raw(d.file("a.safetensors"), R"({"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", 8);
  expect_input_error([&] { SafetensorsFile::open(d.file("a.safetensors")); },
                     {d.file("a.safetensors"), "tensor 'w'", "'dtype'", "F64"});
}

TEST(SafetensorsErrors, MissingOrMistypedFields) {
  TempDir d;
  const std::string p = d.file("a.safetensors");
  write_raw(p, R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4);
  expect_input_error([&] { SafetensorsFile::open(p); }, {p, "tensor 'w'", "'shape' is missing"});
  write_raw(p, R"({"w":{"dtype":"F32","shape":[1]}})", 4);
  expect_input_error([&] { SafetensorsFile::open(p); }, {p, "tensor 'w'", "'data_offsets' is missing"});
  write_raw(p, R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4);
  expect_input_error([&] { SafetensorsFile::open(p); }, {p, "tensor 'w'", "'dtype' is missing"});
  write_raw(p, R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4);
  expect_input_error([&] { SafetensorsFile::open(p); }, {p, "tensor 'w'", "'shape'", "non-negative"});
  write_raw(p, R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4);
  expect_input_error([&] { SafetensorsFile::open(p); }, {p, "tensor 'w'", "'shape'"});
  write_raw(p, R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4);
  expect_input_error([&] { SafetensorsFile::open(p); }, {p, "tensor 'w'", "'data_offsets'"});
  write_raw(p, R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", 4);
  expect_input_error([&] { SafetensorsFile::open(p); }, {p, "tensor 'w'", "'data_offsets'", "begin > end"});
  write_raw(p, R"({"w":[1,2]})", 4);
  expect_input_error([&] { SafetensorsFile::open(p); }, {p, "tensor 'w'", "JSON object"});
}

TEST(SafetensorsErrors, ShapeDoesNotMatchByteRange) {
  TempDir d;
  const std::string p = d.file("a.safetensors");
  write_raw(p, R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", 16);
  expect_input_error([&] { SafetensorsFile::open(p); },
                     {p, "tensor 'w'", "'shape' [2, 2]", "needs 16 bytes", "span 12"});
  // A shape whose byte size overflows int64 is a mismatch too, not a wrap-around.
  write_raw(p, R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0);
  expect_input_error([&] { SafetensorsFile::open(p); }, {p, "tensor 'w'", "'shape'"});
}

TEST(SafetensorsErrors, OffsetsOutsideTheFile) {
  TempDir d;
  const std::string p = d.file("a.safetensors");
  write_raw(p, R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8);
  expect_input_error([&] { SafetensorsFile::open(p); },
                     {p, "tensor 'w'", "'data_offsets' [0, 16]", "end of the data section (8 bytes)"});
}

TEST(SafetensorsErrors, OverlappingTensors) {
  TempDir d;
  const std::string p = d.file("a.safetensors");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
               R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12);
  expect_input_error([&] { SafetensorsFile::open(p); }, {p, "'a'", "'b'", "overlap"});
  // An empty tensor between two overlapping ones must not hide the overlap.
  write_raw(p, R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
               R"("e":{"dtype":"F32","shape":[0],"data_offsets":[8,8]},)"
               R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})", 20);
  expect_input_error([&] { SafetensorsFile::open(p); }, {p, "'a'", "'b'", "overlap"});
}

TEST(SafetensorsErrors, BadMetadata) {
  TempDir d;
  const std::string p = d.file("a.safetensors");
  write_raw(p, R"({"__metadata__":{"format":1}})", 0);
  expect_input_error([&] { SafetensorsFile::open(p); }, {p, "'__metadata__.format'", "string"});
  write_raw(p, R"({"__metadata__":"pt"})", 0);
  expect_input_error([&] { SafetensorsFile::open(p); }, {p, "'__metadata__'"});
}

}  // namespace
}  // namespace zoff
