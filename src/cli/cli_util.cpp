// Helpers shared by the zoff subcommands: reading tensors from files, device and dtype choice.
#include "cli_util.h"

#include <ATen/Context.h>

#include <sstream>

#include "zoff/error.h"

namespace zoff::cli {

at::Tensor read_tensor(const SafetensorsFile& file, const std::string& name) {
  const TensorInfo* t = file.find(name);
  ZOFF_INPUT_CHECK(t != nullptr, file.path(), ": no tensor '", name, "'");
  // from_blob does not own the mapping; clone() copies out of it (an empty tensor has no data).
  if (t->numel() == 0) return at::empty(t->shape, at::TensorOptions().dtype(to_scalar_type(t->dtype)));
  return at::from_blob(const_cast<void*>(file.data(*t)), t->shape,
                       at::TensorOptions().dtype(to_scalar_type(t->dtype)))
      .clone();
}

bool cuda_available() { return at::hasCUDA(); }

at::Device resolve_device(const std::string& name, const std::string& flag) {
  if (name == "cpu") return at::Device(at::kCPU);
  if (name == "auto") return cuda_available() ? at::Device(at::kCUDA) : at::Device(at::kCPU);
  if (name == "cuda" || name == "gpu") {
#ifdef ZOFF_WITH_CUDA
    ZOFF_INPUT_CHECK(cuda_available(), flag, " ", name, ": no CUDA device is visible");
#else
    ZOFF_INPUT_CHECK(false, flag, " ", name, ": this zoff was built without CUDA (LibTorch ",
                     "has no CUDA); use --device cpu");
#endif
    return at::Device(at::kCUDA);
  }
  ZOFF_INPUT_FAIL(flag, ": unknown device '", name, "' (expected auto, cpu or cuda)");
}

at::ScalarType compute_scalar_type(DType t) {
  switch (t) {
    case DType::F32: return at::kFloat;
    case DType::BF16: return at::kBFloat16;
    case DType::F16: return at::kHalf;
    default: break;
  }
  ZOFF_INPUT_FAIL("compute dtype must be fp32, bf16 or fp16, got ", dtype_name(t));
}

at::ScalarType parse_compute_dtype(const std::string& s, const std::string& flag) {
  DType t;
  ZOFF_INPUT_CHECK(parse_config_dtype(s, &t) && (t == DType::F32 || t == DType::BF16 || t == DType::F16),
                   flag, ": unknown dtype '", s, "' (expected fp32, bf16 or fp16)");
  return compute_scalar_type(t);
}

std::string shape_str(const at::IntArrayRef& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

}  // namespace zoff::cli
