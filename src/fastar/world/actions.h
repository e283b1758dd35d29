// Player actions: one per frame, 0 none, 1 up, 2 down, 3 left, 4 right (docs/world.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fastar/core/tensor.h"

namespace fastar::world {

enum class Action : uint8_t { None = 0, Up = 1, Down = 2, Left = 3, Right = 4 };
constexpr int kNumActions = 5;

// Parses an action string, one character per frame: '.' none, 'U' up, 'D' down, 'L' left,
// 'R' right (lower case accepted). Shorter than `frames` is padded with none; longer, or any other
// character, is a fastar::Error naming it.
std::vector<uint8_t> parse_actions(const std::string& text, int64_t frames);
// The inverse: one character per action.
std::string format_actions(const std::vector<uint8_t>& actions);
// The dataset's random policy: runs of 2-8 frames of one action; none in about 40% of the runs.
std::vector<uint8_t> sample_actions(uint64_t seed, int64_t frames);

// A rollout's per-chunk action conditioning: chunks tensors [chunk_frames, action_dim], frame f of chunk c
// one-hot at actions[c·chunk_frames + f] when action_dim == kNumActions (a world model), all zeros for any
// other action_dim. actions must hold chunks·chunk_frames entries.
std::vector<Tensor> action_chunks(const std::vector<uint8_t>& actions, int64_t chunks, int64_t chunk_frames,
                                  int64_t action_dim);

}  // namespace fastar::world
