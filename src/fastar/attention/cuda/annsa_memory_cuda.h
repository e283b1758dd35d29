// AnnSA on the GPU (ann_self_attention.h is the CPU reference; pipeline, layouts and differences in
// docs/ann-attention-cuda.md): a CudaCrossFrameMemory that wraps the cache policy (CudaKvCache for
// dense/window, CudaTempCacheMemory), reads its cached keys through cached_keys() and leaves storing
// to it.
//
// The cached keys change only at commits, so each sparse layer keeps a bucket-sorted copy of its
// cache, rebuilt in commit() (outside the DiT's CUDA graphs):
//   commit: LSH labels of the cached keys → stable sort per head → gather k/v/bias in sorted order
// and every sparse call of the next chunk reuses it. Per sparse layer call, all heads at once:
//   own keys dense (default): dense attention of the chunk over its own keys, with lse → out
//   own keys bucketed (--annsa-own-keys sparse): LSH labels of the chunk's keys → sort → gather them
//     into the second segment of the layer's copy, after the cached keys (bucket_block_plan.h's two
//     key segments: head h's rows are [cached sorted | pad to block_k | own sorted | pad])
//   LSH labels of q → stable sort per head → gather q → CSR block plan (device) against the sorted
//   keys → ONE block-sparse attention over the stacked heads with lse → scatter back (own keys dense:
//   merged with the own-keys part through the lse).
// The schedule is the CPU's: SparseSchedule on the call's timesteps (CudaMemoryCall::timesteps) and
// the layer list; dense calls go to the wrapped policy unchanged.
//
// Everything is preallocated in the constructor (sized by the wrapped policy's capacity_rows and the
// largest call); attend() launches depend only on the call's shape, the wrapped layout and whether
// the call is sparse, which layout_version() summarises. Only LSH buckets (reading B) are supported.
#pragma once

#include <memory>
#include <vector>

#include "fastar/attention/ann_self_attention.h"
#include "fastar/core/tensor.h"
#include "fastar/model/cuda/cuda_memory.h"

namespace fastar::cuda {

class CudaAnnSaMemory : public CudaCrossFrameMemory {
 public:
  // inner: the cache policy (must expose cached_keys). max_call_tokens: the largest call's tokens.
  // Throws fastar::Error on options the GPU path lacks (prompt buckets, bits > 8, diagnostics,
  // head_dim other than 64/128, block sizes the kernel rejects) or an inner policy it cannot wrap.
  CudaAnnSaMemory(std::unique_ptr<CudaCrossFrameMemory> inner, int64_t layers, int64_t heads, int64_t head_dim,
                  int64_t max_call_tokens, AnnSaOptions options);

  void begin(const CudaMemoryCall& call) override;
  __nv_bfloat16* chunk_k(int64_t layer) override { return inner_->chunk_k(layer); }
  __nv_bfloat16* chunk_v(int64_t layer) override { return inner_->chunk_v(layer); }
  void attend(int64_t layer, const __nv_bfloat16* q, __nv_bfloat16* out, cudaStream_t stream,
              const CudaLayerInputs* inputs) override;
  bool cached_keys(int64_t layer, CudaCachedKeys* out) const override { return inner_->cached_keys(layer, out); }
  void commit(cudaStream_t stream) override;
  uint64_t layout_version() const override { return version_; }
  int64_t tokens_per_frame() const override { return inner_->tokens_per_frame(); }
  int64_t cached_frames() const override { return inner_->cached_frames(); }
  // The wrapped cache's bytes + the rows the sorted copies of the cached keys hold now.
  int64_t bytes() const override;
  std::string describe() const override;
  MemoryStats summary() const override;  // the inner policy's + AnnSA's density (synchronizes)
  std::string report() const override;

