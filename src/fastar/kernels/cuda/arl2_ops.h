// The element-wise steps of ARL²'s hybrid layer on the GPU (the CPU reference is the arl2 policy,
// src/fastar/attention/arl2_hybrid_memory.cpp; the CUDA hybrid rollout is checked against it
// end to end by tests/cuda/dit_check.cpp).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace fastar::cuda {

// In place on x[rows, heads·head_dim] bf16 (row stride heads·head_dim): each head vector becomes
// x / sqrt(Σx² + eps) (flash-linear-attention's l2_norm), sums in fp32.
void l2_normalize_heads(__nv_bfloat16* x, int64_t rows, int64_t heads, int64_t head_dim, float eps, cudaStream_t stream);

// From the per-token projections proj[rows, proj_stride] bf16 whose columns are [gate logits (heads),
// a logits (heads), b logits (heads), ...]:
//   gate[r, h]      = sigmoid(gate logit)
//   log_alpha[r, h] = −exp(A_log[h]) · softplus(a logit + dt_bias[h])     (softplus linear above 20)
//   beta[r, h]      = 2 · sigmoid(b logit)
// gate, log_alpha, beta: fp32 [rows, heads]. A_log, dt_bias: fp32 [heads].
void arl2_gates(float* gate, float* log_alpha, float* beta, const __nv_bfloat16* proj, int64_t proj_stride,
                const float* a_log, const float* dt_bias, int64_t rows, int64_t heads, cudaStream_t stream);

}  // namespace fastar::cuda
