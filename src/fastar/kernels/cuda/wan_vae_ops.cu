#include "fastar/kernels/cuda/wan_vae_ops.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "fastar/core/error.h"
#include "fastar/kernels/cuda/cuda_check.h"

#define FASTAR_VAE_CUBLAS_CHECK(call, shape)                                                          \
  do {                                                                                                \
    cublasStatus_t fastar_cublas_status_ = (call);                                                    \
    FASTAR_CHECK(fastar_cublas_status_ == CUBLAS_STATUS_SUCCESS,                                      \
                 "cuBLAS error in " #call " (" << shape << "): " << cublasGetStatusName(fastar_cublas_status_)); \
  } while (0)

namespace fastar::cuda {

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, int64_t{1} << 20));
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

#define GRID_STRIDE(i, n)                                                                      \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

// ---- latent input ------------------------------------------------------------------------------

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

// One thread per output element, in output order (the latent is small: 16 channels at 60×104).
template <class T>
__global__ void latent_to_channels_last_kernel(__nv_bfloat16* __restrict__ out, const T* __restrict__ latent,
                                               const float* __restrict__ mean, const float* __restrict__ stddev,
                                               int64_t channels, int64_t frames, int64_t hw) {
  const int64_t n = channels * frames * hw;
  GRID_STRIDE(i, n) {
    const int64_t c = i % channels, tp = i / channels;  // tp = t·hw + p
    const int64_t t = tp / hw, p = tp % hw;
    float v = to_float(latent[(c * frames + t) * hw + p]);
    if (mean) v = v * stddev[c] + mean[c];
    out[i] = __float2bfloat16_rn(v);
  }
}

// ---- RMS_norm (+ SiLU) ---------------------------------------------------------------------------

// A group of `group` lanes (a power of two ≤ 32, inside one warp) per position; each lane takes VEC
// consecutive channels at a time, the group reduces the sum of squares with shuffles (deterministic).
template <int VEC>
__global__ void channel_rms_norm_kernel(__nv_bfloat16* __restrict__ out, const __nv_bfloat16* __restrict__ in,
                                        const float* __restrict__ gamma, int64_t positions, int64_t channels,
                                        int group, float scale, bool silu) {
  const int64_t thread = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int lane = static_cast<int>(threadIdx.x) & (group - 1);
  const int64_t row = thread / group;
  const bool active = row < positions;
  const int64_t chunks = channels / VEC;
  const __nv_bfloat16* x = in + row * channels;
  float ss = 0.0f;
  if (active) {
    for (int64_t j = lane; j < chunks; j += group) {
      if constexpr (VEC == 8) {
        const uint4 raw = reinterpret_cast<const uint4*>(x)[j];
        const auto* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          const float2 f = __bfloat1622float2(h[k]);
          ss += f.x * f.x + f.y * f.y;
        }
      } else {
        const float f = __bfloat162float(x[j]);
        ss += f * f;
      }
    }
  }
  for (int o = group / 2; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o, group);
  if (!active) return;
  const float factor = scale / fmaxf(sqrtf(ss), 1e-12f);
  __nv_bfloat16* y = out + row * channels;
  for (int64_t j = lane; j < chunks; j += group) {
    if constexpr (VEC == 8) {
      const uint4 raw = reinterpret_cast<const uint4*>(x)[j];
      const auto* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
      const float4 g0 = reinterpret_cast<const float4*>(gamma)[2 * j];
      const float4 g1 = reinterpret_cast<const float4*>(gamma)[2 * j + 1];
      const float g[8] = {g0.x, g0.y, g0.z, g0.w, g1.x, g1.y, g1.z, g1.w};
      uint4 packed;
      auto* o = reinterpret_cast<__nv_bfloat162*>(&packed);
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float2 f = __bfloat1622float2(h[k]);
        float a = f.x * factor * g[2 * k], b = f.y * factor * g[2 * k + 1];
        if (silu) {
          a = a / (1.0f + __expf(-a));
          b = b / (1.0f + __expf(-b));
        }
        o[k] = __floats2bfloat162_rn(a, b);
      }
      reinterpret_cast<uint4*>(y)[j] = packed;
    } else {
      float a = __bfloat162float(x[j]) * factor * gamma[j];
      if (silu) a = a / (1.0f + __expf(-a));
      y[j] = __float2bfloat16_rn(a);
    }
  }
}

// ---- time_conv interleave, sub-pixel shuffle ------------------------------------------------------

