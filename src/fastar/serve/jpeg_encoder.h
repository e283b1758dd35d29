// JPEG frames for the page (serving-spec.md §3.3, path (i)) through libjpeg-turbo's TurboJPEG API.
// One encoder per thread: a TurboJPEG handle is not shared between threads.
#pragma once

#include <string>

#include "fastar/rollout/png_writer.h"

namespace fastar::serve {

class JpegEncoder {
 public:
  // quality 1..100; 4:4:4 chroma, so that the page's colours stay close to the frame's (64x64 frames
  // are ~3 KB at 90).
  explicit JpegEncoder(int quality = 90);
  ~JpegEncoder();
  JpegEncoder(const JpegEncoder&) = delete;
  JpegEncoder& operator=(const JpegEncoder&) = delete;

  // Appends the JPEG of `frame` to `out`.
  void encode(const RgbFrame& frame, std::string& out);

 private:
  void* handle_ = nullptr;
  int quality_;
};

// Decodes a JPEG into RGB (the tests' round trip); fastar::Error on a corrupt stream.
RgbFrame decode_jpeg(const std::string& jpeg);

}  // namespace fastar::serve
