// A linear layer whose weight stays in its checkpoint dtype (F32, BF16, F16) and is converted to fp32
// block by block for the GEMM, so a bf16 model (umT5-XXL: 11.4 GB) never needs an fp32 copy
// (pipeline-spec.md §4.4: bf16 weights, fp32 compute on the CPU).
#pragma once

#include <cstdint>

#include "fastar/core/dtype.h"

namespace fastar::cpu {

// out[rows, out_features] = in[rows, in_features] · weight[out_features, in_features]ᵀ (no bias; PyTorch
// nn.Linear layout). F32 weights go to OpenBLAS directly; BF16/F16 weights are converted in blocks of
// output rows into per-thread scratch of at most ~4 MiB, each block one sgemm (fp32 accumulation).
// `out` must not alias `in`.
void stored_weight_linear(float* out, const float* in, const void* weight, DType weight_dtype, int64_t rows,
                          int64_t in_features, int64_t out_features);

}  // namespace fastar::cpu
