// Byte-level BPE (GPT-2 family): the spec the file loaders fill in, and the tokenizer built from it.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "src/data/pretokenize.h"
#include "zoff/tokenizer.h"

namespace zoff {

// A token matched in the raw text before pre-tokenization (HF "added_tokens").
struct AddedToken {
  std::string content;
  int64_t id = -1;
  bool special = false;      // decode(..., skip_special_tokens=true) drops it
  bool lstrip = false;       // absorbs the whitespace before it
  bool rstrip = false;       // absorbs the whitespace after it
  bool single_word = false;  // matches only when no word character touches it
};

// Everything a byte-level BPE needs, as read from tokenizer.json or GPT-2 files.
struct BpeSpec {
  std::string source;  // the file(s) it came from, for error messages
  std::unordered_map<std::string, int64_t> vocab;  // token (byte-to-unicode form) -> id
  std::vector<std::pair<std::string, std::string>> merges;  // by rank
  std::vector<std::string> merge_where;  // optional, per merge: "merges.txt line 7"
  std::string merges_field = "merges";   // else merge r is named merges_field[r]
  std::vector<AddedToken> added_tokens;
  PreTokenizerKind pre_tokenizer = PreTokenizerKind::kGpt2;
  std::string pre_tokenizer_name = "gpt2";
  bool add_prefix_space = false;
  bool ignore_merges = false;  // a word that is itself in the vocabulary is not merged
  SpecialTokenIds special;
};

// Validates the spec (merge tokens in the vocabulary, every byte covered, ids unique) and
// builds the tokenizer. Throws InputError naming spec.source and the field.
std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeSpec spec);

// GPT-2's reversible map from bytes to printable code points (bytes_to_unicode() in
// openai/gpt-2 encoder.py): printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100.. in byte order.
const std::array<uint32_t, 256>& byte_to_unicode();

}  // namespace zoff
