// Hopper flash-attention forward (sm_90a): wgmma + TMA + mbarriers; see flash_attention_sm90.h and
// docs/attention-sm90.md.
//
// One CTA per (128 query rows, head), 384 threads = 3 warpgroups:
//   warpgroup 0  producer: one warp (one elected lane) streams K and V tiles of 128 keys into a
//                2-stage shared-memory ring with TMA (cp.async.bulk.tensor, 128-byte swizzle),
//                signalling `full` mbarriers (complete_tx); with a key bias the whole warp also
//                stages the tile's bias row (pre-multiplied by log2 e) and arrives on `full`.
//   warpgroups 1, 2  consumers: each owns 64 query rows. Per key tile:
//                S = Q Kᵀ    wgmma m64n128k16, A = Q and B = K both from shared memory (K-major);
//                online softmax on the S accumulator in registers (log2 units, ex2.approx);
//                O += P V    wgmma m64n{HD}k16, A = P from registers (bf16, the accumulator layout
//                            is the A-fragment layout), B = V from shared memory (MN-major,
//                            imm-trans-b = 1);
//                then one arrive per warp on the stage's `empty` mbarrier.
// No intra-warpgroup overlap of softmax and GEMMs: the two consumer warpgroups overlap each other.
// setmaxnreg moves registers from the producer (24) to the consumers (240).
//
// Shared-memory tiles are what TMA writes with CU_TENSOR_MAP_SWIZZLE_128B for a box of
// {64 dims, 128 rows}: [rows][64] bf16, 128-byte rows, the 16-byte chunk c of row r stored at chunk
// c ^ (r % 8); a head_dim of 128 is two such boxes ("halves", dims 0-63 and 64-127), one after the
// other. Every tile starts on a 1024-byte boundary, so the wgmma descriptors use base offset 0.
//
// Variants are template flags: HAS_BIAS (per-key additive logit bias), BLOCK_SPARSE (CSR list of
// key blocks per 128-row query block). The runtime flags become template instances only in
// attention_forward_bf16_sm90.
#include "fastar/kernels/cuda/flash_attention_sm90.h"

#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

namespace fastar::cuda {

namespace {

constexpr int kBlockM = 128;             // query rows per CTA (two consumer warpgroups x 64)
constexpr int kBlockN = 128;             // keys per tile
constexpr int kStages = 2;               // K/V ring depth
constexpr int kThreads = 384;            // producer warpgroup + 2 consumer warpgroups
constexpr int kConsumerWarps = 8;        // arrivals on an `empty` barrier per use
constexpr int kHalfCols = 64;            // bf16 columns per 128-byte swizzle row (one TMA box width)
constexpr int kProducerRegs = 24;        // setmaxnreg targets: 128·24 + 256·240 = 64512 <= 65536
constexpr int kConsumerRegs = 240;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr unsigned long long kHangNs = 4000000000ull;  // an mbarrier wait this long is a bug: trap

// Shared-memory plan (bytes from a 1024-aligned base).
template <int HD>
struct Smem {
  static constexpr int kHalves = HD / kHalfCols;
  static constexpr int kHalfBytes = kBlockN * kHalfCols * 2;  // one [128][64] bf16 box = 16 KiB
  static constexpr int kQBytes = kHalves * kHalfBytes;        // Q: [halves][128 rows][64]
  static constexpr int kTileBytes = kHalves * kHalfBytes;     // one K or V tile: [halves][128 keys][64]
  static constexpr int kQ = 0;
  static constexpr int kK = kQ + kQBytes;                     // [stages] K tiles
  static constexpr int kV = kK + kStages * kTileBytes;        // [stages] V tiles
  static constexpr int kBias = kV + kStages * kTileBytes;     // [stages][128] float
  static constexpr int kBars = kBias + kStages * kBlockN * 4; // mbarriers (8 bytes each)
  static constexpr int kBarQ = 0, kBarFullK = 1, kBarFullV = kBarFullK + kStages, kBarEmpty = kBarFullV + kStages;
  static constexpr int kNumBars = kBarEmpty + kStages;
  static constexpr int kBytes = kBars + kNumBars * 8;
  static constexpr int kAlloc = kBytes + 1024;  // slack to align the dynamic base up to 1024
  static_assert(kHalfBytes % 1024 == 0 && kK % 1024 == 0 && kV % 1024 == 0, "tiles must be 1024-byte aligned");
  static_assert(kAlloc <= 227 * 1024, "shared memory plan exceeds the sm_90 per-block limit");
};

struct TensorMaps {
  CUtensorMap q, k, v;  // dims {head_dim, rows, heads}, box {64, 128, 1}, 128-byte swizzle
};

using bf16 = __nv_bfloat16;

// ---- PTX wrappers (sm_90a) -----------------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

// Makes the initialised barriers visible to the other threads and to the async proxy (TMA).
__device__ __forceinline__ void mbar_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }

__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}

