#include "fastar/rollout/latent_preview.h"

#include <algorithm>
#include <cmath>

#include "fastar/core/error.h"

namespace fastar {

RgbFrame latent_frame_to_rgb(const Tensor& latent, int64_t frame) {
  FASTAR_ASSERT(latent.dim() == 4 && latent.dtype() == DType::F32 && latent.is_contiguous(), "latent_frame_to_rgb: bad latent");
  const int64_t channels = latent.size(0), frames = latent.size(1), height = latent.size(2), width = latent.size(3);
  FASTAR_ASSERT(frame >= 0 && frame < frames, "frame " << frame << " of " << frames);
  RgbFrame out;
  out.width = static_cast<int>(width);
  out.height = static_cast<int>(height);
  out.rgb.resize(static_cast<size_t>(width * height * 3));
  const float* data = latent.data<float>();
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (int64_t rgb = 0; rgb < 3; ++rgb) {
        const int64_t c = channels >= 3 ? rgb : 0;
        const float value = data[((c * frames + frame) * height + y) * width + x];
        const float mapped = std::isfinite(value) ? (value + 1.0f) * 127.5f : 0.0f;
        out.rgb[static_cast<size_t>((y * width + x) * 3 + rgb)] =
            static_cast<uint8_t>(std::lround(std::clamp(mapped, 0.0f, 255.0f)));
      }
  return out;
}

}  // namespace fastar
