#include "fastar/session/session.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <sstream>

#include "fastar/core/error.h"
#include "fastar/rollout/latent_preview.h"
#include "fastar/rollout/video_frame.h"
#include "fastar/session/chunk_decoder.h"
#include "fastar/session/session_backend.h"
#include "fastar/world/actions.h"

namespace fastar {

Session::Session(std::shared_ptr<const LoadedModel> model, SessionOptions options, SessionPrompt prompt)
    : model_(std::move(model)), options_(std::move(options)) {
  FASTAR_CHECK(model_, "Session: no model");
  const WanConfig& c = model_->config();
  const std::string& who = options_.who;
  FASTAR_CHECK(options_.schedule == "self-forcing" || options_.schedule == "rolling-forcing",
               who << ": unknown --schedule '" << options_.schedule << "'; choose self-forcing or rolling-forcing");
  const bool rolling = options_.schedule == "rolling-forcing";
  FASTAR_CHECK(options_.chunk_frames >= 1 && options_.chunk_frames <= 1024,
               who << ": --chunk-frames must be in [1, 1024], got " << options_.chunk_frames);
  FASTAR_CHECK(options_.frames >= 0, who << ": the planned frame count must be >= 0");

  RolloutConfig rc;
  rc.seed = options_.seed;
  rc.schedule.frames_per_chunk = options_.chunk_frames;
  rc.schedule.denoising_steps = !options_.steps.empty() ? options_.steps
                                : rolling                ? std::vector<float>{1000, 800, 600, 400, 200}
                                                         : std::vector<float>{1000, 750, 500, 250};
  rc.schedule.shift = options_.shift;
  rc.latent_height = options_.latent_height > 0 ? options_.latent_height : c.latent_height;
  rc.latent_width = options_.latent_width > 0 ? options_.latent_width : c.latent_width;
  rc.schedule.validate();
  validate_rollout_config(c, rc);

  if (rolling) {
    FASTAR_CHECK(options_.device == Device::CPU, who << ": --schedule rolling-forcing runs on the CPU for now; use --device cpu");
    bool policy_options = false;
    for (const auto& [name, value] : options_.policy_options) policy_options |= is_policy_option(name);
    FASTAR_CHECK(options_.policy.empty() && !policy_options,
                 who << ": --policy and the policy options (--window, --sink, --tempcache-*, --ann*) apply to --schedule "
                        "self-forcing; rolling-forcing uses its own sink cache (1 block sink, 24 frames held, 21 attended)");
    spec_.base = "rolling-sink";
  } else {
    spec_ = resolve_policy(options_.policy, options_.policy_options, c, rc.schedule.timesteps(), options_.device, who);
  }
  const std::string& d = options_.decoder;
  FASTAR_CHECK(d == "auto" || d == "wan" || d == "tiny" || d == "latents",
               who << ": unknown --decoder '" << d << "'; choose auto, wan, tiny or latents");
  FASTAR_CHECK(d != "wan" || model_->has_vae(),
               who << ": --decoder wan needs the Wan VAE beside the DiT (original Wan2.1 folder: Wan2.1_VAE.safetensors, made by "
                   << convert_wan_vae_command("Wan2.1_VAE.pth", "MODEL/Wan2.1_VAE.safetensors") << "; diffusers: vae/); "
                   << model_->name() << " has none");
  FASTAR_CHECK(d != "tiny" || model_->has_tiny_decoder(),
               who << ": --decoder tiny needs taew2_1.safetensors or lighttaew2_1.safetensors in the model folder (made by "
                   << convert_taehv_command("taew2_1.pth", "MODEL/taew2_1.safetensors") << "); " << model_->name() << " has none");
  // auto: the Wan VAE first (the reference), then the tiny decoder, else the latents themselves.
  if (d == "auto") options_.decoder = model_->has_vae() ? "wan" : model_->has_tiny_decoder() ? "tiny" : "latents";
  if (options_.decoder != "latents")
    decoder_ = options_.device == Device::CUDA ? make_cuda_chunk_decoder(*model_, options_.decoder)
                                               : make_cpu_chunk_decoder(*model_, options_.decoder);
  prompt_ = std::make_unique<WanPrompt>(model_->dit().prepare_prompt(prompt_context(prompt)));
  if (options_.device == Device::CUDA)
    backend_ = make_cuda_backend(*model_, spec_, rc, *prompt_, options_.frames, options_.fit_to_memory);
  else
    backend_ = make_cpu_backend(*model_, spec_, rc, *prompt_, options_.schedule, options_.frames);
  options_.steps = rc.schedule.denoising_steps;
  options_.latent_height = rc.latent_height;
  options_.latent_width = rc.latent_width;
}

Session::~Session() = default;

Tensor Session::prompt_context(const SessionPrompt& prompt) const {
  const WanConfig& c = model_->config();
  if (prompt.is_text) return model_->encode_prompt(prompt.text, options_.device);
  if (prompt.embeds.defined()) return model_->pad_prompt(prompt.embeds, prompt.source.empty() ? "the prompt embedding" : prompt.source);
  return Tensor::zeros({c.text_len, c.text_dim});
}

Tensor Session::actions_of(const std::string& actions) const {
  const WanConfig& c = model_->config();
  FASTAR_CHECK(c.action_dim == world::kNumActions || actions.empty(),
               options_.who << ": per-frame actions (. U D L R) need a world model with " << world::kNumActions
                            << " one-hot actions (config action_dim " << world::kNumActions << "); this model has action_dim "
                            << c.action_dim);
  const int64_t frames = options_.chunk_frames;
  FASTAR_CHECK(static_cast<int64_t>(actions.size()) <= frames,
               options_.who << ": " << actions.size() << " actions for a chunk of " << frames << " frames (one per frame)");
  // A world model: one-hot (none, up, down, left, right); another action model: zeros.
  return world::action_chunks(world::parse_actions(actions, frames), 1, frames, c.action_dim).front();
}

Chunk Session::next_chunk(const std::string& actions, bool commit) {
  const Tensor a = actions_of(actions);
  return next_chunk(&a, commit);
}

Chunk Session::next_chunk(const Tensor* actions, bool commit) {
  const WanConfig& c = model_->config();
  FASTAR_CHECK(!ended_, options_.who << ": this session's last chunk skipped its clean pass; reset() it to go on");
  const int64_t frames = options_.chunk_frames;
  const int64_t capacity = backend_->frame_capacity();
  FASTAR_CHECK(capacity < 0 || next_frame_ + frames <= capacity,
               options_.who << ": the preallocated memory holds " << capacity << " latent frames and this stream is at "
                            << next_frame_ << "; plan more frames, or use a bounded policy (window, +window)");
  Tensor defaults;
  if (c.action_dim > 0 && !actions) {  // no actions: "none" for every frame
    defaults = actions_of("");
    actions = &defaults;
  }
  if (actions)
    FASTAR_CHECK(c.action_dim > 0 && actions->dim() == 2 && actions->size(0) == frames && actions->size(1) == c.action_dim,
                 options_.who << ": actions must be [" << frames << ", " << c.action_dim << "] for this model"
                              << (c.action_dim == 0 ? " (it takes none)" : ""));
  const auto start = std::chrono::steady_clock::now();
  Chunk chunk;
  chunk.index = chunks_;
  chunk.frame_start = next_frame_;
  chunk.latent = backend_->next_chunk(actions, commit);
  const auto denoised = std::chrono::steady_clock::now();
  chunk.ms = std::chrono::duration<double, std::milli>(denoised - start).count();
  const bool want_device = options_.device_frames && options_.device == Device::CUDA;
  if (decoder_) {
    chunk.rgb = decoder_->decode(chunk.latent, want_device ? &chunk.device_rgb : nullptr);  // [1 + 4(T − 1) or 4T, 8h, 8w, 3]
    const int64_t height = chunk.rgb.size(1), width = chunk.rgb.size(2), bytes = height * width * 3;
    for (int64_t f = 0; f < chunk.rgb.size(0); ++f) {
      RgbFrame frame;
      frame.width = static_cast<int>(width);
      frame.height = static_cast<int>(height);
      frame.rgb.assign(chunk.rgb.data<uint8_t>() + f * bytes, chunk.rgb.data<uint8_t>() + (f + 1) * bytes);
      chunk.frames.push_back(std::move(frame));
    }
    chunk.decode_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - denoised).count();
  } else {
    for (int64_t f = 0; f < frames; ++f) chunk.frames.push_back(latent_frame_to_rgb(chunk.latent, f));
    // The same frames packed [F, H, W, 3] (one buffer the Python package hands out).
    const int64_t count = static_cast<int64_t>(chunk.frames.size());
    chunk.rgb = Tensor::zeros({count, chunk.frames[0].height, chunk.frames[0].width, 3}, DType::U8);
    for (int64_t f = 0; f < count; ++f) {
      const RgbFrame& frame = chunk.frames[static_cast<size_t>(f)];
      std::memcpy(chunk.rgb.data<uint8_t>() + static_cast<size_t>(f) * frame.rgb.size(), frame.rgb.data(), frame.rgb.size());
    }
  }
  if (want_device && !chunk.device_rgb.defined()) chunk.device_rgb = backend_->to_device(chunk.rgb);
  const int64_t count = chunk.rgb.size(0);
  chunk.video_frame_start = video_frames_;
  video_frames_ += count;
  if (commit) keep(chunk.latent, chunk.frame_start, actions);
  else ended_ = true;
  next_frame_ += frames;
  ++chunks_;
  chunk.stats = backend_->stats();
  return chunk;
}

