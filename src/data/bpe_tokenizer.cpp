// Byte-level BPE encode/decode: added-token matching, pre-tokenization, merges by rank.
#include "src/data/bpe_tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <functional>

#include "src/data/unicode.h"
#include "zoff/error.h"

namespace zoff {

const std::array<uint32_t, 256>& byte_to_unicode() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    uint32_t extra = 0;
    for (uint32_t b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[b] = printable ? b : 256 + extra++;
    }
    return t;
  }();
  return table;
}

namespace {

// Note [BPE merge order]
// A word starts as one symbol per byte. The adjacent pair with the lowest merge rank is merged,
// ties going to the leftmost pair, until no adjacent pair has a merge. This is the order of HF
// `tokenizers` (a priority queue of (rank, position)) and gives the same result as GPT-2's
// encoder.py, which merges every occurrence of the best pair left to right in one sweep:
// occurrences of one pair never overlap after the leftmost is merged first. Here the queue is a
// binary heap over a linked list of symbols; stale entries (a side already merged away) are
// recognised by comparing the pair's ids when popped. O(n log n) per word, so long whitespace
// runs or unsplit text (kNone) stay cheap.
struct Sym {
  int32_t id;
  int32_t prev;
  int32_t next;
};
struct Candidate {
  int32_t rank;
  int32_t pos;
  int32_t left_id;
  int32_t right_id;
  int32_t new_id;
  bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

uint64_t pair_key(int64_t a, int64_t b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint64_t>(b); }

bool is_word_char(uint32_t cp) {
  return cp == '_' || unicode::char_class(cp) == unicode::CharClass::kLetter ||
         unicode::char_class(cp) == unicode::CharClass::kNumber;
}

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(BpeSpec spec);

  std::vector<int64_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }
  std::optional<int64_t> token_to_id(std::string_view token) const override {
    auto it = token_to_id_.find(std::string(token));
    if (it == token_to_id_.end()) return std::nullopt;
    return it->second;
  }
  std::string id_to_token(int64_t id) const override {
    ZOFF_CHECK(id >= 0 && id < vocab_size() && assigned_[id], "token id ", id, " is not in the vocabulary of ",
               source_, " (vocab_size ", vocab_size(), ")");
    return id_to_token_[id];
  }
  std::string describe() const override {
    return "byte-level BPE (" + source_ + ", " + pre_name_ + " pre-tokenizer, " + std::to_string(vocab_size()) +
           " ids, " + std::to_string(num_merges_) + " merges)";
  }

 private:
  void encode_segment(std::string_view text, std::vector<int64_t>& out) const;
  void encode_word(std::string_view word, std::vector<int64_t>& out) const;

  std::string source_;
  std::string pre_name_;
  PreTokenizerKind pre_;
  bool add_prefix_space_;
  bool ignore_merges_;
  size_t num_merges_;
  std::unordered_map<std::string, int64_t> token_to_id_;  // vocabulary and added tokens
  std::vector<std::string> id_to_token_;
  std::vector<uint8_t> assigned_;
  std::vector<int8_t> added_kind_;  // per id: 0 vocabulary, 1 added, 2 added special
  std::array<int32_t, 256> byte_id_{};
  std::vector<int16_t> unicode_to_byte_;  // indexed by code point < 0x144; -1: none
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (left, right) -> (rank, new id)
  std::vector<AddedToken> added_;
  std::array<std::vector<int32_t>, 256> added_by_first_byte_;  // indices into added_, longest first
};

