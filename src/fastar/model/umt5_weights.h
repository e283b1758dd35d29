// The umT5 encoder's tensors (pipeline-spec.md §4.1), read from safetensors under either naming:
//
//   role                     Hugging Face (UMT5EncoderModel)                          Wan (T5Encoder)
//   token embedding          shared.weight (or its tied alias encoder.embed_tokens.weight)  token_embedding.weight
//   attention norm           encoder.block.N.layer.0.layer_norm.weight                blocks.N.norm1.weight
//   q, k, v, o               encoder.block.N.layer.0.SelfAttention.{q,k,v,o}.weight   blocks.N.attn.{q,k,v,o}.weight
//   relative bias [B, H]     encoder.block.N.layer.0.SelfAttention.relative_attention_bias.weight
//                                                                                     blocks.N.pos_embedding.embedding.weight
//   FFN norm                 encoder.block.N.layer.1.layer_norm.weight                blocks.N.norm2.weight
//   gate (GELU branch)       encoder.block.N.layer.1.DenseReluDense.wi_0.weight       blocks.N.ffn.gate.0.weight
//   up (linear branch)       encoder.block.N.layer.1.DenseReluDense.wi_1.weight       blocks.N.ffn.fc1.weight
//   down                     encoder.block.N.layer.1.DenseReluDense.wo.weight         blocks.N.ffn.fc2.weight
//   final norm               encoder.final_layer_norm.weight                          norm.weight
//
// Wan's `models_t5_umt5-xxl-enc-bf16.pth` is a torch pickle; fastar reads it once converted to
// safetensors with its names kept. The large matrices stay in their checkpoint dtype (F32/BF16/F16),
// borrowed from the file mapping (no fp32 copy); the norms and relative-bias tables, a few KB, are
// converted to fp32. Tensors of other parts (a full UMT5 model's decoder) are ignored.
#pragma once

#include <string>
#include <vector>

#include "fastar/core/safetensors.h"
#include "fastar/core/tensor.h"
#include "fastar/model/umt5_config.h"

namespace fastar {

enum class Umt5Naming { HuggingFace, Wan };

struct Umt5LayerWeights {
  Tensor attention_norm;      // [d_model] F32
  Tensor q, k, v;             // [inner, d_model], checkpoint dtype
  Tensor o;                   // [d_model, inner]
  Tensor relative_bias;       // [num_buckets, num_heads] F32
  Tensor ffn_norm;            // [d_model] F32
  Tensor gate, up;            // [d_ff, d_model] (wi_0 through GELU_tanh, wi_1 linear)
  Tensor down;                // [d_model, d_ff]
};

struct Umt5Weights {
  Tensor token_embedding;     // [vocab, d_model], checkpoint dtype
  std::vector<Umt5LayerWeights> layers;
  Tensor final_norm;          // [d_model] F32
};

// Which naming a checkpoint uses; throws fastar::Error naming the file when it holds no umT5 encoder.
Umt5Naming detect_umt5_naming(const Checkpoint& checkpoint);
// The checkpoint name of the token embedding (HF files store shared.weight or encoder.embed_tokens.weight).
std::string umt5_embedding_name(const Checkpoint& checkpoint, Umt5Naming naming);
// Loads and checks every tensor (presence, float dtype, shape against `config`).
Umt5Weights load_umt5_weights(const Checkpoint& checkpoint, const Umt5Config& config);

}  // namespace fastar