// One arrival that also raises the barrier's expected transaction count by `bytes`.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}

__device__ __forceinline__ bool mbar_try_wait(uint32_t bar, uint32_t parity) {
  uint32_t done;
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
      "selp.u32 %0, 1, 0, p;\n"
      "}\n"
      : "=r"(done)
      : "r"(bar), "r"(parity)
      : "memory");
  return done != 0;
}

__device__ __forceinline__ uint64_t global_timer_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
  return t;
}

// Waits until the phase of parity `parity` has completed. A wait of seconds means a protocol bug
// (a lost arrival or a wrong transaction count): trap instead of hanging the GPU.
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  if (mbar_try_wait(bar, parity)) return;
  const uint64_t start = global_timer_ns();
  while (!mbar_try_wait(bar, parity)) {
    // No printf here: a call inside the consumer loop makes ptxas serialise every wgmma (C7510).
    if (global_timer_ns() - start > kHangNs) __trap();
  }
}

// TMA: the box at coordinates {c0, c1, c2} of `map` -> shared memory at dst; completes `bytes` on bar.
__device__ __forceinline__ void tma_load_3d(uint32_t dst, const CUtensorMap* map, int c0, int c1, int c2, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(
          dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(bar)
      : "memory");
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

// Pins accumulator registers at this point of the instruction stream: the compiler may neither
// read them earlier (before wgmma_wait) nor write them later (after the next wgmma issue).
template <int N>
__device__ __forceinline__ void fence_registers(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}

// wgmma shared-memory matrix descriptor, 128-byte swizzle (PTX ISA "Matrix Descriptor Format"):
// bits 0-13 start address >> 4, 16-29 leading-dimension byte offset >> 4, 32-45 stride-dimension
// byte offset >> 4, 49-51 base offset (0: every tile is 1024-byte aligned), 62-63 swizzle (1 = 128B).
__device__ __forceinline__ uint64_t smem_desc_sw128(uint32_t addr, uint32_t lbo_bytes, uint32_t sbo_bytes) {
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | (static_cast<uint64_t>((lbo_bytes & 0x3FFFF) >> 4) << 16) |
         (static_cast<uint64_t>((sbo_bytes & 0x3FFFF) >> 4) << 32) | (uint64_t{1} << 62);
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low 16 bits) = lo
  return *reinterpret_cast<uint32_t*>(&v);
}

__device__ __forceinline__ float fast_exp2(float x) {  // ex2.approx: exp2(-inf) = +0
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// d[64] = (accumulate ? d : 0) + A·B, m64n128k16: A (64 x 16) and B (128 x 16) from shared memory,
// both K-major (no transpose), bf16 in, fp32 accumulate.
__device__ __forceinline__ void wgmma_ss_m64n128k16(float (&d)[64], uint64_t desc_a, uint64_t desc_b, int accumulate) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "%64, %65, p, 1, 1, 0, 0;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}

// d[64] = (accumulate ? d : 0) + A·B, m64n128k16: A (64 x 16) from registers (a[4], the m16n8k16
// A-fragment layout per warp), B (16 x 128) from shared memory, MN-major (imm-trans-b = 1).
__device__ __forceinline__ void wgmma_rs_m64n128k16_bt(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b,
                                                      int accumulate) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "{%64, %65, %66, %67}, %68, p, 1, 1, 1;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate));
}

