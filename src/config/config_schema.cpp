// The config schema table (every key of [model], [policy], [optimizer], [data], [train]) and the
// enum spellings; see Note [One schema table] in config_schema.h.
#include "config_schema.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>

#include "zoff/error.h"

namespace zoff {

const char* optimizer_kind_name(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::MeZO: return "mezo";
    case OptimizerKind::FZOO: return "fzoo";
    case OptimizerKind::SubZero: return "subzero";
    case OptimizerKind::SVRG: return "svrg";
  }
  return "?";
}

const char* dist_mode_name(DistMode m) { return m == DistMode::Data ? "data" : "perturbation"; }

const char* config_dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "fp32";
    case DType::BF16: return "bf16";
    case DType::F16: return "fp16";
    case DType::F8_E4M3: return "fp8";
    default: return dtype_name(t);
  }
}

namespace config_detail {
namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(uint8_t(c)));
  return s;
}

std::string show(const Value& v) {
  if (auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&v)) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", *d);
    return buf;
  }
  if (auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  return std::get<std::string>(v);
}

// Accessor helpers: A is a lambda RunConfig& -> member&.
template <class A>
using MemberOf = std::remove_reference_t<decltype(std::declval<A>()(std::declval<RunConfig&>()))>;

template <class A>
Field integer(const char* sec, const char* key, A acc, int64_t lo, int64_t hi = INT64_MAX,
              std::string why = "") {
  using T = MemberOf<A>;
  if (uint64_t(std::numeric_limits<T>::max()) < uint64_t(INT64_MAX))
    hi = std::min(hi, int64_t(std::numeric_limits<T>::max()));
  Field f;
  f.section = sec;
  f.key = key;
  f.kind = Kind::Int;
  f.check = [lo, hi, why](const Value& v) -> std::string {
    int64_t x = std::get<int64_t>(v);
    if (x >= lo && x <= hi) return "";
    std::string bound = x < lo ? "must be >= " + std::to_string(lo) : "must be <= " + std::to_string(hi);
    return bound + ", got " + std::to_string(x) + (why.empty() ? "" : " (" + why + ")");
  };
  f.set = [acc](RunConfig& c, const Value& v) { acc(c) = T(std::get<int64_t>(v)); };
  f.get = [acc](const RunConfig& c) -> Value { return int64_t(acc(const_cast<RunConfig&>(c))); };
  return f;
}

// lo_open: the bound itself is excluded (eps > 0).
template <class A>
Field number(const char* sec, const char* key, A acc, double lo, bool lo_open) {
  Field f;
  f.section = sec;
  f.key = key;
  f.kind = Kind::Float;
  f.check = [lo, lo_open](const Value& v) -> std::string {
    double x = std::get<double>(v);
    if (!std::isfinite(x)) return "must be finite, got " + show(v);
    if (lo_open ? x > lo : x >= lo) return "";
    return std::string("must be ") + (lo_open ? "> " : ">= ") + show(Value(lo)) + ", got " + show(v);
  };
  f.set = [acc](RunConfig& c, const Value& v) { acc(c) = std::get<double>(v); };
  f.get = [acc](const RunConfig& c) -> Value { return acc(const_cast<RunConfig&>(c)); };
  return f;
}

template <class A>
Field boolean(const char* sec, const char* key, A acc) {
  Field f;
  f.section = sec;
  f.key = key;
  f.kind = Kind::Bool;
  f.check = [](const Value&) { return std::string(); };
  f.set = [acc](RunConfig& c, const Value& v) { acc(c) = std::get<bool>(v); };
  f.get = [acc](const RunConfig& c) -> Value { return bool(acc(const_cast<RunConfig&>(c))); };
  return f;
}

// kind: String, Path. allow_empty: whether "" is a valid value.
template <class A>
Field text(const char* sec, const char* key, A acc, Kind kind, bool allow_empty) {
  Field f;
  f.section = sec;
  f.key = key;
  f.kind = kind;
  f.check = [allow_empty](const Value& v) -> std::string {
    return allow_empty || !std::get<std::string>(v).empty() ? "" : "must not be empty";
  };
  f.set = [acc](RunConfig& c, const Value& v) { acc(c) = std::get<std::string>(v); };
  f.get = [acc](const RunConfig& c) -> Value { return acc(const_cast<RunConfig&>(c)); };
  return f;
}

// A Choice stored as its canonical string.
template <class A>
Field choice(const char* sec, const char* key, A acc, std::vector<std::string> choices,
             std::vector<std::pair<std::string, std::string>> aliases = {}) {
  Field f = text(sec, key, acc, Kind::Choice, false);
  f.choices = std::move(choices);
  f.aliases = std::move(aliases);
  return f;
}

