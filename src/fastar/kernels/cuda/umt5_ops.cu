#include "fastar/kernels/cuda/umt5_ops.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "fastar/core/error.h"

#define FASTAR_UMT5_LAUNCH_CHECK(name)                                                                \
  do {                                                                                                \
    cudaError_t fastar_cuda_status_ = cudaGetLastError();                                             \
    FASTAR_CHECK(fastar_cuda_status_ == cudaSuccess,                                                  \
                 "CUDA error launching " name ": " << cudaGetErrorString(fastar_cuda_status_));       \
  } while (0)

#define FASTAR_UMT5_CUBLAS_CHECK(call, shape)                                                         \
  do {                                                                                                \
    cublasStatus_t fastar_cublas_status_ = (call);                                                    \
    FASTAR_CHECK(fastar_cublas_status_ == CUBLAS_STATUS_SUCCESS,                                      \
                 "cuBLAS error in " #call " (" << shape << "): " << cublasGetStatusName(fastar_cublas_status_) \
                                               << " (" << cublasGetStatusString(fastar_cublas_status_) << ")"); \
  } while (0)

namespace fastar::cuda {

namespace {

using bf16 = __nv_bfloat16;

constexpr int kElementwiseThreads = 256;
constexpr int kRowThreads = 256;

unsigned elementwise_blocks(int64_t n) {
  const int64_t blocks = (n + kElementwiseThreads - 1) / kElementwiseThreads;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, int64_t{1} << 20));
}

// Threads of a one-block-per-row kernel with `work` items per row: a multiple of 32 in [32, 256].
int row_threads(int64_t work) {
  return static_cast<int>(std::clamp<int64_t>((work + 31) / 32 * 32, 32, kRowThreads));
}

void check_count(int64_t count, const char* op, const char* what) {
  FASTAR_CHECK(count >= 0 && count <= std::numeric_limits<int32_t>::max(),
               op << ": " << what << " = " << count << " is outside [0, 2^31)");
}

struct SumOp {
  static constexpr float kIdentity = 0.0f;
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct MaxOp {
  static constexpr float kIdentity = -INFINITY;
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// Reduction over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// `scratch` holds 32 floats; safe to call repeatedly (it synchronises before reusing scratch).
template <class Op>
__device__ float block_reduce(float v, float* scratch, Op op) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();  // a previous call may still be reading scratch
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = lane < warps ? scratch[lane] : Op::kIdentity;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) total = op(total, __shfl_xor_sync(0xffffffffu, total, o));
  return total;
}

// ---- embedding -----------------------------------------------------------------------------------

__global__ void embedding_rows_kernel(float* __restrict__ x, const bf16* __restrict__ table,
                                      const int32_t* __restrict__ ids, int64_t dim) {
  const int64_t r = blockIdx.x;
  const bf16* row = table + static_cast<int64_t>(ids[r]) * dim;
  float* out = x + r * dim;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) out[i] = __bfloat162float(row[i]);
}

// ---- RMS norm ------------------------------------------------------------------------------------

__device__ inline void store(float* p, float v) { *p = v; }
__device__ inline void store(bf16* p, float v) { *p = __float2bfloat16_rn(v); }

template <class Out>
__global__ void rmsnorm_kernel(Out* __restrict__ out, const float* __restrict__ x, const float* __restrict__ weight,
                               int64_t dim, float eps) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const float* xr = x + r * dim;
  float sum_sq = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) sum_sq += xr[i] * xr[i];
  const float total = block_reduce(sum_sq, scratch, SumOp{});
  const float inv_rms = 1.0f / sqrtf(total / static_cast<float>(dim) + eps);
  Out* yr = out + r * dim;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) store(yr + i, (xr[i] * inv_rms) * weight[i]);
}

template <class Out>
void rmsnorm(Out* out, const float* x, const float* weight, int64_t rows, int64_t dim, float eps, cudaStream_t stream,
             const char* name) {
  check_count(rows, name, "rows");
  FASTAR_CHECK(dim >= 1, name << ": dim " << dim);
  if (rows == 0) return;
  FASTAR_CHECK(out && x && weight, name << ": null pointer");
  rmsnorm_kernel<Out><<<static_cast<unsigned>(rows), row_threads(dim), 0, stream>>>(out, x, weight, dim, eps);
  FASTAR_UMT5_LAUNCH_CHECK("umt5_rmsnorm");
}

// ---- gated GELU ----------------------------------------------------------------------------------

__global__ void gelu_tanh_gate_mul_kernel(bf16* __restrict__ out, const bf16* __restrict__ gate_up, int64_t rows,
                                          int64_t d_ff) {
  const float k = 0.7978845608028654f;  // sqrt(2/pi)
  const int64_t total = rows * d_ff;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = e / d_ff, i = e - r * d_ff;
    const bf16* row = gate_up + r * 2 * d_ff;
    const float g = __bfloat162float(row[i]);
    const float u = __bfloat162float(row[d_ff + i]);
    const float gelu = 0.5f * g * (1.0f + tanhf(k * (g + 0.044715f * g * g * g)));
    out[e] = __float2bfloat16_rn(gelu * u);
  }
}

