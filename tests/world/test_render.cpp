// The world's motion and pixels: determinism, the player following actions, object colours and
// shapes, motions, entering and leaving, background panning.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numbers>

#include "fastar/core/error.h"
#include "fastar/world/world.h"

namespace fastar::world {
namespace {

constexpr int kS = kFrameSize;

const uint8_t* pixel(const Tensor& frames, int64_t t, int i, int j) {
  return frames.data<uint8_t>() + ((t * kS + i) * kS + j) * 3;
}

bool same_rgb(const uint8_t* p, const Rgb& c) { return p[0] == c[0] && p[1] == c[1] && p[2] == c[2]; }

bool bytes_equal(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw_data(), b.raw_data(), static_cast<size_t>(a.nbytes())) == 0;
}

TEST(WorldRender, SameInputsSameBytesDifferentSeedsDiffer) {
  const std::string prompt = "a red circle bounces . a blue square drifts left . a yellow triangle orbits . background "
                             "stripes pans right";
  const std::vector<uint8_t> actions = parse_actions("RRRRUUUU..LLDD", 16);
  const Tensor a = render_frames(prompt, actions, 7, 16);
  EXPECT_EQ(a.shape(), (Shape{16, 64, 64, 3}));
  EXPECT_EQ(a.dtype(), DType::U8);
  EXPECT_TRUE(bytes_equal(a, render_frames(prompt, actions, 7, 16)));
  EXPECT_FALSE(bytes_equal(a, render_frames(prompt, actions, 8, 16)));
  EXPECT_FALSE(bytes_equal(a, render_frames(prompt, parse_actions("LLLL", 16), 7, 16)));
  // Rendering frame t alone gives the same bytes as rendering the whole clip.
  const World world(prompt, 7);
  std::vector<uint8_t> one(kS * kS * 3);
  for (int64_t t : {0, 5, 15}) {
    render_frame(world, actions, t, one.data());
    EXPECT_EQ(std::memcmp(one.data(), pixel(a, t, 0, 0), one.size()), 0) << "frame " << t;
  }
  // Frames change over time (the objects move).
  EXPECT_NE(std::memcmp(pixel(a, 0, 0, 0), pixel(a, 8, 0, 0), one.size()), 0);
}

TEST(WorldRender, PlayerMovesOneStepPerActionAndIsDrawn) {
  const std::string prompt = "a green square stays .";
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const World world(prompt, seed);
    const std::vector<uint8_t> actions = sample_actions(seed + 100, 80);
    // Independent expectation: start, then +-kPlayerStep on one axis per action, clamped.
    double x = world.player_start().x, y = world.player_start().y;
    const Tensor frames = render_frames(prompt, actions, seed, 80);
    for (int64_t t = 0; t < 80; ++t) {
      const uint8_t a = actions[static_cast<size_t>(t)];
      const double dx = a == 3 ? -kPlayerStep : a == 4 ? kPlayerStep : 0;
      const double dy = a == 1 ? -kPlayerStep : a == 2 ? kPlayerStep : 0;
      x = std::min(std::max(x + dx, kPlayerRadius), kS - kPlayerRadius);
      y = std::min(std::max(y + dy, kPlayerRadius), kS - kPlayerRadius);
      const PlayerState p = world.player_at(actions, t);
      ASSERT_DOUBLE_EQ(p.x, x) << "seed " << seed << " frame " << t;
      ASSERT_DOUBLE_EQ(p.y, y) << "seed " << seed << " frame " << t;
      EXPECT_EQ(world.state_at(actions, t).player.x, p.x);
      // The ring is on top of everything: a pixel halfway through it has the player's colour.
      const int i = static_cast<int>(std::floor(p.y)), j = static_cast<int>(std::floor(p.x + 4.25));
      ASSERT_TRUE(player_contains(j + 0.5 - p.x, i + 0.5 - p.y));
      EXPECT_TRUE(same_rgb(pixel(frames, t, i, j), kPlayerRgb)) << "seed " << seed << " frame " << t;
    }
  }
  // From the middle, each action moves one way only.
  World world("a green square stays .", 3);
  const PlayerState start = world.player_start();
  const PlayerState up = World::step_player(start, 1), down = World::step_player(start, 2);
  const PlayerState left = World::step_player(start, 3), right = World::step_player(start, 4);
  const PlayerState none = World::step_player(start, 0);
  EXPECT_EQ(up.x, start.x);
  EXPECT_DOUBLE_EQ(up.y, start.y - kPlayerStep);
  EXPECT_DOUBLE_EQ(down.y, start.y + kPlayerStep);
  EXPECT_EQ(down.x, start.x);
  EXPECT_DOUBLE_EQ(left.x, start.x - kPlayerStep);
  EXPECT_EQ(left.y, start.y);
  EXPECT_DOUBLE_EQ(right.x, start.x + kPlayerStep);
  EXPECT_EQ(none.x, start.x);
  EXPECT_EQ(none.y, start.y);
  EXPECT_THROW(World::step_player(start, 5), Error);
}

