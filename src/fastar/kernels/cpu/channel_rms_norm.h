// The Wan VAE's RMS_norm over the channel axis, optionally followed by SiLU (pipeline-spec.md §2.2).
#pragma once

#include <cstdint>

namespace fastar::cpu {

// For every position n of x[channels, positions] (channel-first, e.g. [C, T·H·W]):
//   y[c, n] = x[c, n] / max(‖x[:, n]‖₂, 1e-12) · √channels · gamma[c]      (F.normalize, then scale)
// then, if `apply_silu`, y ← y · sigmoid(y). The norm is accumulated in double. out may alias in.
void channel_rms_norm_forward(float* out, const float* in, const float* gamma, int64_t channels, int64_t positions,
                              bool apply_silu);

}  // namespace fastar::cpu
