// Byte-level BPE on a small hand-written vocabulary: encodings worked out by hand, round trips.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <random>

#include "src/data/bpe_tokenizer.h"
#include "src/data/unicode.h"
#include "tests/dataset/test_util.h"
#include "zoff/tokenizer.h"

namespace zoff {
namespace {

using Ids = std::vector<int64_t>;
using nlohmann::json;

// The byte-level symbol of byte b ("Ġ" for ' ').
std::string sym(uint8_t b) {
  std::string s;
  unicode::append_utf8(s, byte_to_unicode()[b]);
  return s;
}

// Vocabulary: byte b has id b; merges 256.. as listed (rank = index); then added tokens.
const std::vector<std::pair<std::string, std::string>> kMerges = {
    {"h", "e"},   {"l", "l"},    {"he", "ll"}, {"hell", "o"}, {"\xC4\xA0", "w"},  // Ġ w
    {"o", "r"},   {"\xC4\xA0w", "or"}, {"l", "d"}, {"\xC4\xA0wor", "ld"}, {"\xC4\xA0", "\xC4\xA0"},
    {"1", "2"}};
constexpr int64_t kHello = 259, kSpaceWorld = 264, kTwoSpaces = 265, kTwelve = 266;
constexpr int64_t kEot = 267, kPad = 268, kMask = 269, kAb = 270;

json vocab_json() {
  json v = json::object();
  for (int b = 0; b < 256; ++b) v[sym(static_cast<uint8_t>(b))] = b;
  for (size_t i = 0; i < kMerges.size(); ++i) v[kMerges[i].first + kMerges[i].second] = 256 + static_cast<int64_t>(i);
  return v;
}

json added(const std::string& content, int64_t id, bool special, bool lstrip = false, bool single_word = false) {
  return {{"id", id},         {"content", content}, {"single_word", single_word}, {"lstrip", lstrip},
          {"rstrip", false},  {"normalized", false}, {"special", special}};
}

json tokenizer_json(const json& pre_tokenizer) {
  json merges = json::array();
  for (auto& [a, b] : kMerges) merges.push_back(a + " " + b);
  return {{"version", "1.0"},
          {"added_tokens", {added("<|endoftext|>", kEot, true), added("<pad>", kPad, true),
                            added("<mask>", kMask, true, /*lstrip=*/true), added("ab", kAb, false, false, true)}},
          {"normalizer", nullptr},
          {"pre_tokenizer", pre_tokenizer},
          {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}}},
          {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
          {"model",
           {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
            {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", vocab_json()},
            {"merges", merges}}}};
}

json gpt2_pre() {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
}

json qwen2_pre() {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"},
             {"pattern",
              {{"Regex",
                R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
             {"behavior", "Isolated"},
             {"invert", false}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}}}};
}

Ids bytes_of(const std::string& s) { return Ids(s.begin(), s.end()); }

class BpeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.write("tokenizer.json", tokenizer_json(gpt2_pre()).dump());
    tok_ = load_tokenizer(dir_.path());
  }
  test::TempDir dir_;
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(BpeTest, MergesByRank) {
  // "hello": he(0), ll(1) -> he|ll|o, hell(2), hello(3). " world": Ġw(4), or(5), Ġwor(6), ld(7), Ġworld(8).
  EXPECT_EQ(tok_->encode("hello world"), (Ids{kHello, kSpaceWorld}));
  // "held": he(0) then ld(7); no merge joins he|ld.
  EXPECT_EQ(tok_->encode("held"), (Ids{256, 263}));
  // "lll": both (l,l) pairs have rank 1; the leftmost is merged first.
  EXPECT_EQ(tok_->encode("lll"), (Ids{257, 'l'}));
  // "world" without the space: or(5), ld(7), nothing joins w|or|ld.
  EXPECT_EQ(tok_->encode("world"), (Ids{'w', 261, 263}));
}

TEST_F(BpeTest, Whitespace) {
  EXPECT_EQ(tok_->encode("hello  world"), (Ids{kHello, ' ', kSpaceWorld}));
  // "   x" splits as "  " + " x"; "  " is ĠĠ(9).
  EXPECT_EQ(tok_->encode("   x"), (Ids{kTwoSpaces, ' ', 'x'}));
  EXPECT_EQ(tok_->encode("hello\n\n"), (Ids{kHello, '\n', '\n'}));
  EXPECT_EQ(tok_->encode(" "), (Ids{' '}));
  EXPECT_EQ(tok_->encode(""), Ids{});
}

TEST_F(BpeTest, BytesWithoutMerges) {
  EXPECT_EQ(tok_->encode("\xC3\xB6"), (Ids{0xC3, 0xB6}));  // ö: two byte tokens
  EXPECT_EQ(tok_->encode("\xF0\x9F\x98\x80!"), (Ids{0xF0, 0x9F, 0x98, 0x80, '!'}));
  EXPECT_EQ(tok_->encode("a\xFF"), (Ids{'a', 0xFF}));  // invalid UTF-8 still encodes
  EXPECT_EQ(tok_->encode("12"), (Ids{kTwelve}));     // gpt2 keeps digit runs together
}

