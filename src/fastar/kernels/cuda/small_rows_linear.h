// A linear layer for a handful of rows (the time and action embedding MLPs: one row per latent
// frame of the chunk), fp32 in / fp32 out with bf16 weights and fp32 accumulation.
//
//   out[r, o] (+)= Σ_i in[r, i] · float(weight[o, i]) + float(bias[o])      r < rows ≤ kSmallRowsMax
// (accumulate = true adds to out instead of overwriting it).
//
// The CPU reference is cpu::linear_forward (fastar/kernels/cpu/ops.h) with the weights rounded to
// bf16. cuBLASLt would round the activations to bf16 as well; these few rows feed the modulation of
// every token, so they stay fp32. The kernel is bound by reading the weight once (one warp per
// output feature, all rows at a time): 28 MB for Wan2.1-1.3B's time projection, ~10 µs on an H100.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace fastar::cuda {

constexpr int64_t kSmallRowsMax = 16;

// in [rows, in_features], out [rows, out_features] fp32 contiguous; weight [out_features, in_features]
// bf16; bias [out_features] bf16 or nullptr. out must not alias in. Throws fastar::Error on bad
// shapes (rows > kSmallRowsMax) or a launch error.
void small_rows_linear(float* out, const float* in, const __nv_bfloat16* weight, const __nv_bfloat16* bias,
                       int64_t rows, int64_t in_features, int64_t out_features, bool accumulate,
                       cudaStream_t stream);

}  // namespace fastar::cuda
