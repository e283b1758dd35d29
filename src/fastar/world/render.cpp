#include "fastar/world/render.h"

#include <algorithm>
#include <cmath>

#include "fastar/core/error.h"

namespace fastar::world {

namespace {

constexpr int kSize = kFrameSize;

double fmod_pos(double v, double period) {
  double u = std::fmod(v, period);
  return u < 0 ? u + period : u;
}

double smoothstep(double t) { return t * t * (3 - 2 * t); }

// How much of the accent colour the background shows at texture point (u, v), in [0, 1].
double pattern_weight(const BackgroundLook& bg, double u, double v) {
  const double p = bg.period;
  switch (bg.pattern) {
    case Pattern::Plain:
      return 0;
    case Pattern::Stripes:
      return fmod_pos(u + bg.orientation * v, p) < p / 2 ? 1 : 0;
    case Pattern::Checks:
      return (static_cast<int64_t>(std::floor(u / p)) + static_cast<int64_t>(std::floor(v / p))) & 1 ? 1 : 0;
    case Pattern::Dots: {
      const double du = fmod_pos(u, p) - p / 2, dv = fmod_pos(v, p) - p / 2;
      return du * du + dv * dv <= (0.22 * p) * (0.22 * p) ? 1 : 0;
    }
    case Pattern::Grid:
      return fmod_pos(u, p) < 1.5 || fmod_pos(v, p) < 1.5 ? 1 : 0;
    case Pattern::Clouds: {
      // Value noise on an 8x8 lattice of 8-pixel cells, periodic over 64 pixels.
      const double gu = fmod_pos(u, 64) / 8, gv = fmod_pos(v, 64) / 8;
      const int iu = static_cast<int>(gu) & 7, iv = static_cast<int>(gv) & 7;
      const double fu = smoothstep(gu - std::floor(gu)), fv = smoothstep(gv - std::floor(gv));
      auto at = [&](int a, int b) { return static_cast<double>(bg.lattice[static_cast<size_t>((b & 7) * 8 + (a & 7))]); };
      const double top = at(iu, iv) + fu * (at(iu + 1, iv) - at(iu, iv));
      const double bottom = at(iu, iv + 1) + fu * (at(iu + 1, iv + 1) - at(iu, iv + 1));
      return top + fv * (bottom - top);
    }
  }
  return 0;
}

void put(uint8_t* rgb, int i, int j, const Rgb& c) {
  uint8_t* px = rgb + (static_cast<size_t>(i) * kSize + static_cast<size_t>(j)) * 3;
  px[0] = c[0];
  px[1] = c[1];
  px[2] = c[2];
}

// Calls fill(i, j) for every pixel whose centre is within the square of half side r around (x, y).
template <typename Fill>
void for_box(double x, double y, double r, Fill fill) {
  const int i0 = std::max(0, static_cast<int>(std::floor(y - r))), i1 = std::min(kSize - 1, static_cast<int>(std::ceil(y + r)));
  const int j0 = std::max(0, static_cast<int>(std::floor(x - r))), j1 = std::min(kSize - 1, static_cast<int>(std::ceil(x + r)));
  for (int i = i0; i <= i1; ++i)
    for (int j = j0; j <= j1; ++j) fill(i, j, j + 0.5 - x, i + 0.5 - y);
}

}  // namespace

Rgb colour_rgb(Colour c) {
  switch (c) {
    case Colour::Red: return {230, 40, 40};
    case Colour::Green: return {40, 200, 70};
    case Colour::Blue: return {50, 100, 245};
    case Colour::Yellow: return {245, 225, 40};
    case Colour::Cyan: return {40, 225, 235};
    case Colour::Magenta: return {225, 55, 225};
    case Colour::White: return {235, 235, 235};
    case Colour::Orange: return {250, 145, 30};
  }
  return {0, 0, 0};
}

bool shape_contains(ShapeKind shape, double r, double dx, double dy) {
  switch (shape) {
    case ShapeKind::Circle:
      return dx * dx + dy * dy <= r * r;
    case ShapeKind::Square:
      return std::fabs(dx) <= 0.88 * r && std::fabs(dy) <= 0.88 * r;
    case ShapeKind::Triangle:  // apex up at -r, base at +0.8 r, base half width r
      return dy >= -r && dy <= 0.8 * r && std::fabs(dx) <= (dy + r) / 1.8;
    case ShapeKind::Cross:
      return (std::fabs(dx) <= r && std::fabs(dy) <= 0.34 * r) || (std::fabs(dy) <= r && std::fabs(dx) <= 0.34 * r);
  }
  return false;
}

bool player_contains(double dx, double dy) {
  const double d2 = dx * dx + dy * dy;
  return d2 <= kPlayerRadius * kPlayerRadius && d2 >= kPlayerInnerRadius * kPlayerInnerRadius;
}

void render_state(const BackgroundLook& bg, const FrameState& state, uint8_t* rgb) {
  for (int i = 0; i < kSize; ++i) {
    const double v = i + 0.5 + state.background_dy;
    for (int j = 0; j < kSize; ++j) {
      const double w = pattern_weight(bg, j + 0.5 + state.background_dx, v);
      Rgb c;
      for (int k = 0; k < 3; ++k)
        c[static_cast<size_t>(k)] = static_cast<uint8_t>(std::lround(bg.base[static_cast<size_t>(k)] +
                                                                     w * (bg.accent[static_cast<size_t>(k)] - bg.base[static_cast<size_t>(k)])));
      put(rgb, i, j, c);
    }
  }
  for (const ObjectState& o : state.objects) {
    if (!o.visible) continue;
    const Rgb c = colour_rgb(o.colour);
    for_box(o.x, o.y, o.half_size, [&](int i, int j, double dx, double dy) {
      if (shape_contains(o.shape, o.half_size, dx, dy)) put(rgb, i, j, c);
    });
  }
  for_box(state.player.x, state.player.y, kPlayerRadius, [&](int i, int j, double dx, double dy) {
    if (player_contains(dx, dy)) put(rgb, i, j, kPlayerRgb);
  });
}

void render_frame(const World& world, const std::vector<uint8_t>& actions, int64_t t, uint8_t* rgb) {
  render_state(world.background(), world.state_at(actions, t), rgb);
}

void render_frames_into(const World& world, const std::vector<uint8_t>& actions, int64_t frames, uint8_t* out) {
  FASTAR_CHECK(frames >= 0, "world: frame count " << frames << " is negative");
  PlayerState player = world.player_start();
  constexpr size_t kFrameBytes = static_cast<size_t>(kSize) * kSize * 3;
  for (int64_t t = 0; t < frames; ++t) {
    player = World::step_player(player, t < static_cast<int64_t>(actions.size()) ? actions[static_cast<size_t>(t)] : 0);
    render_state(world.background(), world.state_at(player, t), out + static_cast<size_t>(t) * kFrameBytes);
  }
}

Tensor render_frames(const std::string& prompt, const std::vector<uint8_t>& actions, uint64_t seed, int64_t frames) {
  FASTAR_CHECK(frames > 0, "world: frame count must be positive, got " << frames);
  FASTAR_CHECK(static_cast<int64_t>(actions.size()) <= frames,
               "world: " << actions.size() << " actions for " << frames << " frames; give at most one per frame");
  const World world(prompt, seed);
  Tensor out = Tensor::zeros({frames, kSize, kSize, 3}, DType::U8);
  render_frames_into(world, actions, frames, out.data<uint8_t>());
  return out;
}

}  // namespace fastar::world
