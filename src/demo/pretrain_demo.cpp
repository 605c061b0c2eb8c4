// zoff_pretrain_demo: pre-trains the tiny OPT model shipped for `make demo` (docs/demo.md).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "demo.h"
#include "zoff/error.h"
#include "zoff/safetensors.h"
#include "zoff/tokenizer.h"
#include "zoff/weights.h"

namespace fs = std::filesystem;

namespace zoff::demo {
namespace {

// Note [Demo recipe]
// The checkpoint must be good at language but not yet at the task, so that MeZO has something
// to teach (docs/demo.md). It is pre-trained with AdamW on corpus.txt only, never on
// train.jsonl or test.jsonl, and the corpus lines written in the task's own format
// ("... Sentiment: positive") are left out (--keep-tagged puts them back): the model learns the
// reviews' vocabulary and the other ways the corpus states a verdict ("Overall: negative.",
// "This review is positive."), and MeZO on train.jsonl then ties "Review: ...\nSentiment:" to
// the right word. Every default below is the shipped recipe.
struct Options {
  std::string data = "configs/data/sentiment";
  std::string out;  // default: <data>/model
  std::string from;  // load this checkpoint instead of pre-training
  bool save = true;
  bool keep_tagged = false;
  int64_t steps = 600;
  double lr = 2e-3;
  double weight_decay = 0.01;
  int64_t warmup = 50;
  int64_t batch_size = 16;
  int64_t seq_len = 64;
  uint64_t seed = 0;
  int64_t eval_every = 100;
  int threads = 2;
  int64_t mezo_steps = 0;  // > 0: run the MeZO check (Note [MeZO check]) after pre-training
  MezoOptions mezo;
};

ModelSpec demo_spec(const Tokenizer& tok) {
  ModelSpec s;
  s.arch = Arch::OPT;
  s.vocab_size = tok.vocab_size();
  s.hidden_size = 128;
  s.num_layers = 4;
  s.num_heads = 4;
  s.num_kv_heads = 4;
  s.head_dim = 32;
  s.ffn_dim = 512;
  s.max_positions = 128;
  s.word_embed_proj_dim = 128;
  s.tie_word_embeddings = true;
  s.do_layer_norm_before = true;
  s.activation = "relu";
  s.pad_token_id = tok.pad_id();
  s.bos_token_id = tok.bos_id();
  s.eos_token_id = tok.eos_id();
  return s;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  ZOFF_INPUT_CHECK(f.good(), path, ": cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Corpus lines (optionally without the task-format ones), each + eos, concatenated and cut into
// rows of seq_len tokens: [bos] + seq_len - 1 tokens (the last row may be shorter).
std::vector<std::vector<int64_t>> corpus_rows(const std::string& path, const Tokenizer& tok,
                                              int64_t seq_len, bool keep_tagged) {
  std::vector<std::string> lines;
  std::istringstream in(read_text(path));
  int64_t dropped = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    if (!keep_tagged && line.find("Sentiment:") != std::string::npos) {
      ++dropped;
      continue;
    }
    lines.push_back(line);
  }
  ZOFF_INPUT_CHECK(!lines.empty(), path, ": no usable lines");
  std::vector<int64_t> stream;
  for (auto& ids : encode_all(tok, lines)) {
    stream.insert(stream.end(), ids.begin(), ids.end());
    stream.push_back(tok.eos_id());
  }
  std::vector<std::vector<int64_t>> rows;
  for (size_t s = 0; s < stream.size(); s += size_t(seq_len - 1)) {
    std::vector<int64_t> r{tok.bos_id()};
    r.insert(r.end(), stream.begin() + long(s), stream.begin() + long(std::min(stream.size(), s + size_t(seq_len - 1))));
    if (r.size() > 1) rows.push_back(std::move(r));
  }
  std::printf("corpus: %zu lines (%ld in the task format left out), %zu tokens, %zu rows of <= %ld\n",
              lines.size(), long(dropped), stream.size(), rows.size(), long(seq_len));
  return rows;
}

// Plain AdamW over the flat group buffers (decoupled weight decay on matrices and embeddings).
struct AdamW {
  std::vector<at::Tensor> m, v, decay_mask;
  double beta1 = 0.9, beta2 = 0.98, eps = 1e-8;
  int64_t t = 0;
  AdamW(const Model& model, const std::vector<at::Tensor>& flats) {
    for (size_t g = 0; g < flats.size(); ++g) {
      m.push_back(at::zeros_like(flats[g]));
      v.push_back(at::zeros_like(flats[g]));
      at::Tensor mask = at::zeros_like(flats[g]);
      for (auto& p : model.group(int(g)).params)
        if (p.decays()) mask.narrow(0, p.offset, p.numel).fill_(1.0);
      decay_mask.push_back(mask);
    }
  }
  void step(std::vector<at::Tensor>& flats, double lr, double wd) {
    at::NoGradGuard no_grad;
    ++t;
    const double bc1 = 1 - std::pow(beta1, double(t)), bc2 = 1 - std::pow(beta2, double(t));
    for (size_t g = 0; g < flats.size(); ++g) {
      at::Tensor grad = flats[g].grad();
      m[g].mul_(beta1).add_(grad, 1 - beta1);
      v[g].mul_(beta2).addcmul_(grad, grad, 1 - beta2);
      flats[g].mul_(1 - lr * wd * decay_mask[g]);
      flats[g].addcdiv_(m[g], (v[g] / bc2).sqrt_().add_(eps), -lr / bc1);
      flats[g].mutable_grad() = at::Tensor();
    }
  }
};

double lr_at(const Options& o, int64_t step) {
  if (step < o.warmup) return o.lr * double(step + 1) / double(o.warmup);
  const double p = double(step - o.warmup) / double(std::max<int64_t>(1, o.steps - o.warmup));
  return o.lr * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * p)));
}

