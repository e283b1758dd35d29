#include "fastar/kernels/cuda/ops.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "fastar/core/error.h"
#include "fastar/kernels/cuda/cuda_check.h"

namespace fastar::cuda {

namespace {

constexpr int kElementwiseThreads = 256;
constexpr int kMaxRowThreads = 256;

// Grid for a grid-stride elementwise loop over n items.
unsigned elementwise_blocks(int64_t n) {
  const int64_t blocks = (n + kElementwiseThreads - 1) / kElementwiseThreads;
  return static_cast<unsigned>(std::min<int64_t>(blocks, int64_t{1} << 20));
}

// Threads for a one-block-per-row kernel touching `work` items per row: a multiple of 32 in [32, 256].
int row_threads(int64_t work) {
  const int64_t t = (work + 31) / 32 * 32;
  return static_cast<int>(std::clamp<int64_t>(t, 32, kMaxRowThreads));
}

void check_rows(int64_t rows, const char* op) {
  FASTAR_CHECK(rows >= 0 && rows <= std::numeric_limits<int32_t>::max(), op << ": too many rows (" << rows << ")");
}

bool aligned(const void* p, uintptr_t bytes) { return (reinterpret_cast<uintptr_t>(p) % bytes) == 0; }

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// `scratch` holds 32 floats; the function synchronises before returning and may be called repeatedly.
__device__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = lane < warps ? scratch[lane] : 0.0f;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) total += __shfl_xor_sync(0xffffffffu, total, o);
  return total;
}

// mean and 1/sqrt(var + eps) of the fp32 row x[dim] (two passes; the row stays in L1/L2).
__device__ void row_moments(const float* x, int64_t dim, float eps, float* scratch, float* mean, float* inv_std) {
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) s += x[i];
  const float m = block_sum(s, scratch) / static_cast<float>(dim);
  float q = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const float d = x[i] - m;
    q += d * d;
  }
  const float var = block_sum(q, scratch) / static_cast<float>(dim);
  *mean = m;
  *inv_std = rsqrtf(var + eps);
}

// ---- norms ---------------------------------------------------------------------------------------

__global__ void adaln_modulate_kernel(__nv_bfloat16* __restrict__ out, const float* __restrict__ x,
                                      const float* __restrict__ shift, const float* __restrict__ scale,
                                      int64_t mod_stride, int64_t tokens_per_frame, int64_t dim, float eps) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const int64_t f = r / tokens_per_frame;
  const float* xr = x + r * dim;
  const float* sh = shift + f * mod_stride;
  const float* sc = scale + f * mod_stride;
  float mean, inv_std;
  row_moments(xr, dim, eps, scratch, &mean, &inv_std);
  __nv_bfloat16* y = out + r * dim;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const float normed = (xr[i] - mean) * inv_std;
    y[i] = __float2bfloat16_rn(normed * (1.0f + sc[i]) + sh[i]);
  }
}

__global__ void layernorm_kernel(__nv_bfloat16* __restrict__ out, const float* __restrict__ x,
                                 const float* __restrict__ weight, const float* __restrict__ bias, int64_t dim,
                                 float eps) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const float* xr = x + r * dim;
  float mean, inv_std;
  row_moments(xr, dim, eps, scratch, &mean, &inv_std);
  __nv_bfloat16* y = out + r * dim;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = (xr[i] - mean) * inv_std;
    if (weight) v *= weight[i];
    if (bias) v += bias[i];
    y[i] = __float2bfloat16_rn(v);
  }
}

