// Collective: the few cross-process operations distributed ZO training needs (c10d/Gloo, NCCL).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace zoff {

// Where this process sits in the job, from torchrun-style environment variables:
// RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT. With none of them set the process is
// alone (rank 0 of 1) and needs no store. from_env throws InputError naming the variable at fault.
struct DistEnv {
  int rank = 0;
  int world = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool distributed() const { return world > 1; }
  static DistEnv from_env();
};

// Note [Collective]
// ZO training moves scalars between processes, never weights or gradients (Note [Exact
// reductions], docs/distributed.md), so the interface is small: a sum over ranks of a short
// vector of doubles, a broadcast of bytes, a barrier. Every call is collective (all ranks call it
// in the same order) and bounded by the configured timeout: a dead or diverged peer ends in a
// zoff::Error naming the operation and the peer's rank where known, never in a hang.
class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  virtual const char* backend() const = 0;  // "local", "gloo", "nccl"
  // v <- sum over ranks of v (element-wise); every rank passes the same length.
  virtual void allreduce_sum(std::vector<double>& v) = 0;
  // bytes <- root's bytes (the other ranks' input is ignored; lengths may differ).
  virtual void broadcast(std::string& bytes, int root) = 0;
  virtual void barrier() = 0;
};

struct CollectiveOptions {
  std::string backend = "auto";  // auto | gloo | nccl; auto: nccl when cuda_device >= 0, else gloo
  std::chrono::milliseconds timeout{300000};
  int cuda_device = -1;          // the GPU of this rank (NCCL); -1: CPU training
};

// A world of one: every operation is the identity.
std::unique_ptr<Collective> make_local_collective();
// Rendezvous through a c10d TCPStore at MASTER_ADDR:MASTER_PORT (rank 0 hosts it) and the process
// group of the chosen backend. env.world == 1 gives make_local_collective() (no store, no env).
std::unique_ptr<Collective> make_collective(const DistEnv& env, const CollectiveOptions& opts);
// The backends this build has, e.g. "gloo nccl" (empty when it has none).
std::string collective_backends();

// Note [Exact reductions]
// Every rank must end with the same bits or the weights (updated from seeds on every rank)
// drift apart. A ring or tree all-reduce may add the ranks' values in an order that depends on
// the algorithm and, in principle, differ between ranks. So zoff never sums real numbers inside
// the collective: each rank writes its vector into its own slot of a zeroed [world x n] buffer,
// the collective sums (x + 0 = x exactly: a pure gather), and every rank adds the slots itself
// in rank order. The result is bitwise the same on every rank and for every backend.
// Returns, element-wise, the sum over ranks of `mine` in rank order 0, 1, ..., world-1.
std::vector<double> sum_in_rank_order(Collective& c, const std::vector<double>& mine);
// All ranks' vectors, [rank][i] (the gather behind sum_in_rank_order).
std::vector<std::vector<double>> gather_all(Collective& c, const std::vector<double>& mine);

}  // namespace zoff
