// load_tokenizer(): picks the format from the files present; GPT-2 vocab.json + merges.txt reading.
#include <filesystem>
#include <fstream>

#include "src/data/tokenizer_loaders.h"
#include "zoff/error.h"
#include "zoff/log.h"

namespace zoff {

using nlohmann::json;
namespace fs = std::filesystem;

BpeSpec read_gpt2_files(const std::string& dir, const HfTokenConfig& cfg) {
  std::string vocab_path = (fs::path(dir) / "vocab.json").string();
  std::string merges_path = (fs::path(dir) / "merges.txt").string();
  BpeSpec spec;
  spec.source = vocab_path + " + merges.txt";
  json vocab = read_json_file(vocab_path);
  ZOFF_INPUT_CHECK(vocab.is_object(), vocab_path, ": expected an object mapping tokens to ids");
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    ZOFF_INPUT_CHECK(it.value().is_number_integer(), vocab_path, ": [\"", it.key(), "\"] must be an integer id");
    spec.vocab.emplace(it.key(), it.value().get<int64_t>());
  }
  std::ifstream f(merges_path, std::ios::binary);
  ZOFF_INPUT_CHECK(f.good(), "cannot open ", merges_path);
  std::string line;
  for (int64_t lineno = 1; std::getline(f, line); ++lineno) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    // GPT-2's files start with "#version: 0.2"; HF skips that first line.
    if (line.empty() || (lineno == 1 && line.rfind("#version", 0) == 0)) continue;
    size_t sp = line.find(' ');
    ZOFF_INPUT_CHECK(sp != std::string::npos && sp > 0 && sp + 1 < line.size() && line.find(' ', sp + 1) == std::string::npos,
                     merges_path, ":", lineno, ": \"", line, "\" is not two tokens separated by one space");
    spec.merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
    spec.merge_where.push_back("merges.txt line " + std::to_string(lineno));
  }
  fs::path added = fs::path(dir) / "added_tokens.json";
  if (fs::exists(added)) {
    json a = read_json_file(added.string());
    ZOFF_INPUT_CHECK(a.is_object(), added.string(), ": expected an object mapping tokens to ids");
    for (auto it = a.begin(); it != a.end(); ++it) {
      ZOFF_INPUT_CHECK(it.value().is_number_integer(), added.string(), ": [\"", it.key(), "\"] must be an integer id");
      AddedToken t;
      t.content = it.key();
      t.id = it.value().get<int64_t>();
      spec.added_tokens.push_back(t);
    }
  }
  spec.pre_tokenizer = PreTokenizerKind::kGpt2;
  spec.pre_tokenizer_name = "gpt2";
  spec.add_prefix_space = cfg.add_prefix_space.value_or(false);
  // GPT2Tokenizer's defaults: bos = eos = unk = "<|endoftext|>" (when the vocabulary has it).
  auto eot = spec.vocab.find("<|endoftext|>");
  if (eot != spec.vocab.end()) {
    spec.special.bos = spec.special.eos = spec.special.unk = eot->second;
  }
  finish_special_tokens(spec, cfg);
  return spec;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir) {
  ZOFF_INPUT_CHECK(fs::is_directory(dir), "tokenizer folder ", dir, " does not exist or is not a folder");
  fs::path d(dir);
  HfTokenConfig cfg = read_hf_token_config(dir);
  bool has_spm = fs::exists(d / "tokenizer.model");
  if (fs::exists(d / "tokenizer.json")) {
    TokenizerJson tj = read_tokenizer_json((d / "tokenizer.json").string(), cfg);
    if (tj.spec) {
      auto tok = make_bpe_tokenizer(std::move(*tj.spec));
      log::debug("tokenizer: {}", tok->describe());
      return tok;
    }
    if (!has_spm) ZOFF_INPUT_FAIL(tj.unsupported);
    log::info("{}; using tokenizer.model instead", tj.unsupported);
    return load_sentencepiece_tokenizer((d / "tokenizer.model").string(), cfg);
  }
  if (fs::exists(d / "vocab.json") || fs::exists(d / "merges.txt")) {
    ZOFF_INPUT_CHECK(fs::exists(d / "vocab.json") && fs::exists(d / "merges.txt"), dir,
                     ": GPT-2 tokenizer files need both vocab.json and merges.txt");
    auto tok = make_bpe_tokenizer(read_gpt2_files(dir, cfg));
    log::debug("tokenizer: {}", tok->describe());
    return tok;
  }
  if (has_spm) return load_sentencepiece_tokenizer((d / "tokenizer.model").string(), cfg);
  ZOFF_INPUT_FAIL(dir, ": no tokenizer found (looked for tokenizer.json, vocab.json + merges.txt, tokenizer.model)");
}

}  // namespace zoff