// ---- attention softmax -----------------------------------------------------------------------------

// One block per (head, query) row: blockIdx.x = h·n + i. The biased row s + bias is kept in dynamic shared
// memory (n floats) after one read of the scores; each thread reads back only the entries it wrote.
__global__ void relative_bias_softmax_kernel(bf16* __restrict__ probs, const float* __restrict__ scores,
                                             const float* __restrict__ bias, const int32_t* __restrict__ bucket_of,
                                             int64_t center, int64_t n, int64_t heads) {
  __shared__ float scratch[32];
  extern __shared__ float biased[];
  const int64_t row = blockIdx.x;
  const int64_t h = row / n, i = row - h * n;
  const float* s = scores + row * n;
  const int32_t* buckets = bucket_of + center - i;  // buckets[j] = bucket of rel = j − i
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    biased[j] = s[j] + bias[buckets[j] * heads + h];
    m = fmaxf(m, biased[j]);
  }
  m = block_reduce(m, scratch, MaxOp{});
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) sum += expf(biased[j] - m);
  sum = block_reduce(sum, scratch, SumOp{});
  const float inv_sum = 1.0f / sum;
  bf16* p = probs + row * n;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) p[j] = __float2bfloat16_rn(expf(biased[j] - m) * inv_sum);
}

// ---- random fill -----------------------------------------------------------------------------------

__device__ inline uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

template <class Out>
__global__ void fill_uniform_kernel(Out* __restrict__ out, int64_t count, uint64_t seed, float offset, float scale) {
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < count;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t bits = splitmix64(seed * 0x2545f4914f6cdd1dull + static_cast<uint64_t>(e));
    const float u = static_cast<float>(bits >> 40) * (2.0f / 16777216.0f) - 1.0f;  // 24 bits -> [-1, 1)
    store(out + e, offset + scale * u);
  }
}

template <class Out>
void fill_uniform(Out* out, int64_t count, uint64_t seed, float offset, float scale, cudaStream_t stream) {
  FASTAR_CHECK(count >= 0, "umt5_fill_uniform: count " << count);
  if (count == 0) return;
  FASTAR_CHECK(out, "umt5_fill_uniform: null pointer");
  fill_uniform_kernel<Out><<<elementwise_blocks(count), kElementwiseThreads, 0, stream>>>(out, count, seed, offset, scale);
  FASTAR_UMT5_LAUNCH_CHECK("umt5_fill_uniform");
}

}  // namespace

void umt5_embedding_rows(float* x, const bf16* table, const int32_t* ids, int64_t rows, int64_t dim,
                         cudaStream_t stream) {
  check_count(rows, "umt5_embedding_rows", "rows");
  FASTAR_CHECK(dim >= 1, "umt5_embedding_rows: dim " << dim);
  if (rows == 0) return;
  FASTAR_CHECK(x && table && ids, "umt5_embedding_rows: null pointer");
  embedding_rows_kernel<<<static_cast<unsigned>(rows), row_threads(dim), 0, stream>>>(x, table, ids, dim);
  FASTAR_UMT5_LAUNCH_CHECK("umt5_embedding_rows");
}

void umt5_rmsnorm_bf16(bf16* out, const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
                       cudaStream_t stream) {
  rmsnorm(out, x, weight, rows, dim, eps, stream, "umt5_rmsnorm_bf16");
}

void umt5_rmsnorm_f32(float* out, const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
                      cudaStream_t stream) {
  rmsnorm(out, x, weight, rows, dim, eps, stream, "umt5_rmsnorm_f32");
}

void umt5_gelu_tanh_gate_mul(bf16* out, const bf16* gate_up, int64_t rows, int64_t d_ff, cudaStream_t stream) {
  FASTAR_CHECK(rows >= 0 && d_ff >= 1, "umt5_gelu_tanh_gate_mul: rows " << rows << ", d_ff " << d_ff);
  if (rows == 0) return;
  FASTAR_CHECK(out && gate_up, "umt5_gelu_tanh_gate_mul: null pointer");
  gelu_tanh_gate_mul_kernel<<<elementwise_blocks(rows * d_ff), kElementwiseThreads, 0, stream>>>(out, gate_up, rows,
                                                                                                 d_ff);
  FASTAR_UMT5_LAUNCH_CHECK("umt5_gelu_tanh_gate_mul");
}

