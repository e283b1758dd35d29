// TempCache commit kernels (see tempcache_merge.h for the state and the steps).
//
// Work split: "warp per (token, head)" kernels (prepare, search-LSH, decide, apply) use 8 warps per
// block, blockIdx.y = head; "block per head" kernels (plan, evict plan, finalize) run block-wide scans;
// the LSH index build is one block per (head, table); the int8 search is one block per (128 queries,
// head) on mma.sync m16n8k32 s8; the compaction is one block per (column of the row, head).
#include "fastar/kernels/cuda/tempcache_merge.h"

#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>

namespace fastar::cuda {

namespace {

using bf16 = __nv_bfloat16;

constexpr int kWarps = 8;                 // warp-per-item kernels: 8 items per block
constexpr int kScanThreads = 1024;        // block-per-head kernels
constexpr int kMaxTables = 64;
constexpr int kMaxBits = 12;              // 4096 buckets: the histogram lives in shared memory
constexpr int kInt8QueryTile = 128;       // int8 search: queries per block (8 warps × 16)
constexpr int kInt8RepTile = 64;          // representatives per shared-memory tile
constexpr int kCompactTile = 256;         // rows per step of the in-place compaction

// ---- workspace ------------------------------------------------------------------------------------

struct Workspace {
  uint32_t* new_codes;        // [heads, N, tables]
  float* new_norm;            // [heads, N]
  int8_t* probe_q8;           // [heads, N, D]
  float* probe_scale;         // [heads, N]
  int32_t* best;              // [heads, N]
  float* sim;                 // [heads, N]
  int32_t* dest;              // [heads, N] slot each token merges into or is appended at
  uint8_t* merged;            // [heads, N]
  unsigned long long* winner; // [heads, R] (similarity, −token) of the elected merger, 0 = none
  int32_t* src;               // [heads, R] eviction: old slot of each new slot
};

size_t align256(size_t n) { return (n + 255) & ~size_t{255}; }

// Lays the workspace out (base may be null to measure); returns the bytes used.
size_t split_workspace(const TempCacheMergeParams& p, char* base, Workspace* ws) {
  const size_t h = static_cast<size_t>(p.heads), n = static_cast<size_t>(p.max_tokens);
  const size_t r = static_cast<size_t>(p.rows), d = static_cast<size_t>(p.head_dim);
  const size_t tables = p.ann == TempCacheAnn::lsh ? static_cast<size_t>(p.lsh_tables) : 0;
  const size_t q8 = p.ann == TempCacheAnn::int8 ? 1 : 0;
  size_t offset = 0;
  auto take = [&](size_t bytes) {
    char* at = base ? base + offset : nullptr;
    offset += align256(bytes);
    return at;
  };
  Workspace w;
  w.new_codes = reinterpret_cast<uint32_t*>(take(h * n * tables * 4));
  w.new_norm = reinterpret_cast<float*>(take(h * n * 4));
  w.probe_q8 = reinterpret_cast<int8_t*>(take(h * n * d * q8));
  w.probe_scale = reinterpret_cast<float*>(take(h * n * 4 * q8));
  w.best = reinterpret_cast<int32_t*>(take(h * n * 4));
  w.sim = reinterpret_cast<float*>(take(h * n * 4));
  w.dest = reinterpret_cast<int32_t*>(take(h * n * 4));
  w.merged = reinterpret_cast<uint8_t*>(take(h * n));
  w.winner = reinterpret_cast<unsigned long long*>(take(h * r * 8));
  w.src = reinterpret_cast<int32_t*>(take(h * r * 4));
  if (ws) *ws = w;
  return offset;
}

// ---- small device helpers ---------------------------------------------------------------------------

__device__ __forceinline__ float bf16_bits_to_float(uint16_t bits) {
  return __uint_as_float(static_cast<uint32_t>(bits) << 16);
}

__device__ __forceinline__ uint16_t float_to_bf16_bits(float x) {
  const bf16 b = __float2bfloat16_rn(x);
  return *reinterpret_cast<const uint16_t*>(&b);
}

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// (score, id) of the better candidate: higher score, ties → lower id; id < 0 = none.
__device__ __forceinline__ bool better(float s, int32_t id, float best_s, int32_t best_id) {
  if (id < 0) return false;
  if (best_id < 0) return true;
  return s > best_s || (s == best_s && id < best_id);
}

__device__ __forceinline__ void warp_argmax(float* s, int32_t* id) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float os = __shfl_xor_sync(0xffffffffu, *s, o);
    const int32_t oid = __shfl_xor_sync(0xffffffffu, *id, o);
    if (better(os, oid, *s, *id)) {
      *s = os;
      *id = oid;
    }
  }
}

