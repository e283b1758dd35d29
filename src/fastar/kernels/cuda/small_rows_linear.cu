#include "fastar/kernels/cuda/small_rows_linear.h"

#include <algorithm>

#include "fastar/core/error.h"

namespace fastar::cuda {

namespace {

constexpr int kWarpsPerBlock = 8;

// One warp per output feature o: each lane walks the weight row with a stride of 32 elements and
// accumulates all `rows` dot products at once, then the warp reduces them.
template <int kRows>
__global__ void small_rows_linear_kernel(float* __restrict__ out, const float* __restrict__ in,
                                         const __nv_bfloat16* __restrict__ weight, const __nv_bfloat16* __restrict__ bias,
                                         int rows, int64_t in_features, int64_t out_features, bool accumulate) {
  const int lane = threadIdx.x & 31;
  const int64_t o = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (o >= out_features) return;
  float acc[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) acc[r] = 0.0f;
  const __nv_bfloat16* w = weight + o * in_features;
  for (int64_t i = lane; i < in_features; i += 32) {
    const float wi = __bfloat162float(w[i]);
#pragma unroll
    for (int r = 0; r < kRows; ++r)
      if (r < rows) acc[r] += wi * in[r * in_features + i];
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    float v = acc[r];
#pragma unroll
    for (int s = 16; s > 0; s >>= 1) v += __shfl_xor_sync(0xffffffffu, v, s);
    if (lane == 0 && r < rows) {
      float* dst = out + r * out_features + o;
      const float value = v + (bias ? __bfloat162float(bias[o]) : 0.0f);
      *dst = accumulate ? *dst + value : value;
    }
  }
}

}  // namespace

void small_rows_linear(float* out, const float* in, const __nv_bfloat16* weight, const __nv_bfloat16* bias,
                       int64_t rows, int64_t in_features, int64_t out_features, bool accumulate,
                       cudaStream_t stream) {
  FASTAR_CHECK(rows >= 0 && rows <= kSmallRowsMax, "small_rows_linear: " << rows << " rows; at most " << kSmallRowsMax
                                                                         << " (use linear_bf16 for token rows)");
  FASTAR_CHECK(in_features >= 1 && out_features >= 0, "small_rows_linear: bad shape in=" << in_features << " out="
                                                                                         << out_features);
  if (rows == 0 || out_features == 0) return;
  FASTAR_CHECK(out && in && weight && static_cast<const void*>(out) != static_cast<const void*>(in),
               "small_rows_linear: null or aliased operand");
  const unsigned blocks = static_cast<unsigned>((out_features + kWarpsPerBlock - 1) / kWarpsPerBlock);
  const int r = static_cast<int>(rows);
  if (rows <= 4)
    small_rows_linear_kernel<4><<<blocks, kWarpsPerBlock * 32, 0, stream>>>(out, in, weight, bias, r, in_features, out_features,
                                                                                     accumulate);
  else
    small_rows_linear_kernel<16><<<blocks, kWarpsPerBlock * 32, 0, stream>>>(out, in, weight, bias, r, in_features, out_features,
                                                                                     accumulate);
  const cudaError_t status = cudaGetLastError();
  FASTAR_CHECK(status == cudaSuccess, "CUDA error launching small_rows_linear: " << cudaGetErrorString(status));
}

}  // namespace fastar::cuda
