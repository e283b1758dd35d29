// TempCache's per-frame commit on the GPU, all heads of one layer at once (FAST-AR §5.2; the CPU
// reference is TempCacheHead in fastar/attention/tempcache.h; layout and costs in docs/tempcache-cuda.md).
//
// State of one layer (every pointer a device pointer; R = buffer rows = capacity + chunk tokens):
//   k, v        bf16 [R, heads, head_dim]: head h's representatives (newest key of each group, group
//               mean value rounded to bf16) in rows [0, size[h]); what the attention kernel reads
//   v_lo        bf16 [R, heads, head_dim]: mean − float(v) in bf16, so float(v) + float(v_lo) keeps the
//               mean to ~16 significant bits (the running mean is updated from that sum, not from v)
//   key_bias    fp32 [heads, R]: log m for rows < size[h], then −inf, and 0 for the staged chunk rows
//               [max_h size[h], + staged_tokens) (tempcache_finalize)
//   count, rep_frame, pinned, rep_norm   [heads, R]: m, frame of the representative, started in a sink
//               frame, |key| (fp32)
//   ANN index   LSH: codes [heads, R, tables] and CSR bucket tables (offsets [heads, tables, 2^bits + 1],
//               ids [heads, tables, R]) rebuilt at the start of each frame; int8: q8 [heads, R, head_dim]
//               codes of the unit-normalised keys and their scales [heads, R]
//
// tempcache_commit_frame runs, for one frame of new tokens, the same steps as TempCacheHead::commit_frame:
//   1. prepare   per (token, head): |k|, LSH codes (the CPU hasher's projections and float summation
//                order, so codes match bit for bit) or the int8 codes of k/|k| (the CPU's rounding);
//   2. index     LSH only: counting sort of the representatives' codes per (head, table); with a
//                bucket cap, each bucket holding more than cap slots gets its newest cap slots in front
//                (a warp-wide radix select on (frame − rep_frame, −slot), then a stable compaction);
//   3. search    top-1 representative: LSH = union of the probed buckets (the first cap slots of each
//                with a cap), exact cosine re-rank (fp32),
//                ties → lowest slot; int8 = brute force on tensor cores (mma.sync s8, exact int32 dots,
//                the CPU's float scoring), ties → lowest slot;
//   4. decide    exact cosine with the match (fp32); if ≥ threshold, a 64-bit atomicMax of
//                (similarity, −token) on the representative elects the collision winner;
//   5. plan      per head: winners merge, the others get slots size[h] + (rank among unmerged tokens);
//   6. apply     per (token, head): key replaced by the newest, running mean of the value, m += 1,
//                bias log m, ANN entry; appended rows initialised.
// tempcache_evict_window removes groups whose representative is older than the window and not pinned,
// compacting each head in place (slot order kept, as on the CPU); tempcache_finalize writes the bias
// padding and the staged rows' zeros.
//
// Accepted parameters (anything else returns cudaErrorInvalidValue and launches nothing): head_dim 64
// or 128; heads in [1, 65535]; LSH tables in [1, 64], bits in [1, 12], bucket cap in [0, 2^31); the frame's keys/values with a
// contiguous last dimension and 16-byte aligned rows; tokens <= max_tokens. Errors are returned, never
// thrown.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace fastar::cuda {

enum class TempCacheAnn : int { lsh = 0, int8 = 1 };

struct TempCacheMergeParams {
  int64_t heads = 0, head_dim = 0;
  int64_t rows = 0;  // R: rows of every per-slot buffer

  // Cache state (see above). k, v, v_lo share the strides (elements).
  uint16_t* k = nullptr;     // bf16 [R, heads, head_dim]
  uint16_t* v = nullptr;
  uint16_t* v_lo = nullptr;
  int64_t row_stride = 0, head_stride = 0;
  float* key_bias = nullptr;  // [heads, key_bias_head_stride >= R]
  int64_t key_bias_head_stride = 0;
  int32_t* size = nullptr;       // [heads] representatives
  int32_t* count = nullptr;      // [heads, R]
  int32_t* rep_frame = nullptr;  // [heads, R]
  uint8_t* pinned = nullptr;     // [heads, R]
  float* rep_norm = nullptr;     // [heads, R]

  // ANN index.
  TempCacheAnn ann = TempCacheAnn::lsh;
  int lsh_tables = 4, lsh_bits = 8, lsh_multi_probe = 1;
  // > 0: the search re-ranks at most this many representatives of each probed bucket, the newest
  // (largest rep_frame, ties → the higher slot; TempCacheOptions::lsh_bucket_cap, the CPU's choice).
  // The index step then moves them to the front of each overflowing bucket. 0 = every representative.
  int64_t lsh_bucket_cap = 0;
  const float* lsh_projections = nullptr;  // [tables, bits, head_dim] (LshHasher::projections())
  uint32_t* codes = nullptr;               // [heads, R, tables]
  int32_t* bucket_offsets = nullptr;       // [heads, tables, 2^bits + 1]
  int32_t* bucket_ids = nullptr;           // [heads, tables, R]
  int8_t* q8 = nullptr;                    // [heads, R, head_dim]
  float* q8_scale = nullptr;               // [heads, R]

  // The frame to commit (tempcache_commit_frame): bf16 rows [tokens, new_row_stride], head h at
  // h · new_head_stride; post-RoPE keys and values. They must not alias the cache rows.
  const uint16_t* new_k = nullptr;
  const uint16_t* new_v = nullptr;
  int64_t new_row_stride = 0, new_head_stride = 0;
  int64_t tokens = 0;      // tokens of this frame, <= max_tokens
  int64_t max_tokens = 0;  // largest frame; sizes the workspace
  int32_t frame = 0;       // global frame index
  bool sink_frame = false; // groups started now are pinned
  float threshold = 0.9f;  // merge iff cosine >= threshold

  int32_t oldest_kept_frame = 0;  // tempcache_evict_window: unpinned groups of older representatives go
  int64_t staged_tokens = 0;      // tempcache_finalize: rows given bias 0 after the largest head

  // Statistics, cumulative: merges and members of evicted groups per head.
  unsigned long long* merges = nullptr;   // [heads]
  unsigned long long* evicted = nullptr;  // [heads]

  void* workspace = nullptr;  // tempcache_workspace_bytes(p) bytes, 256-byte aligned
  size_t workspace_bytes = 0;
};

// Workspace the kernels need for p (depends on heads, head_dim, rows, max_tokens, ann, lsh_tables).
size_t tempcache_workspace_bytes(const TempCacheMergeParams& p);

// Merges or appends the frame p.new_k / p.new_v (p.tokens tokens) into every head.
// Rows grow by at most p.tokens per head: the caller keeps size[h] + tokens <= R.
cudaError_t tempcache_commit_frame(const TempCacheMergeParams& p, cudaStream_t stream);

// Window bound: keeps groups with rep_frame >= p.oldest_kept_frame or pinned; compacts in place.
cudaError_t tempcache_evict_window(const TempCacheMergeParams& p, cudaStream_t stream);

// key_bias rows [size[h], R): 0 for [max size, max size + staged_tokens), −inf elsewhere.
cudaError_t tempcache_finalize(const TempCacheMergeParams& p, cudaStream_t stream);

}  // namespace fastar::cuda
