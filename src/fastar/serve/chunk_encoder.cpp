#include "fastar/serve/chunk_encoder.h"

#include <cmath>
#include <cstdio>

#include "fastar/core/error.h"
#include "fastar/serve/jpeg_encoder.h"
#include "fastar/serve/media_header.h"
#include "fastar/serve/server_messages.h"

namespace fastar::serve {

EncodedChunk encode_chunk(const ChunkToEncode& job, JpegEncoder& jpeg) {
  EncodedChunk encoded;
  const size_t count = job.chunk.frames.size();
  H264Encoder* h264 = nullptr;
  if (job.codec == VideoCodec::H264 && count > 0) {
    FASTAR_CHECK(job.video, "an H.264 chunk without its session's encoder state");
    const RgbFrame& first = job.chunk.frames[0];
    std::unique_ptr<H264Encoder>& encoder = job.video->h264;
    if (!encoder || encoder->width() != first.width || encoder->height() != first.height)
      encoder = std::make_unique<H264Encoder>(first.width, first.height, job.fps, job.video->settings);
    h264 = encoder.get();
  }
  for (size_t f = 0; f < count; ++f) {
    MediaHeader header;
    header.kind = h264 ? MediaKind::H264 : MediaKind::Jpeg;
    header.chunk_start = f == 0;
    header.chunk_end = f + 1 == count;
    header.frame_index = static_cast<uint64_t>(job.chunk.first_frame) + f;
    header.chunk_index = static_cast<uint32_t>(job.chunk.index);
    header.action_seq = job.action_seq;
    header.prompt_seq = job.prompt_seq;
    header.pts_ms = static_cast<uint32_t>(std::llround(1000.0 * static_cast<double>(header.frame_index) / job.fps));
    std::string message;
    append_media_header(header, message);
    if (h264) {
      // The header goes first, but only the encoder knows whether the frame became a keyframe.
      const bool key = h264->encode(job.chunk.frames[f], job.restart && f == 0, message);
      set_media_key_flag(key, message);
    } else {
      jpeg.encode(job.chunk.frames[f], message);
    }
    encoded.media.push_back(std::move(message));
  }
  encoded.summary = chunk_message(job.chunk, job.action_seq, job.prompt_seq, job.paused_ms);
  return encoded;
}

ChunkEncoder::ChunkEncoder(int jpeg_quality) : quality_(jpeg_quality) {
  JpegEncoder check(quality_);  // a bad quality fails here, on the caller's thread
  thread_ = std::thread([this] { run(); });
}

ChunkEncoder::~ChunkEncoder() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_all();
  thread_.join();
}

void ChunkEncoder::post(ChunkToEncode job) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(job));
  }
  ready_.notify_one();
}

void ChunkEncoder::run() {
  JpegEncoder jpeg(quality_);
  for (;;) {
    ChunkToEncode job;
    {
      std::unique_lock lock(mutex_);
      ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    std::shared_ptr<SessionOutput> output = job.output.lock();
    if (!output) continue;  // the client left while its chunk was generated
    try {
      for (std::string& text : job.texts_before) output->send_text(std::move(text));
      output->send_chunk(encode_chunk(job, jpeg));
    } catch (const std::exception& e) {
      // A frame this encoder cannot take is the session's failure alone (serving-spec.md §6.6).
      std::fprintf(stderr, "fastar serve: encoding failed: %s\n", e.what());
      output->close(1011, error_message("internal", std::string("encoding failed: ") + e.what(), true));
    }
  }
}

}  // namespace fastar::serve
