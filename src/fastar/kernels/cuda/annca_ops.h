// AnnCA's LSH keep-test on the GPU (docs/annca-cuda.md): the pieces between the query codes and the
// dense attention over the prompt. Framework-free: raw device pointers, int64 strides, one params
// struct per kernel, every call asynchronous on `stream`; unsupported arguments return
// cudaErrorInvalidValue and launch nothing. Each names the CPU function it equals.
//
// The query codes themselves come from ann_lsh_labels_bf16 (ann_bucket_ops.h), once per LSH table t
// with projections + t·bits·head_dim (LshHasher::projections() is [tables, bits, head_dim], so table t
// alone is that kernel's [bits, head_dim] layout); it follows LshHasher::hash's sequential no-FMA sum,
// so for bf16-exact inputs the codes are bit-identical.
//
// Together, per frame f and head h of a call:
//   occupancy[f][h][t] = bitmap over the 2^bits buckets of table t holding some query of frame f
//   bias[f][h][p]      = 0 if the prompt key p is kept (annca_keep_lsh), −inf if not; padding rows as below
// so that dense attention of frame f's queries over ALL prompt rows with this key bias equals the CPU's
// attention over the gathered kept rows (a −inf key contributes nothing).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace fastar::cuda {

constexpr int kAnnCaMaxBits = 8;                                // 2^8 buckets per table
constexpr int kAnnCaOccupancyWords = (1 << kAnnCaMaxBits) / 32;  // uint32 words per (frame, head, table)
constexpr int kAnnCaMaxTables = 64;                             // LshHasher's limit

// (a) The buckets occupied by each frame's queries: the `occupied` table of annca_keep_lsh.
//   occupancy[((f·heads + h)·tables + t)·kAnnCaOccupancyWords + w] bit i = 1 iff some query row r of
//   frame f (r ∈ [f·rows_per_frame, (f+1)·rows_per_frame)) has code 32·w + i in table t for head h.
//   codes: uint32, the code of row r, head h, table t at codes[t·code_table_stride + h·code_head_stride + r]
//   (ann_lsh_labels_bf16's labels, one table per call, stacked). Codes ≥ 2^bits are ignored.
//   Every word of the output is written (no zeroing needed). bits ∈ [1, 8], tables ∈ [1, 64].
struct AnnCaOccupancyArgs {
  const uint32_t* codes = nullptr;
  int64_t code_table_stride = 0, code_head_stride = 0;
  int64_t frames = 0, rows_per_frame = 0, heads = 0;
  int tables = 0, bits = 0;
  uint32_t* occupancy = nullptr;  // [frames, heads, tables, kAnnCaOccupancyWords]
};
cudaError_t annca_occupancy(const AnnCaOccupancyArgs& args, cudaStream_t stream);

// (b) The key bias of the prompt rows, per (frame, head): annca_keep_lsh + the padding rule of
//     AnnCrossAttention::attend.
//   bias[f·bias_frame_stride + h·bias_head_stride + p], p ∈ [0, prompt_rows):
//     p < valid_rows:  0 if for SOME table t the occupancy bit of key_codes[h·key_code_head_stride + p·tables + t]
//                      is set in occupancy[f][h][t] (the prompt key shares a bucket with a query of the frame), else −inf;
//     p ≥ valid_rows:  padding_sink ? (p == valid_rows ? sink_bias : −inf) : −inf.
//   (sink_bias = log(prompt_rows − valid_rows), computed by the caller as the CPU does, in double.)
//   key_codes: uint32 [heads, valid_rows, tables] as LshHasher::hash writes them per head (AnnCrossAttention's
//   cached prompt codes); codes ≥ 2^bits are never kept.
//   counters (optional, u64[2], atomics; SparseStats::add's arguments for the frames in counted_frames):
//     [0] += Σ_{h} tokens_per_frame · (kept rows of (f, h) + the sink row when padding_sink)
//     [1] += tokens_per_frame · prompt_rows · heads
//   for every frame f < frames whose bit f of counted_frames is set (frames ≤ 64).
struct AnnCaKeyBiasArgs {
  const uint32_t* occupancy = nullptr;  // as annca_occupancy writes it, [frames, heads, tables, words]
  const uint32_t* key_codes = nullptr;  // may be null when valid_rows == 0
  int64_t key_code_head_stride = 0;     // ≥ valid_rows·tables
  int64_t frames = 0, heads = 0;
  int tables = 0, bits = 0;
  int64_t valid_rows = 0, prompt_rows = 0;
  bool padding_sink = false;  // needs valid_rows < prompt_rows
  float sink_bias = 0.0f;
  float* bias = nullptr;
  int64_t bias_frame_stride = 0, bias_head_stride = 0;  // head stride ≥ prompt_rows, frame stride ≥ heads·head stride
  int64_t tokens_per_frame = 0;
  unsigned long long* counters = nullptr;
  uint64_t counted_frames = 0;
};
cudaError_t annca_key_bias(const AnnCaKeyBiasArgs& args, cudaStream_t stream);

}  // namespace fastar::cuda
