// Reading the JSON side files of HF tokenizers: tokenizer_config.json and special_tokens_map.json.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "src/data/bpe_tokenizer.h"

namespace zoff {

// Parses a JSON file; InputError naming the file on a missing file or bad JSON.
nlohmann::json read_json_file(const std::string& path);

// One of bos/eos/pad/unk as named by a config file, with where it was named (for errors).
struct NamedToken {
  std::string content;
  std::string where;  // e.g. "/m/tokenizer_config.json: eos_token"
};

// Note [Tokenizer side files]
// tokenizer_config.json wins over special_tokens_map.json for each of bos/eos/pad/unk; a token
// may be written as a string, as {"content": ...} or as null (meaning: none). add_bos_token and
// add_prefix_space come from tokenizer_config.json only; added_tokens_decoder there lists extra
// added tokens ({"<id>": {"content", "special", "lstrip", "rstrip", "single_word"}}).
struct HfTokenConfig {
  std::optional<NamedToken> bos, eos, pad, unk;
  bool bos_set = false, eos_set = false, pad_set = false, unk_set = false;  // named, possibly as null
  std::optional<bool> add_bos;
  std::optional<bool> add_prefix_space;
  std::vector<AddedToken> added_tokens;  // from added_tokens_decoder
  std::string added_tokens_where;
};

// Reads `dir`/tokenizer_config.json and `dir`/special_tokens_map.json when they exist.
HfTokenConfig read_hf_token_config(const std::string& dir);

// Parses one added token object ({"content", "id"?, "special", ...}); `where` names it for errors.
AddedToken parse_added_token(const nlohmann::json& j, int64_t id, const std::string& where);

// Resolves the config's bos/eos/pad/unk against a token->id lookup; a named token the
// tokenizer does not have is an InputError naming the config file and field.
void resolve_special_ids(const HfTokenConfig& cfg, const std::string& tokenizer_source,
                         const std::function<std::optional<int64_t>(const std::string&)>& lookup,
                         SpecialTokenIds& ids);

}  // namespace zoff
