// The dense and window (+ sink) policies on the GPU (kv_policies.h is the CPU reference).
//
// Per layer one preallocated bf16 K and V buffer, [capacity frames · tokens_per_frame, heads·head_dim];
// the call's K/V are written straight behind the kept frames (no copy), so attention runs over one
// contiguous [kept + call] range. window < 0: dense (keeps everything up to capacity); else a commit
// keeps the first `sink` frames and the last `window` frames, moving the kept tail down.
// held_layers (optional, [layers]): false for layers another policy serves (ARL² hybrid layers);
// they get no buffers and must not be used.
#pragma once

#include <memory>
#include <vector>

#include "fastar/core/tensor.h"
#include "fastar/model/cuda/cuda_memory.h"

namespace fastar::cuda {

class CudaKvCache : public CudaCrossFrameMemory {
 public:
  CudaKvCache(int64_t layers, int64_t heads, int64_t head_dim, int64_t tokens_per_frame, int64_t capacity_frames,
              int64_t window = -1, int64_t sink = 0, std::vector<bool> held_layers = {});

  void begin(const CudaMemoryCall& call) override;
  __nv_bfloat16* chunk_k(int64_t layer) override;
  __nv_bfloat16* chunk_v(int64_t layer) override;
  void attend(int64_t layer, const __nv_bfloat16* q, __nv_bfloat16* out, cudaStream_t stream,
              const CudaLayerInputs* inputs = nullptr) override;
  void commit(cudaStream_t stream) override;
  bool cached_keys(int64_t layer, CudaCachedKeys* out) const override;
  uint64_t layout_version() const override { return version_; }
  int64_t tokens_per_frame() const override { return tokens_per_frame_; }
  int64_t cached_frames() const override { return frames_; }
  int64_t bytes() const override;
  std::string describe() const override;

  int64_t frames() const { return frames_; }
  int64_t tokens() const { return frames_ * tokens_per_frame_; }
  int64_t capacity_frames() const { return capacity_frames_; }
  void* k(int64_t layer) const;  // layer buffers
  void* v(int64_t layer) const;

 private:
  std::vector<int64_t> slot_;  // per layer: its buffer index, −1 when not held
  int64_t held_ = 0;
  int64_t layers_, heads_, head_dim_, tokens_per_frame_, capacity_frames_, window_, sink_;
  int64_t frames_ = 0;
  int64_t call_frames_ = 0;
  uint64_t version_ = 0;
  std::shared_ptr<Storage> k_, v_, scratch_;
};

}  // namespace fastar::cuda