// One block per token row. Dynamic shared memory: cos[c], sin[c] (fp32), c = head_dim / 2.
__global__ void rmsnorm_rope_kernel(__nv_bfloat16* __restrict__ x, int64_t row_stride, const float* __restrict__ weight,
                                    int64_t height, int64_t width, int64_t frame_start, int64_t heads,
                                    int64_t head_dim, float eps, bool apply_rope) {
  extern __shared__ float rope_table[];
  __shared__ float scratch[32];
  const int64_t n = blockIdx.x;
  const int64_t c = head_dim / 2;
  const int64_t pairs = heads * c;
  float* cos_s = rope_table;
  float* sin_s = rope_table + c;
  __nv_bfloat162* row = reinterpret_cast<__nv_bfloat162*>(x + n * row_stride);

  if (apply_rope) {
    const int64_t f = n / (height * width), h = (n / width) % height, w = n % width;
    const int64_t pairs_h = c / 3, pairs_t = c - 2 * (c / 3);
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
      double pos, jj, axis_pairs;
      if (j < pairs_t) {
        pos = static_cast<double>(frame_start + f);
        jj = static_cast<double>(j);
        axis_pairs = static_cast<double>(pairs_t);
      } else if (j < pairs_t + pairs_h) {
        pos = static_cast<double>(h);
        jj = static_cast<double>(j - pairs_t);
        axis_pairs = static_cast<double>(pairs_h);
      } else {
        pos = static_cast<double>(w);
        jj = static_cast<double>(j - pairs_t - pairs_h);
        axis_pairs = static_cast<double>(pairs_h);  // pairs_w == pairs_h
      }
      // 10000^(−2j/n) with n = 2·axis_pairs, i.e. 10000^(−j/axis_pairs).
      const double angle = pos * pow(10000.0, -2.0 * jj / (2.0 * axis_pairs));
      double s, co;
      sincos(angle, &s, &co);
      cos_s[j] = static_cast<float>(co);
      sin_s[j] = static_cast<float>(s);
    }
  }

  float inv_rms = 1.0f;
  if (weight) {
    float q = 0.0f;
    for (int64_t p = threadIdx.x; p < pairs; p += blockDim.x) {
      const float2 v = __bfloat1622float2(row[p]);
      q += v.x * v.x + v.y * v.y;
    }
    inv_rms = rsqrtf(block_sum(q, scratch) / static_cast<float>(2 * pairs) + eps);
  } else {
    __syncthreads();  // the rope table
  }

  for (int64_t p = threadIdx.x; p < pairs; p += blockDim.x) {
    float2 v = __bfloat1622float2(row[p]);
    if (weight) {
      v.x = v.x * inv_rms * weight[2 * p];
      v.y = v.y * inv_rms * weight[2 * p + 1];
    }
    if (apply_rope) {
      const int64_t j = p % c;
      const float cs = cos_s[j], sn = sin_s[j];
      const float a = v.x, b = v.y;
      v.x = a * cs - b * sn;
      v.y = a * sn + b * cs;
    }
    row[p] = __float22bfloat162_rn(v);
  }
}

// ---- elementwise ---------------------------------------------------------------------------------

__global__ void gated_residual_add_kernel(float* __restrict__ x, const __nv_bfloat16* __restrict__ y,
                                          const float* __restrict__ gate, int64_t gate_stride,
                                          int64_t tokens_per_frame, int64_t dim) {
  const int64_t r = blockIdx.x;
  float* xr = x + r * dim;
  const __nv_bfloat16* yr = y + r * dim;
  const float* g = gate ? gate + (r / tokens_per_frame) * gate_stride : nullptr;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const float yv = __bfloat162float(yr[i]);
    xr[i] += g ? yv * g[i] : yv;
  }
}

// dim % 4 == 0, x and gate 16-byte aligned, y 8-byte aligned, gate_stride % 4 == 0.
__global__ void gated_residual_add_vec4_kernel(float* __restrict__ x, const __nv_bfloat16* __restrict__ y,
                                               const float* __restrict__ gate, int64_t gate_stride,
                                               int64_t tokens_per_frame, int64_t dim) {
  const int64_t r = blockIdx.x;
  const int64_t quads = dim / 4;
  float4* xr = reinterpret_cast<float4*>(x + r * dim);
  const uint2* yr = reinterpret_cast<const uint2*>(y + r * dim);
  const float4* g = gate ? reinterpret_cast<const float4*>(gate + (r / tokens_per_frame) * gate_stride) : nullptr;
  for (int64_t i = threadIdx.x; i < quads; i += blockDim.x) {
    const uint2 raw = yr[i];
    const float2 y01 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.x));
    const float2 y23 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.y));
    float4 xv = xr[i];
    if (g) {
      const float4 gv = g[i];
      xv.x += y01.x * gv.x;
      xv.y += y01.y * gv.y;
      xv.z += y23.x * gv.z;
      xv.w += y23.y * gv.w;
    } else {
      xv.x += y01.x;
      xv.y += y01.y;
      xv.z += y23.x;
      xv.w += y23.y;
    }
    xr[i] = xv;
  }
}

__global__ void timestep_kernel(float* __restrict__ out, const float* __restrict__ timesteps, int64_t n, int64_t half) {
  const int64_t total = n * half;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = idx / half, k = idx % half;
    const double t = timesteps[r];
    const double omega = pow(10000.0, -static_cast<double>(k) / static_cast<double>(half));
    double s, co;
    sincos(t * omega, &s, &co);
    out[r * 2 * half + k] = static_cast<float>(co);
    out[r * 2 * half + half + k] = static_cast<float>(s);
  }
}

__global__ void silu_kernel(float* __restrict__ x, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = x[i];
    x[i] = v / (1.0f + expf(-v));
  }
}

__global__ void bf16_to_f32_kernel(float* __restrict__ out, const __nv_bfloat16* __restrict__ in, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = __bfloat162float(in[i]);
}

__global__ void add_rows_kernel(float* out, const float* __restrict__ table, const float* rows, int64_t n_rows,
                                int64_t width) {
  const int64_t total = n_rows * width;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = table[i % width] + rows[i];
}

