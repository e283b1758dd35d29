// The world's training set: library and `fastar world` command line.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "fastar/core/safetensors.h"
#include "fastar/rollout/png_writer.h"
#include "fastar/world/world.h"
#include "test_util.h"

namespace fastar::world {
namespace {

namespace fs = std::filesystem;

using Result = testing::CliResult;
using testing::contains;
Result run(const std::string& args) { return testing::run_fastar(args); }

// Checks a dataset file against clips rendered one by one through the library.
void expect_dataset_file(const std::string& path, int64_t clips, int64_t frames, uint64_t seed) {
  const Checkpoint file = Checkpoint::open(path);
  EXPECT_EQ(file.names(), (std::vector<std::string>{"actions", "frames", "tokens"}));
  const TensorEntry& f = file.at("frames");
  const TensorEntry& a = file.at("actions");
  const TensorEntry& k = file.at("tokens");
  EXPECT_EQ(f.dtype, DType::U8);
  EXPECT_EQ(f.shape, (Shape{clips, frames, 64, 64, 3}));
  EXPECT_EQ(a.dtype, DType::U8);
  EXPECT_EQ(a.shape, (Shape{clips, frames}));
  EXPECT_EQ(k.dtype, DType::I32);
  EXPECT_EQ(k.shape, (Shape{clips, kMaxPromptTokens}));
  EXPECT_EQ(file.metadata().at("vocab"), vocabulary_json());
  EXPECT_EQ(file.metadata().at("seed"), std::to_string(seed));
  const std::vector<std::string> prompts =
      nlohmann::json::parse(file.metadata().at("prompts")).get<std::vector<std::string>>();
  ASSERT_EQ(static_cast<int64_t>(prompts.size()), clips);
  const Tensor frames_t = file.tensor("frames"), actions_t = file.tensor("actions"), tokens_t = file.tensor("tokens");
  for (int64_t i = 0; i < clips; ++i) {
    const uint64_t s = clip_seed(seed, static_cast<uint64_t>(i));
    EXPECT_EQ(prompts[static_cast<size_t>(i)], sample_prompt(s));
    const std::vector<uint8_t> actions = sample_actions(s, frames);
    EXPECT_EQ(std::memcmp(actions_t.data<uint8_t>() + i * frames, actions.data(), actions.size()), 0) << "clip " << i;
    const std::vector<int32_t> ids = tokenize_padded(prompts[static_cast<size_t>(i)]);
    EXPECT_EQ(std::memcmp(tokens_t.data<int32_t>() + i * kMaxPromptTokens, ids.data(), ids.size() * 4), 0);
    const Tensor clip = render_frames(prompts[static_cast<size_t>(i)], actions, s, frames);
    EXPECT_EQ(std::memcmp(frames_t.data<uint8_t>() + i * clip.nbytes(), clip.raw_data(), static_cast<size_t>(clip.nbytes())), 0)
        << "clip " << i;
  }
}

TEST(WorldDataset, LibraryWritesTheSpecifiedTensors) {
  const std::string path = testing::make_temp_dir("world_dataset") + "/train.safetensors";
  const Dataset d = make_dataset(5, 4, 42, 1);
  write_dataset(path, d, 42);
  expect_dataset_file(path, 5, 4, 42);
  // Thread count does not change a byte.
  const Dataset d2 = make_dataset(5, 4, 42, 2);
  EXPECT_EQ(std::memcmp(d.frames.raw_data(), d2.frames.raw_data(), static_cast<size_t>(d.frames.nbytes())), 0);
  EXPECT_EQ(d.prompts, d2.prompts);
  // Clips differ from one another.
  EXPECT_NE(d.prompts[0], d.prompts[1]);
  EXPECT_NE(clip_seed(42, 0), clip_seed(42, 1));
  EXPECT_NE(clip_seed(42, 0), clip_seed(43, 0));
}

TEST(WorldDataset, CommandWritesAReadableFile) {
  const std::string dir = testing::make_temp_dir("world_dataset_cli");
  const std::string path = dir + "/train.safetensors";
  Result r = run("world dataset --clips 3 --frames 5 --seed 9 --threads 2 --out " + path);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "wrote 3 clips x 5 frames")) << r.output;
  expect_dataset_file(path, 3, 5, 9);
  for (const auto& entry : fs::directory_iterator(dir)) EXPECT_FALSE(contains(entry.path().string(), ".tmp-"));

