// The revisit scene's ground truth as JSON, for `fastar world render --scene revisit` and evals
// (docs/world.md, "The revisit scene" has the schema).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fastar/world/revisit.h"
#include "fastar/world/revisit_script.h"

namespace fastar::world {

// One JSON document: the scene (seed, version, map and view sizes, the occluder and every object's
// role, shape, colour and half size), the actions, the revisit rule and its frames, and per frame the
// camera, the occluder in view coordinates and every object's centre, in_view, pixels and visible.
// truth: what render_revisit_into gave for `actions` (one entry per frame, frame t at index t).
std::string revisit_truth_json(const RevisitWorld& world, const std::vector<uint8_t>& actions,
                               const std::vector<RevisitFrameTruth>& truth, const RevisitRule& rule);

}  // namespace fastar::world
