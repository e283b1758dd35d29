#include "fastar/serve/message_rate_limiter.h"

#include <algorithm>

#include "fastar/core/error.h"

namespace fastar::serve {

MessageRateLimiter::MessageRateLimiter(MessageRateLimit limit) : limit_(limit), tokens_(limit.burst) {
  FASTAR_CHECK(limit_.per_second >= 0, "fastar serve: --max-message-rate must be >= 0 (0 turns the cap off; got "
                                           << limit_.per_second << ")");
  FASTAR_CHECK(limit_.per_second == 0 || limit_.burst >= 1,
               "fastar serve: the message burst must be at least 1 message (got " << limit_.burst << ")");
}

MessageRateLimiter::Verdict MessageRateLimiter::admit(Clock::time_point now) {
  if (limit_.per_second == 0) return Verdict::admit;
  if (started_) {
    const double elapsed_s = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(limit_.burst, tokens_ + std::max(0.0, elapsed_s) * limit_.per_second);
  }
  started_ = true;
  last_ = now;
  // A full bucket means the client kept under the rate for a whole burst: the episode is over.
  if (tokens_ >= limit_.burst) excess_ = 0;
  if (tokens_ >= 1) {
    tokens_ -= 1;
    return Verdict::admit;
  }
  ++refused_total_;
  ++excess_;
  if (static_cast<double>(excess_) > limit_.burst) return Verdict::close;
  return excess_ == 1 ? Verdict::warn : Verdict::refuse;
}

}  // namespace fastar::serve
