// The training set: N clips of (prompt, actions, frames) rendered by the world (docs/world.md).
//
// Written as a safetensors file with exactly these tensors:
//   frames  uint8 [N, F, 64, 64, 3]   RGB
//   actions uint8 [N, F]              0 none, 1 up, 2 down, 3 left, 4 right (sample_actions)
//   tokens  int32 [N, 48]             prompt word ids, 0-padded (tokenize_padded)
// and __metadata__ "vocab" (JSON list of words in id order), "prompts" (JSON list of the N prompt
// strings), "seed" (decimal), "world_version".
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "fastar/core/tensor.h"

namespace fastar::world {

// Bumped whenever the rendering or sampling changes, so that old datasets are recognisable.
constexpr const char* kWorldVersion = "fastar-world-1";

// The seed of clip `index` of a dataset made with `seed`: decides its prompt, actions and scene.
uint64_t clip_seed(uint64_t seed, uint64_t index);

struct Dataset {
  Tensor frames;   // uint8 [N, F, 64, 64, 3]
  Tensor actions;  // uint8 [N, F]
  Tensor tokens;   // int32 [N, kMaxPromptTokens]
  std::vector<std::string> prompts;
};

// Renders clips in parallel (OpenMP over clips; threads <= 0: OpenMP's default). `progress`, if
// given, is called from one thread now and then with the number of clips done so far.
Dataset make_dataset(int64_t clips, int64_t frames, uint64_t seed, int threads = 0,
                     const std::function<void(int64_t)>& progress = {});
// Writes the dataset atomically (temporary file + rename).
void write_dataset(const std::string& path, const Dataset& dataset, uint64_t seed);

}  // namespace fastar::world
