// The backend-free part of the collective layer: env parsing, the world of one, exact reductions.
#include "zoff/collective.h"

#include <cerrno>
#include <cstdlib>

#include "zoff/error.h"

namespace zoff {
namespace {

// The variable's value, or nullptr when it is unset (an empty value counts as unset).
const char* env_of(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int64_t env_int(const char* name, int64_t lo, int64_t hi) {
  const char* v = env_of(name);
  ZOFF_INPUT_CHECK(v != nullptr, "environment: ", name, " is not set (distributed runs need RANK, WORLD_SIZE, ",
                   "MASTER_ADDR and MASTER_PORT; `zoff launch` sets them)");
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(v, &end, 10);
  ZOFF_INPUT_CHECK(errno == 0 && end != v && *end == '\0', "environment: ", name, "='", v, "' is not an integer");
  ZOFF_INPUT_CHECK(x >= lo && x <= hi, "environment: ", name, "=", x, " must be in [", lo, ", ", hi, "]");
  return x;
}

class LocalCollective : public Collective {
 public:
  int rank() const override { return 0; }
  int world() const override { return 1; }
  const char* backend() const override { return "local"; }
  void allreduce_sum(std::vector<double>&) override {}
  void broadcast(std::string&, int root) override { ZOFF_CHECK(root == 0, "broadcast root ", root, " in a world of 1"); }
  void barrier() override {}
};

}  // namespace

DistEnv DistEnv::from_env() {
  DistEnv e;
  if (!env_of("WORLD_SIZE")) {
    ZOFF_INPUT_CHECK(!env_of("RANK") || std::string(env_of("RANK")) == "0", "environment: RANK=", env_of("RANK"),
                     " is set but WORLD_SIZE is not");
    return e;
  }
  e.world = int(env_int("WORLD_SIZE", 1, 65536));
  if (e.world == 1) return e;
  e.rank = int(env_int("RANK", 0, e.world - 1));
  // MPI-style launchers may leave LOCAL_RANK out; one host is then assumed.
  e.local_rank = env_of("LOCAL_RANK") ? int(env_int("LOCAL_RANK", 0, 65535)) : e.rank;
  const char* addr = env_of("MASTER_ADDR");
  ZOFF_INPUT_CHECK(addr != nullptr, "environment: MASTER_ADDR is not set (WORLD_SIZE=", e.world,
                   "; `zoff launch` sets it, or export MASTER_ADDR=<host of rank 0>)");
  e.master_addr = addr;
  e.master_port = int(env_int("MASTER_PORT", 1, 65535));
  return e;
}

std::unique_ptr<Collective> make_local_collective() { return std::make_unique<LocalCollective>(); }

std::vector<std::vector<double>> gather_all(Collective& c, const std::vector<double>& mine) {
  const size_t n = mine.size(), W = size_t(c.world()), r = size_t(c.rank());
  if (W == 1) return {mine};
  std::vector<double> buf(W * n, 0.0);
  for (size_t i = 0; i < n; ++i) buf[r * n + i] = mine[i];
  c.allreduce_sum(buf);  // x + 0 + ... + 0 = x: a gather (Note [Exact reductions])
  std::vector<std::vector<double>> out(W);
  for (size_t k = 0; k < W; ++k) out[k].assign(buf.begin() + long(k * n), buf.begin() + long((k + 1) * n));
  // Own slot too from the buffer, not from `mine`: -0.0 + 0.0 is +0.0 on every rank alike.
  return out;
}

std::vector<double> sum_in_rank_order(Collective& c, const std::vector<double>& mine) {
  auto all = gather_all(c, mine);
  std::vector<double> s = all[0];
  for (size_t k = 1; k < all.size(); ++k)
    for (size_t i = 0; i < s.size(); ++i) s[i] += all[k][i];
  return s;
}

}  // namespace zoff
