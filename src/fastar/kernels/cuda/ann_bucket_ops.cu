// AnnSA's bucketing kernels (ann_bucket_ops.h). CPU twins: LshHasher::hash, bucket_sort,
// bucketed_attention_head's gather/scatter, bucket_block_plan, merge_attention_parts.
#include "fastar/kernels/cuda/ann_bucket_ops.h"

#include <cmath>

namespace fastar::cuda {

namespace {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr uint32_t kNoLabel = 0xffffffffu;

// ---- (a) LSH labels --------------------------------------------------------------------------------

// One thread per (row, head); blockIdx.y = head. The projections of the head sit in shared memory.
// s[b] accumulates in j order with separate rounding of the product and the sum, as the CPU loop.
template <int kBits>
__global__ void lsh_labels_kernel(const __nv_bfloat16* __restrict__ x, int64_t rows, int64_t head_dim,
                                  int64_t row_stride, int64_t head_stride, const float* __restrict__ proj,
                                  int64_t proj_head_stride, const float* __restrict__ bias, int64_t bias_head_stride,
                                  uint32_t excluded, uint32_t* __restrict__ labels, int64_t label_head_stride) {
  extern __shared__ float dirs[];  // [kBits, head_dim]
  const int64_t h = blockIdx.y;
  for (int64_t i = threadIdx.x; i < kBits * head_dim; i += blockDim.x) dirs[i] = proj[h * proj_head_stride + i];
  __syncthreads();
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  uint32_t* out = labels + h * label_head_stride + r;
  if (bias && bias[h * bias_head_stride + r] == -INFINITY) {
    *out = excluded;
    return;
  }
  const __nv_bfloat16* row = x + r * row_stride + h * head_stride;
  float s[kBits];
#pragma unroll
  for (int b = 0; b < kBits; ++b) s[b] = 0.0f;
  for (int64_t j = 0; j < head_dim; j += 8) {
    const uint4 raw = *reinterpret_cast<const uint4*>(row + j);
    const __nv_bfloat16* e = reinterpret_cast<const __nv_bfloat16*>(&raw);
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      const float xv = __bfloat162float(e[c]);
#pragma unroll
      for (int b = 0; b < kBits; ++b) s[b] = __fadd_rn(s[b], __fmul_rn(dirs[b * head_dim + j + c], xv));
    }
  }
  uint32_t code = 0;
#pragma unroll
  for (int b = 0; b < kBits; ++b)
    if (s[b] >= 0.0f) code |= 1u << b;
  *out = code;
}

// ---- (b) stable counting sort ----------------------------------------------------------------------

constexpr int kSortThreads = 512;
constexpr int kSortWarps = kSortThreads / 32;
constexpr int kSortSegment = 4 * kSortThreads;  // rows per CTA; a multiple of kSortThreads

// grid (segments, heads). Every CTA histograms the whole head (rows before its segment, and all rows)
// so that it knows where its segment's rows of each bucket start; then it scatters its segment in
// chunks of kSortThreads rows, ranking equal labels by (warp, lane) order: stable.
__global__ void bucket_sort_kernel(const uint32_t* __restrict__ labels, int64_t label_head_stride, int rows, int nb,
                                   int32_t* __restrict__ order, int64_t order_head_stride, int32_t* __restrict__ offsets) {
  __shared__ int before[kAnnMaxSortBuckets], total[kAnnMaxSortBuckets], cursor[kAnnMaxSortBuckets];
  __shared__ int chunk_total[kAnnMaxSortBuckets];
  __shared__ int warp_counts[kSortWarps][kAnnMaxSortBuckets];
  const int h = blockIdx.y, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int seg_begin = blockIdx.x * kSortSegment, seg_end = min(rows, seg_begin + kSortSegment);
  const uint32_t* L = labels + static_cast<int64_t>(h) * label_head_stride;
  for (int b = tid; b < nb; b += kSortThreads) before[b] = total[b] = 0;
  __syncthreads();
  for (int base = 0; base < rows; base += kSortThreads) {
    const int r = base + tid;
    uint32_t label = r < rows ? L[r] : kNoLabel;
    if (label != kNoLabel && label >= static_cast<uint32_t>(nb)) label = kNoLabel;
    const unsigned peers = __match_any_sync(kFullMask, label);
    if (label != kNoLabel && lane == __ffs(peers) - 1) {
      const int count = __popc(peers);
      atomicAdd(&total[label], count);
      if (base < seg_begin) atomicAdd(&before[label], count);  // chunks never straddle seg_begin
    }
  }
  __syncthreads();
  if (tid == 0) {
    int start = 0;
    for (int b = 0; b < nb; ++b) {
      if (blockIdx.x == 0) offsets[static_cast<int64_t>(h) * (nb + 1) + b] = start;
      cursor[b] = start + before[b];
      start += total[b];
    }
    if (blockIdx.x == 0) offsets[static_cast<int64_t>(h) * (nb + 1) + nb] = start;
  }
  __syncthreads();
  int32_t* O = order + static_cast<int64_t>(h) * order_head_stride;
  for (int base = seg_begin; base < seg_end; base += kSortThreads) {
    for (int i = tid; i < kSortWarps * nb; i += kSortThreads) warp_counts[i / nb][i % nb] = 0;
    __syncthreads();
    const int r = base + tid;
    uint32_t label = r < seg_end ? L[r] : kNoLabel;
    if (label != kNoLabel && label >= static_cast<uint32_t>(nb)) label = kNoLabel;
    const unsigned peers = __match_any_sync(kFullMask, label);
    const int rank = __popc(peers & ((1u << lane) - 1u));
    if (label != kNoLabel && lane == __ffs(peers) - 1) warp_counts[warp][label] = __popc(peers);
    __syncthreads();
    for (int b = tid; b < nb; b += kSortThreads) {  // exclusive scan over warps, per bucket
      int running = 0;
      for (int w = 0; w < kSortWarps; ++w) {
        const int c = warp_counts[w][b];
        warp_counts[w][b] = running;
        running += c;
      }
      chunk_total[b] = running;
    }
    __syncthreads();
    if (label != kNoLabel) O[cursor[label] + warp_counts[warp][label] + rank] = r;
    __syncthreads();
    for (int b = tid; b < nb; b += kSortThreads) cursor[b] += chunk_total[b];
    __syncthreads();
  }
}

// ---- (c) gather --------------------------------------------------------------------------------------

// One thread per (head, sorted position, 16-byte chunk of the row).
__global__ void gather_rows_kernel(AnnGatherArgs a) {
  const int64_t chunks = a.head_dim / 8;
  const int64_t total = a.heads * a.rows_pad * chunks;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = t % chunks, i = (t / chunks) % a.rows_pad, h = t / (chunks * a.rows_pad);
    const int64_t valid = a.valid ? a.valid[h * a.valid_head_stride] : a.rows;
    const int64_t dst_row = h * (a.dst_head_stride > 0 ? a.dst_head_stride : a.rows_pad) + i;
    int64_t src_row = -1;
    if (i < valid) src_row = a.order[h * a.order_head_stride + i];
#pragma unroll
    for (int s = 0; s < 2; ++s) {
      if (!a.dst[s]) continue;
      uint4 value = make_uint4(0, 0, 0, 0);
      if (src_row >= 0)
        value = *reinterpret_cast<const uint4*>(a.src[s] + src_row * a.src_row_stride + h * a.src_head_stride + c * 8);
      *reinterpret_cast<uint4*>(a.dst[s] + dst_row * a.head_dim + c * 8) = value;
    }
    if (c == 0 && a.dst_bias)
      a.dst_bias[dst_row] = src_row < 0 ? -INFINITY
                                        : (a.src_bias ? a.src_bias[h * a.src_bias_head_stride + src_row] : 0.0f);
  }
}

