// Reads an HF `tokenizers` tokenizer.json (byte-level BPE) into a BpeSpec.
#include <set>

#include "src/data/tokenizer_loaders.h"
#include "zoff/error.h"
#include "zoff/log.h"

namespace zoff {

using nlohmann::json;

namespace {

std::string type_of(const json& j) {
  return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : "";
}

bool set_string(const json& m, const char* key) {
  return m.contains(key) && m[key].is_string() && !m[key].get<std::string>().empty();
}

// Note [NFC approximation]
// Qwen2's tokenizer.json normalizes text to NFC before splitting. zoff accepts the NFC normalizer
// but does not implement it: text is taken as already NFC, which it is for nearly all text
// (editors, the web and Python's json write NFC). Text with decomposed accents or compatibility
// singletons (U+212B ANGSTROM SIGN) tokenizes differently from HF, still losslessly.

// Reads the pre_tokenizer; returns a reason when it is not one zoff implements.
std::string read_pre_tokenizer(const json& pt, BpeSpec& spec) {
  auto byte_level = [&](const json& b, bool split_before) -> std::string {
    spec.add_prefix_space = b.value("add_prefix_space", true);  // HF's default is true
    bool use_regex = b.value("use_regex", true);
    if (split_before) {
      if (use_regex) return "pre_tokenizer: a Split followed by ByteLevel with use_regex=true is not supported";
    } else {
      spec.pre_tokenizer = use_regex ? PreTokenizerKind::kGpt2 : PreTokenizerKind::kNone;
      spec.pre_tokenizer_name = use_regex ? "gpt2" : "no-split";
    }
    return "";
  };
  std::string type = type_of(pt);
  if (type == "ByteLevel") return byte_level(pt, false);
  if (type != "Sequence") {
    return "pre_tokenizer.type is \"" + (type.empty() ? pt.dump() : type) +
           "\"; zoff supports ByteLevel, or a Sequence of Split (a known regex) and ByteLevel";
  }
  const json& seq = pt["pretokenizers"];
  if (!seq.is_array() || seq.size() != 2 || type_of(seq[0]) != "Split" || type_of(seq[1]) != "ByteLevel") {
    return "pre_tokenizer.pretokenizers is " + seq.dump().substr(0, 200) +
           "; zoff supports [Split (a known regex), ByteLevel] there";
  }
  const json& split = seq[0];
  const json& pat = split["pattern"];
  if (!pat.is_object() || !pat.contains("Regex") || !pat["Regex"].is_string()) {
    return "pre_tokenizer.pretokenizers[0].pattern must be {\"Regex\": ...}";
  }
  std::string regex = pat["Regex"].get<std::string>();
  auto kind = pre_tokenizer_from_regex(regex);
  if (!kind) {
    return "pre_tokenizer.pretokenizers[0].pattern.Regex is \"" + regex +
           "\", not one of the GPT-2, Llama-3 or Qwen2 patterns zoff implements";
  }
  if (split.value("behavior", std::string()) != "Isolated" || split.value("invert", false)) {
    return "pre_tokenizer.pretokenizers[0]: zoff supports behavior \"Isolated\" with invert false";
  }
  spec.pre_tokenizer = *kind;
  spec.pre_tokenizer_name = *kind == PreTokenizerKind::kGpt2 ? "gpt2" : *kind == PreTokenizerKind::kQwen2 ? "qwen2" : "llama3";
  return byte_level(seq[1], true);
}

// The BOS a TemplateProcessing post-processor puts first in a single sequence, if any.
std::optional<std::string> template_bos(const json& pp) {
  std::string type = type_of(pp);
  if (type == "Sequence" && pp.contains("processors") && pp["processors"].is_array()) {
    for (const json& p : pp["processors"]) {
      if (auto b = template_bos(p)) return b;
    }
    return std::nullopt;
  }
  if (type != "TemplateProcessing" || !pp.contains("single") || !pp["single"].is_array() || pp["single"].empty()) {
    return std::nullopt;
  }
  const json& first = pp["single"][0];
  if (first.is_object() && first.contains("SpecialToken") && first["SpecialToken"].contains("id")) {
    return first["SpecialToken"]["id"].get<std::string>();
  }
  return std::nullopt;
}

TokenizerJson read(const std::string& path, const json& j, const HfTokenConfig& cfg) {
  TokenizerJson r;
  auto unsupported = [&](const std::string& why) {
    r.unsupported = path + ": " + why;
    return r;
  };
  ZOFF_INPUT_CHECK(j.is_object(), path, ": expected a JSON object");
  ZOFF_INPUT_CHECK(j.contains("model") && j["model"].is_object(), path, ": field \"model\" is missing or not an object");
  const json& m = j["model"];
  std::string type = type_of(m);
  if (type.empty() && m.contains("merges")) type = "BPE";
  if (type != "BPE") return unsupported("model.type is \"" + type + "\"; zoff reads byte-level BPE tokenizers only");
  if (m.value("byte_fallback", false)) {
    return unsupported("model.byte_fallback is true: a SentencePiece-style BPE, not byte-level");
  }
  if (set_string(m, "continuing_subword_prefix") || set_string(m, "end_of_word_suffix")) {
    return unsupported("model.continuing_subword_prefix / end_of_word_suffix are set: not a byte-level BPE");
  }
  if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"].get<double>() != 0.0) {
    return unsupported("model.dropout is set (BPE dropout randomizes encoding; it is for training only)");
  }
  const json& norm = j.contains("normalizer") ? j["normalizer"] : json();
  if (!norm.is_null() && type_of(norm) != "NFC") {
    return unsupported("normalizer is " + norm.dump().substr(0, 200) + "; zoff supports none or NFC");
  }
  BpeSpec spec;
  spec.source = path;
  if (!j.contains("pre_tokenizer") || j["pre_tokenizer"].is_null()) {
    return unsupported("pre_tokenizer is null: not a byte-level BPE");
  }
  std::string why = read_pre_tokenizer(j["pre_tokenizer"], spec);
  if (!why.empty()) return unsupported(why);
  if (j.contains("decoder") && !j["decoder"].is_null() && type_of(j["decoder"]) != "ByteLevel") {
    return unsupported("decoder.type is \"" + type_of(j["decoder"]) + "\"; zoff supports ByteLevel");
  }
  if (type_of(norm) == "NFC") log::debug("{}: NFC normalizer taken as identity (Note [NFC approximation])", path);

