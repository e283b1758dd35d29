// The encoder thread (serving-spec.md §6.3): turns a generated chunk into its binary media messages
// (header + JPEG per frame) and its `chunk` summary, then hands them to the session's output. One
// thread keeps each session's chunks in order; the engine never waits for it.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fastar/serve/chunk_source.h"
#include "fastar/serve/h264_encoder.h"
#include "fastar/serve/session_output.h"

namespace fastar::serve {

// One session's H.264 state: made by the engine when the session opens, used by the encoder thread alone
// (it keeps each session's chunks in order, so the stream's frames reach the encoder in order).
struct SessionVideo {
  H264Settings settings;
  std::unique_ptr<H264Encoder> h264;  // made at the first H.264 chunk, at its frames' size
};

struct ChunkToEncode {
  std::weak_ptr<SessionOutput> output;
  // Text messages that must reach the client after every earlier chunk and before this one
  // (reset_applied, prompt_applied): they travel through the same queue to keep that order.
  std::vector<std::string> texts_before;
  SourceChunk chunk;
  double fps = 16;
  uint32_t action_seq = 0, prompt_seq = 0;
  double paused_ms = 0;
  VideoCodec codec = VideoCodec::Jpeg;
  // The stream starts anew at this chunk (session start, reset, a switch of codec): with H.264 its
  // first frame is a keyframe, so that the page's decoder can start there.
  bool restart = false;
  std::shared_ptr<SessionVideo> video;  // needed for VideoCodec::H264
};

// The messages of one chunk, in order (a pure function; the tests use it too).
EncodedChunk encode_chunk(const ChunkToEncode& job, class JpegEncoder& jpeg);

class ChunkEncoder {
 public:
  explicit ChunkEncoder(int jpeg_quality);
  ~ChunkEncoder();  // finishes the queued chunks, then joins
  ChunkEncoder(const ChunkEncoder&) = delete;
  ChunkEncoder& operator=(const ChunkEncoder&) = delete;

  void post(ChunkToEncode job);

 private:
  void run();
  const int quality_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<ChunkToEncode> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace fastar::serve