// ---- (d) block plan ----------------------------------------------------------------------------------

// The key blocks of one query block, by the two-segment bucket_block_plan's rule (ko2 null: one
// segment); writes them when `out` is given.
__device__ int plan_query_block(const int32_t* qo, const int32_t* ko, const int32_t* ko2, int64_t k2_first_block, int nb,
                                int64_t block_q, int64_t block_k, int64_t qb, int32_t kb_base, int32_t* out,
                                unsigned long long* pairs) {
  const int64_t q_rows = qo[nb];
  const int64_t row_begin = qb * block_q, row_end = min(q_rows, row_begin + block_q);
  int first = 0;
  while (qo[first + 1] <= row_begin) ++first;
  int count = 0;
  int64_t last = -1;
  unsigned long long executed = 0;
  for (int seg = 0; seg < (ko2 ? 2 : 1); ++seg) {
    const int32_t* k = seg == 0 ? ko : ko2;
    const int64_t k_rows = k[nb], base = seg == 0 ? 0 : k2_first_block;
    for (int b = first; b < nb && qo[b] < row_end; ++b) {
      if (qo[b + 1] <= row_begin || qo[b] == qo[b + 1] || k[b] == k[b + 1]) continue;
      const int64_t kb_first = k[b] / block_k, kb_last = (k[b + 1] - 1) / block_k;
      for (int64_t kb = kb_first; kb <= kb_last; ++kb) {
        if (count > 0 && last >= base + kb) continue;
        if (out) out[count] = kb_base + static_cast<int32_t>(base + kb);
        last = base + kb;
        ++count;
        executed += static_cast<unsigned long long>((row_end - row_begin) * (min(k_rows, (kb + 1) * block_k) - kb * block_k));
      }
    }
  }
  if (pairs) *pairs = executed;
  return count;
}