// d[32] = (accumulate ? d : 0) + A·B, m64n64k16: A (64 x 16) from registers (a[4], the m16n8k16
// A-fragment layout per warp), B (16 x 64) from shared memory, MN-major (imm-trans-b = 1).
__device__ __forceinline__ void wgmma_rs_m64n64k16_bt(float (&d)[32], const uint32_t (&a)[4], uint64_t desc_b,
                                                      int accumulate) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
      "{%32, %33, %34, %35}, %36, p, 1, 1, 1;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate));
}

__device__ __forceinline__ void fence_registers(uint32_t (&r)[4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) asm volatile("" : "+r"(r[i])::"memory");
}

// ---- the kernel -----------------------------------------------------------------------------------

// The key tiles one CTA visits, in order: tile t = keys [start(t), start(t) + 128) ∩ [0, kv_len).
// The producer and the consumers walk the same sequence (next() skips tiles with no visible key).
template <bool BLOCK_SPARSE>
struct KeyTiles {
  int count = 0;
  int entry_begin = 0;
  int tiles_per_block = 1;
  int kv_len = 0;
  const int32_t* index = nullptr;
  int64_t block_k = 0;

  __device__ KeyTiles(const AttentionParams& p, int q_block) : kv_len(static_cast<int>(p.kv_len)) {
    if constexpr (BLOCK_SPARSE) {
      tiles_per_block = static_cast<int>(p.block_k / kBlockN);
      entry_begin = p.block_offsets[q_block];
      count = (p.block_offsets[q_block + 1] - entry_begin) * tiles_per_block;
      index = p.block_index;
      block_k = p.block_k;
    } else {
      count = (kv_len + kBlockN - 1) / kBlockN;
    }
  }
  __device__ int64_t start(int t) const {
    if constexpr (BLOCK_SPARSE) {
      const int e = t / tiles_per_block, sub = t - e * tiles_per_block;
      const int64_t kb = index[entry_begin + e];
      return kb < 0 ? int64_t{kv_len} : kb * block_k + int64_t{sub} * kBlockN;  // negative entry: skipped
    } else {
      return int64_t{t} * kBlockN;
    }
  }
  __device__ int next(int t) const {
    if constexpr (BLOCK_SPARSE) {
      while (t < count && start(t) >= kv_len) ++t;
    }
    return t;
  }
};

