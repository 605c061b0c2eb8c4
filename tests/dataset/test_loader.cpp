// Shuffling (pinned across platforms), collation/padding, classification bookkeeping, resumable epochs.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <set>

#include "tests/dataset/tiny_tokenizer.h"
#include "zoff/dataset.h"
#include "zoff/tokenizer.h"

namespace zoff {
namespace {

using Ids = std::vector<int64_t>;

Ids row(const at::Tensor& t, int64_t r) {
  at::Tensor x = t[r].contiguous();
  return Ids(x.data_ptr<int64_t>(), x.data_ptr<int64_t>() + x.numel());
}

TEST(Shuffle, PinnedPermutations) {
  // Computed by an independent Python implementation of mt19937_64 + splitmix64 + the
  // Fisher-Yates of Note [Deterministic shuffle]; any change here changes every run's data order.
  EXPECT_EQ(shuffled_indices(10, 1234, 0), (Ids{6, 7, 9, 5, 3, 4, 8, 0, 1, 2}));
  EXPECT_EQ(shuffled_indices(10, 1234, 1), (Ids{4, 2, 9, 8, 6, 3, 5, 7, 1, 0}));
  EXPECT_EQ(shuffled_indices(7, 0, 3), (Ids{0, 1, 2, 3, 4, 6, 5}));
  EXPECT_EQ(shuffled_indices(0, 1, 0), Ids{});
  EXPECT_EQ(shuffled_indices(1, 1, 0), Ids{0});
}

TEST(Shuffle, IsAPermutationAndVariesWithSeedAndEpoch) {
  Ids a = shuffled_indices(1000, 42, 0);
  Ids sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[i], i);
  EXPECT_NE(a, shuffled_indices(1000, 42, 1));
  EXPECT_NE(a, shuffled_indices(1000, 43, 0));
  EXPECT_EQ(a, shuffled_indices(1000, 42, 0));
}

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_tiny_tokenizer(tokdir_);
    tok_ = load_tokenizer(tokdir_.path());
    std::string cls;
    for (int i = 0; i < 5; ++i) {
      std::string cands = i == 4 ? R"([" a", " bb", " ccc"])" : R"([" negative", " positive"])";
      cls += "{\"prompt\": \"" + std::string(i + 1, 'p') + ":\", \"candidates\": " + cands +
             ", \"label\": " + std::to_string(i % 2) + "}\n";
    }
    cls_ = std::make_shared<Dataset>(load_dataset(dir_.write("c.jsonl", cls), tok_.get()));
    std::string text;
    for (int i = 0; i < 10; ++i) text += "{\"text\": \"" + std::string(i + 1, 'x') + "\"}\n";
    text_ = std::make_shared<Dataset>(load_dataset(dir_.write("t.jsonl", text), tok_.get()));
  }
  test::TempDir tokdir_, dir_;
  std::unique_ptr<Tokenizer> tok_;
  std::shared_ptr<Dataset> cls_, text_;
};

TEST_F(LoaderTest, CollatePadsRight) {
  Batch b = collate(*text_, {2, 0}, test::kTinyPad, 1);
  // Row 0: [E x x x E] (5 tokens); row 1: [E x E] (3) padded by 2.
  ASSERT_EQ(b.input_ids.sizes(), (at::IntArrayRef{2, 5}));
  const int64_t E = test::kTinyEot, P = test::kTinyPad;
  EXPECT_EQ(row(b.input_ids, 1), (Ids{E, 'x', E, P, P}));
  EXPECT_EQ(row(b.attention_mask, 1), (Ids{1, 1, 1, 0, 0}));
  EXPECT_EQ(row(b.labels, 1), (Ids{E, 'x', E, -100, -100}));
  EXPECT_EQ(row(b.attention_mask, 0), (Ids{1, 1, 1, 1, 1}));
  EXPECT_EQ(b.example_index, (Ids{2, 0}));
  EXPECT_EQ(b.num_candidates, (Ids{1, 1}));
  EXPECT_EQ(b.example_label, (Ids{-1, -1}));
  EXPECT_EQ(b.input_ids.scalar_type(), at::kLong);
  Batch m = collate(*text_, {2, 0}, P, 8);
  EXPECT_EQ(m.input_ids.size(1), 8);
  EXPECT_EQ(row(m.labels, 0)[7], -100);
}

