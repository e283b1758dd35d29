// One client's session (serving-spec.md §6.3–6.4): its inbox (the latest action, the pending prompt,
// pause and reset — coalesced, never queued first-in-first-out), its flow control (at most
// `outbox_chunks` chunks generated and not yet written, and none started while `outbox_bytes` wait for
// the socket; at most `lead_frames` frames generated and not yet drawn) and its counters. The I/O thread writes the inbox; the engine thread asks runnable(),
// takes a Turn, generates, and alone touches `source`.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "fastar/serve/chunk_source.h"
#include "fastar/serve/client_message.h"
#include "fastar/serve/session_output.h"

namespace fastar::serve {

struct SessionVideo;  // chunk_encoder.h

struct ServeLimits {
  int outbox_chunks = 2;     // chunks generated and not yet written to the socket (serving-spec.md §6.4)
  // Bytes queued for the socket and not yet written (serving-spec.md §6.4: "2 chunks / 8 MiB"): while
  // the outbox holds this much, the session is not scheduled; 0 = no byte cap. A chunk is never split,
  // so the outbox holds less than the cap plus `outbox_chunks` chunks (and the few text replies).
  int64_t outbox_bytes = 8 << 20;
  int64_t lead_frames = 6;   // frames generated and not yet drawn (acked) by the page; 0 = no cap
};

class StreamSession {
 public:
  // wake: tells the engine that the session may have become runnable (called without any lock held).
  StreamSession(uint64_t id, ServeLimits limits, std::weak_ptr<SessionOutput> output, std::function<void()> wake);

  uint64_t id() const { return id_; }
  std::shared_ptr<SessionOutput> output() const { return output_.lock(); }

  // ---- the inbox (I/O thread) ----
  void start(const HelloMessage& hello);
  void set_action(const ActionMessage& action);
  void set_prompt(const PromptMessage& prompt);
  void set_paused(bool paused);
  void request_reset(std::optional<uint64_t> seed);
  void acknowledge(int64_t frames_consumed);
  // set_video: the codec from the next chunk on (coalesced: the latest request wins).
  void request_video(VideoCodec codec);
  // The outbox finished writing one chunk.
  void chunk_written();
  // The connection's outbox grew (> 0: messages queued) or shrank (< 0: written or dropped) by `delta` bytes.
  void outbox_bytes_changed(int64_t delta);
  // The connection is gone or closing: the engine stops serving it.
  void close();
  bool started() const;
  bool closed() const;

  // ---- the engine thread ----
  struct Turn {
    bool open = false;                 // the first turn: open the source with the hello's prompt
    std::string hello_prompt;
    uint64_t seed = 0;
    std::optional<PromptMessage> prompt;
    std::optional<uint64_t> reset_seed;
    std::optional<VideoCodec> hello_video;  // with `open`: the codec the hello asked for
    std::optional<VideoCodec> video;        // a set_video since the last turn
    std::string actions;               // one character per frame of the chunk
    uint32_t action_seq = 0;
  };
  bool runnable() const;
  // Takes what is pending and samples the latest action; counts the chunk as in flight.
  Turn begin_turn(int chunk_frames);
  // frames: what the chunk produced; 0 = nothing will be written (the turn failed).
  void end_turn(int64_t frames);
  double paused_ms() const;
  void count_prompt(bool applied, bool recache);

  std::unique_ptr<ChunkSource> source;  // the engine thread's alone
  uint32_t applied_prompt_seq = 0;      // the engine thread's alone
  VideoCodec video_codec = VideoCodec::Jpeg;  // the engine thread's alone: the codec of the next chunk
  std::shared_ptr<SessionVideo> video;        // made by the engine at open; used by the encoder thread alone

  // GET /metrics: frames, chunks, outbox depth (chunks, bytes), pauses, paused_ms, prompt switches, re-caches.
  nlohmann::json metrics() const;

 private:
  bool can_generate_locked() const;
  bool bytes_full_locked() const;  // the outbox holds at least limits_.outbox_bytes
  // Keeps paused_ms: time the session wanted to run but the outbox or the lead cap held it.
  void note_flow_locked(std::chrono::steady_clock::time_point now);

  const uint64_t id_;
  const ServeLimits limits_;
  const std::weak_ptr<SessionOutput> output_;
  const std::function<void()> wake_;

  mutable std::mutex mutex_;
  bool started_ = false, opened_ = false, closed_ = false, paused_ = false;
  HelloMessage hello_;
  char action_ = '.';
  uint32_t action_seq_ = 0;
  std::optional<PromptMessage> pending_prompt_;
  std::optional<uint64_t> pending_reset_;
  std::optional<VideoCodec> pending_video_;
  uint64_t next_seed_ = 1;
  int chunks_in_flight_ = 0;
  int64_t outbox_bytes_ = 0, outbox_byte_pauses_ = 0;
  bool generating_ = false;
  int64_t frames_generated_ = 0, frames_acked_ = 0, chunks_generated_ = 0;
  int64_t flow_pauses_ = 0, prompt_switches_ = 0, recaches_ = 0, prompt_errors_ = 0, resets_ = 0;
  bool flow_blocked_ = false;
  std::chrono::steady_clock::time_point blocked_since_{};
  double paused_ms_ = 0;
};

}  // namespace fastar::serve
