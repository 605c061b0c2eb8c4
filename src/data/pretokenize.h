// Byte-level BPE pre-tokenization: the GPT-2, Llama-3 and Qwen2 split regexes, matched by hand.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace zoff {

// Note [Pre-tokenizer regexes]
// HF `tokenizers` splits text with a regex before BPE. zoff recognises the three patterns in
// use by the model families it loads, by exact spelling in tokenizer.json, and matches each
// with a hand-written scanner instead of a regex engine:
//   kGpt2   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//           (GPT-2, OPT, RoBERTa: the ByteLevel pre-tokenizer with use_regex=true)
//   kQwen2  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//           \s*[\r\n]+|\s+(?!\S)|\s+       (Qwen2 / Qwen2.5: a Split pre-tokenizer, "Isolated")
//   kLlama3 as kQwen2 with \p{N}{1,3} instead of \p{N}
//   kNone   no split: each segment between added tokens is one word (ByteLevel, use_regex=false)
// At each position the alternatives are tried in order and the first that matches wins, with the
// greedy-then-backtrack semantics of the regex; the scanners below spell out what backtracking
// yields for each alternative (e.g. \s+(?!\S) leaves the last whitespace character of a run for
// the next match when a non-space follows). Every character is matched by some alternative, so
// the pieces tile the text. (?i:...) is ASCII case folding (the Unicode case folds of 's'/'k' to
// U+017F/U+212A are not applied).
enum class PreTokenizerKind { kNone, kGpt2, kQwen2, kLlama3 };

// The kind whose regex is spelled exactly `pattern` (as written in tokenizer.json), if any.
std::optional<PreTokenizerKind> pre_tokenizer_from_regex(std::string_view pattern);

// Appends the pieces of `text` to `out`; they are views into `text` and concatenate to it.
void pre_tokenize(PreTokenizerKind kind, std::string_view text, std::vector<std::string_view>& out);

}  // namespace zoff
