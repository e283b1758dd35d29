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
#include <sstream>

#include <omp.h>

#include "fastar/apps/ann_cli.h"
#include "fastar/apps/args.h"
#include "fastar/apps/bench_rollout.h"
#include "fastar/apps/commands.h"
#include "fastar/attention/ann_cross_attention.h"
#include "fastar/attention/ann_self_attention.h"
#include "fastar/attention/arl2_hybrid_memory.h"
#include "fastar/attention/kv_policies.h"
#include "fastar/attention/sparse_schedule.h"
#include "fastar/attention/tempcache_memory.h"
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
    {"policy", "LIST", "comma-separated policies: dense, window, tempcache, tempcache+window, arl2, arl2+window; each may add +annca, and all but arl2's +annsa (FAST-AR in full: tempcache+window+annsa+annca)", "dense,window"},
    {"tempcache-threshold", "T", "tempcache: merge when cosine >= T", "0.9"},
    {"ann", "lsh|quant", "tempcache: nearest-neighbour back end", "lsh"},
    {"tempcache-capacity", "N", "tempcache on the GPU: representatives per layer and head to preallocate", "enough for the run"},
    {"hybrid-layers", "A-B", "arl2 with --shape or a model without hybrid layers: the layers made hybrid (random weights)",
     "the first 22 of 30 (ARL²'s 75%), or the first 3/4 of the layers"},
    {"window", "W", "window policy: recent latent frames kept", "9"},
    {"sink", "S", "window policy: first latent frames kept", "3"},
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

// bench rollout's options + AnnSA's (--annsa-bits, --annsa-own-keys, --annsa-blocks, … for the +annsa policies).
std::vector<OptionSpec> bench_rollout_specs() {
  std::vector<OptionSpec> specs = kOwnSpecs;
  for (const OptionSpec& spec : annsa_option_specs()) specs.push_back(spec);
  return specs;
}

struct PolicyRun {
  std::string policy;
  std::vector<ChunkSample> samples;
  int64_t latent_frames_possible = 0;  // < asked when the policy ran out of memory
};

int64_t resident_bytes() {
  long pages = 0, resident = 0;
  std::ifstream statm("/proc/self/statm");
  statm >> pages >> resident;
  return static_cast<int64_t>(resident) * sysconf(_SC_PAGESIZE);
}

int64_t peak_resident_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}


// A bench policy name: base (dense | window | tempcache | arl2), whether "+window" bounds it, and the
// ANN modules on top with their defaults: "+annsa" (AnnSA around the cache) and/or "+annca" (AnnCA).
struct BenchPolicy {
  std::string base;
  bool windowed = false;
  bool annsa = false, annca = false;
};

BenchPolicy parse_bench_policy(const std::string& full_name) {
  BenchPolicy p;
  std::string name = full_name;
  for (bool stripped = true; stripped;) {  // the modules, in either order
    stripped = false;
    if (!p.annsa && strip_suffix(name, "+annsa")) stripped = p.annsa = true;
    if (!p.annca && strip_suffix(name, "+annca")) stripped = p.annca = true;
  }
  const size_t plus = name.find('+');
  p.base = name.substr(0, plus);
  if (plus != std::string::npos) {
    FASTAR_CHECK(name.substr(plus) == "+window" && (p.base == "tempcache" || p.base == "arl2"),
                 "fastar bench rollout: unknown policy '" << name << "'; choose from dense, window, tempcache, "
                                                           "tempcache+window, arl2, arl2+window");
    p.windowed = true;
  }
  FASTAR_CHECK(p.base == "dense" || p.base == "window" || p.base == "tempcache" || p.base == "arl2",
               "fastar bench rollout: unknown policy '" << name << "'; choose from dense, window, tempcache, tempcache+window, "
                                                         "arl2, arl2+window");
  p.windowed = p.windowed || p.base == "window";
  return p;
}

