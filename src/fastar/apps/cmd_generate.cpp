// fastar generate: a loop over the library's Session (session/session.h): open the model with the
// policy the options name, stream chunks into a frame sink, switch prompts where --prompt-schedule
// says, print the policy's report at the end.
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>

#include "fastar/apps/args.h"
#include "fastar/apps/commands.h"
#include "fastar/apps/progress.h"
#include "fastar/apps/session_cli.h"
#include "fastar/core/atomic_file.h"
#include "fastar/core/error.h"
#include "fastar/core/safetensors.h"
#include "fastar/rollout/frame_sink.h"
#include "fastar/world/actions.h"

namespace fastar::app {

namespace {

const std::vector<OptionSpec> kSpecs = {
    {"model", "PATH", "model folder (config.json + safetensors) or weights file", "the model shipped with fastar"},
    {"random-weights", "SEED", "use deterministic random weights for the model's config (benchmarks, smoke tests)", ""},
    {"prompt-embeds", "FILE", "safetensors with the prompt embedding [rows, text_dim] (umT5 output); zero-padded to text_len", "empty prompt (all zeros)"},
    {"prompt", "TEXT", "prompt text, for models with a text encoder: umT5 in the model folder (Wan2.1) or the model's own "
                       "(words of MODEL/vocab.json)", "empty prompt"},
    {"prompt-schedule", "FILE", "prompt switches mid-stream, one per line: FRAME TEXT (latent frame index, then the prompt; "
                                "as LongLive's interactive inference takes them); applied at the first chunk starting at or after FRAME", ""},
    {"prompt-switch", "MODE", "how a scheduled switch treats the cached frames: recache (LongLive: rebuild the memory under the new "
                              "prompt) | recache-keep-sink (the sink's entries stay) | plain (cached entries stay as they are)", "recache"},
    {"actions", "STR", "per-frame actions of action models: . none, U up, D down, L left, R right (rest: none)", "all none"},
    {"frames", "N", "latent frames to generate (rounded up to whole chunks; the first N are written)", "12"},
    {"policy", "NAME", "cross-frame memory: dense | window | tempcache | arl2, optionally +window, +annsa, +annca "
                       "(e.g. tempcache+window+annsa+annca); --window/--sink alone mean +window",
     "the model's fastar_defaults (shipped world model: window, W 9, S 0); arl2 for hybrid models; else dense"},
    {"decoder", "NAME", "how latents become frames: auto (the Wan VAE when the model folder has one, else the tiny decoder, else "
                        "latents) | wan (Wan VAE, streaming: N latent frames give 1 + 4(N-1) video frames) | tiny (taew2_1 / "
                        "lighttaew2_1.safetensors in the folder; same frame count) | latents (pixel models: their "
                        "output; latent models: the latents' first three channels)", "auto"},
    {"out", "DIR|FILE.mp4", "output: a folder of PNG frames or an MP4 file", "out.mp4"},
    {"fps", "N", "frame rate of the MP4", "16"},
    {"threads", "N", "CPU threads", "all cores"},
};

Tensor load_prompt_embedding(const std::string& file) {
  Checkpoint checkpoint = Checkpoint::open(file);
  const std::vector<std::string> names = checkpoint.names();
  std::string name;
  if (checkpoint.find("context")) name = "context";
  else if (names.size() == 1) name = names[0];
  FASTAR_CHECK(!name.empty(), file << ": a prompt-embedding file needs a tensor named 'context' (or exactly one tensor); found "
                                   << names.size() << " tensors");
  Tensor context = checkpoint.tensor(name);
  if (context.dim() == 3 && context.size(0) == 1) context = context.reshape({context.size(1), context.size(2)});
  return context;
}

// --prompt-schedule: "FRAME TEXT" per line (blank lines and lines starting with # skipped).
std::map<int64_t, std::string> read_prompt_schedule(const std::string& path) {
  std::ifstream in(path);
  FASTAR_CHECK(in, "fastar generate: cannot read --prompt-schedule '" << path << "'");
  std::map<int64_t, std::string> out;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    size_t used = 0;
    long long frame = -1;
    try {
      frame = std::stoll(line.substr(first), &used);
    } catch (const std::exception&) {
      used = 0;
    }
    const std::string text = used ? line.substr(first + used) : "";
    const size_t start = text.find_first_not_of(" \t:");
    FASTAR_CHECK(used > 0 && frame >= 0 && start != std::string::npos,
                 path << " line " << number << ": expected 'FRAME TEXT' (a latent frame index >= 0, then the prompt), got '" << line << "'");
    const size_t end = text.find_last_not_of(" \t\r");
    FASTAR_CHECK(!out.count(frame), path << " line " << number << ": frame " << frame << " has a prompt already");
    out[frame] = text.substr(start, end - start + 1);
  }
  FASTAR_CHECK(!out.empty(), path << ": no prompts (expected lines 'FRAME TEXT')");
  return out;
}

}  // namespace

