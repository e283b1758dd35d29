// Shared by the session tests: the models they run, frames as a hash, and a Session's frames.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fastar/session/session.h"
#include "test_util.h"

namespace fastar::testing {

// The golden tiny Wan model of tests/model/golden (2 layers, 16x24 latents: fast), and the shipped
// world model (pixel frames, its own text encoder, 5 actions).
inline std::shared_ptr<const LoadedModel> golden_model() {
  static const auto model = LoadedModel::load(source_path("tests/model/golden/wan_tiny_original"));
  return model;
}
inline std::shared_ptr<const LoadedModel> world_model() {
  static const auto model = LoadedModel::load(source_path("models/world-small"));
  return model;
}

// FNV-1a over the frames' bytes, as the reference hashes were taken from the pre-Session CLI's PNGs.
inline uint64_t frames_hash(const std::vector<RgbFrame>& frames) {
  uint64_t h = 1469598103934665603ull;
  for (const RgbFrame& f : frames)
    for (uint8_t b : f.rgb) {
      h ^= b;
      h *= 1099511628211ull;
    }
  return h;
}

// `chunks` chunks of a session, the last without its clean pass (as `fastar generate` runs them);
// actions: one character per frame for world models ("" = none).
inline std::vector<RgbFrame> roll(Session& session, int64_t chunks, const std::string& actions = "", bool skip_last_commit = true) {
  std::vector<RgbFrame> frames;
  const int64_t f = session.chunk_frames();
  for (int64_t c = 0; c < chunks; ++c) {
    const bool commit = !(skip_last_commit && c + 1 == chunks);
    const std::string a = static_cast<int64_t>(actions.size()) > c * f ? actions.substr(static_cast<size_t>(c * f), static_cast<size_t>(f)) : "";
    Chunk chunk = session.model().config().action_dim == 5 ? session.next_chunk(a, commit) : session.next_chunk(nullptr, commit);
    for (RgbFrame& frame : chunk.frames) frames.push_back(std::move(frame));
  }
  return frames;
}

}  // namespace fastar::testing
