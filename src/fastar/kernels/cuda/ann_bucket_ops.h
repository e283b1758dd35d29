// AnnSA's bucketing pipeline on the GPU (docs/ann-attention-cuda.md): the pieces around the
// block-sparse attention kernel (flash_attention.h). Framework-free: raw device pointers, int64
// strides, every call asynchronous on `stream`. Each names the CPU function it must equal.
//
// Layout of one layer's sparse call (heads stacked so that ONE block-sparse launch serves them all):
//   labels   uint32 [heads, label_head_stride]           one per row, < num_buckets
//   order    int32  [heads, order_head_stride]           sorted position → original row
//   offsets  int32  [heads, num_buckets + 1]             bucket b = sorted positions [off[b], off[b+1])
//   sorted   bf16   [heads · rows_pad, head_dim]          head h's rows at [h·rows_pad, (h+1)·rows_pad)
//   bias     fp32   [heads · rows_pad]                    key bias of the sorted keys, −inf past the valid ones
// so the sparse attention is one head of length heads·rows_pad whose CSR plan only pairs a query
// block of head h with key blocks of head h.
//
// Excluded keys: rows whose key bias is −inf (TempCache's rows [count_h, max count) of head h) get
// the extra label `excluded_label` = num_buckets; sorted last, they are outside every real bucket,
// exactly as the CPU's CachedKvHead (tokens = count_h) never shows them.
//
// Errors are returned (cudaErrorInvalidValue for unsupported arguments, nothing launched).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace fastar::cuda {

constexpr int kAnnMaxLshBits = 8;         // GPU sort: at most 2^8 real buckets
constexpr int kAnnMaxSortBuckets = 264;   // real buckets + the excluded one, rounded up

// (a) labels[h·label_head_stride + r] = Σ_b [proj_h[b]·x[r, h] ≥ 0] · 2^b, r ∈ [0, rows), h ∈ [0, heads);
//     equals LshHasher::hash (tables = 1) of the rows as floats: the same sequential fp32 sum
//     s = s + dir[j]·row[j] (j ascending, no FMA), so the labels are bit-identical.
//   x: bf16 [rows, ...], row r of head h at x + r·row_stride + h·head_stride (16-byte aligned rows,
//      head_dim a multiple of 8)
//   projections: fp32 [bits, head_dim] per head at + h·proj_head_stride (0 = shared; LshHasher's
//      projections() with tables = 1 is exactly this layout)
//   key_bias: optional, bias[h·bias_head_stride + r]; −inf → excluded_label. bits ∈ [1, 8].
cudaError_t ann_lsh_labels_bf16(const __nv_bfloat16* x, int64_t rows, int64_t heads, int64_t head_dim,
                                int64_t row_stride, int64_t head_stride, const float* projections,
                                int64_t proj_head_stride, int bits, const float* key_bias, int64_t bias_head_stride,
                                uint32_t excluded_label, uint32_t* labels, int64_t label_head_stride,
                                cudaStream_t stream);

// (b) Per head, a stable counting sort of labels[h·label_head_stride + r], r < rows, into num_buckets
//     (≤ kAnnMaxSortBuckets) buckets: equals bucket_sort (bucket_block_plan.h) head by head.
//   order: [heads, order_head_stride] (≥ rows), offsets: [heads, num_buckets + 1]. Labels must be
//   < num_buckets (they come from ann_lsh_labels_bf16; larger ones are dropped and leave holes).
cudaError_t ann_bucket_sort(const uint32_t* labels, int64_t label_head_stride, int64_t rows, int64_t heads,
                            int num_buckets, int32_t* order, int64_t order_head_stride, int32_t* offsets,
                            cudaStream_t stream);

