// Hand-written matchers for the byte-level pre-tokenizer regexes (Note [Pre-tokenizer regexes]).
#include "src/data/pretokenize.h"

#include "src/data/unicode.h"

namespace zoff {

namespace {

constexpr std::string_view kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// The text decoded once: code points and classes, indexed by character.
struct Chars {
  std::vector<uint32_t> cp;
  std::vector<uint8_t> cls;  // 0 other, 1 letter, 2 number, 4 space
  std::vector<size_t> offset;  // byte offset of each character; offset[n] = text size

  explicit Chars(std::string_view text) {
    for (size_t i = 0; i < text.size();) {
      unicode::Char c = unicode::decode_at(text, i);
      cp.push_back(c.cp);
      uint8_t k = unicode::is_space(c.cp) ? 4 : 0;
      if (!k) {
        auto cc = unicode::char_class(c.cp);
        k = cc == unicode::CharClass::kLetter ? 1 : cc == unicode::CharClass::kNumber ? 2 : 0;
      }
      cls.push_back(k);
      offset.push_back(i);
      i += c.len;
    }
    offset.push_back(text.size());
  }
  size_t size() const { return cp.size(); }
  bool letter(size_t i) const { return i < size() && cls[i] == 1; }
  bool number(size_t i) const { return i < size() && cls[i] == 2; }
  bool space(size_t i) const { return i < size() && cls[i] == 4; }
  bool other(size_t i) const { return i < size() && cls[i] == 0; }
  bool is(size_t i, uint32_t c) const { return i < size() && cp[i] == c; }
  bool crlf(size_t i) const { return is(i, '\r') || is(i, '\n'); }
  uint32_t lower(size_t i) const {
    uint32_t c = cp[i];
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
  }
};

// 's|'t|'re|'ve|'m|'ll|'d at i; returns the end or 0.
size_t match_contraction(const Chars& t, size_t i, bool ignore_case) {
  if (!t.is(i, '\'') || i + 1 >= t.size()) return 0;
  auto at = [&](size_t k) { return ignore_case ? t.lower(k) : t.cp[k]; };
  uint32_t a = at(i + 1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
  if (i + 2 >= t.size()) return 0;
  uint32_t b = at(i + 2);
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
  return 0;
}

template <typename Pred>
size_t extend(const Chars& t, size_t j, Pred pred) {
  while (j < t.size() && pred(j)) ++j;
  return j;
}

// \s+(?!\S) then \s+ at i (t.space(i) holds).
size_t match_space_run(const Chars& t, size_t i) {
  size_t j = extend(t, i, [&](size_t k) { return t.space(k); });
  if (j == t.size()) return j;  // (?!\S) holds at the end
  if (j - 1 > i) return j - 1;  // backtrack one so that a space follows
  return j;                     // \s+
}

size_t match_gpt2(const Chars& t, size_t i) {
  if (size_t e = match_contraction(t, i, false)) return e;
  size_t j = t.is(i, ' ') ? i + 1 : i;
  if (t.letter(j)) return extend(t, j, [&](size_t k) { return t.letter(k); });
  if (t.number(j)) return extend(t, j, [&](size_t k) { return t.number(k); });
  if (t.other(j)) return extend(t, j, [&](size_t k) { return t.other(k); });
  // Here t[i] is whitespace (a lone ' ' before a space, or other whitespace).
  return match_space_run(t, i);
}

size_t match_qwen(const Chars& t, size_t i, size_t max_digits) {
  if (size_t e = match_contraction(t, i, true)) return e;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (t.letter(i)) return extend(t, i, [&](size_t k) { return t.letter(k); });
  if (!t.crlf(i) && !t.number(i) && t.letter(i + 1)) return extend(t, i + 1, [&](size_t k) { return t.letter(k); });
  // \p{N}{1,max}
  if (t.number(i)) {
    size_t j = i;
    while (j < t.size() && j - i < max_digits && t.number(j)) ++j;
    return j;
  }
  // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
  size_t j = t.is(i, ' ') && t.other(i + 1) ? i + 1 : i;
  if (t.other(j)) {
    j = extend(t, j, [&](size_t k) { return t.other(k); });
    return extend(t, j, [&](size_t k) { return t.crlf(k); });
  }
  // \s*[\r\n]+ : ends after the last CR/LF of the whitespace run.
  size_t run = extend(t, i, [&](size_t k) { return t.space(k); });
  for (size_t k = run; k > i; --k) {
    if (t.crlf(k - 1)) return k;
  }
  return match_space_run(t, i);
}

}  // namespace

std::optional<PreTokenizerKind> pre_tokenizer_from_regex(std::string_view pattern) {
  if (pattern == kGpt2Regex) return PreTokenizerKind::kGpt2;
  if (pattern == kQwen2Regex) return PreTokenizerKind::kQwen2;
  if (pattern == kLlama3Regex) return PreTokenizerKind::kLlama3;
  return std::nullopt;
}

void pre_tokenize(PreTokenizerKind kind, std::string_view text, std::vector<std::string_view>& out) {
  if (text.empty()) return;
  if (kind == PreTokenizerKind::kNone) {
    out.push_back(text);
    return;
  }
  Chars t(text);
  for (size_t i = 0; i < t.size();) {
    size_t e = kind == PreTokenizerKind::kGpt2     ? match_gpt2(t, i)
               : kind == PreTokenizerKind::kQwen2 ? match_qwen(t, i, 1)
                                                   : match_qwen(t, i, 3);
    out.push_back(text.substr(t.offset[i], t.offset[e] - t.offset[i]));
    i = e;
  }
}

}  // namespace zoff
