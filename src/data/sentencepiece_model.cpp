// SentencePiece tokenizer.model (Llama, Mistral) read and run by zoff itself: protobuf parse, BPE encode, decode.
#include <algorithm>
#include <array>
#include <fstream>
#include <functional>
#include <sstream>
#include <unordered_map>

#include "src/data/sentencepiece_proto.h"
#include "src/data/tokenizer_loaders.h"
#include "src/data/unicode.h"
#include "zoff/error.h"

namespace zoff {

// Note [SentencePiece without the library]
// Debian's libsentencepiece embeds its own protobuf 3.14 and crashes when LibTorch's
// libprotobuf 3.21 is in the same process, and the GPU machine has no SentencePiece at all, so
// zoff reads tokenizer.model itself. It implements what the library does for BPE models with
// the identity normalizer (Llama, Mistral), following sentencepiece's normalizer.cc,
// bpe_model.cc and sentencepiece_processor.cc:
//   normalize  optional leading-space removal, a dummy "▁" prefix, ' ' -> "▁", whitespace
//              collapsing and trailing-space removal (normalizer_spec flags); user-defined
//              symbols are kept whole; malformed UTF-8 becomes U+FFFD
//   encode     characters (user-defined symbols frozen) merged pairwise, highest piece score
//              first, ties to the leftmost; merges into UNUSED pieces are undone at the end
//   output     unknown pieces become their UTF-8 bytes (<0xAB>) with byte_fallback, else one
//              unk id per run of unknown pieces
//   decode     "▁" -> ' ', the dummy prefix's space dropped, byte pieces joined (invalid UTF-8
//              -> U+FFFD), unk -> trainer_spec.unk_surface
// Unigram models and precompiled normalization rules (nmt_nfkc: T5, ALBERT) are refused with an
// InputError naming the field. One deliberate difference: decode() shows control pieces ("<s>")
// unless skip_special_tokens, as HF's decode does; the library always drops them.
// tests/dataset/spm/ holds two models and golden ids made by the real library
// (scripts/make_spm_fixture.cpp).

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581

int byte_of_piece(const std::string& p) {  // "<0xAB>" -> 0xAB, else -1
  if (p.size() != 6 || p.compare(0, 3, "<0x") != 0 || p[5] != '>') return -1;
  int v = 0;
  for (int i = 3; i < 5; ++i) {
    char c = p[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(SpmModel m, std::string path, SpecialTokenIds ids,
                         std::unordered_map<std::string, int32_t> normal,
                         std::unordered_map<std::string, int32_t> reserved, std::vector<std::string> user_defined,
                         std::array<int32_t, 256> byte_ids, int32_t unk)
      : Tokenizer(ids), m_(std::move(m)), path_(std::move(path)), normal_(std::move(normal)),
        reserved_(std::move(reserved)), user_defined_(std::move(user_defined)), byte_id_(byte_ids), unk_(unk) {
    std::sort(user_defined_.begin(), user_defined_.end(),
              [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  }

  std::vector<int64_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(m_.pieces.size()); }
  std::optional<int64_t> token_to_id(std::string_view token) const override {
    int32_t id = piece_to_id(token);
    if (id == unk_ && token != m_.pieces[unk_].text) return std::nullopt;
    return id;
  }
  std::string id_to_token(int64_t id) const override {
    ZOFF_CHECK(id >= 0 && id < vocab_size(), "token id ", id, " is not in the vocabulary of ", path_);
    return m_.pieces[id].text;
  }
  std::string describe() const override {
    return "SentencePiece BPE (" + path_ + ", " + std::to_string(vocab_size()) + " pieces" +
           (m_.byte_fallback ? ", byte fallback)" : ")");
  }

 private:
  int32_t piece_to_id(std::string_view p) const {
    std::string s(p);
    if (auto it = reserved_.find(s); it != reserved_.end()) return it->second;
    if (auto it = normal_.find(s); it != normal_.end()) return it->second;
    return unk_;
  }
  // Length of the user-defined symbol at s[i], or 0.
  size_t user_symbol_at(std::string_view s, size_t i) const {
    for (const auto& u : user_defined_) {
      if (s.compare(i, u.size(), u) == 0) return u.size();
    }
    return 0;
  }
  std::string normalize(std::string_view text) const;

  SpmModel m_;
  std::string path_;
  std::unordered_map<std::string, int32_t> normal_;    // NORMAL, USER_DEFINED, UNUSED
  std::unordered_map<std::string, int32_t> reserved_;  // CONTROL, UNKNOWN, BYTE
  std::vector<std::string> user_defined_;              // longest first
  std::array<int32_t, 256> byte_id_;
  int32_t unk_;
};

std::string SentencePieceTokenizer::normalize(std::string_view in) const {
  std::string out;
  // One normalization unit at in[i]: a user-defined symbol, a character, or U+FFFD for a bad byte.
  auto unit = [&](size_t i, std::string_view& piece) -> size_t {
    if (size_t u = user_symbol_at(in, i)) {
      piece = in.substr(i, u);
      return u;
    }
    unicode::Char c = unicode::decode_at(in, i);
    piece = c.cp == unicode::kInvalid ? std::string_view("\xEF\xBF\xBD") : in.substr(i, c.len);
    return c.len;
  };
  size_t i = 0;
  std::string_view piece;
  if (m_.remove_extra_ws) {
    while (i < in.size()) {
      size_t n = unit(i, piece);
      if (piece != " ") break;
      i += n;
    }
  }
  if (i >= in.size()) return out;
  const std::string_view ws = m_.escape_ws ? kSpace : std::string_view(" ");
  if (m_.add_dummy_prefix) out += ws;
  bool prev_space = m_.remove_extra_ws;
  while (i < in.size()) {
    i += unit(i, piece);
    while (prev_space && !piece.empty() && piece[0] == ' ') piece.remove_prefix(1);
    if (!piece.empty()) {
      for (char ch : piece) {
        if (m_.escape_ws && ch == ' ') out += kSpace;
        else out += ch;
      }
      prev_space = piece.back() == ' ';
    }
    if (!m_.remove_extra_ws) prev_space = false;
  }
  if (m_.remove_extra_ws) {
    while (out.size() >= ws.size() && out.compare(out.size() - ws.size(), ws.size(), ws) == 0) out.resize(out.size() - ws.size());
  }
  return out;
}

std::vector<int64_t> SentencePieceTokenizer::encode(std::string_view text) const {
  const std::string norm = normalize(text);
  std::vector<int64_t> out;
  if (norm.empty()) return out;
  struct Sym {
    size_t start, len;
    int32_t prev, next;
    bool freeze;
  };
  struct Pair {
    float score;
    int32_t left, right;
    size_t size;
  };
  auto worse = [](const Pair& a, const Pair& b) { return a.score < b.score || (a.score == b.score && a.left > b.left); };
  std::vector<Sym> syms;
  for (size_t i = 0; i < norm.size();) {
    size_t u = user_symbol_at(norm, i);
    size_t len = u ? u : unicode::decode_at(norm, i).len;
    auto idx = static_cast<int32_t>(syms.size());
    syms.push_back({i, len, idx - 1, -1, u > 0});
    if (idx > 0) syms[idx - 1].next = idx;
    i += len;
  }
  std::vector<Pair> agenda;
  std::unordered_map<std::string, std::pair<std::string, std::string>> rev_merge;  // UNUSED pieces
  auto maybe_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0 || syms[l].freeze || syms[r].freeze) return;
    std::string piece = norm.substr(syms[l].start, syms[l].len + syms[r].len);
    auto it = normal_.find(piece);
    if (it == normal_.end()) return;
    agenda.push_back({m_.pieces[it->second].score, l, r, piece.size()});
    std::push_heap(agenda.begin(), agenda.end(), worse);
    if (m_.pieces[it->second].type == SpmPieceType::kUnused) {
      rev_merge[piece] = {norm.substr(syms[l].start, syms[l].len), norm.substr(syms[r].start, syms[r].len)};
    }
  };
  for (int32_t i = 1; i < static_cast<int32_t>(syms.size()); ++i) maybe_add(i - 1, i);
  while (!agenda.empty()) {
    std::pop_heap(agenda.begin(), agenda.end(), worse);
    Pair top = agenda.back();
    agenda.pop_back();
    Sym& l = syms[top.left];
    Sym& r = syms[top.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != top.size) continue;
    l.len += r.len;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = top.left;
    r.len = 0;
    maybe_add(l.prev, top.left);
    maybe_add(top.left, l.next);
  }
  bool prev_unk = false;
  std::function<void(const std::string&)> emit = [&](const std::string& w) {
    int32_t id = piece_to_id(w);
    if (id != unk_ && m_.pieces[id].type == SpmPieceType::kUnused) {
      if (auto it = rev_merge.find(w); it != rev_merge.end()) {
        emit(it->second.first);
        emit(it->second.second);
        return;
      }
    }
    bool is_unk = id == unk_;
    if (is_unk && m_.byte_fallback) {
      for (unsigned char b : w) out.push_back(byte_id_[b]);
    } else if (!(is_unk && prev_unk)) {  // a run of unknown pieces is one unk
      out.push_back(id);
    }
    prev_unk = is_unk;
  };
  for (int32_t i = 0; i >= 0; i = syms[i].next) emit(norm.substr(syms[i].start, syms[i].len));
  return out;
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string text, bytes;
  auto flush_bytes = [&] {
    for (size_t i = 0; i < bytes.size();) {
      unicode::Char c = unicode::decode_at(bytes, i);
      if (c.cp == unicode::kInvalid) text += "\xEF\xBF\xBD";
      else text.append(bytes, i, c.len);
      i += c.len;
    }
    bytes.clear();
  };
  bool is_bos_ws = true, bos_ws_seen = false;
  for (int64_t id : ids) {
    ZOFF_CHECK(id >= 0 && id < vocab_size(), "cannot decode token id ", id, ": not in the vocabulary of ", path_,
               " (vocab_size ", vocab_size(), ")");
    const SpmPiece& p = m_.pieces[id];
    if (p.type == SpmPieceType::kByte) {
      bytes += static_cast<char>(byte_of_piece(p.text));
      continue;
    }
    flush_bytes();
    if (bos_ws_seen || !text.empty()) is_bos_ws = false;
    bos_ws_seen = false;
    if (p.type == SpmPieceType::kControl) {
      if (!skip_special_tokens) text += p.text;
    } else if (p.type == SpmPieceType::kUnknown) {
      text += m_.unk_surface;
    } else {
      std::string_view piece = p.text;
      if (is_bos_ws && (m_.add_dummy_prefix || m_.remove_extra_ws) && piece.substr(0, kSpace.size()) == kSpace) {
        piece.remove_prefix(kSpace.size());
        bos_ws_seen = !m_.remove_extra_ws;
      }
      for (size_t i = 0; i < piece.size();) {
        if (piece.substr(i, kSpace.size()) == kSpace) {
          text += ' ';
          i += kSpace.size();
        } else {
          text += piece[i++];
        }
      }
    }
  }
  flush_bytes();
  return text;
}

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path, const HfTokenConfig& cfg) {
  std::ifstream f(path, std::ios::binary);
  ZOFF_INPUT_CHECK(f.good(), "cannot open ", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  std::string data = ss.str();
  SpmModel m = parse_spm_model(data, path);
  ZOFF_INPUT_CHECK(!m.pieces.empty(), path, ": not a SentencePiece model (no pieces)");
  static const char* kTypes[] = {"?", "UNIGRAM", "BPE", "WORD", "CHAR"};
  ZOFF_INPUT_CHECK(m.model_type == 2, path, ": trainer_spec.model_type is ",
                   m.model_type >= 1 && m.model_type <= 4 ? kTypes[m.model_type] : "unknown",
                   "; zoff reads BPE SentencePiece models (Llama, Mistral)");
  ZOFF_INPUT_CHECK(!m.has_charsmap, path, ": normalizer_spec.name is \"", m.normalizer_name,
                   "\" with a precompiled_charsmap; zoff supports the identity normalizer only");
  ZOFF_INPUT_CHECK(!m.treat_ws_as_suffix, path, ": trainer_spec.treat_whitespace_as_suffix is not supported");
  std::unordered_map<std::string, int32_t> normal, reserved;
  std::vector<std::string> user_defined;
  std::array<int32_t, 256> byte_ids;
  byte_ids.fill(-1);
  int32_t unk = -1;
  for (int32_t i = 0; i < static_cast<int32_t>(m.pieces.size()); ++i) {
    const SpmPiece& p = m.pieces[i];
    ZOFF_INPUT_CHECK(!p.text.empty(), path, ": pieces[", i, "] is empty");
    ZOFF_INPUT_CHECK(static_cast<int>(p.type) >= 1 && static_cast<int>(p.type) <= 6, path, ": pieces[", i, "] has unknown type ", static_cast<int>(p.type));
    bool is_normal = p.type == SpmPieceType::kNormal || p.type == SpmPieceType::kUserDefined || p.type == SpmPieceType::kUnused;
    ZOFF_INPUT_CHECK((is_normal ? normal : reserved).emplace(p.text, i).second, path, ": pieces[", i, "] \"", p.text,
                     "\" is defined twice");
    if (p.type == SpmPieceType::kUserDefined) user_defined.push_back(p.text);
    if (p.type == SpmPieceType::kUnknown) {
      ZOFF_INPUT_CHECK(unk < 0, path, ": more than one piece of type UNKNOWN");
      unk = i;
    }
    if (p.type == SpmPieceType::kByte) {
      int b = byte_of_piece(p.text);
      ZOFF_INPUT_CHECK(b >= 0, path, ": pieces[", i, "] \"", p.text, "\" is a BYTE piece but not <0xXX>");
      byte_ids[b] = i;
    }
  }
  ZOFF_INPUT_CHECK(unk >= 0, path, ": no piece of type UNKNOWN");
  if (m.byte_fallback) {
    for (int b = 0; b < 256; ++b) {
      ZOFF_INPUT_CHECK(byte_ids[b] >= 0, path, ": trainer_spec.byte_fallback is set but byte piece ", b, " is missing");
    }
  }
  auto lookup = [&](const std::string& t) -> std::optional<int64_t> {
    if (auto it = reserved.find(t); it != reserved.end()) return it->second;
    if (auto it = normal.find(t); it != normal.end()) return it->second;
    return std::nullopt;
  };
  auto special = [&](const std::string& piece, SpmPieceType type) -> int64_t {
    auto id = lookup(piece);
    return id && m.pieces[*id].type == type ? *id : -1;
  };
  SpecialTokenIds ids;
  ids.unk = special(m.unk_piece, SpmPieceType::kUnknown);
  ids.bos = special(m.bos_piece, SpmPieceType::kControl);
  ids.eos = special(m.eos_piece, SpmPieceType::kControl);
  ids.pad = special(m.pad_piece, SpmPieceType::kControl);
  ids.add_bos = true;  // Llama's convention; tokenizer_config.json may say otherwise
  resolve_special_ids(cfg, path, lookup, ids);
  return std::make_unique<SentencePieceTokenizer>(std::move(m), path, ids, std::move(normal), std::move(reserved),
                                                  std::move(user_defined), byte_ids, unk);
}

}  // namespace zoff