// Exclusive prefix sum over the block (blockDim.x = kScanThreads); *total = the block's sum.
__device__ int block_exclusive_scan(int x, int* total) {
  __shared__ int warp_sums[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int inclusive = x;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int y = __shfl_up_sync(0xffffffffu, inclusive, o);
    if (lane >= o) inclusive += y;
  }
  if (lane == 31) warp_sums[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    const int nw = blockDim.x >> 5;
    int w = lane < nw ? warp_sums[lane] : 0;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int y = __shfl_up_sync(0xffffffffu, w, o);
      if (lane >= o) w += y;
    }
    warp_sums[lane] = w;  // inclusive over warps
  }
  __syncthreads();
  const int before = (warp > 0 ? warp_sums[warp - 1] : 0) + inclusive - x;
  *total = warp_sums[(blockDim.x >> 5) - 1];
  __syncthreads();  // warp_sums is reused by the next call
  return before;
}

// Dot product of an fp32 row in shared memory with a bf16 row in global memory (16-byte loads).
template <int D>
__device__ __forceinline__ float dot_smem_bf16(const float* s, const uint16_t* row) {
  float acc = 0.0f;
  const uint4* r4 = reinterpret_cast<const uint4*>(row);
#pragma unroll 4
  for (int c = 0; c < D / 8; ++c) {
    const uint4 w = __ldg(r4 + c);
    const uint32_t words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      acc = fmaf(s[c * 8 + 2 * e], __uint_as_float(words[e] << 16), acc);
      acc = fmaf(s[c * 8 + 2 * e + 1], __uint_as_float(words[e] & 0xffff0000u), acc);
    }
  }
  return acc;
}

// cosine as the CPU defines it: 0 when either row is zero.
__device__ __forceinline__ float cosine_from(float dot, float na, float nb) {
  return (na == 0.0f || nb == 0.0f) ? 0.0f : dot / (na * nb);
}