void pretrain(const Model& m, std::vector<at::Tensor>& flats, const Tokenizer& tok,
              const Dataset& test, const Options& o) {
  auto rows = corpus_rows(o.data + "/corpus.txt", tok, o.seq_len, o.keep_tagged);
  const int64_t n = int64_t(rows.size()), per_epoch = n / o.batch_size;
  ZOFF_INPUT_CHECK(per_epoch > 0, o.data, "/corpus.txt: ", n, " rows cannot fill one batch of ",
                   o.batch_size);
  for (auto& f : flats) f.requires_grad_(true);
  AdamW opt(m, flats);
  std::vector<int64_t> order;
  double avg = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t t = 0; t < o.steps; ++t) {
    const int64_t k = t % per_epoch;
    if (k == 0) order = shuffled_indices(n, o.seed, t / per_epoch);
    at::Tensor ids = at::full({o.batch_size, o.seq_len}, tok.pad_id(), at::kLong);
    at::Tensor mask = at::zeros({o.batch_size, o.seq_len}, at::kLong);
    for (int64_t b = 0; b < o.batch_size; ++b) {
      const auto& r = rows[size_t(order[size_t(k * o.batch_size + b)])];
      ids[b].narrow(0, 0, int64_t(r.size())).copy_(at::tensor(r, at::kLong));
      mask[b].narrow(0, 0, int64_t(r.size())).fill_(1);
    }
    FlatWeightSource w(m, flats, at::kFloat);
    at::Tensor logits = forward_logits(m, w, ids, mask, at::kFloat, at::kCPU);
    at::Tensor loss = causal_lm_loss(logits, labels_from_inputs(ids, mask));
    loss.backward();
    {  // clip the global gradient norm at 1
      at::NoGradGuard no_grad;
      double sq = 0;
      for (auto& f : flats) sq += f.grad().pow(2).sum().item<double>();
      const double norm = std::sqrt(sq);
      if (norm > 1.0)
        for (auto& f : flats) f.mutable_grad().mul_(1.0 / norm);
    }
    opt.step(flats, lr_at(o, t), o.weight_decay);
    avg = t == 0 ? loss.item<double>() : 0.95 * avg + 0.05 * loss.item<double>();
    if ((t + 1) % o.eval_every == 0 || t + 1 == o.steps) {
      ClassEval e = eval_classification(m, flats, test, tok.pad_id());
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("pretrain: step %ld loss %.3f  held-out accuracy %.1f%% (nll %.3f)  %.0f s\n",
                  long(t + 1), avg, 100 * e.accuracy, e.nll_correct, s);
      std::fflush(stdout);
    }
  }
  for (auto& f : flats) f.requires_grad_(false);
}

// config.json + model.safetensors + the tokenizer files: an HF-style folder zoff (and
// transformers) can load. Then reloads it and checks the held-out scores are unchanged.
void save(const Model& m, const std::vector<at::Tensor>& flats, const Dataset& test,
          const Tokenizer& tok, const Options& o) {
  fs::create_directories(o.out);
  ModelWeights w{flats};
  write_checkpoint(o.out, named_tensors(m, w));
  write_file_atomic(o.out + "/config.json", model_spec_to_json(m.spec()).dump(2) + "\n");
  for (const char* f : {"vocab.json", "merges.txt", "tokenizer_config.json"})
    write_file_atomic(o.out + "/" + f, read_text(o.data + "/tokenizer/" + f));
  Model m2(parse_hf_config(o.out + "/config.json"));
  ModelWeights w2 = load_weights(m2, o.out, at::kFloat);
  ClassEval a = eval_classification(m, flats, test, tok.pad_id());
  ClassEval b = eval_classification(m2, w2.flats, test, tok.pad_id());
  ZOFF_CHECK(a.accuracy == b.accuracy && a.nll_correct == b.nll_correct, "reloaded ", o.out,
             " scores differently: accuracy ", a.accuracy, " vs ", b.accuracy, ", nll ",
             a.nll_correct, " vs ", b.nll_correct);
  std::printf("saved %s (%ld parameters); reloaded: same held-out accuracy %.1f%% and nll %.4f\n",
              o.out.c_str(), long(m.num_params()), 100 * b.accuracy, b.nll_correct);
}

