// Server hardening from issue 18 ("Sessions", "Safety"): the per-connection message-rate cap (an error,
// then close 1008), the outbox's byte cap beside its chunk cap, and the idle timeout. End to end
// through a real Server with the world source, plus the session's byte cap on its own.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "fastar/serve/stream_session.h"
#include "serve_test_client.h"

namespace fastar::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kPrompt = "a red circle stays .";

// Sends `n` acks as fast as the socket takes them; stops early if the server has closed the socket.
int send_acks(ServeTestClient& client, int n) {
  for (int i = 0; i < n; ++i) {
    try {
      client.send(R"({"type":"ack","frames":0})");
    } catch (const boost::system::system_error&) {
      return i;
    }
  }
  return n;
}

TEST(ServeHardening, AMessageFloodGetsANonFatalErrorThenClose1008) {
  serve::ServerOptions options = no_lead();
  options.message_rate = {.per_second = 20, .burst = 20};
  RunningServer s(options);
  ServeTestClient client(s.port);
  client.hello(kPrompt);
  ASSERT_TRUE(client.read_json("ready"));
  // hello + 19 acks fill the burst of 20; the next ones are over the rate.
  send_acks(client, 25);
  auto warning = client.read_json("error");
  ASSERT_TRUE(warning);
  EXPECT_EQ((*warning)["code"], "rate_limited");
  EXPECT_EQ((*warning)["fatal"], false);
  EXPECT_NE((*warning)["message"].get<std::string>().find("messages/s"), std::string::npos) << *warning;
  ASSERT_TRUE(client.read_frame()) << "a warning does not end the session";
  // Going on: at most burst + 1 more refusals (fewer if the bucket has not refilled) and it is closed.
  send_acks(client, 100);
  std::optional<nlohmann::json> fatal;
  for (auto error = client.read_json("error"); error; error = client.read_json("error"))
    if ((*error)["fatal"] == true) {
      fatal = error;
      break;
    }
  ASSERT_TRUE(fatal) << "no fatal rate_limited error";
  EXPECT_EQ((*fatal)["code"], "rate_limited");
  EXPECT_EQ(client.wait_close(), 1008);
}

TEST(ServeHardening, AClientUnderTheRateIsNeverLimited) {
  // A page-like client: reads frames, acks every 100 ms (10 messages/s) against a cap of 20/s, for 2 s.
  serve::ServerOptions options;
  options.message_rate = {.per_second = 20, .burst = 20};
  RunningServer s(options);
  ServeTestClient client(s.port);
  client.hello(kPrompt);
  const auto start = Clock::now();
  auto next_ack = start;
  int64_t frames = 0, acked = 0;
  while (Clock::now() - start < 2s) {
    if (Clock::now() >= next_ack) {
      client.send(nlohmann::json{{"type", "ack"}, {"frames", frames}}.dump());
      acked = frames;
      next_ack += 100ms;
    }
    if (frames - acked >= 6) {  // the default lead cap (2 chunks): nothing comes until the next ack
      std::this_thread::sleep_until(next_ack);
      continue;
    }
    Received r = client.read(3s);
    ASSERT_TRUE(r.ok) << "the session ended after " << frames << " frames";
    if (!r.text) {
      ++frames;
      continue;
    }
    const auto message = nlohmann::json::parse(r.data);
    ASSERT_NE(message["type"], "error") << message;
  }
  EXPECT_GT(frames, 20);
}

// Waits until the session stops generating (its frame count holds still for 600 ms); its metrics then.
nlohmann::json metrics_once_still(uint16_t port, uint64_t session_id) {
  nlohmann::json last = session_metrics(port, session_id);
  const auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline) {
    std::this_thread::sleep_for(600ms);
    nlohmann::json now = session_metrics(port, session_id);
    if (now.is_null() || last.is_null()) return now;
    if (now["frames"] == last["frames"]) return now;
    last = now;
  }
  ADD_FAILURE() << "the session never stopped generating: " << last;
  return last;
}

