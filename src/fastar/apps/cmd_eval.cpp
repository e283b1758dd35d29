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
#include "fastar/apps/session_cli.h"
#include "fastar/core/atomic_file.h"
#include "fastar/core/error.h"
#include "fastar/model/text_encoder.h"
#include "fastar/rollout/image_metrics.h"
#include "fastar/rollout/latent_preview.h"
#include "fastar/rollout/png_writer.h"
#include "fastar/rollout/schedule.h"
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
      {"device", "NAME", "cpu | cuda (bf16 on the GPU)", "cpu"},
      {"out", "DIR", "writes DIR/eval.md, DIR/eval.json, DIR/contact_sheet.png", "eval"},
      {"threads", "N", "CPU threads", "all cores"},
  };
  // The policies' options: each applies to the policies of --policies it concerns (options_for).
  for (const OptionSpec& spec : policy_option_specs()) specs.push_back(spec);
  return specs;
}

struct Clip {
  std::string prompt;
  std::vector<uint8_t> actions;
  uint64_t seed = 0;
  std::vector<RgbFrame> world;  // the ground truth
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
  const std::string who = "fastar eval";
  // Every option and every policy is checked before anything runs or is written.
  const int64_t clips = args.get_int("clips", 4, 1, 10000);
  const int64_t frames = (args.get_int("frames", 24, 1, 100000) + 2) / 3 * 3;
  const uint64_t seed = static_cast<uint64_t>(args.get_int("seed", 1000, 0, INT64_MAX));
  const Device device = parse_device(args.get("device", "cpu"), who);
  const std::string policy_list = args.get("policies", "dense,window,tempcache,dense+annsa,dense+annca,tempcache+annsa+annca");
  const std::vector<std::string> policies = split_list(policy_list);
  FASTAR_CHECK(!policies.empty() && policies.size() == static_cast<size_t>(std::count(policy_list.begin(), policy_list.end(), ',') + 1),
               who << ": --policies must be a comma-separated list of policies without empty items, got '" << policy_list << "'");
  const std::string out = args.get("out", "eval");
  const std::string model_path = args.get("model", FASTAR_DEFAULT_MODEL);
  const std::shared_ptr<const LoadedModel> model = LoadedModel::load(model_path);
  const WanConfig& c = model->config();
  FASTAR_CHECK(c.action_dim == world::kNumActions && c.in_dim == 3 && c.latent_height == world::kFrameSize &&
                   c.latent_width == world::kFrameSize && model->has_text_encoder(),
               who << ": " << model_path << " is not a world model (64x64 RGB frames, a text encoder, 5 actions); "
                   "train one with tools/world_model/ or use the shipped models/world-small");
  // The reference rollout's model: --model, or the one --reference-model names (same world, same clips).
  const std::string reference_path = args.get("reference-model", model_path);
  const std::shared_ptr<const LoadedModel> ref_model = reference_path == model_path ? model : LoadedModel::load(reference_path);
  FASTAR_CHECK(ref_model->config().action_dim == c.action_dim && ref_model->config().in_dim == c.in_dim &&
                   ref_model->config().latent_height == c.latent_height &&
                   ref_model->config().latent_width == c.latent_width && ref_model->has_text_encoder(),
               who << ": --reference-model " << reference_path << " is not a world model like " << model_path);
  std::vector<SessionOptions> runs;  // one per policy, resolved now
  for (size_t i = 0; i < policies.size(); ++i) {
    SessionOptions o;
    o.who = who;
    o.device = device;
    o.policy = policies[i];
    o.policy_options = options_for(parse_policy_name(policies[i], who), args.values());
    o.frames = frames;
    const WanConfig& run_config = i == 0 ? ref_model->config() : c;
    resolve_policy(o.policy, o.policy_options, run_config, SelfForcingSchedule().timesteps(), device, who);
    runs.push_back(o);
  }
  for (const auto& [option, value] : args.values()) {
    if (!is_policy_option(option)) continue;
    bool used = false;
    for (const SessionOptions& o : runs) used |= o.policy_options.count(option) > 0;
    FASTAR_CHECK(used, who << ": --" << option << " applies to none of --policies " << policy_list);
  }
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  FASTAR_CHECK(!ec, who << ": cannot create --out folder '" << out << "': " << ec.message());

  std::vector<Clip> set;
  for (int64_t i = 0; i < clips; ++i) {
    Clip clip;
    clip.seed = world::clip_seed(seed, static_cast<uint64_t>(i));
    clip.prompt = world::sample_prompt(clip.seed);
    clip.actions = world::sample_actions(clip.seed, frames);
    const Tensor truth = world::render_frames(clip.prompt, clip.actions, clip.seed, frames);
    for (int64_t f = 0; f < frames; ++f) clip.world.push_back(world_frame(truth, f));
    set.push_back(std::move(clip));
  }

  std::vector<PolicyResult> results;
  for (size_t i = 0; i < policies.size(); ++i) {
    const std::string& policy = policies[i];
    const bool on_reference_model = results.empty();
    PolicyResult result;
    result.policy = on_reference_model && reference_path != model_path ? policy + " (" + reference_path + ")" : policy;
    double seconds = 0;
    std::fprintf(stderr, "%s:", policy.c_str());
    for (const Clip& clip : set) {
      SessionOptions o = runs[i];
      o.seed = clip.seed;
      Session session(on_reference_model ? ref_model : model, o, SessionPrompt::from_text(clip.prompt));
      std::vector<RgbFrame> got;
      const std::string actions = world::format_actions(clip.actions);
      const auto start = std::chrono::steady_clock::now();
      for (int64_t chunk = 0; chunk < frames / 3; ++chunk) {
        Chunk out_chunk = session.next_chunk(actions.substr(static_cast<size_t>(chunk * 3), 3), /*commit=*/chunk + 1 < frames / 3);
        for (RgbFrame& f : out_chunk.frames) got.push_back(std::move(f));
      }
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const MemoryStats stats = session.stats();  // the last clip's
      result.kv_density = stats.kv_density;
      result.annsa_density = stats.density;
      result.annsa_recall = stats.recall;
      result.annca_density = stats.cross_density;
      result.annca_recall = stats.cross_recall;
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
     << " | PSNR vs world (dB) | ms / frame (" << (device == Device::CUDA ? "GPU" : "CPU") << ") | TempCache KV density | AnnSA density / recall | AnnCA density / recall |\n"
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
     << (reference_path != model_path ? ", except the reference's, which comes from another model" : "") << ".\nClip 0: \"" << set.front().prompt << "\", actions " << world::format_actions(set.front().actions)
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
