// fastar bench rollout: rolls out with each policy and no output sink, recording per chunk the wall
// time, frames per second, memory in use and its peak, and the policy's memory; writes a CSV, an
// SVG plot (frames/s and memory against the video frame index, one line per policy) and a
// markdown summary (issue 9; docs/results.md).
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <iomanip>
#include <optional>
#include <sstream>

#include <omp.h>

#include "fastar/apps/args.h"
#include "fastar/apps/bench_rollout.h"
#include "fastar/apps/commands.h"
#include "fastar/apps/session_cli.h"
#include "fastar/attention/sparse_schedule.h"
#include "fastar/rollout/schedule.h"
#include "fastar/core/atomic_file.h"
#include "fastar/core/error.h"
#include "fastar/core/text.h"
#include "fastar/model/text_encoder.h"
#include "fastar/model/wan_weights.h"
#include "fastar/rollout/noise.h"
#include "fastar/world/actions.h"

#ifndef FASTAR_DEFAULT_MODEL
#define FASTAR_DEFAULT_MODEL ""
#endif
#ifndef FASTAR_CONFIG_DIR
#define FASTAR_CONFIG_DIR ""
#endif

namespace fastar::app {

namespace {

const std::vector<OptionSpec> kOwnSpecs = {
    {"model", "PATH", "model folder (config.json + safetensors)", "the model shipped with fastar"},
    {"shape", "NAME", "a published model's shapes with random weights instead of --model: wan2.1-1.3b", ""},
    {"random-weights", "SEED", "random weights for the model's config", "0 with --shape"},
    {"prompt", "TEXT", "models with their own text encoder (the world model): the prompt",
     "\"a red circle bounces . a blue square drifts left .\" (other models: --prompt-rows)"},
    {"prompt-rows", "N", "models without a text encoder: real rows of the random prompt embedding (the rest zero padding, as umT5's)",
     "60"},
    {"actions", "STR", "world models: per-frame actions (. U D L R, rest none)",
     "the training data's random player (runs of 2-8 frames, seed 1)"},
    {"frames", "N", "latent frames to roll out per policy (video frames = 1 + 4·(N − 1))", "30"},
    {"policy", "LIST", "comma-separated policies: dense, window, tempcache, tempcache+window, arl2, arl2+window; each may add +annca, and all but arl2's +annsa (FAST-AR in full: tempcache+window+annsa+annca); the window's size: --window/--sink, else the model's fastar_defaults, else 9 + sink 3", "dense,window"},
    {"hybrid-layers", "A-B", "arl2 with --shape or a model without hybrid layers: the layers made hybrid (random weights)",
     "the first 22 of 30 (ARL²'s 75%), or the first 3/4 of the layers"},
    {"device", "NAME", "cpu | cuda", "cpu"},
    {"latent-size", "HxW", "latent frame size", "from the model config"},
    {"chunk-frames", "F", "latent frames per chunk", "3"},
    {"steps", "LIST", "denoising steps", "1000,750,500,250"},
    {"out", "PREFIX", "writes PREFIX.csv, PREFIX.svg and PREFIX.md", "bench-rollout"},
    {"baseline-csv", "FILE", "also plot and tabulate the runs of a CSV in this format (tools/bench_torch_rollout.py)", ""},
    {"report-every", "N", "rewrite the report every N chunks, so that a run stopped early still leaves one (0: at the end only)", "10"},
    {"from-csv", "LIST", "no rollout: rewrite the report (plot, table) from these CSVs of earlier runs", ""},
    {"threads", "N", "CPU threads", "all cores"},
};

// bench rollout's options + the policies' (each applies to the policies of --policy it concerns).
std::vector<OptionSpec> bench_rollout_specs() {
  std::vector<OptionSpec> specs = kOwnSpecs;
  for (const OptionSpec& spec : policy_option_specs()) specs.push_back(spec);
  return specs;
}

struct PolicyRun {
  std::string policy;
  std::vector<ChunkSample> samples;
  int64_t latent_frames_possible = 0;  // < asked when the policy ran out of memory
};

int64_t peak_resident_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}


// Video frames per second of a chunk: the chunk's new video frames over its wall time.
double chunk_fps(const ChunkSample& s) {
  return static_cast<double>(s.chunk_video_frames) / (s.ms / 1000.0);
}

// The sample of the chunk that generated video frame `frame`; a run that ended less than one chunk
// short of it (750 latent frames are 2997 video frames) gives its last chunk; nullptr when it ended earlier.
const ChunkSample* sample_at(const PolicyRun& run, int64_t frame) {
  for (const ChunkSample& s : run.samples)
    if (s.video_frames >= frame) return &s;
  if (!run.samples.empty() && run.samples.back().video_frames + std::max<int64_t>(run.samples.back().chunk_video_frames, 1) > frame)
    return &run.samples.back();
  return nullptr;
}

std::string csv_of(const std::vector<PolicyRun>& runs) {
  std::ostringstream out;
  out << "policy,chunk,latent_frames,video_frames,chunk_ms,video_fps,mem_in_use_bytes,mem_peak_bytes,cache_bytes\n";
  for (const PolicyRun& run : runs)
    for (const ChunkSample& s : run.samples)
      out << run.policy << ',' << s.chunk << ',' << s.latent_frames << ',' << s.video_frames << ','
          << s.ms << ',' << chunk_fps(s) << ',' << s.mem_in_use << ',' << s.mem_peak << ',' << s.cache_bytes
          << '\n';
  return out.str();
}

// Two stacked line plots: video frames/s and memory in use (GB) against the video frame index.
std::string svg_of(const std::vector<PolicyRun>& runs, const std::string& title) {
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};
  const double width = 760, panel = 260, left = 70, right = 180, top = 40, gap = 60;
  double max_x = 1, max_fps = 1e-9, max_mem = 1e-9;
  for (const PolicyRun& run : runs)
    for (const ChunkSample& s : run.samples) {
      max_x = std::max<double>(max_x, static_cast<double>(s.video_frames));
      max_fps = std::max(max_fps, chunk_fps(s));
      max_mem = std::max(max_mem, s.mem_in_use / 1e9);
    }
  std::ostringstream out;
  const double height = top + 2 * panel + gap + 50;
  out << "<svg xmlns='http://www.w3.org/2000/svg' width='" << width << "' height='" << height
      << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n";
  out << "<text x='" << left << "' y='20' font-size='14'>" << title << "</text>\n";
  auto panel_of = [&](double y0, double max_y, const std::string& label, auto value) {
    const double plot_w = width - left - right;
    out << "<rect x='" << left << "' y='" << y0 << "' width='" << plot_w << "' height='" << panel
        << "' fill='none' stroke='#444'/>\n";
    for (int i = 0; i <= 4; ++i) {
      const double y = y0 + panel - panel * i / 4.0;
      out << "<line x1='" << left << "' x2='" << left + plot_w << "' y1='" << y << "' y2='" << y
          << "' stroke='#ddd'/><text x='" << left - 6 << "' y='" << y + 4 << "' text-anchor='end'>" << std::setprecision(3)
          << max_y * i / 4.0 << "</text>\n";
    }
    for (int i = 0; i <= 4; ++i) {
      const double x = left + plot_w * i / 4.0;
      out << "<text x='" << x << "' y='" << y0 + panel + 16 << "' text-anchor='middle'>"
          << static_cast<int64_t>(max_x * i / 4.0) << "</text>\n";
    }
    out << "<text x='" << 16 << "' y='" << y0 + panel / 2 << "' transform='rotate(-90 16 " << y0 + panel / 2
        << ")' text-anchor='middle'>" << label << "</text>\n";
    for (size_t r = 0; r < runs.size(); ++r) {
      out << "<polyline fill='none' stroke-width='1.5' stroke='" << colors[r % 8] << "' points='";
      for (const ChunkSample& s : runs[r].samples)
        out << left + plot_w * static_cast<double>(s.video_frames) / max_x << ','
            << y0 + panel - panel * std::min(1.0, value(s) / max_y) << ' ';
      out << "'/>\n";
    }
  };
  panel_of(top, max_fps * 1.1, "video frames / s", [&](const ChunkSample& s) { return chunk_fps(s); });
  panel_of(top + panel + gap, max_mem * 1.1, "memory in use (GB)", [&](const ChunkSample& s) { return s.mem_in_use / 1e9; });
  out << "<text x='" << left + (width - left - right) / 2 << "' y='" << height - 8
      << "' text-anchor='middle'>video frame (Wan VAE: 1 + 4 per latent frame after the first; pixel-space models: the frame)</text>\n";
  for (size_t r = 0; r < runs.size(); ++r)
    out << "<rect x='" << width - right + 15 << "' y='" << top + 10 + 20 * r << "' width='14' height='3' fill='"
        << colors[r % 8] << "'/><text x='" << width - right + 35 << "' y='" << top + 15 + 20 * r << "'>" << runs[r].policy
        << "</text>\n";
  out << "</svg>\n";
  return out.str();
}

