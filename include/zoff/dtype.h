// Element types zoff stores, transfers and computes in, and their mapping to ATen and safetensors.
#pragma once

#include <cstdint>
#include <string>

namespace zoff {

enum class DType : uint8_t { F32, F16, BF16, F8_E4M3, I64, I32, U8, BOOL };

// Bytes per element.
int64_t dtype_size(DType t);
// The safetensors spelling: "F32", "F16", "BF16", "F8_E4M3", "I64", ...
const char* dtype_name(DType t);
// Parses a safetensors dtype; returns false for an unknown one.
bool parse_dtype(const std::string& s, DType* out);
// Parses a config spelling ("fp32", "float32", "bf16", "bfloat16", "fp16", "float16", "fp8").
bool parse_config_dtype(const std::string& s, DType* out);

}  // namespace zoff
