// The demo pre-training program's shared pieces: candidate-scoring evaluation and a MeZO check loop.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "zoff/dataset.h"
#include "zoff/model.h"

namespace zoff::demo {

struct ClassEval {
  double accuracy = 0;     // fraction of examples whose correct candidate has the lowest NLL
  double nll_correct = 0;  // mean summed NLL of the correct candidate's tokens
  int64_t examples = 0;
};

// Note [Demo candidate scoring]
// MeZO-style: each candidate row is prompt + candidate with labels only on the candidate's
// tokens (zoff::collate), scored by the summed negative log-likelihood of those tokens; the
// prediction is the candidate with the lowest sum. The demo's candidates (" negative",
// " positive") are one token each, so summed and mean NLL (the Trainer's score) agree.
ClassEval eval_classification(const Model& m, const std::vector<at::Tensor>& flats,
                              const Dataset& data, int64_t pad_id, int64_t batch_examples = 50);

// Mean NLL (over scored tokens) of the correct candidates of `indices`: MeZO's training loss.
double correct_candidate_loss(const Model& m, const std::vector<at::Tensor>& flats,
                              const Dataset& data, const std::vector<int64_t>& indices, int64_t pad_id);

struct MezoOptions {
  int64_t steps = 500;
  double lr = 1e-3;
  double eps = 1e-3;
  int64_t batch_size = 16;  // examples per step
  uint64_t seed = 0;
  int64_t eval_every = 100;  // 0: only before and after
};

struct MezoResult {
  ClassEval before, after;
  double seconds = 0;
};

// Note [MeZO check]
// A plain MeZO loop (Malladi et al. 2023, Algorithm 1; Gaussian z, no weight decay, constant lr)
// over copies of `flats`, independent of zoff's optimizer and Trainer, used only to choose the
// demo's pre-training recipe and hyperparameters: it proves the shipped checkpoint leaves a
// held-out gain that ZO fine-tuning can reach. z is drawn once per step from a generator seeded
// with (seed, step) and kept for the restore and the update (the model is ~1M parameters).
MezoResult mezo_check(const Model& m, const std::vector<at::Tensor>& flats, const Dataset& train,
                      const Dataset& test, int64_t pad_id, const MezoOptions& opts);

}  // namespace zoff::demo
