#include "fastar/kernels/cuda/taehv_ops.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "fastar/core/error.h"
#include "fastar/kernels/cuda/cuda_check.h"

namespace fastar::cuda {

namespace {

using bf16 = __nv_bfloat16;

constexpr int kThreads = 256;
constexpr int64_t kVector = 8;  // bf16 per 16-byte access

// Grid for a grid-stride loop over n items.
unsigned grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, int64_t{1} << 20));
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

void check_vectorisable(const char* op, int64_t channels, std::initializer_list<const void*> pointers) {
  FASTAR_CHECK(channels > 0 && channels % kVector == 0,
               op << ": " << channels << " channels; the CUDA TAEHV kernels need a positive multiple of 8 (pad them)");
  for (const void* p : pointers) FASTAR_CHECK(aligned16(p), op << ": a buffer is not 16-byte aligned");
}

// The kernel's copy of TaehvInputParams (no std::array in device code).
struct InputArgs {
  int64_t channels, padded_channels, frames, pixels;
  int dtype;  // LatentDType
  bool denormalise;
  float mean[16], std[16];
};

__device__ float load_latent(const void* latent, int dtype, int64_t i) {
  if (dtype == static_cast<int>(LatentDType::BF16)) return __bfloat162float(static_cast<const bf16*>(latent)[i]);
  if (dtype == static_cast<int>(LatentDType::F16)) return __half2float(static_cast<const __half*>(latent)[i]);
  return static_cast<const float*>(latent)[i];
}

__global__ void decoder_input_kernel(bf16* out, const void* latent, InputArgs a) {
  const int64_t n = a.frames * a.pixels * a.padded_channels;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = i % a.padded_channels, tp = i / a.padded_channels;
    const int64_t t = tp / a.pixels, p = tp % a.pixels;
    float v = 0.0f;
    if (c < a.channels) {
      float z = load_latent(latent, a.dtype, (c * a.frames + t) * a.pixels + p);
      if (a.denormalise) z = z * a.std[c] + a.mean[c];
      v = tanhf(z / 3.0f) * 3.0f;
    }
    out[i] = __float2bfloat16_rn(v);
  }
}

// cat[t, p, 0:C] = x[t, p, :]; cat[t, p, C:2C] = past; one 16-byte vector per item.
__global__ void memblock_concat_kernel(uint4* cat, const uint4* x, const uint4* state, int64_t frames, int64_t pixels,
                                       int64_t vectors_per_pixel) {
  const int64_t v2 = 2 * vectors_per_pixel, n = frames * pixels * v2;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t v = i % v2, tp = i / v2;
    uint4 value;
    if (v < vectors_per_pixel) {
      value = x[tp * vectors_per_pixel + v];
    } else {
      const int64_t t = tp / pixels, p = tp % pixels, u = v - vectors_per_pixel;
      value = t == 0 ? state[p * vectors_per_pixel + u] : x[(tp - pixels) * vectors_per_pixel + u];
    }
    cat[i] = value;
  }
}

// out[s·τ + k, Y, X, :] = y[τ, Y/2, X/2, k·C : (k+1)·C]; one 16-byte vector per item.
__global__ void tgrow_upsample_kernel(uint4* out, const uint4* y, int64_t frames_out, int64_t height, int64_t width,
                                      int64_t vectors_per_pixel, int64_t stride) {
  const int64_t out_w = 2 * width, out_h = 2 * height;
  const int64_t n = frames_out * out_h * out_w * vectors_per_pixel;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t v = i % vectors_per_pixel;
    int64_t rest = i / vectors_per_pixel;
    const int64_t X = rest % out_w;
    rest /= out_w;
    const int64_t Y = rest % out_h;
    const int64_t f = rest / out_h;
    const int64_t tau = f / stride, k = f % stride;
    const int64_t src_pixel = (tau * height + Y / 2) * width + X / 2;
    out[i] = y[(src_pixel * stride + k) * vectors_per_pixel + v];
  }
}

// video_frame_to_rgb's rounding after decode_chunk's clamp: NaN -> 0, else lround(255 · clamp(v, 0, 1))
// (v · 255 is in [0, 255], so its clamp is a no-op; roundf rounds halves away from zero like lround).
__device__ uint8_t quantise_unit(float v) {
  if (v != v) return 0;
  v = fminf(fmaxf(v, 0.0f), 1.0f);
  return static_cast<uint8_t>(roundf(v * 255.0f));
}

__global__ void frames_to_rgb8_kernel(uint8_t* rgb, const bf16* raw, int64_t first_frame, int64_t frames,
                                      int64_t pixels, int64_t raw_channels) {
  const int64_t n = frames * pixels;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint4 packed = *reinterpret_cast<const uint4*>(raw + (first_frame * pixels + i) * raw_channels);
    const bf16* v = reinterpret_cast<const bf16*>(&packed);
#pragma unroll
    for (int c = 0; c < 3; ++c) rgb[i * 3 + c] = quantise_unit(__bfloat162float(v[c]));
  }
}

