// The revisit scene: a world where memory matters (docs/world.md, "The revisit scene"; issue 19).
//
// A kRevisitMapSize x kRevisitMapSize map, larger than the kFrameSize x kFrameSize view. The actions
// pan the camera over the map (frame t already shows action t, as for the player of the prompt
// scenes); the player ring stays at the centre of the view. On the map:
//   - kRevisitLandmarks still objects, one in the start view, the others in other 64 x 64 cells;
//   - a grey occluder (a rectangle) in the start view;
//   - a hider, which waits beside the occluder, slides behind it, stays hidden for 36..48 frames,
//     slides back out and repeats;
//   - a bouncer, which moves across the whole map, reflecting off its edges.
// Every object has its own colour (the seed decides which): no prompt names it, so a model that sees
// an object, loses it (off-view or behind the occluder) and sees it again must remember its colour.
//
// Nothing here changes the prompt scenes (scene.h, render.h): the revisit scene is a separate kind,
// chosen explicitly (`fastar world render --scene revisit`).
//
// Coordinates: map pixels, x to the right, y downwards; the view's pixel (i, j) shows map point
// (camera_x + j + 0.5, camera_y + i + 0.5). View coordinates = map coordinates - camera.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fastar/core/tensor.h"
#include "fastar/world/render.h"
#include "fastar/world/scene.h"

namespace fastar::world {

// Bumped whenever the revisit scene's layout, motion or drawing changes.
constexpr const char* kRevisitVersion = "fastar-revisit-1";

constexpr int kRevisitMapSize = 3 * kFrameSize;  // 192: a 3 x 3 grid of view-sized cells
constexpr double kCameraStep = 2.0;              // map pixels the view pans per action
constexpr double kCameraStartX = kFrameSize;     // the start view is the centre cell
constexpr double kCameraStartY = kFrameSize;
constexpr int kRevisitLandmarks = 4;
constexpr int kRevisitObjects = kRevisitLandmarks + 2;  // landmarks, then the hider, then the bouncer
constexpr Rgb kOccluderRgb = {150, 150, 150};           // no object or background colour is this grey

enum class RevisitRole : uint8_t { Landmark, Hider, Bouncer };
const char* revisit_role_name(RevisitRole role);

// An object of the map as the seed made it.
struct RevisitObject {
  RevisitRole role = RevisitRole::Landmark;
  ShapeKind shape = ShapeKind::Circle;
  Colour colour = Colour::Red;  // distinct across the scene's objects
  double half_size = 6.5;
};

// A rectangle of the map, [x0, x1) x [y0, y1), integer corners.
struct MapRect {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};

struct CameraState {
  double x = kCameraStartX, y = kCameraStartY;  // map point at the view's top-left corner
};

// Ground truth of one object in one frame.
struct RevisitObjectTruth {
  double x = 0, y = 0;     // centre, view coordinates (may be outside [0, 64))
  bool in_view = false;    // its bounding square overlaps the view
  int64_t pixels = 0;      // pixels of the frame that show its colour (not covered by a later
                           // object, the occluder or the player)
  bool visible = false;    // pixels > 0
};

// Ground truth of one frame: exactly what render_revisit_frame drew.
struct RevisitFrameTruth {
  int64_t t = 0;
  CameraState camera;
  MapRect occluder;  // view coordinates
  int64_t occluder_pixels = 0;
  std::vector<RevisitObjectTruth> objects;  // [kRevisitObjects], in RevisitWorld::objects() order
};

class RevisitWorld {
 public:
  explicit RevisitWorld(uint64_t seed);

  uint64_t seed() const { return seed_; }
  const BackgroundLook& background() const { return background_; }
  // [kRevisitObjects]: kRevisitLandmarks landmarks (landmark 0 in the start view), the hider, the bouncer.
  const std::vector<RevisitObject>& objects() const { return objects_; }
  const MapRect& occluder() const { return occluder_; }

  // The camera after one action (Up moves the view up the map, so things in it move down), clamped
  // to the map.
  static CameraState step_camera(CameraState from, uint8_t action);
  // Frame t: actions[0..t] applied from the start; frames past actions.size() count as none.
  CameraState camera_at(const std::vector<uint8_t>& actions, int64_t t) const;
  // Object centres on the map at frame t >= 0 (closed form in t), [kRevisitObjects].
  std::vector<std::array<double, 2>> map_positions(int64_t t) const;

  // Draws frame t seen from `camera` into rgb [kFrameSize, kFrameSize, 3] and returns its truth.
  // Order: background, objects (landmarks, hider, bouncer), occluder, player ring at the view centre.
  RevisitFrameTruth render(CameraState camera, int64_t t, uint8_t* rgb) const;

 private:
  uint64_t seed_;
  BackgroundLook background_;
  std::vector<RevisitObject> objects_;
  std::vector<std::array<double, 2>> landmark_xy_;  // [kRevisitLandmarks] map centres
  MapRect occluder_;
  // Hider: waits at (hide_out_x, hide_y) for hide_wait frames, slides to (hide_in_x, hide_y) in
  // kSlideFrames, stays hidden hide_frames, slides back in kSlideFrames; then again.
  double hide_out_x_ = 0, hide_in_x_ = 0, hide_y_ = 0;
  int64_t hide_wait_ = 0, hide_frames_ = 0;
  // Bouncer: straight lines reflecting off the map's edges.
  double bounce_x0_ = 0, bounce_y0_ = 0, bounce_vx_ = 0, bounce_vy_ = 0;
};

// Frames 0..frames-1: out [frames, kFrameSize, kFrameSize, 3] and, when truth is given, one truth per
// frame. actions shorter than frames are padded with none; longer is an error.
void render_revisit_into(const RevisitWorld& world, const std::vector<uint8_t>& actions, int64_t frames, uint8_t* out,
                         std::vector<RevisitFrameTruth>* truth);
// uint8 tensor [frames, 64, 64, 3] (RGB) for (actions, seed).
Tensor render_revisit_frames(const std::vector<uint8_t>& actions, uint64_t seed, int64_t frames,
                             std::vector<RevisitFrameTruth>* truth = nullptr);

}  // namespace fastar::world
