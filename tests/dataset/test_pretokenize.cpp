// Pre-tokenizer scanners and Unicode classes against splits worked out by hand from the regexes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "src/data/pretokenize.h"
#include "src/data/unicode.h"

namespace zoff {
namespace {

using Pieces = std::vector<std::string>;

Pieces split(PreTokenizerKind kind, const std::string& text) {
  std::vector<std::string_view> v;
  pre_tokenize(kind, text, v);
  Pieces out(v.begin(), v.end());
  std::string joined;
  for (auto& p : out) joined += p;
  EXPECT_EQ(joined, text) << "pieces must tile the text";
  return out;
}

TEST(Unicode, Classes) {
  using unicode::char_class;
  using unicode::CharClass;
  EXPECT_EQ(char_class('a'), CharClass::kLetter);
  EXPECT_EQ(char_class('7'), CharClass::kNumber);
  EXPECT_EQ(char_class('!'), CharClass::kOther);
  EXPECT_EQ(char_class(0xE9), CharClass::kLetter);    // é
  EXPECT_EQ(char_class(0x3B1), CharClass::kLetter);   // Greek alpha
  EXPECT_EQ(char_class(0x436), CharClass::kLetter);   // Cyrillic zhe
  EXPECT_EQ(char_class(0x65E5), CharClass::kLetter);  // CJK 日
  EXPECT_EQ(char_class(0xAC00), CharClass::kLetter);  // Hangul
  EXPECT_EQ(char_class(0x0663), CharClass::kNumber);  // Arabic-Indic 3
  EXPECT_EQ(char_class(0xBD), CharClass::kNumber);    // ½
  EXPECT_EQ(char_class(0x301), CharClass::kMark);     // combining acute
  EXPECT_EQ(char_class(0x1F600), CharClass::kOther);  // emoji
  EXPECT_EQ(char_class(0x20000), CharClass::kLetter); // CJK extension B
  EXPECT_TRUE(unicode::is_space(0xA0));
  EXPECT_TRUE(unicode::is_space(0x3000));
  EXPECT_TRUE(unicode::is_space('\v'));
  EXPECT_FALSE(unicode::is_space(0x200B));  // zero width space is not White_Space
}

TEST(Unicode, DecodeRejectsMalformed) {
  auto one = [](const std::string& s) { return unicode::decode_at(s, 0); };
  EXPECT_EQ(one("\xC3\xA9").cp, 0xE9u);
  EXPECT_EQ(one("\xF0\x9F\x98\x80").cp, 0x1F600u);
  EXPECT_EQ(one("\xC0\xAF").cp, unicode::kInvalid);      // overlong
  EXPECT_EQ(one("\xED\xA0\x80").cp, unicode::kInvalid);  // surrogate
  EXPECT_EQ(one("\xE2\x82").cp, unicode::kInvalid);      // truncated
  EXPECT_EQ(one("\xE2\x82").len, 1u);
  EXPECT_EQ(one("\x80").cp, unicode::kInvalid);
  EXPECT_EQ(unicode::count_chars("h\xC3\xA9\xFF"), 3u);
}

TEST(PreTokenize, Gpt2Basics) {
  auto k = PreTokenizerKind::kGpt2;
  EXPECT_EQ(split(k, "Hello world"), (Pieces{"Hello", " world"}));
  EXPECT_EQ(split(k, "Hello  world"), (Pieces{"Hello", " ", " world"}));
  EXPECT_EQ(split(k, "   x"), (Pieces{"  ", " x"}));
  EXPECT_EQ(split(k, "trailing  "), (Pieces{"trailing", "  "}));
  EXPECT_EQ(split(k, "a\n\nb"), (Pieces{"a", "\n", "\n", "b"}));
  EXPECT_EQ(split(k, "a\tb"), (Pieces{"a", "\t", "b"}));
  EXPECT_EQ(split(k, "I'm don't you'll"), (Pieces{"I", "'m", " don", "'t", " you", "'ll"}));
  EXPECT_EQ(split(k, "'S"), (Pieces{"'", "S"}));  // case-sensitive contractions
  EXPECT_EQ(split(k, "abc123 def"), (Pieces{"abc", "123", " def"}));
  EXPECT_EQ(split(k, "x = 3.14!!"), (Pieces{"x", " =", " 3", ".", "14", "!!"}));
  EXPECT_EQ(split(k, " !?"), (Pieces{" !?"}));
  EXPECT_EQ(split(k, ""), Pieces{});
}

TEST(PreTokenize, Gpt2Unicode) {
  auto k = PreTokenizerKind::kGpt2;
  EXPECT_EQ(split(k, "h\xC3\xA9llo w\xC3\xB6rld"), (Pieces{"h\xC3\xA9llo", " w\xC3\xB6rld"}));
  EXPECT_EQ(split(k, "\xD0\x9F\xD1\x80\xD0\xB8 \xD0\xBC\xD0\xB8\xD1\x80"),  // "При мир"
            (Pieces{"\xD0\x9F\xD1\x80\xD0\xB8", " \xD0\xBC\xD0\xB8\xD1\x80"}));
  EXPECT_EQ(split(k, "\xE6\x97\xA5\xE6\x9C\xAC \xE3\x83\x86"),  // "日本 テ"
            (Pieces{"\xE6\x97\xA5\xE6\x9C\xAC", " \xE3\x83\x86"}));
  EXPECT_EQ(split(k, "\xC2\xBD \xD9\xA3"), (Pieces{"\xC2\xBD", " \xD9\xA3"}));  // ½ and Arabic 3: numbers
  EXPECT_EQ(split(k, "\xF0\x9F\x98\x80 ok"), (Pieces{"\xF0\x9F\x98\x80", " ok"}));  // emoji: other
  EXPECT_EQ(split(k, "a\xC2\xA0" "b"), (Pieces{"a", "\xC2\xA0", "b"}));  // NBSP is whitespace
  EXPECT_EQ(split(k, "a\xFF" "b"), (Pieces{"a", "\xFF", "b"}));  // invalid byte: other
  // A combining mark is not a letter: it ends the word and starts an "other" run.
  EXPECT_EQ(split(k, "e\xCC\x81t"), (Pieces{"e", "\xCC\x81", "t"}));
}

TEST(PreTokenize, Qwen2) {
  auto k = PreTokenizerKind::kQwen2;
  EXPECT_EQ(split(k, "Hello world"), (Pieces{"Hello", " world"}));
  EXPECT_EQ(split(k, "I'M 12345"), (Pieces{"I", "'M", " ", "1", "2", "3", "4", "5"}));
  EXPECT_EQ(split(k, "foo.\n\nbar"), (Pieces{"foo", ".\n\n", "bar"}));
  EXPECT_EQ(split(k, "a  \n b"), (Pieces{"a", "  \n", " b"}));
  EXPECT_EQ(split(k, "$hello \tworld"), (Pieces{"$hello", " ", "\tworld"}));
  EXPECT_EQ(split(k, "x\n\ny"), (Pieces{"x", "\n\n", "y"}));
  EXPECT_EQ(split(k, "end  "), (Pieces{"end", "  "}));
  EXPECT_EQ(split(k, "a  b"), (Pieces{"a", " ", " b"}));
  EXPECT_EQ(split(k, " ?!\n"), (Pieces{" ?!\n"}));
}

TEST(PreTokenize, Llama3DigitsInThrees) {
  EXPECT_EQ(split(PreTokenizerKind::kLlama3, "1234567 x"), (Pieces{"123", "456", "7", " x"}));
}

TEST(PreTokenize, NoneKeepsWhole) {
  EXPECT_EQ(split(PreTokenizerKind::kNone, "a b  c"), (Pieces{"a b  c"}));
}

TEST(PreTokenize, RecognisesPatternsExactly) {
  EXPECT_EQ(pre_tokenizer_from_regex(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"),
            PreTokenizerKind::kGpt2);
  EXPECT_EQ(pre_tokenizer_from_regex(
                R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"),
            PreTokenizerKind::kQwen2);
  EXPECT_FALSE(pre_tokenizer_from_regex(R"(\w+|\s+)").has_value());
}

}  // namespace
}  // namespace zoff
