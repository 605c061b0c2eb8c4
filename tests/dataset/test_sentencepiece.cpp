// tokenizer.model read by zoff itself, against ids and decodes made by the real SentencePiece library.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "tests/dataset/test_util.h"
#include "zoff/tokenizer.h"

namespace zoff {
namespace {

const std::string kSpm = std::string(ZOFF_SOURCE_DIR) + "/tests/dataset/spm";

nlohmann::json golden() {
  std::ifstream f(kSpm + "/golden.json");
  return nlohmann::json::parse(f);
}

// A folder holding one of the fixture models as tokenizer.model.
std::unique_ptr<Tokenizer> load_variant(const test::TempDir& dir, const std::string& name) {
  std::filesystem::copy_file(kSpm + "/" + name + ".model", dir.file("tokenizer.model"),
                             std::filesystem::copy_options::overwrite_existing);
  return load_tokenizer(dir.path());
}

class SpmGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(SpmGolden, EncodeAndDecodeMatchTheLibrary) {
  test::TempDir dir;
  auto tok = load_variant(dir, GetParam());
  const auto g = golden()[GetParam()];
  EXPECT_EQ(tok->vocab_size(), g["vocab_size"].get<int64_t>());
  EXPECT_EQ(tok->bos_id(), g["bos"].get<int64_t>());
  EXPECT_EQ(tok->eos_id(), g["eos"].get<int64_t>());
  EXPECT_EQ(tok->unk_id(), g["unk"].get<int64_t>());
  EXPECT_TRUE(tok->add_bos());
  ASSERT_GE(g["cases"].size(), 8u);
  for (const auto& c : g["cases"]) {
    std::string text = c["text"].get<std::string>();
    auto ids = c["ids"].get<std::vector<int64_t>>();
    EXPECT_EQ(tok->encode(text), ids) << GetParam() << ": " << text;
    EXPECT_EQ(tok->decode(ids), c["decoded"].get<std::string>()) << GetParam() << ": " << text;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, SpmGolden, ::testing::Values("llama_like", "plain"));

TEST(Spm, ControlTokensAndLookups) {
  test::TempDir dir;
  auto tok = load_variant(dir, "llama_like");
  EXPECT_EQ(tok->token_to_id("<s>"), 1);
  EXPECT_EQ(tok->token_to_id("<sep>"), 3);
  EXPECT_FALSE(tok->token_to_id("no such piece").has_value());
  EXPECT_EQ(tok->id_to_token(1), "<s>");
  std::vector<int64_t> ids = tok->encode("The movie");
  ids.insert(ids.begin(), 1);
  EXPECT_EQ(tok->decode(ids, /*skip_special_tokens=*/true), "The movie");
  EXPECT_EQ(tok->decode(ids).rfind("<s>", 0), 0u);
  EXPECT_THROW(tok->decode({tok->vocab_size()}), Error);
  // tokenizer_config.json overrides add_bos and names pad.
  dir.write("tokenizer_config.json", R"({"add_bos_token": false, "pad_token": "</s>"})");
  auto tok2 = load_tokenizer(dir.path());
  EXPECT_FALSE(tok2->add_bos());
  EXPECT_EQ(tok2->pad_id(), 2);
}

TEST(Spm, RoundTripWithByteFallback) {
  test::TempDir dir;
  auto tok = load_variant(dir, "llama_like");
  for (std::string s : {"Hello\tworld\n", "na\xC3\xAFve \xF0\x9F\x98\x80 caf\xC3\xA9", "a  b   c", "x"}) {
    EXPECT_EQ(tok->decode(tok->encode(s)), s);
  }
}

TEST(Spm, BadModelFiles) {
  test::TempDir dir;
  dir.write("tokenizer.model", std::string("\x0a\xff\xff\xff\xff\x0f", 6));
  test::expect_input_error([&] { load_tokenizer(dir.path()); }, {"tokenizer.model", "not a valid SentencePiece model"});
  // A Unigram model: one piece and trainer_spec.model_type = 1.
  std::string unigram = std::string("\x0a\x07\x0a\x05<unk>", 9) + std::string("\x12\x02\x18\x01", 4);
  dir.write("tokenizer.model", unigram);
  test::expect_input_error([&] { load_tokenizer(dir.path()); }, {"tokenizer.model", "trainer_spec.model_type", "UNIGRAM"});
  // A BPE model whose only piece is NORMAL: no UNKNOWN piece.
  std::string no_unk = std::string("\x0a\x03\x0a\x01x", 5) + std::string("\x12\x02\x18\x02", 4);
  dir.write("tokenizer.model", no_unk);
  test::expect_input_error([&] { load_tokenizer(dir.path()); }, {"tokenizer.model", "UNKNOWN"});
  // An unsupported tokenizer.json next to tokenizer.model: the model file is used.
  std::filesystem::copy_file(kSpm + "/plain.model", dir.file("tokenizer.model"),
                             std::filesystem::copy_options::overwrite_existing);
  dir.write("tokenizer.json", R"({"model": {"type": "BPE", "byte_fallback": true, "vocab": {}, "merges": []},
                                  "pre_tokenizer": null})");
  EXPECT_NE(load_tokenizer(dir.path())->describe().find("SentencePiece"), std::string::npos);
}

}  // namespace
}  // namespace zoff
