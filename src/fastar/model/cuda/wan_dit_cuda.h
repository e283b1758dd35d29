// The Wan DiT on the GPU: the same forward as WanModel (wan_dit.h), bf16 weights and activations,
// fp32 residual stream, norms' statistics and accumulation; one stream per model.
//
// Buffers are allocated once for the largest chunk (no cudaMalloc in the steady state); the
// dense / window KV cache is preallocated for `max_cached_frames` frames per layer.
// What still runs on the host: the time/action embedding MLPs (a few [frames, dim] rows per
// call) — their outputs are uploaded with one async copy.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "fastar/core/tensor.h"
#include "fastar/model/wan_dit.h"

namespace fastar::cuda {

class Gemm;

// Per-layer K/V of all kept frames, [capacity tokens, dim] bf16 each, plus the chunk staged behind them.
class CudaKvCache {
 public:
  // window < 0: dense (keeps everything up to capacity); else keeps sink + window frames.
  CudaKvCache(int64_t layers, int64_t dim, int64_t tokens_per_frame, int64_t capacity_frames, int64_t window = -1,
              int64_t sink = 0);
  int64_t frames() const { return frames_; }
  int64_t bytes() const;
  // Layer buffers.
  void* k(int64_t layer) const;
  void* v(int64_t layer) const;
  int64_t tokens() const { return frames_ * tokens_per_frame_; }
  int64_t capacity_frames() const { return capacity_frames_; }
  int64_t tokens_per_frame() const { return tokens_per_frame_; }
  // After a committing forward: keep the staged frames, then evict to the window.
  void commit(int64_t frames, cudaStream_t stream);

 private:
  int64_t layers_, dim_, tokens_per_frame_, capacity_frames_, window_, sink_;
  int64_t frames_ = 0;
  std::shared_ptr<Storage> k_, v_, scratch_;
};

class CudaWanModel {
 public:
  // Uploads the weights (bf16 matrices, fp32 norms/modulation) and allocates working buffers for
  // chunks of up to `max_tokens` tokens and prompts of up to `max_text_rows` rows.
  CudaWanModel(const WanModel& host, int64_t max_tokens, cudaStream_t stream);
  ~CudaWanModel();

  // Uploads a prepared prompt's cross-attention K/V (bf16).
  void set_prompt(const WanPrompt& prompt);

  // v_out[out_dim, F, H, W] = DiT(latent[in_dim, F, H, W]) on the device (fp32 device pointers).
  // cache: nullptr = attend only within the chunk. commit: keep the chunk's K/V in the cache.
  void forward(float* v_out, const float* latent, int64_t frames, int64_t height, int64_t width,
               const std::vector<float>& timesteps, int64_t frame_start, CudaKvCache* cache, bool commit);

  cudaStream_t stream() const { return stream_; }
  const WanConfig& config() const { return host_.config(); }

 private:
  struct DeviceWeights;
  const WanModel& host_;
  cudaStream_t stream_;
  std::unique_ptr<DeviceWeights> w_;
  std::unique_ptr<Gemm> gemm_;
  int64_t max_tokens_;
  int64_t prompt_rows_ = 0;
  std::vector<std::shared_ptr<Storage>> buffers_;  // keeps the working buffers alive
  // Working buffers (device).
  float* x_ = nullptr;            // [max_tokens, dim] residual stream
  void* h_ = nullptr;             // bf16 [max_tokens, dim]
  void* q_ = nullptr;             // bf16 [max_tokens, dim]
  void* kc_ = nullptr;            // bf16 [max_tokens, dim] (chunk K when there is no cache)
  void* vc_ = nullptr;            // bf16 [max_tokens, dim]
  void* attn_ = nullptr;          // bf16 [max_tokens, dim]
  void* y_ = nullptr;             // bf16 [max_tokens, dim]
  void* ffn_ = nullptr;           // bf16 [max_tokens, ffn_dim]
  void* patches_ = nullptr;       // bf16 [max_tokens, max(features in, out)]
  float* e_ = nullptr;            // [frames, dim] time embedding
  float* e0_ = nullptr;           // [frames, 6·dim]
  float* mod_ = nullptr;          // [frames, 6·dim] per-block modulation
  float* head_mod_ = nullptr;     // [frames, 2·dim]
  std::vector<Tensor> cross_k_, cross_v_;  // per layer, bf16 [prompt rows, dim]
  std::vector<float> host_staging_;
};

}  // namespace fastar::cuda
