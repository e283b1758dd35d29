// Re-positioning already-roped keys along Wan's time axis (Rolling Forcing's attention sink).
//
// RoPE is a rotation per complex pair, so it composes: rope(x, p + δ) = rotate(rope(x, p), δ).
// rope_time_shift applies rotate(·, δ) to the time-axis pairs only, which moves keys roped at
// time position p to position p + δ without the raw keys. Height and width pairs are untouched.
#pragma once

#include <cstdint>

namespace fastar::cpu {

// k[tokens, row_stride]: each row holds `heads` heads of `head_dim` (already roped by
// rope_3d_forward). Per head, with c = head_dim/2 and pairs_t = c − 2·(c/3) (the time axis), pair
// j < pairs_t, (k[2j], k[2j+1]), is rotated by the angle delta_frames·10000^(−2j/n), n = 2·pairs_t,
// computed in double. delta_frames = 0 leaves k bit-identical.
void rope_time_shift(float* k, int64_t row_stride, int64_t tokens, int64_t heads, int64_t head_dim,
                     int64_t delta_frames);

}  // namespace fastar::cpu
