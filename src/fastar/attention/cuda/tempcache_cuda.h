// TempCache of one DiT layer on the GPU: every head's groups in the layout the CUDA attention kernel
// reads, committed frame by frame with the kernels of fastar/kernels/cuda/tempcache_merge.h (the CPU
// reference is TempCacheHead / TempCacheMemory; layout, costs and differences in docs/tempcache-cuda.md).
//
// Per layer, K and V are bf16 [capacity + chunk_tokens, heads, head_dim]. Head h's representatives
// occupy rows [0, count_h); the chunk being denoised is staged at rows [max_h count_h, + chunk tokens),
// where the DiT writes its K (post-RoPE) and V. Attention of the chunk's queries then uses
//   k = k(), v = v(), row stride heads·head_dim, head stride head_dim, kv_len = kv_len(chunk tokens),
//   key_bias = key_bias(), key_bias_head_stride = key_bias_head_stride()
// (bias log m on representatives, −inf on rows [count_h, max count), 0 on the staged rows). After the
// clean pass, commit() merges the staged frames into the groups; stage pointers and kv_len move then.
//
// Usage per chunk: write K/V at stage_k()/stage_v() on every forward (denoising steps and the clean
// pass), attend with the values above, and call commit(frames, first_frame, stream) after the clean pass.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "fastar/attention/tempcache.h"
#include "fastar/core/tensor.h"
#include "fastar/kernels/cuda/tempcache_merge.h"

namespace fastar::cuda {

// Scratch a layer needs only inside commit(): the staged chunk's copy and the kernels' workspace.
// Layers of equal shapes can share one (their commits must then run on one stream).
struct CudaTempCacheScratch {
  std::shared_ptr<Storage> chunk_k, chunk_v;  // bf16 [chunk tokens, heads, head_dim]
  std::shared_ptr<Storage> workspace;
  int64_t bytes() const;
};

// One head of the cache, downloaded (tests and diagnostics).
struct TempCacheHeadSnapshot {
  std::vector<float> keys;      // [size, head_dim] (bf16 values)
  std::vector<float> values;    // [size, head_dim] bf16 values (what attention reads)
  std::vector<float> values_fp; // [size, head_dim] float(v) + float(v_lo) (the kept mean)
  std::vector<int32_t> counts, rep_frames;
  std::vector<uint8_t> pinned;
  std::vector<float> bias;      // [rows]: the whole key_bias row of the head
};

class CudaTempCacheLayer {
 public:
  // capacity_tokens: representatives per head the cache can hold after a commit; chunk_tokens: the
  // most tokens of one forward (frames per chunk × tokens_per_frame). Supported options: key matching,
  // LSH (bits <= 12) or int8, window/sink; max_tokens and query matching throw fastar::Error.
  // scratch: shared scratch of another layer with the same shapes, or nullptr to allocate one.
  CudaTempCacheLayer(int64_t heads, int64_t head_dim, int64_t tokens_per_frame, int64_t capacity_tokens,
                     int64_t chunk_tokens, const TempCacheOptions& options,
                     std::shared_ptr<CudaTempCacheScratch> scratch = nullptr);

  // Rows of the staged chunk (bf16 [chunk tokens, heads, head_dim], row stride row_stride()).
  void* stage_k() const;
  void* stage_v() const;
  void* k() const { return k_->data(); }
  void* v() const { return v_->data(); }
  int64_t row_stride() const { return heads_ * head_dim_; }
  int64_t cached_rows() const { return max_count_; }  // max_h count_h
  int64_t kv_len(int64_t chunk_tokens) const { return max_count_ + chunk_tokens; }
  const float* key_bias() const { return static_cast<const float*>(bias_->data()); }
  int64_t key_bias_head_stride() const { return rows_; }
  int64_t capacity_rows() const { return rows_; }  // rows the K/V buffers hold: capacity + chunk tokens

  // Merges the `frames` staged frames (global indices first_frame ..) into the groups, frame by frame,
  // then applies the window bound; one device→host copy of the statistics at the end (synchronizes
  // `stream`). Throws fastar::Error when a head would exceed capacity_tokens.
  void commit(int64_t frames, int64_t first_frame, cudaStream_t stream);

  // Statistics as of the last commit.
  const std::vector<int32_t>& counts() const { return counts_; }  // representatives per head
  int64_t merges() const;           // all heads
  int64_t tokens_seen() const { return tokens_seen_; }  // per head
  int64_t tokens_evicted() const;   // all heads
  double cached_tokens() const;     // mean representatives per head
  int64_t bytes() const;            // device bytes held by this layer (scratch excluded)
  int64_t used_bytes() const;       // bytes of the rows in use (what a tight allocation would need)
  const std::shared_ptr<CudaTempCacheScratch>& scratch() const { return scratch_; }

  TempCacheHeadSnapshot download_head(int64_t head) const;

 private:
  TempCacheMergeParams params() const;
  std::shared_ptr<Storage> alloc(int64_t bytes);

  int64_t heads_, head_dim_, tokens_per_frame_, capacity_, chunk_tokens_, rows_;
  TempCacheOptions options_;
  std::shared_ptr<CudaTempCacheScratch> scratch_;
  std::shared_ptr<Storage> k_, v_, v_lo_, bias_, count_, rep_frame_, pinned_, rep_norm_;
  std::shared_ptr<Storage> codes_, bucket_offsets_, bucket_ids_, projections_, q8_, q8_scale_;
  std::shared_ptr<Storage> stats_;  // [merges u64 × heads][evicted u64 × heads][size i32 × heads]
  std::vector<int32_t> counts_;
  std::vector<unsigned long long> merges_, evicted_;
  int64_t max_count_ = 0, tokens_seen_ = 0;
  int64_t first_frame_ = -1, next_frame_ = 0;
  bool broken_ = false;  // a commit overflowed: the state is no longer usable
};

}  // namespace fastar::cuda