// One thread per 8 output channels (uint4), or per channel when C % 8 != 0 (VEC = 1).
template <int VEC>
__global__ void interleave_time_conv_kernel(__nv_bfloat16* __restrict__ out, const __nv_bfloat16* __restrict__ in,
                                            int64_t steps, int64_t positions, int64_t channels) {
  const int64_t chunks = channels / VEC;
  const int64_t n = 2 * steps * positions * chunks;
  GRID_STRIDE(i, n) {
    const int64_t j = i % chunks, fp = i / chunks;  // out frame f, position p
    const int64_t p = fp % positions, f = fp / positions;
    const int64_t tau = f / 2, s = f % 2;
    const int64_t src = ((tau * positions + p) * 2 * channels + s * channels) / VEC + j;
    if constexpr (VEC == 8)
      reinterpret_cast<uint4*>(out)[i] = reinterpret_cast<const uint4*>(in)[src];
    else
      out[i] = in[src];
  }
}

template <int VEC>
__global__ void pixel_shuffle_kernel(__nv_bfloat16* __restrict__ out, const __nv_bfloat16* __restrict__ in,
                                     int64_t frames, int64_t height, int64_t width, int64_t channels) {
  const int64_t chunks = channels / VEC, Ho = 2 * height, Wo = 2 * width;
  const int64_t n = frames * Ho * Wo * chunks;
  GRID_STRIDE(i, n) {
    const int64_t j = i % chunks;
    int64_t r = i / chunks;
    const int64_t x = r % Wo;
    r /= Wo;
    const int64_t y = r % Ho, t = r / Ho;
    const int64_t a = y & 1, b = x & 1, iy = (y >> 1) + a, ix = (x >> 1) + b;
    const int64_t src = (((t * (height + 1) + iy) * (width + 1) + ix) * 4 * channels + (2 * a + b) * channels) / VEC + j;
    if constexpr (VEC == 8)
      reinterpret_cast<uint4*>(out)[i] = reinterpret_cast<const uint4*>(in)[src];
    else
      out[i] = in[src];
  }
}

// ---- attention softmax -----------------------------------------------------------------------------

__device__ float block_reduce(float v, float* scratch, bool is_max) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffu, v, o);
    v = is_max ? fmaxf(v, other) : v + other;
  }
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = lane < warps ? scratch[lane] : (is_max ? -INFINITY : 0.0f);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffu, r, o);
    r = is_max ? fmaxf(r, other) : r + other;
  }
  return r;
}

// One block per row: the fp32 logits are read into shared memory, then the bf16 probabilities are
// written over the first half of the same row (bf16 row stride 2·cols elements = the fp32 row).
__global__ void softmax_rows_in_place_kernel(float* scores, int64_t cols) {
  extern __shared__ float row_values[];
  __shared__ float scratch[32];
  float* row = scores + static_cast<int64_t>(blockIdx.x) * cols;
  float peak = -INFINITY;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const float v = row[j];
    row_values[j] = v;
    peak = fmaxf(peak, v);
  }
  peak = block_reduce(peak, scratch, true);  // also orders the reads above before any write below
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const float e = __expf(row_values[j] - peak);
    row_values[j] = e;
    sum += e;
  }
  sum = block_reduce(sum, scratch, false);
  const float inv = 1.0f / sum;
  auto* probs = reinterpret_cast<__nv_bfloat16*>(row);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) probs[j] = __float2bfloat16_rn(row_values[j] * inv);
}

// ---- output ------------------------------------------------------------------------------------------

__device__ __forceinline__ float to_unit(float v) { return fminf(fmaxf(v, -1.0f), 1.0f) * 0.5f + 0.5f; }

__global__ void frames_to_rgb8_kernel(uint8_t* __restrict__ out, const __nv_bfloat16* __restrict__ in, int64_t n,
                                      int64_t in_stride) {
  GRID_STRIDE(i, n) {  // i = (t·hw + p)·3 + c
    const float v = __bfloat162float(in[(i / 3) * in_stride + i % 3]);
    const float scaled = __fmul_rn(to_unit(v), 255.0f);
    out[i] = static_cast<uint8_t>(roundf(fminf(fmaxf(scaled, 0.0f), 255.0f)));  // lround: half away from zero
  }
}

__global__ void frames_to_f32_planar_kernel(float* __restrict__ out, const __nv_bfloat16* __restrict__ in,
                                            int64_t frames, int64_t hw, int64_t in_stride, int64_t first_frame,
                                            int64_t total_frames) {
  const int64_t n = 3 * frames * hw;
  GRID_STRIDE(i, n) {  // i = (c·frames + t)·hw + p
    const int64_t p = i % hw, ct = i / hw, t = ct % frames, c = ct / frames;
    out[(c * total_frames + first_frame + t) * hw + p] = __bfloat162float(in[(t * hw + p) * in_stride + c]);
  }
}

}  // namespace

