// Internal to src/dist: what the c10d rendezvous hands to the NCCL backend (one of the two files
// that include c10d headers; the rest of zoff sees only zoff/collective.h).
#pragma once

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <memory>
#include <string>

#include "zoff/collective.h"

namespace zoff::dist_detail {

// The message of a c10d/ATen/std exception without a C++ backtrace.
std::string what_of(const std::exception& e);

#ifdef ZOFF_HAVE_NCCL
// NCCL communicator of env.world ranks on GPU opts.cuda_device; the unique id travels through
// `store` (nccl_collective.cpp).
std::unique_ptr<Collective> make_nccl_collective(const c10::intrusive_ptr<c10d::Store>& store, const DistEnv& env,
                                                 const CollectiveOptions& opts);
#endif

}  // namespace zoff::dist_detail
