// Dataset loading: rows and label masks per format, truncation, corpora, and errors naming file/line/field.
#include <gtest/gtest.h>

#include <tbb/global_control.h>

#include "tests/dataset/tiny_tokenizer.h"
#include "zoff/dataset.h"
#include "zoff/tokenizer.h"

namespace zoff {
namespace {

using Ids = std::vector<int64_t>;
constexpr int64_t X = -100;

Ids bytes(const std::string& s) {
  Ids v;
  for (unsigned char c : s) v.push_back(c);
  return v;
}
Ids cat(std::initializer_list<Ids> parts) {
  Ids out;
  for (auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

class DatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_tiny_tokenizer(tokdir_);
    tok_ = load_tokenizer(tokdir_.path());
  }
  Dataset load(const std::string& name, const std::string& content, DataOptions opts = {}) {
    return load_dataset(dir_.write(name, content), tok_.get(), opts);
  }
  void expect_error(const std::string& content, std::initializer_list<std::string> parts, DataOptions opts = {}) {
    test::expect_input_error([&] { load("bad.jsonl", content, opts); }, parts);
  }
  test::TempDir tokdir_, dir_;
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(DatasetTest, ClassificationRowsScoreOnlyCandidates) {
  std::string prompt = "Review: good\\nSentiment:";
  Dataset d = load("c.jsonl", "{\"prompt\": \"" + prompt + "\", \"candidates\": [\" negative\", \" positive\"], \"label\": 1}\n");
  ASSERT_EQ(d.format(), DatasetFormat::kClassification);
  ASSERT_EQ(d.size(), 1);
  const Example& e = d[0];
  EXPECT_EQ(e.label, 1);
  EXPECT_EQ(e.line, 1);
  ASSERT_EQ(e.rows.size(), 2u);
  Ids p = bytes("Review: good\nSentiment:");  // no merge applies inside the prompt
  Ids neg = bytes(" negative");
  Ids pos = {test::kTinyPos, 'i', 't', 'i', 'v', 'e'};
  EXPECT_EQ(e.rows[0].input_ids, cat({{test::kTinyEot}, p, neg}));
  EXPECT_EQ(e.rows[0].labels, cat({Ids(1 + p.size(), X), neg}));
  EXPECT_EQ(e.rows[1].input_ids, cat({{test::kTinyEot}, p, pos}));
  EXPECT_EQ(e.rows[1].labels, cat({Ids(1 + p.size(), X), pos}));
  EXPECT_EQ(d.num_rows(), 2);
  EXPECT_EQ(d.max_row_length(), static_cast<int64_t>(1 + p.size() + neg.size()));
}

TEST_F(DatasetTest, MergeAcrossBoundaryCountsAsCandidate) {
  // Prompt "x p" ends in " p"; with candidate "os" the text " pos" merges into one token, which
  // differs from the prompt's own last token " p" (258) and so is scored.
  Dataset d = load("c.jsonl", R"({"prompt": "x p", "candidates": ["os"], "label": 0})");
  EXPECT_EQ(d[0].rows[0].input_ids, (Ids{test::kTinyEot, 'x', test::kTinyPos}));
  EXPECT_EQ(d[0].rows[0].labels, (Ids{X, X, test::kTinyPos}));
}

TEST_F(DatasetTest, TextAndTokens) {
  Dataset t = load("t.jsonl", "{\"text\": \"hi there\"}\n\n  \n{\"text\": \"ok\"}\n");
  ASSERT_EQ(t.format(), DatasetFormat::kText);
  ASSERT_EQ(t.size(), 2);
  Ids want = cat({{test::kTinyEot}, bytes("hi there"), {test::kTinyEot}});
  EXPECT_EQ(t[0].rows[0].input_ids, want);
  EXPECT_EQ(t[0].rows[0].labels, want);
  EXPECT_EQ(t[1].line, 4);

  DataOptions no_specials;
  no_specials.add_bos = false;
  no_specials.add_eos = false;
  EXPECT_EQ(load("t.jsonl", "{\"text\": \"hi\"}\n", no_specials)[0].rows[0].input_ids, bytes("hi"));

  Dataset k = load("k.jsonl", "{\"input_ids\": [1, 2, 3], \"labels\": [-100, 2, 3]}\n{\"input_ids\": [5, 6]}\n");
  ASSERT_EQ(k.format(), DatasetFormat::kTokens);
  EXPECT_EQ(k[0].rows[0].input_ids, (Ids{1, 2, 3}));  // no bos added to pre-tokenized rows
  EXPECT_EQ(k[0].rows[0].labels, (Ids{X, 2, 3}));
  EXPECT_EQ(k[1].rows[0].labels, (Ids{5, 6}));

  DataOptions untok;
  untok.vocab_size = 4;
  std::string path = dir_.write("k2.jsonl", "{\"input_ids\": [1, 3]}\n");
  EXPECT_EQ(load_dataset(path, nullptr, untok)[0].rows[0].input_ids, (Ids{1, 3}));
  dir_.write("k2.jsonl", "{\"input_ids\": [1, 4]}\n");
  test::expect_input_error([&] { load_dataset(path, nullptr, untok); }, {"k2.jsonl:1", "\"input_ids\"[1]", "[0, 4)"});
}

TEST_F(DatasetTest, Truncation) {
  DataOptions o;
  o.max_length = 5;
  // Text: right by default.
  EXPECT_EQ(load("t.jsonl", R"({"text": "abcdefgh"})", o)[0].rows[0].input_ids,
            (Ids{test::kTinyEot, 'a', 'b', 'c', 'd'}));
  // Left keeps the bos.
  o.truncation = Truncation::kLeft;
  EXPECT_EQ(load("t.jsonl", R"({"text": "abcdefgh"})", o)[0].rows[0].input_ids,
            (Ids{test::kTinyEot, 'f', 'g', 'h', test::kTinyEot}));
  // Classification: left by default, the candidate survives.
  DataOptions c;
  c.max_length = 4;
  Dataset d = load("c.jsonl", R"({"prompt": "long prompt:", "candidates": [" ab"], "label": 0})", c);
  EXPECT_EQ(d[0].rows[0].input_ids, (Ids{test::kTinyEot, ' ', 'a', 'b'}));
  EXPECT_EQ(d[0].rows[0].labels, (Ids{X, ' ', 'a', 'b'}));
  // A candidate longer than max_length cannot be scored after right truncation.
  c.truncation = Truncation::kRight;
  test::expect_input_error([&] { load("c.jsonl", R"({"prompt": "long prompt:", "candidates": [" ab"], "label": 0})", c); },
                           {"c.jsonl:1", "\"candidates\"[0]", "no scored token", "max_length 4"});
}

TEST_F(DatasetTest, CorpusBlocks) {
  DataOptions o;
  o.max_length = 4;
  Dataset d = load("corpus.txt", "ab\n\ncdef\r\ng\n", o);
  ASSERT_EQ(d.format(), DatasetFormat::kCorpus);
  // Stream: a b EOT c d e f EOT g EOT; rows are bos + 3 tokens.
  const int64_t E = test::kTinyEot;
  ASSERT_EQ(d.size(), 4);
  EXPECT_EQ(d[0].rows[0].input_ids, (Ids{E, 'a', 'b', E}));
  EXPECT_EQ(d[1].rows[0].input_ids, (Ids{E, 'c', 'd', 'e'}));
  EXPECT_EQ(d[2].rows[0].input_ids, (Ids{E, 'f', E, 'g'}));
  EXPECT_EQ(d[3].rows[0].input_ids, (Ids{E, E}));
  EXPECT_EQ(d[1].line, 3);
  EXPECT_EQ(d[2].line, 3);
  o.max_length = 0;
  test::expect_input_error([&] { load("corpus.txt", "ab\n", o); }, {"corpus.txt", "max_length"});
}

TEST_F(DatasetTest, ErrorsNameFileLineAndField) {
  const std::string ok = R"({"prompt": "p", "candidates": [" a", " b"], "label": 0})";
  expect_error(ok + "\n{\"prompt\": \"p\", \n", {"bad.jsonl:2", "invalid JSON"});
  expect_error(R"({"prompt": "p", "label": 0})", {"bad.jsonl:1", "missing field \"candidates\""});
  expect_error(R"({"prompt": "p", "candidates": [" a"], "label": "0"})", {"bad.jsonl:1", "\"label\" must be an integer"});
  expect_error(ok + "\n" + R"({"prompt": "p", "candidates": [" a", " b"], "label": 2})",
               {"bad.jsonl:2", "\"label\" is 2", "2 candidates"});
  expect_error(R"({"prompt": "p", "candidates": [], "label": 0})", {"bad.jsonl:1", "\"candidates\" is empty"});
  expect_error(R"({"prompt": "p", "candidates": [" a", 3], "label": 0})", {"\"candidates\"[1] must be a string"});
  expect_error(R"({"prompt": "p", "candidates": [" a", ""], "label": 0})", {"\"candidates\"[1] is empty"});
  expect_error(R"({"prompt": 5, "candidates": [" a"], "label": 0})", {"\"prompt\" must be a string", "number"});
  expect_error(R"({"text": ""})", {"bad.jsonl:1", "\"text\" is empty"});
  expect_error(R"({"text": "a"})" "\n[1, 2]", {"bad.jsonl:2", "expected a JSON object"});
  expect_error(R"({"input_ids": [1, 2], "labels": [1]})", {"\"labels\" has 1 entries"});
  expect_error(R"({"input_ids": [1, 99999]})", {"\"input_ids\"[1]", "99999"});
  expect_error(R"({"input_ids": [1, 2], "labels": [-100, -100]})", {"no scored target"});
  expect_error(R"({"foo": 1})", {"bad.jsonl:1", "cannot tell the dataset format"});
  expect_error("\n\n", {"bad.jsonl", "no records"});
  DataOptions one_token;
  one_token.add_bos = false;
  one_token.add_eos = false;
  expect_error(R"({"text": "a"})", {"bad.jsonl:1", "too few"}, one_token);
  test::expect_input_error([&] { load_dataset(dir_.file("absent.jsonl"), tok_.get()); }, {"cannot open", "absent.jsonl"});
}

TEST_F(DatasetTest, ParallelLoadIsDeterministicAndReportsFirstBadLine) {
  std::string content;
  for (int i = 0; i < 500; ++i) {
    content += "{\"prompt\": \"Review: item " + std::to_string(i) + "\\nSentiment:\", \"candidates\": [\" negative\", \" positive\"], \"label\": " +
               std::to_string(i % 2) + "}\n";
  }
  Dataset par = load("many.jsonl", content);
  std::unique_ptr<Dataset> seq;
  {
    tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
    seq = std::make_unique<Dataset>(load("many.jsonl", content));
  }
  ASSERT_EQ(par.size(), 500);
  for (int64_t i = 0; i < par.size(); ++i) {
    EXPECT_EQ(par[i].line, i + 1);
    EXPECT_EQ(par[i].label, seq->operator[](i).label);
    for (size_t r = 0; r < 2; ++r) EXPECT_EQ(par[i].rows[r].input_ids, seq->operator[](i).rows[r].input_ids);
  }
  std::string bad = content;
  bad += "{\"prompt\": \"p\", \"candidates\": [\" a\"], \"label\": 7}\n";  // line 501
  bad += "not json\n";                                                     // line 502
  bad = "{\"prompt\": \"p\", \"candidates\": [\" a\"]}\n" + bad;           // line 1 now, everything shifts
  for (int trial = 0; trial < 3; ++trial) expect_error(bad, {"bad.jsonl:1:", "missing field \"label\""});

  std::vector<std::string> texts = {"hello", " positive", "", "x y z"};
  auto all = encode_all(*tok_, texts);
  ASSERT_EQ(all.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(all[i], tok_->encode(texts[i]));
}

TEST_F(DatasetTest, WriteTokensRoundTrip) {
  DataOptions o;
  o.max_length = 4;
  Dataset d = load("corpus.txt", "ab\ncdef\n", o);
  std::string out = dir_.file("tokens.jsonl");
  write_tokens_jsonl(d, out);
  Dataset back = load_dataset(out, nullptr);
  ASSERT_EQ(back.size(), d.size());
  for (int64_t i = 0; i < d.size(); ++i) {
    EXPECT_EQ(back[i].rows[0].input_ids, d[i].rows[0].input_ids);
    EXPECT_EQ(back[i].rows[0].labels, d[i].rows[0].labels);
  }
  Dataset c = load("c.jsonl", R"({"prompt": "p", "candidates": [" a"], "label": 0})");
  test::expect_input_error([&] { write_tokens_jsonl(c, dir_.file("x.jsonl")); }, {"classification"});
}

}  // namespace
}  // namespace zoff
