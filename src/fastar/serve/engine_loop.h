// The engine thread (serving-spec.md §6.3): serves runnable sessions one chunk at a time, round
// robin. Per turn: open the source (first turn), apply a pending reset and prompt, sample the latest
// action, generate, hand the frames to the encoder. It never waits on a socket: a session whose
// outbox is full is simply not runnable (§6.4).
#pragma once

#include <atomic>
#include <thread>

#include "fastar/serve/chunk_encoder.h"
#include "fastar/serve/chunk_source.h"
#include "fastar/serve/session_registry.h"

namespace fastar::serve {

class EngineLoop {
 public:
  EngineLoop(SessionRegistry& registry, const ChunkSourceFactory& factory, ChunkEncoder& encoder, ServeLimits limits,
             MediaOptions media = {});
  ~EngineLoop();  // stop()
  void start();
  // Finishes the chunk in progress, drops every source, joins.
  void stop();

 private:
  void run();
  void serve_turn(StreamSession& session);
  void drop_released();
  // Switches the session to `codec` if this build can stream it at the source's size; else a
  // non-fatal error to the client, and the session keeps its codec. true when the codec changed.
  bool switch_video(StreamSession& session, SessionOutput& output, VideoCodec codec);
  std::string codec_string(VideoCodec codec) const;

  SessionRegistry& registry_;
  const ChunkSourceFactory& factory_;
  ChunkEncoder& encoder_;
  const ServeLimits limits_;
  const MediaOptions media_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace fastar::serve
