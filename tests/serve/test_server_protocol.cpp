// The server end to end (serving-spec.md §6.8): a real Server on an ephemeral loopback port with the
// world source, and Beast WebSocket clients. Malformed JSON, oversize, unknown types, out-of-order
// messages, unknown prompt words, a client that never reads, limits, origin, shutdown.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <thread>

#include "fastar/serve/jpeg_encoder.h"
#include "fastar/serve/server.h"
#include "fastar/serve/world_chunk_source.h"
#include "fastar/world/world.h"
#include "serve_test_client.h"

namespace fastar::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kRedPrompt = "a red circle stays .";

void ack_all(ServeTestClient& client, int64_t frames) { client.send(nlohmann::json{{"type", "ack"}, {"frames", frames}}.dump()); }

TEST(ServeProtocol, HelloGivesReadyThenConsecutiveFramesThatMatchTheWorld) {
  RunningServer s;
  ServeTestClient client(s.port);
  client.hello(kRedPrompt, 5);
  auto ready = client.read_json("ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ((*ready)["width"], 64);
  EXPECT_EQ((*ready)["chunk_frames"], 3);
  EXPECT_EQ((*ready)["source"], "world");
  Tensor truth = world::render_frames(kRedPrompt, {}, 5, 9);
  for (uint64_t f = 0; f < 9; ++f) {
    auto frame = client.read_frame();
    ASSERT_TRUE(frame) << "frame " << f;
    EXPECT_EQ(frame->first.frame_index, f);
    EXPECT_EQ(frame->first.chunk_index, f / 3);
    RgbFrame decoded = serve::decode_jpeg(frame->second);
    double worst = 0;
    const uint8_t* expected = truth.data<uint8_t>() + f * 64 * 64 * 3;
    double squared = 0;
    for (size_t i = 0; i < decoded.rgb.size(); ++i) squared += std::pow(double(decoded.rgb[i]) - expected[i], 2);
    worst = 10 * std::log10(255.0 * 255.0 / (squared / decoded.rgb.size()));
    EXPECT_GT(worst, 30.0) << "frame " << f << " PSNR";
    if (f % 3 == 2) ack_all(client, static_cast<int64_t>(f + 1));  // the default lead cap: 2 chunks
  }
  auto chunk = client.read_json("chunk");
  ASSERT_TRUE(chunk);
  EXPECT_TRUE(chunk->contains("gen_ms"));
}

TEST(ServeProtocol, MalformedJsonClosesOnlyItsOwnSession) {
  RunningServer s(no_lead());
  ServeTestClient good(s.port), bad(s.port);
  good.hello(kRedPrompt);
  ASSERT_TRUE(good.read_json("ready"));
  bad.hello(kRedPrompt);
  ASSERT_TRUE(bad.read_json("ready"));
  bad.send("{\"type\": ");
  auto error = bad.read_json("error");
  ASSERT_TRUE(error);
  EXPECT_EQ((*error)["fatal"], true);
  EXPECT_EQ(bad.wait_close(), 1008);
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(good.read_frame(2s)) << "the other session stopped at frame " << i;
}

TEST(ServeProtocol, OversizeMessageIsClosedWith1009) {
  RunningServer s;
  ServeTestClient client(s.port);
  client.hello(kRedPrompt);
  ASSERT_TRUE(client.read_json("ready"));
  client.send("{\"type\":\"prompt\",\"seq\":1,\"text\":\"" + std::string(5000, 'a') + "\"}");
  EXPECT_EQ(client.wait_close(), 1009);
}

TEST(ServeProtocol, UnknownTypeBinaryAndOutOfOrderMessagesClose1008) {
  RunningServer s;
  {
    ServeTestClient client(s.port);
    client.send(R"({"type":"action","seq":1,"a":"R"})");  // before hello
    EXPECT_EQ(client.wait_close(), 1008);
  }
  {
    ServeTestClient client(s.port);
    client.hello(kRedPrompt);
    ASSERT_TRUE(client.read_json("ready"));
    client.hello(kRedPrompt);  // twice
    EXPECT_EQ(client.wait_close(), 1008);
  }
  {
    ServeTestClient client(s.port);
    client.hello(kRedPrompt);
    client.send(R"({"type":"teleport","to":"/etc/passwd"})");
    auto error = client.read_json("error");
    ASSERT_TRUE(error);
    EXPECT_NE((*error)["message"].get<std::string>().find("unknown message type"), std::string::npos);
    EXPECT_EQ(client.wait_close(), 1008);
  }
  {
    ServeTestClient client(s.port);
    client.send_binary("FAR1");
    EXPECT_EQ(client.wait_close(), 1008);
  }
}

TEST(ServeProtocol, UnknownPromptWordIsANonFatalError) {
  RunningServer s(no_lead());
  ServeTestClient client(s.port);
  client.hello(kRedPrompt);
  ASSERT_TRUE(client.read_json("ready"));
  client.send(R"({"type":"prompt","seq":1,"text":"a purple circle stays ."})");
  auto error = client.read_json("error");
  ASSERT_TRUE(error);
  EXPECT_EQ((*error)["fatal"], false);
  EXPECT_NE((*error)["message"].get<std::string>().find("purple"), std::string::npos) << (*error)["message"];
  ASSERT_TRUE(client.read_frame()) << "the session must run on under its old prompt";
  client.send(R"({"type":"prompt","seq":2,"text":"a green square stays .","recache":false})");
  auto applied = client.read_json("prompt_applied");
  ASSERT_TRUE(applied);
  EXPECT_EQ((*applied)["seq"], 2);
  EXPECT_GT((*applied)["at_frame"].get<int64_t>(), 0);
  // Frames from at_frame on carry prompt_seq 2 and show green, not red.
  for (;;) {
    auto frame = client.read_frame();
    ASSERT_TRUE(frame);
    if (frame->first.frame_index < (*applied)["at_frame"].get<uint64_t>()) continue;
    EXPECT_EQ(frame->first.prompt_seq, 2u);
    RgbFrame rgb = serve::decode_jpeg(frame->second);
    int red = 0, green = 0;
    for (size_t p = 0; p < rgb.rgb.size(); p += 3) {
      red += rgb.rgb[p] > 150 && rgb.rgb[p + 1] < 80 && rgb.rgb[p + 2] < 80;
      green += rgb.rgb[p + 1] > 150 && rgb.rgb[p] < 80 && rgb.rgb[p + 2] < 80;
    }
    EXPECT_LT(red, 5);
    EXPECT_GT(green, 50);
    break;
  }
}

TEST(ServeProtocol, BadPromptInHelloIsFatal) {
  RunningServer s;
  ServeTestClient client(s.port);
  client.hello("a red blob wobbles .");
  auto error = client.read_json("error");
  ASSERT_TRUE(error);
  EXPECT_EQ((*error)["fatal"], true);
  EXPECT_EQ((*error)["code"], "bad_prompt");
  EXPECT_EQ(client.wait_close(), 1008);
}

TEST(ServeProtocol, ActionsConditionTheNextChunkAndMoveThePlayer) {
  RunningServer s(no_lead());
  ServeTestClient client(s.port);
  client.hello(kRedPrompt, 3);
  ASSERT_TRUE(client.read_json("ready"));
  client.send(R"({"type":"action","seq":7,"a":"R"})");
  for (;;) {
    auto frame = client.read_frame();
    ASSERT_TRUE(frame);
    if (frame->first.action_seq == 7) break;  // latest state: some later chunk carries it
  }
  client.send(R"({"type":"pause","paused":true})");
  client.send(R"({"type":"reset","seed":3})");
  client.send(R"({"type":"pause","paused":false})");
  ASSERT_TRUE(client.read_json("reset_applied"));
  auto first = client.read_frame();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->first.frame_index, 0u);
  EXPECT_EQ(first->first.action_seq, 7u);  // the held key still holds after a reset
  // Frame 0 after the reset with action R: exactly the renderer's frame for "R".
  Tensor truth = world::render_frames(kRedPrompt, world::parse_actions("R", 1), 3, 1);
  RgbFrame decoded = serve::decode_jpeg(first->second);
  double squared = 0;
  for (size_t i = 0; i < decoded.rgb.size(); ++i) squared += std::pow(double(decoded.rgb[i]) - truth.data<uint8_t>()[i], 2);
  EXPECT_GT(10 * std::log10(255.0 * 255.0 / (squared / decoded.rgb.size())), 30.0);
}

