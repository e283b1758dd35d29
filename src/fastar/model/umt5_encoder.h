// The umT5 encoder on the CPU (pipeline-spec.md §4.2), the reference for every backend.
//
//   x = E[ids]                                                               [n, d_model]
//   per layer (own relative-position table B, umT5):
//     h = RMS(x)·w1;  q, k, v = h·Wqᵀ, h·Wkᵀ, h·Wvᵀ                          [n, heads × d_kv]
//     s[h,i,j] = q_i·k_j + B[bucket(j − i), h]    (no 1/√d: T5 folds it into the init)
//     p = softmax over the real keys j (padding keys get weight 0 exactly); x += (p·v)·Woᵀ
//     h = RMS(x)·w2;  x += (GELU_tanh(h·Wgateᵀ) ⊙ h·Wupᵀ)·Wdownᵀ
//   out = RMS(x)·w_final,   RMS(x) = x / sqrt(mean(x²) + eps)
//
// Weights stay in their checkpoint dtype (bf16 for umT5-XXL); compute is fp32 with the weights converted
// block by block (kernels/cpu/stored_weight_linear.h) and fp32 norms, softmax and residual stream — HF's
// fp32 semantics; on bf16 weights that equals HF run in fp32 on the same (bf16-valued) weights.
//
// Only the real tokens are needed for the DiT's context (§4.4): padding is on the right and masked keys
// get zero weight, so rows 0..L−1 of the padded run equal the run over the L real tokens; encode() runs
// those and writes zeros for rows L..text_len−1, as Wan feeds the DiT.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fastar/core/tensor.h"
#include "fastar/model/umt5_config.h"
#include "fastar/model/umt5_weights.h"

namespace fastar {

// umT5's bidirectional relative-position bucket of rel = key position − query position (pipeline-spec.md
// §4.3): half the buckets for rel > 0; |rel| < num_buckets/4 exact, larger |rel| logarithmic up to
// max_distance, evaluated in fp32 as the reference does.
int64_t umt5_relative_bucket(int64_t rel, int64_t num_buckets, int64_t max_distance);

class Umt5Encoder {
 public:
  Umt5Encoder(Umt5Config config, Umt5Weights weights, std::string source);

  // path: a folder with config.json (HF) and the weights (model.safetensors, a sharded index, ...), or a
  // .safetensors file / folder without config.json (e.g. Wan names), whose config is inferred from shapes.
  static Umt5Encoder load(const std::string& path);

  // HF's last_hidden_state: every row of ids[n] computed, keys with key_mask 0 masked out. [n, d_model] F32.
  Tensor forward(const std::vector<int32_t>& ids, const std::vector<uint8_t>& key_mask) const;
  // The DiT context: ids[text_len] whose first `length` are real. Runs the real tokens only and returns
  // [text_len, d_model] F32 with rows >= length zero.
  Tensor encode(const std::vector<int32_t>& ids, int64_t length) const;

  const Umt5Config& config() const { return config_; }
  const Umt5Weights& weights() const { return weights_; }
  // The weights' file (for messages).
  const std::string& source() const { return source_; }

 private:
  Umt5Config config_;
  Umt5Weights weights_;
  std::string source_;
};

}  // namespace fastar
