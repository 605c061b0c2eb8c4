// Helpers shared by the zoff subcommands: reading tensors from files, device and dtype choice.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "zoff/dtype.h"
#include "zoff/safetensors.h"

namespace zoff::cli {

// A CPU copy of tensor `name` of `file` in its stored dtype (F8_E4M3 comes as uint8).
// InputError naming the file and the tensor when it is absent.
at::Tensor read_tensor(const SafetensorsFile& file, const std::string& name);

// "auto" -> cuda when LibTorch has CUDA and a GPU is visible, else cpu. "cuda" without CUDA is an
// InputError (exit 2) naming `flag`.
at::Device resolve_device(const std::string& name, const std::string& flag);
bool cuda_available();

// "fp32" | "bf16" | "fp16" (and the long spellings parse_config_dtype takes) -> ATen dtype.
at::ScalarType parse_compute_dtype(const std::string& s, const std::string& flag);
at::ScalarType compute_scalar_type(DType t);  // F32, BF16, F16 -> ATen

// "[2, 16, 96]"
std::string shape_str(const at::IntArrayRef& shape);

}  // namespace zoff::cli
