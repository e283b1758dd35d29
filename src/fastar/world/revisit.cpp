#include "fastar/world/revisit.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "fastar/core/error.h"
#include "fastar/world/actions.h"
#include "fastar/world/random.h"

namespace fastar::world {

namespace {

constexpr double kMap = kRevisitMapSize;
constexpr int kView = kFrameSize;
constexpr double kOccluderSide = 22;   // px; hides any shape of half size <= 8 with a margin
constexpr double kHiderGap = 3;        // px between the waiting hider's edge and the occluder
constexpr double kBouncerSpeed = 1.25;  // px per frame

// The revisit scene's random streams (apart from random.h's, which belong to the prompt scenes).
enum RevisitStream : uint64_t {
  kStreamRevisitLayout = 0x52455649ull << 8,  // "REVI"
  kStreamRevisitLooks,
  kStreamRevisitBackground,
};

// Bounces between lo and hi: a triangle wave of v.
double reflect(double v, double lo, double hi) {
  const double span = hi - lo;
  double u = std::fmod(v - lo, 2 * span);
  if (u < 0) u += 2 * span;
  return lo + (u <= span ? u : 2 * span - u);
}

double half_size_from(Rng& rng) {
  const int64_t k = rng.integer(0, 2);
  return k == 0 ? 5.0 : k == 1 ? 6.5 : 8.0;
}

}  // namespace

const char* revisit_role_name(RevisitRole role) {
  switch (role) {
    case RevisitRole::Landmark: return "landmark";
    case RevisitRole::Hider: return "hider";
    case RevisitRole::Bouncer: return "bouncer";
  }
  return "?";
}

RevisitWorld::RevisitWorld(uint64_t seed) : seed_(seed) {
  // Looks: distinct colours (a seeded permutation of the palette), random shapes.
  Rng looks(seed, kStreamRevisitLooks);
  std::array<Colour, kNumColours> palette{};
  for (int c = 0; c < kNumColours; ++c) palette[static_cast<size_t>(c)] = static_cast<Colour>(c);
  for (int c = kNumColours - 1; c > 0; --c)
    std::swap(palette[static_cast<size_t>(c)], palette[static_cast<size_t>(looks.integer(0, c))]);
  static_assert(kRevisitObjects <= kNumColours, "every revisit object needs its own colour");
  for (int k = 0; k < kRevisitObjects; ++k) {
    RevisitObject o;
    o.role = k < kRevisitLandmarks ? RevisitRole::Landmark : k == kRevisitLandmarks ? RevisitRole::Hider : RevisitRole::Bouncer;
    o.shape = static_cast<ShapeKind>(looks.integer(0, kNumShapes - 1));
    o.colour = palette[static_cast<size_t>(k)];
    o.half_size = o.role == RevisitRole::Landmark ? half_size_from(looks) : 6.5;
    objects_.push_back(o);
  }

  // Layout of the start view (the centre cell [64, 128)^2): the occluder and the hider's track in
  // one half (top or bottom), landmark 0 in the other, so they never overlap.
  Rng layout(seed, kStreamRevisitLayout);
  const bool band_top = layout.chance(0.5), hider_left = layout.chance(0.5);
  occluder_.x0 = static_cast<double>(layout.integer(80, 88));
  occluder_.y0 = static_cast<double>(band_top ? layout.integer(70, 74) : layout.integer(96, 100));
  occluder_.x1 = occluder_.x0 + kOccluderSide;
  occluder_.y1 = occluder_.y0 + kOccluderSide;
  const double hr = objects_[kRevisitLandmarks].half_size;
  hide_y_ = (occluder_.y0 + occluder_.y1) / 2;
  hide_in_x_ = (occluder_.x0 + occluder_.x1) / 2;
  hide_out_x_ = hider_left ? occluder_.x0 - kHiderGap - hr : occluder_.x1 + kHiderGap + hr;
  hide_wait_ = layout.integer(12, 20);
  hide_frames_ = layout.integer(36, 48);

  const double r0 = objects_[0].half_size;
  const double ly_lo = band_top ? 104 : 74, ly_hi = band_top ? 128 - r0 - 2 : 86;
  landmark_xy_.push_back({layout.uniform(64 + r0 + 8, 128 - r0 - 8), layout.uniform(ly_lo, ly_hi)});
  // The other landmarks in distinct cells other than the centre one, away from the cell edges.
  std::array<int, 8> cells = {0, 1, 2, 3, 5, 6, 7, 8};  // cell = 3 * row + column; 4 is the centre
  for (int c = 7; c > 0; --c) std::swap(cells[static_cast<size_t>(c)], cells[static_cast<size_t>(layout.integer(0, c))]);
  for (int k = 1; k < kRevisitLandmarks; ++k) {
    const int cell = cells[static_cast<size_t>(k - 1)];
    const double r = objects_[static_cast<size_t>(k)].half_size, cx = (cell % 3) * kView, cy = (cell / 3) * kView;
    landmark_xy_.push_back({cx + layout.uniform(r + 6, kView - r - 6), cy + layout.uniform(r + 6, kView - r - 6)});
  }

  // The bouncer: anywhere on the map, a diagonal-ish heading.
  const double br = objects_[kRevisitLandmarks + 1].half_size;
  bounce_x0_ = layout.uniform(br, kMap - br);
  bounce_y0_ = layout.uniform(br, kMap - br);
  const double angle = static_cast<double>(layout.integer(0, 3)) * std::numbers::pi / 2 + layout.uniform(0.35, 1.22);
  bounce_vx_ = kBouncerSpeed * std::cos(angle);
  bounce_vy_ = kBouncerSpeed * std::sin(angle);

  // Background: the prompt scenes' seeded look of a textured, still pattern (plain would not show
  // the camera's motion).
  Rng bg(seed, kStreamRevisitBackground);
  SceneSpec look;
  look.objects.push_back(ObjectSpec{});
  look.background.pattern = static_cast<Pattern>(bg.integer(1, kNumPatterns - 1));
  background_ = World(look, bg.next()).background();
}

CameraState RevisitWorld::step_camera(CameraState c, uint8_t action) {
  switch (static_cast<Action>(action)) {
    case Action::None: break;
    case Action::Up: c.y -= kCameraStep; break;
    case Action::Down: c.y += kCameraStep; break;
    case Action::Left: c.x -= kCameraStep; break;
    case Action::Right: c.x += kCameraStep; break;
    default: FASTAR_FAIL("world: action " << int(action) << " is not an action (0 none, 1 up, 2 down, 3 left, 4 right)");
  }
  c.x = std::clamp(c.x, 0.0, kMap - kView);
  c.y = std::clamp(c.y, 0.0, kMap - kView);
  return c;
}

CameraState RevisitWorld::camera_at(const std::vector<uint8_t>& actions, int64_t t) const {
  FASTAR_CHECK(t >= 0, "world: frame index " << t << " is negative");
  CameraState c;
  const int64_t last = std::min<int64_t>(t, static_cast<int64_t>(actions.size()) - 1);
  for (int64_t i = 0; i <= last; ++i) c = step_camera(c, actions[static_cast<size_t>(i)]);
  return c;
}

std::vector<std::array<double, 2>> RevisitWorld::map_positions(int64_t t) const {
  FASTAR_CHECK(t >= 0, "world: frame index " << t << " is negative");
  std::vector<std::array<double, 2>> xy(landmark_xy_);
  // Hider: wait, slide in, hidden, slide out; period hide_wait + 2 * kSlideFrames + hide_frames.
  const int64_t period = hide_wait_ + 2 * kSlideFrames + hide_frames_, u = t % period;
  double a = 0;  // 0 out, 1 in (behind the occluder)
  if (u < hide_wait_) a = 0;
  else if (u < hide_wait_ + kSlideFrames) a = static_cast<double>(u - hide_wait_) / kSlideFrames;
  else if (u < hide_wait_ + kSlideFrames + hide_frames_) a = 1;
  else a = 1 - static_cast<double>(u - hide_wait_ - kSlideFrames - hide_frames_) / kSlideFrames;
  xy.push_back({hide_out_x_ + a * (hide_in_x_ - hide_out_x_), hide_y_});
  const double br = objects_[kRevisitLandmarks + 1].half_size, tf = static_cast<double>(t);
  xy.push_back({reflect(bounce_x0_ + bounce_vx_ * tf, br, kMap - br), reflect(bounce_y0_ + bounce_vy_ * tf, br, kMap - br)});
  return xy;
}

RevisitFrameTruth RevisitWorld::render(CameraState camera, int64_t t, uint8_t* rgb) const {
  RevisitFrameTruth truth;
  truth.t = t;
  truth.camera = camera;
  truth.occluder = {occluder_.x0 - camera.x, occluder_.y0 - camera.y, occluder_.x1 - camera.x, occluder_.y1 - camera.y};

  // Background, objects and the player by the prompt scenes' renderer: the texture is sampled at
  // map coordinates, objects are placed in view coordinates.
  const std::vector<std::array<double, 2>> xy = map_positions(t);
  FrameState state;
  state.background_dx = camera.x;
  state.background_dy = camera.y;
  state.player = {kView / 2.0, kView / 2.0};
  for (size_t k = 0; k < objects_.size(); ++k) {
    ObjectState s;
    s.shape = objects_[k].shape;
    s.colour = objects_[k].colour;
    s.half_size = objects_[k].half_size;
    s.x = xy[k][0] - camera.x;
    s.y = xy[k][1] - camera.y;
    s.visible = s.x + s.half_size > 0 && s.x - s.half_size < kView && s.y + s.half_size > 0 && s.y - s.half_size < kView;
    RevisitObjectTruth o;
    o.x = s.x;
    o.y = s.y;
    o.in_view = s.visible;
    truth.objects.push_back(o);
    state.objects.push_back(s);
  }
  render_state(background_, state, rgb);

  // Who owns each pixel, in drawing order (the same pixel-centre tests as render_state): objects,
  // then the occluder, painted here over them, then the player ring, which stays on top.
  constexpr int kOwnerNone = -1, kOwnerOccluder = -2, kOwnerPlayer = -3;
  for (int i = 0; i < kView; ++i) {
    for (int j = 0; j < kView; ++j) {
      const double px = j + 0.5, py = i + 0.5;
      int owner = kOwnerNone;
      for (size_t k = 0; k < state.objects.size(); ++k) {
        const ObjectState& s = state.objects[k];
        if (s.visible && shape_contains(s.shape, s.half_size, px - s.x, py - s.y)) owner = static_cast<int>(k);
      }
      const MapRect& occ = truth.occluder;
      if (px >= occ.x0 && px < occ.x1 && py >= occ.y0 && py < occ.y1) owner = kOwnerOccluder;
      if (player_contains(px - state.player.x, py - state.player.y)) owner = kOwnerPlayer;
      uint8_t* p = rgb + (static_cast<size_t>(i) * kView + static_cast<size_t>(j)) * 3;
      if (owner == kOwnerOccluder) {
        std::copy(kOccluderRgb.begin(), kOccluderRgb.end(), p);
        ++truth.occluder_pixels;
      } else if (owner == kOwnerPlayer) {
        std::copy(kPlayerRgb.begin(), kPlayerRgb.end(), p);
      } else if (owner >= 0) {
        ++truth.objects[static_cast<size_t>(owner)].pixels;
      }
    }
  }
  for (RevisitObjectTruth& o : truth.objects) o.visible = o.pixels > 0;
  return truth;
}

void render_revisit_into(const RevisitWorld& world, const std::vector<uint8_t>& actions, int64_t frames, uint8_t* out,
                         std::vector<RevisitFrameTruth>* truth) {
  FASTAR_CHECK(frames >= 0, "world: frame count " << frames << " is negative");
  FASTAR_CHECK(static_cast<int64_t>(actions.size()) <= frames,
               "world: " << actions.size() << " actions for " << frames << " frames; give at most one per frame");
  constexpr size_t kFrameBytes = static_cast<size_t>(kView) * kView * 3;
  if (truth) truth->clear();
  CameraState camera;
  for (int64_t t = 0; t < frames; ++t) {
    camera = RevisitWorld::step_camera(camera, t < static_cast<int64_t>(actions.size()) ? actions[static_cast<size_t>(t)] : 0);
    RevisitFrameTruth frame = world.render(camera, t, out + static_cast<size_t>(t) * kFrameBytes);
    if (truth) truth->push_back(std::move(frame));
  }
}

Tensor render_revisit_frames(const std::vector<uint8_t>& actions, uint64_t seed, int64_t frames,
                             std::vector<RevisitFrameTruth>* truth) {
  FASTAR_CHECK(frames > 0, "world: frame count must be positive, got " << frames);
  const RevisitWorld world(seed);
  Tensor out = Tensor::zeros({frames, kView, kView, 3}, DType::U8);
  render_revisit_into(world, actions, frames, out.data<uint8_t>(), truth);
  return out;
}

}  // namespace fastar::world