  ZOFF_INPUT_CHECK(m.contains("vocab") && m["vocab"].is_object(), path, ": model.vocab must be an object");
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    ZOFF_INPUT_CHECK(it.value().is_number_integer(), path, ": model.vocab[\"", it.key(), "\"] must be an integer id");
    spec.vocab.emplace(it.key(), it.value().get<int64_t>());
  }
  ZOFF_INPUT_CHECK(m.contains("merges") && m["merges"].is_array(), path, ": model.merges must be an array");
  const json& merges = m["merges"];
  spec.merges.reserve(merges.size());
  spec.merges_field = "model.merges";
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& e = merges[i];
    std::string where = "model.merges[" + std::to_string(i) + "]";
    if (e.is_string()) {
      std::string s = e.get<std::string>();
      size_t sp = s.find(' ');
      ZOFF_INPUT_CHECK(sp != std::string::npos && sp > 0 && sp + 1 < s.size() && s.find(' ', sp + 1) == std::string::npos,
                       path, ": ", where, " is \"", s, "\"; expected two tokens separated by one space");
      spec.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else {
      ZOFF_INPUT_CHECK(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string(), path, ": ", where,
                       " must be \"a b\" or [\"a\", \"b\"]");
      spec.merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    }
  }
  spec.ignore_merges = m.value("ignore_merges", false);
  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    ZOFF_INPUT_CHECK(j["added_tokens"].is_array(), path, ": added_tokens must be an array");
    for (size_t i = 0; i < j["added_tokens"].size(); ++i) {
      std::string where = path + ": added_tokens[" + std::to_string(i) + "]";
      AddedToken a = parse_added_token(j["added_tokens"][i], -1, where);
      ZOFF_INPUT_CHECK(a.id >= 0, where, ".id is missing or negative");
      spec.added_tokens.push_back(std::move(a));
    }
  }
  auto lookup = [&](const std::string& t) -> std::optional<int64_t> {
    for (auto& a : spec.added_tokens) {
      if (a.content == t) return a.id;
    }
    auto it = spec.vocab.find(t);
    return it == spec.vocab.end() ? std::nullopt : std::optional<int64_t>(it->second);
  };
  if (m.contains("unk_token") && m["unk_token"].is_string()) {
    auto id = lookup(m["unk_token"].get<std::string>());
    ZOFF_INPUT_CHECK(id.has_value(), path, ": model.unk_token \"", m["unk_token"].get<std::string>(),
                     "\" is not in the vocabulary");
    spec.special.unk = *id;
  }
  if (j.contains("post_processor") && !j["post_processor"].is_null()) {
    if (auto bos = template_bos(j["post_processor"])) {
      auto id = lookup(*bos);
      ZOFF_INPUT_CHECK(id.has_value(), path, ": post_processor names special token \"", *bos,
                       "\", which is not in the vocabulary");
      spec.special.bos = *id;
      spec.special.add_bos = true;
    }
  }
  finish_special_tokens(spec, cfg);
  r.spec = std::move(spec);
  return r;
}

}  // namespace

void finish_special_tokens(BpeSpec& spec, const HfTokenConfig& cfg) {
  // Added tokens from tokenizer_config.json's added_tokens_decoder that tokenizer.json lacks.
  std::set<std::string> have;
  for (auto& a : spec.added_tokens) have.insert(a.content);
  for (auto& a : cfg.added_tokens) {
    if (have.insert(a.content).second) spec.added_tokens.push_back(a);
  }
  auto lookup = [&](const std::string& t) -> std::optional<int64_t> {
    for (auto& a : spec.added_tokens) {
      if (a.content == t) return a.id;
    }
    auto it = spec.vocab.find(t);
    return it == spec.vocab.end() ? std::nullopt : std::optional<int64_t>(it->second);
  };
  resolve_special_ids(cfg, spec.source, lookup, spec.special);
  for (int64_t id : {spec.special.bos, spec.special.eos, spec.special.pad, spec.special.unk}) {
    if (id < 0) continue;
    bool is_added = false;
    for (auto& a : spec.added_tokens) {
      if (a.id != id) continue;
      is_added = true;
      a.special = true;  // named as bos/eos/pad/unk: skipped by decode(..., skip_special_tokens)
    }
    if (is_added) continue;
    for (auto& [tok, vid] : spec.vocab) {
      if (vid != id) continue;
      AddedToken a;
      a.content = tok;
      a.id = id;
      a.special = true;
      spec.added_tokens.push_back(a);
      have.insert(tok);
      break;
    }
  }
}

TokenizerJson read_tokenizer_json(const std::string& path, const HfTokenConfig& cfg) {
  json j = read_json_file(path);
  try {
    return read(path, j, cfg);
  } catch (const json::exception& e) {
    ZOFF_INPUT_FAIL(path, ": unexpected structure: ", e.what());
  }
}

}  // namespace zoff
