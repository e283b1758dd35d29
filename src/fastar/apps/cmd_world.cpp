// fastar world: the procedural world of the small trained model (docs/world.md).
#include <cctype>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "fastar/apps/args.h"
#include "fastar/apps/commands.h"
#include "fastar/apps/progress.h"
#include "fastar/core/atomic_file.h"
#include "fastar/core/error.h"
#include "fastar/rollout/frame_sink.h"
#include "fastar/world/world.h"

namespace fastar::app {

namespace {

const char* kWorldUsage =
    "usage: fastar world <subcommand> [options]\n"
    "\n"
    "The procedural world that fastar's small model is trained on: 64x64 RGB frames of 1-4 objects\n"
    "described by a prompt, a textured background and a player moved by actions (docs/world.md).\n"
    "\n"
    "subcommands:\n"
    "  render    render the ground-truth frames of (prompt, actions, seed) to PNGs or an MP4\n"
    "            (--scene revisit: the revisit scene, with its per-object ground truth as JSON)\n"
    "  prompt    print a random valid prompt\n"
    "  dataset   write a training set of random clips as one safetensors file\n"
    "  vocab     print the prompt vocabulary as a JSON list (configs/world/vocab.json)\n"
    "\n"
    "Run 'fastar world <subcommand> --help' for its options.\n";

uint64_t get_seed(const Args& args, const std::string& command) {
  FASTAR_CHECK(args.has("seed"), "fastar " << command << ": --seed is required (any integer >= 0)");
  return static_cast<uint64_t>(args.get_int("seed", 0, 0, INT64_MAX));
}

void no_positionals(const Args& args, const std::string& command) {
  FASTAR_CHECK(args.positional().empty(), "fastar " << command << ": unexpected argument '" << args.positional()[0]
                                                    << "' (see fastar " << command << " --help)");
}

// Where the revisit scene's ground truth goes: FILE.mp4 -> FILE.truth.json, DIR -> DIR/truth.json.
std::string truth_json_path(const std::string& out) {
  const size_t n = out.size();
  if (n >= 4) {
    std::string tail = out.substr(n - 4);
    for (char& c : tail) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (tail == ".mp4") return out.substr(0, n - 4) + ".truth.json";
  }
  return out + "/truth.json";
}

// fastar world render --scene revisit: frames as for a prompt, plus the ground truth as JSON.
int run_render_revisit(const Args& args) {
  FASTAR_CHECK(!args.has("prompt"), "fastar world render: --scene revisit takes no --prompt (its objects and their "
                                    "colours come from --seed)");
  FASTAR_CHECK(args.has("out"), "fastar world render: --out is required (a folder for PNGs or a .mp4 file)");
  const uint64_t seed = get_seed(args, "world render");
  const int64_t frames = args.get_int("frames", 96, 1, 1000000);
  world::RevisitRule rule;
  rule.min_unseen = args.get_int("min-unseen", rule.min_unseen, 1, 1000000);
  const std::vector<uint8_t> actions = args.has("actions") ? world::parse_actions(args.get("actions", ""), frames)
                                                           : world::revisit_actions(world::RevisitScript{}, frames);
  const world::RevisitWorld scene(seed);
  const std::string out = args.get("out", "");
  std::unique_ptr<FrameSink> sink = make_frame_sink(out, static_cast<int>(args.get_int("fps", 8, 1, 1000)));
  RgbFrame frame;
  frame.width = frame.height = world::kFrameSize;
  frame.rgb.resize(static_cast<size_t>(world::kFrameSize) * world::kFrameSize * 3);
  std::vector<world::RevisitFrameTruth> truth;
  world::CameraState camera;
  for (int64_t t = 0; t < frames; ++t) {
    camera = world::RevisitWorld::step_camera(camera, actions[static_cast<size_t>(t)]);
    truth.push_back(scene.render(camera, t, frame.rgb.data()));
    sink->write(frame);
  }
  sink->finish();
  const std::string json_path = truth_json_path(out);
  write_file_atomically(json_path, world::revisit_truth_json(scene, actions, truth, rule));
  std::fprintf(stderr, "scene: revisit (seed %llu)\nactions: %s\nwrote %lld frames: %s\nground truth: %s (%zu revisit frames)\n",
               static_cast<unsigned long long>(seed), world::format_actions(actions).c_str(),
               static_cast<long long>(frames), sink->describe().c_str(), json_path.c_str(),
               world::revisit_frames(world::revisited_objects(truth, rule)).size());
  return 0;
}

int run_render(int argc, char** argv) {
  const std::vector<OptionSpec> specs = {
      {"prompt", "TEXT", "scene description, e.g. \"a red circle bounces . background stripes pans right .\"", ""},
      {"actions", "STR", "player actions, one character per frame: . none, U up, D down, L left, R right; "
                         "shorter strings are padded with none", "all none"},
      {"seed", "S", "seed of start positions, phases, speeds and background colours (required)", ""},
      {"frames", "N", "number of frames", "24 (96 with --scene revisit)"},
      {"out", "PATH", "folder of PNG frames, or a .mp4 file (required)", ""},
      {"fps", "N", "MP4 frame rate", "8"},
      {"scene", "KIND", "prompt: the scene of --prompt; revisit: the revisit scene (a map larger than the view "
                        "that the actions pan across, no prompt), which also writes its per-frame ground truth "
                        "as JSON (DIR/truth.json, or FILE.truth.json beside FILE.mp4)", "prompt"},
      {"min-unseen", "N", "--scene revisit: frames an object must be unseen before its return is a revisit frame",
       "30"},
  };
  Args args("world render", specs, argc, argv);
  if (args.help()) {
    std::fputs(format_help("fastar world render --prompt TEXT [--actions STR] --seed S --frames N --out DIR|FILE.mp4",
                           "Renders the world's ground-truth frames for (prompt, actions, seed); the same inputs\n"
                           "always give the same bytes. The grammar of prompts is in docs/world.md.\n"
                           "With --scene revisit (no --prompt), the default actions pan away, wait and pan back\n"
                           "(world::revisit_actions); docs/world.md, \"The revisit scene\", has the JSON's schema.",
                           specs)
                   .c_str(),
               stdout);
    return 0;
  }
  no_positionals(args, "world render");
  const std::string scene_kind = args.get("scene", "prompt");
  FASTAR_CHECK(scene_kind == "prompt" || scene_kind == "revisit",
               "fastar world render: --scene must be 'prompt' or 'revisit', got '" << scene_kind << "'");
  if (scene_kind == "revisit") return run_render_revisit(args);
  FASTAR_CHECK(!args.has("min-unseen"), "fastar world render: --min-unseen applies to --scene revisit only");
  FASTAR_CHECK(args.has("prompt"), "fastar world render: --prompt is required (try: fastar world prompt --seed 1)");
  FASTAR_CHECK(args.has("out"), "fastar world render: --out is required (a folder for PNGs or a .mp4 file)");
  const uint64_t seed = get_seed(args, "world render");
  const int64_t frames = args.get_int("frames", 24, 1, 1000000);
  const std::string prompt = args.get("prompt", "");
  const std::vector<uint8_t> actions = world::parse_actions(args.get("actions", ""), frames);
  const world::World scene(prompt, seed);
  std::unique_ptr<FrameSink> sink = make_frame_sink(args.get("out", ""), static_cast<int>(args.get_int("fps", 8, 1, 1000)));
  RgbFrame frame;
  frame.width = frame.height = world::kFrameSize;
  frame.rgb.resize(static_cast<size_t>(world::kFrameSize) * world::kFrameSize * 3);
  world::PlayerState player = scene.player_start();
  for (int64_t t = 0; t < frames; ++t) {
    player = world::World::step_player(player, actions[static_cast<size_t>(t)]);
    world::render_state(scene.background(), scene.state_at(player, t), frame.rgb.data());
    sink->write(frame);
  }
  sink->finish();
  std::fprintf(stderr, "prompt: %s\nwrote %lld frames: %s\n", world::format_prompt(scene.scene()).c_str(),
               static_cast<long long>(frames), sink->describe().c_str());
  return 0;
}

int run_prompt(int argc, char** argv) {
  const std::vector<OptionSpec> specs = {{"seed", "S", "which prompt (required)", ""}};
  Args args("world prompt", specs, argc, argv);
  if (args.help()) {
    std::fputs(format_help("fastar world prompt --seed S", "Prints a random valid prompt decided by the seed.", specs).c_str(),
               stdout);
    return 0;
  }
  no_positionals(args, "world prompt");
  std::printf("%s\n", world::sample_prompt(get_seed(args, "world prompt")).c_str());
  return 0;
}

int run_dataset(int argc, char** argv) {
  const std::vector<OptionSpec> specs = {
      {"clips", "N", "number of clips (required)", ""},
      {"frames", "F", "frames per clip (required)", ""},
      {"seed", "S", "dataset seed; clip i uses world::clip_seed(S, i) (required)", ""},
      {"out", "FILE", "output .safetensors file, written atomically (required)", ""},
      {"threads", "T", "OpenMP threads", "all cores"},
  };
  Args args("world dataset", specs, argc, argv);
  if (args.help()) {
    std::fputs(format_help("fastar world dataset --clips N --frames F --seed S --out FILE.safetensors [--threads T]",
                           "Renders N random clips (a sampled prompt, random-policy actions, F frames each) and\n"
                           "writes them as one safetensors file with the tensors\n"
                           "  frames  uint8 [N, F, 64, 64, 3]   actions uint8 [N, F]   tokens int32 [N, 48]\n"
                           "and metadata \"vocab\" and \"prompts\" (JSON lists). Needs N*F*12 KiB of memory.",
                           specs)
                   .c_str(),
               stdout);
    return 0;
  }
  no_positionals(args, "world dataset");
  for (const char* required : {"clips", "frames", "out"})
    FASTAR_CHECK(args.has(required), "fastar world dataset: --" << required << " is required (see --help)");
  const int64_t clips = args.get_int("clips", 0, 1, int64_t{1} << 31);
  const int64_t frames = args.get_int("frames", 0, 1, 100000);
  const uint64_t seed = get_seed(args, "world dataset");
  const int threads = static_cast<int>(args.get_int("threads", 0, 1, 4096));
  const std::string out = args.get("out", "");
  FASTAR_CHECK(!out.empty(), "fastar world dataset: --out is empty");

  const bool show = clips >= 200;
  ProgressBar progress(clips * frames);
  world::Dataset dataset = world::make_dataset(clips, frames, seed, threads, [&](int64_t done) {
    if (show) progress.update(done * frames, std::to_string(done) + " clips");
  });
  if (show) progress.finish();
  world::write_dataset(out, dataset, seed);
  std::fprintf(stderr, "wrote %lld clips x %lld frames (%.1f MB) to %s\n", static_cast<long long>(clips),
               static_cast<long long>(frames), static_cast<double>(dataset.frames.nbytes()) / 1e6, out.c_str());
  return 0;
}

int run_vocab(int argc, char** argv) {
  const std::vector<OptionSpec> specs = {};
  Args args("world vocab", specs, argc, argv);
  if (args.help()) {
    std::fputs(format_help("fastar world vocab > configs/world/vocab.json",
                           "Prints the prompt vocabulary as a JSON list of words in id order.", specs)
                   .c_str(),
               stdout);
    return 0;
  }
  no_positionals(args, "world vocab");
  std::printf("%s\n", world::vocabulary_json().c_str());
  return 0;
}

}  // namespace

int run_world(int argc, char** argv) {
  if (argc < 1 || !std::strcmp(argv[0], "--help") || !std::strcmp(argv[0], "-h")) {
    std::fputs(kWorldUsage, argc < 1 ? stderr : stdout);
    return argc < 1 ? 2 : 0;
  }
  const std::string sub = argv[0];
  if (sub == "render") return run_render(argc - 1, argv + 1);
  if (sub == "prompt") return run_prompt(argc - 1, argv + 1);
  if (sub == "dataset") return run_dataset(argc - 1, argv + 1);
  if (sub == "vocab") return run_vocab(argc - 1, argv + 1);
  std::fprintf(stderr, "fastar world: unknown subcommand '%s'\n\n%s", sub.c_str(), kWorldUsage);
  return 2;
}

}  // namespace fastar::app
