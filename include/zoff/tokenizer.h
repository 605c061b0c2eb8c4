// Tokenizers: the abstract Tokenizer and load_tokenizer(), which picks the format from a folder's files.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zoff {

// Special-token ids of a tokenizer; -1 means "the tokenizer has none".
struct SpecialTokenIds {
  int64_t bos = -1;
  int64_t eos = -1;
  int64_t pad = -1;
  int64_t unk = -1;
  bool add_bos = false;  // the model expects every sequence to start with bos
};

// Note [Tokenizer contract]
// encode() maps text to ids and adds nothing: no BOS, no EOS, whatever the tokenizer's
// post-processor would add. Added/special tokens written literally in the text ("<|endoftext|>")
// are recognised and become their ids. Whether sequences start with BOS is the model's
// convention, exposed as add_bos() (from tokenizer_config.json "add_bos_token", else the
// tokenizer.json post_processor template, else the format's default); the datasets
// (zoff/dataset.h) prepend it. decode() is the inverse; for byte-level BPE
// decode(encode(s)) == s for every byte string s (Note [Invalid UTF-8] in src/data/unicode.h),
// unless the tokenizer adds a prefix space.
// pad_id() is never -1: the pad token, else eos, else 0. Padded positions are masked
// (attention_mask 0, labels -100), so the value only has to be a valid id.
// Tokenizers are immutable after loading; encode/decode may be called from many threads.
class Tokenizer {
 public:
  explicit Tokenizer(SpecialTokenIds special) : special_(special) {}
  virtual ~Tokenizer() = default;

  virtual std::vector<int64_t> encode(std::string_view text) const = 0;
  // Throws zoff::Error on an id outside [0, vocab_size) or one the vocabulary does not assign.
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const = 0;
  // One past the largest id (vocabulary and added tokens).
  virtual int64_t vocab_size() const = 0;
  // The id of a token written in the tokenizer's own form (byte-level BPE: "Ġhello").
  virtual std::optional<int64_t> token_to_id(std::string_view token) const = 0;
  virtual std::string id_to_token(int64_t id) const = 0;
  // What was loaded, for logs: e.g. "byte-level BPE (tokenizer.json, qwen2 split)".
  virtual std::string describe() const = 0;

  int64_t bos_id() const { return special_.bos; }
  int64_t eos_id() const { return special_.eos; }
  int64_t unk_id() const { return special_.unk; }
  int64_t pad_id() const { return special_.pad >= 0 ? special_.pad : special_.eos >= 0 ? special_.eos : 0; }
  bool add_bos() const { return special_.add_bos && special_.bos >= 0; }
  const SpecialTokenIds& special_ids() const { return special_; }

 protected:
  SpecialTokenIds special_;
};

// Note [Tokenizer files]
// load_tokenizer(dir) looks at the files in `dir`, in this order:
//   tokenizer.json           HF `tokenizers` byte-level BPE (GPT-2, OPT, Qwen2, Llama-3 style);
//                            when its model/pre-tokenizer is one zoff does not implement and a
//                            tokenizer.model sits beside it, that is used instead
//   vocab.json + merges.txt  GPT-2 files (OPT checkpoints ship these)
//   tokenizer.model          SentencePiece BPE (Llama, Mistral), read by zoff itself
// tokenizer_config.json and special_tokens_map.json, when present, name the bos/eos/pad/unk
// tokens and add_bos_token. Anything unsupported or malformed is an InputError naming the file
// and the field.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir);

}  // namespace zoff
