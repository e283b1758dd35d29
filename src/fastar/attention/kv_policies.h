// The first two cross-frame memory policies of docs/design.md.
//
//   dense:  every committed frame stays; memory grows linearly with the video.
//   window: the last W committed frames plus the first S committed frames (the attention sink);
//           older frames are evicted on commit. Memory is bounded by (S + W) frames.
// Both keep post-RoPE keys with their original global time index (never renumbered on eviction).
// Mapping to Self-Forcing's options: local_attn_size = S + W + frames per chunk, sink_size = S.
#pragma once

#include <memory>
#include <vector>

#include "fastar/attention/frame_kv_store.h"
#include "fastar/model/cross_frame_memory.h"

namespace fastar {

class DenseMemory : public CrossFrameMemory {
 public:
  DenseMemory(int64_t layers, int64_t heads, int64_t head_dim);
  void attend(int64_t layer, const MemoryCall& call, const float* q, const float* k, const float* v, float* out) override;
  int64_t cached_frames(int64_t layer) const override;
  int64_t bytes() const override;
  std::string describe() const override;
  bool cached_kv(int64_t layer, int64_t head, CachedKvHead* out) const override;
  const FrameKvStore& layer_store(int64_t layer) const { return stores_[static_cast<size_t>(layer)]; }

 protected:
  std::vector<FrameKvStore> stores_;
  int64_t heads_, head_dim_;
};

class WindowMemory : public DenseMemory {
 public:
  // window: W recent frames kept (>= 0); sink: S first frames pinned (>= 0).
  WindowMemory(int64_t layers, int64_t heads, int64_t head_dim, int64_t window, int64_t sink);
  void attend(int64_t layer, const MemoryCall& call, const float* q, const float* k, const float* v, float* out) override;
  std::string describe() const override;

 private:
  int64_t window_, sink_;
};

}  // namespace fastar
