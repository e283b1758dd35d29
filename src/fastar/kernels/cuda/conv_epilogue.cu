#include "fastar/kernels/cuda/conv_epilogue.h"

#include <algorithm>

#include "fastar/core/error.h"

namespace fastar::cuda {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float epilogue_value(float v, const __nv_bfloat16* bias, const __nv_bfloat16* residual,
                                                int64_t i, int64_t c, bool relu) {
  if (bias) v += __bfloat162float(bias[c]);
  if (residual) v += __bfloat162float(residual[i]);
  return relu ? fmaxf(v, 0.0f) : v;
}

// One thread per 8 channels of a row (uint4 loads and stores).
__global__ void epilogue_vec8_kernel(__nv_bfloat16* __restrict__ out, const __nv_bfloat16* __restrict__ bias,
                                     const __nv_bfloat16* __restrict__ residual, int64_t vectors,
                                     int64_t vectors_per_row, bool relu) {
  for (int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; v < vectors;
       v += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c0 = (v % vectors_per_row) * 8;
    uint4 o = reinterpret_cast<const uint4*>(out)[v];
    uint4 r = residual ? reinterpret_cast<const uint4*>(residual)[v] : uint4{0, 0, 0, 0};
    uint4 b = bias ? reinterpret_cast<const uint4*>(bias)[c0 / 8] : uint4{0, 0, 0, 0};
    auto* op = reinterpret_cast<__nv_bfloat162*>(&o);
    const auto* rp = reinterpret_cast<const __nv_bfloat162*>(&r);
    const auto* bp = reinterpret_cast<const __nv_bfloat162*>(&b);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      float2 x = __bfloat1622float2(op[j]);
      const float2 rv = __bfloat1622float2(rp[j]), bv = __bfloat1622float2(bp[j]);
      x.x += rv.x + bv.x;
      x.y += rv.y + bv.y;
      if (relu) {
        x.x = fmaxf(x.x, 0.0f);
        x.y = fmaxf(x.y, 0.0f);
      }
      op[j] = __float22bfloat162_rn(x);
    }
    reinterpret_cast<uint4*>(out)[v] = o;
  }
}

__global__ void epilogue_scalar_kernel(__nv_bfloat16* __restrict__ out, const __nv_bfloat16* __restrict__ bias,
                                       const __nv_bfloat16* __restrict__ residual, int64_t count, int64_t channels,
                                       bool relu) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16_rn(epilogue_value(__bfloat162float(out[i]), bias, residual, i, i % channels, relu));
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, int64_t{1} << 20));
}

}  // namespace

void conv_epilogue_bf16(__nv_bfloat16* out, const __nv_bfloat16* bias, const __nv_bfloat16* residual, int64_t rows,
                        int64_t channels, bool relu, cudaStream_t stream) {
  FASTAR_CHECK(rows >= 0 && channels > 0, "conv_epilogue_bf16: bad shape rows=" << rows << " channels=" << channels);
  const int64_t count = rows * channels;
  if (count == 0 || (!bias && !residual && !relu)) return;
  const bool vec = channels % 8 == 0 && aligned16(out) && (!bias || aligned16(bias)) &&
                   (!residual || aligned16(residual));
  if (vec)
    epilogue_vec8_kernel<<<blocks_for(count / 8), kThreads, 0, stream>>>(out, bias, residual, count / 8, channels / 8,
                                                                         relu);
  else
    epilogue_scalar_kernel<<<blocks_for(count), kThreads, 0, stream>>>(out, bias, residual, count, channels, relu);
  const cudaError_t status = cudaGetLastError();
  FASTAR_CHECK(status == cudaSuccess, "CUDA error launching conv_epilogue_bf16 (rows " << rows << ", channels "
                                                                                        << channels << "): "
                                                                                        << cudaGetErrorString(status));
}

}  // namespace fastar::cuda
