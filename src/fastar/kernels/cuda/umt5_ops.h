// CUDA ops of the umT5 encoder (pipeline-spec.md §4.2), the pieces of CudaUmt5Encoder
// (model/cuda/umt5_encoder_cuda.h) that cuBLASLt's linear_bf16 and ops.h's gated_residual_add do not cover.
//
// Each mirrors a step of the CPU reference Umt5Encoder::forward (model/umt5_encoder.cpp) with the GPU's
// precision: the residual stream is fp32, the activations that feed a GEMM are bf16, norm statistics and
// softmax run in fp32. All pointers are device pointers, row-major and contiguous unless a stride is
// given; everything is asynchronous on `stream`; bad arguments and launch errors throw fastar::Error
// (faults inside a kernel show up at the next synchronising call). Checked op by op and as a whole
// encoder against the CPU by tests/cuda/umt5_check.cpp.
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace fastar::cuda {

// Step 1, x = E[ids]: x[r, :] = float(table[ids[r], :]) for r < rows; table bf16 [vocab, dim], x fp32
// [rows, dim]. The ids must lie in [0, vocab): the caller checks them on the host (the kernel does not).
void umt5_embedding_rows(float* x, const __nv_bfloat16* table, const int32_t* ids, int64_t rows, int64_t dim,
                         cudaStream_t stream);

// T5's RMS norm, cpu::rmsnorm_forward with fp32 statistics:
//   out[r, i] = (x[r, i] · 1/sqrt(mean_i x[r, i]² + eps)) · weight[i]
// x fp32 [rows, dim], weight fp32 [dim]; the _bf16 form rounds the result once to bf16 (a GEMM input), the
// _f32 form keeps it (the encoder's output).
void umt5_rmsnorm_bf16(__nv_bfloat16* out, const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
                       cudaStream_t stream);
void umt5_rmsnorm_f32(float* out, const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
                      cudaStream_t stream);

// The gated-GELU FFN's middle, on the fused gate|up product gate_up bf16 [rows, 2·d_ff] (columns [0, d_ff)
// the gate branch h·W_gateᵀ, [d_ff, 2·d_ff) the linear branch h·W_upᵀ):
//   out[r, i] = bf16(GELU_tanh(gate[r, i]) · up[r, i]),   out bf16 [rows, d_ff],
// GELU_tanh(u) = 0.5·u·(1 + tanh(√(2/π)·(u + 0.044715·u³))) in fp32, as cpu::gelu_tanh_forward.
void umt5_gelu_tanh_gate_mul(__nv_bfloat16* out, const __nv_bfloat16* gate_up, int64_t rows, int64_t d_ff,
                             cudaStream_t stream);

// The most tokens the attention takes: a softmax row (n floats) sits in the 48 KiB of shared memory a
// block gets by default. umT5 runs at most 512.
constexpr int64_t kUmt5MaxAttentionTokens = 8192;

// Softmax over keys with umT5's relative-position bias (steps 2.4 and 2.6; every key is a real token):
//   probs[h, i, j] = bf16(softmax_j(scores[h, i, j] + bias[bucket_of[j − i + center], h]))
// scores fp32 [heads, n, n], probs bf16 [heads, n, n], bias fp32 [num_buckets, heads] (the layer's own
// table), bucket_of int32 with bucket_of[rel + center] = umt5_relative_bucket(rel) for |rel| <= n − 1
// (so center >= n − 1). Max, sum and the division in fp32. n <= kUmt5MaxAttentionTokens.
void umt5_relative_bias_softmax(__nv_bfloat16* probs, const float* scores, const float* bias, const int32_t* bucket_of,
                                int64_t center, int64_t n, int64_t heads, cudaStream_t stream);

// One layer's self-attention core (steps 2.3 to 2.6), without the projections:
//   s[h, i, j] = q_i·k_j  (no 1/√d_kv: T5 folds it into the init),  p = umt5_relative_bias_softmax(s),
//   out[i, h·d_kv + c] = Σ_j p[h, i, j] · v[j, h·d_kv + c]
// Both products are strided-batched cuBLAS GEMMs over the heads (bf16 in, fp32 accumulation; scores fp32,
// out bf16).
struct Umt5AttentionParams {
  __nv_bfloat16* out = nullptr;        // [n, heads·d_kv]
  const __nv_bfloat16* qkv = nullptr;  // [n, 3·heads·d_kv]: each row q | k | v, heads contiguous in each
  float* scores = nullptr;             // scratch [heads, n, n]
  __nv_bfloat16* probs = nullptr;      // scratch [heads, n, n]
  const float* bias = nullptr;         // [num_buckets, heads]
  const int32_t* bucket_of = nullptr;  // see umt5_relative_bias_softmax
  int64_t center = 0;
  int64_t n = 0, heads = 0, d_kv = 0;
};
// `blas`: a cuBLAS handle used by one host thread (the call sets its stream to `stream`).
void umt5_relative_attention(cublasHandle_t blas, const Umt5AttentionParams& p, cudaStream_t stream);

// Random weights for benchmarks at full size without a checkpoint (no host copy):
//   out[i] = offset + scale·u_i,   u_i uniform in [−1, 1) from a hash of (seed, i)  (deterministic).
void umt5_fill_uniform_bf16(__nv_bfloat16* out, int64_t count, uint64_t seed, float offset, float scale,
                            cudaStream_t stream);
void umt5_fill_uniform_f32(float* out, int64_t count, uint64_t seed, float offset, float scale, cudaStream_t stream);

}  // namespace fastar::cuda