constexpr int kPlanThreads = 1024;

// One CTA: items (head, query block) in chunks of kPlanThreads: count, block-wide exclusive scan, fill.
__global__ void block_plan_kernel(AnnPlanArgs a) {
  __shared__ int warp_sums[kPlanThreads / 32];
  __shared__ int chunk_base;
  __shared__ unsigned long long executed_sum, dense_sum;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t items = a.heads * a.q_blocks;
  if (tid == 0) {
    chunk_base = 0;
    executed_sum = 0;
    dense_sum = 0;
    a.block_offsets[0] = 0;
  }
  __syncthreads();
  for (int64_t first = 0; first < items; first += kPlanThreads) {
    const int64_t item = first + tid;
    int count = 0;
    unsigned long long pairs = 0;
    const int32_t *qo = nullptr, *ko = nullptr, *ko2 = nullptr;
    int32_t kb_base = 0;
    if (item < items) {
      const int64_t h = item / a.q_blocks, qb = item % a.q_blocks;
      qo = a.q_offsets + h * a.offsets_head_stride;
      ko = a.k_offsets + h * a.offsets_head_stride;
      ko2 = a.k2_offsets ? a.k2_offsets + h * a.offsets_head_stride : nullptr;
      kb_base = static_cast<int32_t>(h * a.k_blocks);
      count = plan_query_block(qo, ko, ko2, a.k2_first_block, a.num_buckets, a.block_q, a.block_k, qb, kb_base, nullptr,
                               &pairs);
      atomicAdd(&executed_sum, pairs);
      if (qb == 0)
        atomicAdd(&dense_sum, static_cast<unsigned long long>(qo[a.num_buckets]) *
                                  static_cast<unsigned long long>(ko[a.num_buckets] + (ko2 ? ko2[a.num_buckets] : 0) +
                                                                  a.extra_keys_per_head));
    }
    // Inclusive warp scan, then the warps' totals.
    int incl = count;
#pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
      const int other = __shfl_up_sync(kFullMask, incl, d);
      if (lane >= d) incl += other;
    }
    if (lane == 31) warp_sums[warp] = incl;
    __syncthreads();
    if (warp == 0) {
      int w = warp_sums[lane];
#pragma unroll
      for (int d = 1; d < 32; d <<= 1) {
        const int other = __shfl_up_sync(kFullMask, w, d);
        if (lane >= d) w += other;
      }
      warp_sums[lane] = w;  // inclusive over warps
    }
    __syncthreads();
    const int start = chunk_base + (warp > 0 ? warp_sums[warp - 1] : 0) + incl - count;
    if (item < items) {
      plan_query_block(qo, ko, ko2, a.k2_first_block, a.num_buckets, a.block_q, a.block_k, item % a.q_blocks, kb_base,
                       a.block_index + start, nullptr);
      a.block_offsets[item + 1] = start + count;
    }
    __syncthreads();
    if (tid == 0) chunk_base += warp_sums[kPlanThreads / 32 - 1];
    __syncthreads();
  }
  if (tid == 0 && a.counters) {
    atomicAdd(&a.counters[0], executed_sum + static_cast<unsigned long long>(a.extra_pairs_per_head * a.heads));
    atomicAdd(&a.counters[1], dense_sum);
  }
}

