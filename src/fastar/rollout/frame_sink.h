// Frame sinks: where generated video frames go (docs/design.md, "rollout").
//
// make_frame_sink(out, fps) picks the sink from the output path:
//   - "....mp4"  -> an MP4 file (H.264 when available), written to a temp file and renamed into
//                   place by finish(), so a crashed or interrupted run never leaves a half file;
//   - otherwise  -> a directory of frame_000000.png, frame_000001.png, ... (created if missing),
//                   each PNG written atomically (temp file + rename).
#pragma once

#include <memory>
#include <string>

#include "fastar/rollout/png_writer.h"  // RgbFrame, read_png, write_png

namespace fastar {

class FrameSink {
 public:
  virtual ~FrameSink() = default;
  // Frames arrive in order; every frame must have the size of the first (else fastar::Error).
  virtual void write(const RgbFrame& frame) = 0;
  // Flushes and publishes (atomic rename for MP4). Idempotent: later calls do nothing.
  virtual void finish() = 0;
  // One line for logs, e.g. "PNG frames in out/" or "H.264 MP4 out.mp4".
  virtual std::string describe() const = 0;
};

// out ending in ".mp4" (any case) -> MP4 sink at `fps` frames per second; otherwise a PNG
// directory sink (fps unused). Errors (unwritable location, no usable encoder, MP4 requested but
// fastar built without FASTAR_VIDEO) are fastar::Error with a message saying what to do.
std::unique_ptr<FrameSink> make_frame_sink(const std::string& out, int fps);

}  // namespace fastar
