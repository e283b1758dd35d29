// `--source model` (serving-spec.md §6.3): one fastar::Session per client over a model loaded once.
#pragma once

#include <memory>
#include <string>

#include "fastar/serve/chunk_source.h"
#include "fastar/session/session.h"

namespace fastar::serve {

// The model is loaded by the caller (once); every session gets `options` (policy, device, chunk
// size) and its own prompt and seed. Throws fastar::Error when the model has no text encoder of its
// own (the server's prompt box sends words).
std::unique_ptr<ChunkSourceFactory> make_model_source_factory(std::shared_ptr<const LoadedModel> model,
                                                              SessionOptions options, double fps);

}  // namespace fastar::serve