Options parse_args(int argc, char** argv) {
  Options o;
  auto value = [&](int& i) -> std::string {
    ZOFF_INPUT_CHECK(i + 1 < argc, "command line: ", argv[i], " needs a value");
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    try {
      if (a == "--data") o.data = value(i);
      else if (a == "--out") o.out = value(i);
      else if (a == "--from") o.from = value(i);
      else if (a == "--no-save") o.save = false;
      else if (a == "--keep-tagged") o.keep_tagged = true;
      else if (a == "--steps") o.steps = std::stoll(value(i));
      else if (a == "--lr") o.lr = std::stod(value(i));
      else if (a == "--batch-size") o.batch_size = std::stoll(value(i));
      else if (a == "--seq-len") o.seq_len = std::stoll(value(i));
      else if (a == "--seed") o.seed = std::stoull(value(i));
      else if (a == "--eval-every") o.eval_every = std::stoll(value(i));
      else if (a == "--threads") o.threads = std::stoi(value(i));
      else if (a == "--mezo-steps") o.mezo_steps = std::stoll(value(i));
      else if (a == "--mezo-lr") o.mezo.lr = std::stod(value(i));
      else if (a == "--mezo-eps") o.mezo.eps = std::stod(value(i));
      else if (a == "--mezo-batch-size") o.mezo.batch_size = std::stoll(value(i));
      else if (a == "--mezo-eval-every") o.mezo.eval_every = std::stoll(value(i));
      else ZOFF_INPUT_FAIL("command line: unknown option ", a, " (see docs/demo.md)");
    } catch (const std::logic_error&) {  // stoll/stod
      ZOFF_INPUT_FAIL("command line: bad number for ", a);
    }
  }
  ZOFF_INPUT_CHECK(o.steps >= 0 && o.batch_size > 0 && o.seq_len > 1 && o.eval_every > 0 &&
                       o.threads > 0 && o.mezo_steps >= 0 && o.mezo.batch_size > 0,
                   "command line: sizes and counts must be positive");
  if (o.out.empty()) o.out = o.data + "/model";
  o.mezo.steps = o.mezo_steps;
  o.mezo.seed = o.seed;
  return o;
}

int run(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  at::set_num_threads(o.threads);
  at::manual_seed(int64_t(o.seed));
  auto tok = load_tokenizer(o.data + "/tokenizer");
  DataOptions dopt;
  dopt.format = DatasetFormat::kClassification;
  dopt.max_length = o.seq_len;
  Dataset test = load_dataset(o.data + "/test.jsonl", tok.get(), dopt);
  Dataset train = load_dataset(o.data + "/train.jsonl", tok.get(), dopt);
  std::unique_ptr<Model> m;
  std::vector<at::Tensor> flats;
  if (!o.from.empty()) {
    m = std::make_unique<Model>(parse_hf_config(o.from + "/config.json"));
    flats = load_weights(*m, o.from, at::kFloat).flats;
  } else {
    m = std::make_unique<Model>(demo_spec(*tok));
    flats = dummy_weights(*m, o.seed, at::kFloat).flats;
  }
  ClassEval e0 = eval_classification(*m, flats, test, tok->pad_id());
  std::printf("model: %ld parameters; held-out accuracy %.1f%% (nll %.3f) before pre-training\n",
              long(m->num_params()), 100 * e0.accuracy, e0.nll_correct);
  if (o.from.empty()) {
    if (o.steps > 0) pretrain(*m, flats, *tok, test, o);  // --steps 0: the random model
    if (o.save) save(*m, flats, test, *tok, o);
  }
  if (o.mezo_steps > 0) {
    MezoResult r = mezo_check(*m, flats, train, test, tok->pad_id(), o.mezo);
    std::printf("MeZO check (%ld steps, lr %g, eps %g, batch %ld): held-out accuracy %.1f%% -> %.1f%% in %.0f s\n",
                long(o.mezo.steps), o.mezo.lr, o.mezo.eps, long(o.mezo.batch_size),
                100 * r.before.accuracy, 100 * r.after.accuracy, r.seconds);
  }
  return 0;
}

}  // namespace
}  // namespace zoff::demo

int main(int argc, char** argv) {
  try {
    return zoff::demo::run(argc, argv);
  } catch (const zoff::InputError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
