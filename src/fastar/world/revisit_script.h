// The revisit scene's scripted actions and its revisit frames (docs/world.md, "The revisit scene").
//
// revisit_actions: pan away, wait, pan back to where the clip started, so that what the first frames
// showed goes out of view for longer than any attention window and comes back.
// revisit_frames: the frames where an object is visible again after a long time unseen: the frames
// on which a model with no memory of the far past cannot know what to draw.
#pragma once

#include <cstdint>
#include <vector>

#include "fastar/world/prompt.h"
#include "fastar/world/revisit.h"

namespace fastar::world {

struct RevisitScript {
  int64_t lead = 4;                   // frames of no action first
  Direction away = Direction::Right;  // the pan's direction; the pan back is the opposite one
  int64_t pan = 32;                   // frames of panning each way (kCameraStep px each: 64 px = one view)
  int64_t wait = 24;                  // frames of no action between the two pans; with the defaults and
                                      // away = Right, landmark 0 is out of view for >= 33 frames
};

// Actions [frames]: lead x none, pan x away, wait x none, pan x back, then none. A script longer
// than `frames` is cut there. Negative counts are a fastar::Error.
std::vector<uint8_t> revisit_actions(const RevisitScript& script, int64_t frames);

struct RevisitRule {
  int64_t min_unseen = 30;  // an object comes back after at least this many consecutive frames unseen
  int64_t hold = 1;         // frames counted as revisit frames from its return on (1: the return frame only)
  int64_t min_pixels = 1;   // an object is seen in a frame when it shows at least this many pixels
};

// revisited[t] lists (in increasing order) the objects k that frame t revisits: k is seen at t, and
// for some r <= t with t - r < rule.hold, k is seen at every frame r..t, was unseen at each of the
// rule.min_unseen (or more) frames just before r, and was seen at some frame before those.
// seen: [frames][objects], seen[t][k] whether object k is seen at frame t (every row the same length).
std::vector<std::vector<int>> revisited_objects(const std::vector<std::vector<bool>>& seen, const RevisitRule& rule);
// The same from a rendered clip's ground truth (seen = pixels >= rule.min_pixels).
std::vector<std::vector<int>> revisited_objects(const std::vector<RevisitFrameTruth>& truth, const RevisitRule& rule);
// The frames that revisit at least one object, in increasing order.
std::vector<int64_t> revisit_frames(const std::vector<std::vector<int>>& revisited);

}  // namespace fastar::world