// Orders floats as unsigned integers (larger float → larger key), for the 64-bit atomicMax.
__device__ __forceinline__ uint32_t ordered_bits(float x) {
  const uint32_t b = __float_as_uint(x);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ const uint16_t* new_row(const TempCacheMergeParams& p, const uint16_t* base, int64_t token,
                                                   int64_t head) {
  return base + token * p.new_row_stride + head * p.new_head_stride;
}

__device__ __forceinline__ int64_t cache_offset(const TempCacheMergeParams& p, int64_t slot, int64_t head) {
  return slot * p.row_stride + head * p.head_stride;
}

// ---- 1. prepare: norms, LSH codes or int8 probe codes of the new keys ------------------------------

template <int D>
__global__ void __launch_bounds__(kWarps * 32) prepare_kernel(const TempCacheMergeParams p, Workspace ws) {
  __shared__ float s_key[kWarps][D];
  __shared__ uint32_t s_codes[kWarps][kMaxTables];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t h = blockIdx.y, i = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (i >= p.tokens) return;  // whole warps leave together; no block-wide barrier below
  const uint16_t* key = new_row(p, p.new_k, i, h);
  float ss = 0.0f;
  for (int j = lane; j < D; j += 32) {
    const float x = bf16_bits_to_float(key[j]);
    s_key[warp][j] = x;
    ss = fmaf(x, x, ss);
  }
  ss = warp_sum(ss);
  const int64_t item = h * p.max_tokens + i;
  if (lane == 0) ws.new_norm[item] = sqrtf(ss);
  __syncwarp();

  if (p.ann == TempCacheAnn::lsh) {
    const int tables = p.lsh_tables, bits = p.lsh_bits;
    for (int t = lane; t < tables; t += 32) s_codes[warp][t] = 0u;
    __syncwarp();
    // Same summation as LshHasher::hash: s += dir[j] · row[j], j ascending, fp32, no fused multiply-add.
    for (int tb = lane; tb < tables * bits; tb += 32) {
      const float* dir = p.lsh_projections + static_cast<int64_t>(tb) * D;
      float s = 0.0f;
      for (int j = 0; j < D; ++j) s = __fadd_rn(s, __fmul_rn(__ldg(dir + j), s_key[warp][j]));
      if (s >= 0.0f) atomicOr(&s_codes[warp][tb / bits], 1u << (tb % bits));
    }
    __syncwarp();
    for (int t = lane; t < tables; t += 32) ws.new_codes[item * tables + t] = s_codes[warp][t];
    return;
  }
  // int8: unit row as the CPU's unit_row (double sum of squares, j ascending), then quantize_row.
  double inv = 0.0;
  if (lane == 0) {
    double dss = 0.0;
    for (int j = 0; j < D; ++j) dss += static_cast<double>(s_key[warp][j]) * s_key[warp][j];
    inv = dss > 0.0 ? 1.0 / sqrt(dss) : 0.0;
  }
  inv = __shfl_sync(0xffffffffu, inv, 0);
  constexpr int kPer = D / 32;
  float u[kPer];
  float amax = 0.0f;
#pragma unroll
  for (int e = 0; e < kPer; ++e) {
    u[e] = __double2float_rn(static_cast<double>(s_key[warp][lane + 32 * e]) * inv);
    amax = fmaxf(amax, fabsf(u[e]));
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  int8_t* codes = ws.probe_q8 + item * D;
  if (amax == 0.0f) {
#pragma unroll
    for (int e = 0; e < kPer; ++e) codes[lane + 32 * e] = 0;
    if (lane == 0) ws.probe_scale[item] = 0.0f;
    return;
  }
  const float scale = __fdiv_rn(amax, 127.0f), inv127 = __fdiv_rn(127.0f, amax);
#pragma unroll
  for (int e = 0; e < kPer; ++e) {
    const float c = rintf(__fmul_rn(u[e], inv127));
    codes[lane + 32 * e] = static_cast<int8_t>(fminf(127.0f, fmaxf(-127.0f, c)));
  }
  if (lane == 0) ws.probe_scale[item] = scale;
}

// ---- 2. LSH index: counting sort of the representatives' codes, one block per (table, head) -------

__global__ void __launch_bounds__(kScanThreads) lsh_index_kernel(const TempCacheMergeParams p) {
  __shared__ int s_hist[1 << kMaxBits];
  const int t = blockIdx.x, h = blockIdx.y, tables = p.lsh_tables;
  const int nb = 1 << p.lsh_bits;
  const int n = p.size[h];
  for (int b = threadIdx.x; b < nb; b += blockDim.x) s_hist[b] = 0;
  __syncthreads();
  const uint32_t* codes = p.codes + static_cast<int64_t>(h) * p.rows * tables;
  for (int r = threadIdx.x; r < n; r += blockDim.x) atomicAdd(&s_hist[codes[static_cast<int64_t>(r) * tables + t]], 1);
  __syncthreads();
  // Exclusive scan of the histogram: each thread owns a run of nb / blockDim buckets (at least 1).
  const int per = (nb + blockDim.x - 1) / blockDim.x;
  const int b0 = threadIdx.x * per;
  int run = 0;
  for (int b = b0; b < b0 + per && b < nb; ++b) run += s_hist[b];
  int total = 0;
  int offset = block_exclusive_scan(run, &total);
  int32_t* offsets = p.bucket_offsets + (static_cast<int64_t>(h) * tables + t) * (nb + 1);
  for (int b = b0; b < b0 + per && b < nb; ++b) {
    const int c = s_hist[b];
    offsets[b] = offset;
    s_hist[b] = offset;  // becomes the scatter cursor
    offset += c;
  }
  if (threadIdx.x == 0) offsets[nb] = total;
  __syncthreads();
  // Scatter (order inside a bucket is arbitrary: the search breaks ties by slot explicitly).
  int32_t* ids = p.bucket_ids + (static_cast<int64_t>(h) * tables + t) * p.rows;
  for (int r = threadIdx.x; r < n; r += blockDim.x) {
    const int pos = atomicAdd(&s_hist[codes[static_cast<int64_t>(r) * tables + t]], 1);
    ids[pos] = r;
  }
}

// ---- 2b. LSH bucket cap: the newest cap slots of each overflowing bucket to its front ----------------
//
// One block per (table, head); warp w takes buckets w, w + 32, ... Slot s's key is
// (frame − rep_frame[s]) · 2^32 + (2^32 − 1 − s): smaller = newer representative, ties → higher slot, the
// CPU's priority order (LshBuckets::build with rep_frame). The cap smallest keys are found by a radix
// select on 8-bit digits from the largest key's top digit down (per-warp shared histogram), stopping
// once every key of the chosen prefix is selected; they are then compacted, stable, to the front of
// the bucket (in place: a chunk of 32 is read before any of it is written, and writes never pass the
// reads). The entries after the first cap are left as they are and never read.

__device__ __forceinline__ unsigned long long newest_key(int32_t frame, const int32_t* rep_frame, int32_t slot) {
  return (static_cast<unsigned long long>(static_cast<uint32_t>(frame - rep_frame[slot])) << 32) |
         static_cast<unsigned long long>(0xffffffffu - static_cast<uint32_t>(slot));
}

__global__ void __launch_bounds__(kScanThreads) lsh_cap_kernel(const TempCacheMergeParams p) {
  __shared__ int s_digit_hist[kScanThreads / 32][256];
  const int t = blockIdx.x, h = blockIdx.y, tables = p.lsh_tables;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  const int nb = 1 << p.lsh_bits;
  const int cap = static_cast<int>(p.lsh_bucket_cap);
  const int32_t* offsets = p.bucket_offsets + (static_cast<int64_t>(h) * tables + t) * (nb + 1);
  int32_t* ids = p.bucket_ids + (static_cast<int64_t>(h) * tables + t) * p.rows;
  const int32_t* frames = p.rep_frame + static_cast<int64_t>(h) * p.rows;
  int* hist = s_digit_hist[warp];
  for (int b = warp; b < nb; b += warps) {  // warp-uniform loop: __syncwarp below is safe
    const int begin = offsets[b], end = offsets[b + 1];
    if (end - begin <= cap) continue;
    unsigned long long largest = 0;
    for (int c = begin + lane; c < end; c += 32) largest = max(largest, newest_key(p.frame, frames, ids[c]));
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) largest = max(largest, __shfl_xor_sync(0xffffffffu, largest, o));
    int shift = largest == 0 ? 0 : ((63 - __clzll(static_cast<long long>(largest))) / 8) * 8;
    unsigned long long prefix = 0, mask = 0;
    int need = cap;
    for (;; shift -= 8) {
      for (int i = lane; i < 256; i += 32) hist[i] = 0;
      __syncwarp();
      for (int c = begin + lane; c < end; c += 32) {
        const unsigned long long k = newest_key(p.frame, frames, ids[c]);
        if ((k & mask) == prefix) atomicAdd(&hist[(k >> shift) & 255], 1);
      }
      __syncwarp();
      // Lane l owns digits [8l, 8l + 8): the digit where the running count reaches `need`.
      int own = 0;
#pragma unroll
      for (int j = 0; j < 8; ++j) own += hist[8 * lane + j];
      int inclusive = own;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const int y = __shfl_up_sync(0xffffffffu, inclusive, o);
        if (lane >= o) inclusive += y;
      }
      const int before = inclusive - own;
      const unsigned owner = __ballot_sync(0xffffffffu, before < need && need <= inclusive);
      const int src = __ffs(owner) - 1;
      int digit = 0, below = 0, in_digit = 0;
      if (lane == src) {
        int acc = before;
        for (int j = 0; j < 8; ++j) {
          const int c = hist[8 * lane + j];
          if (acc + c >= need) {
            digit = 8 * lane + j;
            below = acc;
            in_digit = c;
            break;
          }
          acc += c;
        }
      }
      digit = __shfl_sync(0xffffffffu, digit, src);
      below = __shfl_sync(0xffffffffu, below, src);
      in_digit = __shfl_sync(0xffffffffu, in_digit, src);
      need -= below;
      prefix |= static_cast<unsigned long long>(digit) << shift;
      mask |= 0xffull << shift;
      __syncwarp();  // hist is read before the next pass clears it
      if (in_digit == need || shift == 0) break;  // every key of this prefix is selected, or the key is whole
    }
    // Selected: (key & mask) <= prefix, exactly cap slots (keys are unique). Stable compaction to the front.
    int out = begin;
    for (int base = begin; base < end && out < begin + cap; base += 32) {
      const int c = base + lane;
      int32_t id = 0;
      bool selected = false;
      if (c < end) {
        id = ids[c];
        selected = (newest_key(p.frame, frames, id) & mask) <= prefix;
      }
      const unsigned ballot = __ballot_sync(0xffffffffu, selected);
      __syncwarp();  // the chunk is read before it is written
      if (selected) ids[out + __popc(ballot & ((1u << lane) - 1u))] = id;
      out += __popc(ballot);
      __syncwarp();
    }
  }
}

