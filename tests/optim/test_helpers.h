// Shared helpers of the optimizer tests: fixtures, a resident step loop, file-backed directions.
#pragma once

#include <map>
#include <string>

#include "kernels/philox.h"
#include "zoff/optimizer.h"
#include "zoff/safetensors.h"
#include "zoff/weights.h"
#include "zoff/zo_step.h"

namespace zoff::testing {

// One 2-D parameter group of shape [m, n]; the parameter's id comes from its name.
inline GroupLayout one_matrix(int64_t m, int64_t n, const std::string& group = "q", const std::string& name = "w") {
  GroupLayout g;
  g.name = group;
  ParamInfo p;
  p.name = name;
  p.shape = {m, n};
  p.numel = m * n;
  p.kind = ParamKind::Matrix;
  p.id = k::param_id(p.name.c_str());
  g.params.push_back(p);
  g.numel = p.numel;
  return g;
}

inline std::string fixture(const std::string& name) { return std::string(ZOFF_TEST_DATA) + "/" + name; }

inline at::Tensor read_tensor(const SafetensorsFile& f, const std::string& n) {
  const TensorInfo* t = f.find(n);
  if (!t) throw std::runtime_error("missing " + n);
  return at::from_blob(const_cast<void*>(f.data(*t)), t->shape,
                       at::TensorOptions().dtype(to_scalar_type(t->dtype)))
      .clone();
}

// z read from zo_directions.safetensors instead of Philox (the seed is ignored: one direction).
class FileDirections : public Directions {
 public:
  explicit FileDirections(const std::string& path) : f_(SafetensorsFile::open(path)) {}
  void perturb(const ParamInfo& p, const at::Tensor& theta, const std::vector<DirTerm>& terms,
               at::Tensor out) override {
    at::Tensor acc = theta.to(at::kFloat).clone();
    for (auto& t : terms) acc += float(t.coeff) * z(p, theta.device());
    out.copy_(acc.view(out.sizes()));
  }
  void update(const ParamInfo& p, at::Tensor theta, const std::vector<DirTerm>& terms, double decay,
              uint64_t, const k::DeltaOut*) override {
    at::Tensor acc = theta.to(at::kFloat) * float(1.0 - decay);
    for (auto& t : terms) acc += float(t.coeff) * z(p, theta.device());
    theta.copy_(acc);
  }

 private:
  at::Tensor z(const ParamInfo& p, const at::Device& d = at::kCPU) {
    return read_tensor(*f_, "z." + p.name).view(p.shape).to(d);
  }
  std::shared_ptr<SafetensorsFile> f_;
};

// One full step on resident weights: visit every group in order; returns the forwards' losses.
inline std::vector<double> run_pass(const Model& m, ZoStep& step, const StepRequest& req,
                                    const StepBatch& b, ModelWeights& w, bool apply) {
  step.begin_pass(req, b, apply);
  for (int g = 0; g < m.num_groups(); ++g) step.visit(g, w.flats[size_t(g)]);
  return step.losses();
}

inline nlohmann::json train_step(const Model& m, ZoOptimizer& opt, ZoStep& step, int64_t t,
                                 const StepBatch& b, ModelWeights& w) {
  StepRequest req = opt.begin_step(t);
  return opt.end_step(run_pass(m, step, req, b, w, true));
}

inline void flush(const Model& m, ZoOptimizer& opt, ModelWeights& w) {
  for (int g = 0; g < m.num_groups(); ++g) opt.apply_update(m.group(g), w.flats[size_t(g)]);
  opt.clear_pending();
}

inline double clean_loss(const Model& m, ModelWeights& w, const StepBatch& b,
                         const at::Device& d = at::kCPU) {
  ZoStep s(m, nullptr, at::kFloat, d);
  StepRequest req;
  req.forwards.resize(1);
  return run_pass(m, s, req, b, w, false).at(0);
}

}  // namespace zoff::testing
