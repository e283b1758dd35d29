// MP4 output through FFmpeg's libavcodec / libavformat. Only built with FASTAR_VIDEO=ON
// (FASTAR_HAVE_VIDEO is defined then); use make_frame_sink() rather than this header directly.
//
// Encoder choice: "libx264", else any other encoder for AV_CODEC_ID_H264 that opens, else
// MPEG-4 part 2 ("mpeg4"). Pixel format yuv420p (BT.601, limited range); odd widths/heights are
// padded to even by repeating the last column/row. Data goes to "<path>.tmp-<pid>.mp4" and is
// renamed onto <path> by finish(); on an error, or when the sink is destroyed unfinished, the temp
// file is deleted.
#pragma once

#include <memory>
#include <string>

#include "fastar/rollout/frame_sink.h"

namespace fastar {

class Mp4Sink final : public FrameSink {
 public:
  // Opens the temp file and picks an encoder now, so a bad path or a missing encoder fails before
  // any frame is generated. Throws fastar::Error.
  Mp4Sink(const std::string& path, int fps);
  ~Mp4Sink() override;  // never throws; discards the temp file unless finish() succeeded
  Mp4Sink(const Mp4Sink&) = delete;
  Mp4Sink& operator=(const Mp4Sink&) = delete;

  void write(const RgbFrame& frame) override;
  void finish() override;
  std::string describe() const override;

  // libavcodec's name of the chosen encoder, e.g. "libx264" or "mpeg4".
  std::string encoder_name() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fastar