// ---- 3a. LSH search: union of the probed buckets, exact cosine re-rank ------------------------------

template <int D>
__global__ void __launch_bounds__(kWarps * 32) lsh_search_kernel(const TempCacheMergeParams p, Workspace ws) {
  __shared__ float s_key[kWarps][D];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t h = blockIdx.y, i = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (i >= p.tokens) return;
  const int64_t item = h * p.max_tokens + i;
  const uint16_t* key = new_row(p, p.new_k, i, h);
  for (int j = lane; j < D; j += 32) s_key[warp][j] = bf16_bits_to_float(key[j]);
  __syncwarp();
  const float qn = ws.new_norm[item];
  const int tables = p.lsh_tables, bits = p.lsh_bits, nb = 1 << bits;
  const int probes = p.lsh_multi_probe ? 1 + bits : 1;
  const float* norms = p.rep_norm + h * p.rows;
  float best_s = 0.0f;
  int32_t best_id = -1;
  for (int t = 0; t < tables; ++t) {
    const uint32_t code = ws.new_codes[item * tables + t];
    const int32_t* offsets = p.bucket_offsets + (h * tables + t) * (nb + 1);
    const int32_t* ids = p.bucket_ids + (h * tables + t) * p.rows;
    for (int probe = 0; probe < probes; ++probe) {
      const uint32_t bucket = probe == 0 ? code : code ^ (1u << (probe - 1));
      const int begin = offsets[bucket];
      int end = offsets[bucket + 1];
      if (p.lsh_bucket_cap > 0 && end - begin > p.lsh_bucket_cap) end = begin + static_cast<int>(p.lsh_bucket_cap);  // no int overflow
      for (int c = begin + lane; c < end; c += 32) {
        const int32_t id = ids[c];
        const float dot = dot_smem_bf16<D>(s_key[warp], p.k + cache_offset(p, id, h));
        const float s = cosine_from(dot, qn, norms[id]);
        if (better(s, id, best_s, best_id)) {
          best_s = s;
          best_id = id;
        }
      }
    }
  }
  warp_argmax(&best_s, &best_id);
  if (lane == 0) ws.best[item] = best_id;
}

// ---- 3b. int8 search: brute force on tensor cores ------------------------------------------------------

