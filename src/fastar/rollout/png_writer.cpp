#include "fastar/rollout/png_writer.h"

#include <png.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "fastar/core/error.h"

namespace fastar {

void check_rgb_frame(const RgbFrame& frame, const std::string& what) {
  FASTAR_CHECK(frame.width > 0 && frame.height > 0,
               what << ": frame has size " << frame.width << "x" << frame.height << "; width and height must be positive");
  FASTAR_CHECK(frame.width <= std::numeric_limits<int>::max() / 3 / frame.height,
               what << ": frame size " << frame.width << "x" << frame.height << " is too large");
  const size_t expected = static_cast<size_t>(frame.width) * static_cast<size_t>(frame.height) * 3;
  FASTAR_CHECK(frame.rgb.size() == expected,
               what << ": frame of " << frame.width << "x" << frame.height << " needs " << expected
                    << " RGB bytes (height*width*3) but holds " << frame.rgb.size());
}

void write_png(const std::string& path, const RgbFrame& frame) {
  check_rgb_frame(frame, "write_png " + path);
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());

  std::FILE* file = std::fopen(tmp.c_str(), "wb");
  FASTAR_CHECK(file != nullptr, "cannot write PNG " << path << ": creating " << tmp << " failed ("
                                                    << std::strerror(errno)
                                                    << "); check that the directory exists and is writable");

  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(frame.width);
  image.height = static_cast<png_uint_32>(frame.height);
  image.format = PNG_FORMAT_RGB;
  const int ok = png_image_write_to_stdio(&image, file, /*convert_to_8bit=*/0, frame.rgb.data(),
                                          /*row_stride=*/frame.width * 3, /*colormap=*/nullptr);
  std::string failure;
  if (!ok) failure = std::string("libpng: ") + image.message;
  png_image_free(&image);
  if (std::fflush(file) != 0 && failure.empty()) failure = std::strerror(errno);
  if (std::fclose(file) != 0 && failure.empty()) failure = std::strerror(errno);
  if (failure.empty() && std::rename(tmp.c_str(), path.c_str()) != 0) {
    failure = std::string("renaming the temp file into place: ") + std::strerror(errno);
  }
  if (!failure.empty()) {
    std::remove(tmp.c_str());
    FASTAR_FAIL("cannot write PNG " << path << " (" << failure << "); check free disk space and permissions");
  }
}

RgbFrame read_png(const std::string& path) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, path.c_str())) {
    const std::string message = image.message;
    png_image_free(&image);
    FASTAR_FAIL("cannot read PNG " << path << " (" << message << "); check that the file exists and is a PNG image");
  }
  image.format = PNG_FORMAT_RGB;
  RgbFrame frame;
  frame.width = static_cast<int>(image.width);
  frame.height = static_cast<int>(image.height);
  frame.rgb.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, /*background=*/nullptr, frame.rgb.data(), /*row_stride=*/0, /*colormap=*/nullptr)) {
    const std::string message = image.message;
    png_image_free(&image);
    FASTAR_FAIL("cannot decode PNG " << path << " (" << message << "); the file may be truncated or corrupt");
  }
  png_image_free(&image);
  return frame;
}

}  // namespace fastar
