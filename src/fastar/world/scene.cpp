#include "fastar/world/scene.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "fastar/core/error.h"
#include "fastar/world/actions.h"
#include "fastar/world/random.h"

namespace fastar::world {

namespace {

constexpr double kSize = kFrameSize;
constexpr double kBaseSpeed = 1.5;                        // pixels per frame: bounce, drift
constexpr double kBaseOmega = 2 * std::numbers::pi / 40;  // radians per frame: orbit (40-frame turn)
constexpr double kBasePan = 0.5;                          // pixels per frame: background

double half_size_of(SizeClass s) { return s == SizeClass::Small ? 5.0 : s == SizeClass::Big ? 8.0 : 6.5; }
double speed_factor(Speed s) { return s == Speed::Slow ? 0.5 : s == Speed::Fast ? 2.0 : 1.0; }

void direction_vector(Direction d, double* dx, double* dy) {
  *dx = d == Direction::Left ? -1 : d == Direction::Right ? 1 : 0;
  *dy = d == Direction::Up ? -1 : d == Direction::Down ? 1 : 0;
}

// Bounces between lo and hi: a triangle wave of v.
double reflect(double v, double lo, double hi) {
  const double span = hi - lo;
  double u = std::fmod(v - lo, 2 * span);
  if (u < 0) u += 2 * span;
  return lo + (u <= span ? u : 2 * span - u);
}

// Wraps v into [lo, lo + period).
double wrap(double v, double lo, double period) {
  double u = std::fmod(v - lo, period);
  if (u < 0) u += period;
  return lo + u;
}

// A drifting object's track, one crossing long: from just off the trailing edge (centre 2 px
// beyond touching it) to the same distance past the leading one.
double drift_period(double r) { return kSize + 2 * r + 4; }

// The point just outside the frame edge nearest to (x, y), for a shape of half size r.
void nearest_off_frame(double x, double y, double r, double* ox, double* oy) {
  const double dl = x, dr = kSize - x, du = y, dd = kSize - y;
  const double m = std::min({dl, dr, du, dd});
  *ox = x;
  *oy = y;
  if (m == dl) *ox = -r - 1;
  else if (m == dr) *ox = kSize + r + 1;
  else if (m == du) *oy = -r - 1;
  else *oy = kSize + r + 1;
}

std::array<uint8_t, 3> hsv_to_rgb(double h, double s, double v) {
  const double c = v * s, hp = h * 6, x = c * (1 - std::fabs(std::fmod(hp, 2.0) - 1)), m = v - c;
  double r = 0, g = 0, b = 0;
  if (hp < 1) r = c, g = x;
  else if (hp < 2) r = x, g = c;
  else if (hp < 3) g = c, b = x;
  else if (hp < 4) g = x, b = c;
  else if (hp < 5) r = x, b = c;
  else r = c, b = x;
  auto byte = [](double u) { return static_cast<uint8_t>(std::lround(std::clamp(u, 0.0, 1.0) * 255)); };
  return {byte(r + m), byte(g + m), byte(b + m)};
}

}  // namespace

World::World(const std::string& prompt, uint64_t seed) : World(parse_prompt(prompt), seed) {}

World::World(SceneSpec scene, uint64_t seed) : scene_(std::move(scene)), seed_(seed) {
  FASTAR_CHECK(!scene_.objects.empty() && static_cast<int>(scene_.objects.size()) <= kMaxObjects,
               "world: a scene needs 1 to " << kMaxObjects << " objects, got " << scene_.objects.size());
  for (size_t i = 0; i < scene_.objects.size(); ++i) {
    Rng rng(seed, kStreamObject0 + i);
    Track tr;
    tr.spec = scene_.objects[i];
    const double r = tr.half_size = half_size_of(tr.spec.size);
    const double speed = speed_factor(tr.spec.speed) * rng.uniform(0.85, 1.15);
    tr.x0 = rng.uniform(r + 1, kSize - r - 1);
    tr.y0 = rng.uniform(r + 1, kSize - r - 1);
    switch (tr.spec.motion) {
      case Motion::Bounce: {
        // Diagonal-ish headings only, so every bounce shows motion along both axes.
        const double angle = static_cast<double>(rng.integer(0, 3)) * std::numbers::pi / 2 + rng.uniform(0.35, 1.22);
        tr.vx = kBaseSpeed * speed * std::cos(angle);
        tr.vy = kBaseSpeed * speed * std::sin(angle);
        break;
      }
      case Motion::Drift:
        direction_vector(tr.spec.direction, &tr.vx, &tr.vy);
        tr.vx *= kBaseSpeed * speed;
        tr.vy *= kBaseSpeed * speed;
        tr.q0 = rng.uniform(0, drift_period(r));
        break;
      case Motion::Orbit:
        tr.radius = rng.uniform(8.0, std::min(18.0, kSize / 2 - r - 1));
        tr.cx = rng.uniform(r + tr.radius + 1, kSize - r - tr.radius - 1);
        tr.cy = rng.uniform(r + tr.radius + 1, kSize - r - tr.radius - 1);
        tr.omega = kBaseOmega * speed * (rng.chance(0.5) ? 1 : -1);
        tr.phase = rng.uniform(0, 2 * std::numbers::pi);
        break;
      case Motion::Still:
        break;
    }
    if (tr.spec.motion == Motion::Drift) {
      // Drifting objects enter over the edge behind them and leave over the edge ahead of them:
      // "enters" starts the first crossing at enter_frame, "leaves" ends it after one crossing.
      if (tr.spec.enters) {
        tr.enter_frame = rng.integer(2, 10);
        tr.q0 = -std::hypot(tr.vx, tr.vy) * static_cast<double>(tr.enter_frame);
      }
      tracks_.push_back(tr);
      continue;
    }
    if (tr.spec.enters) {
      tr.enter_frame = rng.integer(2, 10);
      double x, y;
      path(tr, static_cast<double>(tr.enter_frame + kSlideFrames), &x, &y);
      nearest_off_frame(x, y, r, &tr.enter_x, &tr.enter_y);
    }
    if (tr.spec.leaves) {
      tr.leave_frame = (tr.spec.enters ? tr.enter_frame + kSlideFrames : 0) + rng.integer(4, 12);
      double x, y;
      path(tr, static_cast<double>(tr.leave_frame), &x, &y);
      nearest_off_frame(x, y, r, &tr.leave_x, &tr.leave_y);
    }
    tracks_.push_back(tr);
  }

  Rng rng(seed, kStreamBackground);
  BackgroundLook& bg = background_;
  bg.pattern = scene_.background.pattern;
  const double hue = rng.uniform(), sat = rng.uniform(0.3, 0.6), value = rng.uniform(0.16, 0.28);
  bg.base = hsv_to_rgb(hue, sat, value);
  bg.accent = hsv_to_rgb(hue, sat * 0.8, value + 0.16);
  bg.period = static_cast<double>(rng.integer(8, 14));
  bg.orientation = rng.chance(0.5) ? 1 : -1;
  for (float& v : bg.lattice) v = static_cast<float>(rng.uniform());
  if (scene_.background.pans) {
    direction_vector(scene_.background.direction, &bg.vx, &bg.vy);
    // The picture moves in the named direction, so the texture is sampled against it.
    bg.vx *= -kBasePan * speed_factor(scene_.background.speed);
    bg.vy *= -kBasePan * speed_factor(scene_.background.speed);
  }

  Rng player_rng(seed, kStreamPlayer);
  player_start_.x = player_rng.uniform(16, kSize - 16);
  player_start_.y = player_rng.uniform(16, kSize - 16);
}

void World::path(const Track& tr, double t, double* x, double* y) const {
  const double r = tr.half_size;
  switch (tr.spec.motion) {
    case Motion::Bounce:
      *x = reflect(tr.x0 + tr.vx * t, r, kSize - r);
      *y = reflect(tr.y0 + tr.vy * t, r, kSize - r);
      return;
    case Motion::Drift: {
      // Leaves over one edge and comes back over the opposite one, a few pixels later.
      const double travelled = wrap(drift_distance(tr, t), 0, drift_period(r));
      *x = tr.vx > 0 ? -r - 2 + travelled : tr.vx < 0 ? kSize + r + 2 - travelled : tr.x0;
      *y = tr.vy > 0 ? -r - 2 + travelled : tr.vy < 0 ? kSize + r + 2 - travelled : tr.y0;
      return;
    }
    case Motion::Orbit:
      *x = tr.cx + tr.radius * std::cos(tr.phase + tr.omega * t);
      *y = tr.cy + tr.radius * std::sin(tr.phase + tr.omega * t);
      return;
    case Motion::Still:
      *x = tr.x0;
      *y = tr.y0;
      return;
  }
}

std::vector<ObjectState> World::objects_at(int64_t t) const {
  FASTAR_CHECK(t >= 0, "world: frame index " << t << " is negative");
  std::vector<ObjectState> out;
  out.reserve(tracks_.size());
  const double tf = static_cast<double>(t);
  for (const Track& tr : tracks_) {
    ObjectState s;
    s.shape = tr.spec.shape;
    s.colour = tr.spec.colour;
    s.half_size = tr.half_size;
    path(tr, tf, &s.x, &s.y);
    if (tr.spec.motion == Motion::Drift) {
      // Crossing number: 0 is the first (the one in progress at frame 0, or the entering one).
      const double crossing = std::floor(drift_distance(tr, tf) / drift_period(tr.half_size));
      if (crossing < 0 || (tr.spec.leaves && crossing > 0)) {
        // Not in yet, or gone: parked just off the trailing / leading edge.
        const double off = crossing < 0 ? -tr.half_size - 2 : kSize + tr.half_size + 2;
        if (tr.vx != 0) s.x = tr.vx > 0 ? off : kSize - off;
        if (tr.vy != 0) s.y = tr.vy > 0 ? off : kSize - off;
      }
    } else if (tr.enter_frame >= 0 && t < tr.enter_frame + kSlideFrames) {
      const double a = std::max(0.0, static_cast<double>(t - tr.enter_frame) / kSlideFrames);
      s.x = tr.enter_x + a * (s.x - tr.enter_x);
      s.y = tr.enter_y + a * (s.y - tr.enter_y);
    }
    if (tr.spec.motion != Motion::Drift && tr.leave_frame >= 0 && t > tr.leave_frame) {
      const double a = std::min(1.0, static_cast<double>(t - tr.leave_frame) / kSlideFrames);
      s.x += a * (tr.leave_x - s.x);
      s.y += a * (tr.leave_y - s.y);
    }
    const double r = s.half_size;
    s.visible = s.x + r > 0 && s.x - r < kSize && s.y + r > 0 && s.y - r < kSize;
    out.push_back(s);
  }
  return out;
}

PlayerState World::step_player(PlayerState p, uint8_t action) {
  switch (static_cast<Action>(action)) {
    case Action::None: break;
    case Action::Up: p.y -= kPlayerStep; break;
    case Action::Down: p.y += kPlayerStep; break;
    case Action::Left: p.x -= kPlayerStep; break;
    case Action::Right: p.x += kPlayerStep; break;
    default: FASTAR_FAIL("world: action " << int(action) << " is not an action (0 none, 1 up, 2 down, 3 left, 4 right)");
  }
  p.x = std::clamp(p.x, kPlayerRadius, kSize - kPlayerRadius);
  p.y = std::clamp(p.y, kPlayerRadius, kSize - kPlayerRadius);
  return p;
}

PlayerState World::player_at(const std::vector<uint8_t>& actions, int64_t t) const {
  FASTAR_CHECK(t >= 0, "world: frame index " << t << " is negative");
  PlayerState p = player_start_;
  const int64_t last = std::min<int64_t>(t, static_cast<int64_t>(actions.size()) - 1);
  for (int64_t i = 0; i <= last; ++i) p = step_player(p, actions[static_cast<size_t>(i)]);
  return p;
}

FrameState World::state_at(PlayerState player, int64_t t) const {
  FrameState s;
  s.objects = objects_at(t);
  s.player = player;
  s.background_dx = background_.vx * static_cast<double>(t);
  s.background_dy = background_.vy * static_cast<double>(t);
  return s;
}

FrameState World::state_at(const std::vector<uint8_t>& actions, int64_t t) const {
  return state_at(player_at(actions, t), t);
}

}  // namespace fastar::world
