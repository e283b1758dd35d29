// Helpers shared by the video decoders (wan_vae_decoder, taehv_decoder): their activations are
// contiguous fp32 [C, T, H, W] (one video, no batch axis), the causal conv kernel's layout.
#pragma once

#include <cstdint>
#include <string>

#include "fastar/core/tensor.h"

namespace fastar::video {

inline int64_t channels_of(const Tensor& x) { return x.size(0); }
inline int64_t frames_of(const Tensor& x) { return x.size(1); }
inline int64_t height_of(const Tensor& x) { return x.size(2); }
inline int64_t width_of(const Tensor& x) { return x.size(3); }

// t itself when it is already contiguous fp32, else an fp32 copy.
Tensor contiguous_f32(const Tensor& t);

// Frames [begin, end) of x [C, T, H, W], a new contiguous tensor.
Tensor slice_frames(const Tensor& x, int64_t begin, int64_t end);

// Throws fastar::Error unless latent is a float [channels, T ≥ 1, h ≥ 1, w ≥ 1] tensor. The messages read
// "<who>: the <shape_subject> is ..." and "<who>: the <dtype_subject> has dtype ...".
void check_video_latent(const Tensor& latent, int64_t channels, const std::string& who, const std::string& shape_subject,
                        const std::string& dtype_subject);

}  // namespace fastar::video
