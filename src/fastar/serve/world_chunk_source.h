// `--source world` (serving-spec.md §6.3): the procedural world's renderer behind the ChunkSource
// interface. Exact and instant, so the protocol and browser tests can predict every pixel.
#pragma once

#include <memory>

#include "fastar/serve/chunk_source.h"

namespace fastar::serve {

// chunk_frames: frames per chunk (the shipped model's 3); fps: the page's drawing rate.
std::unique_ptr<ChunkSourceFactory> make_world_source_factory(int chunk_frames, double fps);

}  // namespace fastar::serve