// Independent check of the palette: each named colour's dominant channels.
TEST(WorldRender, PaletteMatchesTheColourNames) {
  auto hi = [](uint8_t v) { return v >= 200; };
  auto lo = [](uint8_t v) { return v <= 110; };
  const Rgb red = colour_rgb(Colour::Red), green = colour_rgb(Colour::Green), blue = colour_rgb(Colour::Blue);
  const Rgb yellow = colour_rgb(Colour::Yellow), cyan = colour_rgb(Colour::Cyan), magenta = colour_rgb(Colour::Magenta);
  const Rgb white = colour_rgb(Colour::White), orange = colour_rgb(Colour::Orange);
  EXPECT_TRUE(hi(red[0]) && lo(red[1]) && lo(red[2]));
  EXPECT_TRUE(lo(green[0]) && green[1] >= 180 && lo(green[2]));
  EXPECT_TRUE(lo(blue[0]) && lo(blue[1]) && hi(blue[2]));
  EXPECT_TRUE(hi(yellow[0]) && hi(yellow[1]) && lo(yellow[2]));
  EXPECT_TRUE(lo(cyan[0]) && hi(cyan[1]) && hi(cyan[2]));
  EXPECT_TRUE(hi(magenta[0]) && lo(magenta[1]) && hi(magenta[2]));
  EXPECT_TRUE(hi(white[0]) && hi(white[1]) && hi(white[2]));
  EXPECT_TRUE(hi(orange[0]) && orange[1] > 110 && orange[1] < 200 && lo(orange[2]));
}

// Whether the point (x, y) lies in the square of half side r around (cx, cy), with a margin.
bool near_box(double x, double y, double cx, double cy, double r) {
  return std::fabs(x - cx) <= r + 1 && std::fabs(y - cy) <= r + 1;
}

