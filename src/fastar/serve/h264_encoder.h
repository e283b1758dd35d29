// H.264 access units for the page's WebCodecs VideoDecoder (serving-spec.md §3.3, path (iii)): one
// libx264 encoder (through FFmpeg's libavcodec) per session, set for latency — preset ultrafast, tune
// zerolatency (no lookahead, no B-frames: one frame in, its access unit out), Constrained Baseline at
// the level h264_codec_string() names, one thread.
//
// Bitstream: Annex-B (start codes), SPS and PPS in band before every IDR (no
// AV_CODEC_FLAG_GLOBAL_HEADER, so no extradata). WebCodecs takes Annex-B when VideoDecoder.configure()
// gets no `description` (an avcC record is what would switch it to length-prefixed AVCC); so the page
// needs nothing from the server but the codec string, and every keyframe is a full entry point — after
// a reset, or after the page re-creates its decoder.
//
// Keyframes: the first frame, every frame encode() is told to make one (a reset), and every
// `keyframe_interval` frames. Odd sizes are padded to even by repeating the last column / row (4:2:0).
// Only with FASTAR_VIDEO=ON; otherwise the constructor throws fastar::Error saying so.
#pragma once

#include <memory>
#include <string>

#include "fastar/rollout/png_writer.h"
#include "fastar/serve/video_codec.h"

namespace fastar::serve {

class H264Encoder {
 public:
  // width x height: the frames' size; fps: the stream's rate (timestamps and level).
  H264Encoder(int width, int height, double fps, H264Settings settings);
  ~H264Encoder();
  H264Encoder(const H264Encoder&) = delete;
  H264Encoder& operator=(const H264Encoder&) = delete;

  // Appends the access unit of `frame` to `out`; true when it is a keyframe (an IDR with SPS and PPS).
  // force_key: make this frame a keyframe.
  bool encode(const RgbFrame& frame, bool force_key, std::string& out);

  int width() const;          // of the frames it takes
  int height() const;
  int coded_width() const;    // rounded up to even
  int coded_height() const;
  const std::string& codec_string() const;  // e.g. "avc1.42C00A"

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fastar::serve