__global__ void raw_to_planar_kernel(float* out, const bf16* raw, int64_t frames, int64_t pixels, int64_t raw_channels,
                                     int64_t channels) {
  const int64_t n = frames * channels * pixels;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t p = i % pixels, fc = i / pixels;
    const int64_t c = fc % channels, f = fc / channels;
    out[i] = __bfloat162float(raw[(f * pixels + p) * raw_channels + c]);
  }
}

}  // namespace

void taehv_decoder_input(bf16* out, const void* latent, const TaehvInputParams& p, cudaStream_t stream) {
  FASTAR_CHECK(p.channels > 0 && p.padded_channels >= p.channels && p.frames > 0 && p.height > 0 && p.width > 0,
               "taehv_decoder_input: bad shape [" << p.channels << " (padded " << p.padded_channels << "), "
                                                  << p.frames << ", " << p.height << ", " << p.width << "]");
  FASTAR_CHECK(!p.denormalise || p.channels <= 16,
               "taehv_decoder_input: the denormalisation has statistics for 16 channels, the latent has " << p.channels);
  InputArgs a{};
  a.channels = p.channels;
  a.padded_channels = p.padded_channels;
  a.frames = p.frames;
  a.pixels = p.height * p.width;
  a.dtype = static_cast<int>(p.dtype);
  a.denormalise = p.denormalise;
  for (int c = 0; c < 16; ++c) {
    a.mean[c] = p.mean[c];
    a.std[c] = p.std[c];
  }
  decoder_input_kernel<<<grid_for(p.frames * a.pixels * p.padded_channels), kThreads, 0, stream>>>(out, latent, a);
  FASTAR_CUDA_LAUNCH_CHECK("taehv_decoder_input");
}

void taehv_memblock_concat(bf16* cat, const bf16* x, const bf16* state, int64_t frames, int64_t pixels,
                           int64_t channels, cudaStream_t stream) {
  check_vectorisable("taehv_memblock_concat", channels, {cat, x, state});
  FASTAR_CHECK(frames > 0 && pixels > 0, "taehv_memblock_concat: " << frames << " frames of " << pixels << " pixels");
  const int64_t vectors = channels / kVector;
  memblock_concat_kernel<<<grid_for(frames * pixels * 2 * vectors), kThreads, 0, stream>>>(
      reinterpret_cast<uint4*>(cat), reinterpret_cast<const uint4*>(x), reinterpret_cast<const uint4*>(state), frames,
      pixels, vectors);
  FASTAR_CUDA_LAUNCH_CHECK("taehv_memblock_concat");
}

void taehv_tgrow_upsample(bf16* out, const bf16* y, int64_t frames, int64_t height, int64_t width, int64_t channels,
                          int64_t stride, cudaStream_t stream) {
  check_vectorisable("taehv_tgrow_upsample", channels, {out, y});
  FASTAR_CHECK(frames > 0 && height > 0 && width > 0 && stride > 0,
               "taehv_tgrow_upsample: bad shape [" << frames << ", " << height << ", " << width << "], stride " << stride);
  const int64_t vectors = channels / kVector;
  const int64_t frames_out = stride * frames;
  tgrow_upsample_kernel<<<grid_for(frames_out * 4 * height * width * vectors), kThreads, 0, stream>>>(
      reinterpret_cast<uint4*>(out), reinterpret_cast<const uint4*>(y), frames_out, height, width, vectors, stride);
  FASTAR_CUDA_LAUNCH_CHECK("taehv_tgrow_upsample");
}

void taehv_frames_to_rgb8(uint8_t* rgb, const bf16* raw, int64_t first_frame, int64_t frames, int64_t pixels,
                          int64_t raw_channels, cudaStream_t stream) {
  check_vectorisable("taehv_frames_to_rgb8", raw_channels, {raw});
  FASTAR_CHECK(first_frame >= 0 && frames >= 0 && pixels > 0,
               "taehv_frames_to_rgb8: frames [" << first_frame << ", +" << frames << ") of " << pixels << " pixels");
  if (frames == 0) return;
  frames_to_rgb8_kernel<<<grid_for(frames * pixels), kThreads, 0, stream>>>(rgb, raw, first_frame, frames, pixels,
                                                                           raw_channels);
  FASTAR_CUDA_LAUNCH_CHECK("taehv_frames_to_rgb8");
}

void taehv_raw_to_planar(float* out, const bf16* raw, int64_t frames, int64_t pixels, int64_t raw_channels,
                         int64_t channels, cudaStream_t stream) {
  FASTAR_CHECK(channels > 0 && channels <= raw_channels && frames > 0 && pixels > 0,
               "taehv_raw_to_planar: " << channels << " of " << raw_channels << " channels, " << frames << " frames of "
                                       << pixels << " pixels");
  raw_to_planar_kernel<<<grid_for(frames * channels * pixels), kThreads, 0, stream>>>(out, raw, frames, pixels,
                                                                                     raw_channels, channels);
  FASTAR_CUDA_LAUNCH_CHECK("taehv_raw_to_planar");
}

}  // namespace fastar::cuda