void Session::keep(const Tensor& x0, int64_t frame_start, const Tensor* actions) {
  if (!backend_->supports_prompt_switch()) return;
  kept_.push_back({frame_start, x0.clone(), actions ? actions->clone() : Tensor()});
  if (!spec_.windowed) return;  // unbounded: every chunk stays (a re-cache replays them all)
  // Windowed: only the chunks that hold sink or window frames now.
  const int64_t end = frame_start + options_.chunk_frames;
  kept_.erase(std::remove_if(kept_.begin(), kept_.end(),
                             [&](const KeptChunk& k) {
                               const int64_t k_end = k.frame_start + options_.chunk_frames;
                               return !(k.frame_start < spec_.sink || k_end > end - spec_.window);
                             }),
              kept_.end());
}

void Session::set_prompt(const SessionPrompt& prompt, PromptSwitch how) {
  FASTAR_CHECK(backend_->supports_prompt_switch(), options_.who << ": prompt switching needs the self-forcing schedule");
  // Everything that can fail on the user's input happens before the session changes.
  auto fresh = std::make_unique<WanPrompt>(model_->dit().prepare_prompt(prompt_context(prompt)));
  if (how.recache && !kept_.empty()) {
    backend_->rebuild_memory();
    for (const KeptChunk& k : kept_) {
      const bool old_prompt = how.keep_sink && spec_.windowed && k.frame_start < spec_.sink;
      backend_->set_prompt(old_prompt ? *prompt_ : *fresh);
      backend_->commit(k.latent, k.frame_start, k.actions.defined() ? &k.actions : nullptr);
    }
  }
  backend_->set_prompt(*fresh);
  prompt_ = std::move(fresh);
}