__device__ __forceinline__ void mma_s8_16832(int (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Block: 128 queries × all representatives of head blockIdx.y. Warp w owns queries [16w, 16w + 16) and
// keeps their A fragments in registers; representatives pass through shared memory in tiles of 64
// (rows padded to D + 16 bytes: conflict-free 32-bit fragment reads). Fragment layout of m16n8k32 s8:
// a0/a2 rows g, a1/a3 rows g + 8, bytes 4·tg.. (+16 for a2/a3); b0 k = 4·tg.., b1 k = 16 + 4·tg.., column
// g; c0/c1 row g, columns 2·tg, 2·tg + 1; c2/c3 row g + 8.
template <int D>
__global__ void __launch_bounds__(256) int8_search_kernel(const TempCacheMergeParams p, Workspace ws) {
  constexpr int kRowBytes = D + 16;
  constexpr int kKSteps = D / 32;
  __shared__ __align__(16) int8_t s_rep[kInt8RepTile * kRowBytes];
  __shared__ float s_scale[kInt8RepTile];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, tg = lane & 3;
  const int64_t h = blockIdx.y;
  const int n = p.size[h];
  const int64_t q0 = static_cast<int64_t>(blockIdx.x) * kInt8QueryTile + warp * 16;

  uint32_t a[kKSteps][4];
  float qs[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int64_t q = q0 + g + 8 * half;
    const bool valid = q < p.tokens;
    const int8_t* row = ws.probe_q8 + (h * p.max_tokens + (valid ? q : 0)) * D;
    qs[half] = valid ? ws.probe_scale[h * p.max_tokens + q] : 0.0f;
#pragma unroll
    for (int ks = 0; ks < kKSteps; ++ks) {
      a[ks][half] = valid ? *reinterpret_cast<const uint32_t*>(row + ks * 32 + 4 * tg) : 0u;
      a[ks][2 + half] = valid ? *reinterpret_cast<const uint32_t*>(row + ks * 32 + 16 + 4 * tg) : 0u;
    }
  }
  float best_s[2] = {0.0f, 0.0f};
  int32_t best_id[2] = {-1, -1};
  const int8_t* reps = p.q8 + h * p.rows * D;
  const float* scales = p.q8_scale + h * p.rows;
  for (int tile = 0; tile < n; tile += kInt8RepTile) {
    __syncthreads();  // the previous tile is consumed
    for (int c = threadIdx.x; c < kInt8RepTile * (D / 16); c += blockDim.x) {
      const int r = c / (D / 16), chunk = c % (D / 16);
      uint4 w = make_uint4(0u, 0u, 0u, 0u);
      if (tile + r < n) w = *reinterpret_cast<const uint4*>(reps + static_cast<int64_t>(tile + r) * D + chunk * 16);
      *reinterpret_cast<uint4*>(s_rep + r * kRowBytes + chunk * 16) = w;
    }
    for (int r = threadIdx.x; r < kInt8RepTile; r += blockDim.x) s_scale[r] = tile + r < n ? scales[tile + r] : 0.0f;
    __syncthreads();
#pragma unroll 2
    for (int nt = 0; nt < kInt8RepTile / 8; ++nt) {
      int acc[4] = {0, 0, 0, 0};
      const int8_t* brow = s_rep + (nt * 8 + g) * kRowBytes;
#pragma unroll
      for (int ks = 0; ks < kKSteps; ++ks) {
        const uint32_t b0 = *reinterpret_cast<const uint32_t*>(brow + ks * 32 + 4 * tg);
        const uint32_t b1 = *reinterpret_cast<const uint32_t*>(brow + ks * 32 + 16 + 4 * tg);
        mma_s8_16832(acc, a[ks], b0, b1);
      }
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = nt * 8 + 2 * tg + (e & 1);
        const int32_t id = tile + col;
        if (id >= n) continue;
        const int half = e >> 1;
        // The CPU's int8_top1: qs · ds · float(acc), left to right.
        const float s = __fmul_rn(__fmul_rn(qs[half], s_scale[col]), static_cast<float>(acc[e]));
        if (better(s, id, best_s[half], best_id[half])) {
          best_s[half] = s;
          best_id[half] = id;
        }
      }
    }
  }
  // Reduce over the 4 lanes (tg) that share a row.
#pragma unroll
  for (int half = 0; half < 2; ++half) {
#pragma unroll
    for (int o = 1; o < 4; o <<= 1) {
      const float os = __shfl_xor_sync(0xffffffffu, best_s[half], o);
      const int32_t oid = __shfl_xor_sync(0xffffffffu, best_id[half], o);
      if (better(os, oid, best_s[half], best_id[half])) {
        best_s[half] = os;
        best_id[half] = oid;
      }
    }
    const int64_t q = q0 + g + 8 * half;
    if (tg == 0 && q < p.tokens) ws.best[h * p.max_tokens + q] = best_id[half];
  }
}

// ---- 4. decide: exact cosine with the match, threshold, collision election ----------------------------

template <int D>
__global__ void __launch_bounds__(kWarps * 32) decide_kernel(const TempCacheMergeParams p, Workspace ws) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t h = blockIdx.y, i = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (i >= p.tokens) return;
  const int64_t item = h * p.max_tokens + i;
  const int32_t g = ws.best[item];
  if (g < 0) {
    if (lane == 0) ws.sim[item] = -2.0f;
    return;
  }
  const uint16_t* key = new_row(p, p.new_k, i, h);
  const uint16_t* rep = p.k + cache_offset(p, g, h);
  float dot = 0.0f;
  for (int j = lane; j < D; j += 32) dot = fmaf(bf16_bits_to_float(key[j]), bf16_bits_to_float(rep[j]), dot);
  dot = warp_sum(dot);
  if (lane != 0) return;
  const float s = cosine_from(dot, ws.new_norm[item], p.rep_norm[h * p.rows + g]);
  ws.sim[item] = s;
  if (s >= p.threshold) {
    const unsigned long long key64 =
        (static_cast<unsigned long long>(ordered_bits(s)) << 32) | (0xffffffffull - static_cast<unsigned long long>(i));
    atomicMax(ws.winner + h * p.rows + g, key64);
  }
}

