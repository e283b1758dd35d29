#include "fastar/model/video_activations.h"

#include <cstring>

#include "fastar/core/error.h"

namespace fastar::video {

Tensor contiguous_f32(const Tensor& t) { return t.dtype() == DType::F32 && t.is_contiguous() ? t : t.to_f32(); }

Tensor slice_frames(const Tensor& x, int64_t begin, int64_t end) {
  const int64_t C = channels_of(x), T = frames_of(x), hw = height_of(x) * width_of(x), n = end - begin;
  Tensor out = Tensor::zeros({C, n, height_of(x), width_of(x)});
  for (int64_t c = 0; c < C; ++c)
    std::memcpy(out.data<float>() + c * n * hw, x.data<float>() + (c * T + begin) * hw, sizeof(float) * n * hw);
  return out;
}

void check_video_latent(const Tensor& latent, int64_t channels, const std::string& who, const std::string& shape_subject,
                        const std::string& dtype_subject) {
  FASTAR_CHECK(latent.defined() && latent.dim() == 4 && latent.size(0) == channels && latent.size(1) >= 1 &&
                   latent.size(2) >= 1 && latent.size(3) >= 1,
               who << ": the " << shape_subject << " is " << (latent.defined() ? latent.describe() : "undefined")
                   << ", expected [" << channels << ", T, h, w] (channels, latent frames, height, width; "
                   << "no batch axis: decode one video per stream)");
  FASTAR_CHECK(dtype_is_float(latent.dtype()),
               who << ": the " << dtype_subject << " has dtype " << dtype_name(latent.dtype()) << "; give a float tensor");
}

}  // namespace fastar::video