// A Choice stored as an enum: to_enum gets the canonical string, from_enum gives it back.
template <class Set, class Get>
Field enum_choice(const char* sec, const char* key, std::vector<std::string> choices,
                  std::vector<std::pair<std::string, std::string>> aliases, Set set, Get get) {
  Field f;
  f.section = sec;
  f.key = key;
  f.kind = Kind::Choice;
  f.choices = std::move(choices);
  f.aliases = std::move(aliases);
  f.check = [](const Value&) { return std::string(); };
  f.set = [set](RunConfig& c, const Value& v) { set(c, std::get<std::string>(v)); };
  f.get = [get](const RunConfig& c) -> Value { return std::string(get(c)); };
  return f;
}

const std::vector<std::pair<std::string, std::string>> kDTypeAliases = {
    {"float32", "fp32"}, {"f32", "fp32"},  {"bfloat16", "bf16"},
    {"float16", "fp16"}, {"f16", "fp16"}, {"half", "fp16"}};

DType dtype_of(const std::string& s) {
  DType t = DType::F32;
  ZOFF_CHECK(parse_config_dtype(s, &t), "schema: dtype spelling '", s, "'");
  return t;
}

TransferFormat transfer_of(const std::string& s) {
  if (s == "bf16") return TransferFormat::BF16;
  if (s == "fp16") return TransferFormat::F16;
  if (s == "fp8") return TransferFormat::FP8;
  if (s == "bf16-split") return TransferFormat::BF16Split;
  if (s == "auto") return TransferFormat::Auto;
  return TransferFormat::Same;
}