// ---- 5. plan: winners merge, the rest append in token order ------------------------------------------

__global__ void __launch_bounds__(kScanThreads) plan_kernel(const TempCacheMergeParams p, Workspace ws) {
  const int64_t h = blockIdx.x;
  const int old_size = p.size[h];
  int appended = 0, merged_total = 0;
  for (int64_t base = 0; base < p.tokens; base += blockDim.x) {
    const int64_t i = base + threadIdx.x;
    bool merge = false;
    int32_t g = -1;
    if (i < p.tokens) {
      const int64_t item = h * p.max_tokens + i;
      g = ws.best[item];
      const float s = ws.sim[item];
      if (g >= 0 && s >= p.threshold) {
        const unsigned long long key64 = (static_cast<unsigned long long>(ordered_bits(s)) << 32) |
                                         (0xffffffffull - static_cast<unsigned long long>(i));
        merge = ws.winner[h * p.rows + g] == key64;
      }
    }
    int total = 0;
    const int rank = block_exclusive_scan(i < p.tokens && !merge ? 1 : 0, &total);
    int merges_here = 0;
    block_exclusive_scan(merge ? 1 : 0, &merges_here);
    if (i < p.tokens) {
      const int64_t item = h * p.max_tokens + i;
      ws.merged[item] = merge ? 1 : 0;
      ws.dest[item] = merge ? g : old_size + appended + rank;
    }
    appended += total;
    merged_total += merges_here;
  }
  if (threadIdx.x == 0) {
    p.size[h] = old_size + appended;
    p.merges[h] += static_cast<unsigned long long>(merged_total);
  }
}

// ---- 6. apply: update merged groups, initialise appended ones -----------------------------------------

template <int D>
__global__ void __launch_bounds__(kWarps * 32) apply_kernel(const TempCacheMergeParams p, Workspace ws) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t h = blockIdx.y, i = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (i >= p.tokens) return;
  const int64_t item = h * p.max_tokens + i;
  const int64_t slot = ws.dest[item];
  const bool merge = ws.merged[item] != 0;
  const int64_t meta = h * p.rows + slot;
  const int m = merge ? p.count[meta] + 1 : 1;
  __syncwarp();
  const uint16_t* key = new_row(p, p.new_k, i, h);
  const uint16_t* val = new_row(p, p.new_v, i, h);
  const int64_t at = cache_offset(p, slot, h);
  const float inv_m = __fdiv_rn(1.0f, static_cast<float>(m));
  for (int j = lane; j < D; j += 32) {
    p.k[at + j] = key[j];
    if (merge) {
      // The CPU's running mean, vm += (vi − vm) · (1/m), on the fp32 value float(v) + float(v_lo).
      const float mean = bf16_bits_to_float(p.v[at + j]) + bf16_bits_to_float(p.v_lo[at + j]);
      const float next = fmaf(bf16_bits_to_float(val[j]) - mean, inv_m, mean);
      const uint16_t hi = float_to_bf16_bits(next);
      p.v[at + j] = hi;
      p.v_lo[at + j] = float_to_bf16_bits(next - bf16_bits_to_float(hi));
    } else {
      p.v[at + j] = val[j];
      p.v_lo[at + j] = 0;  // +0.0 in bf16
    }
  }
  if (p.ann == TempCacheAnn::lsh) {
    for (int t = lane; t < p.lsh_tables; t += 32)
      p.codes[meta * p.lsh_tables + t] = ws.new_codes[item * p.lsh_tables + t];
  } else {
    for (int j = lane; j < D; j += 32) p.q8[meta * D + j] = ws.probe_q8[item * D + j];
  }
  if (lane == 0) {
    p.count[meta] = m;
    p.key_bias[h * p.key_bias_head_stride + slot] = static_cast<float>(log(static_cast<double>(m)));
    p.rep_frame[meta] = p.frame;
    if (!merge) p.pinned[meta] = p.sink_frame ? 1 : 0;
    p.rep_norm[meta] = ws.new_norm[item];
    if (p.ann == TempCacheAnn::int8) p.q8_scale[meta] = ws.probe_scale[item];
  }
}