template <int HD, bool HAS_BIAS, bool BLOCK_SPARSE>
__global__ void __launch_bounds__(kThreads, 1)
    flash_attention_sm90_kernel(const __grid_constant__ TensorMaps maps, const AttentionParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using S = Smem<HD>;
  constexpr int kOTiles = HD / 8;  // 8-column tiles of the O accumulator
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  const uint32_t raw = smem_u32(smem_raw);
  const uint32_t base = (raw + 1023u) & ~1023u;
  unsigned char* const base_ptr = smem_raw + (base - raw);
  const auto bar = [base](int i) { return base + static_cast<uint32_t>(S::kBars + 8 * i); };

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int warpgroup = warp >> 2;
  const int q_block = blockIdx.x, head = blockIdx.y;
  const int q0 = q_block * kBlockM;
  const int kv_len = static_cast<int>(p.kv_len);

  if (threadIdx.x == 0) {
    mbar_init(bar(S::kBarQ), 1);
#pragma unroll
    for (int s = 0; s < kStages; ++s) {
      mbar_init(bar(S::kBarFullK + s), HAS_BIAS ? 1 + 32 : 1);  // TMA arrival (+ one per producer lane)
      mbar_init(bar(S::kBarFullV + s), 1);
      mbar_init(bar(S::kBarEmpty + s), kConsumerWarps);
    }
    mbar_init_fence();
  }
  __syncthreads();

  const KeyTiles<BLOCK_SPARSE> tiles(p, q_block);

  if (warpgroup == 0) {
    // ================= producer =================
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kProducerRegs));
    if (warp != 0) return;
    if (lane == 0) {
      mbar_arrive_expect_tx(bar(S::kBarQ), S::kQBytes);
#pragma unroll
      for (int h = 0; h < S::kHalves; ++h)
        tma_load_3d(base + S::kQ + h * S::kHalfBytes, &maps.q, h * kHalfCols, q0, head, bar(S::kBarQ));
    }
    const float* bias_row = nullptr;
    if constexpr (HAS_BIAS) bias_row = p.key_bias + head * p.key_bias_head_stride;
    int it = 0;
    for (int t = tiles.next(0); t < tiles.count; t = tiles.next(t + 1), ++it) {
      const int s = it % kStages;
      const uint32_t use = static_cast<uint32_t>(it / kStages);
      mbar_wait(bar(S::kBarEmpty + s), (use & 1u) ^ 1u);  // first use: passes at once
      const int j0 = static_cast<int>(tiles.start(t));
      if (lane == 0) {
        const uint32_t k_tile = base + S::kK + s * S::kTileBytes, v_tile = base + S::kV + s * S::kTileBytes;
        mbar_arrive_expect_tx(bar(S::kBarFullK + s), S::kTileBytes);
#pragma unroll
        for (int h = 0; h < S::kHalves; ++h)
          tma_load_3d(k_tile + h * S::kHalfBytes, &maps.k, h * kHalfCols, j0, head, bar(S::kBarFullK + s));
        mbar_arrive_expect_tx(bar(S::kBarFullV + s), S::kTileBytes);
#pragma unroll
        for (int h = 0; h < S::kHalves; ++h)
          tma_load_3d(v_tile + h * S::kHalfBytes, &maps.v, h * kHalfCols, j0, head, bar(S::kBarFullV + s));
      }
      if constexpr (HAS_BIAS) {
        float vals[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int j = j0 + lane * 4 + e;
          vals[e] = j < kv_len ? bias_row[j] * kLog2e : 0.0f;  // keys past kv_len are masked anyway
        }
        float* dst = reinterpret_cast<float*>(base_ptr + S::kBias + s * kBlockN * 4) + lane * 4;
        *reinterpret_cast<float4*>(dst) = make_float4(vals[0], vals[1], vals[2], vals[3]);
        mbar_arrive(bar(S::kBarFullK + s));  // release: orders this lane's bias stores
      }
    }
  } else {
    // ================= consumers =================
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kConsumerRegs));
    const int consumer = warpgroup - 1;  // rows consumer·64 .. +63 of the CTA tile
    const int warp_in_group = warp & 3;  // its 16 rows: warp_in_group·16 .. +15 of those
    const float scale_log2 = p.scale * kLog2e;
    // A = this warpgroup's 64 rows of Q (half 0; half h at + h·kHalfBytes).
    const uint32_t q_rows = base + S::kQ + consumer * 64 * 128;

    float o[HD / 2];  // O accumulator: o[4c + 2r + v] = (row r·8 + lane/4, col 8c + 2·(lane%4) + v)
