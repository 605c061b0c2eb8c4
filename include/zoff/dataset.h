// Datasets: JSONL and plain-text readers, deterministic shuffling, padded batches, resumable epochs.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace zoff {

class Tokenizer;

// Note [Dataset formats]
// One JSON object per line (blank lines skipped), or a plain-text corpus:
//   kText            {"text": "..."}: causal LM; the row is [bos] text [eos], every token scored.
//   kClassification  {"prompt": "...", "candidates": ["...", ...], "label": k}: one row per
//                    candidate, prompt + candidate, scored on the candidate's tokens only
//                    (Note [Candidate scoring]); the correct candidate is candidates[label].
//   kTokens          {"input_ids": [...], "labels": [...]?}: taken as is (no bos/eos added);
//                    labels default to input_ids, -100 marks unscored positions.
//   kCorpus          a .txt file: each non-empty line encoded, followed by eos, all lines
//                    concatenated and cut into rows of max_length tokens ([bos] + chunk).
// kAuto picks kCorpus for *.txt, else looks at the first record's fields (prompt, input_ids, text).
// labels[t] is the target at position t, HF style: the loss shifts (position t-1 predicts
// labels[t]), so labels[0] is never used. Every row must keep at least one scored target after
// truncation, or loading fails naming the file and line.
enum class DatasetFormat { kAuto, kText, kClassification, kTokens, kCorpus };

// Note [Truncation]
// Rows longer than max_length are cut. kRight keeps the first max_length tokens. kLeft drops
// tokens from the start but keeps a leading bos: [bos] + the last max_length-1 tokens (so a
// classification row keeps its candidate, MeZO's choice). kAuto means kLeft for classification,
// kRight otherwise. max_length 0 means no limit (except kCorpus, which needs a block length).
enum class Truncation { kAuto, kLeft, kRight };

struct DataOptions {
  DatasetFormat format = DatasetFormat::kAuto;
  int64_t max_length = 0;
  Truncation truncation = Truncation::kAuto;
  std::optional<bool> add_bos;  // unset: tokenizer->add_bos()
  bool add_eos = true;          // kText / kCorpus: end texts with eos when the tokenizer has one
  int64_t vocab_size = 0;       // kTokens without a tokenizer: ids must be below this (0: unchecked)
};

// One model input row. labels: -100 where not scored.
struct Sequence {
  std::vector<int64_t> input_ids;
  std::vector<int64_t> labels;
};

struct Example {
  std::vector<Sequence> rows;  // one row; classification: one per candidate, in order
  int64_t label = -1;          // classification: the correct candidate; else -1
  int64_t line = 0;            // 1-based line of the source file it came from
};

class Dataset {
 public:
  Dataset(std::string source, DatasetFormat format, std::vector<Example> examples);
  const std::string& source() const { return source_; }
  DatasetFormat format() const { return format_; }  // never kAuto
  bool is_classification() const { return format_ == DatasetFormat::kClassification; }
  int64_t size() const { return static_cast<int64_t>(examples_.size()); }
  const Example& operator[](int64_t i) const { return examples_.at(static_cast<size_t>(i)); }
  int64_t num_rows() const { return num_rows_; }
  int64_t max_row_length() const { return max_row_length_; }

 private:
  std::string source_;
  DatasetFormat format_;
  std::vector<Example> examples_;
  int64_t num_rows_ = 0;
  int64_t max_row_length_ = 0;
};

// Reads and tokenizes `path`, tokenizing records in parallel with oneTBB (Note [Parallel
// preparation]). `tokenizer` may be null only for kTokens. Errors are InputErrors naming the
// file, the 1-based line and the field; with several bad lines, the first one is reported.
Dataset load_dataset(const std::string& path, const Tokenizer* tokenizer, const DataOptions& opts = {});

// Encodes texts in parallel; out[i] = tokenizer.encode(texts[i]) whatever the thread count.
std::vector<std::vector<int64_t>> encode_all(const Tokenizer& tokenizer, const std::vector<std::string>& texts);

