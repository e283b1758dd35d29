// Frames from latents, for models without a decoder: the first three channels as RGB, mapped
// from [−1, 1] to [0, 255] (a model with fewer channels is shown in grey from channel 0).
// For pixel-space models (e.g. the shipped world model) this is the decoded frame itself.
#pragma once

#include "fastar/core/tensor.h"
#include "fastar/rollout/frame_sink.h"

namespace fastar {

// latent: [channels, frames, height, width]; returns frame `frame` as 8-bit RGB.
RgbFrame latent_frame_to_rgb(const Tensor& latent, int64_t frame);

}  // namespace fastar
