// Factories of the concrete optimizers and shared JSON helpers (internal to src/optim).
#pragma once

#include "zoff/optimizer.h"

namespace zoff {

std::unique_ptr<ZoOptimizer> make_mezo(const OptimizerConfig& c, uint64_t seed, int64_t total);
std::unique_ptr<ZoOptimizer> make_subzero(const OptimizerConfig& c, uint64_t seed, int64_t total);
std::unique_ptr<ZoOptimizer> make_fzoo(const OptimizerConfig& c, uint64_t seed, int64_t total);
std::unique_ptr<ZoOptimizer> make_svrg(const OptimizerConfig& c, uint64_t seed, int64_t total);

nlohmann::json terms_to_json(const std::vector<DirTerm>& t);
std::vector<DirTerm> terms_from_json(const nlohmann::json& a);

}  // namespace zoff
