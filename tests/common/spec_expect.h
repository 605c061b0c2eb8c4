// Test helper: field-by-field equality of two ModelSpecs (shared by the io and config tests).
#pragma once

#include <gtest/gtest.h>

#include "zoff/model_spec.h"

namespace zoff::testing {

// Every field, written out by hand so a field a parser or the schema forgot shows up here.
inline void expect_same_spec(const ModelSpec& a, const ModelSpec& b) {
  EXPECT_EQ(a.arch, b.arch);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.num_layers, b.num_layers);
  EXPECT_EQ(a.num_heads, b.num_heads);
  EXPECT_EQ(a.num_kv_heads, b.num_kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.ffn_dim, b.ffn_dim);
  EXPECT_EQ(a.max_positions, b.max_positions);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.pad_token_id, b.pad_token_id);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_id, b.eos_token_id);
  EXPECT_EQ(a.do_layer_norm_before, b.do_layer_norm_before);
  EXPECT_EQ(a.word_embed_proj_dim, b.word_embed_proj_dim);
  EXPECT_EQ(a.enable_bias, b.enable_bias);
  EXPECT_EQ(a.remove_final_layer_norm, b.remove_final_layer_norm);
  EXPECT_EQ(a.layer_norm_elementwise_affine, b.layer_norm_elementwise_affine);
  EXPECT_EQ(a.activation, b.activation);
  EXPECT_EQ(a.position_offset, b.position_offset);
  EXPECT_EQ(a.layer_norm_eps, b.layer_norm_eps);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps);
  EXPECT_EQ(a.attention_bias, b.attention_bias);
  EXPECT_EQ(a.o_proj_bias, b.o_proj_bias);
  EXPECT_EQ(a.mlp_bias, b.mlp_bias);
}

}  // namespace zoff::testing