// ---- eviction: plan (scan of the kept slots), then in-place stable compaction ---------------------------

__global__ void __launch_bounds__(kScanThreads) evict_plan_kernel(const TempCacheMergeParams p, Workspace ws) {
  const int64_t h = blockIdx.x;
  const int n = p.size[h];
  int kept = 0;
  unsigned long long evicted_here = 0;
  for (int base = 0; base < n; base += blockDim.x) {
    const int s = base + threadIdx.x;
    bool keep = false;
    if (s < n) {
      const int64_t meta = h * p.rows + s;
      keep = p.pinned[meta] != 0 || p.rep_frame[meta] >= p.oldest_kept_frame;
      if (!keep) evicted_here += static_cast<unsigned long long>(p.count[meta]);
    }
    int total = 0;
    const int rank = block_exclusive_scan(keep ? 1 : 0, &total);
    if (keep) ws.src[h * p.rows + kept + rank] = s;
    kept += total;
  }
  if (evicted_here) atomicAdd(p.evicted + h, evicted_here);
  __syncthreads();
  if (threadIdx.x == 0) p.size[h] = kept;
}

// Moves element `col` of every kept row: new row j <- old row src[j] (src[j] >= j). Tiles of rows go in
// ascending order, each read completely before it is written: a tile's sources are at or after the
// tile, so no source is overwritten before it is read.
template <class E>
__device__ void compact_column(E* base, int64_t row_stride, int64_t col, const int32_t* src, int n) {
  for (int tile = 0; tile < n; tile += kCompactTile) {
    const int j = tile + static_cast<int>(threadIdx.x);
    const int s = j < n ? src[j] : j;
    E value{};
    if (s != j) value = base[s * row_stride + col];
    __syncthreads();
    if (s != j) base[j * row_stride + col] = value;
    __syncthreads();
  }
}

// blockIdx.x enumerates the columns: 16-byte chunks of k, v, v_lo, then count, bias, frame, pinned, norm,
// then the ANN columns (LSH: one per table; int8: 16-byte chunks of the codes, then the scale).
template <int D>
__global__ void __launch_bounds__(kCompactTile) compact_kernel(const TempCacheMergeParams p, Workspace ws) {
  constexpr int kChunks = D / 8;
  const int64_t h = blockIdx.y;
  const int n = p.size[h];
  const int32_t* src = ws.src + h * p.rows;
  int col = blockIdx.x;
  if (col < 3 * kChunks) {
    uint16_t* arrays[3] = {p.k, p.v, p.v_lo};
    uint4* base = reinterpret_cast<uint4*>(arrays[col / kChunks] + h * p.head_stride);
    compact_column(base, p.row_stride / 8, col % kChunks, src, n);
    return;
  }
  col -= 3 * kChunks;
  const int64_t m0 = h * p.rows;
  switch (col) {
    case 0: compact_column(p.count + m0, 1, 0, src, n); return;
    case 1: compact_column(p.key_bias + h * p.key_bias_head_stride, 1, 0, src, n); return;
    case 2: compact_column(p.rep_frame + m0, 1, 0, src, n); return;
    case 3: compact_column(p.pinned + m0, 1, 0, src, n); return;
    case 4: compact_column(p.rep_norm + m0, 1, 0, src, n); return;
    default: break;
  }
  col -= 5;
  if (p.ann == TempCacheAnn::lsh) {
    compact_column(p.codes + m0 * p.lsh_tables, p.lsh_tables, col, src, n);
  } else if (col < D / 16) {
    compact_column(reinterpret_cast<uint4*>(p.q8 + m0 * D), D / 16, col, src, n);
  } else {
    compact_column(p.q8_scale + m0, 1, 0, src, n);
  }
}

// ---- finalize: bias padding and the staged rows ----------------------------------------------------------

__global__ void __launch_bounds__(256) finalize_kernel(const TempCacheMergeParams p) {
  const int64_t h = blockIdx.x;
  int max_size = 0;
  for (int64_t j = 0; j < p.heads; ++j) max_size = max(max_size, p.size[j]);
  const int n = p.size[h];
  float* bias = p.key_bias + h * p.key_bias_head_stride;
  for (int64_t j = n + threadIdx.x; j < p.rows; j += blockDim.x)
    bias[j] = (j >= max_size && j < max_size + p.staged_tokens) ? 0.0f : -INFINITY;
}

// ---- launch -------------------------------------------------------------------------------------------

