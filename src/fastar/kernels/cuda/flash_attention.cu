// FlashAttention-2 style forward kernel (bf16 in/out, fp32 accumulation); see flash_attention.h.
//
// One CTA per (query tile of BQ = 64 or 128 rows, head); BQ / 16 warps, each owning 16 query
// rows for the whole pass. The warp keeps its Q fragments, its O accumulator (16 x head_dim fp32)
// and the running max / sum of its rows in registers. Keys are visited in tiles of 64: K, V (and
// the bias row) of the next tile are copied into shared memory with cp.async while the current
// one is computed (double buffering). S = Q K^T and O += P V use mma.sync m16n8k16 bf16 with
// ldmatrix fragments (V through ldmatrix.trans); P never leaves registers (the S accumulator
// layout is the A-operand layout of the second mma). The softmax runs in log2 units:
// s' = s * scale * log2(e) (+ bias * log2(e)), p = exp2(s' - max').
//
// Shared-memory tiles are [rows][head_dim] bf16 with an XOR swizzle of the 16-byte chunks
// (chunk ^ (row & 7)), so that cp.async stores and ldmatrix reads of 8 rows are conflict-free.
//
// Variants are template flags of the same kernel: HAS_BIAS, BLOCK_SPARSE, CAUSAL_BLOCK; the
// runtime flags are mapped onto them in attention_forward_bf16 only.
#include "fastar/kernels/cuda/flash_attention.h"

#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "fastar/kernels/cuda/flash_attention_sm90.h"

namespace fastar::cuda {

namespace {

constexpr int kBlockN = 64;  // keys per tile
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

using bf16 = __nv_bfloat16;

// ---- PTX wrappers -------------------------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte async copy global -> shared; writes zeros when !valid (src is not read then).
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}

__device__ __forceinline__ void cp_async_4(uint32_t dst, const void* src, bool valid) {
  const int src_bytes = valid ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}

// c += a * b, a 16x16 (row), b 16x8 (col), bf16 inputs, fp32 accumulators.
__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low 16 bits) = lo
  return *reinterpret_cast<uint32_t*>(&v);
}

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Element offset of (row, 16-byte chunk) in a swizzled [rows][HD] bf16 tile.
template <int HD>
__device__ __forceinline__ int swizzle(int row, int chunk) {
  return row * HD + ((chunk ^ (row & 7)) << 3);
}

template <int HD, int BQ, bool HAS_BIAS>
constexpr int smem_bytes() {
  return (BQ * HD + 4 * kBlockN * HD) * static_cast<int>(sizeof(bf16)) +
         (HAS_BIAS ? 2 * kBlockN * static_cast<int>(sizeof(float)) : 0);
}

// ---- the kernel -----------------------------------------------------------------------------------

