// The seam of docs/design.md: each layer's cross-frame memory, behind one interface.
//
// The DiT calls attend() once per layer per forward with this call's q/k/v. A policy decides which
// earlier keys/values the chunk also sees (dense: all; window: sink + last W frames; later:
// TempCache, AnnSA, ARL²) and, on a commit call (the clean context pass), what of the chunk it keeps.
// The model owns no cache; policies live in src/fastar/attention/.
#pragma once

#include <cstdint>
#include <string>

namespace fastar {

struct MemoryCall {
  int64_t frame_start = 0;       // global index of the call's first token-frame
  int64_t num_frames = 0;        // token-frames in this call
  int64_t tokens_per_frame = 0;
  bool commit = false;           // true on the clean context pass: the chunk becomes memory
};

class CrossFrameMemory {
 public:
  virtual ~CrossFrameMemory() = default;

  // Self-attention of one layer. q, k, v, out: [num_frames · tokens_per_frame, heads · head_dim],
  // contiguous; k is post-RoPE (RoPE time index = global frame), v raw. Writes `out` = softmax
  // attention of q over [memory keys of this layer + this call's keys].
  virtual void attend(int64_t layer, const MemoryCall& call, const float* q, const float* k, const float* v,
                      float* out) = 0;

  // Frames currently held by one layer (for progress lines and tests).
  virtual int64_t cached_frames(int64_t layer) const = 0;
  // Bytes of key/value memory held now, all layers.
  virtual int64_t bytes() const = 0;
  virtual std::string describe() const = 0;
};

}  // namespace fastar