TempCacheOptions bench_tempcache_options(const Args& args) {
  TempCacheOptions options;
  options.threshold = static_cast<float>(args.get_double("tempcache-threshold", 0.9));
  const std::string ann = args.get("ann", "lsh");
  FASTAR_CHECK(ann == "lsh" || ann == "quant", "fastar bench rollout: --ann must be lsh or quant, got '" << ann << "'");
  options.ann = ann == "lsh" ? AnnBackend::lsh : AnnBackend::quant;
  options.validate();
  return options;
}

// The ANN modules' defaults in the benchmark: FAST-AR's (LSH, the first 30% of the steps dense) on the
// model's measured layers (config.json fastar_defaults.ann_layers), else every layer.
SparseSchedule bench_ann_schedule(const WanConfig& c, const RolloutConfig& rollout_config) {
  return ann_schedule(c, rollout_config.schedule.timesteps(), 0.3, "");
}

std::unique_ptr<CrossFrameMemory> make_cpu_memory(const BenchPolicy& policy, const WanModel& model, int64_t window,
                                                  int64_t sink, const TempCacheOptions& tempcache) {
  const WanConfig& c = model.config();
  auto base_cache = [&](bool windowed) -> std::unique_ptr<CrossFrameMemory> {
    if (windowed) return std::make_unique<WindowMemory>(c.num_layers, c.num_heads, c.head_dim(), window, sink);
    return std::make_unique<DenseMemory>(c.num_layers, c.num_heads, c.head_dim());
  };
  if (policy.base == "dense" || policy.base == "window") return base_cache(policy.windowed);
  if (policy.base == "arl2") return std::make_unique<Arl2HybridMemory>(c, model.weights(), base_cache(policy.windowed));
  TempCacheOptions options = tempcache;
  if (policy.windowed) {
    options.window = window;
    options.sink = sink;
  }
  return std::make_unique<TempCacheMemory>(c.num_layers, c.num_heads, c.head_dim(), options);
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
  const std::string device = args.get("device", "cpu");
  FASTAR_CHECK(device == "cpu" || device == "cuda", "fastar bench rollout: unknown --device '" << device << "'; choose cpu or cuda");
#ifndef FASTAR_HAVE_CUDA
  FASTAR_CHECK(device == "cpu", "fastar bench rollout: --device cuda needs a build with the CUDA backend");
#endif
  if (args.has("threads")) omp_set_num_threads(static_cast<int>(args.get_int("threads", 1, 1, 4096)));

  // Model: a checkpoint, or a published shape with random weights.
  std::unique_ptr<WanModel> model;
  std::string model_name;
  std::string model_path;  // empty with --shape
  if (args.has("shape")) {
    FASTAR_CHECK(!args.has("model"), "fastar bench rollout: give --model or --shape, not both");
    const std::string shape = args.get("shape", "");
    FASTAR_CHECK(shape == "wan2.1-1.3b", "fastar bench rollout: unknown --shape '" << shape << "'; known: wan2.1-1.3b");
    const std::string config_path = std::string(FASTAR_CONFIG_DIR) + "/wan2.1-t2v-1.3b/config.json";
    const WanConfig config = WanConfig::load(config_path);
    std::fprintf(stderr, "generating random weights for %s ...\n", config_path.c_str());
    model = std::make_unique<WanModel>(config, random_wan_weights(config, static_cast<uint64_t>(args.get_int("random-weights", 0, 0, INT64_MAX))));
    model_name = "Wan2.1-1.3B shapes, random weights";
  } else {
    const std::string path = args.get("model", FASTAR_DEFAULT_MODEL);
    model_path = path;
    if (args.has("random-weights")) {
      std::string config_path = path;
      if (std::filesystem::is_directory(path)) config_path = locate_model_files(path).config;
      const WanConfig config = WanConfig::load(config_path);
      model = std::make_unique<WanModel>(config, random_wan_weights(config, static_cast<uint64_t>(args.get_int("random-weights", 0, 0, INT64_MAX))));
      model_name = path + " (random weights)";
    } else {
      model = std::make_unique<WanModel>(WanModel::load(path));
      model_name = path;
    }
  }
  const WanConfig& c = model->config();

  RolloutConfig rollout_config;
  rollout_config.schedule.frames_per_chunk = args.get_int("chunk-frames", 3, 1, 1024);
  rollout_config.schedule.denoising_steps = SelfForcingSchedule::parse_steps(args.get("steps", "1000,750,500,250"));
  rollout_config.latent_height = c.latent_height;
  rollout_config.latent_width = c.latent_width;
  if (args.has("latent-size"))
    parse_latent_size("fastar bench rollout", args.get("latent-size", ""), &rollout_config.latent_height,
                      &rollout_config.latent_width);
  rollout_config.schedule.validate();
  validate_rollout_config(c, rollout_config);
  const int64_t chunk_latent = rollout_config.schedule.frames_per_chunk;
  const int64_t frames = args.get_int("frames", 30, 1, INT64_MAX / 8);
  const int64_t chunks = (frames + chunk_latent - 1) / chunk_latent;
  const int64_t window = args.get_int("window", 9, 0, INT64_MAX), sink = args.get_int("sink", 3, 0, INT64_MAX);
  const std::vector<std::string> policies = split_list(args.get("policy", "dense,window"));
  FASTAR_CHECK(!policies.empty(), "fastar bench rollout: --policy needs at least one policy");
  // Every policy name is checked before the first rollout (a long run must not fail on its last policy).
  bool any_annsa = false;
  for (const std::string& policy : policies) {
    const BenchPolicy bp = parse_bench_policy(policy);
    FASTAR_CHECK(!bp.annsa || bp.base != "arl2", "fastar bench rollout: annsa wraps dense, window or tempcache, not arl2");
    any_annsa |= bp.annsa;
  }
  for (const OptionSpec& spec : annsa_option_specs())
    FASTAR_CHECK(any_annsa || !args.has(spec.name), "fastar bench rollout: --" << spec.name << " applies only to a +annsa policy");
  AnnSaOptions annsa_options = annsa_options_from_args(args, device);
  FASTAR_CHECK(annsa_options.buckets == AnnSaBuckets::lsh,
               "fastar bench rollout: --annsa-buckets prompt needs AnnCA's prompt board; use fastar generate for it");
  const SparseSchedule ann_sparse_schedule = bench_ann_schedule(c, rollout_config);  // AnnSA's and AnnCA's
  annsa_options.schedule = ann_sparse_schedule;
  const int64_t report_every = args.get_int("report-every", 10, 0, INT64_MAX);
  // A pixel-space model (RGB in, no VAE: the world model) outputs one frame per latent frame; a Wan
  // latent becomes 4 video frames (the first 1).
  const int64_t frames_per_latent = c.in_dim == 3 ? 1 : 4;
  std::ostringstream header;
  header << "fastar bench rollout — " << model_name << ", latent " << rollout_config.latent_height << "x"
         << rollout_config.latent_width << ", " << chunk_latent << " latent frames per chunk, "
         << rollout_config.schedule.denoising_steps.size() << " steps + clean pass, device " << device;

  // Prompt: a model with its own text encoder (the world model) encodes a real prompt (its attention
  // then has the structure TempCache and AnnSA exploit); other models get a seeded random embedding of
  // --prompt-rows real rows followed by zero padding, the shape of a umT5 prompt (AnnCA selects among the
  // real rows; 0 = the all-zero embedding, on which AnnCA runs dense).
  const bool own_text_encoder = !model_path.empty() && TextEncoder::available(model_path);
  FASTAR_CHECK(!args.has("prompt") || own_text_encoder,
               "fastar bench rollout: --prompt needs a model with its own text encoder (the world model)");
  FASTAR_CHECK(!args.has("prompt-rows") || !own_text_encoder,
               "fastar bench rollout: --prompt-rows is for models without a text encoder; this one encodes --prompt");
  Tensor context = Tensor::zeros({c.text_len, c.text_dim});
  if (!own_text_encoder) {
    const int64_t real_rows = std::min(args.get_int("prompt-rows", 60, 0, INT64_MAX), c.text_len);
    gaussian_noise(context.data<float>(), real_rows * c.text_dim, 0x9e0, 0);
    std::fprintf(stderr, "prompt: a random embedding of %lld real rows + %lld padding rows\n",
                 static_cast<long long>(real_rows), static_cast<long long>(c.text_len - real_rows));
  } else {
    const std::string text = args.get("prompt", "a red circle bounces . a blue square drifts left .");
    context = TextEncoder::load(model_path).encode(text);
    std::fprintf(stderr, "prompt: \"%s\"\n", text.c_str());
  }
  const WanPrompt prompt = model->prepare_prompt(context);
  // Actions, per chunk [chunk_latent, action_dim]: world models (5 one-hot actions) get --actions or
  // the training data's random player; other action models all zeros. Every policy gets the same.
  FASTAR_CHECK(!args.has("actions") || c.action_dim == world::kNumActions,
               "fastar bench rollout: --actions needs a model with " << world::kNumActions << " one-hot actions");
  std::vector<Tensor> actions;  // per chunk
  if (c.action_dim > 0)
    actions = world::action_chunks(args.has("actions") ? world::parse_actions(args.get("actions", ""), chunks * chunk_latent)
                                                       : world::sample_actions(1, chunks * chunk_latent),
                                   chunks, chunk_latent, c.action_dim);
  auto chunk_actions = [&](int64_t chunk) -> const Tensor* {
    return actions.empty() ? nullptr : &actions[static_cast<size_t>(chunk)];
  };
  std::vector<PolicyRun> runs;
  const TempCacheOptions tempcache = bench_tempcache_options(args);
  std::unique_ptr<WanModel> hybrid;  // arl2 runs of a model without hybrid layers: the same config made hybrid
  for (const std::string& policy : policies) {
    const BenchPolicy bp = parse_bench_policy(policy);
    const WanModel* run_model = model.get();
    if (bp.base == "arl2" && c.hybrid_layers.empty()) {
      if (!hybrid) {
        WanConfig hc = c;
        hc.hybrid_layers = parse_layer_list(args.get("hybrid-layers", c.num_layers == 30 ? "0-21" : "0-" + std::to_string(c.num_layers * 3 / 4 - 1)),
                                            c.num_layers, "--hybrid-layers");
        if (hc.hybrid_layers.empty())  // "all"
          for (int64_t l = 0; l < c.num_layers; ++l) hc.hybrid_layers.push_back(l);
        std::fprintf(stderr, "arl2: random weights with %zu of %lld layers hybrid\n", hc.hybrid_layers.size(),
                     static_cast<long long>(c.num_layers));
        hybrid = std::make_unique<WanModel>(hc, random_wan_weights(hc, static_cast<uint64_t>(args.get_int("random-weights", 0, 0, INT64_MAX))));
      }
      run_model = hybrid.get();
    }
    FASTAR_CHECK(bp.base == "arl2" || run_model->config().hybrid_layers.empty(),
                 "fastar bench rollout: this model has hybrid layers; only the arl2 policies run it");
    const WanPrompt run_prompt = run_model == model.get() ? prompt : run_model->prepare_prompt(context);
    PolicyRun run;
    run.policy = policy;
    std::fprintf(stderr, "%s: %lld latent frames (%lld video frames) on the %s\n", policy.c_str(),
                 static_cast<long long>(chunks * chunk_latent),
                 static_cast<long long>(video_frames_of(chunks * chunk_latent, frames_per_latent)), device.c_str());
    auto observe = [&](const ChunkSample& sample) {
      ChunkSample s = sample;
      s.video_frames = video_frames_of(s.latent_frames, frames_per_latent);
      s.chunk_video_frames = s.video_frames - video_frames_of(s.latent_frames - chunk_latent, frames_per_latent);
      run.samples.push_back(s);
      if (report_every > 0 && (s.chunk + 1) % report_every == 0 && s.chunk + 1 < chunks) {  // the report so far
        std::vector<PolicyRun> so_far = runs;
        so_far.push_back(run);
        so_far.insert(so_far.end(), baseline.begin(), baseline.end());
        write_report(so_far, header.str() + " (in progress: " + policy + " at chunk " +
                                   std::to_string(s.chunk + 1) + " of " + std::to_string(chunks) + ")");
      }
      if (s.chunk % 10 == 0 || s.chunk + 1 == chunks)
        std::fprintf(stderr, "  %s chunk %lld: video frame %lld, %.1f ms, %.2f frames/s, memory %.2f GB, policy %.3f GB\n",
                     policy.c_str(), static_cast<long long>(s.chunk), static_cast<long long>(s.video_frames),
                     s.ms, chunk_fps(s), s.mem_in_use / 1e9, s.cache_bytes / 1e9);
      return true;
    };
    if (device == "cuda") {
#ifdef FASTAR_HAVE_CUDA
      cuda::CudaPolicySpec spec;
      spec.policy = bp.base;
      if (bp.windowed) {
        spec.window = window;
        spec.sink = sink;
      }
      spec.tempcache = tempcache;
      spec.tempcache_capacity = args.get_int("tempcache-capacity", 0, 0, INT64_MAX);
      if (bp.annsa) {  // --annsa-* (default LSH 2 bits, own keys dense, Hopper blocks 128x128), first 30% of the steps dense
        spec.policy += "+annsa";
        spec.annsa = annsa_options;
      }
      if (bp.annca) {  // AnnCA's defaults: LSH 4 tables x 8 bits, padding as one biased key
        spec.annca = true;
        spec.annca_options.schedule = ann_sparse_schedule;
      }
      run.latent_frames_possible = bench_rollout_cuda(*run_model, run_prompt, rollout_config, spec, chunks, chunk_actions, observe);
#endif
    } else {
      std::unique_ptr<CrossFrameMemory> memory = make_cpu_memory(bp, *run_model, window, sink, tempcache);
      if (bp.annsa)
        memory = std::make_unique<AnnSaMemory>(std::move(memory), c.num_layers, c.num_heads, c.head_dim(), annsa_options, nullptr);
      std::unique_ptr<AnnCrossAttention> annca;
      RolloutConfig run_config = rollout_config;
      if (bp.annca) {
        AnnCaOptions options;
        options.schedule = ann_sparse_schedule;
        annca = std::make_unique<AnnCrossAttention>(c.num_layers, c.num_heads, c.head_dim(), options, nullptr);
        run_config.cross_attention = annca.get();
      }
      SelfForcingRollout rollout(*run_model, *memory, run_prompt, run_config);
      for (int64_t chunk = 0; chunk < chunks; ++chunk) {
        const auto start = std::chrono::steady_clock::now();
        rollout.next_chunk(chunk_actions(chunk), /*commit=*/true);  // every chunk committed (PyTorch's too)
        ChunkSample s;
        s.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        s.chunk = chunk;
        s.latent_frames = (chunk + 1) * chunk_latent;
        s.mem_in_use = resident_bytes();
        s.mem_peak = peak_resident_bytes();
        s.cache_bytes = memory->bytes();
        observe(s);
      }
      run.latent_frames_possible = chunks * chunk_latent;
      if (bp.annsa)
        std::fputs(static_cast<const AnnSaMemory&>(*memory).stats().report("annsa (self-attention):").c_str(), stderr);
      if (annca) std::fputs(annca->stats().report(annca->describe() + ":").c_str(), stderr);
    }
    runs.push_back(std::move(run));
  }

  for (PolicyRun& run : baseline) runs.push_back(std::move(run));
  const std::string summary = write_report(runs, header.str());
  std::fputs(summary.c_str(), stdout);
  std::fprintf(stderr, "wrote %s.csv, %s.svg, %s.md\n", out.c_str(), out.c_str(), out.c_str());
  return 0;
}

}  // namespace fastar::app