template <int HD, int BQ, bool HAS_BIAS, bool BLOCK_SPARSE, bool CAUSAL_BLOCK>
__global__ void __launch_bounds__(BQ / 16 * 32, BQ == 64 ? 2 : 1) flash_attention_fwd_kernel(const AttentionParams p) {
  constexpr int kWarps = BQ / 16;
  constexpr int kThreads = kWarps * 32;
  constexpr int kChunks = HD / 8;          // 16-byte chunks per row
  constexpr int kKSteps = HD / 16;         // k-steps of S = Q K^T
  constexpr int kSTiles = kBlockN / 8;     // n-tiles of S (8 keys each)
  constexpr int kOTiles = HD / 8;          // n-tiles of O (8 dims each)
  constexpr int kTileElems = kBlockN * HD;

  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);
  bf16* sK = sQ + BQ * HD;             // [2][kBlockN][HD]
  bf16* sV = sK + 2 * kTileElems;      // [2][kBlockN][HD]
  float* sBias = reinterpret_cast<float*>(sV + 2 * kTileElems);  // [2][kBlockN] (HAS_BIAS only)

  const int tid = threadIdx.x;
  const int warp = tid >> 5, lane = tid & 31;
  const int q_tile = blockIdx.x, head = blockIdx.y;
  const int q_len = static_cast<int>(p.q_len), kv_len = static_cast<int>(p.kv_len);
  const int q0 = q_tile * BQ;

  const bf16* qg = static_cast<const bf16*>(p.q) + head * p.q_head_stride;
  const bf16* kg = static_cast<const bf16*>(p.k) + head * p.k_head_stride;
  const bf16* vg = static_cast<const bf16*>(p.v) + head * p.v_head_stride;
  bf16* og = static_cast<bf16*>(p.o) + head * p.o_head_stride;
  const float* bias_g = nullptr;
  if constexpr (HAS_BIAS) bias_g = p.key_bias + head * p.key_bias_head_stride;

  // Keys at or past tile_limit are invisible to every row of this tile; keys below min_limit are
  // visible to every row (only kv_len and the block-causal mask limit rows).
  int tile_limit = kv_len, min_limit = kv_len;
  int64_t causal_offset = 0, causal_block = 1;
  if constexpr (CAUSAL_BLOCK) {
    causal_offset = p.kv_len - p.q_len;
    causal_block = p.causal_block;
    const int64_t last = (q0 + BQ < q_len ? q0 + BQ : q_len) - 1;
    tile_limit = static_cast<int>(min64(kv_len, ((last + causal_offset) / causal_block + 1) * causal_block));
    min_limit = static_cast<int>(min64(kv_len, ((q0 + causal_offset) / causal_block + 1) * causal_block));
  }

  // The sequence of key tiles: 0..n_tiles-1, tile t starting at key tile_start(t).
  int n_tiles = 0, entry_begin = 0, tiles_per_block = 1;
  if constexpr (BLOCK_SPARSE) {
    tiles_per_block = static_cast<int>(p.block_k / kBlockN);
    entry_begin = p.block_offsets[q_tile];
    n_tiles = (p.block_offsets[q_tile + 1] - entry_begin) * tiles_per_block;
  } else {
    n_tiles = (tile_limit + kBlockN - 1) / kBlockN;
  }
  auto tile_start = [&](int t) -> int64_t {
    if constexpr (BLOCK_SPARSE) {
      const int e = t / tiles_per_block, sub = t - e * tiles_per_block;
      const int64_t kb = p.block_index[entry_begin + e];
      return kb < 0 ? int64_t{tile_limit} : kb * p.block_k + sub * kBlockN;  // negative = invalid
    } else {
      return int64_t{t} * kBlockN;
    }
  };
  auto next_tile = [&](int t) -> int {  // first tile >= t with some visible key
    if constexpr (BLOCK_SPARSE) {
      while (t < n_tiles && tile_start(t) >= tile_limit) ++t;
    }
    return t;
  };

  auto load_kv = [&](int j0, int buf) {
    const uint32_t k_base = smem_u32(sK + buf * kTileElems), v_base = smem_u32(sV + buf * kTileElems);
#pragma unroll
    for (int it = 0; it < kBlockN * kChunks / kThreads; ++it) {
      const int c = tid + it * kThreads;
      const int row = c / kChunks, chunk = c % kChunks;
      const int j = j0 + row;
      const bool valid = j < kv_len;
      const int64_t jj = valid ? j : 0;
      const uint32_t off = static_cast<uint32_t>(swizzle<HD>(row, chunk) * sizeof(bf16));
      cp_async_16(k_base + off, kg + jj * p.k_row_stride + chunk * 8, valid);
      cp_async_16(v_base + off, vg + jj * p.v_row_stride + chunk * 8, valid);
    }
    if constexpr (HAS_BIAS) {
      if (tid < kBlockN) {
        const int j = j0 + tid;
        const bool valid = j < kv_len;
        cp_async_4(smem_u32(sBias + buf * kBlockN + tid), bias_g + (valid ? j : 0), valid);
      }
    }
  };

  // ---- prologue: Q tile and the first two key tiles in flight ----
