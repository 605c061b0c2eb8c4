// The shipped demo task: the demo BPE reproduces the Python trainer's encodings; the splits load cleanly.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <set>

#include "zoff/dataset.h"
#include "zoff/tokenizer.h"

namespace zoff {
namespace {

const std::string kDemo = std::string(ZOFF_SOURCE_DIR) + "/configs/data/sentiment";

TEST(DemoTokenizer, MatchesPythonGolden) {
  auto tok = load_tokenizer(kDemo + "/tokenizer");
  std::ifstream f(std::string(ZOFF_SOURCE_DIR) + "/tests/dataset/golden_demo_tokens.json");
  ASSERT_TRUE(f.good());
  nlohmann::json golden = nlohmann::json::parse(f);
  EXPECT_EQ(tok->vocab_size(), golden["vocab_size"].get<int64_t>());
  ASSERT_GE(golden["cases"].size(), 10u);
  for (const auto& c : golden["cases"]) {
    std::string text = c["text"].get<std::string>();
    std::vector<int64_t> ids = c["ids"].get<std::vector<int64_t>>();
    EXPECT_EQ(tok->encode(text), ids) << "text: " << text;
    EXPECT_EQ(tok->decode(ids), text);
  }
  EXPECT_EQ(tok->pad_id(), 0);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 1);
  EXPECT_TRUE(tok->add_bos());
}

TEST(DemoData, SplitsLoadBalancedAndDisjoint) {
  auto tok = load_tokenizer(kDemo + "/tokenizer");
  Dataset train = load_dataset(kDemo + "/train.jsonl", tok.get());
  Dataset test = load_dataset(kDemo + "/test.jsonl", tok.get());
  ASSERT_EQ(train.size(), 400);
  ASSERT_EQ(test.size(), 100);
  auto check = [&](const Dataset& d, std::set<std::vector<int64_t>>& prompts) {
    int64_t positives = 0;
    for (int64_t i = 0; i < d.size(); ++i) {
      const Example& e = d[i];
      ASSERT_EQ(e.rows.size(), 2u);
      positives += e.label;
      // " negative" / " positive" are one token each in the demo vocabulary: one scored target,
      // and both rows share the prompt.
      for (const auto& r : e.rows) {
        int64_t scored = 0;
        for (int64_t l : r.labels) scored += l != -100;
        EXPECT_EQ(scored, 1);
        EXPECT_EQ(r.input_ids[0], tok->bos_id());
      }
      std::vector<int64_t> prompt(e.rows[0].input_ids.begin(), e.rows[0].input_ids.end() - 1);
      EXPECT_EQ(prompt, std::vector<int64_t>(e.rows[1].input_ids.begin(), e.rows[1].input_ids.end() - 1));
      prompts.insert(prompt);
    }
    EXPECT_EQ(positives * 2, d.size());
  };
  std::set<std::vector<int64_t>> train_prompts, test_prompts;
  check(train, train_prompts);
  check(test, test_prompts);
  EXPECT_EQ(train_prompts.size(), 400u);
  for (const auto& p : test_prompts) EXPECT_EQ(train_prompts.count(p), 0u) << "a test review is also in train";
  EXPECT_LE(train.max_row_length(), 40);
}

TEST(DemoData, CorpusSizeAndBlocks) {
  auto tok = load_tokenizer(kDemo + "/tokenizer");
  DataOptions o;
  o.max_length = 64;
  Dataset corpus = load_dataset(kDemo + "/corpus.txt", tok.get(), o);
  EXPECT_EQ(corpus.format(), DatasetFormat::kCorpus);
  EXPECT_GT(corpus.size(), 200);  // ~110 KB of text
  for (int64_t i = 0; i + 1 < corpus.size(); ++i) ASSERT_EQ(corpus[i].rows[0].input_ids.size(), 64u);
}

}  // namespace
}  // namespace zoff