TEST(ServeHardening, TheOutboxByteCapPausesAClientThatNeverReads) {
  constexpr int64_t kCap = 16 * 1024;  // ~2 world chunks of 3 JPEG frames (~2.5 KB each at quality 90)
  constexpr int kChunkCap = 50;        // high, so that the byte cap is what binds
  auto stalled_session = [&](int64_t byte_cap) {
    serve::ServerOptions options = no_lead();
    options.limits.outbox_chunks = kChunkCap;
    options.limits.outbox_bytes = byte_cap;
    options.timeouts.stall_s = 60;  // not closed while the test looks
    RunningServer s(options);
    ServeTestClient stuck(s.port, std::nullopt, /*receive_buffer=*/4096);  // destroyed first: the server stops at once
    stuck.hello(kPrompt);
    auto ready = stuck.read_json("ready");  // then never reads again
    EXPECT_TRUE(ready);
    return ready ? metrics_once_still(s.port, (*ready)["session"].get<uint64_t>()) : nlohmann::json();
  };
  const nlohmann::json capped = stalled_session(kCap);
  ASSERT_FALSE(capped.is_null());
  // Stopped by the bytes: at least the cap queued, fewer chunks than the chunk cap. The engine learns a
  // chunk's bytes only once it is encoded, so the chunks in flight when the cap is crossed still come:
  // the bound is the cap plus those chunks (ServeLimits::outbox_bytes), each under kMaxChunkBytes.
  constexpr int64_t kMaxChunkBytes = 12 * 1024;  // 3 frames of 64x64 JPEG + headers + the chunk summary
  EXPECT_GE(capped["outbox_bytes"].get<int64_t>(), kCap) << capped;
  EXPECT_LT(capped["outbox_bytes"].get<int64_t>(), kCap + capped["outbox_chunks"].get<int64_t>() * kMaxChunkBytes) << capped;
  EXPECT_LT(capped["outbox_chunks"].get<int>(), kChunkCap) << capped;
  EXPECT_GE(capped["outbox_byte_pauses"].get<int>(), 1) << capped;
  // Negative control: no byte cap, the same client fills the chunk cap and queues far more bytes.
  const nlohmann::json uncapped = stalled_session(0);
  ASSERT_FALSE(uncapped.is_null());
  EXPECT_EQ(uncapped["outbox_chunks"].get<int>(), kChunkCap) << uncapped;
  EXPECT_GT(uncapped["outbox_bytes"].get<int64_t>(), 4 * kCap) << uncapped;
  EXPECT_EQ(uncapped["outbox_byte_pauses"].get<int>(), 0) << uncapped;
}

TEST(ServeHardening, IdleTimeoutClosesASilentClientButNotAnAckingOne) {
  serve::ServerOptions options;
  options.timeouts.idle_s = 0.6;
  RunningServer s(options);
  ServeTestClient silent(s.port), acking(s.port);
  silent.hello(kPrompt);
  acking.hello(kPrompt);
  ASSERT_TRUE(silent.read_json("ready"));
  // The acking client reads and acks every 150 ms for 1.5 s, well past the idle timeout.
  int64_t frames = 0;
  std::thread page([&] {
    const auto start = Clock::now();
    while (Clock::now() - start < 1500ms) {
      acking.send(nlohmann::json{{"type", "ack"}, {"frames", frames}}.dump());
      const auto until = Clock::now() + 150ms;
      while (Clock::now() < until) {
        auto frame = acking.read_frame(1s);  // ≤ 6 unacked frames come at once, then nothing until the ack
        if (!frame) break;
        ++frames;
        if (frames % 6 == 0) break;
      }
      std::this_thread::sleep_until(until);
    }
  });
  const auto silent_since = Clock::now();
  auto bye = silent.read_json("bye", 5s);
  ASSERT_TRUE(bye) << "no bye{idle} from a client that sent nothing after hello";
  EXPECT_EQ((*bye)["reason"], "idle");
  const double waited = std::chrono::duration<double>(Clock::now() - silent_since).count();
  EXPECT_GE(waited, 0.3);   // the timeout counts from the hello (sent just before), 0.6 s
  EXPECT_LT(waited, 4.0);   // 0.6 s + the 0.25 s watchdog, loose for a loaded machine
  EXPECT_EQ(silent.wait_close(), 1000);
  page.join();
  EXPECT_GT(frames, 6) << "the acking client was served beyond its first two chunks";
  acking.send(nlohmann::json{{"type", "ack"}, {"frames", frames}}.dump());  // within 0.6 s of the last ack
  ASSERT_TRUE(acking.read_frame(2s)) << "the acking client must still be served";
}

// The session's byte cap alone, without sockets: not runnable while the outbox holds the cap; woken
// when it drains below it.
TEST(ServeHardening, SessionIsNotRunnableWhileItsOutboxHoldsTheByteCap) {
  int wakes = 0;
  serve::StreamSession session(1, {.outbox_chunks = 4, .outbox_bytes = 1000, .lead_frames = 0}, {}, [&] { ++wakes; });
  session.start(serve::HelloMessage{kPrompt, 0});
  EXPECT_TRUE(session.runnable());
  session.outbox_bytes_changed(999);
  EXPECT_TRUE(session.runnable());
  session.outbox_bytes_changed(1);
  EXPECT_FALSE(session.runnable());
  EXPECT_EQ(session.metrics()["outbox_byte_pauses"], 1);
  const int before = wakes;
  session.outbox_bytes_changed(-1);
  EXPECT_TRUE(session.runnable());
  EXPECT_EQ(wakes, before + 1) << "draining below the cap must wake the engine";
  // Negative control: no byte cap (0), any amount queued.
  serve::StreamSession uncapped(2, {.outbox_chunks = 4, .outbox_bytes = 0, .lead_frames = 0}, {}, [] {});
  uncapped.start(serve::HelloMessage{kPrompt, 0});
  uncapped.outbox_bytes_changed(int64_t{1} << 40);
  EXPECT_TRUE(uncapped.runnable());
}

}  // namespace
}  // namespace fastar::testing
