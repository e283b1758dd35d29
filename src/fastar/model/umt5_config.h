// umT5 encoder hyper-parameters (pipeline-spec.md §4.1): from a Hugging Face config.json
// (UMT5EncoderModel, as in a diffusers `text_encoder/` folder) or, for Wan's original checkpoint which
// ships none, inferred from the tensor shapes.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace fastar {

class Checkpoint;

struct Umt5Config {
  int64_t vocab_size = 0;   // embedding rows (umT5-XXL: 256384)
  int64_t d_model = 0;      // 4096
  int64_t d_kv = 0;         // per-head dim, 64
  int64_t num_heads = 0;    // 64
  int64_t d_ff = 0;         // 10240
  int64_t num_layers = 0;   // 24
  int64_t num_buckets = 32;     // relative_attention_num_buckets
  int64_t max_distance = 128;   // relative_attention_max_distance
  float eps = 1e-6f;            // layer_norm_epsilon

  int64_t inner_dim() const { return num_heads * d_kv; }

  // The fields of an HF UMT5 config.json. Requires feed_forward_proj "gated-gelu" (umT5's gated GELU_tanh
  // FFN) and model_type "umt5" when given (T5 and mT5 share one relative-position table; umT5 has one per
  // layer). `source` names the file in messages.
  static Umt5Config from_hf_json(const nlohmann::json& config, const std::string& source);
  // The shapes of the encoder tensors of `checkpoint` (either naming of umt5_weights.h); buckets from the
  // relative-bias table, max_distance 128 and eps 1e-6 (umT5's, not recorded in the weights).
  static Umt5Config infer_from_weights(const Checkpoint& checkpoint);
};

}  // namespace fastar
