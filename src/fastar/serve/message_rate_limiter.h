// The per-connection cap on client messages (issue 18, "Safety"; serving-spec.md §6.6): a token bucket
// of `burst` messages refilled at `per_second`. A message over the rate is refused — not dispatched —
// and the first one of an episode gets a non-fatal `error{code: "rate_limited"}`; a client that goes
// on (more than `burst` refused messages before its bucket is full again) is closed with 1008.
//
//   MessageRateLimiter limiter({.per_second = 50, .burst = 50});
//   switch (limiter.admit(now)) { case Verdict::admit: ...; case Verdict::warn: ...; ... }
//
// The page sends at most ~30 messages/s: acks at most every 50 ms (20/s) and, while a key is held,
// the action again every 100 ms (10/s). Time is passed in, so the tests need no clock.
#pragma once

#include <chrono>
#include <cstdint>

namespace fastar::serve {

struct MessageRateLimit {
  double per_second = 50;  // --max-message-rate: the sustained rate; 0 turns the cap off
  double burst = 50;       // messages a quiet client may send at once (the bucket's size)
};

class MessageRateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Verdict {
    admit,   // within the rate: dispatch it
    warn,    // the first message over the rate in this episode: refuse it, send a non-fatal error
    refuse,  // over the rate again: refuse it silently
    close,   // over the rate for more than `burst` messages: error{fatal} and close 1008
  };

  // fastar::Error when per_second < 0 or, with a cap, burst < 1.
  explicit MessageRateLimiter(MessageRateLimit limit);

  Verdict admit(Clock::time_point now);
  // Messages refused since the connection opened (GET /metrics would show it; the tests read it).
  int64_t refused() const { return refused_total_; }

 private:
  const MessageRateLimit limit_;
  double tokens_;
  Clock::time_point last_{};
  bool started_ = false;
  int64_t excess_ = 0;        // refused in this episode; the episode ends when the bucket is full again
  int64_t refused_total_ = 0;
};

}  // namespace fastar::serve