#pragma unroll
    for (int i = 0; i < HD / 2; ++i) o[i] = 0.0f;
    float row_max[2] = {-INFINITY, -INFINITY};  // log2 units
    float row_sum[2] = {0.0f, 0.0f};            // this thread's partial sums (quad-reduced at the end)

    mbar_wait(bar(S::kBarQ), 0);
    int it = 0;
    for (int t = tiles.next(0); t < tiles.count; t = tiles.next(t + 1), ++it) {
      const int s = it % kStages;
      const uint32_t parity = static_cast<uint32_t>(it / kStages) & 1u;
      const int j0 = static_cast<int>(tiles.start(t));
      const uint32_t k_tile = base + S::kK + s * S::kTileBytes, v_tile = base + S::kV + s * S::kTileBytes;

      // ---- S = Q Kᵀ (64 x 128 per warpgroup), k-steps of 16 dims ----
      float sc[64];  // sc[4c + 2r + v] = (row r·8 + lane/4, key 8c + 2·(lane%4) + v)
      mbar_wait(bar(S::kBarFullK + s), parity);
      wgmma_fence();
#pragma unroll
      for (int kc = 0; kc < HD / 16; ++kc) {
        const uint32_t off = (kc / 4) * S::kHalfBytes + (kc % 4) * 32;  // 16 dims = 32 bytes along a row
        wgmma_ss_m64n128k16(sc, smem_desc_sw128(q_rows + off, 16, 1024), smem_desc_sw128(k_tile + off, 16, 1024),
                            kc > 0 ? 1 : 0);
      }
      wgmma_commit();
      wgmma_wait<0>();
      fence_registers(sc);

      // ---- online softmax (log2 units) ----
      const bool need_mask = j0 + kBlockN > kv_len;
      const float* bias_tile = reinterpret_cast<const float*>(base_ptr + S::kBias + s * kBlockN * 4);
      float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int c = 0; c < kBlockN / 8; ++c) {
        const int col = 8 * c + 2 * (lane & 3);
        float2 b = make_float2(0.0f, 0.0f);
        if constexpr (HAS_BIAS) b = *reinterpret_cast<const float2*>(bias_tile + col);
#pragma unroll
        for (int r = 0; r < 2; ++r) {
#pragma unroll
          for (int v = 0; v < 2; ++v) {
            float x = fmaf(sc[4 * c + 2 * r + v], scale_log2, v ? b.y : b.x);
            if (need_mask && j0 + col + v >= kv_len) x = -INFINITY;
            sc[4 * c + 2 * r + v] = x;
            tile_max[r] = fmaxf(tile_max[r], x);
          }
        }
      }
      float shift[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
        tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
        const float new_max = fmaxf(row_max[r], tile_max[r]);
        shift[r] = new_max == -INFINITY ? 0.0f : new_max;  // nothing visible yet: keep exp2 away from NaN
        const float correction = fast_exp2(row_max[r] - shift[r]);
        row_max[r] = new_max;
        row_sum[r] *= correction;
#pragma unroll
        for (int c = 0; c < kOTiles; ++c) {
          o[4 * c + 2 * r] *= correction;
          o[4 * c + 2 * r + 1] *= correction;
        }
      }
      // P = exp2(s - max) as the bf16 A operand of O += P V: keys 16kk..16kk+15 are S tiles 2kk, 2kk+1.
      uint32_t pa[kBlockN / 16][4];
