#include "fastar/serve/engine_loop.h"

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "fastar/core/error.h"
#include "fastar/serve/server_messages.h"

namespace fastar::serve {

namespace {

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

EngineLoop::EngineLoop(SessionRegistry& registry, const ChunkSourceFactory& factory, ChunkEncoder& encoder, ServeLimits limits,
                       MediaOptions media)
    : registry_(registry), factory_(factory), encoder_(encoder), limits_(limits), media_(media) {}

std::string EngineLoop::codec_string(VideoCodec codec) const {
  const SourceInfo& info = factory_.info();
  return codec == VideoCodec::H264 ? h264_codec_string(info.width, info.height, info.fps) : "jpeg";
}

bool EngineLoop::switch_video(StreamSession& session, SessionOutput& output, VideoCodec codec) {
  if (codec == session.video_codec) return false;
  if (codec == VideoCodec::H264) {
    if (!h264_available()) {
      output.send_text(error_message("codec_unavailable", "this server was built without H.264 (FASTAR_VIDEO=OFF); "
                                                          "the stream stays JPEG", false));
      return false;
    }
    try {
      codec_string(codec);  // a size beyond H.264's levels throws
    } catch (const fastar::Error& e) {
      output.send_text(error_message("codec_unavailable", e.what(), false));
      return false;
    }
  }
  session.video_codec = codec;
  return true;
}

EngineLoop::~EngineLoop() { stop(); }

void EngineLoop::start() { thread_ = std::thread([this] { run(); }); }

void EngineLoop::stop() {
  stopping_ = true;
  registry_.stop();
  if (thread_.joinable()) thread_.join();
}

void EngineLoop::drop_released() {
  for (const auto& session : registry_.take_released()) session->source.reset();
}

void EngineLoop::run() {
  while (!stopping_) {
    drop_released();
    std::shared_ptr<StreamSession> session = registry_.wait_runnable(std::chrono::milliseconds(200));
    if (session) serve_turn(*session);
  }
  drop_released();
  for (const auto& session : registry_.sessions()) session->source.reset();
}

void EngineLoop::serve_turn(StreamSession& session) {
  const SourceInfo& info = factory_.info();
  StreamSession::Turn turn = session.begin_turn(info.chunk_frames);
  std::shared_ptr<SessionOutput> output = session.output();
  if (!output || (!turn.open && !session.source)) {
    session.close();
    session.end_turn(0);
    return;
  }
  try {
    if (turn.open) {
      try {
        session.source = factory_.open(turn.hello_prompt, turn.seed);
      } catch (const fastar::Error& e) {
        // The hello's prompt cannot start a stream: a fatal error for this client only (§6.2). Closed
        // here, not only when the I/O thread gets to it, so that no later turn finds it without a source.
        session.close();
        session.end_turn(0);
        output->close(1008, error_message("bad_prompt", e.what(), true));
        return;
      }
      session.video = std::make_shared<SessionVideo>();
      session.video->settings = media_.h264;
      session.video_codec = VideoCodec::Jpeg;
      switch_video(session, *output, turn.hello_video.value_or(media_.codec));
      output->send_text(ready_message(session.id(), info, limits_, session.video_codec, codec_string(session.video_codec)));
    }
    // The media starts anew (an H.264 keyframe) at the session's start, at a reset and at a codec switch.
    bool restart = turn.open || turn.reset_seed.has_value();
    const bool video_switched = turn.video && switch_video(session, *output, *turn.video);
    restart = restart || video_switched;
    std::vector<std::string> texts_before;  // after the chunks already queued, before this one
    if (turn.reset_seed) {
      session.source->reset(*turn.reset_seed);
      texts_before.push_back(reset_applied_message(*turn.reset_seed));
    }
    std::optional<double> prompt_switch_ms;  // set when the pending prompt took effect
    if (turn.prompt) {
      const auto start = std::chrono::steady_clock::now();
      try {
        session.source->set_prompt(turn.prompt->text, turn.prompt->recache);
        session.applied_prompt_seq = turn.prompt->seq;
        session.count_prompt(true, turn.prompt->recache);
        prompt_switch_ms = ms_since(start);
      } catch (const fastar::Error& e) {
        // A word outside the vocabulary: the session runs on under its old prompt (§6.2).
        session.count_prompt(false, false);
        output->send_text(error_message("bad_prompt", e.what(), false));
      }
    }
    SourceChunk chunk = session.source->next_chunk(turn.actions);
    if (prompt_switch_ms)
      texts_before.push_back(prompt_applied_message(turn.prompt->seq, chunk.first_frame, *prompt_switch_ms, turn.prompt->recache));
    if (video_switched)
      texts_before.push_back(video_changed_message(session.video_codec, codec_string(session.video_codec), chunk.first_frame));
    const int64_t frames = static_cast<int64_t>(chunk.frames.size());
    ChunkToEncode job{output,           std::move(texts_before), std::move(chunk), info.fps, turn.action_seq, session.applied_prompt_seq,
                      session.paused_ms(), session.video_codec,    restart,          session.video};
    // Counted before the encoder can deliver it, so that no ack outruns the count.
    session.end_turn(frames);
    encoder_.post(std::move(job));
  } catch (const std::exception& e) {
    // A failure inside one session's rollout closes that session (1011); the engine serves the rest.
    std::fprintf(stderr, "fastar serve: session %llu failed: %s\n", static_cast<unsigned long long>(session.id()), e.what());
    session.close();
    session.end_turn(0);
    output->close(1011, error_message("internal", e.what(), true));
  }
}

}  // namespace fastar::serve
