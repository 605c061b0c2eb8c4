// ModelSpec: validation and exact trainable-parameter counts of the OPT, Llama and Qwen2 layouts.
#include "zoff/model_spec.h"

#include "zoff/error.h"

namespace zoff {

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::OPT: return "opt";
    case Arch::Llama: return "llama";
    case Arch::Qwen2: return "qwen2";
  }
  return "?";
}

// Note [Parameter counts]
// The counts follow the HF modules exactly, so they equal the sum of numel over a checkpoint's
// tensors (plus lm_head.weight when tied and omitted from the file, which is counted once).
// OPT layer: q,k,v,out_proj [H,H] (+bias H each if enable_bias), fc1 [F,H] (+F), fc2 [H,F] (+H),
// self_attn_layer_norm and final_layer_norm (weight+bias H each if elementwise affine).
// OPT model: embed_tokens [V,P], embed_positions [max_pos+2,H], project_in [H,P] and project_out
// [P,H] (no bias) when P != H, the final LayerNorm only for pre-LN models without
// _remove_final_layer_norm, lm_head [V,P] if untied.
// Llama/Qwen2 layer: q [nh*hd,H], k,v [nkv*hd,H], o [H,nh*hd], biases as configured, gate/up
// [I,H], down [H,I] (+bias if mlp_bias), two RMSNorm weights H. Model: embed [V,H], norm H,
// lm_head [V,H] if untied.
int64_t ModelSpec::block_params() const {
  const int64_t H = hidden_size, F = ffn_dim;
  if (arch == Arch::OPT) {
    const int64_t b = enable_bias ? 1 : 0;
    const int64_t ln = layer_norm_elementwise_affine ? 2 * H : 0;
    return 4 * (H * H + b * H) + (H * F + b * F) + (F * H + b * H) + 2 * ln;
  }
  const int64_t q = num_heads * head_dim, kv = num_kv_heads * head_dim;
  int64_t attn = H * q + 2 * H * kv + q * H;
  if (attention_bias) attn += q + 2 * kv;
  if (o_proj_bias) attn += H;
  int64_t mlp = 3 * H * F;
  if (mlp_bias) mlp += 2 * F + H;
  return attn + mlp + 2 * H;
}

int64_t ModelSpec::num_params() const {
  const int64_t V = vocab_size, H = hidden_size;
  int64_t n = num_layers * block_params();
  if (arch == Arch::OPT) {
    const int64_t P = word_embed_proj_dim;
    n += V * P + (max_positions + position_offset) * H;
    if (P != H) n += 2 * H * P;
    if (do_layer_norm_before && !remove_final_layer_norm && layer_norm_elementwise_affine)
      n += 2 * H;
    if (!tie_word_embeddings) n += V * P;
    return n;
  }
  n += V * H + H;
  if (!tie_word_embeddings) n += V * H;
  return n;
}

void ModelSpec::validate(const std::string& source) const {
  const bool opt = arch == Arch::OPT;
  auto positive = [&](int64_t v, const char* field) {
    ZOFF_INPUT_CHECK(v > 0, source, ": field '", field, "' must be positive, got ", v);
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(num_layers, "num_hidden_layers");
  positive(num_heads, "num_attention_heads");
  positive(num_kv_heads, "num_key_value_heads");
  positive(head_dim, "head_dim");
  positive(ffn_dim, opt ? "ffn_dim" : "intermediate_size");
  positive(max_positions, "max_position_embeddings");
  ZOFF_INPUT_CHECK(num_heads % num_kv_heads == 0, source, ": field 'num_attention_heads' (",
                   num_heads, ") must be a multiple of 'num_key_value_heads' (", num_kv_heads, ")");
  for (auto [id, field] : {std::pair{pad_token_id, "pad_token_id"}, {bos_token_id, "bos_token_id"},
                           {eos_token_id, "eos_token_id"}})
    ZOFF_INPUT_CHECK(id >= -1 && id < vocab_size, source, ": field '", field, "' (", id,
                     ") is outside the vocabulary of ", vocab_size);
  if (opt) {
    ZOFF_INPUT_CHECK(hidden_size % num_heads == 0, source, ": field 'hidden_size' (", hidden_size,
                     ") must be divisible by 'num_attention_heads' (", num_heads, ")");
    ZOFF_INPUT_CHECK(head_dim == hidden_size / num_heads && num_kv_heads == num_heads, source,
                     ": OPT needs head_dim == hidden_size / num_attention_heads and no GQA");
    positive(word_embed_proj_dim, "word_embed_proj_dim");
    ZOFF_INPUT_CHECK(position_offset == 2, source, ": OPT's position offset is 2, got ",
                     position_offset);
    ZOFF_INPUT_CHECK(activation == "relu" || activation == "gelu" || activation == "gelu_new",
                     source, ": field 'activation_function' is '", activation,
                     "' (supported: relu, gelu, gelu_new)");
    ZOFF_INPUT_CHECK(layer_norm_eps > 0, source, ": layer_norm_eps must be positive");
    return;
  }
  ZOFF_INPUT_CHECK(activation == "silu", source, ": field 'hidden_act' is '", activation,
                   "' (supported: silu)");
  ZOFF_INPUT_CHECK(rope_theta > 0, source, ": field 'rope_theta' must be positive, got ",
                   rope_theta);
  ZOFF_INPUT_CHECK(rms_norm_eps > 0, source, ": field 'rms_norm_eps' must be positive, got ",
                   rms_norm_eps);
  ZOFF_INPUT_CHECK(word_embed_proj_dim == 0 || word_embed_proj_dim == hidden_size, source,
                   ": field 'word_embed_proj_dim' only exists for OPT");
  if (arch == Arch::Llama) {
    ZOFF_INPUT_CHECK(o_proj_bias == attention_bias, source,
                     ": field 'attention_bias': Llama puts it on q/k/v and o_proj alike (o_proj_bias must equal it)");
  } else {
    ZOFF_INPUT_CHECK(attention_bias && !o_proj_bias && !mlp_bias, source,
                     ": fields 'attention_bias', 'o_proj_bias', 'mlp_bias': Qwen2 has bias on q/k/v only");
  }
}

}  // namespace zoff