TEST(ServeProtocol, MaxSessionsRefusesTheNextWith1013) {
  serve::ServerOptions options;
  options.max_sessions = 2;
  RunningServer s(options);
  ServeTestClient a(s.port), b(s.port);
  a.hello(kRedPrompt);
  b.hello(kRedPrompt);
  ASSERT_TRUE(a.read_json("ready"));
  ASSERT_TRUE(b.read_json("ready"));
  ServeTestClient c(s.port);
  auto error = c.read_json("error");
  ASSERT_TRUE(error);
  EXPECT_EQ((*error)["code"], "busy");
  EXPECT_EQ(c.wait_close(), 1013);
}

TEST(ServeProtocol, AClientThatNeverReadsPausesAloneAndIsClosedWhenStalled) {
  serve::ServerOptions options = no_lead();
  options.timeouts.stall_s = 1.0;
  RunningServer s(options);
  ServeTestClient stuck(s.port, std::nullopt, /*receive_buffer=*/4096);
  stuck.hello(kRedPrompt);  // and never reads again
  ServeTestClient reader(s.port);
  reader.hello(kRedPrompt);
  ASSERT_TRUE(reader.read_json("ready"));
  // The reader is served throughout: frames keep coming while the other socket is full.
  const auto start = std::chrono::steady_clock::now();
  int frames = 0;
  while (std::chrono::steady_clock::now() - start < 2500ms) {
    ASSERT_TRUE(reader.read_frame(1s)) << "the reading session stalled after " << frames << " frames";
    ++frames;
  }
  EXPECT_GT(frames, 30);
  // The stuck session paused on its full outbox (it never grew past it) and was closed as stalled.
  auto [status, body] = http_get(s.port, "/metrics");
  ASSERT_EQ(status, 200);
  const nlohmann::json metrics = nlohmann::json::parse(body);
  EXPECT_EQ(metrics["open_sessions"], 1) << body;
  for (const auto& session : metrics["sessions"]) EXPECT_LE(session["outbox_chunks"].get<int>(), 2) << body;
}

