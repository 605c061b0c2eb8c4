// zoff forward: logits and causal-LM loss of a checkpoint on token ids read from a safetensors file.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <memory>

#include "cli_util.h"
#include "commands.h"
#include "zoff/error.h"
#include "zoff/log.h"
#include "zoff/model.h"
#include "zoff/safetensors.h"
#include "zoff/weights.h"

namespace zoff::cli {
namespace {

struct ForwardOptions {
  std::string model_dir;
  std::string inputs;
  std::string out;
  std::string device = "auto";
  std::string dtype = "fp32";
};

bool is_integer_dtype(DType t) { return t == DType::I64 || t == DType::I32 || t == DType::U8 || t == DType::BOOL; }

// Reads and validates input_ids [B,T] int64 and attention_mask (default all ones) against the
// model: every error names the inputs file and the tensor.
void read_inputs(const std::string& path, const ModelSpec& spec, at::Tensor* ids, at::Tensor* mask) {
  auto file = SafetensorsFile::open(path);
  const TensorInfo* ti = file->find("input_ids");
  ZOFF_INPUT_CHECK(ti != nullptr, path, ": no tensor 'input_ids' (expected int64 [batch, seq])");
  ZOFF_INPUT_CHECK(ti->dtype == DType::I64, path, ": input_ids: dtype must be I64, got ", dtype_name(ti->dtype));
  ZOFF_INPUT_CHECK(ti->shape.size() == 2, path, ": input_ids: must be [batch, seq], got rank ", ti->shape.size(),
                   " ", shape_str(ti->shape));
  ZOFF_INPUT_CHECK(ti->shape[0] > 0 && ti->shape[1] > 0, path, ": input_ids: empty shape ", shape_str(ti->shape));
  *ids = read_tensor(*file, "input_ids");
  const int64_t lo = ids->min().item<int64_t>(), hi = ids->max().item<int64_t>();
  ZOFF_INPUT_CHECK(lo >= 0 && hi < spec.vocab_size, path, ": input_ids: token ids must be in [0, ",
                   spec.vocab_size, ") (the model's vocab_size), got values in [", lo, ", ", hi, "]");
  ZOFF_INPUT_CHECK(ti->shape[1] <= spec.max_positions, path, ": input_ids: sequence length ", ti->shape[1],
                   " exceeds the model's max_position_embeddings (", spec.max_positions, ")");

  const TensorInfo* mi = file->find("attention_mask");
  if (mi == nullptr) {
    *mask = at::ones_like(*ids);
    return;
  }
  ZOFF_INPUT_CHECK(is_integer_dtype(mi->dtype), path, ": attention_mask: dtype must be I64 (or I32, U8, BOOL), got ",
                   dtype_name(mi->dtype));
  ZOFF_INPUT_CHECK(mi->shape == ti->shape, path, ": attention_mask: shape ", shape_str(mi->shape),
                   " does not match input_ids ", shape_str(ti->shape));
  *mask = read_tensor(*file, "attention_mask").to(at::kLong);
  ZOFF_INPUT_CHECK(((*mask == 0) | (*mask == 1)).all().item<bool>(), path,
                   ": attention_mask: values must be 0 or 1");
}

int run_forward(const ForwardOptions& o) {
  const at::Device device = resolve_device(o.device, "--device");
  const at::ScalarType compute = parse_compute_dtype(o.dtype, "--dtype");
  Model model(parse_hf_config(o.model_dir + "/config.json"));
  at::Tensor ids, mask;
  read_inputs(o.inputs, model.spec(), &ids, &mask);

  c10::InferenceMode guard;
  // Weights are converted to the compute dtype on load, then moved: the device holds one copy.
  ModelWeights w = load_weights(model, o.model_dir, compute);
  for (at::Tensor& f : w.flats) f = f.to(device);
  FlatWeightSource src(model, w.flats, compute);
  log::info("forward: {} ({} parameters) on {}, {}, input [{}, {}]", arch_name(model.spec().arch),
            model.num_params(), device.str(), o.dtype, ids.size(0), ids.size(1));
  at::Tensor logits = forward_logits(model, src, ids, mask, compute, device);
  at::Tensor loss = causal_lm_loss(logits, labels_from_inputs(ids.to(device), mask.to(device)));
  logits = logits.to(at::kCPU, at::kFloat).contiguous();
  loss = loss.to(at::kCPU, at::kFloat).reshape({1});
  write_safetensors(o.out, {{"logits", logits}, {"loss", loss}},
                    {{"model", o.model_dir}, {"inputs", o.inputs}, {"device", device.str()}, {"dtype", o.dtype}});
  std::printf("wrote %s: logits %s, loss %.8f\n", o.out.c_str(), shape_str(logits.sizes()).c_str(),
              double(loss.item<float>()));
  return kExitOk;
}

}  // namespace

Command add_forward_command(CLI::App& top) {
  auto o = std::make_shared<ForwardOptions>();
  CLI::App* sub = top.add_subcommand(
      "forward",
      "Run a checkpoint on token ids: writes logits float32 [B,T,V] and the causal-LM loss float32 [1] "
      "(labels = input_ids, -100 where attention_mask is 0) to a safetensors file.");
  sub->add_option("--model", o->model_dir, "HF checkpoint folder (config.json + *.safetensors)")->required();
  sub->add_option("--inputs", o->inputs,
                  "safetensors file with input_ids int64 [B,T] and optional attention_mask [B,T] (default all ones)")
      ->required();
  sub->add_option("--out", o->out, "output safetensors file (written atomically)")->required();
  sub->add_option("--device", o->device, "auto (cuda when available), cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda", "gpu"}))
      ->capture_default_str();
  sub->add_option("--dtype", o->dtype, "compute dtype: fp32, bf16 or fp16")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16", "float32", "bfloat16", "float16"}))
      ->capture_default_str();
  return {sub, [o] { return run_forward(*o); }};
}

}  // namespace zoff::cli