TEST_F(LoaderTest, ClassificationGroups) {
  Batch b = collate(*cls_, {4, 1}, test::kTinyPad, 1);
  EXPECT_EQ(b.num_examples(), 2);
  EXPECT_EQ(b.num_rows(), 5);
  EXPECT_EQ(b.num_candidates, (Ids{3, 2}));
  EXPECT_EQ(b.example_label, (Ids{0, 1}));
  EXPECT_EQ(b.row_offset(0), 0);
  EXPECT_EQ(b.row_offset(1), 3);
  EXPECT_EQ(b.row_offset(2), 5);
  // Example 4's second candidate " bb": bos + "ppppp:" + " bb", scored on the last 3 tokens.
  const int64_t X = -100, P = test::kTinyPad;
  Ids ids = row(b.input_ids, 1), labels = row(b.labels, 1);
  int64_t T = b.input_ids.size(1);
  EXPECT_EQ(ids[0], test::kTinyEot);
  EXPECT_EQ(Ids(ids.begin() + 7, ids.begin() + 10), (Ids{' ', 'b', 'b'}));
  EXPECT_EQ(labels, ([&] {
              Ids l(T, X);
              l[7] = ' ';
              l[8] = 'b';
              l[9] = 'b';
              return l;
            }()));
  EXPECT_EQ(ids[10], P);
  // Lowest loss wins; ties go to the first candidate.
  at::Tensor losses = at::tensor({2.0, 0.5, 0.7, 1.0, 1.0}, at::kFloat);
  EXPECT_EQ(predict_candidates(b, losses), (Ids{1, 0}));
}

TEST_F(LoaderTest, EpochsCoverEveryExampleOnce) {
  LoaderOptions o;
  o.batch_size = 3;
  o.seed = 9;
  DataLoader dl(text_, test::kTinyPad, o);
  EXPECT_EQ(dl.batches_per_epoch(), 4);
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    Ids seen;
    for (int k = 0; k < 4; ++k) {
      Batch b = dl.next();
      EXPECT_EQ(b.num_examples(), k < 3 ? 3 : 1);
      seen.insert(seen.end(), b.example_index.begin(), b.example_index.end());
    }
    EXPECT_EQ(seen, shuffled_indices(10, 9, epoch));
    EXPECT_EQ(dl.position(), (LoaderPosition{epoch, 10}));
  }
  o.drop_last = true;
  DataLoader dd(text_, test::kTinyPad, o);
  EXPECT_EQ(dd.batches_per_epoch(), 3);
  for (int k = 0; k < 3; ++k) dd.next();
  Batch b = dd.next();  // first batch of epoch 1
  EXPECT_EQ(b.num_examples(), 3);
  EXPECT_EQ(dd.position(), (LoaderPosition{1, 3}));
  o.shuffle = false;
  DataLoader ds(text_, test::kTinyPad, o);
  EXPECT_EQ(ds.next().example_index, (Ids{0, 1, 2}));
}

TEST_F(LoaderTest, ResumeGivesTheSameBatches) {
  LoaderOptions o;
  o.batch_size = 4;
  o.seed = 3;
  DataLoader a(text_, test::kTinyPad, o);
  std::vector<Ids> order;
  LoaderPosition saved;
  for (int k = 0; k < 9; ++k) {
    order.push_back(a.next().example_index);
    if (k == 4) saved = a.position();  // mid epoch 1
  }
  DataLoader b(text_, test::kTinyPad, o);
  b.seek(saved);
  for (int k = 5; k < 9; ++k) EXPECT_EQ(b.next().example_index, order[k]) << "batch " << k;
  test::expect_input_error([&] { b.seek({0, 11}); }, {"position 11", "t.jsonl", "10 examples"});
  test::expect_input_error([&] { b.seek({-1, 0}); }, {"epoch -1"});
}

TEST_F(LoaderTest, BadOptions) {
  LoaderOptions o;
  o.batch_size = 0;
  test::expect_input_error([&] { DataLoader(text_, 0, o); }, {"batch_size"});
  o.batch_size = 11;
  o.drop_last = true;
  test::expect_input_error([&] { DataLoader(text_, 0, o); }, {"10 examples", "drop_last"});
}

}  // namespace
}  // namespace zoff
