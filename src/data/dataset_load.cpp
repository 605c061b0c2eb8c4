// load_dataset(): JSONL records and plain-text corpora into tokenized rows (Note [Dataset formats]).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "src/data/parallel.h"
#include "zoff/dataset.h"
#include "zoff/error.h"
#include "zoff/tokenizer.h"

namespace zoff {

using nlohmann::json;

Dataset::Dataset(std::string source, DatasetFormat format, std::vector<Example> examples)
    : source_(std::move(source)), format_(format), examples_(std::move(examples)) {
  ZOFF_CHECK(format_ != DatasetFormat::kAuto, "a Dataset needs a resolved format");
  for (const auto& e : examples_) {
    num_rows_ += static_cast<int64_t>(e.rows.size());
    for (const auto& r : e.rows) max_row_length_ = std::max(max_row_length_, static_cast<int64_t>(r.input_ids.size()));
  }
}

namespace {

constexpr int64_t kIgnore = -100;

struct Line {
  int64_t number;
  std::string text;
};

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  ZOFF_INPUT_CHECK(f.good(), "cannot open dataset file ", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  if (s.rfind("\xEF\xBB\xBF", 0) == 0) s.erase(0, 3);  // UTF-8 byte order mark
  return s;
}

// Lines with their 1-based numbers; "\r\n" endings accepted; blank lines dropped.
std::vector<Line> split_lines(const std::string& content) {
  std::vector<Line> out;
  int64_t number = 0;
  for (size_t start = 0; start < content.size();) {
    size_t end = content.find('\n', start);
    if (end == std::string::npos) end = content.size();
    ++number;
    std::string text = content.substr(start, end - start);
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") != std::string::npos) out.push_back({number, std::move(text)});
    start = end + 1;
  }
  return out;
}

// Everything a record builder needs, resolved once.
struct Ctx {
  std::string path;
  const Tokenizer* tok = nullptr;
  int64_t max_length = 0;
  Truncation truncation = Truncation::kRight;
  int64_t bos = -1;  // prepended when >= 0
  int64_t eos = -1;  // appended to texts when >= 0
  int64_t vocab = 0;  // kTokens id bound; 0 = unchecked