  for (const auto& [args, message] : std::vector<std::pair<std::string, std::string>>{
           {"world dataset --clips 0 --frames 5 --seed 1 --out " + path, "--clips must be in"},
           {"world dataset --clips 2 --frames x --seed 1 --out " + path, "--frames must be an integer"},
           {"world dataset --clips 2 --frames 5 --out " + path, "--seed is required"},
           {"world dataset --clips 2 --frames 5 --seed 1", "--out is required"},
           {"world dataset --clips 2 --frames 5 --seed 1 --out " + dir + "/missing/x.safetensors", "cannot create"},
       }) {
    Result bad = run(args);
    EXPECT_EQ(bad.exit_code, 2) << args << "\n" << bad.output;
    EXPECT_TRUE(contains(bad.output, message)) << args << "\n" << bad.output;
  }
}

TEST(WorldCli, RenderWritesTheLibrarysFrames) {
  const std::string out = testing::make_temp_dir("world_render") + "/frames";
  const std::string prompt = "a red circle bounces . a blue square drifts left . background stripes pans right .";
  Result r = run("world render --prompt '" + prompt + "' --actions RRUU.D --seed 3 --frames 8 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Tensor expected = render_frames(prompt, parse_actions("RRUU.D", 8), 3, 8);
  for (int64_t t = 0; t < 8; ++t) {
    char name[32];
    std::snprintf(name, sizeof(name), "/frame_%06lld.png", static_cast<long long>(t));
    const RgbFrame frame = read_png(out + name);
    ASSERT_EQ(frame.width, 64);
    ASSERT_EQ(frame.height, 64);
    EXPECT_EQ(std::memcmp(frame.rgb.data(), expected.data<uint8_t>() + t * 64 * 64 * 3, frame.rgb.size()), 0) << t;
  }
}

TEST(WorldCli, PromptHelpAndBadValues) {
  Result p = run("world prompt --seed 12");
  ASSERT_EQ(p.exit_code, 0) << p.output;
  EXPECT_EQ(p.output, sample_prompt(12) + "\n");
  Result v = run("world vocab");
  ASSERT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.output, vocabulary_json() + "\n");
  for (const char* sub : {"render", "prompt", "dataset", "vocab"}) {
    Result h = run(std::string("world ") + sub + " --help");
    EXPECT_EQ(h.exit_code, 0) << sub;
    EXPECT_TRUE(contains(h.output, std::string("usage: fastar world ") + sub)) << h.output;
  }
  for (const auto& [args, message] : std::vector<std::pair<std::string, std::string>>{
           {"world", "usage: fastar world"},
           {"world bogus", "unknown subcommand 'bogus'"},
           {"world prompt", "--seed is required"},
           {"world prompt --seed -1", "--seed must be in"},
           {"world render --prompt 'a red blob bounces' --seed 1 --out /tmp/x", "unknown word 'blob'"},
           {"world render --prompt 'a red circle bounces' --seed 1 --frames 2 --actions UUU --out /tmp/x",
            "3 actions for 2 frames"},
           {"world render --prompt 'a red circle bounces' --seed 1 --actions UX --out /tmp/x", "'X' at frame 1"},
           {"world render --seed 1 --out /tmp/x", "--prompt is required"},
           {"world render --prompt 'a red circle bounces' --seed 1", "--out is required"},
           {"world render --prompt 'a red circle bounces' --seed 1 --frames 0 --out /tmp/x", "--frames must be in"},
       }) {
    Result bad = run(args);
    EXPECT_EQ(bad.exit_code, 2) << args << "\n" << bad.output;
    EXPECT_TRUE(contains(bad.output, message)) << args << "\n" << bad.output;
  }
}

}  // namespace
}  // namespace fastar::world
