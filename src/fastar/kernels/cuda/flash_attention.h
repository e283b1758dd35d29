// Scaled dot-product attention forward on the GPU, bf16 in / bf16 out, fp32 accumulation
// (FlashAttention-2 style: tiles in shared memory, tensor-core mma.sync, online softmax).
//
// Same AttentionParams and semantics as the fp32 CPU reference (fastar/kernels/cpu/attention.h),
// except that q, k, v and o are __nv_bfloat16 device pointers. lse, key_bias, block_offsets and
// block_index, when given, are device pointers too.
//
// Accepted parameters (anything else returns cudaErrorInvalidValue and launches nothing):
//   - head_dim 64 or 128;
//   - the last dimension of q/k/v/o contiguous, the pointers 16-byte aligned and every row/head
//     stride a multiple of 8 elements (16 bytes; tiles are copied with 16-byte cp.async);
//   - any q_len >= 0, kv_len >= 0 (partial tiles are masked), num_heads in [1, 65535];
//   - key_bias: any head stride (0 = shared across heads), 4-byte aligned;
//   - block-sparse: block_q 64 or 128 (it becomes the kernel's query tile), block_k a positive
//     multiple of 64; entries of block_index must be >= 0 (blocks past kv_len are skipped);
//   - block-causal: causal_block >= 1 and q_len <= kv_len.
// The variants combine freely (bias + block-sparse + block-causal).
// A row the mask leaves with no visible key gets o = 0 and lse = -inf.
// On an sm_90 device the calls that flash_attention_sm90.h accepts (head_dim 64/128, bias and/or
// block-sparse with block_q 128, no block-causal) run on the Hopper wgmma/TMA kernel; the rest, or
// every call when the environment sets FASTAR_ATTENTION=fa2, on the portable mma.sync kernel.
// Errors are returned, never thrown; a launch error is returned as well (the launch is async, so
// faults inside the kernel show up at the next synchronizing call).
#pragma once

#include <cuda_runtime.h>

#include "fastar/kernels/cpu/attention.h"

namespace fastar::cuda {

cudaError_t attention_forward_bf16(const AttentionParams& p, cudaStream_t stream);

}  // namespace fastar::cuda