#pragma unroll
  for (int it = 0; it < BQ * kChunks / kThreads; ++it) {
    const int c = tid + it * kThreads;
    const int row = c / kChunks, chunk = c % kChunks;
    const int i = q0 + row;
    const bool valid = i < q_len;
    const int64_t ii = valid ? i : 0;
    cp_async_16(smem_u32(sQ + swizzle<HD>(row, chunk)), qg + ii * p.q_row_stride + chunk * 8, valid);
  }
  int t = next_tile(0);
  if (t < n_tiles) load_kv(static_cast<int>(tile_start(t)), 0);
  cp_async_commit();
  int t_next = t < n_tiles ? next_tile(t + 1) : n_tiles;
  if (t_next < n_tiles) load_kv(static_cast<int>(tile_start(t_next)), 1);
  cp_async_commit();
  cp_async_wait<1>();
  __syncthreads();

  // Q fragments of this warp's 16 rows (A operand, row-major).
  uint32_t q_frag[kKSteps][4];
  {
    const int row = warp * 16 + (lane & 15);
#pragma unroll
    for (int ks = 0; ks < kKSteps; ++ks) ldmatrix_x4(q_frag[ks], smem_u32(sQ + swizzle<HD>(row, ks * 2 + (lane >> 4))));
  }

  // This thread's two rows: r = 0 -> warp*16 + lane/4, r = 1 -> +8.
  const int row_in_tile = warp * 16 + (lane >> 2);
  int row_limit[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    row_limit[r] = kv_len;
    if constexpr (CAUSAL_BLOCK) {
      const int64_t i = q0 + row_in_tile + 8 * r;
      row_limit[r] = static_cast<int>(min64(kv_len, ((i + causal_offset) / causal_block + 1) * causal_block));
    }
  }

  const float scale_log2 = p.scale * kLog2e;
  float o_acc[kOTiles][4];
#pragma unroll
  for (int n = 0; n < kOTiles; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) o_acc[n][e] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY};  // log2 units
  float row_sum[2] = {0.0f, 0.0f};            // this thread's partial sums (reduced over the quad at the end)

  int buf = 0;
  while (t < n_tiles) {
    const int j0 = static_cast<int>(tile_start(t));
    const bf16* k_tile = sK + buf * kTileElems;
    const bf16* v_tile = sV + buf * kTileElems;

    // ---- S = Q K^T (16 x 64 per warp) ----
    float s[kSTiles][4];
#pragma unroll
    for (int n = 0; n < kSTiles; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[n][e] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < kKSteps; ++ks) {
#pragma unroll
      for (int np = 0; np < kSTiles / 2; ++np) {
        uint32_t b[4];
        const int key = np * 16 + (lane & 7) + ((lane >> 4) << 3);
        ldmatrix_x4(b, smem_u32(k_tile + swizzle<HD>(key, ks * 2 + ((lane >> 3) & 1))));
        mma_bf16_16816(s[2 * np], q_frag[ks], b[0], b[1]);
        mma_bf16_16816(s[2 * np + 1], q_frag[ks], b[2], b[3]);
      }
    }

    // ---- online softmax (log2 units) ----
    const bool need_mask = (j0 + kBlockN > kv_len) || (CAUSAL_BLOCK && j0 + kBlockN > min_limit);
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < kSTiles; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = n * 8 + 2 * (lane & 3) + (e & 1);
        float x = s[n][e] * scale_log2;
        if constexpr (HAS_BIAS) x = fmaf(sBias[buf * kBlockN + col], kLog2e, x);
        if (need_mask && j0 + col >= row_limit[e >> 1]) x = -INFINITY;
        s[n][e] = x;
        tile_max[e >> 1] = fmaxf(tile_max[e >> 1], x);
      }
    }
    float base[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
      const float new_max = fmaxf(row_max[r], tile_max[r]);
      base[r] = new_max == -INFINITY ? 0.0f : new_max;  // all -inf so far: keep exp2 away from NaN
      const float correction = exp2f(row_max[r] - base[r]);
      row_max[r] = new_max;
      row_sum[r] *= correction;
#pragma unroll
      for (int n = 0; n < kOTiles; ++n) {
        o_acc[n][2 * r] *= correction;
        o_acc[n][2 * r + 1] *= correction;
      }
    }