BpeTokenizer::BpeTokenizer(BpeSpec spec)
    : Tokenizer(spec.special),
      source_(spec.source),
      pre_name_(spec.pre_tokenizer_name),
      pre_(spec.pre_tokenizer),
      add_prefix_space_(spec.add_prefix_space),
      ignore_merges_(spec.ignore_merges),
      num_merges_(spec.merges.size()),
      added_(spec.added_tokens) {
  int64_t max_id = -1;
  for (auto& [tok, id] : spec.vocab) {
    ZOFF_INPUT_CHECK(id >= 0 && id < (int64_t{1} << 31), source_, ": vocabulary token \"", tok, "\" has id ", id,
                     ", outside [0, 2^31)");
    max_id = std::max(max_id, id);
  }
  for (auto& a : added_) {
    ZOFF_INPUT_CHECK(a.id >= 0 && a.id < (int64_t{1} << 31), source_, ": added token \"", a.content, "\" has id ",
                     a.id, ", outside [0, 2^31)");
    ZOFF_INPUT_CHECK(!a.content.empty(), source_, ": added token with id ", a.id, " has empty content");
    max_id = std::max(max_id, a.id);
  }
  id_to_token_.assign(max_id + 1, std::string());
  assigned_.assign(max_id + 1, 0);
  added_kind_.assign(max_id + 1, 0);
  for (auto& [tok, id] : spec.vocab) {
    ZOFF_INPUT_CHECK(!assigned_[id], source_, ": vocabulary ids must be unique, but \"", tok, "\" and \"",
                     id_to_token_[id], "\" both have id ", id);
    id_to_token_[id] = tok;
    assigned_[id] = 1;
  }
  token_to_id_ = std::move(spec.vocab);
  for (auto& a : added_) {
    auto it = token_to_id_.find(a.content);
    ZOFF_INPUT_CHECK(it == token_to_id_.end() || it->second == a.id, source_, ": added token \"", a.content,
                     "\" has id ", a.id, " but the vocabulary gives it id ", it == token_to_id_.end() ? -1 : it->second);
    ZOFF_INPUT_CHECK(!assigned_[a.id] || id_to_token_[a.id] == a.content, source_, ": added token \"", a.content,
                     "\" has id ", a.id, ", which already belongs to \"", id_to_token_[a.id], "\"");
    token_to_id_[a.content] = a.id;
    id_to_token_[a.id] = a.content;
    assigned_[a.id] = 1;
    added_kind_[a.id] = a.special ? 2 : 1;
  }
  // Added tokens by first byte, longest first: leftmost-longest matching (Note [Added tokens]).
  for (int32_t i = 0; i < static_cast<int32_t>(added_.size()); ++i) {
    added_by_first_byte_[static_cast<uint8_t>(added_[i].content[0])].push_back(i);
  }
  for (auto& v : added_by_first_byte_) {
    std::stable_sort(v.begin(), v.end(),
                     [&](int32_t a, int32_t b) { return added_[a].content.size() > added_[b].content.size(); });
  }

  const auto& b2u = byte_to_unicode();
  unicode_to_byte_.assign(0x144, -1);
  for (int b = 0; b < 256; ++b) {
    unicode_to_byte_[b2u[b]] = static_cast<int16_t>(b);
    std::string sym;
    unicode::append_utf8(sym, b2u[b]);
    auto it = token_to_id_.find(sym);
    if (it != token_to_id_.end() && added_kind_[it->second] == 0) {
      byte_id_[b] = static_cast<int32_t>(it->second);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", b);
      ZOFF_INPUT_CHECK(special_.unk >= 0, source_, ": the vocabulary has no token for byte ", hex, " (\"", sym,
                       "\") and there is no unk_token; a byte-level BPE needs all 256 byte tokens");
      byte_id_[b] = static_cast<int32_t>(special_.unk);
    }
  }

  merges_.reserve(spec.merges.size());
  for (size_t r = 0; r < spec.merges.size(); ++r) {
    const auto& [a, b] = spec.merges[r];
    std::string where = r < spec.merge_where.size() ? spec.merge_where[r] : spec.merges_field + "[" + std::to_string(r) + "]";
    auto ia = token_to_id_.find(a);
    auto ib = token_to_id_.find(b);
    auto iab = token_to_id_.find(a + b);
    ZOFF_INPUT_CHECK(ia != token_to_id_.end(), source_, ": ", where, " (\"", a, " ", b, "\"): token \"", a,
                     "\" is not in the vocabulary");
    ZOFF_INPUT_CHECK(ib != token_to_id_.end(), source_, ": ", where, " (\"", a, " ", b, "\"): token \"", b,
                     "\" is not in the vocabulary");
    ZOFF_INPUT_CHECK(iab != token_to_id_.end(), source_, ": ", where, " (\"", a, " ", b, "\"): merged token \"",
                     a + b, "\" is not in the vocabulary");
    // A later duplicate overrides an earlier one, as in HF tokenizers and GPT-2's encoder.py.
    merges_[pair_key(ia->second, ib->second)] = {static_cast<int32_t>(r), static_cast<int32_t>(iab->second)};
  }
}

