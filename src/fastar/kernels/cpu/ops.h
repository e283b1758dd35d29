// CPU reference kernels for the Wan DiT: framework-free functions on raw fp32 pointers.
//
// These are the specification and the test oracle of every backend: the CUDA versions keep the
// same argument order (plus a stream). Shapes are given in brackets, row-major, in elements.
// All functions are multi-threaded with OpenMP; results do not depend on the thread count.
#pragma once

#include <cstdint>

namespace fastar::cpu {

// out[rows, out_features] = in[rows, in_features] · weight[out_features, in_features]ᵀ + bias[out_features]
// (PyTorch nn.Linear layout). bias may be nullptr. `out` must not alias `in`. GEMM through OpenBLAS.
void linear_forward(float* out, const float* in, const float* weight, const float* bias, int64_t rows,
                    int64_t in_features, int64_t out_features);

// LayerNorm over the last axis of in[rows, dim], statistics in double:
// out = (x - mean) / sqrt(var + eps) * weight + bias. weight and bias may be nullptr (no affine).
// out may alias in.
void layernorm_forward(float* out, const float* in, const float* weight, const float* bias, int64_t rows, int64_t dim,
                       float eps);

// Wan's adaptive LayerNorm: for token n of frame f (row f * tokens_per_frame + n),
//   out = LN(x) * (1 + scale[f]) + shift[f]
// with LN parameter-free. shift and scale are [frames, dim] with row stride `mod_stride`.
// out may alias in.
void adaln_modulate_forward(float* out, const float* in, const float* shift, const float* scale, int64_t mod_stride,
                            int64_t frames, int64_t tokens_per_frame, int64_t dim, float eps);

// RMSNorm over the last axis of in[rows, dim]: out = x / sqrt(mean(x²) + eps) * weight.
// weight may be nullptr. out may alias in.
void rmsnorm_forward(float* out, const float* in, const float* weight, int64_t rows, int64_t dim, float eps);

// x[rows, dim] += y[rows, dim] * gate[f] for rows of frame f (row / tokens_per_frame);
// gate is [frames, dim] with row stride `gate_stride`. gate may be nullptr (plain residual add).
void gated_residual_add(float* x, const float* y, const float* gate, int64_t gate_stride, int64_t frames,
                        int64_t tokens_per_frame, int64_t dim);

// In-place activations on x[n].
void gelu_tanh_forward(float* x, int64_t n);  // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
void silu_forward(float* x, int64_t n);       // x · sigmoid(x)

// Sinusoidal timestep embedding: out[n, dim] with half = dim/2, ω_k = 10000^(-k/half),
// out = [cos(t·ω_0..half-1), sin(t·ω_0..half-1)] (cosine first), computed in double.
void timestep_embedding(float* out, const float* timesteps, int64_t n, int64_t dim);

// 3D rotary embedding of Wan, in place, on x[frames·height·width, heads·head_dim] (row stride
// `row_stride`) whose tokens are laid out raster over (frame, h, w). Per head, the head_dim/2
// complex pairs (x[2i], x[2i+1]) are split across (time, height, width) as
//   c = head_dim/2;  time: c − 2·(c/3) pairs,  height: c/3,  width: c/3
// and pair j of an axis with n = 2·(pairs of that axis) rotates by angle pos·10000^(−2j/n).
// The time position of frame f is frame_start + f, computed in double for any index (there is no
// position table and so no 1024-frame limit); h and w positions are the grid coordinates.
void rope_3d_forward(float* x, int64_t row_stride, int64_t frames, int64_t height, int64_t width, int64_t frame_start,
                     int64_t heads, int64_t head_dim);

// Patchify, Wan's Conv3d with kernel = stride = (pt, ph, pw), as a gather:
// latent[channels, frames, height, width] -> tokens[(F/pt)·(H/ph)·(W/pw), channels·pt·ph·pw],
// token index raster over (f, h, w), feature index ((c·pt + p)·ph + q)·pw + r (channel-major).
void patchify(float* tokens, const float* latent, int64_t channels, int64_t frames, int64_t height, int64_t width,
              int64_t pt, int64_t ph, int64_t pw);

// Unpatchify, the inverse layout of the head's output (note: channel-minor, unlike patchify):
// tokens[(F/pt)·(H/ph)·(W/pw), pt·ph·pw·channels] with feature index ((p·ph + q)·pw + r)·channels + c
// -> latent[channels, frames, height, width].
void unpatchify(float* latent, const float* tokens, int64_t channels, int64_t frames, int64_t height, int64_t width,
                int64_t pt, int64_t ph, int64_t pw);

}  // namespace fastar::cpu
