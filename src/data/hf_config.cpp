// Reads tokenizer_config.json / special_tokens_map.json (Note [Tokenizer side files]).
#include "src/data/hf_config.h"

#include <filesystem>
#include <fstream>

#include "zoff/error.h"

namespace zoff {

using nlohmann::json;
namespace fs = std::filesystem;

json read_json_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  ZOFF_INPUT_CHECK(f.good(), "cannot open ", path);
  try {
    return json::parse(f);
  } catch (const json::exception& e) {
    ZOFF_INPUT_FAIL(path, ": invalid JSON: ", e.what());
  }
}

AddedToken parse_added_token(const json& j, int64_t id, const std::string& where) {
  ZOFF_INPUT_CHECK(j.is_object(), where, " must be an object");
  AddedToken a;
  a.id = id;
  if (j.contains("id")) {
    ZOFF_INPUT_CHECK(j["id"].is_number_integer(), where, ".id must be an integer");
    a.id = j["id"].get<int64_t>();
  }
  ZOFF_INPUT_CHECK(j.contains("content") && j["content"].is_string(), where, ".content must be a string");
  a.content = j["content"].get<std::string>();
  auto flag = [&](const char* key, bool& out) {
    if (!j.contains(key) || j[key].is_null()) return;
    ZOFF_INPUT_CHECK(j[key].is_boolean(), where, ".", key, " must be true or false");
    out = j[key].get<bool>();
  };
  flag("special", a.special);
  flag("lstrip", a.lstrip);
  flag("rstrip", a.rstrip);
  flag("single_word", a.single_word);
  return a;
}

namespace {

// Reads bos_token etc. from one file into cfg unless an earlier (higher-priority) file set it.
void read_tokens(const json& j, const std::string& file, HfTokenConfig& cfg) {
  ZOFF_INPUT_CHECK(j.is_object(), file, ": expected a JSON object");
  auto one = [&](const char* key, std::optional<NamedToken>& out, bool& set) {
    if (set || !j.contains(key)) return;
    const json& v = j[key];
    std::string where = file + ": " + key;
    set = true;
    if (v.is_null()) return;
    if (v.is_string()) {
      out = NamedToken{v.get<std::string>(), where};
    } else {
      ZOFF_INPUT_CHECK(v.is_object() && v.contains("content") && v["content"].is_string(), where,
                       " must be a string, null, or an object with a string \"content\"");
      out = NamedToken{v["content"].get<std::string>(), where};
    }
  };
  one("bos_token", cfg.bos, cfg.bos_set);
  one("eos_token", cfg.eos, cfg.eos_set);
  one("pad_token", cfg.pad, cfg.pad_set);
  one("unk_token", cfg.unk, cfg.unk_set);
}

}  // namespace

HfTokenConfig read_hf_token_config(const std::string& dir) {
  HfTokenConfig cfg;
  fs::path config = fs::path(dir) / "tokenizer_config.json";
  if (fs::exists(config)) {
    std::string file = config.string();
    json j = read_json_file(file);
    read_tokens(j, file, cfg);
    auto flag = [&](const char* key, std::optional<bool>& out) {
      if (!j.contains(key) || j[key].is_null()) return;
      ZOFF_INPUT_CHECK(j[key].is_boolean(), file, ": ", key, " must be true or false");
      out = j[key].get<bool>();
    };
    flag("add_bos_token", cfg.add_bos);
    flag("add_prefix_space", cfg.add_prefix_space);
    if (j.contains("added_tokens_decoder") && !j["added_tokens_decoder"].is_null()) {
      const json& dec = j["added_tokens_decoder"];
      cfg.added_tokens_where = file + ": added_tokens_decoder";
      ZOFF_INPUT_CHECK(dec.is_object(), cfg.added_tokens_where, " must be an object");
      for (auto it = dec.begin(); it != dec.end(); ++it) {
        std::string where = cfg.added_tokens_where + "[\"" + it.key() + "\"]";
        int64_t id = -1;
        try {
          size_t used = 0;
          id = std::stoll(it.key(), &used);
          ZOFF_INPUT_CHECK(used == it.key().size(), where, ": the key must be a token id");
        } catch (const std::logic_error&) {
          ZOFF_INPUT_FAIL(where, ": the key must be a token id");
        }
        cfg.added_tokens.push_back(parse_added_token(it.value(), id, where));
      }
    }
  }
  fs::path map = fs::path(dir) / "special_tokens_map.json";
  if (fs::exists(map)) read_tokens(read_json_file(map.string()), map.string(), cfg);
  return cfg;
}

void resolve_special_ids(const HfTokenConfig& cfg, const std::string& tokenizer_source,
                         const std::function<std::optional<int64_t>(const std::string&)>& lookup,
                         SpecialTokenIds& ids) {
  auto one = [&](const std::optional<NamedToken>& named, bool set, int64_t& id) {
    if (!set) return;
    if (!named) {
      id = -1;
      return;
    }
    std::optional<int64_t> found = lookup(named->content);
    ZOFF_INPUT_CHECK(found.has_value(), named->where, " is \"", named->content, "\", which is not a token of ",
                     tokenizer_source);
    id = *found;
  };
  one(cfg.bos, cfg.bos_set, ids.bos);
  one(cfg.eos, cfg.eos_set, ids.eos);
  one(cfg.pad, cfg.pad_set, ids.pad);
  one(cfg.unk, cfg.unk_set, ids.unk);
  if (cfg.add_bos) ids.add_bos = *cfg.add_bos;
}

}  // namespace zoff
