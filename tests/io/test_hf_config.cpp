// Tests for HF config parsing, ModelSpec validation and exact parameter counts.
#include "common/spec_expect.h"
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io_test_util.h"
#include "zoff/model_spec.h"
#include "zoff/safetensors.h"

namespace zoff {
namespace {

using iotest::expect_input_error;
using iotest::TempDir;
using nlohmann::json;

std::string fixture(const std::string& name) {
  return std::string(ZOFF_TEST_DATA) + "/" + name + "/model";
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}


TEST(HfConfig, ParsesFixtures) {
  ModelSpec o = parse_hf_config(fixture("opt-tiny") + "/config.json");
  EXPECT_EQ(o.arch, Arch::OPT);
  EXPECT_STREQ(arch_name(o.arch), "opt");
  EXPECT_EQ(o.hidden_size, 64);
  EXPECT_EQ(o.num_layers, 3);
  EXPECT_EQ(o.num_heads, 4);
  EXPECT_EQ(o.num_kv_heads, 4);
  EXPECT_EQ(o.head_dim, 16);
  EXPECT_EQ(o.ffn_dim, 256);
  EXPECT_EQ(o.vocab_size, 512);
  EXPECT_EQ(o.max_positions, 64);
  EXPECT_EQ(o.position_offset, 2);
  EXPECT_TRUE(o.do_layer_norm_before);
  EXPECT_TRUE(o.tie_word_embeddings);
  EXPECT_FALSE(o.has_project_in_out());
  EXPECT_EQ(o.pad_token_id, 1);
  EXPECT_EQ(o.bos_token_id, 2);
  EXPECT_EQ(o.activation, "relu");

  ModelSpec p = parse_hf_config(fixture("opt-tiny-postln-proj") + "/config.json");
  EXPECT_FALSE(p.do_layer_norm_before);
  EXPECT_EQ(p.word_embed_proj_dim, 32);
  EXPECT_TRUE(p.has_project_in_out());

  ModelSpec l = parse_hf_config(fixture("llama-tiny") + "/config.json");
  EXPECT_EQ(l.arch, Arch::Llama);
  EXPECT_EQ(l.num_kv_heads, 2);
  EXPECT_EQ(l.head_dim, 16);
  EXPECT_EQ(l.ffn_dim, 176);
  EXPECT_EQ(l.rope_theta, 10000.0);
  EXPECT_EQ(l.rms_norm_eps, 1e-6);
  EXPECT_FALSE(l.tie_word_embeddings);
  EXPECT_FALSE(l.attention_bias);
  EXPECT_EQ(l.activation, "silu");

  ModelSpec q = parse_hf_config(fixture("qwen2-tiny") + "/config.json");
  EXPECT_EQ(q.arch, Arch::Qwen2);
  EXPECT_EQ(q.rope_theta, 1e6);
  EXPECT_TRUE(q.tie_word_embeddings);
  EXPECT_TRUE(q.attention_bias);
  EXPECT_FALSE(q.o_proj_bias);
  EXPECT_FALSE(q.mlp_bias);
}

// num_params must equal the true trainable count: the numel of every stored tensor, with a tied
// lm_head counted once (HF omits it from the file when tied; if present it is not counted again).
TEST(HfConfig, NumParamsMatchesFixtureCheckpoints) {
  for (const char* name : {"opt-tiny", "opt-tiny-postln-proj", "llama-tiny", "qwen2-tiny"}) {
    ModelSpec s = parse_hf_config(fixture(name) + "/config.json");
    Checkpoint c = Checkpoint::open(fixture(name));
    int64_t total = 0, layer0 = 0;
    for (const std::string& n : c.names()) {
      if (n == "lm_head.weight" && s.tie_word_embeddings) continue;
      total += c.info(n).numel();
      if (n.find("layers.0.") != std::string::npos) layer0 += c.info(n).numel();
    }
    EXPECT_EQ(s.num_params(), total) << name;
    EXPECT_EQ(s.block_params(), layer0) << name;
  }
}

ModelSpec opt(int64_t hidden, int64_t layers, int64_t heads, int64_t ffn) {
  json j = {{"model_type", "opt"}, {"vocab_size", 50272}, {"hidden_size", hidden},
            {"num_hidden_layers", layers}, {"num_attention_heads", heads}, {"ffn_dim", ffn},
            {"max_position_embeddings", 2048}, {"word_embed_proj_dim", hidden}};
  return model_spec_from_json(j, "opt-test");
}

// Known model sizes, derived by hand. OPT (V=50272, positions 2048+2, pre-LN, tied):
//   embed V*H + (2050)*H + final LN 2H + L * (12H^2 + 9H biases + 4H LN (ffn = 4H)).
TEST(HfConfig, KnownModelSizes) {
  // 125m: H=768, L=12: 38,608,896 + 1,574,400 + 1,536 + 12 * 7,087,872 = 125,239,296.
  EXPECT_EQ(opt(768, 12, 12, 3072).num_params(), 125239296);
  EXPECT_EQ(opt(768, 12, 12, 3072).block_params(), 7087872);
  // 1.3b: H=2048, L=24: 102,957,056 + 4,198,400 + 4,096 + 24 * 50,358,272 = 1,315,758,080.
  EXPECT_EQ(opt(2048, 24, 32, 8192).num_params(), 1315758080);
  // 13b: H=5120, L=40: 257,392,640 + 10,496,000 + 10,240 + 40 * 314,639,360 = 12,853,473,280.
  EXPECT_EQ(opt(5120, 40, 40, 20480).num_params(), 12853473280);
  // 175b: H=12288, L=96: 617,742,336 + 25,190,400 + 24,576 + 96 * 1,812,099,072
  //       = 174,604,468,224.
  EXPECT_EQ(opt(12288, 96, 96, 49152).num_params(), 174604468224);
  EXPECT_EQ(opt(12288, 96, 96, 49152).block_params(), 1812099072);

  // Llama-2-7B: V=32000, H=4096, L=32, I=11008, untied: 2 * 131,072,000 + 4,096
  //   + 32 * (4 * 4096^2 + 3 * 4096 * 11008 + 2 * 4096) = 6,738,415,616.
  json l = {{"model_type", "llama"}, {"vocab_size", 32000}, {"hidden_size", 4096},
            {"num_hidden_layers", 32}, {"num_attention_heads", 32}, {"intermediate_size", 11008},
            {"max_position_embeddings", 4096}, {"rms_norm_eps", 1e-5}};
  EXPECT_EQ(model_spec_from_json(l, "llama2-7b").num_params(), 6738415616);
  // Qwen2-0.5B: V=151936, H=896, L=24, 14 heads, 2 KV heads (hd 64), I=4864, tied:
  //   136,134,656 + 896 + 24 * (1,835,008 + 1,152 qkv bias + 13,074,432 + 1,792) = 494,032,768.
  json q = {{"model_type", "qwen2"}, {"vocab_size", 151936}, {"hidden_size", 896},
            {"num_hidden_layers", 24}, {"num_attention_heads", 14}, {"num_key_value_heads", 2},
            {"intermediate_size", 4864}, {"max_position_embeddings", 32768},
            {"rope_theta", 1000000.0}, {"tie_word_embeddings", true}};
  EXPECT_EQ(model_spec_from_json(q, "qwen2-0.5b").num_params(), 494032768);
}

TEST(HfConfig, JsonRoundTrip) {
  for (const char* name : {"opt-tiny", "opt-tiny-postln-proj", "llama-tiny", "qwen2-tiny"}) {
    ModelSpec s = parse_hf_config(fixture(name) + "/config.json");
    zoff::testing::expect_same_spec(model_spec_from_json(model_spec_to_json(s), "round trip"), s);
  }
  ModelSpec s = parse_hf_config(fixture("llama-tiny") + "/config.json");
  s.attention_bias = s.o_proj_bias = s.mlp_bias = true;
  s.tie_word_embeddings = true;
  s.pad_token_id = -1;
  zoff::testing::expect_same_spec(model_spec_from_json(model_spec_to_json(s), "round trip"), s);
}

TEST(HfConfig, RopeThetaSourcesAndTokenLists) {
  json base = read_json(fixture("llama-tiny") + "/config.json");
  base.erase("rope_parameters");
  EXPECT_EQ(model_spec_from_json(base, "c").rope_theta, 10000.0);  // the default
  json j = base;
  j["rope_theta"] = 500000.0;
  EXPECT_EQ(model_spec_from_json(j, "c").rope_theta, 500000.0);
  j = base;
  j["rope_scaling"] = {{"type", "default"}, {"rope_theta", 20000}};
  EXPECT_EQ(model_spec_from_json(j, "c").rope_theta, 20000.0);
  j = base;
  j["rope_scaling"] = nullptr;  // null means absent
  j["rope_theta"] = 1234.0;
  j["eos_token_id"] = {2, 7, 9};
  ModelSpec s = model_spec_from_json(j, "c");
  EXPECT_EQ(s.rope_theta, 1234.0);
  EXPECT_EQ(s.eos_token_id, 2);
}

// Writes `j` to a config.json in a temp folder and expects parse_hf_config to name it and `parts`.
void expect_config_error(const json& j, std::initializer_list<std::string> parts) {
  TempDir d;
  const std::string p = d.file("config.json");
  std::ofstream(p) << j.dump();
  std::vector<std::string> all(parts);
  all.push_back(p);
  try {
    parse_hf_config(p);
    ADD_FAILURE() << "no InputError for " << j.dump();
  } catch (const InputError& e) {
    if (std::getenv("ZOFF_SHOW_ERRORS")) std::printf("  InputError: %s\n", e.what());
    for (const auto& s : all)
      EXPECT_NE(std::string(e.what()).find(s), std::string::npos) << "'" << s << "' not in: " << e.what();
  }
}

TEST(HfConfigErrors, EachBadFieldIsNamed) {
  const json opt_j = read_json(fixture("opt-tiny") + "/config.json");
  const json llama = read_json(fixture("llama-tiny") + "/config.json");
  const json qwen = read_json(fixture("qwen2-tiny") + "/config.json");
  auto with = [](json j, const std::string& k, json v) { j[k] = v; return j; };
  auto without = [](json j, const std::string& k) { j.erase(k); return j; };

  {
    TempDir d;
    const std::string p = d.file("config.json");
    std::ofstream(p) << with(opt_j, "model_type", "gpt2").dump();
    expect_input_error([&] { parse_hf_config(p); },
                       {"unsupported model_type 'gpt2' in " + p + " (supported: opt, llama, qwen2)"});
    expect_input_error([&] { parse_hf_config(d.file("absent.json")); }, {d.file("absent.json")});
    std::ofstream(p) << "{\"model_type\": ";
    expect_input_error([&] { parse_hf_config(p); }, {p, "not valid JSON"});
  }
  expect_config_error(without(opt_j, "model_type"), {"'model_type'", "missing"});
  expect_config_error(without(opt_j, "hidden_size"), {"'hidden_size'", "missing"});
  expect_config_error(without(opt_j, "ffn_dim"), {"'ffn_dim'", "missing"});
  expect_config_error(without(llama, "intermediate_size"), {"'intermediate_size'", "missing"});
  expect_config_error(with(opt_j, "hidden_size", "64"), {"'hidden_size'", "integer", "string"});
  expect_config_error(with(opt_j, "num_hidden_layers", 3.5), {"'num_hidden_layers'", "integer"});
  expect_config_error(with(opt_j, "do_layer_norm_before", 1), {"'do_layer_norm_before'", "true or false"});
  expect_config_error(with(llama, "rms_norm_eps", "small"), {"'rms_norm_eps'", "number"});
  expect_config_error(with(opt_j, "activation_function", 3), {"'activation_function'", "string"});
  expect_config_error(with(opt_j, "vocab_size", 0), {"'vocab_size'", "positive"});
  expect_config_error(with(opt_j, "num_hidden_layers", -2), {"'num_hidden_layers'", "positive"});
  expect_config_error(with(llama, "intermediate_size", 0), {"'intermediate_size'", "positive"});
  expect_config_error(with(opt_j, "num_attention_heads", 5), {"'hidden_size'", "'num_attention_heads'", "divisible"});
  expect_config_error(with(without(llama, "head_dim"), "num_attention_heads", 5),
                      {"'hidden_size'", "'num_attention_heads'", "divisible"});
  expect_config_error(with(llama, "num_key_value_heads", 3), {"'num_attention_heads'", "'num_key_value_heads'"});
  expect_config_error(with(opt_j, "pad_token_id", 512), {"'pad_token_id'"});
  expect_config_error(with(opt_j, "activation_function", "swish"), {"'activation_function'", "swish"});
  expect_config_error(with(llama, "hidden_act", "gelu"), {"'hidden_act'", "gelu", "silu"});
  expect_config_error(with(llama, "rope_scaling", json{{"rope_type", "llama3"}, {"factor", 8.0}}),
                      {"'rope_scaling.rope_type'", "llama3", "not supported"});
  expect_config_error(with(llama, "rope_parameters", json{{"rope_type", "linear"}, {"rope_theta", 1e4}}),
                      {"'rope_parameters.rope_type'", "linear"});
  expect_config_error(with(llama, "rope_parameters", 5), {"'rope_parameters'", "object"});
  expect_config_error(with(llama, "rope_theta", 20000.0), {"'rope_parameters.rope_theta'", "'rope_theta'", "disagrees"});
  expect_config_error(with(llama, "rope_parameters", json{{"rope_type", "default"}, {"rope_theta", -1.0}}),
                      {"'rope_theta'", "positive"});
  expect_config_error(with(qwen, "use_sliding_window", true), {"'use_sliding_window'"});
  expect_config_error(with(qwen, "layer_types", json{"full_attention", "sliding_attention"}), {"'layer_types'"});
}

TEST(HfConfigErrors, ValidateNamesTheSource) {
  ModelSpec s = parse_hf_config(fixture("qwen2-tiny") + "/config.json");
  s.o_proj_bias = true;
  expect_input_error([&] { s.validate("my-spec"); }, {"my-spec", "Qwen2"});
  ModelSpec l = parse_hf_config(fixture("llama-tiny") + "/config.json");
  l.head_dim = 0;
  expect_input_error([&] { l.validate("hand-built"); }, {"hand-built", "'head_dim'"});
}

}  // namespace
}  // namespace zoff
