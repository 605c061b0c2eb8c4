// Distributed: splitting a ZO step among ranks (forwards or rows) and combining their losses.
#include "zoff/distributed.h"

#include <spdlog/spdlog.h>

#include <sstream>

#include "zoff/error.h"
#include "zoff/log.h"

#ifdef ZOFF_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime.h>
#endif

namespace zoff {

Span split_range(int64_t n, int rank, int world) {
  ZOFF_CHECK(world >= 1 && rank >= 0 && rank < world && n >= 0, "split_range(", n, ", ", rank, ", ", world, ")");
  const int64_t q = n / world, r = n % world;
  Span s;
  s.begin = rank * q + std::min<int64_t>(rank, r);
  s.end = s.begin + q + (rank < r ? 1 : 0);
  return s;
}

Distributed::Distributed(const DistributedConfig& cfg, const std::string& source, const DistEnv& env,
                         int cuda_device)
    : env_(env), mode_(cfg.mode), source_(source) {
  if (!env_.distributed()) {
    coll_ = make_local_collective();
    return;
  }
  // Note [Rank in log lines]: every line of a rank says which rank wrote it.
  spdlog::set_pattern("[%Y-%m-%d %H:%M:%S.%e] [rank " + std::to_string(env_.rank) + "] [%^%l%$] %v");
  CollectiveOptions o;
  o.backend = cfg.backend;
  o.timeout = std::chrono::milliseconds(cfg.timeout_s * 1000);
  o.cuda_device = cuda_device;
  try {
    coll_ = make_collective(env_, o);
  } catch (const InputError& e) {
    ZOFF_INPUT_FAIL(source_, ": ", e.what());
  }
  log::info("distributed: rank {} of {} (local rank {}), {} mode, {} backend", env_.rank, env_.world,
            env_.local_rank, dist_mode_name(mode_), coll_->backend());
}

Distributed::~Distributed() = default;

Span Distributed::forward_share(int64_t n) const {
  if (!active() || mode_ != DistMode::Perturbation) return Span{0, n};
  ZOFF_INPUT_CHECK(n >= world(), source_, ": distributed.mode = \"perturbation\": a step has ", n,
                   " forwards, fewer than the ", world(), " ranks; use more directions (optimizer.fzoo_n, ",
                   "optimizer.mezo_q) or distributed.mode = \"data\"");
  return split_range(n, rank(), world());
}

StepRequest Distributed::local_request(const StepRequest& req) const {
  const Span s = forward_share(int64_t(req.forwards.size()));
  if (s.begin == 0 && s.end == int64_t(req.forwards.size())) return req;
  StepRequest r;
  r.step = req.step;
  r.full_batch = req.full_batch;
  r.forwards.assign(req.forwards.begin() + s.begin, req.forwards.begin() + s.end);
  return r;
}

StepBatch Distributed::local_batch(const StepBatch& b, bool* counts) const {
  *counts = true;
  if (!active() || mode_ != DistMode::Data) return b;
  const int64_t rows = b.input_ids.size(0);
  Span s = split_range(rows, rank(), world());
  if (s.size() == 0) {  // a short last batch: run one row for the update's sake, count nothing
    *counts = false;
    s = Span{0, 1};
  }
  auto part = [&](const at::Tensor& t) { return t.defined() ? t.narrow(0, s.begin, s.size()) : t; };
  return StepBatch{part(b.input_ids), part(b.attention_mask), part(b.labels)};
}

GlobalLosses Distributed::combine(int64_t F, const LocalLosses& mine) {
  GlobalLosses g;
  const bool data = active() && mode_ == DistMode::Data;
  std::vector<double> v;
  if (!data) {
    const Span s = forward_share(F);
    ZOFF_CHECK(int64_t(mine.mean.size()) == s.size(), "combine: ", mine.mean.size(), " losses for a share of ",
               s.size());
    v.assign(size_t(F), 0.0);
    for (int64_t i = 0; i < s.size(); ++i) v[size_t(s.begin + i)] = mine.mean[size_t(i)];
  } else {
    ZOFF_CHECK(int64_t(mine.nll.size()) == F && int64_t(mine.tokens.size()) == F, "combine: data mode needs ", F,
               " NLL sums and token counts");
    v = mine.nll;
    v.insert(v.end(), mine.tokens.begin(), mine.tokens.end());
  }
  v.push_back(mine.evaluated_tokens);
  v.push_back(mine.stop ? 1.0 : 0.0);
  std::vector<double> s = sum_in_rank_order(*coll_, v);  // identity for a world of one
  g.stop = s.back() > 0;
  s.pop_back();
  g.evaluated_tokens = s.back();
  s.pop_back();
  if (!data) {
    g.losses = std::move(s);  // 0 + ... + x + ... + 0 = x: each loss exactly as its rank computed it
  } else {
    g.losses.resize(size_t(F));
    for (int64_t f = 0; f < F; ++f) g.losses[size_t(f)] = s[size_t(f)] / std::max(1.0, s[size_t(F + f)]);
  }
  return g;
}

void Distributed::check_same_config(const std::string& mine) {
  if (!active()) return;
  std::string root = mine;
  coll_->broadcast(root, 0);
  std::string diff;
  if (root != mine) {
    std::istringstream a(root), b(mine);
    std::string la, lb, section;
    int line = 0;
    for (;;) {
      ++line;
      const bool ga = bool(std::getline(a, la)), gb = bool(std::getline(b, lb));
      if (!ga && !gb) break;
      if (la != lb || ga != gb) {
        const std::string key = la.substr(0, la.find(" = "));
        diff = (section.empty() ? "" : section + "." + key + ", ") + "line " + std::to_string(line) +
               " of the resolved config: rank 0 has '" + (ga ? la : "<end>") + "', rank " + std::to_string(rank()) +
               " has '" + (gb ? lb : "<end>") + "'";
        break;
      }
      if (la.size() > 2 && la.front() == '[' && la.back() == ']') section = la.substr(1, la.size() - 2);
    }
  }
  std::vector<double> bad(size_t(world()), 0.0);
  bad[size_t(rank())] = diff.empty() ? 0.0 : 1.0;
  bad = sum_in_rank_order(*coll_, bad);
  std::string who;
  for (int r = 0; r < world(); ++r)
    if (bad[size_t(r)] > 0) who += (who.empty() ? "" : ", ") + std::to_string(r);
  if (!diff.empty())
    ZOFF_INPUT_FAIL(source_, ": rank ", rank(), " runs a different config than rank 0 (", diff,
                    "); every rank must get the same config and --set overrides");
  ZOFF_INPUT_CHECK(who.empty(), source_, ": rank(s) ", who,
                   " run a different config than rank 0 (their errors name the first differing key)");
}

int cuda_device_count() {
#ifdef ZOFF_WITH_CUDA
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
#else
  return 0;
#endif
}

void select_cuda_device(int index) {
#ifdef ZOFF_WITH_CUDA
  ZOFF_CHECK(index >= 0 && index < cuda_device_count(), "CUDA device ", index, " does not exist (",
             cuda_device_count(), " visible)");
  c10::cuda::set_device(c10::DeviceIndex(index));
  const cudaError_t e = cudaSetDevice(index);
  ZOFF_CHECK(e == cudaSuccess, "cudaSetDevice(", index, "): ", cudaGetErrorString(e));
#else
  ZOFF_FAIL("select_cuda_device(", index, "): this zoff was built without CUDA");
#endif
}

}  // namespace zoff