#pragma unroll
    for (int n = 0; n < kSTiles; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float pr = exp2f(s[n][e] - base[e >> 1]);
        s[n][e] = pr;
        row_sum[e >> 1] += pr;
      }
    }

    // ---- O += P V ----
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      uint32_t a[4];
      a[0] = pack_bf16x2(s[2 * kk][0], s[2 * kk][1]);
      a[1] = pack_bf16x2(s[2 * kk][2], s[2 * kk][3]);
      a[2] = pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      a[3] = pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
      const int key = kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
#pragma unroll
      for (int dp = 0; dp < HD / 16; ++dp) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, smem_u32(v_tile + swizzle<HD>(key, dp * 2 + (lane >> 4))));
        mma_bf16_16816(o_acc[2 * dp], a, b[0], b[1]);
        mma_bf16_16816(o_acc[2 * dp + 1], a, b[2], b[3]);
      }
    }

    __syncthreads();  // every warp is done with buffer `buf`
    t = t_next;
    if (t >= n_tiles) break;
    t_next = next_tile(t + 1);
    if (t_next < n_tiles) load_kv(static_cast<int>(tile_start(t_next)), buf);
    cp_async_commit();
    buf ^= 1;
    cp_async_wait<1>();  // tile t (in the other buffer) has landed
    __syncthreads();
  }
  cp_async_wait<0>();

  // ---- epilogue: normalize, write lse, stage O through this warp's rows of sQ, store ----
  float inv_sum[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    row_sum[r] += __shfl_xor_sync(0xffffffffu, row_sum[r], 1);
    row_sum[r] += __shfl_xor_sync(0xffffffffu, row_sum[r], 2);
    inv_sum[r] = row_sum[r] > 0.0f ? 1.0f / row_sum[r] : 0.0f;
    const int i = q0 + row_in_tile + 8 * r;
    if (p.lse != nullptr && (lane & 3) == 0 && i < q_len)
      p.lse[head * p.q_len + i] = row_sum[r] > 0.0f ? (row_max[r] + log2f(row_sum[r])) * kLn2 : -INFINITY;
  }
#pragma unroll
  for (int n = 0; n < kOTiles; ++n) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = row_in_tile + 8 * r;
      *reinterpret_cast<uint32_t*>(sQ + swizzle<HD>(row, n) + 2 * (lane & 3)) =
          pack_bf16x2(o_acc[n][2 * r] * inv_sum[r], o_acc[n][2 * r + 1] * inv_sum[r]);
    }
  }
  __syncwarp();
#pragma unroll
  for (int it = 0; it < 16 * kChunks / 32; ++it) {
    const int c = lane + it * 32;
    const int row = warp * 16 + c / kChunks, chunk = c % kChunks;
    const int i = q0 + row;
    if (i < q_len)
      *reinterpret_cast<uint4*>(og + int64_t{i} * p.o_row_stride + chunk * 8) =
          *reinterpret_cast<const uint4*>(sQ + swizzle<HD>(row, chunk));
  }
}

template <int HD, int BQ, bool HAS_BIAS, bool BLOCK_SPARSE, bool CAUSAL_BLOCK>
cudaError_t launch(const AttentionParams& p, cudaStream_t stream) {
  auto kernel = flash_attention_fwd_kernel<HD, BQ, HAS_BIAS, BLOCK_SPARSE, CAUSAL_BLOCK>;
  constexpr int kSmem = smem_bytes<HD, BQ, HAS_BIAS>();
  static const cudaError_t attr_status =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (attr_status != cudaSuccess) return attr_status;
  const dim3 grid(static_cast<unsigned>((p.q_len + BQ - 1) / BQ), static_cast<unsigned>(p.num_heads));
  kernel<<<grid, BQ / 16 * 32, kSmem, stream>>>(p);
  return cudaGetLastError();
}

