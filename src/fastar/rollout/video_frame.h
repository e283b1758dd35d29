// Decoded video frames as 8-bit RGB (pipeline-spec.md §1 step 6, "Quantise"): values in [0, 1]
// become round(255 · v), clamped; fastar rounds to nearest where the Python references truncate
// (expect ±1 against them, pipeline-spec.md §2.5).
#pragma once

#include "fastar/core/tensor.h"
#include "fastar/rollout/frame_sink.h"

namespace fastar {

// frames: [T, 3, height, width] fp32 in [0, 1] (a decoder's output); returns frame t as 8-bit RGB.
// A NaN becomes 0.
RgbFrame video_frame_to_rgb(const Tensor& frames, int64_t t);

}  // namespace fastar
