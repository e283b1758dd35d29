// fastar's small word-level text encoder (the world model's prompt encoder, issue 5).
//
// It replaces umT5 for models that ship one: config.json has a "text_encoder" section, the
// weights are the `text_encoder.*` tensors of the model's safetensors, the word list is the model
// folder's vocab.json (id = index, 0 = padding). Trained jointly with the DiT in PyTorch
// (tools/world_model/wan_torch.py, TextEncoder), which this file computes exactly:
//
//   words  = lowercase, split on whitespace, "." a word of its own       (as the world's prompts)
//   x[i]   = token_embedding[id_i] + position_embedding[i]               [text_len, dim]
//   layer: x += o(Attn(LN1(x)));  x += ffn.2(GELU_tanh(ffn.0(LN2(x))))   (pre-norm; heads × dim/heads)
//   out    = LN(x) with padding rows set to 0
// Attention sees only non-padding tokens, so it runs on those rows alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "fastar/core/safetensors.h"
#include "fastar/core/tensor.h"
#include "fastar/model/wan_weights.h"

namespace fastar {

struct TextEncoderConfig {
  int64_t vocab_size = 0;
  int64_t text_len = 0;  // = the DiT's text_len
  int64_t dim = 0;       // = the DiT's text_dim
  int64_t layers = 0;
  int64_t heads = 1;
  int64_t ffn_dim = 0;
  float eps = 1e-6f;

  // The "text_encoder" section of a model config (with text_len, text_dim, eps from the top level).
  static TextEncoderConfig from_json(const nlohmann::json& config, const std::string& source);
  // Whether a model config has a text encoder section.
  static bool present(const nlohmann::json& config);
};

struct TextEncoderLayerWeights {
  Tensor norm1_weight, norm1_bias;  // [dim]
  LinearWeights q, k, v, o;         // dim -> dim
  Tensor norm2_weight, norm2_bias;  // [dim]
  LinearWeights ffn_in, ffn_out;    // dim -> ffn_dim -> dim
};

struct TextEncoderWeights {
  Tensor token_embedding;     // [vocab_size, dim]
  Tensor position_embedding;  // [text_len, dim]
  std::vector<TextEncoderLayerWeights> layers;
  Tensor norm_weight, norm_bias;  // [dim]
};

// The checkpoint name prefix of every text-encoder tensor.
inline constexpr const char* kTextEncoderPrefix = "text_encoder.";

class TextEncoder {
 public:
  TextEncoder(TextEncoderConfig config, TextEncoderWeights weights, std::vector<std::string> vocabulary,
              std::string vocabulary_source);

  // Whether the model at `model_path` (folder or weights file, as WanModel::load takes) has a text encoder.
  static bool available(const std::string& model_path);
  // Loads config, `text_encoder.*` weights and vocab.json of a model folder.
  static TextEncoder load(const std::string& model_path);

  // Word ids of a prompt, no padding. Throws fastar::Error for unknown words (naming the word and
  // where the vocabulary is), for more than text_len words, and for special words ("<pad>", "<unk>").
  std::vector<int32_t> tokenize(const std::string& text) const;
  // ids: up to text_len ids (0 = padding, allowed anywhere). Returns [text_len, dim] fp32.
  Tensor encode(const std::vector<int32_t>& ids) const;
  Tensor encode(const std::string& text) const { return encode(tokenize(text)); }

  const TextEncoderConfig& config() const { return config_; }
  const std::vector<std::string>& vocabulary() const { return vocabulary_; }

 private:
  TextEncoderConfig config_;
  TextEncoderWeights weights_;
  std::vector<std::string> vocabulary_;
  std::string vocabulary_source_;
};

// Loads and checks the `text_encoder.*` tensors (names, shapes, float dtypes); converts to fp32.
TextEncoderWeights load_text_encoder_weights(const Checkpoint& checkpoint, const TextEncoderConfig& config);

// Splits a prompt into words: lowercase ASCII letters, whitespace separates, "." is a word of its own.
std::vector<std::string> split_prompt_words(const std::string& text);

}  // namespace fastar