// Note [Added tokens]
// Added tokens are found in the raw text first, leftmost match first and, among matches at the
// same position, the longest (HF's LeftmostLongest Aho-Corasick). A single_word token matches
// only when the characters on both sides are not word characters (letter, number, '_'); lstrip
// and rstrip make the match swallow the whitespace on that side. The text between matches is
// pre-tokenized and BPE-encoded on its own, so BPE never merges across an added token.
std::vector<int64_t> BpeTokenizer::encode(std::string_view text) const {
  std::vector<int64_t> out;
  out.reserve(text.size() / 3 + 4);
  size_t seg_start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto& bucket = added_by_first_byte_[static_cast<uint8_t>(text[i])];
    if (bucket.empty()) continue;
    const AddedToken* hit = nullptr;
    for (int32_t k : bucket) {
      const AddedToken& a = added_[k];
      if (text.compare(i, a.content.size(), a.content) != 0) continue;
      if (a.single_word) {
        bool before = false;
        if (i > 0) {
          size_t p = i - 1;  // start of the previous character
          while (p > 0 && (static_cast<uint8_t>(text[p]) & 0xC0) == 0x80 && i - p < 4) --p;
          before = is_word_char(unicode::decode_at(text, p).cp);
        }
        size_t e = i + a.content.size();
        bool after = e < text.size() && is_word_char(unicode::decode_at(text, e).cp);
        if (before || after) continue;
      }
      hit = &a;
      break;
    }
    if (!hit) continue;
    size_t start = i, end = i + hit->content.size();
    if (hit->lstrip) {
      size_t ws = seg_start;  // start of the whitespace run that ends at i
      for (size_t p = seg_start; p < i;) {
        auto c = unicode::decode_at(text, p);
        p += c.len;
        if (!unicode::is_space(c.cp)) ws = p;
      }
      start = ws;
    }
    if (hit->rstrip) {
      while (end < text.size()) {
        auto c = unicode::decode_at(text, end);
        if (!unicode::is_space(c.cp)) break;
        end += c.len;
      }
    }
    encode_segment(text.substr(seg_start, start - seg_start), out);
    out.push_back(hit->id);
    seg_start = end;
    i = end - 1;
  }
  encode_segment(text.substr(seg_start), out);
  return out;
}

void BpeTokenizer::encode_segment(std::string_view text, std::vector<int64_t>& out) const {
  if (text.empty()) return;
  std::string prefixed;
  if (add_prefix_space_ && text[0] != ' ') {
    prefixed = " ";
    prefixed.append(text);
    text = prefixed;
  }
  thread_local std::vector<std::string_view> pieces;
  pieces.clear();
  pre_tokenize(pre_, text, pieces);
  for (auto piece : pieces) encode_word(piece, out);
}

void BpeTokenizer::encode_word(std::string_view word, std::vector<int64_t>& out) const {
  if (ignore_merges_) {
    std::string sym;
    for (unsigned char b : word) unicode::append_utf8(sym, byte_to_unicode()[b]);
    auto it = token_to_id_.find(sym);
    if (it != token_to_id_.end() && added_kind_[it->second] == 0) {
      out.push_back(it->second);
      return;
    }
  }
  const int32_t n = static_cast<int32_t>(word.size());
  if (n == 1) {
    out.push_back(byte_id_[static_cast<uint8_t>(word[0])]);
    return;
  }
  thread_local std::vector<Sym> syms;
  thread_local std::vector<Candidate> heap;
  syms.resize(n);
  heap.clear();
  auto push = [&](int32_t left) {
    int32_t right = syms[left].next;
    if (right < 0) return;
    auto it = merges_.find(pair_key(syms[left].id, syms[right].id));
    if (it == merges_.end()) return;
    heap.push_back({it->second.first, left, syms[left].id, syms[right].id, it->second.second});
    std::push_heap(heap.begin(), heap.end(), std::greater<Candidate>());
  };
  for (int32_t i = 0; i < n; ++i) {
    syms[i] = {byte_id_[static_cast<uint8_t>(word[i])], i - 1, i + 1 < n ? i + 1 : -1};
  }
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<Candidate>());
    Candidate c = heap.back();
    heap.pop_back();
    Sym& left = syms[c.pos];
    if (left.id != c.left_id || left.next < 0 || syms[left.next].id != c.right_id) continue;  // stale
    Sym& right = syms[left.next];
    left.id = c.new_id;
    right.id = -1;  // dead
    left.next = right.next;
    if (left.next >= 0) syms[left.next].prev = c.pos;
    if (left.prev >= 0) push(left.prev);
    push(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

std::string BpeTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string out;
  for (int64_t id : ids) {
    ZOFF_CHECK(id >= 0 && id < vocab_size() && assigned_[id], "cannot decode token id ", id, ": not in the vocabulary of ",
               source_, " (vocab_size ", vocab_size(), ")");
    const std::string& tok = id_to_token_[id];
    if (added_kind_[id]) {
      if (!(skip_special_tokens && added_kind_[id] == 2)) out += tok;
      continue;
    }
    for (size_t i = 0; i < tok.size();) {
      auto c = unicode::decode_at(tok, i);
      if (c.cp < unicode_to_byte_.size() && unicode_to_byte_[c.cp] >= 0) {
        out += static_cast<char>(unicode_to_byte_[c.cp]);
      } else {
        out.append(tok, i, c.len);  // not a byte symbol: kept as written
      }
      i += c.len;
    }
  }
  return out;
}

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeSpec spec) { return std::make_unique<BpeTokenizer>(std::move(spec)); }

}  // namespace zoff
