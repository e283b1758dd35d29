// Nearest-neighbour ×2 spatial upsampling, per plane (the Wan VAE's Resample, pipeline-spec.md §2.2).
// For a factor of exactly 2, PyTorch's 'nearest' and 'nearest-exact' agree: source = floor(i / 2).
#pragma once

#include <cstdint>

namespace fastar::cpu {

// in[planes, H, W] -> out[planes, 2H, 2W] with out[p, y, x] = in[p, y/2, x/2].
void nearest_upsample2x_forward(float* out, const float* in, int64_t planes, int64_t height, int64_t width);

}  // namespace fastar::cpu
