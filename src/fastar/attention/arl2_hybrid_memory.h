// ARL²'s hybrid layers as a cross-frame memory policy (papers.md §2.2, docs/arl2.md).
//
// A hybrid layer keeps no key/value cache. Its self-attention output (before Wo) is
//
//     out = softmax_attention(RoPE q, RoPE k, v; this chunk only, bidirectional)
//         + sigmoid(x · W_gateᵀ)_head · scale · (q̂ · S)
//
//   q̂ = L2norm(RoPE(φ_q(q'))),  k̂ = L2norm(RoPE(φ_k(k'))),  v̂ = φ_v(v')
//   q', k' = the qk-normed projections (with the GDN LoRA merged when the checkpoint has it), v' = v
//
// where S [heads, D, D] fp32 is the layer's state. Every token of a call reads S as it was before the
// call. Only a commit call (the clean context pass) then updates S over the chunk's tokens in raster
// order with the gated delta rule (fastar/kernels/cpu/gated_delta_rule.h):
//     α_t = exp(−exp(A_log) · softplus(x_t · W_aᵀ + dt_bias)),   β_t = 2 · sigmoid(x_t · W_bᵀ).
// Layers that are not hybrid are handed to the inner policy (dense, window, TempCache, ...), which
// never sees the hybrid layers and so holds nothing for them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fastar/model/cross_frame_memory.h"
#include "fastar/model/wan_config.h"
#include "fastar/model/wan_weights.h"

namespace fastar {

class Arl2HybridMemory : public CrossFrameMemory {
 public:
  // `weights` must outlive the policy and carry the hybrid tensors of every config.hybrid_layers entry;
  // `inner` serves the other layers (it must be built for config.num_layers layers).
  Arl2HybridMemory(const WanConfig& config, const WanWeights& weights, std::unique_ptr<CrossFrameMemory> inner);

  void attend(int64_t layer, const MemoryCall& call, const float* q, const float* k, const float* v, float* out) override;
  bool wants_layer_inputs(int64_t layer) const override { return is_hybrid(layer); }
  int64_t cached_frames(int64_t layer) const override;  // hybrid layers hold no frames: 0
  int64_t bytes() const override;                      // inner bytes + the hybrid states
  std::string describe() const override;
  MemoryStats summary() const override;  // the inner policy's, with the hybrid states' bytes added
  std::string report() const override { return inner_->report(); }
  std::string stats_json() const override { return inner_->stats_json(); }

  bool is_hybrid(int64_t layer) const { return layer_state_[static_cast<size_t>(layer)] >= 0; }
  // The state S of a hybrid layer, [heads, head_dim, head_dim] (key index, then value index).
  const std::vector<float>& state(int64_t layer) const;
  int64_t committed_chunks(int64_t layer) const;
  CrossFrameMemory& inner() { return *inner_; }

 private:
  void attend_hybrid(int64_t layer, const MemoryCall& call, const float* q, const float* k, const float* v, float* out);

  WanConfig config_;
  const WanWeights& weights_;
  std::unique_ptr<CrossFrameMemory> inner_;
  std::vector<int64_t> layer_state_;          // per layer: index into states_, or −1
  std::vector<std::vector<float>> states_;    // per hybrid layer: [heads, head_dim, head_dim]
  std::vector<int64_t> commits_;              // per hybrid layer
};

}  // namespace fastar
