// The epilogue of a channels-last convolution when cuDNN does not fuse it (cudnn_conv.h):
//
//   out[r, c] = act( out[r, c] + bias[c] + residual[r, c] )     for r < rows, c < channels
//
// bf16 in and out, fp32 arithmetic, one rounding. bias [channels] and residual [rows, channels] may be
// nullptr; act is ReLU or identity. 16-byte vectors when channels % 8 == 0 and the pointers allow it,
// scalar otherwise (same results). Asynchronous on `stream`; a launch error throws fastar::Error.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace fastar::cuda {

void conv_epilogue_bf16(__nv_bfloat16* out, const __nv_bfloat16* bias, const __nv_bfloat16* residual, int64_t rows,
                        int64_t channels, bool relu, cudaStream_t stream);

}  // namespace fastar::cuda
