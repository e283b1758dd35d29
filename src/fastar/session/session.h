// The engine API (docs/design.md, "session"): a Session opens a loaded model with a policy spec on a
// device and streams chunks. Every front end (the CLI's generate / eval / bench rollout, the Python
// package, the server) is a loop over it; none of them reaches past it into the model, the policies
// or the kernels.
//
//   auto model = LoadedModel::load("models/world-small");
//   SessionOptions options;                 // policy "" = the model's fastar_defaults
//   options.policy = "tempcache+window+annsa";
//   Session session(model, options, SessionPrompt::from_text("a red circle bounces ."));
//   for (int i = 0; i < 8; ++i) {
//     Chunk chunk = session.next_chunk("RRR");            // one action per frame (world models)
//     for (const RgbFrame& f : chunk.frames) sink->write(f);
//   }
//   session.set_prompt(SessionPrompt::from_text("a blue circle bounces ."), {.recache = true});
//
// Prompt switching mid-stream follows LongLive: with re-cache, the memory is rebuilt from the kept
// clean latents under the new prompt (the clean context pass replayed chunk by chunk: all chunks for
// unbounded policies, so that a switch to the same prompt changes nothing; for windowed policies the
// chunks that overlap the sink and the window, LongLive's choice), optionally keeping the sink's
// entries as they were (computed under the old prompt); without re-cache the cached K/V stay as they
// are and only the next chunks see the new prompt.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "fastar/core/tensor.h"
#include "fastar/model/memory_stats.h"
#include "fastar/model/wan_vae_decoder.h"
#include "fastar/rollout/frame_sink.h"
#include "fastar/session/loaded_model.h"
#include "fastar/session/policy_spec.h"

