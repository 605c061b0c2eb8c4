// The per-format tokenizer loaders behind load_tokenizer() (Note [Tokenizer files]).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "src/data/bpe_tokenizer.h"
#include "src/data/hf_config.h"

namespace zoff {

// tokenizer.json: either a spec, or (when the file is well-formed JSON but describes a model or
// pre-tokenizer zoff does not implement) the reason, naming the file and the field.
struct TokenizerJson {
  std::optional<BpeSpec> spec;
  std::string unsupported;
};
TokenizerJson read_tokenizer_json(const std::string& path, const HfTokenConfig& cfg);

// Resolves cfg's bos/eos/pad/unk in spec (tokens must exist) and makes each special token an
// added token, so it is matched in raw text as transformers does.
void finish_special_tokens(BpeSpec& spec, const HfTokenConfig& cfg);

// vocab.json + merges.txt (+ added_tokens.json) in `dir`.
BpeSpec read_gpt2_files(const std::string& dir, const HfTokenConfig& cfg);

// tokenizer.model (BPE type), read without the SentencePiece library (Note [SentencePiece
// without the library] in src/data/sentencepiece_model.cpp).
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path, const HfTokenConfig& cfg);

}  // namespace zoff
