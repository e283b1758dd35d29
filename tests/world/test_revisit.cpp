// The revisit scene (src/fastar/world/revisit.h): determinism, the camera panning with the actions,
// objects leaving and coming back with their colours, the occluder, the ground truth against the
// pixels, the revisit frames, the CLI, and the prompt scenes' bytes left as they were.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "fastar/core/error.h"
#include "fastar/rollout/png_writer.h"
#include "fastar/world/world.h"
#include "test_util.h"

namespace fastar::world {
namespace {

constexpr int kS = kFrameSize;
constexpr size_t kFrameBytes = static_cast<size_t>(kS) * kS * 3;
constexpr int kLandmark0 = 0, kHider = kRevisitLandmarks, kBouncer = kRevisitLandmarks + 1;

const uint8_t* pixel(const Tensor& frames, int64_t t, int i, int j) {
  return frames.data<uint8_t>() + ((t * kS + i) * kS + j) * 3;
}

bool same_rgb(const uint8_t* p, const Rgb& c) { return p[0] == c[0] && p[1] == c[1] && p[2] == c[2]; }

int64_t count_rgb(const Tensor& frames, int64_t t, const Rgb& c) {
  int64_t n = 0;
  for (int i = 0; i < kS; ++i)
    for (int j = 0; j < kS; ++j) n += same_rgb(pixel(frames, t, i, j), c);
  return n;
}

// FNV-1a over a tensor's bytes.
uint64_t fnv1a(const Tensor& t) {
  uint64_t h = 0xcbf29ce484222325ull;
  const uint8_t* p = static_cast<const uint8_t*>(t.raw_data());
  for (int64_t i = 0; i < t.nbytes(); ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

TEST(WorldRevisit, SameInputsSameBytesAndTruth) {
  const std::vector<uint8_t> actions = revisit_actions({}, 96);
  std::vector<RevisitFrameTruth> ta, tb;
  const Tensor a = render_revisit_frames(actions, 11, 96, &ta);
  const Tensor b = render_revisit_frames(actions, 11, 96, &tb);
  EXPECT_EQ(a.shape(), (Shape{96, 64, 64, 3}));
  EXPECT_EQ(fnv1a(a), fnv1a(b));
  const RevisitWorld world(11);
  const std::string ja = revisit_truth_json(world, actions, ta, {}), jb = revisit_truth_json(RevisitWorld(11), actions, tb, {});
  EXPECT_EQ(ja, jb);
  EXPECT_NE(fnv1a(a), fnv1a(render_revisit_frames(actions, 12, 96)));
  EXPECT_NE(fnv1a(a), fnv1a(render_revisit_frames(parse_actions("DDDD", 96), 11, 96)));
  // Rendering frame t alone from camera_at gives the same bytes and truth as the whole clip.
  std::vector<uint8_t> one(kFrameBytes);
  for (int64_t t : {0, 40, 95}) {
    const RevisitFrameTruth truth = world.render(world.camera_at(actions, t), t, one.data());
    EXPECT_EQ(std::memcmp(one.data(), pixel(a, t, 0, 0), kFrameBytes), 0) << t;
    EXPECT_EQ(truth.objects[kBouncer].pixels, ta[static_cast<size_t>(t)].objects[kBouncer].pixels) << t;
  }
}

TEST(WorldRevisit, LayoutIsWhatTheHeaderSays) {
  for (uint64_t seed = 0; seed < 30; ++seed) {
    const RevisitWorld world(seed);
    ASSERT_EQ(world.objects().size(), static_cast<size_t>(kRevisitObjects));
    for (int k = 0; k < kRevisitObjects; ++k) {
      for (int m = 0; m < k; ++m) EXPECT_NE(world.objects()[k].colour, world.objects()[m].colour) << seed;
      const RevisitRole want = k < kRevisitLandmarks ? RevisitRole::Landmark : k == kHider ? RevisitRole::Hider : RevisitRole::Bouncer;
      EXPECT_EQ(world.objects()[k].role, want);
    }
    const std::vector<std::array<double, 2>> xy = world.map_positions(0);
    // Landmark 0 and the occluder lie in the start view; landmarks stay on the map.
    const double r0 = world.objects()[0].half_size;
    EXPECT_GE(xy[0][0] - r0, kCameraStartX);
    EXPECT_LE(xy[0][0] + r0, kCameraStartX + 56);
    EXPECT_GE(world.occluder().x0, kCameraStartX);
    EXPECT_LE(world.occluder().y1, kCameraStartY + kS);
    for (int k = 0; k < kRevisitObjects; ++k)
      for (int64_t t : {0, 50, 200}) {
        const auto p = world.map_positions(t)[static_cast<size_t>(k)];
        EXPECT_TRUE(p[0] >= 0 && p[0] <= kRevisitMapSize && p[1] >= 0 && p[1] <= kRevisitMapSize) << seed << " " << k;
        if (k < kRevisitLandmarks) EXPECT_EQ(p, xy[static_cast<size_t>(k)]);
      }
  }
}

TEST(WorldRevisit, TruthMatchesThePixels) {
  for (uint64_t seed = 0; seed < 8; ++seed) {
    const RevisitWorld world(seed);
    const std::vector<uint8_t> actions = seed % 2 ? revisit_actions({}, 96) : sample_actions(seed, 96);
    std::vector<RevisitFrameTruth> truth;
    const Tensor frames = render_revisit_frames(actions, seed, 96, &truth);
    ASSERT_EQ(truth.size(), 96u);
    for (int64_t t = 0; t < 96; ++t) {
      const RevisitFrameTruth& f = truth[static_cast<size_t>(t)];
      EXPECT_EQ(f.t, t);
      const CameraState c = world.camera_at(actions, t);
      EXPECT_EQ(f.camera.x, c.x);
      EXPECT_EQ(f.camera.y, c.y);
      // Every object has its own colour, so its pixels are the pixels of its colour.
      const auto xy = world.map_positions(t);
      for (int k = 0; k < kRevisitObjects; ++k) {
        const RevisitObjectTruth& o = f.objects[static_cast<size_t>(k)];
        EXPECT_EQ(count_rgb(frames, t, colour_rgb(world.objects()[k].colour)), o.pixels) << seed << " " << t << " " << k;
        EXPECT_EQ(o.visible, o.pixels > 0);
        EXPECT_DOUBLE_EQ(o.x, xy[static_cast<size_t>(k)][0] - c.x);
        EXPECT_DOUBLE_EQ(o.y, xy[static_cast<size_t>(k)][1] - c.y);
        if (o.visible) EXPECT_TRUE(o.in_view);
      }
      EXPECT_EQ(count_rgb(frames, t, kOccluderRgb), f.occluder_pixels) << seed << " " << t;
      // The player ring stays at the centre of the view, on top.
      EXPECT_TRUE(same_rgb(pixel(frames, t, 32, 32 + 4), kPlayerRgb));
    }
  }
}

TEST(WorldRevisit, StaticObjectsMoveAgainstThePan) {
  // From the start view, one action of each kind: everything still on the map moves kCameraStep
  // pixels the other way in view coordinates, and so do its pixels.
  const RevisitWorld world(5);
  std::vector<uint8_t> one(kFrameBytes), two(kFrameBytes);
  const RevisitFrameTruth before = world.render(CameraState{}, 0, one.data());
  for (const auto& [action, dx, dy] : std::vector<std::tuple<Action, int, int>>{
           {Action::Right, -2, 0}, {Action::Left, 2, 0}, {Action::Down, 0, -2}, {Action::Up, 0, 2}}) {
    const CameraState moved = RevisitWorld::step_camera(CameraState{}, static_cast<uint8_t>(action));
    const RevisitFrameTruth after = world.render(moved, 0, two.data());
    for (int k = 0; k < kRevisitObjects; ++k) {
      EXPECT_DOUBLE_EQ(after.objects[k].x - before.objects[k].x, dx) << k;
      EXPECT_DOUBLE_EQ(after.objects[k].y - before.objects[k].y, dy) << k;
    }
    EXPECT_DOUBLE_EQ(after.occluder.x0 - before.occluder.x0, dx);
    // Landmark 0's pixels (away from the fixed player ring) moved by (dx, dy).
    const Rgb c = colour_rgb(world.objects()[kLandmark0].colour);
    int64_t moved_pixels = 0;
    for (int i = 0; i < kS; ++i)
      for (int j = 0; j < kS; ++j) {
        if (!same_rgb(two.data() + (i * kS + j) * 3, c)) continue;
        const int si = i - dy, sj = j - dx;
        if (player_contains(sj + 0.5 - 32, si + 0.5 - 32)) continue;
        ASSERT_TRUE(si >= 0 && si < kS && sj >= 0 && sj < kS);
        EXPECT_TRUE(same_rgb(one.data() + (si * kS + sj) * 3, c)) << i << " " << j;
        ++moved_pixels;
      }
    EXPECT_GT(moved_pixels, 20);
  }
  // The camera stops at the map's edges.
  CameraState c;
  for (int i = 0; i < 100; ++i) c = RevisitWorld::step_camera(c, static_cast<uint8_t>(Action::Left));
  EXPECT_EQ(c.x, 0);
  for (int i = 0; i < 100; ++i) c = RevisitWorld::step_camera(c, static_cast<uint8_t>(Action::Down));
  EXPECT_EQ(c.y, kRevisitMapSize - kS);
  EXPECT_THROW(RevisitWorld::step_camera(c, 9), Error);
}

TEST(WorldRevisit, ScriptPansAwayWaitsAndComesBack) {
  const RevisitScript script;  // lead 4, Right x 32, wait 24, Left x 32
  const std::vector<uint8_t> a = revisit_actions(script, 96);
  EXPECT_EQ(format_actions(a), std::string(4, '.') + std::string(32, 'R') + std::string(24, '.') + std::string(32, 'L') +
                                   std::string(4, '.'));
  EXPECT_EQ(format_actions(revisit_actions({2, Direction::Up, 3, 1}, 12)), "..UUU.DDD...");
  EXPECT_EQ(format_actions(revisit_actions({2, Direction::Up, 3, 1}, 5)), "..UUU");
  EXPECT_THROW(revisit_actions({-1, Direction::Up, 3, 1}, 5), Error);
  const RevisitWorld world(0);
  EXPECT_EQ(world.camera_at(a, 35).x, kCameraStartX + 64);
  EXPECT_EQ(world.camera_at(a, 95).x, kCameraStartX);
}

TEST(WorldRevisit, ObjectsLeaveAndComeBackWithTheirColours) {
  const std::vector<uint8_t> actions = revisit_actions({}, 96);
  for (uint64_t seed = 0; seed < 12; ++seed) {
    const RevisitWorld world(seed);
    std::vector<RevisitFrameTruth> truth;
    const Tensor frames = render_revisit_frames(actions, seed, 96, &truth);
    // Landmark 0: seen at the start, out of view for >= 33 frames, seen again: the same pixels,
    // the same colour, once the camera is back.
    const Rgb c = colour_rgb(world.objects()[kLandmark0].colour);
    int64_t longest_unseen = 0, run = 0;
    for (const RevisitFrameTruth& f : truth) {
      run = f.objects[kLandmark0].in_view ? 0 : run + 1;
      longest_unseen = std::max(longest_unseen, run);
    }
    EXPECT_GE(longest_unseen, 33) << seed;
    for (int64_t t : {0, 92, 95}) ASSERT_TRUE(truth[static_cast<size_t>(t)].objects[kLandmark0].visible) << seed << " " << t;
    EXPECT_EQ(truth[95].objects[kLandmark0].pixels, truth[0].objects[kLandmark0].pixels) << seed;
    EXPECT_EQ(count_rgb(frames, 95, c), truth[0].objects[kLandmark0].pixels) << seed;
    // And the revisit rule finds it.
    const std::vector<std::vector<int>> revisited = revisited_objects(truth, {});
    bool found = false;
    for (int64_t t = 60; t < 96; ++t)
      for (int k : revisited[static_cast<size_t>(t)]) found |= k == kLandmark0;
    EXPECT_TRUE(found) << seed;
  }
}

TEST(WorldRevisit, OccluderHidesTheHider) {
  for (uint64_t seed = 0; seed < 12; ++seed) {
    const RevisitWorld world(seed);
    const std::vector<uint8_t> still(120, 0);
    std::vector<RevisitFrameTruth> truth;
    const Tensor frames = render_revisit_frames(still, seed, 120, &truth);
    const Rgb c = colour_rgb(world.objects()[kHider].colour);
    int64_t hidden = 0, shown = 0, longest_hidden = 0, run = 0;
    for (int64_t t = 0; t < 120; ++t) {
      const RevisitObjectTruth& o = truth[static_cast<size_t>(t)].objects[kHider];
      EXPECT_TRUE(o.in_view) << seed << " " << t;  // the camera does not move: the hider stays in view
      const MapRect& occ = truth[static_cast<size_t>(t)].occluder;
      const bool behind = o.x > occ.x0 && o.x < occ.x1 && o.y > occ.y0 && o.y < occ.y1;
      if (!o.visible) {
        EXPECT_TRUE(behind) << seed << " " << t;
        EXPECT_EQ(count_rgb(frames, t, c), 0) << seed << " " << t;  // none of its pixels shows
        ++hidden;
      } else {
        EXPECT_EQ(count_rgb(frames, t, c), o.pixels);
        ++shown;
      }
      run = o.visible ? 0 : run + 1;
      longest_hidden = std::max(longest_hidden, run);
    }
    EXPECT_GE(longest_hidden, 36) << seed;  // hidden longer than any window
    EXPECT_GT(shown, 20) << seed;
    // It comes back out with its colour after the first hiding: a revisit frame for the hider.
    const std::vector<std::vector<int>> revisited = revisited_objects(truth, {});
    bool hider_returns = false;
    for (int64_t t : revisit_frames(revisited))
      for (int k : revisited[static_cast<size_t>(t)]) hider_returns |= k == kHider;
    EXPECT_TRUE(hider_returns) << seed;
  }
}

TEST(WorldRevisit, RevisitFramesHandChecked) {
  // 12 frames, 2 objects (1 = seen), min_unseen 3, hold 2:
  //   object 0: 1 1 0 0 0 1 1 1 0 0 1 1   returns at 5 after 3 unseen: frames 5, 6; the 2-frame gap
  //                                       before 10 is too short
  //   object 1: 0 0 0 0 1 0 0 0 0 1 0 0   first seen at 4 (not a return); returns at 9 after 4 unseen:
  //                                       frame 9 (its run is one frame long)
  const std::string rows[2] = {"110001110011", "000010000100"};
  std::vector<std::vector<bool>> seen(12, std::vector<bool>(2));
  for (int k = 0; k < 2; ++k)
    for (int t = 0; t < 12; ++t) seen[static_cast<size_t>(t)][static_cast<size_t>(k)] = rows[k][static_cast<size_t>(t)] == '1';
  RevisitRule rule;
  rule.min_unseen = 3;
  rule.hold = 2;
  const std::vector<std::vector<int>> r = revisited_objects(seen, rule);
  ASSERT_EQ(r.size(), 12u);
  for (int t = 0; t < 12; ++t) {
    const std::vector<int> want = t == 5 || t == 6 ? std::vector<int>{0} : t == 9 ? std::vector<int>{1} : std::vector<int>{};
    EXPECT_EQ(r[static_cast<size_t>(t)], want) << t;
  }
  EXPECT_EQ(revisit_frames(r), (std::vector<int64_t>{5, 6, 9}));
  rule.hold = 1;
  EXPECT_EQ(revisit_frames(revisited_objects(seen, rule)), (std::vector<int64_t>{5, 9}));
  rule.min_unseen = 4;
  EXPECT_EQ(revisit_frames(revisited_objects(seen, rule)), (std::vector<int64_t>{9}));
  rule.min_unseen = 2;
  EXPECT_EQ(revisit_frames(revisited_objects(seen, rule)), (std::vector<int64_t>{5, 9, 10}));
  rule.min_unseen = 5;
  EXPECT_TRUE(revisit_frames(revisited_objects(seen, rule)).empty());
  // Both objects on one frame: object 1 also seen at 7 (after a 2-frame gap), object 0 in the third
  // frame of its run from 5.
  seen[7][1] = true;
  rule.min_unseen = 1;
  rule.hold = 3;
  EXPECT_EQ(revisited_objects(seen, rule)[7], (std::vector<int>{0, 1}));
  // Bad rules and ragged input.
  rule.hold = 0;
  EXPECT_THROW(revisited_objects(seen, rule), Error);
  seen[3].push_back(true);
  EXPECT_THROW(revisited_objects(seen, RevisitRule{}), Error);
  EXPECT_TRUE(revisited_objects(std::vector<std::vector<bool>>{}, RevisitRule{}).empty());
}

TEST(WorldRevisit, PromptScenesBytesUnchanged) {
  // Pinned hashes of the prompt scenes' frames (the shipped model was trained on them): the revisit
  // scene must not change a byte of them.
  const std::string prompt = "a red circle bounces . a blue square drifts left . a yellow triangle orbits . background "
                             "stripes pans right";
  EXPECT_EQ(fnv1a(render_frames(prompt, parse_actions("RRRRUUUU..LLDD", 16), 7, 16)), 1498831480752201979ull);
  EXPECT_EQ(fnv1a(make_dataset(3, 8, 5, 1).frames), 13405361274543216699ull);
}

TEST(WorldRevisitCli, RenderWritesFramesAndTruth) {
  const std::string dir = testing::make_temp_dir("world_revisit");
  const std::string out = dir + "/frames";
  testing::CliResult r = testing::run_fastar("world render --scene revisit --seed 4 --frames 40 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<RevisitFrameTruth> truth;
  const std::vector<uint8_t> actions = revisit_actions({}, 40);
  const Tensor expected = render_revisit_frames(actions, 4, 40, &truth);
  for (int64_t t = 0; t < 40; ++t) {
    char name[32];
    std::snprintf(name, sizeof(name), "/frame_%06lld.png", static_cast<long long>(t));
    const RgbFrame frame = read_png(out + name);
    ASSERT_EQ(frame.rgb.size(), kFrameBytes);
    EXPECT_EQ(std::memcmp(frame.rgb.data(), pixel(expected, t, 0, 0), kFrameBytes), 0) << t;
  }
  std::ifstream in(out + "/truth.json");
  ASSERT_TRUE(in.good());
  const nlohmann::json doc = nlohmann::json::parse(in);
  EXPECT_EQ(doc["scene"], "revisit");
  EXPECT_EQ(doc["world_version"], kRevisitVersion);
  EXPECT_EQ(doc["actions"], format_actions(actions));
  EXPECT_EQ(doc["per_frame"].size(), 40u);
  EXPECT_EQ(doc["objects"][kHider]["role"], "hider");
  EXPECT_EQ(doc["objects"][kHider]["colour"], colour_name(RevisitWorld(4).objects()[kHider].colour));
  for (int64_t t : {0, 20, 39})
    for (int k = 0; k < kRevisitObjects; ++k) {
      const nlohmann::json& o = doc["per_frame"][t]["objects"][k];
      EXPECT_EQ(o["pixels"], truth[static_cast<size_t>(t)].objects[static_cast<size_t>(k)].pixels);
      EXPECT_EQ(o["visible"], truth[static_cast<size_t>(t)].objects[static_cast<size_t>(k)].visible);
      EXPECT_DOUBLE_EQ(o["x"].get<double>(), truth[static_cast<size_t>(t)].objects[static_cast<size_t>(k)].x);
    }
  for (const auto& entry : std::filesystem::directory_iterator(out))
    EXPECT_FALSE(testing::contains(entry.path().string(), ".tmp-"));
  // Explicit actions, and the revisit rule's option.
  testing::CliResult r2 = testing::run_fastar("world render --scene revisit --seed 4 --frames 8 --actions UUDD "
                                              "--min-unseen 5 --out " + dir + "/b");
  ASSERT_EQ(r2.exit_code, 0) << r2.output;
  std::ifstream in2(dir + "/b/truth.json");
  const nlohmann::json doc2 = nlohmann::json::parse(in2);
  EXPECT_EQ(doc2["actions"], "UUDD....");
  EXPECT_EQ(doc2["revisit"]["min_unseen"], 5);

  for (const auto& [args, message] : std::vector<std::pair<std::string, std::string>>{
           {"world render --scene maze --seed 1 --out /tmp/x", "--scene must be 'prompt' or 'revisit'"},
           {"world render --scene revisit --prompt 'a red circle bounces' --seed 1 --out /tmp/x", "takes no --prompt"},
           {"world render --scene revisit --out /tmp/x", "--seed is required"},
           {"world render --scene revisit --seed 1", "--out is required"},
           {"world render --scene revisit --seed 1 --frames 2 --actions UUU --out /tmp/x", "3 actions for 2 frames"},
           {"world render --prompt 'a red circle bounces' --seed 1 --min-unseen 4 --out /tmp/x", "--scene revisit only"},
       }) {
    testing::CliResult bad = testing::run_fastar(args);
    EXPECT_EQ(bad.exit_code, 2) << args << "\n" << bad.output;
    EXPECT_TRUE(testing::contains(bad.output, message)) << args << "\n" << bad.output;
  }
}

}  // namespace
}  // namespace fastar::world
