// HF config.json <-> ModelSpec for OPT, Llama and Qwen2, with errors naming the file and field.
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "zoff/error.h"
#include "zoff/model_spec.h"

namespace zoff {

using nlohmann::json;

namespace {

// Typed field access; a field that is absent or JSON null counts as missing.
class Fields {
 public:
  Fields(const json& j, const std::string& source) : j_(j), src_(source) {}

  const json* get(const std::string& key) const {
    auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  bool has(const std::string& key) const { return get(key) != nullptr; }

  int64_t req_int(const std::string& key) const {
    ZOFF_INPUT_CHECK(has(key), src_, ": required field '", key, "' is missing");
    return as_int(*get(key), key);
  }
  int64_t opt_int(const std::string& key, int64_t def) const {
    return has(key) ? as_int(*get(key), key) : def;
  }
  double opt_num(const std::string& key, double def) const {
    const json* v = get(key);
    if (!v) return def;
    ZOFF_INPUT_CHECK(v->is_number(), src_, ": field '", key, "' must be a number, got ",
                     v->type_name(), " ", v->dump());
    return v->get<double>();
  }
  bool opt_bool(const std::string& key, bool def) const {
    const json* v = get(key);
    if (!v) return def;
    ZOFF_INPUT_CHECK(v->is_boolean(), src_, ": field '", key, "' must be true or false, got ",
                     v->type_name(), " ", v->dump());
    return v->get<bool>();
  }
  std::string opt_str(const std::string& key, const std::string& def) const {
    const json* v = get(key);
    if (!v) return def;
    ZOFF_INPUT_CHECK(v->is_string(), src_, ": field '", key, "' must be a string, got ",
                     v->type_name(), " ", v->dump());
    return v->get<std::string>();
  }
  // Token ids: null/absent is -1; a list (Llama 3's eos_token_id) gives its first entry.
  int64_t token_id(const std::string& key) const {
    const json* v = get(key);
    if (!v) return -1;
    if (v->is_array()) {
      ZOFF_INPUT_CHECK(!v->empty(), src_, ": field '", key, "' is an empty list");
      return as_int((*v)[0], key);
    }
    return as_int(*v, key);
  }

  int64_t as_int(const json& v, const std::string& key) const {
    ZOFF_INPUT_CHECK(v.is_number_integer(), src_, ": field '", key, "' must be an integer, got ",
                     v.type_name(), " ", v.dump());
    ZOFF_INPUT_CHECK(!v.is_number_unsigned() || v.get<uint64_t>() <= uint64_t(INT64_MAX), src_,
                     ": field '", key, "' is too large: ", v.dump());
    return v.get<int64_t>();
  }

 private:
  const json& j_;
  const std::string& src_;
};

void parse_opt(const Fields& f, ModelSpec& s) {
  s.ffn_dim = f.req_int("ffn_dim");
  s.num_kv_heads = s.num_heads;
  s.head_dim = s.num_heads > 0 ? s.hidden_size / s.num_heads : 0;
  s.do_layer_norm_before = f.opt_bool("do_layer_norm_before", true);
  s.word_embed_proj_dim = f.opt_int("word_embed_proj_dim", s.hidden_size);
  s.enable_bias = f.opt_bool("enable_bias", true);
  s.remove_final_layer_norm = f.opt_bool("_remove_final_layer_norm", false);
  s.layer_norm_elementwise_affine = f.opt_bool("layer_norm_elementwise_affine", true);
  s.activation = f.opt_str("activation_function", "relu");
  s.tie_word_embeddings = f.opt_bool("tie_word_embeddings", true);
  s.position_offset = 2;
  s.layer_norm_eps = 1e-5;  // OPT's nn.LayerNorm default; configs do not carry it
}

// rope_theta may sit at the top level (transformers 4), in rope_parameters (transformers 5) or in
// rope_scaling; only unscaled ("default") RoPE is implemented. Two sources must agree.
double parse_rope_theta(const Fields& f, const std::string& src) {
  double theta = 0;
  std::string from;
  auto take = [&](double v, const std::string& field) {
    ZOFF_INPUT_CHECK(from.empty() || v == theta, src, ": field '", field, "' (", v,
                     ") disagrees with '", from, "' (", theta, ")");
    theta = v;
    from = field;
  };
  if (f.has("rope_theta")) take(f.opt_num("rope_theta", 0), "rope_theta");
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    if (!f.has(key)) continue;
    const json& r = *f.get(key);
    ZOFF_INPUT_CHECK(r.is_object(), src, ": field '", key, "' must be an object, got ",
                     r.type_name());
    const std::string k(key);
    Fields rf(r, src);
    // transformers 4 spelled rope_type as "type".
    std::string type = rf.opt_str("rope_type", rf.opt_str("type", "default"));
    ZOFF_INPUT_CHECK(type == "default", src, ": field '", k, ".rope_type' is '", type,
                     "': scaled RoPE is not supported (only 'default')");
    if (rf.has("rope_theta")) take(rf.opt_num("rope_theta", 0), k + ".rope_theta");
  }
  return from.empty() ? 10000.0 : theta;
}

void parse_llama_like(const Fields& f, ModelSpec& s, const std::string& src) {
  s.ffn_dim = f.req_int("intermediate_size");
  s.num_kv_heads = f.opt_int("num_key_value_heads", s.num_heads);
  if (f.has("head_dim")) {
    s.head_dim = f.opt_int("head_dim", 0);
  } else {
    ZOFF_INPUT_CHECK(s.num_heads <= 0 || s.hidden_size % s.num_heads == 0, src,
                     ": field 'hidden_size' (", s.hidden_size,
                     ") must be divisible by 'num_attention_heads' (", s.num_heads, ")");
    s.head_dim = s.num_heads > 0 ? s.hidden_size / s.num_heads : 0;
  }
  s.rms_norm_eps = f.opt_num("rms_norm_eps", 1e-6);
  s.rope_theta = parse_rope_theta(f, src);
  s.activation = f.opt_str("hidden_act", "silu");
  s.tie_word_embeddings = f.opt_bool("tie_word_embeddings", false);
  s.word_embed_proj_dim = 0;
  s.position_offset = 0;
  if (s.arch == Arch::Llama) {
    s.attention_bias = f.opt_bool("attention_bias", false);
    s.o_proj_bias = s.attention_bias;
    s.mlp_bias = f.opt_bool("mlp_bias", false);
  } else {
    ZOFF_INPUT_CHECK(!f.opt_bool("use_sliding_window", false), src,
                     ": field 'use_sliding_window' is true: sliding-window attention is not "
                     "supported");
    if (const json* lt = f.get("layer_types")) {
      ZOFF_INPUT_CHECK(lt->is_array(), src, ": field 'layer_types' must be a list");
      for (const json& t : *lt)
        ZOFF_INPUT_CHECK(t == "full_attention", src, ": field 'layer_types' contains ", t.dump(),
                         ": only full_attention is supported");
    }
    s.attention_bias = true;  // Qwen2 always has q/k/v bias, never o_proj or MLP bias
    s.o_proj_bias = false;
    s.mlp_bias = false;
  }
}

}  // namespace

ModelSpec model_spec_from_json(const json& j, const std::string& source) {
  ZOFF_INPUT_CHECK(j.is_object(), source, ": a model config must be a JSON object, got ",
                   j.type_name());
  Fields f(j, source);
  ModelSpec s;
  ZOFF_INPUT_CHECK(f.has("model_type"), source, ": required field 'model_type' is missing");
  const std::string type = f.opt_str("model_type", "");
  if (type == "opt") s.arch = Arch::OPT;
  else if (type == "llama") s.arch = Arch::Llama;
  else if (type == "qwen2") s.arch = Arch::Qwen2;
  else ZOFF_INPUT_FAIL("unsupported model_type '", type, "' in ", source,
                       " (supported: opt, llama, qwen2)");

  s.vocab_size = f.req_int("vocab_size");
  s.hidden_size = f.req_int("hidden_size");
  s.num_layers = f.req_int("num_hidden_layers");
  s.num_heads = f.req_int("num_attention_heads");
  s.max_positions = f.req_int("max_position_embeddings");
  s.pad_token_id = f.token_id("pad_token_id");
  s.bos_token_id = f.token_id("bos_token_id");
  s.eos_token_id = f.token_id("eos_token_id");
  if (s.arch == Arch::OPT) parse_opt(f, s);
  else parse_llama_like(f, s, source);
  s.validate(source);
  return s;
}

ModelSpec parse_hf_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ZOFF_INPUT_CHECK(in.good(), "cannot open model config ", path);
  std::stringstream ss;
  ss << in.rdbuf();
  json j;
  try {
    j = json::parse(ss.str());
  } catch (const json::parse_error& e) {
    ZOFF_INPUT_FAIL(path, ": not valid JSON: ", e.what());
  }
  return model_spec_from_json(j, path);
}