const std::vector<OptionSpec>& generate_specs() {
  static const std::vector<OptionSpec> specs = [] {
    std::vector<OptionSpec> all = kSpecs;
    for (const auto* extra : {&rollout_option_specs(), &policy_option_specs()}) all.insert(all.end(), extra->begin(), extra->end());
    return all;
  }();
  return specs;
}

int run_generate(int argc, char** argv) {
  Args args("generate", generate_specs(), argc, argv);
  if (args.help()) {
    std::fputs(format_help("fastar generate [--model PATH] [--prompt TEXT | --prompt-embeds FILE] [--actions .UDLR...] --frames N "
                           "--seed S [--policy P] [--device cpu|cuda] --out DIR|FILE.mp4",
                           "Rolls out a causal Wan video model chunk by chunk (Self-Forcing schedule) under a memory policy\n"
                           "and writes the frames, decoded by the Wan VAE when the model folder has one (--decoder); without a decoder,\n"
                           "frames are the latents' first three channels as RGB.",
                           generate_specs())
                   .c_str(),
               stdout);
    return 0;
  }
  const std::string who = "fastar generate";
  FASTAR_CHECK(args.positional().empty(), who << ": unexpected argument '" << args.positional()[0] << "' (see fastar generate --help)");
  if (args.has("threads")) omp_set_num_threads(static_cast<int>(args.get_int("threads", 1, 1, 4096)));
  // Every option is read and checked before the model loads or an output exists.
  SessionOptions options = session_options_from_args(args, who);
  const int64_t frames = args.get_int("frames", 12, 1, INT64_MAX / 8);
  const int64_t chunks = (frames + options.chunk_frames - 1) / options.chunk_frames;
  options.frames = chunks * options.chunk_frames;
  FASTAR_CHECK(!(args.has("prompt") && args.has("prompt-embeds")), who << ": give either --prompt or --prompt-embeds, not both");
  std::map<int64_t, std::string> schedule;
  if (args.has("prompt-schedule")) schedule = read_prompt_schedule(args.get("prompt-schedule", ""));
  const std::string switch_mode = args.get("prompt-switch", "recache");
  FASTAR_CHECK(switch_mode == "recache" || switch_mode == "recache-keep-sink" || switch_mode == "plain",
               who << ": unknown --prompt-switch '" << switch_mode << "'; choose recache, recache-keep-sink or plain");
  const PromptSwitch how{switch_mode != "plain", switch_mode == "recache-keep-sink"};
  const std::string action_text = args.get("actions", "");
  const int fps = static_cast<int>(args.get_int("fps", 16, 1, 1000));
  const std::string out = args.get("out", "out.mp4");
  options.decoder = args.get("decoder", "auto");
  FASTAR_CHECK(options.decoder == "auto" || options.decoder == "wan" || options.decoder == "tiny" || options.decoder == "latents",
               who << ": unknown --decoder '" << options.decoder << "'; choose auto, wan, tiny or latents");

  std::shared_ptr<const LoadedModel> model = load_model_from_args(args, who);
  const WanConfig& config = model->config();
  FASTAR_CHECK(!args.has("actions") || config.action_dim == world::kNumActions,
               who << ": --actions needs a model with " << world::kNumActions << " one-hot actions (config action_dim "
                   << world::kNumActions << "); this model has action_dim " << config.action_dim);
  if (!action_text.empty()) world::parse_actions(action_text, options.frames);  // a bad one is an error now, not at its chunk

  // The first prompt: --prompt, --prompt-embeds, a schedule's frame-0 line, or the empty prompt.
  SessionPrompt prompt;
  if (args.has("prompt")) {
    FASTAR_CHECK(model->has_text_encoder(),
                 who << ": --prompt needs a text encoder: umT5 beside the DiT (original Wan2.1 folder: "
                        "models_t5_umt5-xxl-enc-bf16.safetensors, made by "
                     << convert_wan_t5_command("models_t5_umt5-xxl-enc-bf16.pth", "MODEL/models_t5_umt5-xxl-enc-bf16.safetensors")
                     << ", and google/umt5-xxl/; diffusers: text_encoder/ and tokenizer/) or the model's own (a 'text_encoder' "
                        "section in config.json); "
                     << model->name() << " has none: add one, or pass the embedding with --prompt-embeds FILE");
    prompt = SessionPrompt::from_text(args.get("prompt", ""));
  } else if (args.has("prompt-embeds")) {
    const std::string file = args.get("prompt-embeds", "");
    prompt = SessionPrompt::from_embeds(load_prompt_embedding(file), file);
  } else if (schedule.count(0)) {
    prompt = SessionPrompt::from_text(schedule.at(0));
  } else {
    std::fprintf(stderr, "prompt: none given (--prompt-embeds); using the empty (all-zero) prompt embedding\n");
  }
  if (!schedule.empty()) FASTAR_CHECK(model->has_text_encoder(), who << ": --prompt-schedule needs a model with a text encoder (umT5 or its own)");
  if (prompt.is_text) {
    const std::string encoder = model->has_umt5() ? "umT5 " + model->folder().text_encoder : "text encoder of " + model->name();
    std::fprintf(stderr, "prompt: \"%s\" (%s)\n", prompt.text.c_str(), encoder.c_str());
  }
  if (config.action_dim > 0)
    std::fprintf(stderr, "actions: %s\n", config.action_dim == world::kNumActions
                                             ? (args.has("actions") ? action_text.c_str() : "all none (no --actions given)")
                                             : "zeros (this model's action_dim is not the world's 5)");

  Session session(model, options, prompt);
  std::unique_ptr<FrameSink> sink = make_frame_sink(out, fps);
  const int64_t video_frames = session.video_frames_for(frames);  // the frames of the first `frames` latent frames
  const std::string decoding =
      session.decoder() == "wan" || session.decoder() == "tiny"
          ? std::string(session.decoder() == "wan" ? "decoded by the Wan VAE " + model->folder().vae
                                                   : "decoded by the tiny decoder " + model->folder().tiny_decoder) +
                ": " + std::to_string(frames) + " latent frames give " + std::to_string(video_frames) + " video frames"
      : config.in_dim == 3       ? "the model works in pixel space: its output is the frame"
                                 : "frames are the latents' first three channels as RGB (--decoder latents, or no decoder)";
  std::fprintf(stderr, "output: %s; %s\n", sink->describe().c_str(), decoding.c_str());
  std::fprintf(stderr, "rollout: %lld latent frames in %lld chunks; %s; %d threads\n", static_cast<long long>(frames),
               static_cast<long long>(chunks), session.describe().c_str(), omp_get_max_threads());

  ProgressBar progress(video_frames);
  int64_t written = 0;
  auto next_switch = schedule.upper_bound(0);
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t start = c * options.chunk_frames;
    // Switches due by this chunk: the latest one wins.
    std::string due;
    bool have_due = false;
    for (; next_switch != schedule.end() && next_switch->first <= start; ++next_switch) {
      due = next_switch->second;
      have_due = true;
    }
    if (have_due) {
      session.set_prompt(SessionPrompt::from_text(due), how);
      std::fprintf(stderr, "\nprompt at frame %lld (%s): \"%s\"\n", static_cast<long long>(start), switch_mode.c_str(), due.c_str());
    }
    const std::string chunk_actions =
        static_cast<int64_t>(action_text.size()) > start ? action_text.substr(start, options.chunk_frames) : "";
    // The last chunk's clean pass would only fill memory nothing reads: skip it.
    const Chunk chunk = config.action_dim == world::kNumActions ? session.next_chunk(chunk_actions, c + 1 < chunks)
                                                                : session.next_chunk(nullptr, c + 1 < chunks);
    for (const RgbFrame& frame : chunk.frames)
      if (written < video_frames) {
        sink->write(frame);
        ++written;
      }
    char extra[128];
    std::snprintf(extra, sizeof extra, "kv %.1f MB (%lld frames/layer)", chunk.stats.bytes / 1e6,
                  static_cast<long long>(chunk.stats.cached_frames));
    progress.update(written, extra);
  }
  progress.finish();
  sink->finish();
  std::fprintf(stderr, "wrote %lld frames: %s\n", static_cast<long long>(written), sink->describe().c_str());
  const std::string report = session.report();
  const std::string json = session.stats_json();
  if (!json.empty()) {
    const std::string path = stats_json_path(out);
    write_file_atomically(path, json);
    std::fprintf(stderr, "%s", report.substr(0, report.find('\n')).c_str());
    std::fprintf(stderr, "; per layer: %s\n%s", path.c_str(),
                 report.find('\n') == std::string::npos ? "" : report.substr(report.find('\n') + 1).c_str());
  } else {
    std::fputs(report.c_str(), stderr);
  }
  return 0;
}

}  // namespace fastar::app