void latent_to_channels_last(__nv_bfloat16* out, const void* latent, DType dtype, const float* mean,
                             const float* stddev, int64_t channels, int64_t frames, int64_t hw, cudaStream_t stream) {
  const int64_t n = channels * frames * hw;
  if (n == 0) return;
  FASTAR_CHECK((mean == nullptr) == (stddev == nullptr), "latent_to_channels_last: give both mean and std, or neither");
  const unsigned blocks = blocks_for(n);
  switch (dtype) {
    case DType::F32:
      latent_to_channels_last_kernel<<<blocks, kThreads, 0, stream>>>(out, static_cast<const float*>(latent), mean, stddev,
                                                                      channels, frames, hw);
      break;
    case DType::BF16:
      latent_to_channels_last_kernel<<<blocks, kThreads, 0, stream>>>(
          out, static_cast<const __nv_bfloat16*>(latent), mean, stddev, channels, frames, hw);
      break;
    case DType::F16:
      latent_to_channels_last_kernel<<<blocks, kThreads, 0, stream>>>(out, static_cast<const __half*>(latent), mean,
                                                                      stddev, channels, frames, hw);
      break;
    default:
      FASTAR_FAIL("latent_to_channels_last: the latent has dtype " << dtype_name(dtype)
                                                                   << "; give F32, BF16 or F16 on the device");
  }
  FASTAR_CUDA_LAUNCH_CHECK("latent_to_channels_last" << " " << channels << "x" << frames << "x" << hw);
}

void channel_rms_norm_bf16(__nv_bfloat16* out, const __nv_bfloat16* in, const float* gamma, int64_t positions,
                           int64_t channels, bool silu, cudaStream_t stream) {
  FASTAR_CHECK(positions >= 0 && channels > 0, "channel_rms_norm_bf16: bad shape " << positions << "x" << channels);
  if (positions == 0) return;
  const bool vec = channels % 8 == 0 && aligned16(out) && aligned16(in) && aligned16(gamma);
  const int64_t chunks = vec ? channels / 8 : channels;
  int group = 1;
  while (group < 32 && group < chunks) group *= 2;
  const int64_t threads = positions * group;
  const unsigned blocks = static_cast<unsigned>((threads + kThreads - 1) / kThreads);
  FASTAR_CHECK((threads + kThreads - 1) / kThreads <= INT32_MAX, "channel_rms_norm_bf16: too many positions");
  const float scale = std::sqrt(static_cast<float>(channels));
  if (vec)
    channel_rms_norm_kernel<8><<<blocks, kThreads, 0, stream>>>(out, in, gamma, positions, channels, group, scale, silu);
  else
    channel_rms_norm_kernel<1><<<blocks, kThreads, 0, stream>>>(out, in, gamma, positions, channels, group, scale, silu);
  FASTAR_CUDA_LAUNCH_CHECK("channel_rms_norm_bf16" << " " << positions << "x" << channels);
}

void interleave_time_conv_bf16(__nv_bfloat16* out, const __nv_bfloat16* in, int64_t steps, int64_t positions,
                               int64_t channels, cudaStream_t stream) {
  const int64_t n = 2 * steps * positions * channels;
  if (n == 0) return;
  if (channels % 8 == 0 && aligned16(out) && aligned16(in))
    interleave_time_conv_kernel<8><<<blocks_for(n / 8), kThreads, 0, stream>>>(out, in, steps, positions, channels);
  else
    interleave_time_conv_kernel<1><<<blocks_for(n), kThreads, 0, stream>>>(out, in, steps, positions, channels);
  FASTAR_CUDA_LAUNCH_CHECK("interleave_time_conv_bf16" << " " << steps << "x" << positions << "x" << channels);
}

void pixel_shuffle_subpixel_bf16(__nv_bfloat16* out, const __nv_bfloat16* in, int64_t frames, int64_t height,
                                 int64_t width, int64_t channels, cudaStream_t stream) {
  const int64_t n = frames * 4 * height * width * channels;
  if (n == 0) return;
  if (channels % 8 == 0 && aligned16(out) && aligned16(in))
    pixel_shuffle_kernel<8><<<blocks_for(n / 8), kThreads, 0, stream>>>(out, in, frames, height, width, channels);
  else
    pixel_shuffle_kernel<1><<<blocks_for(n), kThreads, 0, stream>>>(out, in, frames, height, width, channels);
  FASTAR_CUDA_LAUNCH_CHECK("pixel_shuffle_subpixel_bf16" << " " << frames << "x" << height << "x" << width << "x" << channels);
}

