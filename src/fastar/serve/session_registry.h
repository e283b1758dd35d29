// The sessions of a server (serving-spec.md §6.5): admission up to --max-sessions, the round-robin
// choice of the next runnable session for the engine thread, and GET /metrics.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <nlohmann/json.hpp>

#include "fastar/serve/stream_session.h"

namespace fastar::serve {

class SessionRegistry {
 public:
  SessionRegistry(int max_sessions, ServeLimits limits);

  // A new session for a connection; nullptr when --max-sessions are open (the caller closes 1013).
  std::shared_ptr<StreamSession> admit(std::weak_ptr<SessionOutput> output);
  // The connection is gone: the session stops being served and frees its place at once; the engine
  // thread drops its source (take_released).
  void release(const std::shared_ptr<StreamSession>& session);

  // Engine thread: the next runnable session after the last one served (round robin), waiting up to
  // `timeout`; nullptr on timeout or stop().
  std::shared_ptr<StreamSession> wait_runnable(std::chrono::milliseconds timeout);
  // Engine thread: the released sessions, so that their sources are destroyed on the engine thread.
  std::vector<std::shared_ptr<StreamSession>> take_released();
  void wake();
  void stop();

  int open_sessions() const;
  int max_sessions() const { return max_sessions_; }
  std::vector<std::shared_ptr<StreamSession>> sessions() const;
  nlohmann::json metrics() const;

 private:
  const int max_sessions_;
  const ServeLimits limits_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::shared_ptr<StreamSession>> sessions_;  // by id, ascending
  std::vector<std::shared_ptr<StreamSession>> released_;
  uint64_t next_id_ = 1, last_served_ = 0;
  int64_t admitted_ = 0, refused_ = 0;
  bool stopped_ = false;
};

}  // namespace fastar::serve