#pragma unroll
      for (int c = 0; c < kBlockN / 8; ++c) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float pr = fast_exp2(sc[4 * c + i] - shift[i >> 1]);
          sc[4 * c + i] = pr;
          row_sum[i >> 1] += pr;
        }
      }
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) {
        pa[kk][0] = pack_bf16x2(sc[8 * kk + 0], sc[8 * kk + 1]);  // row r0,   keys 16kk + 2q, +1
        pa[kk][1] = pack_bf16x2(sc[8 * kk + 2], sc[8 * kk + 3]);  // row r0+8, same keys
        pa[kk][2] = pack_bf16x2(sc[8 * kk + 4], sc[8 * kk + 5]);  // row r0,   keys 16kk + 8 + 2q, +1
        pa[kk][3] = pack_bf16x2(sc[8 * kk + 6], sc[8 * kk + 7]);  // row r0+8, same keys
      }

      // ---- O += P V, k-steps of 16 keys; V tile is [keys][dims] = MN-major for B ----
      mbar_wait(bar(S::kBarFullV + s), parity);
      fence_registers(o);
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) fence_registers(pa[kk]);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) {
        // 16 keys = 2 groups of 8 rows (SBO 1024 bytes); dims 64-127 are the next half (LBO).
        const uint64_t desc_v = smem_desc_sw128(v_tile + kk * 16 * 128, S::kHalfBytes, 1024);
        if constexpr (HD == 128) {
          wgmma_rs_m64n128k16_bt(o, pa[kk], desc_v, 1);
        } else {
          wgmma_rs_m64n64k16_bt(o, pa[kk], desc_v, 1);
        }
      }
      wgmma_commit();
      wgmma_wait<0>();
      fence_registers(o);
      __syncwarp();  // every lane's reads of this stage (bias included) precede the release below
      if (lane == 0) mbar_arrive(bar(S::kBarEmpty + s));
    }

    // ---- epilogue: normalise, lse, store O (bf16) ----
    const int row0 = consumer * 64 + warp_in_group * 16 + (lane >> 2);
    bf16* og = static_cast<bf16*>(p.o) + head * p.o_head_stride;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      row_sum[r] += __shfl_xor_sync(0xffffffffu, row_sum[r], 1);
      row_sum[r] += __shfl_xor_sync(0xffffffffu, row_sum[r], 2);
      const float inv_sum = row_sum[r] > 0.0f ? 1.0f / row_sum[r] : 0.0f;
      const int i = q0 + row0 + 8 * r;
      if (i < p.q_len) {
        if (p.lse != nullptr && (lane & 3) == 0)
          p.lse[head * p.q_len + i] = row_sum[r] > 0.0f ? (row_max[r] + log2f(row_sum[r])) * kLn2 : -INFINITY;
        bf16* orow = og + int64_t{i} * p.o_row_stride + 2 * (lane & 3);
#pragma unroll
        for (int c = 0; c < kOTiles; ++c)
          *reinterpret_cast<uint32_t*>(orow + 8 * c) = pack_bf16x2(o[4 * c + 2 * r] * inv_sum, o[4 * c + 2 * r + 1] * inv_sum);
      }
    }
  }
#else
  __trap();  // built without sm_90a: attention_sm90_accepts never sends work here on such a build
#endif
}

// ---- host side ------------------------------------------------------------------------------------

PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 encoder = []() -> PFN_cuTensorMapEncodeTiled_v12000 {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found) !=
            cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      cudaGetLastError();  // leave no error behind for the fallback kernel's launch check
      return nullptr;
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  return encoder;
}

// Tensor map of x[rows, heads, head_dim] (element strides row_stride, head_stride) as the 3-D tensor
// {head_dim, rows, heads}, box {64, 128, 1}, 128-byte swizzle; rows past `rows` read as zeros.
bool encode_rows_map(CUtensorMap* map, const void* ptr, int64_t head_dim, int64_t rows, int64_t heads,
                     int64_t row_stride, int64_t head_stride) {
  const PFN_cuTensorMapEncodeTiled_v12000 encode = tensor_map_encoder();
  if (encode == nullptr) return false;
  // With one head the head coordinate is always 0 and its stride is never stepped; give TMA a legal one.
  const int64_t head_step = heads > 1 ? head_stride : row_stride * rows;
  if (row_stride <= 0 || head_step <= 0) return false;
  const cuuint64_t dims[3] = {static_cast<cuuint64_t>(head_dim), static_cast<cuuint64_t>(rows),
                              static_cast<cuuint64_t>(heads)};
  const cuuint64_t strides[2] = {static_cast<cuuint64_t>(row_stride) * 2, static_cast<cuuint64_t>(head_step) * 2};
  const cuuint32_t box[3] = {kHalfCols, kBlockN, 1};
  const cuuint32_t element_strides[3] = {1, 1, 1};
  std::memset(map, 0, sizeof(CUtensorMap));
  return encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<void*>(ptr), dims, strides, box,
                element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// Compute capability 9.0, cached per device.
bool current_device_is_sm90() {
  static int cached[64] = {};  // 0 unknown, 1 yes, 2 no (benign race: every writer stores the same value)
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  if (device < 0 || device >= 64) return false;
  if (cached[device] == 0) {
    int major = 0, minor = 0;
    const bool ok = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
                    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) == cudaSuccess;
    if (!ok) cudaGetLastError();
    cached[device] = ok && major == 9 && minor == 0 ? 1 : 2;
  }
  return cached[device] == 1;
}

