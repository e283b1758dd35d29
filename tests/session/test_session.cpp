// The engine API (session/session.h): Session frames equal the pre-Session CLI's, prompts switch
// mid-stream with and without LongLive's re-cache, bad prompts leave the session as it was, reset
// restarts exactly.
#include <gtest/gtest.h>

#include "fastar/core/error.h"
#include "session/session_fixtures.h"

namespace fastar {
namespace {

using testing::frames_hash;
using testing::golden_model;
using testing::roll;
using testing::world_model;

const char* kPrompt = "a red circle bounces . a blue square drifts left .";

std::vector<RgbFrame> world_frames(const std::string& policy, const OptionMap& options, int64_t chunks,
                                   std::shared_ptr<const LoadedModel> model = world_model()) {
  SessionOptions o;
  o.policy = policy;
  o.policy_options = options;
  Session session(model, o, SessionPrompt::from_text(kPrompt));
  return roll(session, chunks, "RRUULL");
}

// Hashes of the frames `fastar generate` wrote before the Session existed (main at 3b86a4b, this
// machine class, --threads 2; PNG frames read back): the refactor keeps every frame bit for bit.
TEST(SessionFrames, EqualThePreSessionCli) {
  // fastar generate --prompt "$P" --actions RRUULL --frames 6 (the world model's default: window 9, sink 0)
  EXPECT_EQ(frames_hash(world_frames("", {}, 2)), 0x152547411707f7f3ull);
  // ... --policy dense+annsa+annca
  EXPECT_EQ(frames_hash(world_frames("dense+annsa+annca", {}, 2)), 0x55a6a0fec814a8f0ull);
  // ... --model models/world-small-arl2 (its default: arl2)
  EXPECT_EQ(frames_hash(world_frames("", {}, 2, LoadedModel::load(testing::source_path("models/world-small-arl2")))),
            0xfbec53998775bd64ull);
  // ... --frames 9 --policy window --window 3 --sink 3
  EXPECT_EQ(frames_hash(world_frames("window", {{"window", "3"}, {"sink", "3"}}, 3)), 0x7484bbe7b95d5431ull);
  // fastar generate --model tests/model/golden/wan_tiny_original --frames 6 (dense, the all-zero prompt)
  Session golden(golden_model(), SessionOptions{});
  EXPECT_EQ(frames_hash(roll(golden, 2)), 0x65ca3511212f9461ull);
  // ... --schedule rolling-forcing
  SessionOptions rolling;
  rolling.schedule = "rolling-forcing";
  rolling.frames = 6;
  Session rolling_session(golden_model(), rolling);
  EXPECT_EQ(frames_hash(roll(rolling_session, 2)), 0x0da51b7def8e99ecull);
}

Tensor random_prompt(uint64_t seed) {
  const WanConfig& c = golden_model()->config();
  Tensor t = Tensor::zeros({5, c.text_dim});
  uint64_t state = seed;
  for (int64_t i = 0; i < t.numel(); ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    t.data<float>()[i] = static_cast<float>(static_cast<int64_t>(state >> 40) % 2001 - 1000) / 1000.0f;
  }
  return t;
}

TEST(SessionPromptSwitch, SamePromptWithRecacheChangesNothing) {
  for (const char* policy : {"dense", "tempcache", "dense+annsa+annca"}) {
    SCOPED_TRACE(policy);
    SessionOptions o;
    o.policy = policy;
    const SessionPrompt prompt = SessionPrompt::from_embeds(random_prompt(1), "test prompt");
    Session plain(golden_model(), o, prompt), switched(golden_model(), o, prompt);
    std::vector<RgbFrame> a = roll(plain, 4, "", false), b = roll(switched, 2, "", false);
    switched.set_prompt(prompt, {.recache = true});
    for (RgbFrame& f : roll(switched, 2, "", false)) b.push_back(std::move(f));
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].rgb, b[i].rgb) << "frame " << i;
  }
}

TEST(SessionPromptSwitch, RecacheRebuildsTheMemoryUnderTheNewPrompt) {
  // Switching to another prompt with and without re-cache gives different frames (the cached entries
  // differ), and both differ from not switching: each path does something.
  SessionOptions o;
  const SessionPrompt first = SessionPrompt::from_embeds(random_prompt(1), "p1");
  const SessionPrompt second = SessionPrompt::from_embeds(random_prompt(2), "p2");
  auto run = [&](int mode) {
    Session s(golden_model(), o, first);
    std::vector<RgbFrame> frames = roll(s, 2, "", false);
    if (mode > 0) s.set_prompt(second, {.recache = mode == 2});
    for (RgbFrame& f : roll(s, 2)) frames.push_back(std::move(f));
    return frames_hash(frames);
  };
  const uint64_t none = run(0), plain = run(1), recache = run(2);
  EXPECT_NE(none, plain);
  EXPECT_NE(plain, recache);
  EXPECT_NE(none, recache);
}

// Saturated pixels of the frames: red (R high, G and B low) and blue (B high, R low).
std::pair<int64_t, int64_t> red_and_blue_pixels(const std::vector<RgbFrame>& frames) {
  int64_t red = 0, blue = 0;
  for (const RgbFrame& f : frames)
    for (size_t i = 0; i + 2 < f.rgb.size(); i += 3) {
      const int r = f.rgb[i], g = f.rgb[i + 1], b = f.rgb[i + 2];
      red += r > 150 && g < 100 && b < 100;
      blue += b > 150 && r < 100 && g < 130;
    }
  return {red, blue};
}