TEST_F(BpeTest, AddedTokensMatchFirst) {
  EXPECT_EQ(tok_->encode("hello<|endoftext|>world"), (Ids{kHello, kEot, 'w', 261, 263}));
  EXPECT_EQ(tok_->encode("<pad><|endoftext|>"), (Ids{kPad, kEot}));
  // An incomplete special token is ordinary text: "<|", "endoftext", "|" with no merges.
  EXPECT_EQ(tok_->encode("<|endoftext|"), bytes_of("<|endoftext|"));
  // BPE does not merge across an added token: "he" + <pad> + "llo".
  EXPECT_EQ(tok_->encode("he<pad>llo"), (Ids{256, kPad, 257, 'o'}));
  // <mask> has lstrip: it swallows the space before it.
  EXPECT_EQ(tok_->encode("hello <mask> world"), (Ids{kHello, kMask, kSpaceWorld}));
  // "ab" is single_word: it matches alone, not inside "cab".
  EXPECT_EQ(tok_->encode("ab cab"), (Ids{kAb, ' ', 'c', 'a', 'b'}));
}

TEST_F(BpeTest, DecodeAndLookups) {
  EXPECT_EQ(tok_->decode({kHello, kSpaceWorld}), "hello world");
  EXPECT_EQ(tok_->decode({kHello, kEot, kTwoSpaces}), "hello<|endoftext|>  ");
  EXPECT_EQ(tok_->decode({kHello, kEot, kTwoSpaces}, /*skip_special_tokens=*/true), "hello  ");
  EXPECT_EQ(tok_->decode({kAb}, true), "ab");  // not special: kept
  EXPECT_EQ(tok_->vocab_size(), 271);
  EXPECT_EQ(tok_->token_to_id("\xC4\xA0world"), kSpaceWorld);
  EXPECT_EQ(tok_->token_to_id("<pad>"), kPad);
  EXPECT_FALSE(tok_->token_to_id("nope").has_value());
  EXPECT_EQ(tok_->id_to_token(kHello), "hello");
  EXPECT_THROW(tok_->decode({271}), Error);
  EXPECT_THROW(tok_->decode({-1}), Error);
  // No config files: no bos/eos/pad; pad falls back to 0.
  EXPECT_EQ(tok_->bos_id(), -1);
  EXPECT_EQ(tok_->pad_id(), 0);
  EXPECT_FALSE(tok_->add_bos());
}

TEST_F(BpeTest, RoundTripsVariedText) {
  const std::vector<std::string> frags = {"hello", " world", "  ", "\n", "\t", "\r\n", "I'm", " it's", "12",
                                          "3.5", "!!", "\xC3\xA9t\xC3\xA9", " \xD0\xBC\xD0\xB8\xD1\x80",
                                          "\xE6\x97\xA5\xE6\x9C\xAC", "\xF0\x9F\x98\x80", "<|endoftext|>",
                                          "<pad>", " <mask>", "ab", "\xC2\xA0", "'S", "$x", "e\xCC\x81"};
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    std::string s;
    int n = static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) s += frags[rng() % frags.size()];
    std::string back = tok_->decode(tok_->encode(s));
    // lstrip on <mask> drops the whitespace before it; everything else round-trips exactly.
    if (s.find(" <mask>") == std::string::npos) {
      EXPECT_EQ(back, s);
    }
  }
  for (int trial = 0; trial < 100; ++trial) {  // arbitrary bytes, mostly invalid UTF-8
    std::string s;
    int n = static_cast<int>(rng() % 20);
    for (int i = 0; i < n; ++i) s += static_cast<char>(rng() % 256);
    EXPECT_EQ(tok_->decode(tok_->encode(s)), s);
  }
}

TEST(BpeQwen2, SplitsDigitsAndKeepsLetterPrefix) {
  test::TempDir dir;
  dir.write("tokenizer.json", tokenizer_json(qwen2_pre()).dump());
  auto tok = load_tokenizer(dir.path());
  EXPECT_EQ(tok->encode("12"), (Ids{'1', '2'}));  // \p{N} one digit at a time: merge 1 2 never applies
  EXPECT_EQ(tok->encode("hello world"), (Ids{kHello, kSpaceWorld}));
  EXPECT_EQ(tok->encode("\tworld"), (Ids{'\t', 'w', 261, 263}));
  EXPECT_NE(tok->describe().find("qwen2"), std::string::npos);
}

