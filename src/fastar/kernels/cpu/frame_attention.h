// The Wan VAE's mid-block attention core: one head over the pixels of one frame (pipeline-spec.md §2.2,
// AttentionBlock steps 4–5). The norm, the 1×1 qkv/proj convs and the residual are the caller's.
#pragma once

#include <cstdint>

namespace fastar::cpu {

// Channel-first, single head of dimension `channels`, scale 1/√channels, no mask:
//   q, k, v = rows [0, C), [C, 2C), [2C, 3C) of qkv[3C, tokens] (row stride `qkv_row_stride`)
//   out[C, tokens] (row stride `out_row_stride`) = v · softmax(qᵀk / √C)ᵀ
// Token n is pixel h·W + w. Scores are a [tokens, tokens] fp32 buffer (6240² at 60×104).
void frame_attention_forward(float* out, int64_t out_row_stride, const float* qkv, int64_t qkv_row_stride,
                             int64_t channels, int64_t tokens);

}  // namespace fastar::cpu
