// The codecs a session's media can take (serving-spec.md §3.3, §6.2): JPEG per frame (the default,
// always built) or H.264 access units for WebCodecs (`--codec h264`; needs FASTAR_VIDEO, which links
// FFmpeg's libavcodec). Names as on the wire: "jpeg" | "h264".
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace fastar::serve {

enum class VideoCodec { Jpeg, H264 };

const char* video_codec_name(VideoCodec codec);
// "jpeg" | "h264" → the codec; anything else → none.
std::optional<VideoCodec> parse_video_codec(std::string_view name);
// Whether this build can encode H.264 (FASTAR_VIDEO=ON).
bool h264_available();

// The H.264 settings of a server (cmd_serve's --keyframe-interval, --h264-crf).
struct H264Settings {
  int keyframe_interval = 32;  // frames between keyframes (besides the session start and each reset)
  int crf = 20;                // libx264's constant rate factor: 0 (lossless) .. 51; lower is better
};

// What a server streams in (cmd_serve's --codec): the codec a session starts with unless its hello asks
// for another, and the H.264 settings.
struct MediaOptions {
  VideoCodec codec = VideoCodec::Jpeg;
  H264Settings h264;
};

// The level_idc (H.264 Table A-1: frame size and macroblock rate) that a width x height stream at
// `fps` needs; fastar::Error when it is beyond level 5.2.
int h264_level_for(int width, int height, double fps);
// The WebCodecs / RFC 6381 codec string of the stream the H264Encoder makes at that size:
// Constrained Baseline (profile_idc 0x42, constraint flags 0xC0) at h264_level_for's level, e.g.
// "avc1.42C00A" for 64x64 at 16 fps. Frame sizes are rounded up to even first.
std::string h264_codec_string(int width, int height, double fps);

}  // namespace fastar::serve