// (c) Gather in sorted order, per head: dst[h·rows_pad + i] = src[order[h][i], h] for i < valid_h,
//     zeros for valid_h ≤ i < rows_pad; equals the gather loop of bucketed_attention_head.
//   Up to two sources share the permutation (k and v): src1/dst1 may be null.
//   src: bf16, row r of head h at src + r·src_row_stride + h·src_head_stride; dst: bf16 [heads·rows_pad, head_dim]
//   valid_h = valid ? valid[h·valid_head_stride] : rows (e.g. offsets + num_real_buckets: the real keys).
//   dst_bias (optional) fp32 [heads·rows_pad]: src_bias[h·src_bias_head_stride + row] (0 when src_bias is
//   null) for i < valid_h, −inf after.
//   dst_head_stride: rows between heads in dst/dst_bias (0 = rows_pad); a larger one leaves room for a
//   second key segment after each head's rows (AnnSA with own keys bucketed, bucket_block_plan.h).
struct AnnGatherArgs {
  const __nv_bfloat16* src[2] = {nullptr, nullptr};
  __nv_bfloat16* dst[2] = {nullptr, nullptr};
  int64_t src_row_stride = 0, src_head_stride = 0;
  const int32_t* order = nullptr;
  int64_t order_head_stride = 0;
  const int32_t* valid = nullptr;
  int64_t valid_head_stride = 0;
  const float* src_bias = nullptr;
  int64_t src_bias_head_stride = 0;
  float* dst_bias = nullptr;
  int64_t rows = 0, rows_pad = 0, heads = 0, head_dim = 0;
  int64_t dst_head_stride = 0;
};
cudaError_t ann_gather_rows_bf16(const AnnGatherArgs& args, cudaStream_t stream);

// (d) The CSR block plan of the stacked heads: query block qb of head h (global block h·q_blocks + qb)
//     visits key block h·k_blocks + kb exactly when bucket_block_plan (same q/k offsets of head h,
//     num_buckets real buckets) lists kb for qb. One CTA builds it (count, scan, fill).
//   q_offsets/k_offsets: [heads, offsets_head_stride] (≥ num_buckets + 1 used). q_blocks = ⌈q_rows/block_q⌉
//   with q_rows = q_offsets[h][num_buckets] the same for every head; k_blocks = key rows per head
//   (padded) / block_k. block_offsets: [heads·q_blocks + 1]; block_index: capacity heads·q_blocks·k_blocks.
//   counters (optional, u64[2], accumulated with atomics): [0] += executed pairs (bucket_block_plan's
//   executed_pairs summed over heads) + extra_pairs_per_head·heads; [1] += q_rows·(k_offsets[h][num_buckets]
//   + k2_offsets[h][num_buckets] + extra_keys_per_head) summed over heads (the dense products).
//   k2_offsets (optional, same head stride): a second key segment of each head, sorted on its own, from key
//   block k2_first_block of the head (the two-segment bucket_block_plan; k_blocks covers both).
struct AnnPlanArgs {
  const int32_t* q_offsets = nullptr;
  const int32_t* k_offsets = nullptr;
  const int32_t* k2_offsets = nullptr;
  int64_t k2_first_block = 0;
  int64_t offsets_head_stride = 0;
  int num_buckets = 0;
  int64_t heads = 0, q_blocks = 0, k_blocks = 0, block_q = 0, block_k = 0;
  int32_t* block_offsets = nullptr;
  int32_t* block_index = nullptr;
  unsigned long long* counters = nullptr;
  int64_t extra_pairs_per_head = 0, extra_keys_per_head = 0;
};
cudaError_t ann_block_plan(const AnnPlanArgs& args, cudaStream_t stream);

// (e) + (f) Scatter of the sorted output back to [rows, heads·head_dim], optionally merged with a
//     first partial result through the log-sum-exp:
//   own_lse == null: out[order[h][i], h] = sorted_o[h·rows_pad + i]  (the scatter of bucketed_attention_head),
//                    lse_out[h·lse_head_stride + row] = sorted_lse[h·rows_pad + i] when lse_out is given;
//   own_lse != null: out already holds part 1 with lse own_lse[h·lse_head_stride + row]; out/lse_out ←
//                    merge_attention_parts(part 1, sorted part) row by row (fp32 math, bf16 store).
//   out: bf16, row r of head h at out + r·out_row_stride + h·out_head_stride.
struct AnnScatterArgs {
  const __nv_bfloat16* sorted_o = nullptr;  // [heads·rows_pad, head_dim]
  const float* sorted_lse = nullptr;        // [heads·rows_pad]
  const int32_t* order = nullptr;
  int64_t order_head_stride = 0;
  __nv_bfloat16* out = nullptr;
  int64_t out_row_stride = 0, out_head_stride = 0;
  const float* own_lse = nullptr;
  float* lse_out = nullptr;  // may equal nothing else read by the call (not own_lse)
  int64_t lse_head_stride = 0;
  int64_t rows = 0, rows_pad = 0, heads = 0, head_dim = 0;
};
cudaError_t ann_scatter_merge_bf16(const AnnScatterArgs& args, cudaStream_t stream);

}  // namespace fastar::cuda
