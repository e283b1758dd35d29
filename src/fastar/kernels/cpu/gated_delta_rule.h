// The gated delta rule (Gated DeltaNet) of ARL²'s hybrid layers (papers.md §2.2), as one params
// struct shared by the CPU reference and the CUDA kernels.
//
// Per head h, the state S_h is a [key_dim, value_dim] fp32 matrix. Over the tokens t = 0..T−1 of a
// chunk, in raster order (the update):
//
//     S ← α_t (I − β_t k_t k_tᵀ) S + β_t k_t v_tᵀ,        α_t = exp(g_t),  β_t ∈ (0, 2)
//       = α_t S + β_t k_t (v_t − α_t Sᵀ k_t)ᵀ             (flash-linear-attention's form)
//
// and, for every token, against the state as it was BEFORE the chunk's update (the read):
//
//     o_t = [o_t if accumulate] + gate_t · scale · q_tᵀ S                 (o_t: [value_dim])
//
// k and q are used as given: ARL² L2-normalises them before (the kernels do not).
//
// Two update algorithms give the same result up to rounding:
//   - recurrent: the token-by-token loop above (the specification);
//   - chunked (WY/UT form): tokens in tiles of C; with γ_i = exp(Σ_{j≤i} g_j) inside the tile,
//       A[i][j] = β_i (γ_i/γ_j) k_i·k_j  for j < i  (strictly lower),  T = (I + A)⁻¹,
//       W = T · diag(β γ) K,   Û = T · diag(β) V,     (the WY representation, independent of S)
//       U = Û − W S,           S ← γ_C S + Σ_i (γ_C/γ_i) k_i u_iᵀ
//     so the only sequential work is two small GEMMs per tile; W and Û are fully parallel.
#pragma once

#include <cstdint>

#include "fastar/core/dtype.h"

namespace fastar {

struct GatedDeltaRuleParams {
  // q/k: [tokens, heads, key_dim], v: [tokens, heads, value_dim], o: [tokens, heads, value_dim];
  // any row/head strides (elements), the last dimension contiguous. Element type: io_dtype.
  const void* q = nullptr;  // read only (the update ignores it)
  const void* k = nullptr;  // update only
  const void* v = nullptr;  // update only
  void* o = nullptr;        // read only
  int64_t q_row_stride = 0, q_head_stride = 0;
  int64_t k_row_stride = 0, k_head_stride = 0;
  int64_t v_row_stride = 0, v_head_stride = 0;
  int64_t o_row_stride = 0, o_head_stride = 0;
  DType io_dtype = DType::F32;  // q, k, v, o: F32 (CPU and CUDA) or BF16 (CUDA only)

  // Per token and head, fp32, [tokens, heads] with row stride `gate_row_stride` (elements; heads contiguous):
  const float* log_alpha = nullptr;  // g_t = log α_t <= 0 (update)
  const float* beta = nullptr;       // β_t (update)
  int64_t gate_row_stride = 0;       // shared by log_alpha, beta and read_gate
  const float* read_gate = nullptr;  // gate_t of the read; nullptr = 1

  // S: fp32 [heads, key_dim, value_dim], head h at state + h · state_head_stride, rows of value_dim
  // contiguous. The update rewrites it in place; the read only reads it.
  float* state = nullptr;
  int64_t state_head_stride = 0;

  int64_t tokens = 0;
  int64_t heads = 0;
  int64_t key_dim = 0;
  int64_t value_dim = 0;
  float scale = 0.0f;       // the read's scale (ARL²: 1/√key_dim)
  bool accumulate = false;  // read: add into o instead of overwriting it
  int64_t chunk_size = 64;  // tile length C of the chunked update (any value >= 1)
};

// Params for packed q/k/v/o [tokens, heads·dim], per-token gates [tokens, heads], a contiguous state
// [heads, dim, dim], scale 1/√dim, fp32.
GatedDeltaRuleParams packed_gated_delta_rule_params(const float* q, const float* k, const float* v, float* o,
                                                    const float* log_alpha, const float* beta, float* state,
                                                    int64_t tokens, int64_t heads, int64_t dim);

// Throws fastar::Error if the params cannot describe a valid call (shapes, strides, missing pointers).
// `what`: "update" or "read".
void validate_gated_delta_rule_params(const GatedDeltaRuleParams& p, const char* what);

namespace cpu {

// The update, token by token (the specification), fp32 arithmetic. Threads over heads.
void gated_delta_rule_update_recurrent(const GatedDeltaRuleParams& p);
// The update in the chunked WY/UT form, tiles of p.chunk_size tokens (the CUDA kernel's algorithm).
void gated_delta_rule_update_chunked(const GatedDeltaRuleParams& p);
// The read o = [o +] gate · scale · qᵀS of every token against the current state. Threads over tokens.
void gated_delta_rule_read(const GatedDeltaRuleParams& p);

}  // namespace cpu
}  // namespace fastar
