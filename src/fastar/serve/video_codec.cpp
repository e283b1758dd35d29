#include "fastar/serve/video_codec.h"

#include <cmath>
#include <cstdio>

#include "fastar/core/error.h"

namespace fastar::serve {

const char* video_codec_name(VideoCodec codec) { return codec == VideoCodec::H264 ? "h264" : "jpeg"; }

std::optional<VideoCodec> parse_video_codec(std::string_view name) {
  if (name == "jpeg") return VideoCodec::Jpeg;
  if (name == "h264") return VideoCodec::H264;
  return std::nullopt;
}

bool h264_available() {
#ifdef FASTAR_HAVE_VIDEO
  return true;
#else
  return false;
#endif
}

int h264_level_for(int width, int height, double fps) {
  FASTAR_CHECK(width > 0 && height > 0 && fps > 0, "H.264: a " << width << "x" << height << " stream at " << fps
                                                               << " fps has no level; sizes and fps must be positive");
  // H.264 Table A-1: level_idc, MaxMBPS (macroblocks/s), MaxFS (macroblocks per frame).
  struct Level {
    int idc;
    double max_mbps;
    double max_fs;
  };
  static const Level kLevels[] = {{10, 1485, 99},       {11, 3000, 396},      {12, 6000, 396},      {13, 11880, 396},
                                  {20, 11880, 396},     {21, 19800, 792},     {22, 20250, 1620},    {30, 40500, 1620},
                                  {31, 108000, 3600},   {32, 216000, 5120},   {40, 245760, 8192},   {41, 245760, 8192},
                                  {42, 522240, 8704},   {50, 589824, 22080},  {51, 983040, 36864},  {52, 2073600, 36864}};
  const double mb_w = std::ceil(width / 16.0), mb_h = std::ceil(height / 16.0), frame_mbs = mb_w * mb_h;
  for (const Level& level : kLevels) {
    // A-3.1 (f): neither side may exceed sqrt(8 * MaxFS) macroblocks.
    const double side = std::sqrt(8 * level.max_fs);
    if (frame_mbs <= level.max_fs && mb_w <= side && mb_h <= side && frame_mbs * fps <= level.max_mbps) return level.idc;
  }
  FASTAR_FAIL("H.264: " << width << "x" << height << " at " << fps
                        << " fps is beyond level 5.2; use --codec jpeg or a lower --fps");
}

std::string h264_codec_string(int width, int height, double fps) {
  char text[16];
  std::snprintf(text, sizeof text, "avc1.42C0%02X", h264_level_for(width + (width & 1), height + (height & 1), fps));
  return text;
}

}  // namespace fastar::serve
