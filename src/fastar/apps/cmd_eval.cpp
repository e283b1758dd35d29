// fastar eval: judges the memory policies on a world model (issue 5). For a fixed set of clips of
// the procedural world (prompt, actions and seed from --seed), rolls out every policy from the same
// noise and reports, against the dense rollout of the same clip (the papers' protocol): PSNR and
// SSIM; against the world's own frames: PSNR; and time per frame, TempCache's KV density and
// AnnSA/AnnCA's density and recall. Writes OUT/eval.md, OUT/eval.json and OUT/contact_sheet.png
// (clip 0: the world, then one row per policy).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "fastar/apps/args.h"
#include "fastar/apps/commands.h"
#include "fastar/apps/policy_cli.h"
#include "fastar/apps/tempcache_cli.h"
#include "fastar/core/atomic_file.h"
#include "fastar/core/error.h"
#include "fastar/model/text_encoder.h"
#include "fastar/rollout/image_metrics.h"
#include "fastar/rollout/latent_preview.h"
#include "fastar/rollout/png_writer.h"
#include "fastar/rollout/self_forcing.h"
#include "fastar/world/actions.h"
#include "fastar/world/world.h"

#ifndef FASTAR_DEFAULT_MODEL
#define FASTAR_DEFAULT_MODEL ""
#endif

