// A tiny GPT-2-format tokenizer for the dataset tests: byte ids = byte values, three merges.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "src/data/bpe_tokenizer.h"
#include "src/data/unicode.h"
#include "tests/dataset/test_util.h"

namespace zoff::test {

// Ids: byte b -> b; 256 "<|endoftext|>" (bos and eos); 257 "<pad>"; merges "Ġ p" -> 258,
// "o s" -> 259, "Ġp os" -> 260. So " positive" = [260, 'i', 't', 'i', 'v', 'e'] and
// " negative" is its 9 bytes.
constexpr int64_t kTinyEot = 256, kTinyPad = 257, kTinyPos = 260;

inline void write_tiny_tokenizer(const TempDir& dir, bool add_bos = true) {
  auto sym = [](int b) {
    std::string s;
    unicode::append_utf8(s, byte_to_unicode()[b]);
    return s;
  };
  nlohmann::json v = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) v[sym(b)] = b;
  v["<|endoftext|>"] = kTinyEot;
  v["<pad>"] = kTinyPad;
  v[sym(' ') + "p"] = 258;
  v["os"] = 259;
  v[sym(' ') + "pos"] = 260;
  dir.write("vocab.json", v.dump());
  dir.write("merges.txt", "#version: 0.2\n" + sym(' ') + " p\no s\n" + sym(' ') + "p os\n");
  dir.write("tokenizer_config.json", std::string("{\"add_bos_token\": ") + (add_bos ? "true" : "false") +
                                         ", \"pad_token\": \"<pad>\"}");
}

}  // namespace zoff::test