  std::string at(int64_t line) const { return path + ":" + std::to_string(line); }
};

const json& field(const Ctx& c, int64_t line, const json& obj, const char* name) {
  ZOFF_INPUT_CHECK(obj.contains(name), c.at(line), ": missing field \"", name, "\"");
  return obj[name];
}

std::string string_field(const Ctx& c, int64_t line, const json& obj, const char* name) {
  const json& v = field(c, line, obj, name);
  ZOFF_INPUT_CHECK(v.is_string(), c.at(line), ": field \"", name, "\" must be a string, got ", v.type_name());
  return v.get<std::string>();
}

// Scored targets: positions t >= 1 whose label is not -100 (labels[0] is never predicted).
int64_t scored_targets(const Sequence& s) {
  int64_t n = 0;
  for (size_t t = 1; t < s.labels.size(); ++t) n += s.labels[t] != kIgnore;
  return n;
}

// Note [Truncation] (include/zoff/dataset.h).
void truncate(const Ctx& c, Sequence& s, bool has_bos) {
  auto len = static_cast<int64_t>(s.input_ids.size());
  if (c.max_length <= 0 || len <= c.max_length) return;
  if (c.truncation == Truncation::kRight) {
    s.input_ids.resize(c.max_length);
    s.labels.resize(c.max_length);
    return;
  }
  int64_t keep_front = has_bos && c.max_length > 1 ? 1 : 0;
  int64_t drop = len - c.max_length;
  s.input_ids.erase(s.input_ids.begin() + keep_front, s.input_ids.begin() + keep_front + drop);
  s.labels.erase(s.labels.begin() + keep_front, s.labels.begin() + keep_front + drop);
}

Sequence text_row(const Ctx& c, const std::string& text) {
  Sequence s;
  if (c.bos >= 0) s.input_ids.push_back(c.bos);
  std::vector<int64_t> ids = c.tok->encode(text);
  s.input_ids.insert(s.input_ids.end(), ids.begin(), ids.end());
  if (c.eos >= 0) s.input_ids.push_back(c.eos);
  s.labels = s.input_ids;
  return s;
}

Example text_example(const Ctx& c, int64_t line, const json& obj) {
  std::string text = string_field(c, line, obj, "text");
  ZOFF_INPUT_CHECK(!text.empty(), c.at(line), ": field \"text\" is empty");
  Example e;
  e.line = line;
  e.rows.push_back(text_row(c, text));
  truncate(c, e.rows[0], c.bos >= 0);
  ZOFF_INPUT_CHECK(scored_targets(e.rows[0]) > 0, c.at(line), ": field \"text\" gives ", e.rows[0].input_ids.size(),
                   " token(s), too few for a causal-LM target (need 2 or more)");
  return e;
}

// Note [Candidate scoring]
// A candidate's row is the encoding of prompt + candidate as one string (so it is exactly what
// the model would see), after an optional bos. The scored tokens are those past the longest
// common prefix of encode(prompt + candidate) and encode(prompt): with byte-level BPE and a
// candidate that starts a new word (" positive"), that is exactly the candidate's own tokens;
// when a merge crosses the boundary, the merged token counts as the candidate's. The prompt's
// tokens get label -100, so a row's mean loss is the candidate's mean NLL given the prompt.
Example classification_example(const Ctx& c, int64_t line, const json& obj) {
  std::string prompt = string_field(c, line, obj, "prompt");
  const json& cands = field(c, line, obj, "candidates");
  ZOFF_INPUT_CHECK(cands.is_array(), c.at(line), ": field \"candidates\" must be an array of strings, got ",
                   cands.type_name());
  ZOFF_INPUT_CHECK(!cands.empty(), c.at(line), ": field \"candidates\" is empty");
  const json& label = field(c, line, obj, "label");
  ZOFF_INPUT_CHECK(label.is_number_integer(), c.at(line), ": field \"label\" must be an integer, got ",
                   label.type_name());
  Example e;
  e.line = line;
  e.label = label.get<int64_t>();
  ZOFF_INPUT_CHECK(e.label >= 0 && e.label < static_cast<int64_t>(cands.size()), c.at(line), ": field \"label\" is ",
                   e.label, ", out of range for ", cands.size(), " candidates");
  std::vector<int64_t> prompt_ids = c.tok->encode(prompt);
  for (size_t k = 0; k < cands.size(); ++k) {
    ZOFF_INPUT_CHECK(cands[k].is_string(), c.at(line), ": field \"candidates\"[", k, "] must be a string, got ",
                     cands[k].type_name());
    std::string cand = cands[k].get<std::string>();
    ZOFF_INPUT_CHECK(!cand.empty(), c.at(line), ": field \"candidates\"[", k, "] is empty");
    std::vector<int64_t> full = c.tok->encode(prompt + cand);
    size_t common = 0;
    while (common < full.size() && common < prompt_ids.size() && full[common] == prompt_ids[common]) ++common;
    Sequence s;
    if (c.bos >= 0) s.input_ids.push_back(c.bos);
    size_t scored_from = s.input_ids.size() + common;
    s.input_ids.insert(s.input_ids.end(), full.begin(), full.end());
    s.labels.assign(s.input_ids.size(), kIgnore);
    for (size_t t = scored_from; t < s.input_ids.size(); ++t) s.labels[t] = s.input_ids[t];
    truncate(c, s, c.bos >= 0);
    ZOFF_INPUT_CHECK(scored_targets(s) > 0, c.at(line), ": field \"candidates\"[", k,
                     "] leaves no scored token", c.max_length > 0 ? " after truncation to max_length " : "",
                     c.max_length > 0 ? std::to_string(c.max_length) : std::string(),
                     " (a candidate needs a token that follows at least one other token)");
    e.rows.push_back(std::move(s));
  }
  return e;
}

std::vector<int64_t> id_array(const Ctx& c, int64_t line, const json& obj, const char* name, bool allow_ignore) {
  const json& v = field(c, line, obj, name);
  ZOFF_INPUT_CHECK(v.is_array(), c.at(line), ": field \"", name, "\" must be an array of integers, got ", v.type_name());
  std::vector<int64_t> out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    ZOFF_INPUT_CHECK(v[i].is_number_integer(), c.at(line), ": field \"", name, "\"[", i,
                     "] must be an integer, got ", v[i].type_name());
    int64_t id = v[i].get<int64_t>();
    bool ok = (allow_ignore && id == kIgnore) || (id >= 0 && (c.vocab <= 0 || id < c.vocab));
    ZOFF_INPUT_CHECK(ok, c.at(line), ": field \"", name, "\"[", i, "] is ", id, ", outside [0, ",
                     c.vocab > 0 ? std::to_string(c.vocab) : std::string("inf"), ")",
                     allow_ignore ? " and not -100" : "");
    out.push_back(id);
  }
  return out;
}

Example tokens_example(const Ctx& c, int64_t line, const json& obj) {
  Example e;
  e.line = line;
  Sequence s;
  s.input_ids = id_array(c, line, obj, "input_ids", false);
  ZOFF_INPUT_CHECK(!s.input_ids.empty(), c.at(line), ": field \"input_ids\" is empty");
  if (obj.contains("labels")) {
    s.labels = id_array(c, line, obj, "labels", true);
    ZOFF_INPUT_CHECK(s.labels.size() == s.input_ids.size(), c.at(line), ": field \"labels\" has ", s.labels.size(),
                     " entries but \"input_ids\" has ", s.input_ids.size());
  } else {
    s.labels = s.input_ids;
  }
  truncate(c, s, false);
  ZOFF_INPUT_CHECK(scored_targets(s) > 0, c.at(line), ": no scored target (need a label other than -100 after ",
                   "position 0", c.max_length > 0 ? ", after truncation" : "", ")");
  e.rows.push_back(std::move(s));
  return e;
}

DatasetFormat detect_format(const Ctx& c, const std::vector<Line>& lines) {
  ZOFF_INPUT_CHECK(!lines.empty(), c.path, ": the dataset has no records");
  json first;
  try {
    first = json::parse(lines[0].text);
  } catch (const json::exception& e) {
    ZOFF_INPUT_FAIL(c.at(lines[0].number), ": invalid JSON: ", e.what());
  }
  ZOFF_INPUT_CHECK(first.is_object(), c.at(lines[0].number), ": expected a JSON object, got ", first.type_name());
  if (first.contains("prompt")) return DatasetFormat::kClassification;
  if (first.contains("input_ids")) return DatasetFormat::kTokens;
  if (first.contains("text")) return DatasetFormat::kText;
  ZOFF_INPUT_FAIL(c.at(lines[0].number),
                  ": cannot tell the dataset format: expected a field \"text\", \"prompt\" or \"input_ids\"");
}

Dataset load_jsonl(const Ctx& c, DatasetFormat format, const std::vector<Line>& lines) {
  std::vector<Example> examples(lines.size());
  parallel_for_each_index(static_cast<int64_t>(lines.size()), [&](int64_t i) {
    const Line& l = lines[i];
    json obj;
    try {
      obj = json::parse(l.text);
    } catch (const json::exception& e) {
      ZOFF_INPUT_FAIL(c.at(l.number), ": invalid JSON: ", e.what());
    }
    ZOFF_INPUT_CHECK(obj.is_object(), c.at(l.number), ": expected a JSON object, got ", obj.type_name());
    switch (format) {
      case DatasetFormat::kText: examples[i] = text_example(c, l.number, obj); break;
      case DatasetFormat::kClassification: examples[i] = classification_example(c, l.number, obj); break;
      case DatasetFormat::kTokens: examples[i] = tokens_example(c, l.number, obj); break;
      default: ZOFF_FAIL("unreachable dataset format");
    }
  });
  return Dataset(c.path, format, std::move(examples));
}

Dataset load_corpus(const Ctx& c, const std::vector<Line>& lines) {
  ZOFF_INPUT_CHECK(c.max_length >= 2, c.path, ": a plain-text corpus is cut into rows of max_length tokens; ",
                   "max_length must be at least 2, got ", c.max_length);
  ZOFF_INPUT_CHECK(!lines.empty(), c.path, ": the corpus has no text");
  std::vector<std::string> texts;
  texts.reserve(lines.size());
  for (const auto& l : lines) texts.push_back(l.text);
  std::vector<std::vector<int64_t>> ids = encode_all(*c.tok, texts);
  std::vector<int64_t> stream, stream_line;  // tokens, and the line each came from
  for (size_t i = 0; i < ids.size(); ++i) {
    stream.insert(stream.end(), ids[i].begin(), ids[i].end());
    if (c.eos >= 0) stream.push_back(c.eos);
    stream_line.resize(stream.size(), lines[i].number);
  }
  const int64_t body = c.max_length - (c.bos >= 0 ? 1 : 0);
  std::vector<Example> examples;
  for (int64_t start = 0; start < static_cast<int64_t>(stream.size()); start += body) {
    int64_t end = std::min<int64_t>(start + body, static_cast<int64_t>(stream.size()));
    Sequence s;
    if (c.bos >= 0) s.input_ids.push_back(c.bos);
    s.input_ids.insert(s.input_ids.end(), stream.begin() + start, stream.begin() + end);
    s.labels = s.input_ids;
    if (s.input_ids.size() < 2) break;  // a last single token has no target
    Example e;
    e.line = stream_line[start];
    e.rows.push_back(std::move(s));
    examples.push_back(std::move(e));
  }
  ZOFF_INPUT_CHECK(!examples.empty(), c.path, ": the corpus encodes to fewer than 2 tokens");
  return Dataset(c.path, DatasetFormat::kCorpus, std::move(examples));
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Dataset load_dataset(const std::string& path, const Tokenizer* tokenizer, const DataOptions& opts) {
  ZOFF_INPUT_CHECK(opts.max_length >= 0, path, ": max_length must be >= 0, got ", opts.max_length);
  Ctx c;
  c.path = path;
  c.tok = tokenizer;
  c.max_length = opts.max_length;
  std::vector<Line> lines = split_lines(read_file(path));
  DatasetFormat format = opts.format;
  if (format == DatasetFormat::kAuto) format = ends_with(path, ".txt") ? DatasetFormat::kCorpus : detect_format(c, lines);
  ZOFF_CHECK(tokenizer || format == DatasetFormat::kTokens, "loading ", path, " needs a tokenizer");
  if (tokenizer) {
    bool bos = opts.add_bos.value_or(tokenizer->add_bos());
    c.bos = bos ? tokenizer->bos_id() : -1;
    ZOFF_INPUT_CHECK(!bos || c.bos >= 0, path, ": add_bos is set but the tokenizer has no bos token");
    bool text_like = format == DatasetFormat::kText || format == DatasetFormat::kCorpus;
    c.eos = opts.add_eos && text_like ? tokenizer->eos_id() : -1;
    c.vocab = tokenizer->vocab_size();
  } else {
    c.vocab = opts.vocab_size;
  }
  c.truncation = opts.truncation != Truncation::kAuto ? opts.truncation
                 : format == DatasetFormat::kClassification ? Truncation::kLeft
                                                            : Truncation::kRight;
  if (format == DatasetFormat::kCorpus) return load_corpus(c, lines);
  ZOFF_INPUT_CHECK(!lines.empty(), path, ": the dataset has no records");
  return load_jsonl(c, format, lines);
}

std::vector<std::vector<int64_t>> encode_all(const Tokenizer& tokenizer, const std::vector<std::string>& texts) {
  std::vector<std::vector<int64_t>> out(texts.size());
  parallel_for_each_index(static_cast<int64_t>(texts.size()), [&](int64_t i) { out[i] = tokenizer.encode(texts[i]); });
  return out;
}

}  // namespace zoff