// ---- (e) + (f) scatter / merge -------------------------------------------------------------------------

// One thread per (head, sorted position, 8-element chunk).
__global__ void scatter_merge_kernel(AnnScatterArgs a) {
  const int64_t chunks = a.head_dim / 8;
  const int64_t total = a.heads * a.rows * chunks;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = t % chunks, i = (t / chunks) % a.rows, h = t / (chunks * a.rows);
    const int64_t row = a.order[h * a.order_head_stride + i];
    const int64_t src = h * a.rows_pad + i;
    const uint4 part2 = *reinterpret_cast<const uint4*>(a.sorted_o + src * a.head_dim + c * 8);
    __nv_bfloat16* dst = a.out + row * a.out_row_stride + h * a.out_head_stride + c * 8;
    const float l2 = a.sorted_lse[src];
    if (!a.own_lse) {
      *reinterpret_cast<uint4*>(dst) = part2;
      if (c == 0 && a.lse_out) a.lse_out[h * a.lse_head_stride + row] = l2;
      continue;
    }
    const float l1 = a.own_lse[h * a.lse_head_stride + row];
    const float m = fmaxf(l1, l2);
    if (m == -INFINITY) {  // neither part saw a key: part 1 stays
      if (c == 0 && a.lse_out) a.lse_out[h * a.lse_head_stride + row] = l1;
      continue;
    }
    const float w1 = l1 == -INFINITY ? 0.0f : expf(l1 - m), w2 = l2 == -INFINITY ? 0.0f : expf(l2 - m);
    const float inv = 1.0f / (w1 + w2);
    uint4 part1 = *reinterpret_cast<const uint4*>(dst);
    const __nv_bfloat16* p1 = reinterpret_cast<const __nv_bfloat16*>(&part1);
    const __nv_bfloat16* p2 = reinterpret_cast<const __nv_bfloat16*>(&part2);
    uint4 merged;
    __nv_bfloat16* pm = reinterpret_cast<__nv_bfloat16*>(&merged);
#pragma unroll
    for (int e = 0; e < 8; ++e)
      pm[e] = __float2bfloat16_rn((w1 * __bfloat162float(p1[e]) + w2 * __bfloat162float(p2[e])) * inv);
    *reinterpret_cast<uint4*>(dst) = merged;
    if (c == 0 && a.lse_out) a.lse_out[h * a.lse_head_stride + row] = m + logf(w1 + w2);
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

int grid_for(int64_t threads, int block) {
  const int64_t blocks = (threads + block - 1) / block;
  return static_cast<int>(blocks < 65536 * 8 ? (blocks > 0 ? blocks : 1) : 65536 * 8);
}

}  // namespace

cudaError_t ann_lsh_labels_bf16(const __nv_bfloat16* x, int64_t rows, int64_t heads, int64_t head_dim,
                                int64_t row_stride, int64_t head_stride, const float* projections,
                                int64_t proj_head_stride, int bits, const float* key_bias, int64_t bias_head_stride,
                                uint32_t excluded_label, uint32_t* labels, int64_t label_head_stride,
                                cudaStream_t stream) {
  if (bits < 1 || bits > kAnnMaxLshBits || head_dim <= 0 || head_dim % 8 != 0 || heads < 1 || heads > 65535 ||
      rows < 0 || row_stride % 8 != 0 || head_stride % 8 != 0 || !aligned16(x) || label_head_stride < rows)
    return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  if (!x || !projections || !labels) return cudaErrorInvalidValue;
  constexpr int kThreads = 256;
  const dim3 grid(static_cast<unsigned>((rows + kThreads - 1) / kThreads), static_cast<unsigned>(heads));
  const size_t smem = static_cast<size_t>(bits * head_dim) * sizeof(float);
  switch (bits) {
#define FASTAR_ANN_LSH_CASE(B)                                                                                  \
  case B:                                                                                                       \
    lsh_labels_kernel<B><<<grid, kThreads, smem, stream>>>(x, rows, head_dim, row_stride, head_stride, projections, \
                                                           proj_head_stride, key_bias, bias_head_stride,           \
                                                           excluded_label, labels, label_head_stride);             \
    break;
    FASTAR_ANN_LSH_CASE(1)
    FASTAR_ANN_LSH_CASE(2)
    FASTAR_ANN_LSH_CASE(3)
    FASTAR_ANN_LSH_CASE(4)
    FASTAR_ANN_LSH_CASE(5)
    FASTAR_ANN_LSH_CASE(6)
    FASTAR_ANN_LSH_CASE(7)
    FASTAR_ANN_LSH_CASE(8)
#undef FASTAR_ANN_LSH_CASE
  }
  return cudaGetLastError();
}

