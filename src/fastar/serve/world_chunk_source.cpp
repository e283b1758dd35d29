#include "fastar/serve/world_chunk_source.h"

#include <chrono>

#include "fastar/core/error.h"
#include "fastar/world/world.h"

namespace fastar::serve {

namespace {

// The world continues across a prompt switch: the frame counter and the player's position carry
// over, the objects and the background are those of the new prompt at the same frame index.
class WorldChunkSource final : public ChunkSource {
 public:
  WorldChunkSource(const std::string& prompt, uint64_t seed, int chunk_frames)
      : world_(std::make_unique<world::World>(prompt, seed)), seed_(seed), chunk_frames_(chunk_frames) {
    player_ = world_->player_start();
  }

  SourceChunk next_chunk(const std::string& actions) override {
    const auto start = std::chrono::steady_clock::now();
    const std::vector<uint8_t> parsed = world::parse_actions(actions, chunk_frames_);
    SourceChunk chunk;
    chunk.index = chunks_++;
    chunk.first_frame = next_frame_;
    for (int f = 0; f < chunk_frames_; ++f) {
      player_ = world::World::step_player(player_, parsed[static_cast<size_t>(f)]);
      RgbFrame frame;
      frame.width = frame.height = world::kFrameSize;
      frame.rgb.resize(static_cast<size_t>(world::kFrameSize) * world::kFrameSize * 3);
      world::render_state(world_->background(), world_->state_at(player_, next_frame_), frame.rgb.data());
      chunk.frames.push_back(std::move(frame));
      ++next_frame_;
    }
    chunk.gen_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return chunk;
  }

  void set_prompt(const std::string& text, bool /*recache: the world has no memory to rebuild*/) override {
    world_ = std::make_unique<world::World>(text, seed_);  // parse_prompt throws before anything changes
  }

  void reset(uint64_t seed) override {
    seed_ = seed;
    world_ = std::make_unique<world::World>(world_->scene(), seed);
    player_ = world_->player_start();
    next_frame_ = 0;
    chunks_ = 0;
  }

 private:
  std::unique_ptr<world::World> world_;
  uint64_t seed_;
  int chunk_frames_;
  world::PlayerState player_;
  int64_t next_frame_ = 0, chunks_ = 0;
};

class WorldSourceFactory final : public ChunkSourceFactory {
 public:
  WorldSourceFactory(int chunk_frames, double fps) {
    FASTAR_CHECK(chunk_frames >= 1, "fastar serve: --chunk-frames must be at least 1 (got " << chunk_frames << ")");
    info_ = {"world", "procedural world", "cpu", world::kFrameSize, world::kFrameSize, chunk_frames, fps};
  }
  const SourceInfo& info() const override { return info_; }
  std::unique_ptr<ChunkSource> open(const std::string& prompt, uint64_t seed) const override {
    return std::make_unique<WorldChunkSource>(prompt, seed, info_.chunk_frames);
  }

 private:
  SourceInfo info_;
};

}  // namespace

std::unique_ptr<ChunkSourceFactory> make_world_source_factory(int chunk_frames, double fps) {
  return std::make_unique<WorldSourceFactory>(chunk_frames, fps);
}

}  // namespace fastar::serve
