// The seam of docs/design.md: each layer's cross-frame memory, behind one interface.
//
// The DiT calls attend() once per layer per forward with this call's q/k/v. A policy decides which
// earlier keys/values the chunk also sees (dense: all; window: sink + last W frames; later:
// TempCache, AnnSA, ARL²) and, on a commit call (the clean context pass), what of the chunk it keeps.
// The model owns no cache; policies live in src/fastar/attention/.
#pragma once

#include <cstdint>
#include <string>

#include "fastar/model/memory_stats.h"

namespace fastar {

struct MemoryCall {
  int64_t frame_start = 0;       // global index of the call's first token-frame
  int64_t num_frames = 0;        // token-frames in this call
  int64_t tokens_per_frame = 0;
  bool commit = false;           // true on the clean context pass: the chunk becomes memory
  const float* timesteps = nullptr;  // [num_frames] diffusion timestep of each token-frame; nullptr = unknown
  // Inputs only some policies read (ARL² hybrid layers); the DiT sets them only for layers where
  // wants_layer_inputs(layer) is true, else they stay nullptr / 0.
  const float* layer_input = nullptr;       // x [tokens, dim]: the self-attention's (adaLN-modulated) input
  const float* q_normed = nullptr;          // [tokens, dim]: q after qk-norm, before RoPE
  const float* k_normed = nullptr;          // [tokens, dim]: k after qk-norm, before RoPE
  int64_t grid_height = 0, grid_width = 0;  // token grid of one frame (height · width = tokens_per_frame)
};

// One head of a layer's cached keys/values as attend() would use them for the next call (besides
// the call's own tokens), for wrapping policies that compute attention themselves (AnnSA).
struct CachedKvHead {
  const float* k = nullptr;         // [tokens, k_row_stride], post-RoPE
  const float* v = nullptr;         // [tokens, v_row_stride]
  int64_t k_row_stride = 0, v_row_stride = 0;
  const float* key_bias = nullptr;  // [tokens] additive logit bias (TempCache's log m); nullptr = none
  int64_t tokens = 0;
};

class CrossFrameMemory {
 public:
  virtual ~CrossFrameMemory() = default;

  // Self-attention of one layer. q, k, v, out: [num_frames · tokens_per_frame, heads · head_dim],
  // contiguous; k is post-RoPE (RoPE time index = global frame), v raw. Writes `out` = softmax
  // attention of q over [memory keys of this layer + this call's keys].
  virtual void attend(int64_t layer, const MemoryCall& call, const float* q, const float* k, const float* v,
                      float* out) = 0;

  // Optional, for wrapping policies: fills *out with head `head` of this layer's cached keys/values
  // and returns true; a policy that returns true must also accept out == nullptr on a commit call
  // (store the chunk, skip the attention). The default exposes nothing.
  virtual bool cached_kv(int64_t /*layer*/, int64_t /*head*/, CachedKvHead* /*out*/) const { return false; }

  // True when attend() of this layer needs MemoryCall's layer inputs (x, pre-RoPE q/k, grid).
  virtual bool wants_layer_inputs(int64_t /*layer*/) const { return false; }

  // Frames currently held by one layer (for progress lines and tests).
  virtual int64_t cached_frames(int64_t layer) const = 0;
  // Bytes of key/value memory held now, all layers.
  virtual int64_t bytes() const = 0;
  virtual std::string describe() const = 0;

  // Statistics through the seam (memory_stats.h); wrapping policies merge their inner policy's.
  virtual MemoryStats summary() const {
    MemoryStats s;
    s.bytes = bytes();
    s.cached_frames = cached_frames(0);
    return s;
  }
  // A human-readable end-of-run report (one or more lines ending in '\n'); "" = nothing to add.
  virtual std::string report() const { return ""; }
  // Per-layer statistics as JSON text for a file beside the output; "" = none (TempCache writes them).
  virtual std::string stats_json() const { return ""; }
};

}  // namespace fastar