std::string markdown_of(const std::vector<PolicyRun>& runs, const std::string& header) {
  std::ostringstream out;
  out << header << "\n\n";
  out << "| policy | video frames reached | frames/s at 100 | at 1000 | at 3000 | peak memory GB | policy memory GB (last) |"
         " speed-up over dense | speed-up over PyTorch dense |\n|---|---|---|---|---|---|---|---|---|\n";
  const PolicyRun *dense = nullptr, *torch = nullptr;
  for (const PolicyRun& run : runs) {
    if (run.policy == "dense") dense = &run;
    if (!torch && run.policy.rfind("pytorch-dense", 0) == 0) torch = &run;
  }
  // Ratio of chunk times at the deepest frame index both runs sampled (runs rebuilt from logs may hold
  // every 10th chunk only, so samples are matched by frame index, not by position).
  auto speedup = [](const PolicyRun* base, const PolicyRun& run) -> std::string {
    if (!base || base == &run) return " — |";
    for (auto r = run.samples.rbegin(); r != run.samples.rend(); ++r)
      for (const ChunkSample& b : base->samples)
        if (b.latent_frames == r->latent_frames) {
          char cell[96];
          std::snprintf(cell, sizeof cell, " ×%.2f at video frame %lld |", b.ms / r->ms,
                        static_cast<long long>(r->video_frames));
          return cell;
        }
    return " — |";
  };
  for (const PolicyRun& run : runs) {
    if (run.samples.empty()) continue;
    const ChunkSample& last = run.samples.back();
    out << "| " << run.policy << " | " << last.video_frames << " |";
    for (int64_t frame : {100, 1000, 3000}) {
      const ChunkSample* s = sample_at(run, frame);
      char cell[48];
      const int64_t at = s ? s->video_frames : 0;
      if (!s) std::snprintf(cell, sizeof cell, " — |");
      else if (at >= frame && at - frame < std::max<int64_t>(s->chunk_video_frames, 1)) std::snprintf(cell, sizeof cell, " %.2f |", chunk_fps(*s));
      else std::snprintf(cell, sizeof cell, " %.2f (at %lld) |", chunk_fps(*s), static_cast<long long>(at));  // sparse samples, or short of it
      out << cell;
    }
    char cell[128];
    std::snprintf(cell, sizeof cell, " %.2f | %.3f |", last.mem_peak / 1e9, last.cache_bytes / 1e9);
    out << cell << speedup(dense, run) << speedup(torch, run) << "\n";
  }
  return out.str();
}

