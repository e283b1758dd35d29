#include "fastar/kernels/cuda/arl2_ops.h"

#include <algorithm>

#include "fastar/core/error.h"

namespace fastar::cuda {

namespace {

void check_launch(const char* what) {
  const cudaError_t status = cudaGetLastError();
  FASTAR_CHECK(status == cudaSuccess, "CUDA error launching " << what << ": " << cudaGetErrorString(status));
}

// One warp per head vector.
__global__ void l2_normalize_heads_kernel(__nv_bfloat16* x, int64_t vectors, int64_t head_dim, float eps) {
  const int64_t vec = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  if (vec >= vectors) return;
  __nv_bfloat16* v = x + vec * head_dim;
  float sum = 0.0f;
  for (int64_t i = lane; i < head_dim; i += 32) {
    const float f = __bfloat162float(v[i]);
    sum += f * f;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  const float inv = rsqrtf(sum + eps);
  for (int64_t i = lane; i < head_dim; i += 32) v[i] = __float2bfloat16_rn(__bfloat162float(v[i]) * inv);
}

__global__ void arl2_gates_kernel(float* gate, float* log_alpha, float* beta, const __nv_bfloat16* proj,
                                  int64_t proj_stride, const float* a_log, const float* dt_bias, int64_t rows,
                                  int64_t heads) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < rows * heads;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / heads, h = i % heads;
    const __nv_bfloat16* p = proj + r * proj_stride;
    const float g = __bfloat162float(p[h]), a = __bfloat162float(p[heads + h]) + dt_bias[h],
                b = __bfloat162float(p[2 * heads + h]);
    const float softplus = a > 20.0f ? a : log1pf(expf(a));
    gate[i] = 1.0f / (1.0f + expf(-g));
    log_alpha[i] = -expf(a_log[h]) * softplus;
    beta[i] = 2.0f / (1.0f + expf(-b));
  }
}

}  // namespace

void l2_normalize_heads(__nv_bfloat16* x, int64_t rows, int64_t heads, int64_t head_dim, float eps, cudaStream_t stream) {
  const int64_t vectors = rows * heads;
  if (vectors == 0) return;
  constexpr int kWarps = 8;
  l2_normalize_heads_kernel<<<static_cast<unsigned>((vectors + kWarps - 1) / kWarps), kWarps * 32, 0, stream>>>(
      x, vectors, head_dim, eps);
  check_launch("l2_normalize_heads");
}

void arl2_gates(float* gate, float* log_alpha, float* beta, const __nv_bfloat16* proj, int64_t proj_stride,
                const float* a_log, const float* dt_bias, int64_t rows, int64_t heads, cudaStream_t stream) {
  const int64_t n = rows * heads;
  if (n == 0) return;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((n + 255) / 256, 65535));
  arl2_gates_kernel<<<blocks, 256, 0, stream>>>(gate, log_alpha, beta, proj, proj_stride, a_log, dt_bias, rows, heads);
  check_launch("arl2_gates");
}

}  // namespace fastar::cuda
