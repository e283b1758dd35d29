#include "fastar/rollout/video_frame.h"

#include <algorithm>
#include <cmath>

#include "fastar/core/error.h"

namespace fastar {

RgbFrame video_frame_to_rgb(const Tensor& frames, int64_t t) {
  FASTAR_ASSERT(frames.dim() == 4 && frames.size(1) == 3 && frames.dtype() == DType::F32 && frames.is_contiguous(),
                "video_frame_to_rgb: frames must be contiguous F32 [T, 3, H, W]");
  FASTAR_ASSERT(t >= 0 && t < frames.size(0), "frame " << t << " of " << frames.size(0));
  const int64_t height = frames.size(2), width = frames.size(3), plane = height * width;
  RgbFrame out;
  out.width = static_cast<int>(width);
  out.height = static_cast<int>(height);
  out.rgb.resize(static_cast<size_t>(plane * 3));
  const float* data = frames.data<float>() + t * 3 * plane;
  for (int64_t p = 0; p < plane; ++p)
    for (int64_t c = 0; c < 3; ++c) {
      const float v = data[c * plane + p];
      const float scaled = std::isfinite(v) ? v * 255.0f : (v > 0 ? 255.0f : 0.0f);
      out.rgb[static_cast<size_t>(p * 3 + c)] = static_cast<uint8_t>(std::lround(std::clamp(scaled, 0.0f, 255.0f)));
    }
  return out;
}

}  // namespace fastar
