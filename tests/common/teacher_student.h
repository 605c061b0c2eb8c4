// The teacher-student task on a real checkpoint (the convergence test and bench_precision share it).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "zoff/model.h"
#include "zoff/model_spec.h"
#include "zoff/weights.h"
#include "zoff/zo_step.h"

namespace zoff::teacher_student {

// Note [Teacher-student task]
// The teacher is a checkpoint (tests/data/opt-tiny by default); labels are its greedy next-token
// predictions on random inputs, so the teacher's weights predict them exactly (agreement 1). The
// student starts at teacher + noise * N(0, 1) per element, and training should walk it back
// within a few hundred ZO steps of a tiny model. The teacher's cross-entropy is a landmark, not a
// floor: a student that agrees with the teacher and is more confident scores below it (sharper
// logits), so agreement() is the second measure. Everything is drawn from fixed ATen seeds, so
// every run sees the same task.
struct Options {
  std::string checkpoint;      // an HF folder (config.json + safetensors)
  double noise = 0.02;         // student = teacher + noise * randn
  uint64_t noise_seed = 123;
  int train_batches = 8;       // step t trains on batch t mod train_batches
  int64_t batch = 16, seq = 16;
  int64_t eval_batch = 32;     // one held-out batch
  uint64_t train_seed = 1000;  // batch i draws its ids from seed train_seed + i
  uint64_t eval_seed = 7;
};

struct Task {
  std::unique_ptr<Model> model;
  ModelWeights teacher, student;  // float32, CPU
  std::vector<StepBatch> train;
  StepBatch eval;
};

// A batch of random ids in [3, vocab) labelled with the teacher's greedy predictions (the first
// position is labelled with itself, as labels_from_inputs shifts).
inline StepBatch teacher_batch(const Model& m, const ModelWeights& teacher, int64_t B, int64_t T, uint64_t seed) {
  at::manual_seed(int64_t(seed));
  at::Tensor ids = at::randint(3, m.spec().vocab_size, {B, T}, at::kLong);
  at::Tensor mask = at::ones({B, T}, at::kLong);
  FlatWeightSource src(m, teacher.flats, at::kFloat);
  at::Tensor pred = forward_logits(m, src, ids, mask, at::kFloat, at::kCPU).argmax(-1);
  at::Tensor labels = at::cat({ids.narrow(1, 0, 1), pred.narrow(1, 0, T - 1)}, 1);
  return StepBatch{ids, mask, labels};
}

inline Task make_task(const Options& o) {
  Task s;
  s.model = std::make_unique<Model>(parse_hf_config(o.checkpoint + "/config.json"));
  s.teacher = load_weights(*s.model, o.checkpoint, at::kFloat);
  at::manual_seed(int64_t(o.noise_seed));
  for (auto& f : s.teacher.flats) s.student.flats.push_back(f + o.noise * at::randn_like(f));
  for (int i = 0; i < o.train_batches; ++i)
    s.train.push_back(teacher_batch(*s.model, s.teacher, o.batch, o.seq, o.train_seed + uint64_t(i)));
  s.eval = teacher_batch(*s.model, s.teacher, o.eval_batch, o.seq, o.eval_seed);
  return s;
}

// Mean token loss of clean (unperturbed) weights on `b`: one flat per group, any float dtype on
// the CPU, run on the CPU in `compute` (float32 by default: the master's own quality).
inline double clean_loss(const Model& m, const std::vector<at::Tensor>& flats, const StepBatch& b,
                         at::ScalarType compute = at::kFloat) {
  ZoStep s(m, nullptr, compute, at::kCPU);
  StepRequest req;
  req.forwards.resize(1);
  s.begin_pass(req, b, false);
  for (int g = 0; g < m.num_groups(); ++g) s.visit(g, flats.at(size_t(g)));
  return s.losses().at(0);
}

// Fraction of scored positions where the weights' greedy prediction is the teacher's label
// (float32 forward on the CPU; flats of any float dtype).
inline double agreement(const Model& m, const std::vector<at::Tensor>& flats, const StepBatch& b) {
  std::vector<at::Tensor> f32;
  for (auto& f : flats) f32.push_back(f.to(at::kFloat));
  FlatWeightSource src(m, f32, at::kFloat);
  const int64_t T = b.input_ids.size(1);
  at::Tensor pred = forward_logits(m, src, b.input_ids, b.attention_mask, at::kFloat, at::kCPU).argmax(-1);
  // labels[:, t] is the teacher's prediction after position t - 1 (teacher_batch).
  return pred.narrow(1, 0, T - 1).eq(b.labels.narrow(1, 1, T - 1)).to(at::kDouble).mean().item<double>();
}

}  // namespace zoff::teacher_student