// Runs read back from a CSV written in csv_of's format (e.g. by tools/bench_torch_rollout.py).
std::vector<PolicyRun> read_runs_csv(const std::string& path) {
  std::ifstream in(path);
  FASTAR_CHECK(in, path << ": cannot read the baseline CSV");
  std::string line;
  std::getline(in, line);
  FASTAR_CHECK(line.rfind("policy,chunk,latent_frames,video_frames,chunk_ms", 0) == 0,
               path << ": not a bench-rollout CSV (header '" << line << "')");
  std::vector<PolicyRun> runs;
  int64_t row = 1;
  while (std::getline(in, line)) {
    ++row;
    if (line.empty()) continue;
    const std::vector<std::string> cells = split_list(line, ',');
    FASTAR_CHECK(cells.size() == 9, path << ": line " << row << " has " << cells.size() << " fields, expected 9");
    ChunkSample s;
    try {
      s.chunk = std::stoll(cells[1]);
      s.latent_frames = std::stoll(cells[2]);
      s.video_frames = std::stoll(cells[3]);
      s.ms = std::stod(cells[4]);
      s.chunk_video_frames = std::llround(std::stod(cells[5]) * s.ms / 1000.0);  // video_fps × chunk seconds
      s.mem_in_use = std::stoll(cells[6]);
      s.mem_peak = std::stoll(cells[7]);
      s.cache_bytes = std::stoll(cells[8]);
    } catch (const std::exception&) {
      FASTAR_FAIL(path << ": line " << row << " has a malformed number");
    }
    if (runs.empty() || runs.back().policy != cells[0]) runs.push_back(PolicyRun{cells[0], {}, 0});
    runs.back().samples.push_back(s);
  }
  return runs;
}

}  // namespace

