// Teacher-student convergence on opt-tiny shapes: every optimizer lowers the loss well below its
// start; forward passes to reach a target are printed (recorded in docs/results.md).
#include <gtest/gtest.h>

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include "common/teacher_student.h"
#include "test_helpers.h"

namespace zoff {
namespace {
using namespace zoff::testing;

using teacher_student::Task;

// Note [Teacher-student task] (tests/common/teacher_student.h): the opt-tiny fixture teaches a
// student started at teacher + 0.02 noise.
Task make_setup() {
  teacher_student::Options o;
  o.checkpoint = fixture("opt-tiny") + "/model";
  return teacher_student::make_task(o);
}

struct Result {
  double start, end;
  int64_t forwards_to_target;
};

Result train(Task& s, const OptimizerConfig& cfg, int steps, double target) {
  ModelWeights w;
  for (auto& f : s.student.flats) w.flats.push_back(f.clone());
  auto opt = make_optimizer(cfg, 77, steps);
  ZoStep step(*s.model, opt.get(), at::kFloat, at::kCPU);
  Result r{clean_loss(*s.model, w, s.eval), 0, -1};
  int64_t forwards = 0;
  for (int t = 0; t < steps; ++t) {
    StepRequest req = opt->begin_step(t);
    if (!req.full_batch) {
      forwards += int64_t(req.forwards.size());
      opt->end_step(run_pass(*s.model, step, req, s.train[size_t(t) % s.train.size()], w, true));
    } else {
      // SVRG anchor: the same perturbations over every training batch (the "full batch").
      std::vector<double> mean(req.forwards.size(), 0.0);
      for (size_t b = 0; b < s.train.size(); ++b) {
        auto L = run_pass(*s.model, step, req, s.train[b], w, b == 0);
        for (size_t f = 0; f < L.size(); ++f) mean[f] += L[f] / double(s.train.size());
        forwards += int64_t(req.forwards.size());
      }
      opt->end_step(mean);
    }
    if (t % 5 == 4 && r.forwards_to_target < 0) {
      flush(*s.model, *opt, w);
      if (clean_loss(*s.model, w, s.eval) <= target) r.forwards_to_target = forwards;
    }
  }
  flush(*s.model, *opt, w);
  r.end = clean_loss(*s.model, w, s.eval);
  return r;
}

TEST(Convergence, TeacherStudentEveryOptimizerLearns) {
  c10::InferenceMode guard;
  at::set_num_threads(2);
  Task s = make_setup();
  const double teacher_loss = clean_loss(*s.model, s.teacher, s.eval);
  const double start = clean_loss(*s.model, s.student, s.eval);
  const double target = start - 0.3 * (start - teacher_loss);
  std::printf("[convergence] teacher %.4f, student start %.4f, target %.4f\n", teacher_loss, start, target);
  struct Run {
    const char* name;
    OptimizerConfig cfg;
  };
  std::vector<Run> runs;
  OptimizerConfig mezo;
  mezo.lr = 2e-4;
  mezo.eps = 1e-3;
  runs.push_back({"mezo", mezo});
  OptimizerConfig fzoo = mezo;
  fzoo.kind = OptimizerKind::FZOO;
  fzoo.lr = 2e-3;
  runs.push_back({"fzoo(N=8)", fzoo});
  OptimizerConfig sub = mezo;
  sub.kind = OptimizerKind::SubZero;
  sub.subzero_rank = 8;
  sub.subzero_period = 100;
  runs.push_back({"subzero(r=8)", sub});
  OptimizerConfig svrg = mezo;
  svrg.kind = OptimizerKind::SVRG;
  svrg.svrg_q = 4;
  svrg.svrg_lr_full = 2e-4;
  svrg.svrg_lr_inner = 2e-4;
  runs.push_back({"svrg(q=4)", svrg});
  for (auto& r : runs) {
    Result res = train(s, r.cfg, 300, target);
    std::printf("[convergence] %-13s start %.4f -> end %.4f  (gap closed %.0f%%), forwards to target: %lld\n",
                r.name, res.start, res.end, 100 * (start - res.end) / (start - teacher_loss),
                (long long)res.forwards_to_target);
    EXPECT_LT(res.end, start - 0.2 * (start - teacher_loss)) << r.name;
  }
}

}  // namespace
}  // namespace zoff
