// What the server streams from (serving-spec.md §6.3, "source options"): one ChunkSource per client
// session, opened by a ChunkSourceFactory that holds what the sessions share (the loaded model).
// `--source model` runs a fastar::Session; `--source world` draws the procedural world exactly and
// instantly, through the same interface, so that the server's tests are exact.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fastar/model/memory_stats.h"
#include "fastar/rollout/png_writer.h"

namespace fastar::serve {

// What the page needs to know before the first frame (the `ready` message).
struct SourceInfo {
  std::string kind;        // "model" | "world"
  std::string name;        // the model's name, or "procedural world"
  std::string device;      // "cpu" | "cuda"
  int width = 0, height = 0;
  int chunk_frames = 0;    // frames per chunk
  double fps = 16;         // the rate the page draws at
};

struct SourceChunk {
  int64_t index = 0;                 // chunks since the start or the last reset
  int64_t first_frame = 0;           // frame index of its first frame
  std::vector<RgbFrame> frames;
  double gen_ms = 0;                 // wall time of the chunk
  MemoryStats stats;                 // the policy's memory and densities (world: all unset)
  int64_t device_mem_bytes = 0;      // device memory in use after the chunk (CPU: resident set)
};

class ChunkSource {
 public:
  virtual ~ChunkSource() = default;
  // One chunk; actions: one character per frame (. U D L R).
  virtual SourceChunk next_chunk(const std::string& actions) = 0;
  // A new prompt from the next chunk on. Throws fastar::Error naming the bad word; the source then
  // runs on unchanged under its old prompt.
  virtual void set_prompt(const std::string& text, bool recache) = 0;
  // Back to frame 0 with a new seed, same prompt.
  virtual void reset(uint64_t seed) = 0;
};

class ChunkSourceFactory {
 public:
  virtual ~ChunkSourceFactory() = default;
  virtual const SourceInfo& info() const = 0;
  // Throws fastar::Error when the prompt cannot start a session (an unknown word).
  virtual std::unique_ptr<ChunkSource> open(const std::string& prompt, uint64_t seed) const = 0;
};

}  // namespace fastar::serve
