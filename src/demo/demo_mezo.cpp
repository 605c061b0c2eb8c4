// Held-out candidate-scoring accuracy and the MeZO check loop of the demo pre-training program.
#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cstdio>

#include "demo.h"
#include "zoff/error.h"
#include "zoff/weights.h"

namespace zoff::demo {
namespace {

at::Tensor logits_of(const Model& m, const std::vector<at::Tensor>& flats, const Batch& b) {
  FlatWeightSource w(m, flats, at::kFloat);
  return forward_logits(m, w, b.input_ids, b.attention_mask, at::kFloat, at::kCPU);
}

std::vector<int64_t> range(int64_t begin, int64_t end) {
  std::vector<int64_t> out;
  for (int64_t i = begin; i < end; ++i) out.push_back(i);
  return out;
}

}  // namespace

ClassEval eval_classification(const Model& m, const std::vector<at::Tensor>& flats,
                              const Dataset& data, int64_t pad_id, int64_t batch_examples) {
  ZOFF_CHECK(data.is_classification(), data.source(), " is not a classification dataset");
  at::NoGradGuard no_grad;
  ClassEval r;
  int64_t correct = 0;
  double nll = 0;
  for (int64_t s = 0; s < data.size(); s += batch_examples) {
    Batch b = collate(data, range(s, std::min(data.size(), s + batch_examples)), pad_id);
    at::Tensor sum, count;
    causal_lm_row_losses(logits_of(m, flats, b), b.labels, &sum, &count);
    std::vector<int64_t> pred = predict_candidates(b, sum);
    auto acc = sum.accessor<float, 1>();
    for (int64_t e = 0; e < b.num_examples(); ++e) {
      correct += pred[size_t(e)] == b.example_label[size_t(e)];
      nll += acc[b.row_offset(e) + b.example_label[size_t(e)]];
    }
  }
  r.examples = data.size();
  r.accuracy = double(correct) / double(r.examples);
  r.nll_correct = nll / double(r.examples);
  return r;
}

double correct_candidate_loss(const Model& m, const std::vector<at::Tensor>& flats,
                              const Dataset& data, const std::vector<int64_t>& indices, int64_t pad_id) {
  // Only the correct candidates' rows are run: one row per example.
  std::vector<int64_t> rows;
  Batch all = collate(data, indices, pad_id);
  for (int64_t e = 0; e < all.num_examples(); ++e)
    rows.push_back(all.row_offset(e) + all.example_label[size_t(e)]);
  at::Tensor idx = at::tensor(rows, at::kLong);
  Batch b;
  b.input_ids = all.input_ids.index_select(0, idx);
  b.attention_mask = all.attention_mask.index_select(0, idx);
  b.labels = all.labels.index_select(0, idx);
  return causal_lm_loss(logits_of(m, flats, b), b.labels).item<double>();
}

MezoResult mezo_check(const Model& m, const std::vector<at::Tensor>& flats_in, const Dataset& train,
                      const Dataset& test, int64_t pad_id, const MezoOptions& o) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> flats;
  for (auto& f : flats_in) flats.push_back(f.detach().clone());
  MezoResult res;
  res.before = eval_classification(m, flats, test, pad_id);
  std::printf("mezo: step 0 held-out accuracy %.1f%% (nll %.3f)\n", 100 * res.before.accuracy,
              res.before.nll_correct);
  auto t0 = std::chrono::steady_clock::now();
  const int64_t per_epoch = train.size() / o.batch_size;
  ZOFF_INPUT_CHECK(per_epoch > 0, train.source(), ": ", train.size(),
                   " examples cannot fill one MeZO batch of ", o.batch_size);
  std::vector<int64_t> order;
  double loss_avg = 0;
  std::vector<at::Tensor> z(flats.size());
  for (int64_t t = 0; t < o.steps; ++t) {
    const int64_t epoch = t / per_epoch, k = t % per_epoch;
    if (k == 0) order = shuffled_indices(train.size(), o.seed, epoch);
    std::vector<int64_t> idx(order.begin() + k * o.batch_size, order.begin() + (k + 1) * o.batch_size);
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed * 1000003ULL + uint64_t(t));
    for (size_t g = 0; g < flats.size(); ++g) {
      z[g] = at::normal(0.0, 1.0, flats[g].sizes(), gen);
      flats[g].add_(z[g], o.eps);
    }
    const double lp = correct_candidate_loss(m, flats, train, idx, pad_id);
    for (size_t g = 0; g < flats.size(); ++g) flats[g].add_(z[g], -2 * o.eps);
    const double lm = correct_candidate_loss(m, flats, train, idx, pad_id);
    const double proj = (lp - lm) / (2 * o.eps);
    for (size_t g = 0; g < flats.size(); ++g) flats[g].add_(z[g], o.eps - o.lr * proj);
    loss_avg = t == 0 ? 0.5 * (lp + lm) : 0.95 * loss_avg + 0.05 * 0.5 * (lp + lm);
    if (o.eval_every > 0 && (t + 1) % o.eval_every == 0 && t + 1 < o.steps) {
      ClassEval e = eval_classification(m, flats, test, pad_id);
      std::printf("mezo: step %ld train loss %.3f held-out accuracy %.1f%% (nll %.3f)\n",
                  long(t + 1), loss_avg, 100 * e.accuracy, e.nll_correct);
      std::fflush(stdout);
    }
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.after = eval_classification(m, flats, test, pad_id);
  std::printf("mezo: step %ld train loss %.3f held-out accuracy %.1f%% (nll %.3f), %.1f s\n",
              long(o.steps), loss_avg, 100 * res.after.accuracy, res.after.nll_correct, res.seconds);
  return res;
}

}  // namespace zoff::demo
