#include "fastar/world/revisit_json.h"

#include <nlohmann/json.hpp>

#include "fastar/core/error.h"
#include "fastar/world/actions.h"

namespace fastar::world {

namespace {

nlohmann::json rect_json(const MapRect& r) { return {{"x0", r.x0}, {"y0", r.y0}, {"x1", r.x1}, {"y1", r.y1}}; }

}  // namespace

std::string revisit_truth_json(const RevisitWorld& world, const std::vector<uint8_t>& actions,
                               const std::vector<RevisitFrameTruth>& truth, const RevisitRule& rule) {
  nlohmann::json doc;
  doc["scene"] = "revisit";
  doc["world_version"] = kRevisitVersion;
  doc["seed"] = world.seed();
  doc["frames"] = truth.size();
  doc["map_size"] = kRevisitMapSize;
  doc["view_size"] = kFrameSize;
  doc["actions"] = format_actions(actions);
  doc["occluder"] = rect_json(world.occluder());
  doc["occluder"]["rgb"] = kOccluderRgb;
  nlohmann::json objects = nlohmann::json::array();
  for (size_t k = 0; k < world.objects().size(); ++k) {
    const RevisitObject& o = world.objects()[k];
    objects.push_back({{"id", k},
                       {"role", revisit_role_name(o.role)},
                       {"shape", shape_name(o.shape)},
                       {"colour", colour_name(o.colour)},
                       {"rgb", colour_rgb(o.colour)},
                       {"half_size", o.half_size}});
  }
  doc["objects"] = objects;

  const std::vector<std::vector<int>> revisited = revisited_objects(truth, rule);
  doc["revisit"] = {{"min_unseen", rule.min_unseen},
                    {"hold", rule.hold},
                    {"min_pixels", rule.min_pixels},
                    {"frames", revisit_frames(revisited)}};

  nlohmann::json frames = nlohmann::json::array();
  for (size_t t = 0; t < truth.size(); ++t) {
    const RevisitFrameTruth& f = truth[t];
    FASTAR_CHECK(f.t == static_cast<int64_t>(t), "revisit truth: entry " << t << " is frame " << f.t
                                                                        << "; give one entry per frame, in order");
    nlohmann::json per_object = nlohmann::json::array();
    for (size_t k = 0; k < f.objects.size(); ++k) {
      const RevisitObjectTruth& o = f.objects[k];
      per_object.push_back({{"id", k}, {"x", o.x}, {"y", o.y}, {"in_view", o.in_view}, {"pixels", o.pixels}, {"visible", o.visible}});
    }
    frames.push_back({{"t", f.t},
                      {"camera", {f.camera.x, f.camera.y}},
                      {"occluder", rect_json(f.occluder)},
                      {"occluder_pixels", f.occluder_pixels},
                      {"revisited", revisited[t]},
                      {"objects", per_object}});
  }
  doc["per_frame"] = frames;
  return doc.dump(1) + "\n";
}

}  // namespace fastar::world