std::vector<Field> build_fields() {
  std::vector<Field> f;
#define ACC(expr) [](RunConfig& c) -> auto& { return c.expr; }
  // [model]
  f.push_back(text("model", "checkpoint", ACC(model.checkpoint), Kind::Path, true));
  f.push_back(boolean("model", "dummy_weights", ACC(model.dummy_weights)));
  f.push_back(integer("model", "dummy_seed", ACC(model.dummy_seed), 0));

  // [policy]
  f.push_back(text("policy", "name", ACC(policy.name), Kind::String, false));
  f.push_back(enum_choice(
      "policy", "storage_dtype", {"fp32", "bf16", "fp16"}, kDTypeAliases,
      [](RunConfig& c, const std::string& s) { c.policy.storage_dtype = dtype_of(s); },
      [](const RunConfig& c) { return config_dtype_name(c.policy.storage_dtype); }));
  f.push_back(enum_choice(
      "policy", "transfer", {"same", "bf16", "fp16", "fp8", "bf16-split", "auto"},
      {{"bfloat16", "bf16"}, {"float16", "fp16"}, {"f16", "fp16"}, {"fp8_e4m3", "fp8"}, {"e4m3", "fp8"}},
      [](RunConfig& c, const std::string& s) { c.policy.transfer = transfer_of(s); },
      [](const RunConfig& c) { return transfer_format_name(c.policy.transfer); }));
  f.push_back(enum_choice(
      "policy", "compute_dtype", {"fp32", "bf16", "fp16"}, kDTypeAliases,
      [](RunConfig& c, const std::string& s) { c.policy.compute_dtype = dtype_of(s); },
      [](const RunConfig& c) { return config_dtype_name(c.policy.compute_dtype); }));
  f.push_back(boolean("policy", "offload", ACC(policy.offload)));
  f.push_back(integer("policy", "num_slots", ACC(policy.num_slots), 2, 64,
                      "one slot computes while the next uploads"));
  f.push_back(integer("policy", "prefetch_depth", ACC(policy.prefetch_depth), 0));
  f.push_back(integer("policy", "resident_blocks", ACC(policy.resident_blocks), -1, INT64_MAX,
                      "-1 lets the planner decide"));
  {
    Field b = integer("policy", "gpu_memory_budget", ACC(policy.gpu_memory_budget), 0);
    b.kind = Kind::Bytes;
    f.push_back(b);
  }
  f.push_back(enum_choice(
      "policy", "update_site", {"gpu", "cpu", "deferred"}, {{"device", "gpu"}, {"cuda", "gpu"}, {"host", "cpu"}},
      [](RunConfig& c, const std::string& s) {
        c.policy.update_site = s == "cpu" ? UpdateSite::Cpu : s == "deferred" ? UpdateSite::Deferred : UpdateSite::Gpu;
      },
      [](const RunConfig& c) { return update_site_name(c.policy.update_site); }));
  f.push_back(boolean("policy", "pin_memory", ACC(policy.pin_memory)));
  f.push_back(integer("policy", "deferred_max_lag", ACC(policy.deferred_max_lag), 1, 64));
  f.push_back(enum_choice(
      "policy", "write_back", {"auto", "dense", "delta"}, {},
      [](RunConfig& c, const std::string& s) {
        c.policy.write_back = s == "dense" ? WriteBack::Dense : s == "delta" ? WriteBack::Delta : WriteBack::Auto;
      },
      [](const RunConfig& c) { return write_back_name(c.policy.write_back); }));
  f.push_back(integer("policy", "delta_list_divisor", ACC(policy.delta_list_divisor), 1, 1 << 20,
                      "exception list capacity = block elements / this"));

  // [optimizer]
  f.push_back(enum_choice(
      "optimizer", "kind", {"mezo", "fzoo", "subzero", "svrg"},
      {{"mezo-svrg", "svrg"}, {"mezo_svrg", "svrg"}},
      [](RunConfig& c, const std::string& s) { c.optimizer.kind = parse_optimizer_kind(s, "optimizer.kind"); },
      [](const RunConfig& c) { return optimizer_kind_name(c.optimizer.kind); }));
  f.push_back(number("optimizer", "lr", ACC(optimizer.lr), 0, false));
  f.push_back(number("optimizer", "eps", ACC(optimizer.eps), 0, true));
  f.push_back(number("optimizer", "weight_decay", ACC(optimizer.weight_decay), 0, false));
  f.push_back(choice("optimizer", "lr_schedule", ACC(optimizer.lr_schedule), {"constant", "linear", "cosine"}));
  f.push_back(integer("optimizer", "warmup_steps", ACC(optimizer.warmup_steps), 0));
  f.push_back(choice("optimizer", "direction", ACC(optimizer.direction), {"gaussian", "rademacher"},
                     {{"normal", "gaussian"}}));
  f.push_back(integer("optimizer", "fzoo_n", ACC(optimizer.fzoo_n), 2, INT64_MAX,
                      "FZOO normalises by the std of N losses"));
  f.push_back(integer("optimizer", "mezo_q", ACC(optimizer.mezo_q), 1, 4096,
                      "MeZO/SubZero directions per step (n-SPSA), 2 forwards each"));
  f.push_back(choice("optimizer", "fzoo_convention", ACC(optimizer.fzoo_convention), {"code", "paper"}));
  f.push_back(integer("optimizer", "subzero_rank", ACC(optimizer.subzero_rank), 1));
  f.push_back(integer("optimizer", "subzero_period", ACC(optimizer.subzero_period), 1));
  f.push_back(integer("optimizer", "svrg_q", ACC(optimizer.svrg_q), 1));
  f.push_back(number("optimizer", "svrg_lr_inner", ACC(optimizer.svrg_lr_inner), 0, false));
  f.push_back(number("optimizer", "svrg_lr_full", ACC(optimizer.svrg_lr_full), 0, false));
  f.push_back(integer("optimizer", "svrg_full_batch_size", ACC(optimizer.svrg_full_batch_size), 0,
                      INT64_MAX, "0 means the whole train split"));
  f.push_back(choice("optimizer", "svrg_anchor", ACC(optimizer.svrg_anchor), {"rebuild", "store"}));

  // [data]
  f.push_back(choice("data", "task", ACC(data.task), {"causal_lm", "classification", "pretokenized"},
                     {{"causal-lm", "causal_lm"}, {"lm", "causal_lm"}}));
  f.push_back(text("data", "train", ACC(data.train), Kind::Path, true));
  f.push_back(text("data", "eval", ACC(data.eval), Kind::Path, true));
  f.push_back(text("data", "tokenizer", ACC(data.tokenizer), Kind::Path, true));
  f.push_back(integer("data", "max_length", ACC(data.max_length), 1));
  f.push_back(integer("data", "batch_size", ACC(data.batch_size), 1));
  f.push_back(boolean("data", "shuffle", ACC(data.shuffle)));

  // [train]
  f.push_back(integer("train", "steps", ACC(train.steps), 0));
  f.push_back(integer("train", "seed", ACC(train.seed), 0));
  f.push_back(integer("train", "eval_every", ACC(train.eval_every), 0, INT64_MAX, "0 means never"));
  f.push_back(integer("train", "save_every", ACC(train.save_every), 0, INT64_MAX, "0 means never"));
  f.push_back(boolean("train", "save_final", ACC(train.save_final)));
  f.push_back(integer("train", "log_every", ACC(train.log_every), 0, INT64_MAX, "0 means never"));
  f.push_back(text("train", "output_dir", ACC(train.output_dir), Kind::String, false));
  f.push_back(choice("train", "device", ACC(train.device), {"auto", "cpu", "cuda"}, {{"gpu", "cuda"}}));
  f.push_back(boolean("train", "timeline", ACC(train.timeline)));

  // [distributed] (docs/distributed.md)
  f.push_back(enum_choice(
      "distributed", "mode", {"perturbation", "data"}, {{"perturbation-parallel", "perturbation"},
                                                        {"data-parallel", "data"}},
      [](RunConfig& c, const std::string& s) { c.distributed.mode = s == "data" ? DistMode::Data : DistMode::Perturbation; },
      [](const RunConfig& c) { return dist_mode_name(c.distributed.mode); }));
  f.push_back(choice("distributed", "backend", ACC(distributed.backend), {"auto", "gloo", "nccl"}));
  f.push_back(integer("distributed", "timeout_s", ACC(distributed.timeout_s), 1, 86400,
                      "seconds a rank waits for the others before failing"));
#undef ACC
  return f;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (std::tolower(uint8_t(a[i - 1])) != std::tolower(uint8_t(b[j - 1])));
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

const std::vector<Field>& fields() {
  static const std::vector<Field> f = build_fields();
  return f;
}

const Field* find_field(const std::string& section, const std::string& key) {
  for (auto& f : fields())
    if (f.section == section && f.key == key) return &f;
  return nullptr;
}

const std::vector<std::string>& section_names() {
  static const std::vector<std::string> s = {"model", "policy", "optimizer", "data", "train", "distributed"};
  return s;
}

bool section_has_preset(const std::string& section) { return section == "model" || section == "policy"; }

// Note [Spec keys]
// [model.spec] takes HF config.json spellings so a preset reads like the config.json it stands
// for, and model_spec_from_json (src/io) interprets both. The list is closed so that a typo
// ("num_hiden_layers") is an error with a suggestion, not a silently ignored key; it holds what
// model_spec_from_json reads plus keys HF configs carry that zoff ignores (dropout, dtype, ...).
const std::vector<std::string>& spec_keys() {
  static const std::vector<std::string> k = {
      // read by model_spec_from_json (src/io/hf_config.cpp)
      "model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
      "num_key_value_heads", "head_dim", "ffn_dim", "intermediate_size", "max_position_embeddings",
      "tie_word_embeddings", "pad_token_id", "bos_token_id", "eos_token_id", "do_layer_norm_before",
      "word_embed_proj_dim", "enable_bias", "_remove_final_layer_norm",
      "layer_norm_elementwise_affine", "activation_function", "hidden_act", "rope_theta",
      "rope_parameters", "rope_scaling", "rms_norm_eps", "attention_bias", "mlp_bias",
      "use_sliding_window", "layer_types",
      // carried by HF configs, ignored by zoff
      "architectures", "torch_dtype", "dtype", "transformers_version", "use_cache", "dropout",
      "attention_dropout", "activation_dropout", "init_std", "initializer_range", "layerdrop",
      "pretraining_tp", "max_window_layers", "sliding_window", "_name_or_path", "prefix"};
  return k;
}

std::vector<std::string> section_keys(const std::string& section) {
  std::vector<std::string> keys;
  for (auto& f : fields())
    if (f.section == section) keys.push_back(f.key);
  if (section_has_preset(section)) keys.push_back("preset");
  if (section == "model") keys.push_back("spec");
  return keys;
}

std::string kind_expectation(const Field& f) {
  switch (f.kind) {
    case Kind::Bool: return "a boolean";
    case Kind::Int: return "an integer";
    case Kind::Float: return "a number";
    case Kind::String: return "a string";
    case Kind::Path: return "a path string";
    case Kind::Bytes: return "a byte size (\"12GiB\") or an integer";
    case Kind::Choice: return "a string";
  }
  return "?";
}

bool normalize_choice(const Field& f, const std::string& in, std::string* out) {
  std::string s = lower(in);
  for (auto& [alias, canon] : f.aliases)
    if (s == alias) s = canon;
  for (auto& c : f.choices)
    if (s == c) {
      *out = c;
      return true;
    }
  return false;
}

std::string bad_choice_message(const Field& f, const std::string& in) {
  std::string list;
  for (auto& c : f.choices) list += (list.empty() ? "" : ", ") + c;
  std::string guess = closest(in, f.choices);
  return "unknown value '" + in + "' (expected one of: " + list +
         (guess.empty() ? "" : "; did you mean '" + guess + "'?") + ")";
}

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = 3;
  for (auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  std::string c = closest(word, candidates);
  return c.empty() ? "" : " (did you mean '" + c + "'?)";
}

}  // namespace config_detail

OptimizerKind parse_optimizer_kind(const std::string& s, const std::string& what) {
  const config_detail::Field* f = config_detail::find_field("optimizer", "kind");
  std::string canon;
  ZOFF_INPUT_CHECK(config_detail::normalize_choice(*f, s, &canon), what, ": ",
                   config_detail::bad_choice_message(*f, s));
  if (canon == "fzoo") return OptimizerKind::FZOO;
  if (canon == "subzero") return OptimizerKind::SubZero;
  if (canon == "svrg") return OptimizerKind::SVRG;
  return OptimizerKind::MeZO;
}

}  // namespace zoff