// Calls f(std::integral_constant<bool, flag>{}).
template <class F>
cudaError_t with_bool(bool flag, F&& f) {
  return flag ? f(std::true_type{}) : f(std::false_type{});
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

}  // namespace

cudaError_t attention_forward_bf16(const AttentionParams& p, cudaStream_t stream) {
  constexpr int64_t kMaxLen = int64_t{1} << 30;
  if (!p.q || !p.k || !p.v || !p.o) return cudaErrorInvalidValue;
  if (p.head_dim != 64 && p.head_dim != 128) return cudaErrorInvalidValue;
  if (p.num_heads < 1 || p.num_heads > 65535) return cudaErrorInvalidValue;
  if (p.q_len < 0 || p.kv_len < 0 || p.q_len > kMaxLen || p.kv_len > kMaxLen) return cudaErrorInvalidValue;
  if (!aligned16(p.q) || !aligned16(p.k) || !aligned16(p.v) || !aligned16(p.o)) return cudaErrorInvalidValue;
  for (int64_t stride : {p.q_row_stride, p.q_head_stride, p.k_row_stride, p.k_head_stride, p.v_row_stride,
                         p.v_head_stride, p.o_row_stride, p.o_head_stride})
    if (stride % 8 != 0) return cudaErrorInvalidValue;
  if (p.key_bias && (reinterpret_cast<uintptr_t>(p.key_bias) & 3u) != 0) return cudaErrorInvalidValue;
  const bool has_bias = p.key_bias != nullptr;
  const bool block_sparse = p.block_offsets != nullptr;
  const bool causal = p.causal_block > 0;
  if (p.causal_block < 0 || (causal && p.q_len > p.kv_len)) return cudaErrorInvalidValue;
  if (block_sparse &&
      (!p.block_index || (p.block_q != 64 && p.block_q != 128) || p.block_k <= 0 || p.block_k % kBlockN != 0))
    return cudaErrorInvalidValue;
  if (p.q_len == 0) return cudaSuccess;

  // Hopper: the wgmma/TMA kernel (flash_attention_sm90.cu) for what it accepts; FASTAR_ATTENTION=fa2
  // forces this file's mma.sync kernel (for comparisons). cudaErrorNotSupported = the driver refused
  // the TMA descriptors: fall through.
  const char* forced = std::getenv("FASTAR_ATTENTION");
  if ((forced == nullptr || std::strcmp(forced, "fa2") != 0) && attention_sm90_accepts(p)) {
    const cudaError_t status = attention_forward_bf16_sm90(p, stream);
    if (status != cudaErrorNotSupported) return status;
  }

  // The only place runtime flags become template instances. Dense runs use 64-row query tiles;
  // block-sparse runs use the mask's block_q (64 or 128) as the query tile.
  const bool wide_tile = block_sparse && p.block_q == 128;
  return with_bool(p.head_dim == 128, [&](auto hd128) {
    return with_bool(wide_tile, [&](auto wide) {
      return with_bool(has_bias, [&](auto bias) {
        return with_bool(block_sparse, [&](auto sparse) {
          return with_bool(causal, [&](auto causal_c) -> cudaError_t {
            constexpr bool kSparse = std::decay_t<decltype(sparse)>::value;
            constexpr bool kWide = std::decay_t<decltype(wide)>::value;
            if constexpr (kWide && !kSparse) {
              return cudaErrorInvalidValue;  // unreachable: wide tiles only for block-sparse
            } else {
              return launch<std::decay_t<decltype(hd128)>::value ? 128 : 64, kWide ? 128 : 64,
                            std::decay_t<decltype(bias)>::value, kSparse, std::decay_t<decltype(causal_c)>::value>(
                  p, stream);
            }
          });
        });
      });
    });
  });
}

}  // namespace fastar::cuda