cudaError_t ann_bucket_sort(const uint32_t* labels, int64_t label_head_stride, int64_t rows, int64_t heads,
                            int num_buckets, int32_t* order, int64_t order_head_stride, int32_t* offsets,
                            cudaStream_t stream) {
  if (num_buckets < 1 || num_buckets > kAnnMaxSortBuckets || rows < 0 || rows >= (int64_t{1} << 31) || heads < 1 ||
      heads > 65535 || label_head_stride < rows || order_head_stride < rows || !offsets ||
      (rows > 0 && (!labels || !order)))
    return cudaErrorInvalidValue;
  const int64_t segments = rows == 0 ? 1 : (rows + kSortSegment - 1) / kSortSegment;
  bucket_sort_kernel<<<dim3(static_cast<unsigned>(segments), static_cast<unsigned>(heads)), kSortThreads, 0, stream>>>(
      labels, label_head_stride, static_cast<int>(rows), num_buckets, order, order_head_stride, offsets);
  return cudaGetLastError();
}

cudaError_t ann_gather_rows_bf16(const AnnGatherArgs& a, cudaStream_t stream) {
  if (a.head_dim <= 0 || a.head_dim % 8 != 0 || a.rows < 0 || a.rows_pad < a.rows || a.heads < 1 || !a.order ||
      a.src_row_stride % 8 != 0 || a.src_head_stride % 8 != 0 || (a.dst_head_stride != 0 && a.dst_head_stride < a.rows_pad))
    return cudaErrorInvalidValue;
  if (a.rows_pad == 0) return cudaSuccess;  // nothing to gather (no cached keys yet): the sources may be null
  for (int s = 0; s < 2; ++s)
    if (a.dst[s] && (!a.src[s] || !aligned16(a.src[s]) || !aligned16(a.dst[s]))) return cudaErrorInvalidValue;
  const int64_t threads = a.heads * a.rows_pad * (a.head_dim / 8);
  if (threads == 0) return cudaSuccess;
  gather_rows_kernel<<<grid_for(threads, 256), 256, 0, stream>>>(a);
  return cudaGetLastError();
}

cudaError_t ann_block_plan(const AnnPlanArgs& a, cudaStream_t stream) {
  if (a.num_buckets < 1 || a.heads < 1 || a.q_blocks < 0 || a.k_blocks < 0 || a.block_q <= 0 || a.block_k <= 0 ||
      a.offsets_head_stride < a.num_buckets + 1 || !a.block_offsets || !a.block_index || !a.q_offsets || !a.k_offsets ||
      a.heads * a.k_blocks >= (int64_t{1} << 31) || a.k2_first_block < 0 || (a.k2_offsets && a.k2_first_block > a.k_blocks))
    return cudaErrorInvalidValue;
  block_plan_kernel<<<1, kPlanThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

cudaError_t ann_scatter_merge_bf16(const AnnScatterArgs& a, cudaStream_t stream) {
  if (a.head_dim <= 0 || a.head_dim % 8 != 0 || a.rows < 0 || a.rows_pad < a.rows || a.heads < 1 || !a.order ||
      !a.sorted_o || !a.sorted_lse || !a.out || !aligned16(a.out) || !aligned16(a.sorted_o) ||
      a.out_row_stride % 8 != 0 || a.out_head_stride % 8 != 0 || (a.own_lse && a.own_lse == a.lse_out))
    return cudaErrorInvalidValue;
  const int64_t threads = a.heads * a.rows * (a.head_dim / 8);
  if (threads == 0) return cudaSuccess;
  scatter_merge_kernel<<<grid_for(threads, 256), 256, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace fastar::cuda
