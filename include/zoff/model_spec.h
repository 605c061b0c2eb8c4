// ModelSpec: the architecture of a decoder-only LM, parsed from an HF config.json or built by hand.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace zoff {

enum class Arch { OPT, Llama, Qwen2 };
const char* arch_name(Arch a);  // "opt", "llama", "qwen2"

struct ModelSpec {
  Arch arch = Arch::OPT;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;  // == num_heads for OPT
  int64_t head_dim = 0;      // hidden_size / num_heads unless the config says otherwise
  int64_t ffn_dim = 0;       // OPT ffn_dim, Llama/Qwen2 intermediate_size
  int64_t max_positions = 0;
  bool tie_word_embeddings = true;
  int64_t pad_token_id = -1;
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;

  // OPT
  bool do_layer_norm_before = true;
  int64_t word_embed_proj_dim = 0;  // == hidden_size unless project_in/out exist
  bool enable_bias = true;
  bool remove_final_layer_norm = false;
  bool layer_norm_elementwise_affine = true;
  std::string activation = "relu";  // OPT activation_function; Llama/Qwen2 hidden_act
  int64_t position_offset = 2;      // OPT learned positions are indexed at pos + 2
  double layer_norm_eps = 1e-5;

  // Llama / Qwen2
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  bool attention_bias = false;  // bias on q/k/v (and o for Llama's attention_bias)
  bool o_proj_bias = false;
  bool mlp_bias = false;

  bool has_project_in_out() const { return arch == Arch::OPT && word_embed_proj_dim != hidden_size; }
  // Trainable parameter counts (tied weights counted once).
  int64_t num_params() const;
  int64_t block_params() const;  // one decoder layer
  // Validates internal consistency (divisibility, positive sizes); throws InputError naming `source`.
  void validate(const std::string& source) const;
};

// Parses an HF config.json (model_type opt, llama, qwen2). Errors name the file and the field.
ModelSpec parse_hf_config(const std::string& path);
// Same from parsed JSON; `source` names where it came from, for errors.
ModelSpec model_spec_from_json(const nlohmann::json& j, const std::string& source);
// The HF config.json for a spec (written with checkpoints so transformers can load them).
nlohmann::json model_spec_to_json(const ModelSpec& spec);

}  // namespace zoff