TEST(WorldRender, ObjectsKeepTheirPromptColours) {
  int checked = 0;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    const std::string prompt = sample_prompt(seed);
    const SceneSpec scene = parse_prompt(prompt);
    const World world(scene, seed);
    const std::vector<uint8_t> actions = sample_actions(seed, 24);
    const Tensor frames = render_frames(prompt, actions, seed, 24);
    for (int64_t t = 0; t < 24; t += 3) {
      const FrameState state = world.state_at(actions, t);
      ASSERT_EQ(state.objects.size(), scene.objects.size());
      for (size_t k = 0; k < state.objects.size(); ++k) {
        const ObjectState& o = state.objects[k];
        EXPECT_EQ(o.colour, scene.objects[k].colour) << prompt;
        EXPECT_EQ(o.shape, scene.objects[k].shape) << prompt;
        const int i = static_cast<int>(std::floor(o.y)), j = static_cast<int>(std::floor(o.x));
        if (i < 0 || i >= kS || j < 0 || j >= kS) continue;
        // The centre pixel is covered unless a later object or the player sits on it.
        const double px = j + 0.5, py = i + 0.5;
        if (!shape_contains(o.shape, o.half_size, px - o.x, py - o.y)) continue;  // centre between pixels
        bool occluded = near_box(px, py, state.player.x, state.player.y, kPlayerRadius);
        for (size_t later = k + 1; later < state.objects.size(); ++later)
          occluded |= near_box(px, py, state.objects[later].x, state.objects[later].y, state.objects[later].half_size);
        if (occluded) continue;
        EXPECT_TRUE(o.visible);
        EXPECT_TRUE(same_rgb(pixel(frames, t, i, j), colour_rgb(o.colour)))
            << prompt << " object " << k << " frame " << t;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 1000);
}

TEST(WorldRender, ShapesHaveTheirAreas) {
  // Analytic areas (in units of r^2) of the shapes shape_contains describes.
  const double pi = std::numbers::pi;
  const std::vector<std::pair<std::string, double>> cases = {
      {"circle", pi}, {"square", 4 * 0.88 * 0.88}, {"triangle", 0.5 * 2 * 1.8}  /* base 2r, height 1.8r */, {"cross", 2 * 2 * 0.68 - 0.68 * 0.68}};
  for (const auto& [shape, area] : cases) {
    for (const char* size : {"small", "big"}) {
      const std::string prompt = std::string("a ") + size + " red " + shape + " stays .";
      const World world(prompt, 11);
      const ObjectState o = world.objects_at(0)[0];
      const PlayerState p = world.player_start();
      const Tensor frame = render_frames(prompt, {}, 11, 1);
      int64_t count = 0;
      for (int i = 0; i < kS; ++i)
        for (int j = 0; j < kS; ++j)
          if (!near_box(j + 0.5, i + 0.5, p.x, p.y, kPlayerRadius)) count += same_rgb(pixel(frame, 0, i, j), colour_rgb(Colour::Red));
      if (near_box(o.x, o.y, p.x, p.y, kPlayerRadius + o.half_size)) continue;  // the player hides part of it
      const double expected = area * o.half_size * o.half_size;
      // Pixel-centre sampling of a shape: error on the order of its perimeter / 2 pixels.
      EXPECT_NEAR(static_cast<double>(count), expected, 3.5 * o.half_size) << prompt;
    }
  }
}

TEST(WorldMotion, EachMotionDoesWhatItSays) {
  for (uint64_t seed = 0; seed < 30; ++seed) {
    const World world("a red circle bounces . a blue square drifts left . a green cross orbits . a white triangle stays .",
                      seed);
    const std::vector<ObjectState> first = world.objects_at(0);
    // Orbit: every position on the circle through three of them.
    const auto p0 = world.objects_at(0)[2], p1 = world.objects_at(5)[2], p2 = world.objects_at(11)[2];
    const double ax = p0.x, ay = p0.y, bx = p1.x, by = p1.y, cx = p2.x, cy = p2.y;
    const double d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by));
    ASSERT_GT(std::fabs(d), 1e-6);
    const double ux = ((ax * ax + ay * ay) * (by - cy) + (bx * bx + by * by) * (cy - ay) + (cx * cx + cy * cy) * (ay - by)) / d;
    const double uy = ((ax * ax + ay * ay) * (cx - bx) + (bx * bx + by * by) * (ax - cx) + (cx * cx + cy * cy) * (bx - ax)) / d;
    const double radius = std::hypot(ax - ux, ay - uy);
    EXPECT_GE(radius, 8 - 1e-9);
    double moved_bounce = 0;
    for (int64_t t = 1; t < 400; ++t) {
      const std::vector<ObjectState> prev = world.objects_at(t - 1), now = world.objects_at(t);
      // Bounce: stays inside the frame, moves every frame.
      const ObjectState& b = now[0];
      EXPECT_GE(b.x, b.half_size - 1e-9);
      EXPECT_LE(b.x, kS - b.half_size + 1e-9);
      EXPECT_GE(b.y, b.half_size - 1e-9);
      EXPECT_LE(b.y, kS - b.half_size + 1e-9);
      EXPECT_TRUE(b.visible);
      moved_bounce += std::hypot(b.x - prev[0].x, b.y - prev[0].y);
      // Drift left: x decreases (or wraps back to the right edge), y is fixed.
      const double dx = now[1].x - prev[1].x;
      EXPECT_TRUE(dx < 0 || now[1].x > kS) << "seed " << seed << " t " << t;
      EXPECT_EQ(now[1].y, first[1].y);
      // Orbit: on its circle, inside the frame.
      EXPECT_NEAR(std::hypot(now[2].x - ux, now[2].y - uy), radius, 1e-6);
      EXPECT_TRUE(now[2].visible);
      // Still: never moves.
      EXPECT_EQ(now[3].x, first[3].x);
      EXPECT_EQ(now[3].y, first[3].y);
    }
    EXPECT_GT(moved_bounce / 399, 1.0);  // ~1.5 px per frame
  }
}

TEST(WorldMotion, DriftingObjectsLeaveAndComeBack) {
  const World world("a blue square drifts right .", 4);
  int hidden = 0, shown = 0;
  for (int64_t t = 0; t < 200; ++t) (world.objects_at(t)[0].visible ? shown : hidden) += 1;
  EXPECT_GT(hidden, 0);
  EXPECT_GT(shown, hidden);
}

TEST(WorldMotion, EnteringAndLeaving) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    const World enters("a red circle enters and bounces .", seed);
    EXPECT_FALSE(enters.objects_at(0)[0].visible) << seed;
    EXPECT_FALSE(enters.objects_at(1)[0].visible) << seed;
    for (int64_t t = 20; t < 60; ++t) EXPECT_TRUE(enters.objects_at(t)[0].visible) << seed;

    const World leaves("a red circle orbits then leaves .", seed);
    for (int64_t t = 0; t < 4; ++t) EXPECT_TRUE(leaves.objects_at(t)[0].visible) << seed;
    for (int64_t t = 21; t < 300; ++t) EXPECT_FALSE(leaves.objects_at(t)[0].visible) << seed << " t " << t;

    const World both("a red circle enters and stays then leaves .", seed);
    EXPECT_FALSE(both.objects_at(0)[0].visible);
    bool seen = false;
    for (int64_t t = 0; t < 39; ++t) seen |= both.objects_at(t)[0].visible;
    EXPECT_TRUE(seen);
    for (int64_t t = 39; t < 100; ++t) EXPECT_FALSE(both.objects_at(t)[0].visible);
  }
}

