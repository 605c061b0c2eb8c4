// tests/dist worker scenarios (worker.cpp): what the forked ranks run.
#pragma once

#include <map>
#include <string>

#include "zoff/config.h"

namespace zoff::testing {

// The opt-tiny run every distributed test trains: key=value strings pick kind, fzoo_n, mezo_q,
// mode, batch, steps, lr, offload, out (output_dir), timeout.
RunConfig worker_config(const std::map<std::string, std::string>& kv);

}  // namespace zoff::testing