// Writes a text/tokens/corpus dataset as kTokens JSONL (one row per line), atomically; loading
// the file back with kTokens gives the same rows. Classification datasets are refused (one row
// per candidate does not fit the format).
void write_tokens_jsonl(const Dataset& data, const std::string& path);

// Note [Batch layout]
// Rows are right-padded to the longest row (rounded up to pad_to_multiple_of) with pad_id;
// attention_mask is 1 on real tokens and 0 on padding, labels -100 on padding. A batch holds
// whole examples: example e owns num_candidates[e] consecutive rows starting at row_offset(e)
// (1 row unless classification). For classification, example_label[e] indexes the correct row
// within the group; the model's per-row loss (mean NLL over scored tokens) picks the
// prediction as the argmin in each group (predict_candidates).
struct Batch {
  at::Tensor input_ids;       // int64 [rows, T]
  at::Tensor attention_mask;  // int64 [rows, T]
  at::Tensor labels;          // int64 [rows, T]
  std::vector<int64_t> example_index;   // dataset index of each example
  std::vector<int64_t> num_candidates;  // rows per example
  std::vector<int64_t> example_label;   // correct candidate per example; -1 if not classification

  int64_t num_examples() const { return static_cast<int64_t>(example_index.size()); }
  int64_t num_rows() const { return input_ids.defined() ? input_ids.size(0) : 0; }
  int64_t row_offset(int64_t example) const;
};

Batch collate(const Dataset& data, const std::vector<int64_t>& indices, int64_t pad_id,
              int64_t pad_to_multiple_of = 1);

// Per example, the candidate with the lowest loss (ties: the first). row_losses: [rows], any float.
std::vector<int64_t> predict_candidates(const Batch& batch, const at::Tensor& row_losses);

// Note [Deterministic shuffle]
// The order of epoch e is a Fisher-Yates shuffle of 0..n-1 driven by std::mt19937_64 (whose
// output the C++ standard fixes) seeded with splitmix64(seed + splitmix64(e)); for i = n-1 down
// to 1 it swaps a[i] with a[j], j uniform in [0, i] by rejection: draw r, reject r < 2^64 mod
// (i+1), j = r mod (i+1). No std::shuffle or std::uniform_int_distribution, whose algorithms the
// standard leaves open, so the order is the same on every platform and library.
std::vector<int64_t> shuffled_indices(int64_t n, uint64_t seed, int64_t epoch);

struct LoaderOptions {
  int64_t batch_size = 1;  // examples per batch (classification: each brings its candidates)
  bool shuffle = true;
  uint64_t seed = 0;
  bool drop_last = false;  // skip an epoch's final short batch
  int64_t pad_to_multiple_of = 1;
};

// Where the next batch starts: `position` examples of epoch `epoch`'s order are used up.
struct LoaderPosition {
  int64_t epoch = 0;
  int64_t position = 0;
  bool operator==(const LoaderPosition& o) const { return epoch == o.epoch && position == o.position; }
};

// Endless iteration over epochs. position() after next() is what a checkpoint saves; seek() to
// it makes the following batches identical to an uninterrupted run.
class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> data, int64_t pad_id, LoaderOptions opts);
  Batch next();
  LoaderPosition position() const { return pos_; }
  void seek(LoaderPosition pos);  // InputError when pos does not fit this dataset
  int64_t batches_per_epoch() const;
  const Dataset& dataset() const { return *data_; }
  const LoaderOptions& options() const { return opts_; }

 private:
  const std::vector<int64_t>& order(int64_t epoch);
  std::shared_ptr<const Dataset> data_;
  int64_t pad_id_;
  LoaderOptions opts_;
  LoaderPosition pos_;
  int64_t order_epoch_ = -1;
  std::vector<int64_t> order_;
};

}  // namespace zoff