void umt5_relative_bias_softmax(bf16* probs, const float* scores, const float* bias, const int32_t* bucket_of,
                                int64_t center, int64_t n, int64_t heads, cudaStream_t stream) {
  FASTAR_CHECK(n >= 0 && n <= kUmt5MaxAttentionTokens && heads >= 1,
               "umt5_relative_bias_softmax: n " << n << " (at most " << kUmt5MaxAttentionTokens << "), heads " << heads);
  check_count(n * heads, "umt5_relative_bias_softmax", "heads·n rows");
  if (n == 0) return;
  FASTAR_CHECK(center >= n - 1, "umt5_relative_bias_softmax: the bucket table (center " << center
                                    << ") does not reach relative distance " << n - 1);
  FASTAR_CHECK(probs && scores && bias && bucket_of, "umt5_relative_bias_softmax: null pointer");
  relative_bias_softmax_kernel<<<static_cast<unsigned>(n * heads), row_threads(n), static_cast<size_t>(n) * sizeof(float),
                                 stream>>>(probs, scores, bias, bucket_of, center, n, heads);
  FASTAR_UMT5_LAUNCH_CHECK("umt5_relative_bias_softmax");
}

void umt5_relative_attention(cublasHandle_t blas, const Umt5AttentionParams& p, cudaStream_t stream) {
  const int64_t n = p.n, heads = p.heads, d_kv = p.d_kv, inner = heads * d_kv;
  FASTAR_CHECK(n >= 0 && heads >= 1 && d_kv >= 1 && 3 * inner <= std::numeric_limits<int32_t>::max() &&
                   n <= std::numeric_limits<int32_t>::max() / std::max<int64_t>(heads, 1),
               "umt5_relative_attention: bad shape n=" << n << " heads=" << heads << " d_kv=" << d_kv);
  if (n == 0) return;
  FASTAR_CHECK(blas && p.out && p.qkv && p.scores && p.probs, "umt5_relative_attention: null pointer");
  FASTAR_UMT5_CUBLAS_CHECK(cublasSetStream(blas, stream), "umt5 attention");
  const int ni = static_cast<int>(n), dk = static_cast<int>(d_kv), ld_qkv = static_cast<int>(3 * inner),
            ld_out = static_cast<int>(inner), batch = static_cast<int>(heads);
  const float one = 1.0f, zero = 0.0f;
  // cuBLAS is column-major: a row-major [r, c] buffer with row stride ld is a column-major [c, r] matrix
  // with leading dimension ld. So per head h the buffers hold Qc_h, Kc_h, Vc_h = column-major [d_kv, n] at
  // qkv + {0, inner, 2·inner} + h·d_kv (ld 3·inner), consecutive heads d_kv elements apart.
  //   scores_h, row-major [n_q, n_k] = column-major [n_k, n_q] = Kc_hᵀ · Qc_h:
  //   A = Kc_h with op T, B = Qc_h with op N, m = n_k, n = n_q, k = d_kv, C ld n, heads n·n apart.
  FASTAR_UMT5_CUBLAS_CHECK(
      cublasGemmStridedBatchedEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, ni, ni, dk, &one, p.qkv + inner, CUDA_R_16BF, ld_qkv,
                                 d_kv, p.qkv, CUDA_R_16BF, ld_qkv, d_kv, &zero, p.scores, CUDA_R_32F, ni, n * n, batch,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      "scores = q·kᵀ, n=" << n << " heads=" << heads << " d_kv=" << d_kv);
  umt5_relative_bias_softmax(p.probs, p.scores, p.bias, p.bucket_of, p.center, n, heads, stream);
  //   out_h, row-major [n_q, d_kv] (row stride inner) = column-major [d_kv, n_q] = Vc_h · P_hᵀ, where
  //   P_h row-major [n_q, n_k] is the column-major P_hᵀ [n_k, n_q] (ld n): A = Vc_h op N, B = probs_h op N,
  //   m = d_kv, n = n_q, k = n_k, C ld inner, heads d_kv apart.
  FASTAR_UMT5_CUBLAS_CHECK(
      cublasGemmStridedBatchedEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, dk, ni, ni, &one, p.qkv + 2 * inner, CUDA_R_16BF,
                                 ld_qkv, d_kv, p.probs, CUDA_R_16BF, ni, n * n, &zero, p.out, CUDA_R_16BF, ld_out, d_kv,
                                 batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      "out = p·v, n=" << n << " heads=" << heads << " d_kv=" << d_kv);
}

void umt5_fill_uniform_bf16(bf16* out, int64_t count, uint64_t seed, float offset, float scale, cudaStream_t stream) {
  fill_uniform(out, count, seed, offset, scale, stream);
}

void umt5_fill_uniform_f32(float* out, int64_t count, uint64_t seed, float offset, float scale, cudaStream_t stream) {
  fill_uniform(out, count, seed, offset, scale, stream);
}

}  // namespace fastar::cuda
