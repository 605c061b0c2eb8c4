// SentencePiece tokenizer.model (Llama); compiled only with ZOFF_WITH_SENTENCEPIECE, else a clear error.
#include "src/data/tokenizer_loaders.h"
#include "zoff/error.h"

#ifdef ZOFF_WITH_SENTENCEPIECE
#include <sentencepiece_processor.h>
#endif

namespace zoff {

#ifdef ZOFF_WITH_SENTENCEPIECE

namespace {

// Note [SentencePiece ids]
// bos/eos/unk/pad come from the model proto (pad is usually -1 for Llama), overridden by
// tokenizer_config.json / special_tokens_map.json when those name tokens; add_bos defaults to
// true (Llama's convention) unless tokenizer_config.json sets add_bos_token. encode() is
// SentencePiece's EncodeAsIds, which adds no BOS/EOS itself (Note [Tokenizer contract]).
class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> sp, std::string path,
                         SpecialTokenIds ids)
      : Tokenizer(ids), sp_(std::move(sp)), path_(std::move(path)) {}

  std::vector<int64_t> encode(std::string_view text) const override {
    std::vector<int> ids;
    auto st = sp_->Encode(std::string(text), &ids);
    ZOFF_CHECK(st.ok(), "SentencePiece encode failed (", path_, "): ", st.ToString());
    return std::vector<int64_t>(ids.begin(), ids.end());
  }
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const override {
    std::vector<int> v;
    v.reserve(ids.size());
    for (int64_t id : ids) {
      ZOFF_CHECK(id >= 0 && id < vocab_size(), "cannot decode token id ", id, ": not in the vocabulary of ", path_,
                 " (vocab_size ", vocab_size(), ")");
      if (skip_special_tokens && (sp_->IsControl(static_cast<int>(id)))) continue;
      v.push_back(static_cast<int>(id));
    }
    std::string out;
    auto st = sp_->Decode(v, &out);
    ZOFF_CHECK(st.ok(), "SentencePiece decode failed (", path_, "): ", st.ToString());
    return out;
  }
  int64_t vocab_size() const override { return sp_->GetPieceSize(); }
  std::optional<int64_t> token_to_id(std::string_view token) const override {
    int id = sp_->PieceToId(std::string(token));
    if (id == sp_->unk_id() && sp_->IdToPiece(id) != token) return std::nullopt;
    return id;
  }
  std::string id_to_token(int64_t id) const override {
    ZOFF_CHECK(id >= 0 && id < vocab_size(), "token id ", id, " is not in the vocabulary of ", path_);
    return sp_->IdToPiece(static_cast<int>(id));
  }
  std::string describe() const override {
    return "SentencePiece (" + path_ + ", " + std::to_string(vocab_size()) + " pieces)";
  }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string path_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path, const HfTokenConfig& cfg) {
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  auto st = sp->Load(path);
  ZOFF_INPUT_CHECK(st.ok(), path, ": not a readable SentencePiece model: ", st.ToString());
  SpecialTokenIds ids;
  ids.bos = sp->bos_id();
  ids.eos = sp->eos_id();
  ids.unk = sp->unk_id();
  ids.pad = sp->pad_id();
  ids.add_bos = true;
  auto* raw = sp.get();
  auto lookup = [raw](const std::string& t) -> std::optional<int64_t> {
    int id = raw->PieceToId(t);
    if (id == raw->unk_id() && raw->IdToPiece(id) != t) return std::nullopt;
    return id;
  };
  resolve_special_ids(cfg, path, lookup, ids);
  return std::make_unique<SentencePieceTokenizer>(std::move(sp), path, ids);
}

#else

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path, const HfTokenConfig&) {
  ZOFF_INPUT_FAIL(path, ": this is a SentencePiece tokenizer, but zoff was built without SentencePiece ",
                  "(install libsentencepiece-dev and rebuild, or provide a byte-level BPE tokenizer.json)");
}

#endif

}  // namespace zoff
