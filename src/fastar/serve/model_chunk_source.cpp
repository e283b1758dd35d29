#include "fastar/serve/model_chunk_source.h"

#include "fastar/core/error.h"

namespace fastar::serve {

namespace {

class ModelChunkSource final : public ChunkSource {
 public:
  ModelChunkSource(std::shared_ptr<const LoadedModel> model, const SessionOptions& options, const std::string& prompt)
      : session_(std::move(model), options, SessionPrompt::from_text(prompt)) {}

  SourceChunk next_chunk(const std::string& actions) override {
    Chunk chunk = session_.next_chunk(actions);
    SourceChunk out;
    out.index = chunk.index;
    out.first_frame = chunk.frame_start;
    out.frames = std::move(chunk.frames);
    out.gen_ms = chunk.ms;
    out.stats = chunk.stats;
    out.device_mem_bytes = session_.memory_in_use();
    return out;
  }

  void set_prompt(const std::string& text, bool recache) override {
    session_.set_prompt(SessionPrompt::from_text(text), {.recache = recache});
  }

  void reset(uint64_t seed) override { session_.reset(seed); }

 private:
  Session session_;
};

class ModelSourceFactory final : public ChunkSourceFactory {
 public:
  ModelSourceFactory(std::shared_ptr<const LoadedModel> model, SessionOptions options, double fps)
      : model_(std::move(model)), options_(std::move(options)) {
    FASTAR_CHECK(model_->has_text_encoder(),
                 "fastar serve: the model '" << model_->name() << "' has no text encoder of its own; the page sends "
                 "prompts as words, so serve a model folder with vocab.json (e.g. models/world-small)");
    const WanConfig& config = model_->config();
    const int64_t height = options_.latent_height ? options_.latent_height : config.latent_height;
    const int64_t width = options_.latent_width ? options_.latent_width : config.latent_width;
    info_ = {"model", model_->name(), options_.device == Device::CUDA ? "cuda" : "cpu", static_cast<int>(width),
             static_cast<int>(height), static_cast<int>(options_.chunk_frames), fps};
  }
  const SourceInfo& info() const override { return info_; }
  std::unique_ptr<ChunkSource> open(const std::string& prompt, uint64_t seed) const override {
    SessionOptions options = options_;
    options.seed = seed;
    return std::make_unique<ModelChunkSource>(model_, options, prompt);
  }

 private:
  std::shared_ptr<const LoadedModel> model_;
  SessionOptions options_;
  SourceInfo info_;
};

}  // namespace

std::unique_ptr<ChunkSourceFactory> make_model_source_factory(std::shared_ptr<const LoadedModel> model,
                                                              SessionOptions options, double fps) {
  return std::make_unique<ModelSourceFactory>(std::move(model), std::move(options), fps);
}

}  // namespace fastar::serve
