// The gated delta rule of ARL²'s hybrid layers on the GPU: the chunked (WY/UT) state update and the
// fused gated read. Same GatedDeltaRuleParams and semantics as the CPU reference
// (fastar/kernels/cpu/gated_delta_rule.h); every pointer is a device pointer.
//
// Update, two kernels:
//   1. prepare (parallel over 64-token tiles × heads): the in-tile cumulative log-decay, the
//      strictly lower A, T = (I + A)⁻¹ by forward substitution, W = T·diag(βγ)·K and Û = T·diag(β)·V,
//      written to the workspace;
//   2. scan (one block per head × 32 value columns, sequential over tiles): U = Û − W·S, then
//      S ← γ_C·S + Kᵀ·diag(γ_C/γ)·U, with the state slice [key_dim, 32] resident in shared memory.
// Read: one block per (64 tokens, head, 32 value columns): o = [o +] gate · scale · q·S.
//
// Accepted parameters (anything else returns cudaErrorInvalidValue and launches nothing):
//   - io_dtype F32 or BF16 (q, k, v, o); log_alpha, beta, read_gate and the state are fp32;
//   - key_dim in [1, 128], value_dim a positive multiple of 32, heads in [1, 65535];
//   - the last dimension of q/k/v/o and the state rows contiguous (strides in elements, any value);
//   - the update tiles are always 64 tokens (p.chunk_size is the CPU kernel's option), any tokens >= 0.
// The update reads and rewrites p.state in place; the read never writes it, so reading and then
// updating in one stream gives every token the pre-update state.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "fastar/kernels/cpu/gated_delta_rule.h"

namespace fastar::cuda {

// Device workspace the update needs for p: fp32 W [tokens, heads, key_dim], Û [tokens, heads,
// value_dim] and the cumulative log-decay [tokens, heads].
size_t gated_delta_rule_workspace_bytes(const GatedDeltaRuleParams& p);

cudaError_t gated_delta_rule_update(const GatedDeltaRuleParams& p, void* workspace, size_t workspace_bytes,
                                    cudaStream_t stream);

cudaError_t gated_delta_rule_read(const GatedDeltaRuleParams& p, cudaStream_t stream);

}  // namespace fastar::cuda