json model_spec_to_json(const ModelSpec& s) {
  auto id = [](int64_t v) { return v < 0 ? json(nullptr) : json(v); };
  json j = {{"model_type", arch_name(s.arch)},
            {"vocab_size", s.vocab_size},
            {"hidden_size", s.hidden_size},
            {"num_hidden_layers", s.num_layers},
            {"num_attention_heads", s.num_heads},
            {"max_position_embeddings", s.max_positions},
            {"tie_word_embeddings", s.tie_word_embeddings},
            {"pad_token_id", id(s.pad_token_id)},
            {"bos_token_id", id(s.bos_token_id)},
            {"eos_token_id", id(s.eos_token_id)},
            {"torch_dtype", "float32"}};
  if (s.arch == Arch::OPT) {
    j["architectures"] = {"OPTForCausalLM"};
    j["ffn_dim"] = s.ffn_dim;
    j["do_layer_norm_before"] = s.do_layer_norm_before;
    j["word_embed_proj_dim"] = s.word_embed_proj_dim;
    j["enable_bias"] = s.enable_bias;
    j["_remove_final_layer_norm"] = s.remove_final_layer_norm;
    j["layer_norm_elementwise_affine"] = s.layer_norm_elementwise_affine;
    j["activation_function"] = s.activation;
    return j;
  }
  j["architectures"] = {s.arch == Arch::Llama ? "LlamaForCausalLM" : "Qwen2ForCausalLM"};
  j["intermediate_size"] = s.ffn_dim;
  j["num_key_value_heads"] = s.num_kv_heads;
  j["head_dim"] = s.head_dim;
  j["rms_norm_eps"] = s.rms_norm_eps;
  // Both spellings, so transformers 4 (top-level) and 5 (rope_parameters) read the same theta.
  j["rope_theta"] = s.rope_theta;
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", s.rope_theta}};
  j["hidden_act"] = s.activation;
  if (s.arch == Arch::Llama) {
    j["attention_bias"] = s.attention_bias;
    j["mlp_bias"] = s.mlp_bias;
  } else {
    j["use_sliding_window"] = false;
  }
  return j;
}

}  // namespace zoff