template <int HD, bool HAS_BIAS, bool BLOCK_SPARSE>
cudaError_t launch_sm90(const TensorMaps& maps, const AttentionParams& p, cudaStream_t stream) {
  auto kernel = flash_attention_sm90_kernel<HD, HAS_BIAS, BLOCK_SPARSE>;
  constexpr int kSmem = Smem<HD>::kAlloc;
  static const cudaError_t setup = [&]() -> cudaError_t {
    cudaFuncAttributes attr{};
    if (cudaFuncGetAttributes(&attr, kernel) != cudaSuccess) {
      cudaGetLastError();
      return cudaErrorNotSupported;  // no image for this device
    }
    // A build without sm_90a compiles the kernel as a trap stub (a handful of registers): fall back.
    if (attr.numRegs < 64) return cudaErrorNotSupported;
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  }();
  if (setup != cudaSuccess) return setup;
  const dim3 grid(static_cast<unsigned>((p.q_len + kBlockM - 1) / kBlockM), static_cast<unsigned>(p.num_heads));
  kernel<<<grid, kThreads, kSmem, stream>>>(maps, p);
  return cudaGetLastError();
}

template <class F>
cudaError_t with_bool(bool flag, F&& f) {
  return flag ? f(std::true_type{}) : f(std::false_type{});
}

}  // namespace

bool attention_sm90_accepts(const AttentionParams& p) {
  if (p.head_dim != 64 && p.head_dim != 128) return false;
  if (p.q_len < 1 || p.kv_len < 1 || p.causal_block != 0) return false;
  if (p.block_offsets != nullptr && (p.block_q != kBlockM || p.block_k <= 0 || p.block_k % kBlockN != 0)) return false;
  if (p.q_row_stride <= 0 || p.k_row_stride <= 0 || p.v_row_stride <= 0) return false;
  if (p.num_heads > 1 && (p.q_head_stride <= 0 || p.k_head_stride <= 0 || p.v_head_stride <= 0)) return false;
  return current_device_is_sm90();
}

cudaError_t attention_forward_bf16_sm90(const AttentionParams& p, cudaStream_t stream) {
  TensorMaps maps;
  if (!encode_rows_map(&maps.q, p.q, p.head_dim, p.q_len, p.num_heads, p.q_row_stride, p.q_head_stride) ||
      !encode_rows_map(&maps.k, p.k, p.head_dim, p.kv_len, p.num_heads, p.k_row_stride, p.k_head_stride) ||
      !encode_rows_map(&maps.v, p.v, p.head_dim, p.kv_len, p.num_heads, p.v_row_stride, p.v_head_stride))
    return cudaErrorNotSupported;
  return with_bool(p.head_dim == 128, [&](auto hd128) {
    return with_bool(p.key_bias != nullptr, [&](auto bias) {
      return with_bool(p.block_offsets != nullptr, [&](auto sparse) {
        return launch_sm90<std::decay_t<decltype(hd128)>::value ? 128 : 64, std::decay_t<decltype(bias)>::value,
                           std::decay_t<decltype(sparse)>::value>(maps, p, stream);
      });
    });
  });
}

}  // namespace fastar::cuda
