#include "fastar/world/revisit_script.h"

#include "fastar/core/error.h"
#include "fastar/world/actions.h"

namespace fastar::world {

namespace {

Action action_of(Direction d) {
  switch (d) {
    case Direction::Left: return Action::Left;
    case Direction::Right: return Action::Right;
    case Direction::Up: return Action::Up;
    case Direction::Down: return Action::Down;
  }
  return Action::None;
}

Direction opposite(Direction d) {
  switch (d) {
    case Direction::Left: return Direction::Right;
    case Direction::Right: return Direction::Left;
    case Direction::Up: return Direction::Down;
    case Direction::Down: return Direction::Up;
  }
  return d;
}

}  // namespace

std::vector<uint8_t> revisit_actions(const RevisitScript& script, int64_t frames) {
  FASTAR_CHECK(frames >= 0, "revisit script: frame count " << frames << " is negative");
  FASTAR_CHECK(script.lead >= 0 && script.pan >= 0 && script.wait >= 0,
               "revisit script: lead " << script.lead << ", pan " << script.pan << " and wait " << script.wait
                                       << " must all be >= 0");
  std::vector<uint8_t> actions;
  actions.reserve(static_cast<size_t>(frames));
  auto append = [&](Action a, int64_t n) {
    for (int64_t i = 0; i < n && static_cast<int64_t>(actions.size()) < frames; ++i) actions.push_back(static_cast<uint8_t>(a));
  };
  append(Action::None, script.lead);
  append(action_of(script.away), script.pan);
  append(Action::None, script.wait);
  append(action_of(opposite(script.away)), script.pan);
  append(Action::None, frames);
  return actions;
}

std::vector<std::vector<int>> revisited_objects(const std::vector<std::vector<bool>>& seen, const RevisitRule& rule) {
  FASTAR_CHECK(rule.min_unseen >= 1 && rule.hold >= 1 && rule.min_pixels >= 1,
               "revisit rule: min_unseen " << rule.min_unseen << ", hold " << rule.hold << " and min_pixels "
                                           << rule.min_pixels << " must all be >= 1");
  const size_t frames = seen.size(), objects = frames ? seen[0].size() : 0;
  for (size_t t = 0; t < frames; ++t)
    FASTAR_CHECK(seen[t].size() == objects, "revisit rule: frame " << t << " has " << seen[t].size()
                                                                   << " objects, frame 0 has " << objects);
  std::vector<std::vector<int>> revisited(frames);
  for (size_t k = 0; k < objects; ++k) {
    bool seen_before = false, returning = false;
    int64_t unseen = 0, run_start = 0;
    for (size_t t = 0; t < frames; ++t) {
      if (!seen[t][k]) {
        ++unseen;
        continue;
      }
      if (t == 0 || !seen[t - 1][k]) {  // a run of seen frames starts: a return after a long gap?
        returning = seen_before && unseen >= rule.min_unseen;
        run_start = static_cast<int64_t>(t);
      }
      if (returning && static_cast<int64_t>(t) - run_start < rule.hold) revisited[t].push_back(static_cast<int>(k));
      seen_before = true;
      unseen = 0;
    }
  }
  return revisited;
}

std::vector<std::vector<int>> revisited_objects(const std::vector<RevisitFrameTruth>& truth, const RevisitRule& rule) {
  std::vector<std::vector<bool>> seen;
  seen.reserve(truth.size());
  for (const RevisitFrameTruth& frame : truth) {
    seen.emplace_back();
    for (const RevisitObjectTruth& o : frame.objects) seen.back().push_back(o.pixels >= rule.min_pixels);
  }
  return revisited_objects(seen, rule);
}

std::vector<int64_t> revisit_frames(const std::vector<std::vector<int>>& revisited) {
  std::vector<int64_t> frames;
  for (size_t t = 0; t < revisited.size(); ++t)
    if (!revisited[t].empty()) frames.push_back(static_cast<int64_t>(t));
  return frames;
}

}  // namespace fastar::world