namespace fastar {

struct SessionOptions {
  std::string policy;                  // "" = the model's fastar_defaults (policy_spec.h)
  OptionMap policy_options;            // window, sink, tempcache-*, ann*, annsa-*, annca-* (others ignored)
  Device device = Device::CPU;
  std::string schedule = "self-forcing";  // | "rolling-forcing" (CPU, its own sink cache; no policy)
  int64_t chunk_frames = 3;            // latent frames per chunk
  std::vector<float> steps;            // denoising steps; empty = the schedule's (1000,750,500,250 | 1000,800,600,400,200)
  float shift = 5.0f;
  int64_t latent_height = 0, latent_width = 0;  // 0 = the model's config
  uint64_t seed = 0;
  // Latent frames the caller plans (0 = open-ended): sizes the GPU's preallocated dense cache and is
  // the length of a rolling-forcing video. A bounded policy needs none.
  int64_t frames = 0;
  // GPU, unbounded policies: preallocate what fits in free memory (2 GiB headroom) instead of
  // failing; frame_capacity() then says where the stream ends (bench rollout's dense runs).
  bool fit_to_memory = false;
  std::string who = "fastar";          // the front end, in error messages ("fastar generate")
  // How chunks become frames: "auto" (the Wan VAE when the model has one, else the tiny decoder,
  // else "latents"), "wan" (the Wan VAE, streaming: 1 + 4(T − 1) frames for the first chunk of T
  // latents, 4T after), "tiny" (TAEHV / LightTAE: the same frame count; chunk_decoder.h),
  // "latents" (pixel models: their output; latent models: the latents' first three channels).
  std::string decoder = "auto";
  // GPU sessions: Chunk::device_rgb holds the frames on the device too (the Python package's DLPack
  // frames); the CLI and the server need only the host copy.
  bool device_frames = false;
};

// The prompt of a session: words for a model with its own text encoder, or an embedding [rows,
// text_dim] (umT5's output), or none (the all-zero embedding).
struct SessionPrompt {
  bool is_text = false;
  std::string text;
  Tensor embeds;
  std::string source;  // names the embedding's file in messages
  static SessionPrompt none() { return {}; }
  static SessionPrompt from_text(std::string words) { return {true, std::move(words), Tensor(), ""}; }
  static SessionPrompt from_embeds(Tensor context, std::string source) { return {false, "", std::move(context), std::move(source)}; }
};

struct PromptSwitch {
  bool recache = true;      // rebuild the memory from the kept clean latents under the new prompt
  bool keep_sink = false;   // with recache: the sink frames' entries stay as computed under the old prompt
};

struct Chunk {
  int64_t index = 0;        // chunks since the start (or the last reset)
  int64_t frame_start = 0;  // latent frame index of its first frame
  Tensor latent;            // the clean x₀ [out_dim, frames, H, W], fp32 on the host
  int64_t video_frame_start = 0;  // index of its first frame in the video (= frame_start without a decoder)
  // Its frames as 8-bit RGB: decoded by the Wan VAE or the tiny decoder (SessionOptions::decoder; 1 + 4(T − 1) frames for
  // the first chunk, 4T after), else the frame itself for pixel-space models (the world model) or
  // the latent's first three channels.
  std::vector<RgbFrame> frames;
  // The same frames packed into one uint8 tensor [frames, height, width, 3] on the host: one buffer
  // that a front end can hand out without copying (the Python package's numpy array keeps it alive).
  Tensor rgb;
  // With SessionOptions::device_frames on a GPU session: the same frames U8 [frames, height, width, 3]
  // on the device, complete (synchronised) when next_chunk returns; else undefined.
  Tensor device_rgb;
  double ms = 0;            // wall time of the chunk (all its DiT calls, the sampler, the download)
  double decode_ms = 0;     // wall time of the decoder on this chunk (0 without one)
  MemoryStats stats;        // the policy's memory and statistics after the chunk (stats())
};

class SessionBackend;  // session_backend.h
class ChunkDecoder;    // chunk_decoder.h

class Session {
 public:
  // Throws fastar::Error (naming the option or file) on a policy, schedule or prompt the model cannot
  // run, and, on the GPU, when no device is visible or the policy's memory does not fit.
  Session(std::shared_ptr<const LoadedModel> model, SessionOptions options, SessionPrompt prompt = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // The next chunk. actions: [chunk_frames, action_dim] for action models (nullptr = none); or, for
  // the world models (5 one-hot actions), one character per frame of the chunk: . none, U, D, L, R
  // (missing characters = none). commit = false skips the clean pass (nothing will follow this chunk;
  // the session cannot continue after it).
  Chunk next_chunk(const Tensor* actions = nullptr, bool commit = true);
  Chunk next_chunk(const std::string& actions, bool commit = true);

  // A new prompt from the next chunk on (see the header comment). The new prompt is encoded and
  // checked first: on any error (unknown words, a bad embedding) the session keeps the old one and
  // runs on unchanged.
  void set_prompt(const SessionPrompt& prompt, PromptSwitch how = {});
  // Back to frame 0 with a new seed: empty memory, the current prompt.
  void reset(uint64_t seed);

  std::string describe() const;      // model, device, policy (resolved), schedule, sizes, seed
  MemoryStats stats() const;         // self-attention memory + cross-attention density/recall
  std::string report() const;        // the policies' end-of-run report ("" = nothing to say)
  std::string stats_json() const;    // per-layer statistics (TempCache), "" = none
  const PolicySpec& policy() const { return spec_; }
  const LoadedModel& model() const { return *model_; }
  const SessionOptions& options() const { return options_; }
  int64_t frames_generated() const { return next_frame_; }
  // The decoder in use: "wan", "tiny" or "latents" (SessionOptions::decoder resolved).
  const std::string& decoder() const { return options_.decoder; }
  // Video frames that the first `latent_frames` latent frames of a stream decode to.
  int64_t video_frames_for(int64_t latent_frames) const;
  int64_t chunk_frames() const { return options_.chunk_frames; }
  // Latent frames the preallocated memory allows (GPU unbounded policies); −1 = no limit.
  int64_t frame_capacity() const;
  // The device's memory in use now (CPU: the process's resident set; GPU: total − free).
  int64_t memory_in_use() const;

 private:
  struct KeptChunk {
    int64_t frame_start = 0;
    Tensor latent;
    Tensor actions;  // [frames, action_dim] or undefined
  };
  Tensor prompt_context(const SessionPrompt& prompt) const;
  Tensor actions_of(const std::string& actions) const;
  void keep(const Tensor& x0, int64_t frame_start, const Tensor* actions);

  std::shared_ptr<const LoadedModel> model_;
  SessionOptions options_;
  PolicySpec spec_;
  std::unique_ptr<WanPrompt> prompt_;
  std::unique_ptr<SessionBackend> backend_;
  std::deque<KeptChunk> kept_;  // clean latents the memory holds entries of (re-cache)
  std::unique_ptr<ChunkDecoder> decoder_;  // "wan" / "tiny": its causal state spans the stream (reset() clears it)
  int64_t next_frame_ = 0, chunks_ = 0, video_frames_ = 0;
  bool ended_ = false;          // a chunk without its clean pass was generated
};

}  // namespace fastar
