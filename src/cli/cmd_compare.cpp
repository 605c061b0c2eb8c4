// zoff compare (hidden, for tests): relative L2 error between same-named tensors of two files.
#include <ATen/ATen.h>

#include <cmath>
#include <memory>

#include "cli_util.h"
#include "commands.h"
#include "zoff/error.h"
#include "zoff/safetensors.h"

namespace zoff::cli {
namespace {

struct CompareOptions {
  std::string a, b;
  std::vector<std::string> tensors;
  double rtol = 1e-4;
};

at::Tensor comparable(const SafetensorsFile& f, const std::string& name) {
  const TensorInfo* t = f.find(name);
  ZOFF_INPUT_CHECK(t != nullptr, f.path(), ": no tensor '", name, "'");
  ZOFF_INPUT_CHECK(t->dtype != DType::F8_E4M3, f.path(), ": ", name, ": F8_E4M3 tensors cannot be compared");
  return read_tensor(f, name).to(at::kDouble);
}

// Note [Relative L2 error]
// err = ||a - b|| / ||b|| over all elements (b is the reference), the measure the model parity
// tests use: one number per tensor, insensitive to where in the tensor an error sits, so a
// tolerance holds for any shape. When ||b|| = 0 the absolute ||a - b|| is used. NaN or Inf in
// either tensor is a failure whatever the tolerance.
int run_compare(const CompareOptions& o) {
  auto fa = SafetensorsFile::open(o.a);
  auto fb = SafetensorsFile::open(o.b);
  bool ok = true;
  for (const std::string& name : o.tensors) {
    at::Tensor a = comparable(*fa, name), b = comparable(*fb, name);
    ZOFF_INPUT_CHECK(a.sizes() == b.sizes(), name, ": shape ", shape_str(a.sizes()), " in ", o.a, " but ",
                     shape_str(b.sizes()), " in ", o.b);
    const double nb = b.norm().item<double>();
    const double diff = (a - b).norm().item<double>();
    const double err = nb > 0 ? diff / nb : diff;
    const bool pass = std::isfinite(err) && err <= o.rtol;
    std::printf("%s: relative L2 error %.3e (rtol %.1e, %s) %s\n", name.c_str(), err, o.rtol,
                nb > 0 ? "relative" : "absolute: reference is zero", pass ? "ok" : "FAIL");
    ok = ok && pass;
  }
  ZOFF_CHECK(ok, "compare: ", o.a, " differs from ", o.b, " beyond rtol ", o.rtol);
  return kExitOk;
}

}  // namespace

Command add_compare_command(CLI::App& top) {
  auto o = std::make_shared<CompareOptions>();
  CLI::App* sub = top.add_subcommand(
      "compare",
      "Relative L2 error ||a-b||/||b|| of named tensors of A against the reference B; exit 0 when every "
      "error is <= rtol, 1 otherwise (used by the tests; see docs/cli.md).");
  sub->group("");  // hidden from `zoff --help`, documented in docs/cli.md
  sub->add_option("A", o->a, "safetensors file to check")->required();
  sub->add_option("B", o->b, "reference safetensors file")->required();
  sub->add_option("--tensor", o->tensors, "tensor name (repeatable)")->required();
  sub->add_option("--rtol", o->rtol, "largest accepted relative L2 error")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  return {sub, [o] { return run_compare(*o); }};
}

}  // namespace zoff::cli
