// What a Session needs of a device (session.h): the chunk loop, the clean pass alone (re-cache), and
// the policy's memory rebuilt empty. The CPU backend is session_backend_cpu.cpp, the GPU's
// cuda/session_backend_cuda.cpp; both build their policies from the same PolicySpec.
#pragma once

#include <memory>
#include <string>

#include "fastar/model/memory_stats.h"
#include "fastar/session/loaded_model.h"
#include "fastar/session/policy_spec.h"
#include "fastar/rollout/self_forcing.h"

namespace fastar {

class SessionBackend {
 public:
  virtual ~SessionBackend() = default;
  // The next chunk's clean latent on the host. commit = false skips the clean pass.
  virtual Tensor next_chunk(const Tensor* actions, bool commit) = 0;
  // The clean pass alone for a kept chunk (re-cache).
  virtual void commit(const Tensor& x0, int64_t frame_start, const Tensor* actions) = 0;
  // The prompt of the next calls (must outlive them).
  virtual void set_prompt(const WanPrompt& prompt) = 0;
  // The policy's memory (and cross-attention state) rebuilt empty from the spec.
  virtual void rebuild_memory() = 0;
  // Frame 0, a new seed, empty memory.
  virtual void restart(uint64_t seed) = 0;
  virtual MemoryStats stats() const = 0;
  virtual std::string report() const = 0;
  virtual std::string stats_json() const { return ""; }
  virtual std::string describe() const = 0;
  virtual int64_t frame_capacity() const { return -1; }
  // Memory of the device in use now: the process's resident set on the CPU, the GPU's used bytes.
  virtual int64_t memory_in_use() const = 0;
  virtual bool supports_prompt_switch() const { return true; }
  // A device copy of a host tensor, complete on return (GPU backends; the CPU's has no device).
  virtual Tensor to_device(const Tensor& host) const;
};

std::unique_ptr<SessionBackend> make_cpu_backend(const LoadedModel& model, const PolicySpec& spec, const RolloutConfig& config,
                                                 const WanPrompt& prompt, const std::string& schedule, int64_t frames);
// Defined in cuda/session_backend_cuda.cpp; a build without CUDA throws a fastar::Error saying so.
std::unique_ptr<SessionBackend> make_cuda_backend(const LoadedModel& model, const PolicySpec& spec, const RolloutConfig& config,
                                                  const WanPrompt& prompt, int64_t frames, bool fit_to_memory);

}  // namespace fastar