void Session::reset(uint64_t seed) {
  backend_->restart(seed);
  kept_.clear();
  if (decoder_) decoder_->reset();
  next_frame_ = chunks_ = video_frames_ = 0;
  ended_ = false;
  options_.seed = seed;
}

std::string Session::describe() const {
  std::ostringstream out;
  out << "model " << model_->name() << "; device " << device_name(options_.device) << "; " << options_.schedule;
  if (options_.schedule == "self-forcing") out << ", policy " << spec_.describe();
  out << "; memory " << backend_->describe() << "; chunks of " << options_.chunk_frames << " latent frames at "
      << options_.latent_height << "x" << options_.latent_width << ", steps ";
  for (size_t i = 0; i < options_.steps.size(); ++i) out << (i ? "," : "") << options_.steps[i];
  out << ", shift " << options_.shift << ", seed " << options_.seed << "; decoder " << options_.decoder;
  if (decoder_) out << " (" << decoder_->describe() << ")";
  return out.str();
}

int64_t Session::video_frames_for(int64_t latent_frames) const {
  return decoder_ ? decoder_->frames_for(latent_frames) : latent_frames;
}

MemoryStats Session::stats() const { return backend_->stats(); }
std::string Session::report() const { return backend_->report(); }
std::string Session::stats_json() const { return backend_->stats_json(); }
int64_t Session::frame_capacity() const { return backend_->frame_capacity(); }
int64_t Session::memory_in_use() const { return backend_->memory_in_use(); }

}  // namespace fastar