// The shipped world model was trained on clips with one prompt each (never a switch): after "a red
// circle" → "a blue circle" at frame 12 it drops the red circle within a chunk or two, with and
// without re-cache, but does not draw a blue one yet (docs/session.md; issue 19 retrains the model).
// What this checks is the switch reaching the model: red goes, and stays without a switch.
TEST(SessionPromptSwitch, TheWorldModelDropsTheRedCircleAfterASwitch) {
  auto red_of_chunk6 = [](int mode) {  // 0: no switch, 1: plain, 2: re-cache
    Session session(world_model(), SessionOptions{}, SessionPrompt::from_text("a red circle bounces ."));
    const std::vector<RgbFrame> before = roll(session, 4, "", false);  // frames 0-11
    if (mode > 0) session.set_prompt(SessionPrompt::from_text("a blue circle bounces ."), {.recache = mode == 2});
    const std::vector<RgbFrame> after = roll(session, 2, "", false);   // frames 12-17
    const int64_t red_before = red_and_blue_pixels({before.end() - 3, before.end()}).first;
    const int64_t red_after = red_and_blue_pixels({after.end() - 3, after.end()}).first;
    std::printf("mode %d: red pixels in frames 9-11: %lld, in frames 15-17: %lld\n", mode, static_cast<long long>(red_before),
                static_cast<long long>(red_after));
    EXPECT_GT(red_before, 100);
    return std::pair<int64_t, int64_t>{red_before, red_after};
  };
  const auto kept = red_of_chunk6(0);
  EXPECT_GT(kept.second, kept.first / 2);  // no switch: the circle stays red
  for (int mode : {1, 2}) {
    const auto switched = red_of_chunk6(mode);
    EXPECT_LT(switched.second, switched.first / 4) << (mode == 2 ? "recache" : "plain");
  }
}

TEST(SessionPromptSwitch, UnknownWordsAreAnErrorAndTheSessionRunsOn) {
  SessionOptions o;
  Session a(world_model(), o, SessionPrompt::from_text(kPrompt)), b(world_model(), o, SessionPrompt::from_text(kPrompt));
  std::vector<RgbFrame> fa = roll(a, 1, "", false), fb = roll(b, 1, "", false);
  EXPECT_THROW(b.set_prompt(SessionPrompt::from_text("a purple dragon flies ."), {.recache = true}), Error);
  EXPECT_THROW(b.set_prompt(SessionPrompt::from_embeds(Tensor::zeros({3, 7}), "bad.safetensors")), Error);
  for (RgbFrame& f : roll(a, 1, "", false)) fa.push_back(std::move(f));
  for (RgbFrame& f : roll(b, 1, "", false)) fb.push_back(std::move(f));
  EXPECT_EQ(frames_hash(fa), frames_hash(fb));
}

TEST(Session, ResetRestartsExactlyWithTheNewSeed) {
  SessionOptions o;
  o.policy = "tempcache";
  o.seed = 7;
  Session fresh(golden_model(), o);
  const uint64_t expected = frames_hash(roll(fresh, 2));
  o.seed = 3;
  Session reused(golden_model(), o);
  const uint64_t seed3 = frames_hash(roll(reused, 2));
  reused.reset(7);
  EXPECT_EQ(frames_hash(roll(reused, 2)), expected);
  EXPECT_NE(seed3, expected);
  EXPECT_EQ(reused.frames_generated(), 6);
}

TEST(Session, ChunksCarryIndicesStatsAndErrors) {
  SessionOptions o;
  o.policy = "tempcache+window";
  o.policy_options = {{"window", "2"}, {"sink", "1"}};
  Session session(golden_model(), o);
  const Chunk first = session.next_chunk(nullptr);
  const Chunk second = session.next_chunk(nullptr);
  EXPECT_EQ(first.index, 0);
  EXPECT_EQ(second.frame_start, 3);
  EXPECT_EQ(second.frames.size(), 3u);
  EXPECT_GT(second.stats.bytes, 0);
  EXPECT_GE(second.stats.kv_density, 0.0);
  EXPECT_LE(second.stats.kv_density, 1.0);
  EXPECT_TRUE(testing::contains(session.describe(), "tempcache+window (window 2, sink 1")) << session.describe();
  EXPECT_FALSE(session.report().empty());
  const Tensor wrong = Tensor::zeros({3, 5});
  EXPECT_THROW(session.next_chunk(&wrong), Error);  // the golden model takes no actions
  EXPECT_THROW(session.next_chunk("RRR"), Error);
  session.next_chunk(nullptr, /*commit=*/false);
  EXPECT_THROW(session.next_chunk(nullptr), Error);  // its last chunk skipped the clean pass
  SessionOptions gpu;
  gpu.device = Device::CUDA;
  try {
    Session s(golden_model(), gpu);
    GTEST_SKIP() << "a GPU is visible here";
  } catch (const Error& e) {
    EXPECT_TRUE(testing::contains(e.what(), "no CUDA device is visible") || testing::contains(e.what(), "no CUDA backend")) << e.what();
  }
}

}  // namespace
}  // namespace fastar
