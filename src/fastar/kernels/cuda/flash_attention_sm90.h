// Hopper (sm_90a) flash-attention forward: wgmma + TMA + mbarriers, warp-specialised (FA3-style
// design, written from scratch). Internal to the CUDA backend: callers use attention_forward_bf16
// (flash_attention.h), which sends the calls this kernel accepts here and everything else to the
// portable mma.sync kernel. Design, layouts and what was verified how: docs/attention-sm90.md.
//
// Accepted (attention_sm90_accepts): the current device is compute capability 9.0; head_dim 64 or
// 128; q_len, kv_len >= 1; no block-causal mask; block-sparse only with block_q == 128 and block_k
// a multiple of 128; every row/head stride of q/k/v non-zero (multiples of 8 elements and 16-byte
// aligned pointers are already required by attention_forward_bf16). key_bias: any.
#pragma once

#include <cuda_runtime.h>

#include "fastar/kernels/cpu/attention.h"

namespace fastar::cuda {

// True when attention_forward_bf16 runs p on the Hopper kernel (unless FASTAR_ATTENTION=fa2 is
// set, or the driver refuses p's TMA descriptors, in which case it falls back to the mma.sync kernel).
bool attention_sm90_accepts(const AttentionParams& p);

// Runs the Hopper kernel. p must be valid for attention_forward_bf16 and accepted by
// attention_sm90_accepts. Returns cudaErrorNotSupported, launching nothing, when the driver does
// not provide cuTensorMapEncodeTiled or refuses p's tensor maps (the caller then falls back).
cudaError_t attention_forward_bf16_sm90(const AttentionParams& p, cudaStream_t stream);

}  // namespace fastar::cuda