struct PatchGrid {
  int64_t channels, frames, height, width, pt, ph, pw, gh, gw, features, tokens;
};

PatchGrid patch_grid(int64_t channels, int64_t frames, int64_t height, int64_t width, int64_t pt, int64_t ph,
                     int64_t pw, const char* op) {
  FASTAR_CHECK(channels >= 0 && frames >= 0 && height >= 0 && width >= 0 && pt > 0 && ph > 0 && pw > 0,
               op << ": bad shape");
  PatchGrid g{channels, frames, height, width, pt, ph, pw, height / ph, width / pw, channels * pt * ph * pw, 0};
  g.tokens = (frames / pt) * g.gh * g.gw;
  return g;
}

// One thread per token element; the token side is contiguous (coalesced writes).
__global__ void patchify_kernel(__nv_bfloat16* __restrict__ tokens, const float* __restrict__ latent, PatchGrid g) {
  const int64_t total = g.tokens * g.features;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = idx / g.features, k = idx % g.features;
    const int64_t f = n / (g.gh * g.gw), h = (n / g.gw) % g.gh, w = n % g.gw;
    const int64_t r = k % g.pw, q = (k / g.pw) % g.ph, p = (k / (g.pw * g.ph)) % g.pt, c = k / (g.pw * g.ph * g.pt);
    tokens[idx] =
        __float2bfloat16_rn(latent[((c * g.frames + f * g.pt + p) * g.height + h * g.ph + q) * g.width + w * g.pw + r]);
  }
}

__global__ void unpatchify_kernel(float* __restrict__ latent, const __nv_bfloat16* __restrict__ tokens, PatchGrid g) {
  const int64_t total = g.tokens * g.features;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = idx / g.features, k = idx % g.features;
    const int64_t f = n / (g.gh * g.gw), h = (n / g.gw) % g.gh, w = n % g.gw;
    const int64_t c = k % g.channels, r = (k / g.channels) % g.pw, q = (k / (g.channels * g.pw)) % g.ph,
                  p = k / (g.channels * g.pw * g.ph);
    latent[((c * g.frames + f * g.pt + p) * g.height + h * g.ph + q) * g.width + w * g.pw + r] =
        __bfloat162float(tokens[idx]);
  }
}

__global__ void flow_step_kernel(float* x, float* x0, const float* __restrict__ v, const float* __restrict__ noise,
                                 float sigma, float next_sigma, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float clean = x[i] - sigma * v[i];
    x0[i] = clean;
    if (noise) x[i] = (1.0f - next_sigma) * clean + next_sigma * noise[i];
  }
}

}  // namespace

void adaln_modulate(__nv_bfloat16* out, const float* x, const float* shift, const float* scale, int64_t mod_stride,
                    int64_t frames, int64_t tokens_per_frame, int64_t dim, float eps, cudaStream_t stream) {
  const int64_t rows = frames * tokens_per_frame;
  check_rows(rows, "adaln_modulate");
  if (rows == 0 || dim == 0) return;
  adaln_modulate_kernel<<<static_cast<unsigned>(rows), row_threads(dim), 0, stream>>>(out, x, shift, scale, mod_stride,
                                                                                     tokens_per_frame, dim, eps);
  FASTAR_CUDA_LAUNCH_CHECK("adaln_modulate");
}

void layernorm(__nv_bfloat16* out, const float* x, const float* weight, const float* bias, int64_t rows, int64_t dim,
               float eps, cudaStream_t stream) {
  check_rows(rows, "layernorm");
  if (rows == 0 || dim == 0) return;
  layernorm_kernel<<<static_cast<unsigned>(rows), row_threads(dim), 0, stream>>>(out, x, weight, bias, dim, eps);
  FASTAR_CUDA_LAUNCH_CHECK("layernorm");
}

void rmsnorm_rope(__nv_bfloat16* x, int64_t row_stride, const float* weight, int64_t frames, int64_t height,
                  int64_t width, int64_t frame_start, int64_t heads, int64_t head_dim, float eps, bool apply_rope,
                  cudaStream_t stream) {
  FASTAR_CHECK(head_dim > 0 && head_dim % 2 == 0, "rmsnorm_rope: head_dim must be even, got " << head_dim);
  FASTAR_CHECK(row_stride % 2 == 0 && aligned(x, 4), "rmsnorm_rope: row_stride must be even and x 4-byte aligned");
  FASTAR_CHECK(row_stride >= heads * head_dim, "rmsnorm_rope: row_stride " << row_stride << " < heads·head_dim");
  const int64_t rows = frames * height * width;
  check_rows(rows, "rmsnorm_rope");
  if (rows == 0 || heads == 0 || (!weight && !apply_rope)) return;
  const int64_t c = head_dim / 2;
  const size_t shared = apply_rope ? static_cast<size_t>(2 * c) * sizeof(float) : 0;
  FASTAR_CHECK(shared <= 48 * 1024, "rmsnorm_rope: head_dim " << head_dim << " too large");
  rmsnorm_rope_kernel<<<static_cast<unsigned>(rows), row_threads(heads * c), shared, stream>>>(
      x, row_stride, weight, height, width, frame_start, heads, head_dim, eps, apply_rope);
  FASTAR_CUDA_LAUNCH_CHECK("rmsnorm_rope");
}

