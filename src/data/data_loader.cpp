// Batching and epoch iteration: deterministic shuffle, right padding, resumable positions.
#include <ATen/ATen.h>

#include <cstdio>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include "zoff/dataset.h"
#include "zoff/error.h"

namespace zoff {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniform in [0, bound) by rejection (Note [Deterministic shuffle]).
uint64_t uniform_below(std::mt19937_64& rng, uint64_t bound) {
  uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
  for (;;) {
    uint64_t r = rng();
    if (r >= threshold) return r % bound;
  }
}

}  // namespace

std::vector<int64_t> shuffled_indices(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> a(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) a[i] = i;
  std::mt19937_64 rng(splitmix64(seed + splitmix64(static_cast<uint64_t>(epoch))));
  for (int64_t i = n - 1; i >= 1; --i) {
    auto j = static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(i) + 1));
    std::swap(a[i], a[j]);
  }
  return a;
}

int64_t Batch::row_offset(int64_t example) const {
  ZOFF_CHECK(example >= 0 && example <= num_examples(), "example ", example, " outside the batch");
  int64_t off = 0;
  for (int64_t e = 0; e < example; ++e) off += num_candidates[e];
  return off;
}

Batch collate(const Dataset& data, const std::vector<int64_t>& indices, int64_t pad_id, int64_t pad_to_multiple_of) {
  ZOFF_CHECK(!indices.empty(), "collate needs at least one example");
  ZOFF_CHECK(pad_to_multiple_of >= 1, "pad_to_multiple_of must be >= 1");
  Batch b;
  int64_t rows = 0, len = 0;
  for (int64_t i : indices) {
    ZOFF_CHECK(i >= 0 && i < data.size(), "example index ", i, " outside ", data.source(), " (", data.size(), ")");
    const Example& e = data[i];
    b.example_index.push_back(i);
    b.num_candidates.push_back(static_cast<int64_t>(e.rows.size()));
    b.example_label.push_back(e.label);
    rows += static_cast<int64_t>(e.rows.size());
    for (const auto& r : e.rows) len = std::max(len, static_cast<int64_t>(r.input_ids.size()));
  }
  len = (len + pad_to_multiple_of - 1) / pad_to_multiple_of * pad_to_multiple_of;
  auto opts = at::TensorOptions().dtype(at::kLong);
  b.input_ids = at::full({rows, len}, pad_id, opts);
  b.attention_mask = at::zeros({rows, len}, opts);
  b.labels = at::full({rows, len}, int64_t{-100}, opts);
  int64_t* ids = b.input_ids.data_ptr<int64_t>();
  int64_t* mask = b.attention_mask.data_ptr<int64_t>();
  int64_t* labels = b.labels.data_ptr<int64_t>();
  int64_t row = 0;
  for (int64_t i : indices) {
    for (const auto& r : data[i].rows) {
      std::copy(r.input_ids.begin(), r.input_ids.end(), ids + row * len);
      std::copy(r.labels.begin(), r.labels.end(), labels + row * len);
      std::fill(mask + row * len, mask + row * len + r.input_ids.size(), int64_t{1});
      ++row;
    }
  }
  return b;
}

std::vector<int64_t> predict_candidates(const Batch& batch, const at::Tensor& row_losses) {
  ZOFF_CHECK(row_losses.dim() == 1 && row_losses.size(0) == batch.num_rows(), "row_losses must be [", batch.num_rows(),
             "], got ", row_losses.sizes());
  at::Tensor l = row_losses.to(at::kDouble).cpu().contiguous();
  const double* p = l.data_ptr<double>();
  std::vector<int64_t> out;
  int64_t off = 0;
  for (int64_t k : batch.num_candidates) {
    int64_t best = 0;
    for (int64_t j = 1; j < k; ++j) {
      if (p[off + j] < p[off + best]) best = j;
    }
    out.push_back(best);
    off += k;
  }
  return out;
}

DataLoader::DataLoader(std::shared_ptr<const Dataset> data, int64_t pad_id, LoaderOptions opts)
    : data_(std::move(data)), pad_id_(pad_id), opts_(opts) {
  ZOFF_CHECK(data_ != nullptr, "DataLoader needs a dataset");
  ZOFF_INPUT_CHECK(opts_.batch_size >= 1, data_->source(), ": batch_size must be >= 1, got ", opts_.batch_size);
  ZOFF_INPUT_CHECK(opts_.pad_to_multiple_of >= 1, data_->source(), ": pad_to_multiple_of must be >= 1");
  ZOFF_INPUT_CHECK(data_->size() > 0, data_->source(), ": the dataset is empty");
  ZOFF_INPUT_CHECK(!opts_.drop_last || data_->size() >= opts_.batch_size, data_->source(), ": ", data_->size(),
                   " examples cannot fill one batch of ", opts_.batch_size, " with drop_last");
}

int64_t DataLoader::batches_per_epoch() const {
  int64_t n = data_->size(), b = opts_.batch_size;
  return opts_.drop_last ? n / b : (n + b - 1) / b;
}

const std::vector<int64_t>& DataLoader::order(int64_t epoch) {
  if (order_epoch_ != epoch) {
    if (opts_.shuffle) {
      order_ = shuffled_indices(data_->size(), opts_.seed, epoch);
    } else {
      order_.resize(static_cast<size_t>(data_->size()));
      for (int64_t i = 0; i < data_->size(); ++i) order_[i] = i;
    }
    order_epoch_ = epoch;
  }
  return order_;
}

Batch DataLoader::next() {
  int64_t n = data_->size(), b = opts_.batch_size;
  int64_t left = n - pos_.position;
  if (left == 0 || (opts_.drop_last && left < b)) pos_ = {pos_.epoch + 1, 0};
  const auto& ord = order(pos_.epoch);
  int64_t take = std::min(b, n - pos_.position);
  std::vector<int64_t> idx(ord.begin() + pos_.position, ord.begin() + pos_.position + take);
  pos_.position += take;
  return collate(*data_, idx, pad_id_, opts_.pad_to_multiple_of);
}

void DataLoader::seek(LoaderPosition pos) {
  ZOFF_INPUT_CHECK(pos.epoch >= 0 && pos.position >= 0 && pos.position <= data_->size(), "data position (epoch ",
                   pos.epoch, ", position ", pos.position, ") does not fit ", data_->source(), " with ",
                   data_->size(), " examples");
  pos_ = pos;
}

void write_tokens_jsonl(const Dataset& data, const std::string& path) {
  ZOFF_INPUT_CHECK(!data.is_classification(), data.source(), " is a classification dataset; ", path,
                   " (token format) has no way to group candidate rows");
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    ZOFF_INPUT_CHECK(f.good(), "cannot write ", tmp);
    auto write_ids = [&](const std::vector<int64_t>& v) {
      f << '[';
      for (size_t i = 0; i < v.size(); ++i) f << (i ? "," : "") << v[i];
      f << ']';
    };
    for (int64_t i = 0; i < data.size(); ++i) {
      const Sequence& s = data[i].rows.at(0);
      f << "{\"input_ids\":";
      write_ids(s.input_ids);
      if (s.labels != s.input_ids) {
        f << ",\"labels\":";
        write_ids(s.labels);
      }
      f << "}\n";
    }
    f.flush();
    ZOFF_INPUT_CHECK(f.good(), "writing ", tmp, " failed (disk full?)");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  ZOFF_INPUT_CHECK(!ec, "cannot rename ", tmp, " to ", path, ": ", ec.message());
}

}  // namespace zoff