int run_bench_rollout(int argc, char** argv) {
  const std::vector<OptionSpec> specs = bench_rollout_specs();
  Args args("bench rollout", specs, argc, argv);
  if (args.help()) {
    std::fputs(format_help("fastar bench rollout [--model PATH | --shape wan2.1-1.3b] --frames N --policy dense,window "
                           "[--device cpu|cuda] [--out PREFIX]",
                           "Rolls out with each policy (Self-Forcing schedule, no output sink) and records per chunk\n"
                           "the wall time, video frames/s, memory in use and peak, and the policy's memory. Writes\n"
                           "PREFIX.csv, PREFIX.svg (frames/s and memory against the frame index) and PREFIX.md.",
                           specs)
                   .c_str(),
               stdout);
    return 0;
  }
  FASTAR_CHECK(args.positional().empty(), "fastar bench rollout: unexpected argument '" << args.positional()[0] << "'");
  const std::string out = args.get("out", "bench-rollout");
  // Writes PREFIX.csv/.svg/.md for `runs` (atomically: a reader never sees half a report).
  auto write_report = [&](const std::vector<PolicyRun>& runs, const std::string& header) {
    write_file_atomically(out + ".csv", csv_of(runs));
    write_file_atomically(out + ".svg", svg_of(runs, header));
    const std::string summary = markdown_of(runs, header);
    write_file_atomically(out + ".md", summary);
    return summary;
  };
  std::vector<PolicyRun> baseline;
  if (args.has("baseline-csv")) baseline = read_runs_csv(args.get("baseline-csv", ""));
  if (args.has("from-csv")) {  // re-plot earlier runs, no model
    std::vector<PolicyRun> runs;
    std::string sources;
    for (const std::string& path : split_list(args.get("from-csv", ""))) {
      for (PolicyRun& run : read_runs_csv(path)) runs.push_back(std::move(run));
      sources += (sources.empty() ? "" : ", ") + path;
    }
    for (PolicyRun& run : baseline) runs.push_back(std::move(run));
    FASTAR_CHECK(!runs.empty(), "fastar bench rollout: --from-csv: no runs in " << sources);
    const std::string summary = write_report(runs, "fastar bench rollout — from " + sources);
    std::fputs(summary.c_str(), stdout);
    std::fprintf(stderr, "wrote %s.csv, %s.svg, %s.md\n", out.c_str(), out.c_str(), out.c_str());
    return 0;
  }
  if (args.has("threads")) omp_set_num_threads(static_cast<int>(args.get_int("threads", 1, 1, 4096)));
  parse_device(args.get("device", "cpu"), "fastar bench rollout");

  // Model: a checkpoint, or a published shape with random weights.
  std::shared_ptr<const LoadedModel> model;
  std::string model_name;
  const std::optional<uint64_t> random_seed =
      args.has("random-weights") || args.has("shape")
          ? std::optional<uint64_t>(static_cast<uint64_t>(args.get_int("random-weights", 0, 0, INT64_MAX)))
          : std::nullopt;
  if (args.has("shape")) {
    FASTAR_CHECK(!args.has("model"), "fastar bench rollout: give --model or --shape, not both");
    const std::string shape = args.get("shape", "");
    FASTAR_CHECK(shape == "wan2.1-1.3b", "fastar bench rollout: unknown --shape '" << shape << "'; known: wan2.1-1.3b");
    const std::string config_path = std::string(FASTAR_CONFIG_DIR) + "/wan2.1-t2v-1.3b/config.json";
    std::fprintf(stderr, "generating random weights for %s ...\n", config_path.c_str());
    model = LoadedModel::load(config_path, random_seed);
    model_name = "Wan2.1-1.3B shapes, random weights";
  } else {
    const std::string path = args.get("model", FASTAR_DEFAULT_MODEL);
    model = LoadedModel::load(path, random_seed);
    model_name = random_seed ? path + " (random weights)" : path;
  }
  const WanConfig& c = model->config();
  const std::string who = "fastar bench rollout";
  SessionOptions base_options = session_options_from_args(args, who);
  FASTAR_CHECK(base_options.schedule == "self-forcing", who << ": measures the self-forcing schedule");
  const int64_t chunk_latent = base_options.chunk_frames;
  const int64_t frames = args.get_int("frames", 30, 1, INT64_MAX / 8);
  const int64_t chunks = (frames + chunk_latent - 1) / chunk_latent;
  base_options.frames = chunks * chunk_latent;
  base_options.fit_to_memory = true;  // dense on the GPU: run as far as its cache fits
  const std::vector<std::string> policies = split_list(args.get("policy", "dense,window"));
  FASTAR_CHECK(!policies.empty(), who << ": --policy needs at least one policy");
  // Every policy is resolved before the first rollout (a long run must not fail on its last policy).
  std::vector<SessionOptions> policy_options;
  for (const std::string& policy : policies) {
    SessionOptions o = base_options;
    o.policy = policy;
    o.policy_options = options_for(parse_policy_name(policy, who), args.values());
    WanConfig check_config = c;
    if (parse_policy_name(policy, who).base == "arl2" && c.hybrid_layers.empty()) check_config.hybrid_layers = {0};
    resolve_policy(policy, o.policy_options, check_config, SelfForcingSchedule().timesteps(), o.device, who);
    policy_options.push_back(o);
  }
  for (const auto& [option, value] : args.values()) {
    if (!is_policy_option(option)) continue;
    bool used = false;
    for (const SessionOptions& o : policy_options) used |= o.policy_options.count(option) > 0;
    FASTAR_CHECK(used, who << ": --" << option << " applies to none of --policy " << args.get("policy", "dense,window")
                           << (option.rfind("annsa-", 0) == 0 ? " (it applies only to a +annsa policy)" : ""));
  }
  const int64_t report_every = args.get_int("report-every", 10, 0, INT64_MAX);
  // A pixel-space model (RGB in, no VAE: the world model) outputs one frame per latent frame; a Wan
  // latent becomes 4 video frames (the first 1).
  const int64_t frames_per_latent = c.in_dim == 3 ? 1 : 4;
  std::ostringstream header;
  header << "fastar bench rollout — " << model_name << ", latent "
         << (base_options.latent_height > 0 ? base_options.latent_height : c.latent_height) << "x"
         << (base_options.latent_width > 0 ? base_options.latent_width : c.latent_width) << ", " << chunk_latent
         << " latent frames per chunk, "
         << (base_options.steps.empty() ? SelfForcingSchedule().denoising_steps.size() : base_options.steps.size())
         << " steps + clean pass, device " << device_name(base_options.device);

  // Prompt: a model with its own text encoder (the world model) encodes a real prompt (its attention
  // then has the structure TempCache and AnnSA exploit); other models get a seeded random embedding of
  // --prompt-rows real rows followed by zero padding, the shape of a umT5 prompt (AnnCA selects among the
  // real rows; 0 = the all-zero embedding, on which AnnCA runs dense).
  const bool own_text_encoder = model->has_text_encoder() && !args.has("shape");
  FASTAR_CHECK(!args.has("prompt") || own_text_encoder, who << ": --prompt needs a model with its own text encoder (the world model)");
  FASTAR_CHECK(!args.has("prompt-rows") || !own_text_encoder,
               who << ": --prompt-rows is for models without a text encoder; this one encodes --prompt");
  SessionPrompt prompt;
  if (!own_text_encoder) {
    Tensor context = Tensor::zeros({c.text_len, c.text_dim});
    const int64_t real_rows = std::min(args.get_int("prompt-rows", 60, 0, INT64_MAX), c.text_len);
    gaussian_noise(context.data<float>(), real_rows * c.text_dim, 0x9e0, 0);
    std::fprintf(stderr, "prompt: a random embedding of %lld real rows + %lld padding rows\n",
                 static_cast<long long>(real_rows), static_cast<long long>(c.text_len - real_rows));
    prompt = SessionPrompt::from_embeds(context, "the random prompt embedding");
  } else {
    const std::string text = args.get("prompt", "a red circle bounces . a blue square drifts left .");
    std::fprintf(stderr, "prompt: \"%s\"\n", text.c_str());
    prompt = SessionPrompt::from_text(text);
  }
  // Actions: world models (5 one-hot actions) get --actions or the training data's random player;
  // other action models the default (zeros). Every policy gets the same.
  FASTAR_CHECK(!args.has("actions") || c.action_dim == world::kNumActions,
               who << ": --actions needs a model with " << world::kNumActions << " one-hot actions");
  std::string actions;
  if (c.action_dim == world::kNumActions)
    actions = args.has("actions") ? args.get("actions", "")
                                  : world::format_actions(world::sample_actions(1, chunks * chunk_latent));
  if (!actions.empty()) world::parse_actions(actions, chunks * chunk_latent);  // checked now
  std::vector<PolicyRun> runs;
  std::shared_ptr<const LoadedModel> hybrid;  // arl2 runs of a model without hybrid layers: the same config made hybrid
  for (size_t p = 0; p < policies.size(); ++p) {
    const std::string& policy = policies[p];
    std::shared_ptr<const LoadedModel> run_model = model;
    if (parse_policy_name(policy, who).base == "arl2" && c.hybrid_layers.empty()) {
      if (!hybrid) {
        WanConfig hc = c;
        hc.hybrid_layers = parse_layer_list(args.get("hybrid-layers", c.num_layers == 30 ? "0-21" : "0-" + std::to_string(c.num_layers * 3 / 4 - 1)),
                                            c.num_layers, "--hybrid-layers");
        if (hc.hybrid_layers.empty())  // "all"
          for (int64_t l = 0; l < c.num_layers; ++l) hc.hybrid_layers.push_back(l);
        std::fprintf(stderr, "arl2: random weights with %zu of %lld layers hybrid\n", hc.hybrid_layers.size(),
                     static_cast<long long>(c.num_layers));
        hybrid = LoadedModel::from(WanModel(hc, random_wan_weights(hc, static_cast<uint64_t>(args.get_int("random-weights", 0, 0, INT64_MAX)))),
                                   model_name + " made hybrid");
      }
      run_model = hybrid;
    }
    FASTAR_CHECK(parse_policy_name(policy, who).base == "arl2" || run_model->config().hybrid_layers.empty(),
                 who << ": this model has hybrid layers; only the arl2 policies run it");
    PolicyRun run;
    run.policy = policy;
    Session session(run_model, policy_options[p], prompt);
    std::fprintf(stderr, "%s: %lld latent frames (%lld video frames); %s\n", policy.c_str(),
                 static_cast<long long>(chunks * chunk_latent),
                 static_cast<long long>(video_frames_of(chunks * chunk_latent, frames_per_latent)), session.describe().c_str());
    int64_t ran_chunks = chunks;
    if (session.frame_capacity() >= 0) ran_chunks = std::min(chunks, session.frame_capacity() / chunk_latent);
    int64_t peak = 0;
    for (int64_t chunk = 0; chunk < ran_chunks; ++chunk) {
      const std::string chunk_actions =
          static_cast<int64_t>(actions.size()) > chunk * chunk_latent ? actions.substr(static_cast<size_t>(chunk * chunk_latent), static_cast<size_t>(chunk_latent)) : "";
      const Chunk out = c.action_dim == world::kNumActions ? session.next_chunk(chunk_actions, /*commit=*/true)
                                                           : session.next_chunk(nullptr, /*commit=*/true);  // every chunk committed (PyTorch's too)
      ChunkSample s;
      s.ms = out.ms;
      s.chunk = chunk;
      s.latent_frames = (chunk + 1) * chunk_latent;
      s.mem_in_use = session.memory_in_use();
      peak = std::max(peak, s.mem_in_use);
      s.mem_peak = base_options.device == Device::CPU ? std::max(peak, peak_resident_bytes()) : peak;
      s.cache_bytes = out.stats.bytes;
      s.video_frames = video_frames_of(s.latent_frames, frames_per_latent);
      s.chunk_video_frames = s.video_frames - video_frames_of(s.latent_frames - chunk_latent, frames_per_latent);
      run.samples.push_back(s);
      if (report_every > 0 && (s.chunk + 1) % report_every == 0 && s.chunk + 1 < chunks) {  // the report so far
        std::vector<PolicyRun> so_far = runs;
        so_far.push_back(run);
        so_far.insert(so_far.end(), baseline.begin(), baseline.end());
        write_report(so_far, header.str() + " (in progress: " + policy + " at chunk " + std::to_string(s.chunk + 1) + " of " +
                                 std::to_string(chunks) + ")");
      }
      if (s.chunk % 10 == 0 || s.chunk + 1 == chunks)
        std::fprintf(stderr, "  %s chunk %lld: video frame %lld, %.1f ms, %.2f frames/s, memory %.2f GB, policy %.3f GB\n",
                     policy.c_str(), static_cast<long long>(s.chunk), static_cast<long long>(s.video_frames), s.ms, chunk_fps(s),
                     s.mem_in_use / 1e9, s.cache_bytes / 1e9);
    }
    run.latent_frames_possible = ran_chunks * chunk_latent;
    std::fputs(session.report().c_str(), stderr);
    runs.push_back(std::move(run));
  }

  for (PolicyRun& run : baseline) runs.push_back(std::move(run));
  const std::string summary = write_report(runs, header.str());
  std::fputs(summary.c_str(), stdout);
  std::fprintf(stderr, "wrote %s.csv, %s.svg, %s.md\n", out.c_str(), out.c_str(), out.c_str());
  return 0;
}

}  // namespace fastar::app
