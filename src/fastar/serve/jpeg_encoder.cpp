#include "fastar/serve/jpeg_encoder.h"

#include <turbojpeg.h>

#include "fastar/core/error.h"

namespace fastar::serve {

JpegEncoder::JpegEncoder(int quality) : quality_(quality) {
  FASTAR_CHECK(quality >= 1 && quality <= 100, "fastar serve: JPEG quality must be in [1, 100] (got " << quality << ")");
  handle_ = tjInitCompress();
  FASTAR_CHECK(handle_, "fastar serve: libturbojpeg could not start a compressor: " << tjGetErrorStr2(nullptr));
}

JpegEncoder::~JpegEncoder() {
  if (handle_) tjDestroy(static_cast<tjhandle>(handle_));
}

void JpegEncoder::encode(const RgbFrame& frame, std::string& out) {
  check_rgb_frame(frame, "JPEG encoder");
  unsigned char* jpeg = nullptr;
  unsigned long size = 0;
  const int rc = tjCompress2(static_cast<tjhandle>(handle_), frame.rgb.data(), frame.width, 0, frame.height, TJPF_RGB, &jpeg,
                             &size, TJSAMP_444, quality_, TJFLAG_FASTDCT);
  if (rc != 0) {
    const std::string reason = tjGetErrorStr2(static_cast<tjhandle>(handle_));
    tjFree(jpeg);
    FASTAR_FAIL("fastar serve: JPEG encoding of a " << frame.width << "x" << frame.height << " frame failed: " << reason);
  }
  out.append(reinterpret_cast<const char*>(jpeg), size);
  tjFree(jpeg);
}

RgbFrame decode_jpeg(const std::string& jpeg) {
  tjhandle handle = tjInitDecompress();
  FASTAR_CHECK(handle, "decode_jpeg: libturbojpeg could not start a decompressor");
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(jpeg.data());
  RgbFrame frame;
  if (tjDecompressHeader3(handle, data, jpeg.size(), &width, &height, &subsampling, &colorspace) == 0) {
    frame.width = width;
    frame.height = height;
    frame.rgb.resize(static_cast<size_t>(width) * height * 3);
    if (tjDecompress2(handle, data, jpeg.size(), frame.rgb.data(), width, 0, height, TJPF_RGB, 0) == 0) {
      tjDestroy(handle);
      return frame;
    }
  }
  const std::string reason = tjGetErrorStr2(handle);
  tjDestroy(handle);
  FASTAR_FAIL("decode_jpeg: not a JPEG this decoder can read (" << reason << ")");
}

}  // namespace fastar::serve