TEST(BpeGpt2Files, VocabAndMergesWithConfig) {
  test::TempDir dir;
  json v = vocab_json();
  v["<|endoftext|>"] = kEot;
  dir.write("vocab.json", v.dump());
  std::string merges = "#version: 0.2\n";
  for (auto& [a, b] : kMerges) merges += a + " " + b + "\n";
  dir.write("merges.txt", merges);
  {
    auto tok = load_tokenizer(dir.path());
    // GPT2Tokenizer defaults: <|endoftext|> is bos, eos and unk, and is matched in text.
    EXPECT_EQ(tok->eos_id(), kEot);
    EXPECT_EQ(tok->bos_id(), kEot);
    EXPECT_EQ(tok->pad_id(), kEot);
    EXPECT_FALSE(tok->add_bos());
    EXPECT_EQ(tok->encode("hello world<|endoftext|>"), (Ids{kHello, kSpaceWorld, kEot}));
  }
  dir.write("tokenizer_config.json",
            R"({"add_bos_token": true, "bos_token": {"content": "<|endoftext|>"}, "pad_token": "<pad>"})");
  dir.write("added_tokens.json", R"({"<pad>": 268})");
  auto tok = load_tokenizer(dir.path());
  EXPECT_TRUE(tok->add_bos());
  EXPECT_EQ(tok->pad_id(), kPad);
  EXPECT_EQ(tok->encode("a<pad>"), (Ids{'a', kPad}));
  EXPECT_EQ(tok->decode({kPad, kHello}, true), "hello");
}

TEST(BpeConfig, TemplatePostProcessorMeansBos) {
  test::TempDir dir;
  json j = tokenizer_json(gpt2_pre());
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", {{{"SpecialToken", {{"id", "<|endoftext|>"}, {"type_id", 0}}}},
                                     {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}};
  dir.write("tokenizer.json", j.dump());
  dir.write("special_tokens_map.json", R"({"eos_token": "<|endoftext|>", "pad_token": "<pad>"})");
  auto tok = load_tokenizer(dir.path());
  EXPECT_TRUE(tok->add_bos());
  EXPECT_EQ(tok->bos_id(), kEot);
  EXPECT_EQ(tok->eos_id(), kEot);
  EXPECT_EQ(tok->pad_id(), kPad);
  EXPECT_EQ(tok->encode("hello"), (Ids{kHello}));  // encode never adds BOS itself
}

TEST(BpeConfig, AddPrefixSpace) {
  test::TempDir dir;
  json pre = gpt2_pre();
  pre["add_prefix_space"] = true;
  dir.write("tokenizer.json", tokenizer_json(pre).dump());
  auto tok = load_tokenizer(dir.path());
  EXPECT_EQ(tok->encode("world"), (Ids{kSpaceWorld}));
  EXPECT_EQ(tok->encode(" world"), (Ids{kSpaceWorld}));  // already starts with a space
}

TEST(BpeErrors, NameFileAndField) {
  test::TempDir dir;
  auto write_and_load = [&](const json& j) {
    dir.write("tokenizer.json", j.dump());
    return load_tokenizer(dir.path());
  };
  json bad_merge = tokenizer_json(gpt2_pre());
  bad_merge["model"]["merges"][3] = "hell zz";
  test::expect_input_error([&] { write_and_load(bad_merge); }, {"tokenizer.json", "model.merges[3]", "\"zz\""});

  json unigram = tokenizer_json(gpt2_pre());
  unigram["model"]["type"] = "Unigram";
  test::expect_input_error([&] { write_and_load(unigram); }, {"tokenizer.json", "model.type", "Unigram"});

  json regex = tokenizer_json(qwen2_pre());
  regex["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\w+";
  test::expect_input_error([&] { write_and_load(regex); },
                           {"tokenizer.json", "pre_tokenizer.pretokenizers[0].pattern.Regex"});

  json metaspace = tokenizer_json({{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}});
  test::expect_input_error([&] { write_and_load(metaspace); }, {"pre_tokenizer.type", "Metaspace"});

  json no_byte = tokenizer_json(gpt2_pre());
  no_byte["model"]["vocab"].erase(sym(0x07));
  test::expect_input_error([&] { write_and_load(no_byte); }, {"tokenizer.json", "byte 0x07"});

  json dup = tokenizer_json(gpt2_pre());
  dup["model"]["vocab"]["extra"] = 5;
  test::expect_input_error([&] { write_and_load(dup); }, {"ids must be unique", "id 5"});

  dir.write("tokenizer.json", "{\"model\": ");
  test::expect_input_error([&] { load_tokenizer(dir.path()); }, {"tokenizer.json", "invalid JSON"});

  dir.write("tokenizer.json", tokenizer_json(gpt2_pre()).dump());
  dir.write("tokenizer_config.json", R"({"eos_token": "</s>"})");
  test::expect_input_error([&] { load_tokenizer(dir.path()); }, {"tokenizer_config.json: eos_token", "</s>"});
}

TEST(BpeErrors, MissingFilesAndMergesLines) {
  test::TempDir dir;
  test::expect_input_error([&] { load_tokenizer(dir.path()); }, {"no tokenizer found", "tokenizer.json"});
  test::expect_input_error([&] { load_tokenizer(dir.file("absent")); }, {"does not exist"});
  dir.write("vocab.json", vocab_json().dump());
  test::expect_input_error([&] { load_tokenizer(dir.path()); }, {"merges.txt"});
  dir.write("merges.txt", "#version: 0.2\nh e\nl l x\n");
  test::expect_input_error([&] { load_tokenizer(dir.path()); }, {"merges.txt:3", "l l x"});
}

}  // namespace
}  // namespace zoff