namespace fastar::app {

namespace {

std::vector<OptionSpec> eval_specs() {
  std::vector<OptionSpec> specs = {
      {"model", "PATH", "a world model (pixel frames, text encoder, 5 actions)", "the model shipped with fastar"},
      {"reference-model", "PATH",
       "run the reference (first) policy on this model instead, e.g. the dense teacher of an ARL² hybrid model",
       "--model"},
      {"policies", "LIST", "comma-separated --policy values; the first is the reference",
       "dense,window,tempcache,dense+annsa,dense+annca,tempcache+annsa+annca"},
      {"clips", "N", "clips of the world (prompt, actions, seed from --seed)", "4"},
      {"frames", "N", "frames per clip (whole chunks)", "24"},
      {"seed", "S", "the clips' seed (a different one than training's keeps them unseen)", "1000"},
      {"window", "W", "window policies: recent frames kept", "the model's fastar_defaults"},
      {"sink", "S", "window policies: first frames kept", "the model's fastar_defaults"},
      {"out", "DIR", "writes DIR/eval.md, DIR/eval.json, DIR/contact_sheet.png", "eval"},
      {"threads", "N", "CPU threads", "all cores"},
  };
  for (const auto* extra : {&tempcache_option_specs(), &ann_option_specs()})
    for (const OptionSpec& spec : *extra)
      if (spec.name != "tempcache-capacity") specs.push_back(spec);
  return specs;
}

struct Clip {
  std::string prompt;
  std::vector<uint8_t> actions;
  uint64_t seed = 0;
  std::vector<RgbFrame> world;  // the ground truth
  WanPrompt prompt_embedding;   // encoded and prepared once, shared by every policy
  WanPrompt reference_embedding;  // the same for the reference model (--reference-model)
};

struct PolicyResult {
  std::string policy;
  std::vector<std::vector<RgbFrame>> frames;  // per clip
  double psnr_dense = 0, ssim_dense = 0, psnr_world = 0, ms_per_frame = 0;
  double kv_density = -1;                      // TempCache: cached / dense tokens (−1: not a TempCache policy)
  double annsa_density = -1, annsa_recall = -1, annca_density = -1, annca_recall = -1;
};


RgbFrame world_frame(const Tensor& frames, int64_t f) {
  RgbFrame r;
  r.width = r.height = static_cast<int>(world::kFrameSize);
  const int64_t n = world::kFrameSize * world::kFrameSize * 3;
  r.rgb.assign(frames.data<uint8_t>() + f * n, frames.data<uint8_t>() + (f + 1) * n);
  return r;
}

// Rows of frames (every `step`-th), each frame upscaled ×scale, 2-pixel gaps.
RgbFrame contact_sheet(const std::vector<std::vector<RgbFrame>>& rows, int64_t step, int scale) {
  const int size = rows.front().front().width * scale, gap = 2;
  const int64_t cols = (static_cast<int64_t>(rows.front().size()) + step - 1) / step;
  RgbFrame sheet;
  sheet.width = static_cast<int>(cols * (size + gap));
  sheet.height = static_cast<int>(rows.size() * (size + gap));
  sheet.rgb.assign(static_cast<size_t>(sheet.width) * sheet.height * 3, 255);
  for (size_t r = 0; r < rows.size(); ++r)
    for (int64_t c = 0; c < cols && c * step < static_cast<int64_t>(rows[r].size()); ++c) {
      const RgbFrame& f = rows[r][static_cast<size_t>(c * step)];
      for (int y = 0; y < size; ++y)
        for (int x = 0; x < size; ++x)
          for (int ch = 0; ch < 3; ++ch)
            sheet.rgb[(static_cast<size_t>(r * (size + gap) + y) * sheet.width + c * (size + gap) + x) * 3 + ch] =
                f.rgb[(static_cast<size_t>(y / scale) * f.width + x / scale) * 3 + ch];
    }
  return sheet;
}

// The options of one policy: eval takes the options of all its policies at once, and each policy
// gets only those that apply to it (--window/--sink: window; TempCache's: a tempcache base; the ANN
// ones: +annsa/+annca), so that the checks of policy_cli.h still hold for each.
Args policy_args(const std::vector<OptionSpec>& specs, int argc, char** argv, const AnnPolicy& parts) {
  auto applies = [&](const std::string& name) {
    for (const OptionSpec& spec : tempcache_option_specs())
      if (spec.name == name) return parts.base == "tempcache" || (name == "ann" && parts.any());
    for (const OptionSpec& spec : ann_option_specs())
      if (spec.name == name) return parts.any();
    if (name == "window" || name == "sink") return parts.base == "window";
    return true;
  };
  std::vector<std::string> kept;
  for (int i = 0; i < argc; ++i) {
    std::string word = argv[i];
    if (word.rfind("--", 0) != 0) {
      kept.push_back(word);
      continue;
    }
    const std::string name = word.substr(2, word.find('=') == std::string::npos ? std::string::npos : word.find('=') - 2);
    bool takes_value = false;
    for (const OptionSpec& spec : specs)
      if (spec.name == name) takes_value = !spec.value_name.empty();
    const bool inline_value = word.find('=') != std::string::npos;
    const bool keep = applies(name);
    if (keep) kept.push_back(word);
    if (takes_value && !inline_value && i + 1 < argc) {
      ++i;
      if (keep) kept.push_back(argv[i]);
    }
  }
  std::vector<char*> pointers;
  for (std::string& word : kept) pointers.push_back(word.data());
  return Args("eval", specs, static_cast<int>(pointers.size()), pointers.data());
}

std::string cell(double value, const char* format) {
  if (value < 0) return "—";
  if (std::isinf(value)) return "identical";
  char text[32];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

}  // namespace

int run_eval(int argc, char** argv) {
  const std::vector<OptionSpec> specs = eval_specs();
  Args args("eval", specs, argc, argv);
  if (args.help()) {
    std::fputs(format_help("fastar eval [--model PATH] [--policies dense,window,...] [--clips N] [--frames N] [--out DIR]",
                           "Rolls out every policy on clips of the procedural world and reports PSNR/SSIM against the\n"
                           "dense rollout, PSNR against the world, time, and the policies' density and recall.",
                           specs)
                   .c_str(),
               stdout);
    return 0;
  }
  FASTAR_CHECK(args.positional().empty(), "fastar eval: unexpected argument '" << args.positional()[0] << "'");
  if (args.has("threads")) omp_set_num_threads(static_cast<int>(args.get_int("threads", 1, 1, 4096)));
  const std::string model_path = args.get("model", FASTAR_DEFAULT_MODEL);
  const WanModel model = WanModel::load(model_path);
  const WanConfig& c = model.config();
  FASTAR_CHECK(c.action_dim == world::kNumActions && c.in_dim == 3 && c.latent_height == world::kFrameSize &&
                   c.latent_width == world::kFrameSize && TextEncoder::available(model_path),
               "fastar eval: " << model_path << " is not a world model (64x64 RGB frames, a text encoder, 5 actions); "
                               "train one with tools/world_model/ or use the shipped models/world-small");
  const TextEncoder encoder = TextEncoder::load(model_path);
  // The reference rollout's model: --model, or the one --reference-model names (same world, same clips).
  const std::string reference_path = args.get("reference-model", model_path);
  std::unique_ptr<WanModel> reference_owner;
  if (reference_path != model_path) reference_owner = std::make_unique<WanModel>(WanModel::load(reference_path));
  const WanModel& ref_model = reference_owner ? *reference_owner : model;
  FASTAR_CHECK(ref_model.config().action_dim == c.action_dim && ref_model.config().in_dim == c.in_dim &&
                   ref_model.config().latent_height == c.latent_height &&
                   ref_model.config().latent_width == c.latent_width && TextEncoder::available(reference_path),
               "fastar eval: --reference-model " << reference_path << " is not a world model like " << model_path);
  std::optional<TextEncoder> reference_encoder;  // only for another model
  if (reference_owner) reference_encoder.emplace(TextEncoder::load(reference_path));
  const int64_t clips = args.get_int("clips", 4, 1, 10000);
  const int64_t frames = (args.get_int("frames", 24, 1, 100000) + 2) / 3 * 3;
  const uint64_t seed = static_cast<uint64_t>(args.get_int("seed", 1000, 0, INT64_MAX));
  const std::vector<std::string> policies =
      split_list(args.get("policies", "dense,window,tempcache,dense+annsa,dense+annca,tempcache+annsa+annca"));
  FASTAR_CHECK(!policies.empty(), "fastar eval: --policies needs at least one policy");
  const std::string out = args.get("out", "eval");
  std::filesystem::create_directories(out);

  std::vector<Clip> set;
  for (int64_t i = 0; i < clips; ++i) {
    Clip clip;
    clip.seed = world::clip_seed(seed, static_cast<uint64_t>(i));
    clip.prompt = world::sample_prompt(clip.seed);
    clip.actions = world::sample_actions(clip.seed, frames);
    const Tensor truth = world::render_frames(clip.prompt, clip.actions, clip.seed, frames);
    for (int64_t f = 0; f < frames; ++f) clip.world.push_back(world_frame(truth, f));
    clip.prompt_embedding = model.prepare_prompt(encoder.encode(clip.prompt));
    clip.reference_embedding = reference_encoder ? ref_model.prepare_prompt(reference_encoder->encode(clip.prompt))
                                                 : clip.prompt_embedding;
    set.push_back(std::move(clip));
  }

  RolloutConfig base;
  base.seed = seed;
  base.latent_height = c.latent_height;
  base.latent_width = c.latent_width;
  std::vector<PolicyResult> results;
  for (const std::string& policy : policies) {
    const bool on_reference_model = results.empty();
    const WanModel& run_model = on_reference_model ? ref_model : model;
    PolicyResult result;
    result.policy = on_reference_model && reference_path != model_path ? policy + " (" + reference_path + ")" : policy;
    double seconds = 0;
    std::fprintf(stderr, "%s:", policy.c_str());
    for (const Clip& clip : set) {
      const Args own = policy_args(specs, argc, argv, split_ann_policy(policy));
      CpuPolicy p = make_cpu_policy(own, policy, run_model, base.schedule.timesteps(), "fastar eval");
      RolloutConfig rc = base;
      rc.seed = clip.seed;
      rc.cross_attention = p.ann.annca.get();
      SelfForcingRollout rollout(run_model, *p.memory, on_reference_model ? clip.reference_embedding : clip.prompt_embedding, rc);
      std::vector<RgbFrame> got;
      const std::vector<Tensor> actions = world::action_chunks(clip.actions, frames / 3, 3, c.action_dim);
      const auto start = std::chrono::steady_clock::now();
      for (int64_t chunk = 0; chunk < frames / 3; ++chunk) {
        const Tensor x0 = rollout.next_chunk(&actions[static_cast<size_t>(chunk)], /*commit=*/chunk + 1 < frames / 3);
        for (int64_t f = 0; f < 3; ++f) got.push_back(latent_frame_to_rgb(x0, f));
      }
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (p.tempcache) result.kv_density = p.tempcache->stats().total.density;  // the last clip's
      if (p.ann.annsa) {
        const auto t = p.ann.annsa->stats().total();
        result.annsa_density = t.density();
        result.annsa_recall = t.recall();
      }
      if (p.ann.annca) {
        const auto t = p.ann.annca->stats().total();
        result.annca_density = t.density();
        result.annca_recall = t.recall();
      }
      result.frames.push_back(std::move(got));
      std::fprintf(stderr, " clip %zu", result.frames.size());
    }
    std::fprintf(stderr, "\n");
    result.ms_per_frame = 1000.0 * seconds / static_cast<double>(clips * frames);
    // Metrics against the reference policy (the first) and against the world.
    const PolicyResult& ref = results.empty() ? result : results.front();
    int64_t n = 0;
    for (size_t k = 0; k < set.size(); ++k)
      for (size_t f = 0; f < set[k].world.size(); ++f, ++n) {
        result.psnr_dense += mse_rgb(result.frames[k][f], ref.frames[k][f]);  // MSE sums first
        result.ssim_dense += ssim_rgb(result.frames[k][f], ref.frames[k][f]);
        result.psnr_world += mse_rgb(result.frames[k][f], set[k].world[f]);
      }
    result.psnr_dense = psnr_of_mse(result.psnr_dense / static_cast<double>(n));
    result.ssim_dense /= static_cast<double>(n);
    result.psnr_world = psnr_of_mse(result.psnr_world / static_cast<double>(n));
    results.push_back(std::move(result));
  }

  // Table, JSON, contact sheet.
  std::ostringstream md;
  md << "fastar eval — " << model_path << ", " << clips << " clips × " << frames << " frames (seed " << seed
     << "), reference policy: " << results.front().policy << "\n\n"
     << "| policy | PSNR vs " << results.front().policy << " (dB) | SSIM vs " << results.front().policy
     << " | PSNR vs world (dB) | ms / frame (CPU) | TempCache KV density | AnnSA density / recall | AnnCA density / recall |\n"
     << "|---|---|---|---|---|---|---|---|\n";
  nlohmann::json json = nlohmann::json::array();
  for (const PolicyResult& r : results) {
    const bool is_ref = &r == &results.front();
    md << "| " << r.policy << " | " << (is_ref ? "ref" : cell(r.psnr_dense, "%.2f")) << " | "
       << (is_ref ? "ref" : cell(r.ssim_dense, "%.4f")) << " | " << cell(r.psnr_world, "%.2f") << " | "
       << cell(r.ms_per_frame, "%.0f") << " | " << cell(r.kv_density, "%.3f") << " | " << cell(r.annsa_density, "%.3f")
       << " / " << cell(r.annsa_recall, "%.3f") << " | " << cell(r.annca_density, "%.3f") << " / "
       << cell(r.annca_recall, "%.3f") << " |\n";
    json.push_back({{"policy", r.policy}, {"psnr_vs_reference_db", is_ref || std::isinf(r.psnr_dense) ? nlohmann::json() : nlohmann::json(r.psnr_dense)},
                    {"ssim_vs_reference", is_ref ? nlohmann::json() : nlohmann::json(r.ssim_dense)},
                    {"psnr_vs_world_db", r.psnr_world}, {"ms_per_frame", r.ms_per_frame}, {"kv_density", r.kv_density},
                    {"annsa_density", r.annsa_density}, {"annsa_recall", r.annsa_recall},
                    {"annca_density", r.annca_density}, {"annca_recall", r.annca_recall}});
  }
  md << "\nPSNR is over all frames of all clips (mean MSE first); identical = no pixel differs; the first chunk "
        "of every rollout is the same for all policies (nothing to remember yet)"
     << (reference_owner ? ", except the reference's, which comes from another model" : "") << ".\nClip 0: \"" << set.front().prompt << "\", actions " << world::format_actions(set.front().actions)
     << ". Contact sheet rows: the world, then " ;
  for (size_t i = 0; i < results.size(); ++i) md << (i ? ", " : "") << results[i].policy;
  md << " (every 3rd frame). Recall is measured only with --ann-stats (— otherwise).\n";
  std::vector<std::vector<RgbFrame>> rows = {set.front().world};
  for (const PolicyResult& r : results) rows.push_back(r.frames.front());
  write_png(out + "/contact_sheet.png", contact_sheet(rows, 3, 2));
  write_file_atomically(out + "/eval.md", md.str());
  write_file_atomically(out + "/eval.json", json.dump(2) + "\n");
  std::fputs(md.str().c_str(), stdout);
  std::fprintf(stderr, "wrote %s/eval.md, %s/eval.json, %s/contact_sheet.png\n", out.c_str(), out.c_str(), out.c_str());
  return 0;
}

}  // namespace fastar::app
