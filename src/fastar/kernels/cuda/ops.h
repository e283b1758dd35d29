// CUDA versions of the Wan DiT ops of fastar/kernels/cpu/ops.h (the specification and the oracle).
//
// Each function mirrors the CPU op of the same name — same argument order, same layouts, same
// formulas — with device pointers and the stream last. The activations that feed a GEMM or the
// attention kernel are bf16; the residual stream, the modulation vectors and the latents stay fp32.
// Row statistics (mean, variance, mean square) are accumulated in fp32 (two-pass: mean first, then
// the centred sum of squares) by one thread block per row. Everything is asynchronous on `stream`;
// launch errors throw fastar::Error (faults inside a kernel show up at the next synchronising call).
// Rows with 0 elements and zero counts are no-ops. Checked by tests/cuda/ops_check.cu.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace fastar::cuda {

// cpu::adaln_modulate_forward with x the fp32 residual stream and a bf16 output:
//   out[r] = bf16(LN(x[r]) * (1 + scale[f]) + shift[f]),  f = r / tokens_per_frame,
// LN parameter-free; shift/scale are [frames, dim] with row stride mod_stride. out must not alias x.
void adaln_modulate(__nv_bfloat16* out, const float* x, const float* shift, const float* scale, int64_t mod_stride,
                    int64_t frames, int64_t tokens_per_frame, int64_t dim, float eps, cudaStream_t stream);

// cpu::layernorm_forward, fp32 in, bf16 out: out = bf16((x - mean)/sqrt(var + eps) * weight + bias).
// weight, bias: fp32 [dim], each may be nullptr.
void layernorm(__nv_bfloat16* out, const float* x, const float* weight, const float* bias, int64_t rows, int64_t dim,
               float eps, cudaStream_t stream);

// In place on x[frames·height·width rows, heads·head_dim] bf16 with row stride `row_stride` (elements):
//   1. if weight != nullptr: cpu::rmsnorm_forward over the whole row of heads·head_dim elements
//      (Wan's norm_q / norm_k), x = x / sqrt(mean(x²) + eps) * weight (weight fp32 [heads·head_dim]);
//      weight == nullptr skips the norm (unlike cpu::rmsnorm_forward, which would still normalise);
//   2. if apply_rope: cpu::rope_3d_forward (per head, pairs (x[2j], x[2j+1]); c = head_dim/2 pairs
//      split time c − 2⌊c/3⌋, height ⌊c/3⌋, width ⌊c/3⌋; angle pos·10000^(−2j/n), n = 2·pairs of the axis;
//      time position frame_start + f).
// The normalised values stay fp32 between the two steps; one bf16 rounding at the end.
// Angle accuracy: each block (one token row) computes the c (cos, sin) of its (f, h, w) in double
// — ω = 10000^(−2j/n) with pow in double, angle = pos·ω in double, sincos in double with its full
// argument reduction — and keeps them in shared memory as fp32 for all heads. So a frame index of
// 100000 (angles up to ~1e5 rad) is exact to double precision before the fp32 rounding of cos/sin
// (~6e-8 absolute), with no position table and no frame limit.
// Requires head_dim even, row_stride even and x 4-byte aligned (pairs are read as bf16x2).
void rmsnorm_rope(__nv_bfloat16* x, int64_t row_stride, const float* weight, int64_t frames, int64_t height,
                  int64_t width, int64_t frame_start, int64_t heads, int64_t head_dim, float eps, bool apply_rope,
                  cudaStream_t stream);

// cpu::gated_residual_add with y bf16: x[r, i] += float(y[r, i]) * gate[f, i] (gate row stride gate_stride,
// f = r / tokens_per_frame); gate == nullptr: x += y. Vectorised (float4 / 4×bf16) when dim % 4 == 0 and
// the pointers and gate_stride allow it, scalar otherwise (same results).
void gated_residual_add(float* x, const __nv_bfloat16* y, const float* gate, int64_t gate_stride, int64_t frames,
                        int64_t tokens_per_frame, int64_t dim, cudaStream_t stream);

// cpu::timestep_embedding (the time MLP's input): out[n, dim], half = dim/2, ω_k = 10000^(−k/half),
// out = [cos(t·ω), sin(t·ω)] (cosine first), computed in double. dim must be even.
void timestep_mlp_input(float* out, const float* timesteps, int64_t n, int64_t dim, cudaStream_t stream);

// cpu::silu_forward: x[i] = x[i] · sigmoid(x[i]), in place, fp32.
void silu(float* x, int64_t n, cudaStream_t stream);

// out[i] = float(in[i]) for n elements (exact). The reverse is convert_f32_to_bf16 (device_memory.h).
void bf16_to_f32(float* out, const __nv_bfloat16* in, int64_t n, cudaStream_t stream);

// out[r, i] = table[i] + rows[r, i] for r < n_rows, i < width (all fp32, contiguous); e.g. a block's
// modulation table plus the time embedding e0. out may alias rows.
void add_rows(float* out, const float* table, const float* rows, int64_t n_rows, int64_t width, cudaStream_t stream);

// cpu::patchify with bf16 tokens: latent[channels, frames, height, width] fp32 ->
// tokens[(F/pt)·(H/ph)·(W/pw), channels·pt·ph·pw] bf16, feature ((c·pt + p)·ph + q)·pw + r.
void patchify(__nv_bfloat16* tokens, const float* latent, int64_t channels, int64_t frames, int64_t height,
              int64_t width, int64_t pt, int64_t ph, int64_t pw, cudaStream_t stream);

// cpu::unpatchify with bf16 tokens: tokens[(F/pt)·(H/ph)·(W/pw), pt·ph·pw·channels] bf16, feature
// ((p·ph + q)·pw + r)·channels + c -> latent[channels, frames, height, width] fp32. Latent elements
// outside the patch grid (F, H, W not multiples of the patch) are left untouched, as on the CPU.
void unpatchify(float* latent, const __nv_bfloat16* tokens, int64_t channels, int64_t frames, int64_t height,
                int64_t width, int64_t pt, int64_t ph, int64_t pw, cudaStream_t stream);

// One flow-matching Euler/re-noise step on n fp32 elements (velocity prediction v):
//   x0 = x − sigma·v;   if noise != nullptr: x = (1 − next_sigma)·x0 + next_sigma·noise  (else x unchanged).
// x0 may not alias v or noise; it may alias x only when noise == nullptr.
void flow_step(float* x, float* x0, const float* v, const float* noise, float sigma, float next_sigma, int64_t n,
               cudaStream_t stream);

}  // namespace fastar::cuda
