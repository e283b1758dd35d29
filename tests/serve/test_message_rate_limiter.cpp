// The per-connection message-rate cap (issue 18, "Safety"): a token bucket with an injected clock.
#include <gtest/gtest.h>

#include <chrono>

#include "fastar/core/error.h"
#include "fastar/serve/message_rate_limiter.h"

namespace fastar::serve {
namespace {

using Verdict = MessageRateLimiter::Verdict;
using namespace std::chrono_literals;

const MessageRateLimiter::Clock::time_point t0{};

TEST(MessageRateLimiter, ABurstPassesThenTheFirstExtraWarnsAndTheRestAreRefused) {
  MessageRateLimiter limiter({.per_second = 10, .burst = 5});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(limiter.admit(t0), Verdict::admit) << i;
  EXPECT_EQ(limiter.admit(t0), Verdict::warn);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(limiter.admit(t0), Verdict::refuse) << i;
  EXPECT_EQ(limiter.refused(), 5);
}

TEST(MessageRateLimiter, AClientThatGoesOnIsClosedAfterMoreThanABurstOfRefusals) {
  MessageRateLimiter limiter({.per_second = 10, .burst = 5});
  for (int i = 0; i < 5; ++i) limiter.admit(t0);
  for (int i = 0; i < 5; ++i) EXPECT_NE(limiter.admit(t0), Verdict::close) << i;  // 5 refused: still open
  EXPECT_EQ(limiter.admit(t0), Verdict::close);                                    // the 6th
}

TEST(MessageRateLimiter, AClientAtTheRateIsNeverRefused) {
  // 10 messages/s against a cap of 10/s for a minute (the bucket refills exactly as fast as it drains).
  MessageRateLimiter limiter({.per_second = 10, .burst = 10});
  for (int i = 0; i < 600; ++i) ASSERT_EQ(limiter.admit(t0 + i * 100ms), Verdict::admit) << i;
  EXPECT_EQ(limiter.refused(), 0);
}

TEST(MessageRateLimiter, ASustainedSmallExcessIsClosedEventually) {
  // 15 messages/s against 10/s: the bucket drains (5/s net), then 5 refusals a second; the episode never
  // ends because the bucket never fills again, so it closes after burst + 1 refusals.
  MessageRateLimiter limiter({.per_second = 10, .burst = 10});
  int first_refusal = -1, closed_at = -1;
  for (int i = 0; i < 15 * 20 && closed_at < 0; ++i) {
    const Verdict v = limiter.admit(t0 + std::chrono::microseconds(i * 1000000 / 15));
    if (v == Verdict::warn) first_refusal = i;
    if (v == Verdict::close) closed_at = i;
  }
  ASSERT_GE(first_refusal, 0);
  ASSERT_GE(closed_at, 0) << "15 messages/s for 20 s against a cap of 10/s must close";
  // Drained after ~2 s (30 messages), then 11 refusals at 5/s: ~2.2 s more. Loose: within 2-8 s.
  EXPECT_GT(closed_at, 15 * 2);
  EXPECT_LT(closed_at, 15 * 8);
}

TEST(MessageRateLimiter, AFullBucketEndsTheEpisode) {
  MessageRateLimiter limiter({.per_second = 10, .burst = 5});
  for (int i = 0; i < 5; ++i) limiter.admit(t0);
  EXPECT_EQ(limiter.admit(t0), Verdict::warn);
  for (int i = 0; i < 4; ++i) limiter.admit(t0);  // 5 refused: one more would close
  // Quiet for 0.5 s: the bucket (5 at 10/s) is full again, so the count of refusals starts over.
  const auto later = t0 + 500ms;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(limiter.admit(later), Verdict::admit) << i;
  EXPECT_EQ(limiter.admit(later), Verdict::warn);  // warned again, not closed
}

TEST(MessageRateLimiter, NotQuietEnoughKeepsTheEpisode) {
  // Negative control for the test above: after 0.2 s the bucket holds 2 of 5, so the refusals go on
  // counting and the client is closed.
  MessageRateLimiter limiter({.per_second = 10, .burst = 5});
  for (int i = 0; i < 5; ++i) limiter.admit(t0);
  for (int i = 0; i < 5; ++i) limiter.admit(t0);
  const auto later = t0 + 200ms;
  EXPECT_EQ(limiter.admit(later), Verdict::admit);
  EXPECT_EQ(limiter.admit(later), Verdict::admit);
  EXPECT_EQ(limiter.admit(later), Verdict::close);
}

TEST(MessageRateLimiter, ZeroTurnsTheCapOffAndBadSettingsAreErrors) {
  MessageRateLimiter off({.per_second = 0, .burst = 0});
  for (int i = 0; i < 10000; ++i) ASSERT_EQ(off.admit(t0), Verdict::admit);
  EXPECT_THROW(MessageRateLimiter({.per_second = -1, .burst = 5}), fastar::Error);
  EXPECT_THROW(MessageRateLimiter({.per_second = 10, .burst = 0.5}), fastar::Error);
}

}  // namespace
}  // namespace fastar::serve
