// The cross-attention seam of docs/design.md: how a layer's latent queries attend to the prompt.
// nullptr in WanForwardArgs = dense (every prompt row, as Wan does); AnnCA
// (attention/ann_cross_attention.h) keeps, per frame and head, only the prompt tokens near some query.
#pragma once

#include <cstdint>
#include <string>

#include "fastar/model/memory_stats.h"

namespace fastar {

struct CrossAttentionCall {
  int64_t layer = 0;
  int64_t frame_start = 0;        // global index of the call's first token-frame
  int64_t num_frames = 0;
  int64_t tokens_per_frame = 0;
  const float* timesteps = nullptr;  // [num_frames] diffusion timestep of each token-frame; nullptr = unknown
  int64_t heads = 0, head_dim = 0;
  uint64_t prompt_id = 0;         // WanPrompt::id: the same prompt keeps the same id (per-prompt caches)
  int64_t prompt_rows = 0;        // rows of k/v (padded prompt)
  int64_t prompt_valid_rows = 0;  // rows before the zero padding; the rest are never selected
};

class CrossAttentionPolicy {
 public:
  virtual ~CrossAttentionPolicy() = default;
  // q, out: [num_frames·tokens_per_frame, heads·head_dim]; k, v: [prompt_rows, heads·head_dim].
  virtual void attend(const CrossAttentionCall& call, const float* q, const float* k, const float* v, float* out) = 0;
  virtual std::string describe() const = 0;
  // Density / recall through the seam (memory_stats.h) and an end-of-run report ("" = nothing).
  virtual MemoryStats summary() const { return {}; }
  virtual std::string report() const { return ""; }
};

}  // namespace fastar
