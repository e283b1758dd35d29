#include "fastar/world/dataset.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <mutex>

#include <nlohmann/json.hpp>

#include "fastar/core/error.h"
#include "fastar/core/safetensors.h"
#include "fastar/world/actions.h"
#include "fastar/world/prompt.h"
#include "fastar/world/random.h"
#include "fastar/world/render.h"
#include "fastar/world/vocabulary.h"

namespace fastar::world {

uint64_t clip_seed(uint64_t seed, uint64_t index) { return mix64(mix64(seed) ^ mix64(index ^ 0xC11Bull)); }

Dataset make_dataset(int64_t clips, int64_t frames, uint64_t seed, int threads,
                     const std::function<void(int64_t)>& progress) {
  FASTAR_CHECK(clips > 0, "world dataset: the clip count must be positive, got " << clips);
  FASTAR_CHECK(frames > 0, "world dataset: the frame count must be positive, got " << frames);
  constexpr int64_t kFrameBytes = int64_t{kFrameSize} * kFrameSize * 3;
  Dataset d;
  d.frames = Tensor::zeros({clips, frames, kFrameSize, kFrameSize, 3}, DType::U8);
  d.actions = Tensor::zeros({clips, frames}, DType::U8);
  d.tokens = Tensor::zeros({clips, kMaxPromptTokens}, DType::I32);
  d.prompts.resize(static_cast<size_t>(clips));
  uint8_t* frames_out = d.frames.data<uint8_t>();
  uint8_t* actions_out = d.actions.data<uint8_t>();
  int32_t* tokens_out = d.tokens.data<int32_t>();

  std::atomic<int64_t> done{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  const int num_threads = threads > 0 ? threads : omp_get_max_threads();
  const int64_t report_every = std::max<int64_t>(1, clips / 20);
  int64_t next_report = report_every;  // touched by thread 0 only
#pragma omp parallel for schedule(dynamic, 8) num_threads(num_threads)
  for (int64_t i = 0; i < clips; ++i) {
    try {
      const uint64_t s = clip_seed(seed, static_cast<uint64_t>(i));
      std::string prompt = sample_prompt(s);
      const std::vector<uint8_t> actions = sample_actions(s, frames);
      const std::vector<int32_t> ids = tokenize_padded(prompt);
      const World world(prompt, s);
      render_frames_into(world, actions, frames, frames_out + i * frames * kFrameBytes);
      std::memcpy(actions_out + i * frames, actions.data(), static_cast<size_t>(frames));
      std::memcpy(tokens_out + i * kMaxPromptTokens, ids.data(), sizeof(int32_t) * kMaxPromptTokens);
      d.prompts[static_cast<size_t>(i)] = std::move(prompt);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
    const int64_t now = done.fetch_add(1) + 1;
    if (progress && omp_get_thread_num() == 0 && now >= next_report && now < clips) {
      progress(now);
      next_report = now + report_every;
    }
  }
  if (error) std::rethrow_exception(error);
  if (progress) progress(clips);
  return d;
}

void write_dataset(const std::string& path, const Dataset& d, uint64_t seed) {
  const std::map<std::string, std::string> metadata = {
      {"vocab", vocabulary_json()},
      {"prompts", nlohmann::json(d.prompts).dump()},
      {"seed", std::to_string(seed)},
      {"world_version", kWorldVersion},
  };
  // int32 first keeps every tensor aligned to its element size in the file.
  write_safetensors(path, {{"tokens", d.tokens}, {"frames", d.frames}, {"actions", d.actions}}, metadata);
}

}  // namespace fastar::world