TEST(ServeProtocol, OriginAndHostChecks) {
  RunningServer s;
  EXPECT_EQ(ServeTestClient::handshake_status(s.port, "http://evil.example"), 403);
  EXPECT_EQ(ServeTestClient::handshake_status(s.port, "http://127.0.0.1:" + std::to_string(s.port)), 101);
  EXPECT_EQ(http_get(s.port, "/", "evil.example:" + std::to_string(s.port)).first, 403);
}

TEST(ServeProtocol, PageHealthAndMetricsAreServedFromTheBinary) {
  RunningServer s;
  auto [status, page] = http_get(s.port, "/");
  EXPECT_EQ(status, 200);
  EXPECT_NE(page.find("<canvas id=\"video\""), std::string::npos);
  EXPECT_EQ(http_get(s.port, "/app.js").first, 200);
  EXPECT_EQ(http_get(s.port, "/../../etc/passwd").first, 404);
  auto health = nlohmann::json::parse(http_get(s.port, "/healthz").second);
  EXPECT_EQ(health["status"], "ok");
  EXPECT_EQ(health["source"], "world");
  EXPECT_EQ(health["max_sessions"], 2);
  EXPECT_TRUE(nlohmann::json::parse(http_get(s.port, "/metrics").second).contains("sessions"));
}

TEST(ServeProtocol, StopClosesEverySessionWith1001) {
  RunningServer s(no_lead());
  ServeTestClient a(s.port), b(s.port);
  a.hello(kRedPrompt);
  b.hello(kRedPrompt);
  ASSERT_TRUE(a.read_json("ready"));
  ASSERT_TRUE(b.read_json("ready"));
  std::thread stopper([&] { s.server->stop(); });
  auto bye = a.read_json("bye");
  ASSERT_TRUE(bye);
  EXPECT_EQ((*bye)["reason"], "shutdown");
  EXPECT_EQ(a.wait_close(), 1001);
  EXPECT_EQ(b.wait_close(), 1001);
  stopper.join();
}

}  // namespace
}  // namespace fastar::testing
