// Builds the SentencePiece test fixtures with the real library: two small BPE models and golden encodings.
//
// zoff reads tokenizer.model itself (src/data/sentencepiece_model.cpp); this program, which links
// Debian's libsentencepiece but not LibTorch (the two cannot share a process), produces the ground
// truth its tests compare against. Run from the repository root:
//   g++ -std=c++17 -O1 scripts/make_spm_fixture.cpp -lsentencepiece_train -lsentencepiece -o /tmp/make_spm_fixture
//   /tmp/make_spm_fixture
// It writes tests/dataset/spm/{llama_like,plain}.model and tests/dataset/spm/golden.json.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace {

void check(const sentencepiece::util::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

}  // namespace

int main() {
  const std::string out = "tests/dataset/spm/";
  const std::string common =
      "--input=configs/data/sentiment/corpus.txt --model_type=bpe --vocab_size=600 --num_threads=1 "
      "--character_coverage=1.0 --normalization_rule_name=identity --user_defined_symbols=<sep> "
      "--minloglevel=2 ";
  struct Variant {
    std::string name, flags;
  };
  // llama_like: Llama's settings (dummy prefix, whitespace kept, digits split, byte fallback).
  // plain: SentencePiece's defaults for whitespace (collapsed and trimmed), unknowns become <unk>.
  std::vector<Variant> variants = {
      {"llama_like",
       "--add_dummy_prefix=true --remove_extra_whitespaces=false --split_digits=true --byte_fallback=true "
       "--allow_whitespace_only_pieces=true"},
      {"plain", "--add_dummy_prefix=true --remove_extra_whitespaces=true --byte_fallback=false"},
  };
  const std::vector<std::string> texts = {
      "The movie was wonderful.",
      "Review: I hated this blender.\nSentiment: negative",
      "  two  spaces   and\ttabs\n\nand newlines  ",
      "Rated 10/10 by 1234 people!!!",
      "Caf\xC3\xA9 na\xC3\xAFve \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80",
      "a<sep>b <sep> c",
      "<s> and </s> are plain text here",
      "x",
      " leading space",
      "",
  };
  nlohmann::json golden = nlohmann::json::object();
  for (const auto& v : variants) {
    check(sentencepiece::SentencePieceTrainer::Train(common + v.flags + " --model_prefix=" + out + v.name),
          "train");
    std::remove((out + v.name + ".vocab").c_str());
    sentencepiece::SentencePieceProcessor sp;
    check(sp.Load(out + v.name + ".model"), "load");
    nlohmann::json cases = nlohmann::json::array();
    for (const auto& t : texts) {
      std::vector<int> ids;
      check(sp.Encode(t, &ids), "encode");
      std::string back;
      check(sp.Decode(ids, &back), "decode");
      cases.push_back({{"text", t}, {"ids", ids}, {"decoded", back}});
    }
    golden[v.name] = {{"vocab_size", sp.GetPieceSize()}, {"bos", sp.bos_id()}, {"eos", sp.eos_id()},
                      {"unk", sp.unk_id()}, {"pad", sp.pad_id()}, {"cases", cases}};
  }
  std::ofstream f(out + "golden.json");
  f << golden.dump(1) << "\n";
  return 0;
}
