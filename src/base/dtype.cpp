// DType helpers: sizes and names.
#include "zoff/dtype.h"

#include "zoff/error.h"

namespace zoff {

int64_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::F8_E4M3: return 1;
    case DType::I64: return 8;
    case DType::I32: return 4;
    case DType::U8: return 1;
    case DType::BOOL: return 1;
  }
  ZOFF_FAIL("bad dtype");
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F8_E4M3: return "F8_E4M3";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::U8: return "U8";
    case DType::BOOL: return "BOOL";
  }
  return "?";
}

bool parse_dtype(const std::string& s, DType* out) {
  static const struct { const char* n; DType t; } table[] = {
      {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16}, {"F8_E4M3", DType::F8_E4M3},
      {"I64", DType::I64}, {"I32", DType::I32}, {"U8", DType::U8}, {"BOOL", DType::BOOL}};
  for (auto& e : table)
    if (s == e.n) { *out = e.t; return true; }
  return false;
}

bool parse_config_dtype(const std::string& s, DType* out) {
  if (s == "fp32" || s == "float32" || s == "f32") { *out = DType::F32; return true; }
  if (s == "fp16" || s == "float16" || s == "f16") { *out = DType::F16; return true; }
  if (s == "bf16" || s == "bfloat16") { *out = DType::BF16; return true; }
  if (s == "fp8" || s == "fp8_e4m3" || s == "e4m3") { *out = DType::F8_E4M3; return true; }
  return false;
}

}  // namespace zoff
