// A scene in motion: where every object, the player and the background are at frame t
// (docs/world.md). Everything is decided by (scene, seed, actions); object and background
// positions are closed-form in t, the player's position sums the actions up to t.
//
// Coordinates are pixels of the kFrameSize x kFrameSize frame: x to the right, y downwards, pixel
// (i, j) covering [j, j+1) x [i, i+1), so its centre is (j + 0.5, i + 0.5).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "fastar/world/prompt.h"

namespace fastar::world {

constexpr int kFrameSize = 64;
constexpr double kPlayerStep = 2.0;          // pixels per frame per action
constexpr double kPlayerRadius = 5.5;        // outer radius of the player's ring
constexpr double kPlayerInnerRadius = 3.0;   // its hole
constexpr int64_t kSlideFrames = 8;          // frames an entering / leaving object takes to slide

struct ObjectState {
  ShapeKind shape = ShapeKind::Circle;
  Colour colour = Colour::Red;
  double x = 0, y = 0;     // centre
  double half_size = 0;    // the shape fits in [x - half_size, x + half_size] (same for y)
  bool visible = false;    // some of it is inside the frame
};

struct PlayerState {
  double x = 0, y = 0;  // centre of the ring
};

struct FrameState {
  std::vector<ObjectState> objects;  // in prompt order (drawing order)
  PlayerState player;
  double background_dx = 0, background_dy = 0;  // the texture is sampled at (x + dx, y + dy)
};

// The background's seeded look.
struct BackgroundLook {
  Pattern pattern = Pattern::Plain;
  std::array<uint8_t, 3> base{}, accent{};  // dark colours; the pattern blends base -> accent
  double period = 12;                       // stripes / checks / dots / grid spacing in pixels
  double orientation = 1;                   // stripes: +1 or -1 diagonal
  std::array<float, 64> lattice{};          // clouds: 8x8 periodic value-noise lattice in [0, 1]
  double vx = 0, vy = 0;                    // pan velocity (pixels per frame of the texture)
};

class World {
 public:
  World(SceneSpec scene, uint64_t seed);
  // parse_prompt(prompt), then as above.
  World(const std::string& prompt, uint64_t seed);

  const SceneSpec& scene() const { return scene_; }
  uint64_t seed() const { return seed_; }
  const BackgroundLook& background() const { return background_; }

  // Objects at frame t >= 0.
  std::vector<ObjectState> objects_at(int64_t t) const;
  // The player before any action, then at frame t: actions[0..t] applied in order, each moving it
  // kPlayerStep pixels (frame t already shows actions[t]); clamped so the ring stays inside the
  // frame. Frames past actions.size() count as none.
  PlayerState player_start() const { return player_start_; }
  PlayerState player_at(const std::vector<uint8_t>& actions, int64_t t) const;
  // The player after one action from `from`.
  static PlayerState step_player(PlayerState from, uint8_t action);
  FrameState state_at(const std::vector<uint8_t>& actions, int64_t t) const;
  // Everything but the player at frame t, with the given player position.
  FrameState state_at(PlayerState player, int64_t t) const;

 private:
  struct Track {
    ObjectSpec spec;
    double half_size = 0;
    double x0 = 0, y0 = 0, vx = 0, vy = 0;                   // bounce, drift, still
    double q0 = 0;  // drift: distance along the track at t = 0 (negative: not entered yet)
    double cx = 0, cy = 0, radius = 0, omega = 0, phase = 0;  // orbit
    int64_t enter_frame = -1, leave_frame = -1;               // -1: present from the start / never leaves
    double enter_x = 0, enter_y = 0, leave_x = 0, leave_y = 0;  // off-frame points it slides from / to
  };
  // Where the object's motion puts it at time t, ignoring entering and leaving.
  void path(const Track& track, double t, double* x, double* y) const;
  // Drift: distance travelled along the track by time t, counted from just off the trailing edge.
  static double drift_distance(const Track& track, double t) { return track.q0 + std::hypot(track.vx, track.vy) * t; }

  SceneSpec scene_;
  uint64_t seed_;
  std::vector<Track> tracks_;
  BackgroundLook background_;
  PlayerState player_start_;
};

}  // namespace fastar::world