void frame_attention_bf16(cublasHandle_t cublas, __nv_bfloat16* out, const __nv_bfloat16* qkv, float* scores,
                          int64_t channels, int64_t tokens, cudaStream_t stream) {
  FASTAR_CHECK(channels > 0 && tokens > 0 && 3 * channels <= INT32_MAX && tokens <= INT32_MAX,
               "frame_attention_bf16: bad shape " << tokens << " tokens x " << channels << " channels");
  const size_t row_bytes = static_cast<size_t>(tokens) * sizeof(float);
  int device = 0, max_smem = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  FASTAR_CHECK(row_bytes + 32 * sizeof(float) <= static_cast<size_t>(max_smem),
               "frame_attention_bf16: " << tokens << " tokens per frame; the softmax holds a row of fp32 scores in "
                                        << max_smem << " bytes of shared memory (at most "
                                        << (max_smem / 4 - 32) << " tokens): decode a smaller frame size");
  if (row_bytes > 48 * 1024)
    cudaFuncSetAttribute(softmax_rows_in_place_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(row_bytes));
  const int C = static_cast<int>(channels), N = static_cast<int>(tokens), ld = 3 * C;
  const std::string shape = std::to_string(N) + " tokens x " + std::to_string(C) + " channels";
  FASTAR_VAE_CUBLAS_CHECK(cublasSetStream(cublas, stream), shape);
  // Column-major view: scoresᵀ[N keys, N queries] = K[C, N]ᵀ · Q[C, N] (q, k rows of qkv, stride 3C);
  // row-major that is scores[query, key], the fp32 logits scaled by 1/√C.
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(channels))), one = 1.0f, zero = 0.0f;
  FASTAR_VAE_CUBLAS_CHECK(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, N, N, C, &scale, qkv + C, CUDA_R_16BF, ld,
                                       qkv, CUDA_R_16BF, ld, &zero, scores, CUDA_R_32F, N, CUBLAS_COMPUTE_32F,
                                       CUBLAS_GEMM_DEFAULT),
                          shape);
  softmax_rows_in_place_kernel<<<static_cast<unsigned>(N), 1024, row_bytes, stream>>>(scores, N);
  FASTAR_CUDA_LAUNCH_CHECK("softmax_rows_in_place" << " " << shape);
  // outᵀ[C, N queries] = V[C, N keys] · Pᵀ[N keys, N queries]; P row-major [query, key] in bf16 with
  // row stride 2N elements is column-major [key, query] with leading dimension 2N.
  FASTAR_VAE_CUBLAS_CHECK(cublasGemmEx(cublas, CUBLAS_OP_N, CUBLAS_OP_N, C, N, N, &one, qkv + 2 * C, CUDA_R_16BF, ld,
                                       reinterpret_cast<const __nv_bfloat16*>(scores), CUDA_R_16BF, 2 * N, &zero, out,
                                       CUDA_R_16BF, C, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                          shape);
}

void frames_to_rgb8(uint8_t* out, const __nv_bfloat16* in, int64_t frames, int64_t hw, int64_t in_stride,
                    cudaStream_t stream) {
  const int64_t n = frames * hw * 3;
  if (n == 0) return;
  FASTAR_CHECK(in_stride >= 3, "frames_to_rgb8: the input has " << in_stride << " channels per pixel, needs 3");
  frames_to_rgb8_kernel<<<blocks_for(n), kThreads, 0, stream>>>(out, in, n, in_stride);
  FASTAR_CUDA_LAUNCH_CHECK("frames_to_rgb8" << " " << frames << "x" << hw);
}

void frames_to_f32_planar(float* out, const __nv_bfloat16* in, int64_t frames, int64_t hw, int64_t in_stride,
                          int64_t first_frame, int64_t total_frames, cudaStream_t stream) {
  const int64_t n = 3 * frames * hw;
  if (n == 0) return;
  FASTAR_CHECK(in_stride >= 3 && first_frame >= 0 && first_frame + frames <= total_frames,
               "frames_to_f32_planar: frames [" << first_frame << ", " << first_frame + frames << ") of "
                                                << total_frames << ", " << in_stride << " channels per pixel");
  frames_to_f32_planar_kernel<<<blocks_for(n), kThreads, 0, stream>>>(out, in, frames, hw, in_stride, first_frame,
                                                                      total_frames);
  FASTAR_CUDA_LAUNCH_CHECK("frames_to_f32_planar" << " " << frames << "x" << hw);
}

}  // namespace fastar::cuda