void gated_residual_add(float* x, const __nv_bfloat16* y, const float* gate, int64_t gate_stride, int64_t frames,
                        int64_t tokens_per_frame, int64_t dim, cudaStream_t stream) {
  const int64_t rows = frames * tokens_per_frame;
  check_rows(rows, "gated_residual_add");
  if (rows == 0 || dim == 0) return;
  const bool vec = dim % 4 == 0 && aligned(x, 16) && aligned(y, 8) &&
                   (gate == nullptr || (aligned(gate, 16) && gate_stride % 4 == 0));
  if (vec) {
    gated_residual_add_vec4_kernel<<<static_cast<unsigned>(rows), row_threads(dim / 4), 0, stream>>>(
        x, y, gate, gate_stride, tokens_per_frame, dim);
  } else {
    gated_residual_add_kernel<<<static_cast<unsigned>(rows), row_threads(dim), 0, stream>>>(x, y, gate, gate_stride,
                                                                                           tokens_per_frame, dim);
  }
  FASTAR_CUDA_LAUNCH_CHECK("gated_residual_add");
}

void timestep_mlp_input(float* out, const float* timesteps, int64_t n, int64_t dim, cudaStream_t stream) {
  FASTAR_CHECK(dim % 2 == 0, "timestep_mlp_input: odd dim " << dim);
  const int64_t total = n * (dim / 2);
  if (total <= 0) return;
  timestep_kernel<<<elementwise_blocks(total), kElementwiseThreads, 0, stream>>>(out, timesteps, n, dim / 2);
  FASTAR_CUDA_LAUNCH_CHECK("timestep_mlp_input");
}

void silu(float* x, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  silu_kernel<<<elementwise_blocks(n), kElementwiseThreads, 0, stream>>>(x, n);
  FASTAR_CUDA_LAUNCH_CHECK("silu");
}

void bf16_to_f32(float* out, const __nv_bfloat16* in, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  bf16_to_f32_kernel<<<elementwise_blocks(n), kElementwiseThreads, 0, stream>>>(out, in, n);
  FASTAR_CUDA_LAUNCH_CHECK("bf16_to_f32");
}

void add_rows(float* out, const float* table, const float* rows, int64_t n_rows, int64_t width, cudaStream_t stream) {
  const int64_t total = n_rows * width;
  if (total <= 0) return;
  add_rows_kernel<<<elementwise_blocks(total), kElementwiseThreads, 0, stream>>>(out, table, rows, n_rows, width);
  FASTAR_CUDA_LAUNCH_CHECK("add_rows");
}

void patchify(__nv_bfloat16* tokens, const float* latent, int64_t channels, int64_t frames, int64_t height,
              int64_t width, int64_t pt, int64_t ph, int64_t pw, cudaStream_t stream) {
  const PatchGrid g = patch_grid(channels, frames, height, width, pt, ph, pw, "patchify");
  const int64_t total = g.tokens * g.features;
  if (total <= 0) return;
  patchify_kernel<<<elementwise_blocks(total), kElementwiseThreads, 0, stream>>>(tokens, latent, g);
  FASTAR_CUDA_LAUNCH_CHECK("patchify");
}

void unpatchify(float* latent, const __nv_bfloat16* tokens, int64_t channels, int64_t frames, int64_t height,
                int64_t width, int64_t pt, int64_t ph, int64_t pw, cudaStream_t stream) {
  const PatchGrid g = patch_grid(channels, frames, height, width, pt, ph, pw, "unpatchify");
  const int64_t total = g.tokens * g.features;
  if (total <= 0) return;
  unpatchify_kernel<<<elementwise_blocks(total), kElementwiseThreads, 0, stream>>>(latent, tokens, g);
  FASTAR_CUDA_LAUNCH_CHECK("unpatchify");
}

void flow_step(float* x, float* x0, const float* v, const float* noise, float sigma, float next_sigma, int64_t n,
               cudaStream_t stream) {
  if (n <= 0) return;
  flow_step_kernel<<<elementwise_blocks(n), kElementwiseThreads, 0, stream>>>(x, x0, v, noise, sigma, next_sigma, n);
  FASTAR_CUDA_LAUNCH_CHECK("flow_step");
}

}  // namespace fastar::cuda