TEST(WorldMotion, DriftingObjectsEnterFromBehindAndLeaveAhead) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    // Enters over the bottom edge (it drifts up), crosses once, leaves over the top edge, never returns.
    const World up("a blue square enters and drifts up slowly then leaves .", seed);
    EXPECT_FALSE(up.objects_at(0)[0].visible);
    EXPECT_FALSE(up.objects_at(1)[0].visible);
    int64_t first = -1, last = -1;
    for (int64_t t = 0; t < 400; ++t) {
      const ObjectState o = up.objects_at(t)[0];
      if (!o.visible) continue;
      if (first < 0) {
        first = t;
        EXPECT_GT(o.y, kS) << "seed " << seed << ": the first visible frame is not at the bottom edge";
      }
      EXPECT_EQ(last < 0 || last == t - 1, true) << "seed " << seed << ": it came back at frame " << t;
      if (last >= 0) EXPECT_LT(o.y, up.objects_at(last)[0].y);
      last = t;
    }
    ASSERT_GE(first, 2);
    ASSERT_GT(last, first + 20);
    EXPECT_LT(up.objects_at(last)[0].y, 0) << "seed " << seed << ": it did not leave over the top edge";

    // Without "enters" it is in the frame (or just coming in) from the start, and leaves to the left.
    const World left("a red circle drifts left quickly then leaves .", seed);
    int64_t gone = -1;
    for (int64_t t = 0; t < 200; ++t)
      if (!left.objects_at(t)[0].visible && gone < 0 && left.objects_at(t)[0].x < 0) gone = t;
    ASSERT_GT(gone, 0) << seed;
    for (int64_t t = gone; t < 200; ++t) EXPECT_FALSE(left.objects_at(t)[0].visible) << seed << " t " << t;
  }
}

TEST(WorldBackground, PansInTheNamedDirectionOrStays) {
  // Normal pan speed is 0.5 px per frame, so frame t + 2 is frame t shifted by one pixel.
  struct Case {
    const char* prompt;
    int di, dj;  // frame[t + 2](i, j) == frame[t](i - di, j - dj)
  };
  for (const Case& c : {Case{"background checks pans right", 0, 1}, Case{"background stripes pans left", 0, -1},
                        Case{"background grid pans up", -1, 0}, Case{"background dots pans down", 1, 0},
                        Case{"background clouds stays", 0, 0}}) {
    const std::string prompt = std::string("a small red circle stays . ") + c.prompt + " .";
    const World world(prompt, 5);
    const Tensor frames = render_frames(prompt, {}, 5, 6);
    const ObjectState o = world.objects_at(0)[0];
    const PlayerState p = world.player_start();
    int64_t compared = 0, differing_from_shift = 0, differing_unshifted = 0;
    for (int i = 2; i < kS - 2; ++i)
      for (int j = 2; j < kS - 2; ++j) {
        const double x = j + 0.5, y = i + 0.5;
        if (near_box(x, y, o.x, o.y, o.half_size + 2) || near_box(x, y, p.x, p.y, kPlayerRadius + 2)) continue;
        const uint8_t* now = pixel(frames, 4, i, j);
        const uint8_t* before = pixel(frames, 2, i - c.di, j - c.dj);
        differing_from_shift += std::memcmp(now, before, 3) != 0;
        differing_unshifted += std::memcmp(now, pixel(frames, 2, i, j), 3) != 0;
        ++compared;
      }
    EXPECT_GT(compared, 2000);
    EXPECT_EQ(differing_from_shift, 0) << c.prompt;
    if (c.di != 0 || c.dj != 0) EXPECT_GT(differing_unshifted, 50) << c.prompt << ": the background did not move";
  }
}

TEST(WorldRender, BadInputsAreErrors) {
  EXPECT_THROW(render_frames("a red circle bounces", {}, 1, 0), Error);
  EXPECT_THROW(render_frames("a red circle bounces", {0, 0, 0}, 1, 2), Error);
  EXPECT_THROW(render_frames("a red circle bounces", {7}, 1, 2), Error);
  EXPECT_THROW(render_frames("a red blob bounces", {}, 1, 2), Error);
  EXPECT_THROW(World("a red circle bounces", 1).objects_at(-1), Error);
}

}  // namespace
}  // namespace fastar::world