  // Per-layer density (executed / dense query–key products) over the sparse calls so far, and the
  // sparse/dense call counts; copies the device counters (synchronizes the device).
  SparseStats stats() const;
  bool call_is_sparse() const { return sparse_call_; }
  CudaCrossFrameMemory& inner() { return *inner_; }
  // Bytes of AnnSA's own buffers (sorted copies, labels, plan).
  int64_t scratch_bytes() const;
  // Rebuilds every sparse layer's sorted copy of its cached keys (commit() calls it; public so that
  // the benchmark can time it).
  void sort_cached_keys(cudaStream_t stream);

 private:
  // Keys in bucket order, per head: head h's rows at [h·head_rows, (h+1)·head_rows) of k/v/bias; the
  // cached keys' bucket b at sorted positions [offsets[h·(nbt+1) + b], offsets[h·(nbt+1) + b + 1]);
  // rows = the cached (unsorted) rows; head_rows = rows padded to block_k + own_pad_ (own keys bucketed:
  // the room for the call's own keys, written per call).
  struct SortedKeys {
    __nv_bfloat16 *k = nullptr, *v = nullptr;
    float* bias = nullptr;
    int32_t* offsets = nullptr;
    int64_t rows = 0, head_rows = 0;
  };
  // Rows [0, rows) of a key segment: row r of head h at k/v + r·row_stride + h·head_dim; key bias
  // optional (bias[h·bias_head_stride + r], −inf rows excluded).
  struct KeySource {
    const __nv_bfloat16 *k = nullptr, *v = nullptr;
    int64_t row_stride = 0;
    const float* bias = nullptr;
    int64_t bias_head_stride = 0;
    int64_t rows = 0;
  };
  void refresh_version();
  // Labels, sorts and gathers `src` into rows [first_row, first_row + rows_pad) of each head of `dst`
  // (head stride dst.head_rows), zero/−inf past the real keys; the bucket ranges go to `offsets`.
  void bucket_keys(const KeySource& src, int32_t* offsets, SortedKeys& dst, int64_t first_row, int64_t rows_pad,
                   cudaStream_t stream);
  // Own keys bucketed: the call's n own keys of `layer` into the second segment of `dst` (own_offsets_).
  void sort_own_keys(int64_t layer, int64_t n, SortedKeys& dst, cudaStream_t stream);

  std::unique_ptr<CudaCrossFrameMemory> inner_;
  int64_t layers_, heads_, head_dim_, max_call_tokens_;
  AnnSaOptions options_;
  int num_buckets_ = 0;
  CudaMemoryCall call_;
  bool sparse_call_ = false;
  uint64_t version_ = 0, seen_inner_version_ = 0;
  bool seen_sparse_ = false;
  int64_t max_key_rows_ = 0;  // the wrapped cache's capacity rows per head (its staged chunk included)
  int64_t own_pad_ = 0;       // own keys bucketed: max call tokens padded to block_k; else 0
  // One per layer (sparse layers only; the others stay empty), rebuilt at commit.
  std::vector<SortedKeys> sorted_;
  std::vector<int64_t> sparse_calls_, dense_calls_;
  std::vector<std::shared_ptr<Storage>> buffers_;
  float* projections_ = nullptr;      // [bits, head_dim], LshHasher's
  float* own_lse_ = nullptr;          // [heads, max tokens]
  uint32_t *q_labels_ = nullptr, *k_labels_ = nullptr;  // [heads, max tokens] / [heads, max key rows]
  int32_t *q_order_ = nullptr, *k_order_ = nullptr;
  int32_t* q_offsets_ = nullptr;                             // [heads, num_buckets + 2]
  int32_t* own_offsets_ = nullptr;                           // [heads, num_buckets + 2], own keys bucketed
  __nv_bfloat16 *q_sorted_ = nullptr, *o_sorted_ = nullptr;  // [heads · q_pad, head_dim]
  float* lse_sorted_ = nullptr;
  int32_t *block_offsets_ = nullptr, *block_index_ = nullptr;
  unsigned long long* counters_ = nullptr;  // [layers, 2]: executed, dense products
};

}  // namespace fastar::cuda