bool valid_common(const TempCacheMergeParams& p) {
  if (!(p.head_dim == 64 || p.head_dim == 128) || p.heads < 1 || p.heads > 65535 || p.rows < 1) return false;
  if (!p.k || !p.v || !p.v_lo || !p.key_bias || !p.size || !p.count || !p.rep_frame || !p.pinned || !p.rep_norm)
    return false;
  if (p.row_stride % 8 != 0 || p.head_stride % 8 != 0 || p.key_bias_head_stride < p.rows) return false;
  if ((reinterpret_cast<uintptr_t>(p.k) | reinterpret_cast<uintptr_t>(p.v) | reinterpret_cast<uintptr_t>(p.v_lo)) % 16)
    return false;
  if (p.ann == TempCacheAnn::lsh) {
    if (p.lsh_tables < 1 || p.lsh_tables > kMaxTables || p.lsh_bits < 1 || p.lsh_bits > kMaxBits) return false;
    if (p.lsh_bucket_cap < 0 || p.lsh_bucket_cap > INT32_MAX) return false;
    if (!p.codes || !p.bucket_offsets || !p.bucket_ids || !p.lsh_projections) return false;
  } else {
    if (!p.q8 || !p.q8_scale || reinterpret_cast<uintptr_t>(p.q8) % 16) return false;
  }
  if (!p.merges || !p.evicted || p.max_tokens < 0) return false;
  if (!p.workspace || p.workspace_bytes < tempcache_workspace_bytes(p) ||
      reinterpret_cast<uintptr_t>(p.workspace) % 256)
    return false;
  return true;
}

template <int D>
cudaError_t commit_frame_d(const TempCacheMergeParams& p, const Workspace& ws, cudaStream_t stream) {
  const unsigned items = static_cast<unsigned>((p.tokens + kWarps - 1) / kWarps);
  const dim3 warp_grid(items, static_cast<unsigned>(p.heads));
  cudaError_t err = cudaMemsetAsync(ws.winner, 0, static_cast<size_t>(p.heads * p.rows) * 8, stream);
  if (err != cudaSuccess) return err;
  prepare_kernel<D><<<warp_grid, kWarps * 32, 0, stream>>>(p, ws);
  if (p.ann == TempCacheAnn::lsh) {
    lsh_index_kernel<<<dim3(static_cast<unsigned>(p.lsh_tables), static_cast<unsigned>(p.heads)), kScanThreads, 0,
                       stream>>>(p);
    if (p.lsh_bucket_cap > 0)
      lsh_cap_kernel<<<dim3(static_cast<unsigned>(p.lsh_tables), static_cast<unsigned>(p.heads)), kScanThreads, 0,
                       stream>>>(p);
    lsh_search_kernel<D><<<warp_grid, kWarps * 32, 0, stream>>>(p, ws);
  } else {
    const unsigned tiles = static_cast<unsigned>((p.tokens + kInt8QueryTile - 1) / kInt8QueryTile);
    int8_search_kernel<D><<<dim3(tiles, static_cast<unsigned>(p.heads)), 256, 0, stream>>>(p, ws);
  }
  decide_kernel<D><<<warp_grid, kWarps * 32, 0, stream>>>(p, ws);
  plan_kernel<<<static_cast<unsigned>(p.heads), kScanThreads, 0, stream>>>(p, ws);
  apply_kernel<D><<<warp_grid, kWarps * 32, 0, stream>>>(p, ws);
  return cudaGetLastError();
}

}  // namespace

size_t tempcache_workspace_bytes(const TempCacheMergeParams& p) { return split_workspace(p, nullptr, nullptr); }

cudaError_t tempcache_commit_frame(const TempCacheMergeParams& p, cudaStream_t stream) {
  if (!valid_common(p) || p.tokens < 0 || p.tokens > p.max_tokens || !p.new_k || !p.new_v) return cudaErrorInvalidValue;
  if (p.new_row_stride % 8 != 0 || p.new_head_stride % 8 != 0 ||
      (reinterpret_cast<uintptr_t>(p.new_k) | reinterpret_cast<uintptr_t>(p.new_v)) % 16)
    return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  Workspace ws;
  split_workspace(p, static_cast<char*>(p.workspace), &ws);
  return p.head_dim == 64 ? commit_frame_d<64>(p, ws, stream) : commit_frame_d<128>(p, ws, stream);
}

cudaError_t tempcache_evict_window(const TempCacheMergeParams& p, cudaStream_t stream) {
  if (!valid_common(p)) return cudaErrorInvalidValue;
  Workspace ws;
  split_workspace(p, static_cast<char*>(p.workspace), &ws);
  evict_plan_kernel<<<static_cast<unsigned>(p.heads), kScanThreads, 0, stream>>>(p, ws);
  const int d = static_cast<int>(p.head_dim);
  const int ann_cols = p.ann == TempCacheAnn::lsh ? p.lsh_tables : d / 16 + 1;
  const dim3 grid(static_cast<unsigned>(3 * d / 8 + 5 + ann_cols), static_cast<unsigned>(p.heads));
  if (d == 64)
    compact_kernel<64><<<grid, kCompactTile, 0, stream>>>(p, ws);
  else
    compact_kernel<128><<<grid, kCompactTile, 0, stream>>>(p, ws);
  return cudaGetLastError();
}

cudaError_t tempcache_finalize(const TempCacheMergeParams& p, cudaStream_t stream) {
  if (!valid_common(p) || p.staged_tokens < 0) return cudaErrorInvalidValue;
  finalize_kernel<<<static_cast<unsigned>(p.heads), 256, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace fastar::cuda
