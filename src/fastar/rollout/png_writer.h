// RgbFrame, the unit every frame sink consumes, and PNG input/output for it (libpng's simplified API).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fastar {

// 8-bit RGB, row-major, 3 bytes per pixel.
struct RgbFrame {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // [height, width, 3]
};

// Throws fastar::Error unless the frame has positive dimensions and exactly width*height*3 bytes.
// `what` names the caller in the message (e.g. "write_png out/frame_000000.png").
void check_rgb_frame(const RgbFrame& frame, const std::string& what);

// Writes `frame` as an 8-bit RGB PNG. Atomic: the data goes to "<path>.tmp-<pid>" first and is
// renamed onto `path` only once complete; on failure the temp file is removed.
// Throws fastar::Error on a malformed frame or any I/O failure.
void write_png(const std::string& path, const RgbFrame& frame);

// Reads any PNG (grey, palette, alpha, 16-bit are converted) into 8-bit RGB.
// Throws fastar::Error when the file is missing or not a valid PNG.
RgbFrame read_png(const std::string& path);

}  // namespace fastar
