// The CPU backend of a Session (session_backend.h): the fp32 reference rollout, Self-Forcing chunk
// by chunk under any registered policy, or Rolling Forcing with its own sink cache.
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "fastar/attention/rolling_sink_memory.h"
#include "fastar/core/error.h"
#include "fastar/rollout/rolling_forcing.h"
#include "fastar/session/policy_registry.h"
#include "fastar/session/session_backend.h"

namespace fastar {

namespace {

int64_t resident_bytes() {
  long pages = 0, resident = 0;
  std::ifstream statm("/proc/self/statm");
  statm >> pages >> resident;
  return static_cast<int64_t>(resident) * sysconf(_SC_PAGESIZE);
}

class CpuSelfForcingBackend : public SessionBackend {
 public:
  CpuSelfForcingBackend(const LoadedModel& model, const PolicySpec& spec, const RolloutConfig& config, const WanPrompt& prompt)
      : model_(model), spec_(spec), policy_(make_cpu_policy(model.dit(), spec)), rollout_(model.dit(), *policy_.memory, prompt, config) {
    rollout_.set_cross_attention(policy_.cross.get());
  }
  Tensor next_chunk(const Tensor* actions, bool commit) override { return rollout_.next_chunk(actions, commit); }
  void commit(const Tensor& x0, int64_t frame_start, const Tensor* actions) override { rollout_.commit(x0, frame_start, actions); }
  void set_prompt(const WanPrompt& prompt) override { rollout_.set_prompt(prompt); }
  void rebuild_memory() override {
    CpuPolicy fresh = make_cpu_policy(model_.dit(), spec_);
    rollout_.set_memory(*fresh.memory);
    rollout_.set_cross_attention(fresh.cross.get());
    policy_ = std::move(fresh);
  }
  void restart(uint64_t seed) override {
    rebuild_memory();
    rollout_.restart(seed);
  }
  MemoryStats stats() const override {
    MemoryStats s = policy_.memory->summary();
    if (policy_.cross) {
      const MemoryStats c = policy_.cross->summary();
      s.cross_density = c.density;
      s.cross_recall = c.recall;
    }
    return s;
  }
  std::string report() const override {
    return policy_.memory->report() + (policy_.cross ? policy_.cross->report() : "");
  }
  std::string stats_json() const override { return policy_.memory->stats_json(); }
  std::string describe() const override { return policy_.memory->describe(); }
  int64_t memory_in_use() const override { return resident_bytes(); }

 private:
  const LoadedModel& model_;
  PolicySpec spec_;
  CpuPolicy policy_;
  SelfForcingRollout rollout_;
};

// Rolling Forcing (wan-spec.md §5): one block of sink, 24 frames held, 21 attended; chunks leave the
// rolling window in order, the first ones only after the pipeline has filled.
class CpuRollingForcingBackend : public SessionBackend {
 public:
  CpuRollingForcingBackend(const LoadedModel& model, const RolloutConfig& config, const WanPrompt& prompt, int64_t frames)
      : model_(model), config_(config), prompt_(&prompt) {
    const WanConfig& c = model.config();
    FASTAR_CHECK(c.hybrid_layers.empty(), "ARL² hybrid layers run only with the self-forcing schedule");
    FASTAR_CHECK(frames > 0, "the rolling-forcing schedule needs the number of frames up front (--frames)");
    blocks_ = (frames + config.schedule.frames_per_chunk - 1) / config.schedule.frames_per_chunk;
    restart(config.seed);
  }
  Tensor next_chunk(const Tensor* actions, bool) override {
    FASTAR_CHECK(!rollout_->done(), "rolling forcing: all " << blocks_ << " blocks of this video are out (--frames)");
    for (;;) {
      // The block entering the window takes the actions; while the tail drains no block enters.
      Tensor x0 = rollout_->advance(rollout_->blocks_entered() < blocks_ ? actions : nullptr);
      if (x0.defined()) return x0;
    }
  }
  void commit(const Tensor&, int64_t, const Tensor*) override { FASTAR_FAIL("rolling forcing: re-cache is not supported"); }
  void set_prompt(const WanPrompt&) override { FASTAR_FAIL("rolling forcing: prompt switching needs the self-forcing schedule"); }
  void rebuild_memory() override { FASTAR_FAIL("rolling forcing: re-cache is not supported"); }
  void restart(uint64_t seed) override {
    const WanConfig& c = model_.config();
    const int64_t chunk = config_.schedule.frames_per_chunk;
    config_.seed = seed;
    rollout_.reset();
    memory_ = std::make_unique<RollingSinkMemory>(c.num_layers, c.num_heads, c.head_dim(), chunk / c.patch_t, 24 / c.patch_t,
                                                  21 / c.patch_t);
    rollout_ = std::make_unique<RollingForcingRollout>(model_.dit(), *memory_, *prompt_, config_, blocks_);
  }
  MemoryStats stats() const override { return memory_->summary(); }
  std::string report() const override { return memory_->report(); }
  std::string describe() const override { return memory_->describe(); }
  int64_t memory_in_use() const override { return resident_bytes(); }
  bool supports_prompt_switch() const override { return false; }

 private:
  const LoadedModel& model_;
  RolloutConfig config_;
  const WanPrompt* prompt_;
  int64_t blocks_ = 0;
  std::unique_ptr<RollingSinkMemory> memory_;
  std::unique_ptr<RollingForcingRollout> rollout_;
};

}  // namespace

Tensor SessionBackend::to_device(const Tensor&) const {
  FASTAR_FAIL("this session runs on the CPU: its frames have no device copy (device_frames needs --device cuda)");
}

std::unique_ptr<SessionBackend> make_cpu_backend(const LoadedModel& model, const PolicySpec& spec, const RolloutConfig& config,
                                                 const WanPrompt& prompt, const std::string& schedule, int64_t frames) {
  if (schedule == "rolling-forcing") return std::make_unique<CpuRollingForcingBackend>(model, config, prompt, frames);
  return std::make_unique<CpuSelfForcingBackend>(model, spec, config, prompt);
}

#ifndef FASTAR_HAVE_CUDA
std::unique_ptr<SessionBackend> make_cuda_backend(const LoadedModel&, const PolicySpec&, const RolloutConfig&, const WanPrompt&,
                                                  int64_t, bool) {
  FASTAR_FAIL("--device cuda is not available: this build has no CUDA backend (install the CUDA toolkit and rebuild; "
              "CMake turns FASTAR_CUDA on when nvcc is found)");
}
#endif

}  // namespace fastar
