// TempCache as the GPU cross-frame memory of every layer (tempcache_memory.h is the CPU policy):
// one CudaTempCacheLayer per layer (tempcache_cuda.h), all sharing one commit scratch; attention
// over [representatives + the call's tokens] with the log-multiplicity bias, through the biased
// variant of the flash-attention kernel.
#pragma once

#include <memory>
#include <vector>

#include "fastar/attention/cuda/tempcache_cuda.h"
#include "fastar/model/cuda/cuda_memory.h"

namespace fastar::cuda {

class CudaTempCacheMemory : public CudaCrossFrameMemory {
 public:
  // capacity_tokens: representatives per head each layer can hold (the allocation; a commit that
  // would exceed it is a fastar::Error naming --tempcache-capacity).
  CudaTempCacheMemory(int64_t layers, int64_t heads, int64_t head_dim, int64_t tokens_per_frame, int64_t chunk_frames,
                      int64_t capacity_tokens, const TempCacheOptions& options);

  void begin(const CudaMemoryCall& call) override;
  __nv_bfloat16* chunk_k(int64_t layer) override;
  __nv_bfloat16* chunk_v(int64_t layer) override;
  void attend(int64_t layer, const __nv_bfloat16* q, __nv_bfloat16* out, cudaStream_t stream,
              const CudaLayerInputs* inputs) override;
  void commit(cudaStream_t stream) override;
  bool cached_keys(int64_t layer, CudaCachedKeys* out) const override;
  uint64_t layout_version() const override { return version_; }
  int64_t tokens_per_frame() const override { return tokens_per_frame_; }
  int64_t cached_frames() const override;  // mean representatives per head of layer 0, in frames (rounded up)
  int64_t bytes() const override;          // rows in use, all layers (the policy's memory)
  std::string describe() const override;
  MemoryStats summary() const override;  // + KV density and merges (synchronizes)
  std::string report() const override;

  const CudaTempCacheLayer& layer(int64_t index) const { return layers_[static_cast<size_t>(index)]; }
  // Cached tokens over dense tokens, all layers (1 before the first commit).
  double density() const;
  int64_t merges() const;

 private:
  int64_t heads_, head_dim_, tokens_per_frame_, chunk_frames_;
  TempCacheOptions options_;
  std::vector<CudaTempCacheLayer> layers_;
  CudaMemoryCall call_;
  uint64_t version_;
};

}  // namespace fastar::cuda
