#include "fastar/serve/stream_session.h"

#include <algorithm>
#include <utility>

namespace fastar::serve {

using Clock = std::chrono::steady_clock;

StreamSession::StreamSession(uint64_t id, ServeLimits limits, std::weak_ptr<SessionOutput> output, std::function<void()> wake)
    : id_(id), limits_(limits), output_(std::move(output)), wake_(std::move(wake)) {}

void StreamSession::start(const HelloMessage& hello) {
  {
    std::lock_guard lock(mutex_);
    hello_ = hello;
    next_seed_ = hello.seed + 1;
    started_ = true;
  }
  wake_();
}

void StreamSession::set_action(const ActionMessage& action) {
  std::lock_guard lock(mutex_);
  // Latest state wins: a later message replaces the pending action (serving-spec.md §6.4, "Inbox").
  action_ = action.action;
  action_seq_ = action.seq;
}

void StreamSession::set_prompt(const PromptMessage& prompt) {
  std::lock_guard lock(mutex_);
  pending_prompt_ = prompt;  // one pending prompt: a newer one replaces it, none is dropped unanswered
}

void StreamSession::set_paused(bool paused) {
  {
    std::lock_guard lock(mutex_);
    paused_ = paused;
    note_flow_locked(Clock::now());
  }
  wake_();
}

void StreamSession::request_reset(std::optional<uint64_t> seed) {
  {
    std::lock_guard lock(mutex_);
    pending_reset_ = seed ? *seed : next_seed_++;
  }
  wake_();
}

void StreamSession::acknowledge(int64_t frames_consumed) {
  {
    std::lock_guard lock(mutex_);
    // Acks only move forward and never past what was generated (a confused page cannot unlock more).
    frames_acked_ = std::clamp(frames_consumed, frames_acked_, frames_generated_);
    note_flow_locked(Clock::now());
  }
  wake_();
}

void StreamSession::request_video(VideoCodec codec) {
  std::lock_guard lock(mutex_);
  pending_video_ = codec;
}

void StreamSession::chunk_written() {
  {
    std::lock_guard lock(mutex_);
    if (chunks_in_flight_ > 0) --chunks_in_flight_;
    note_flow_locked(Clock::now());
  }
  wake_();
}

void StreamSession::outbox_bytes_changed(int64_t delta) {
  bool freed = false;
  {
    std::lock_guard lock(mutex_);
    const bool was_full = bytes_full_locked();
    outbox_bytes_ = std::max<int64_t>(0, outbox_bytes_ + delta);
    if (!was_full && bytes_full_locked()) ++outbox_byte_pauses_;
    freed = was_full && !bytes_full_locked();
    note_flow_locked(Clock::now());
  }
  if (freed) wake_();  // only a change of the byte cap's verdict can make the session runnable
}

void StreamSession::close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    note_flow_locked(Clock::now());
  }
  wake_();
}

bool StreamSession::started() const {
  std::lock_guard lock(mutex_);
  return started_;
}

bool StreamSession::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

bool StreamSession::bytes_full_locked() const { return limits_.outbox_bytes > 0 && outbox_bytes_ >= limits_.outbox_bytes; }

bool StreamSession::can_generate_locked() const {
  if (chunks_in_flight_ >= limits_.outbox_chunks || bytes_full_locked()) return false;
  return limits_.lead_frames <= 0 || frames_generated_ - frames_acked_ < limits_.lead_frames;
}

bool StreamSession::runnable() const {
  std::lock_guard lock(mutex_);
  return started_ && !closed_ && !paused_ && !generating_ && can_generate_locked();
}

StreamSession::Turn StreamSession::begin_turn(int chunk_frames) {
  std::lock_guard lock(mutex_);
  Turn turn;
  if (!opened_) {
    turn.open = true;
    turn.hello_prompt = hello_.prompt;
    turn.seed = hello_.seed;
    turn.hello_video = hello_.video;
    opened_ = true;
  }
  turn.prompt = std::exchange(pending_prompt_, std::nullopt);
  turn.reset_seed = std::exchange(pending_reset_, std::nullopt);
  turn.video = std::exchange(pending_video_, std::nullopt);
  if (turn.reset_seed) ++resets_;
  // Sampled right before the chunk: the keys held now condition every frame of it.
  turn.actions.assign(static_cast<size_t>(chunk_frames), action_);
  turn.action_seq = action_seq_;
  generating_ = true;
  ++chunks_in_flight_;
  return turn;
}

void StreamSession::end_turn(int64_t frames) {
  {
    std::lock_guard lock(mutex_);
    generating_ = false;
    if (frames > 0) {
      frames_generated_ += frames;
      ++chunks_generated_;
    } else if (chunks_in_flight_ > 0) {
      --chunks_in_flight_;
    }
    note_flow_locked(Clock::now());
  }
  wake_();
}

void StreamSession::note_flow_locked(Clock::time_point now) {
  // Only the outbox counts as a pause (a client that does not read); the lead cap is ordinary pacing.
  const bool blocked = started_ && !closed_ && !paused_ && (chunks_in_flight_ >= limits_.outbox_chunks || bytes_full_locked());
  if (blocked && !flow_blocked_) {
    ++flow_pauses_;
    blocked_since_ = now;
  } else if (!blocked && flow_blocked_) {
    paused_ms_ += std::chrono::duration<double, std::milli>(now - blocked_since_).count();
  }
  flow_blocked_ = blocked;
}

double StreamSession::paused_ms() const {
  std::lock_guard lock(mutex_);
  double total = paused_ms_;
  if (flow_blocked_) total += std::chrono::duration<double, std::milli>(Clock::now() - blocked_since_).count();
  return total;
}

void StreamSession::count_prompt(bool applied, bool recache) {
  std::lock_guard lock(mutex_);
  if (!applied) {
    ++prompt_errors_;
    return;
  }
  ++prompt_switches_;
  if (recache) ++recaches_;
}

nlohmann::json StreamSession::metrics() const {
  std::lock_guard lock(mutex_);
  double paused = paused_ms_;
  if (flow_blocked_) paused += std::chrono::duration<double, std::milli>(Clock::now() - blocked_since_).count();
  return {{"session", id_},
          {"started", started_},
          {"paused_by_client", paused_},
          {"frames", frames_generated_},
          {"frames_acked", frames_acked_},
          {"chunks", chunks_generated_},
          {"outbox_chunks", chunks_in_flight_},
          {"outbox_bytes", outbox_bytes_},
          {"outbox_pauses", flow_pauses_},
          {"outbox_byte_pauses", outbox_byte_pauses_},
          {"paused_ms", paused},
          {"dropped", 0},
          {"prompt_switches", prompt_switches_},
          {"recaches", recaches_},
          {"prompt_errors", prompt_errors_},
          {"resets", resets_}};
}

}  // namespace fastar::serve
