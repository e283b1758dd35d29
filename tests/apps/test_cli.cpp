// The fastar program end to end: exit codes and messages for good and bad input.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "fastar/core/safetensors.h"
#include "fastar/rollout/png_writer.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace fastar {
namespace {

using Result = testing::CliResult;
using testing::contains;
Result run(const std::string& args) { return testing::run_fastar(args); }

const std::string kGolden = testing::source_path("tests/model/golden/wan_tiny_original");

TEST(Cli, GenerateWritesPngFramesFromTheGoldenModel) {
  const std::string out = testing::make_temp_dir("cli_png") + "/frames";
  Result r = run("generate --model " + kGolden + " --frames 5 --seed 3 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "5/5 frames")) << r.output;
  EXPECT_TRUE(contains(r.output, "first three channels")) << r.output;  // says frames are latents
  int pngs = 0;
  for (const auto& entry : fs::directory_iterator(out)) pngs += entry.path().extension() == ".png";
  EXPECT_EQ(pngs, 5);
  RgbFrame frame = read_png(out + "/frame_000004.png");
  EXPECT_EQ(frame.width, 24);  // latent_width of the golden config
  EXPECT_EQ(frame.height, 16);
}

TEST(Cli, GenerateWithRandomWeightsAndWindowPolicyToMp4) {
  const std::string out = testing::make_temp_dir("cli_mp4") + "/video.mp4";
  Result r = run("generate --model " + kGolden + "/config.json --random-weights 1 --frames 9 --policy window --window 3 --sink 1 --latent-size 8x12 --out " + out);
#ifdef FASTAR_HAVE_VIDEO
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(out));
  EXPECT_GT(fs::file_size(out), 0u);
  EXPECT_TRUE(contains(r.output, "4 frames/layer")) << r.output;  // 1 sink + 3 window, bounded
#else
  EXPECT_EQ(r.exit_code, 2) << r.output;
#endif
}

TEST(Cli, GenerateWithTheRollingForcingSchedule) {
  const std::string out = testing::make_temp_dir("cli_rolling") + "/frames";
  Result r = run("generate --model " + kGolden + " --schedule rolling-forcing --frames 7 --latent-size 8x12 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "rolling-forcing")) << r.output;
  int pngs = 0;
  for (const auto& entry : fs::directory_iterator(out)) pngs += entry.path().extension() == ".png";
  EXPECT_EQ(pngs, 7);
}

TEST(Cli, SameSeedSameFrames) {
  const std::string dir = testing::make_temp_dir("cli_seed");
  ASSERT_EQ(run("generate --model " + kGolden + " --frames 3 --seed 9 --out " + dir + "/a").exit_code, 0);
  ASSERT_EQ(run("generate --model " + kGolden + " --frames 3 --seed 9 --threads 1 --out " + dir + "/b").exit_code, 0);
  EXPECT_EQ(read_png(dir + "/a/frame_000002.png").rgb, read_png(dir + "/b/frame_000002.png").rgb);
}

TEST(Cli, BadOptionsAreErrors) {
  struct Case {
    std::string args, message;
  } cases[] = {
      {"generate --frobnicate 3", "unknown option --frobnicate"},
      {"generate --frames abc", "--frames must be an integer"},
      {"generate --frames 0", "--frames must be in"},
      {"generate --policy lru", "unknown policy 'lru'"},
      {"generate --latent-size 12", "--latent-size must look like"},
      {"generate --steps 1000,x", "'x' is not a number"},
      {"generate --device tpu", "unknown --device 'tpu'"},
      {"generate --model " + kGolden + " --window 3", "apply only to --policy window"},
      {"generate --schedule rolling-forcing --policy window", "rolling-forcing uses its own"},
      {"generate --schedule diffusion", "unknown --schedule 'diffusion'"},
      {"generate --model /nonexistent/model", "no such model"},
      {"frobnicate", "unknown command"},
      {"inspect", "give exactly one PATH"},
      {"generate --policy window+annsa --annsa-blocks 12", "--annsa-blocks must be BQxBK"},
      {"generate --policy window+annsa --annsa-blocks 64x0", "--annsa-blocks must be BQxBK"},
      {"generate --policy window --annsa-blocks 64x64", "--annsa-blocks applies only with +annsa"},
      {"bench rollout --frames 3 --policy window --annsa-bits 3", "applies only to a +annsa policy"},
      {"bench rollout --frames 3 --policy window+annsa --annsa-own-keys some", "unknown --annsa-own-keys 'some'"},
  };
  for (const Case& c : cases) {
    Result r = run(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, c.message)) << c.args << "\n" << r.output;
  }
  for (const char* command : {"generate --help", "inspect --help", "--help"}) {
    Result r = run(command);
    EXPECT_EQ(r.exit_code, 0) << command;
    EXPECT_TRUE(contains(r.output, "usage:")) << command;
  }
}

TEST(Cli, CudaWithoutAGpuIsAClearError) {
  // CI has no GPU: with the CUDA backend built the message says no device is visible, without it
  // that the build has no CUDA backend. Either way: exit 2, no crash.
  Result r = run("generate --device cuda --frames 3 --out " + testing::make_temp_dir("cli_cuda") + "/f");
  if (r.exit_code == 0) GTEST_SKIP() << "a GPU is visible here";
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "no CUDA device is visible") || contains(r.output, "no CUDA backend")) << r.output;
}

TEST(Cli, InspectPrintsConfigCountsAndDtypes) {
  Result r = run("inspect " + kGolden);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "tensors     69")) << r.output;
  EXPECT_TRUE(contains(r.output, "parameters  572816")) << r.output;
  EXPECT_TRUE(contains(r.output, "BF16×69")) << r.output;
  EXPECT_TRUE(contains(r.output, "original Wan")) << r.output;
}

// A model folder holding a damaged copy of the golden weights.
class CorruptCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::make_temp_dir(std::string("cli_corrupt_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::copy(kGolden + "/config.json", dir_ + "/config.json");
    std::ifstream in(kGolden + "/diffusion_pytorch_model.safetensors", std::ios::binary);
    bytes_.assign(std::istreambuf_iterator<char>(in), {});
    std::memcpy(&header_len_, bytes_.data(), 8);
  }
  std::string header() const { return std::string(bytes_.begin() + 8, bytes_.begin() + 8 + header_len_); }
  void set_header(const std::string& text) {  // same length, so offsets stay put
    ASSERT_EQ(text.size(), header_len_);
    std::memcpy(bytes_.data() + 8, text.data(), text.size());
  }
  void write() {
    std::ofstream(weights(), std::ios::binary).write(bytes_.data(), static_cast<std::streamsize>(bytes_.size()));
  }
  std::string weights() const { return dir_ + "/diffusion_pytorch_model.safetensors"; }
  void expect_error(const std::string& message) {
    write();
    for (const std::string& command : {"inspect " + dir_, "generate --frames 1 --out " + dir_ + "/out --model " + dir_}) {
      Result r = run(command);
      EXPECT_EQ(r.exit_code, 2) << command << "\n" << r.output;
      EXPECT_TRUE(contains(r.output, "diffusion_pytorch_model.safetensors")) << r.output;  // names the file
      EXPECT_TRUE(contains(r.output, message)) << command << "\n" << r.output;
    }
  }
  std::string dir_;
  std::vector<char> bytes_;
  uint64_t header_len_ = 0;
};

TEST_F(CorruptCheckpoint, Truncated) {
  bytes_.resize(bytes_.size() - 1000);
  expect_error("truncated");
}

TEST_F(CorruptCheckpoint, BadJson) {
  std::string h = header();
  h[0] = '[';
  h[1] = '[';
  set_header(h);
  expect_error("JSON");
}

TEST_F(CorruptCheckpoint, OffsetPastTheEnd) {
  // The last tensor keeps its length but is moved to start where the data section ends.
  nlohmann::json h = nlohmann::json::parse(header());
  std::string last;
  int64_t last_end = -1;
  for (auto& [name, entry] : h.items())
    if (name != "__metadata__" && entry["data_offsets"][1].get<int64_t>() > last_end)
      last = name, last_end = entry["data_offsets"][1].get<int64_t>();
  const int64_t length = last_end - h[last]["data_offsets"][0].get<int64_t>();
  h[last]["data_offsets"] = {last_end, last_end + length};
  std::string text = h.dump();
  ASSERT_LE(text.size(), header_len_);
  text.resize(header_len_, ' ');
  set_header(text);
  expect_error("past the end");
}

TEST_F(CorruptCheckpoint, ByteLengthNotMatchingShape) {
  std::string h = header();
  const size_t pos = h.find("\"shape\":[128]");
  ASSERT_NE(pos, std::string::npos);
  h.replace(pos, std::strlen("\"shape\":[128]"), "\"shape\":[127]");
  set_header(h);
  expect_error("127");
}

TEST_F(CorruptCheckpoint, MissingTensor) {
  std::string h = header();
  const size_t pos = h.find("\"head.head.bias\"");
  ASSERT_NE(pos, std::string::npos);
  h.replace(pos, std::strlen("\"head.head.bias\""), "\"head.head.xias\"");
  set_header(h);
  expect_error("missing tensor 'head.head.bias'");
}

TEST_F(CorruptCheckpoint, WrongShapeForTheConfig) {
  write();
  std::ofstream(dir_ + "/config.json") << R"({"dim":128,"num_heads":2,"num_layers":2,"ffn_dim":512,"in_dim":4,"out_dim":4,"text_dim":32,"text_len":16,"patch_size":[1,2,2]})";
  Result r = run("generate --frames 1 --out " + dir_ + "/out --model " + dir_);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "but the config expects [512, 128]")) << r.output;
}

TEST(Cli, EvalJudgesPoliciesOnTheWorldModel) {
  const std::string out = testing::make_temp_dir("cli_eval");
  Result r = run("eval --clips 1 --frames 6 --policies dense,window,tempcache --window 1 --sink 0 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* file : {"/eval.md", "/eval.json", "/contact_sheet.png"})
    EXPECT_TRUE(std::filesystem::exists(out + file)) << file;
  EXPECT_TRUE(contains(r.output, "| dense | ref | ref |")) << r.output;
  EXPECT_TRUE(contains(r.output, "| window |")) << r.output;  // a 1-frame window differs from dense in chunk 2
  EXPECT_FALSE(contains(r.output, "| window | identical")) << r.output;
  // A model that is not a world model is refused with the reason.
  Result bad = run("eval --model " + kGolden + " --out " + out);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(contains(bad.output, "is not a world model")) << bad.output;
}

// The hybrid world model judged against its dense teacher: the reference row runs on the other model.
TEST(Cli, EvalAgainstAReferenceModel) {
  const std::string out = testing::make_temp_dir("cli_eval_reference");
  const std::string hybrid = testing::source_path("models/world-small-arl2");
  const std::string teacher = testing::source_path("models/world-small");
  Result r = run("eval --model " + hybrid + " --reference-model " + teacher + " --policies dense,arl2 --clips 1 --frames 3 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "| dense (" + teacher + ") | ref | ref |")) << r.output;
  // The first chunk differs too: the two models draw it differently (not "identical").
  EXPECT_TRUE(contains(r.output, "| arl2 |")) << r.output;
  EXPECT_FALSE(contains(r.output, "| arl2 | identical")) << r.output;
  Result bad = run("eval --model " + hybrid + " --reference-model " + kGolden + " --policies dense,arl2 --out " + out);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(contains(bad.output, "is not a world model")) << bad.output;
}

TEST(Cli, BenchRolloutWritesCsvPlotAndSummary) {
  const std::string out = testing::make_temp_dir("cli_bench_rollout") + "/r";
  Result r = run("bench rollout --model " + kGolden + " --frames 6 --policy dense,window,tempcache,arl2 --window 1 --sink 1 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* ext : {".csv", ".svg", ".md"}) EXPECT_TRUE(std::filesystem::exists(out + ext)) << ext;
  EXPECT_TRUE(contains(r.output, "| arl2 |")) << r.output;
  Result bad = run("bench rollout --model " + kGolden + " --policy lru --out " + out);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(contains(bad.output, "unknown policy 'lru'")) << bad.output;
  // Every policy is checked before the first rollout: nothing runs, no report is written.
  const std::string early = testing::make_temp_dir("cli_bench_rollout_early") + "/r";
  Result late_bad = run("bench rollout --model " + kGolden + " --frames 6 --policy dense,arl2+annsa --out " + early);
  EXPECT_EQ(late_bad.exit_code, 2);
  EXPECT_TRUE(contains(late_bad.output, "annsa wraps dense, window or tempcache, not arl2")) << late_bad.output;
  EXPECT_FALSE(contains(late_bad.output, "dense: ")) << late_bad.output;
  EXPECT_FALSE(std::filesystem::exists(early + ".csv"));
  // FAST-AR in full on the CPU: TempCache bounded by a window, AnnSA and AnnCA (modules in either order).
  Result fast_ar = run("bench rollout --model " + kGolden + " --frames 6 --policy tempcache+window+annsa+annca,window+annca+annsa"
                       " --window 1 --sink 1 --out " + out);
  ASSERT_EQ(fast_ar.exit_code, 0) << fast_ar.output;
  EXPECT_TRUE(contains(fast_ar.output, "| tempcache+window+annsa+annca |")) << fast_ar.output;
  EXPECT_TRUE(contains(fast_ar.output, "annsa (self-attention):")) << fast_ar.output;
  EXPECT_TRUE(contains(fast_ar.output, "annca (lsh 4 tables x 8 bits")) << fast_ar.output;  // its statistics
}

int count_lines_starting(const std::string& path, const std::string& prefix) {
  std::ifstream in(path);
  int n = 0;
  for (std::string line; std::getline(in, line);) n += line.rfind(prefix, 0) == 0;
  return n;
}

// A report is rewritten while the rollout runs (a run stopped early keeps one), and earlier CSVs can be
// re-plotted without a model.
TEST(Cli, BenchRolloutReportsAsItGoesAndReplotsCsvs) {
  const std::string dir = testing::make_temp_dir("cli_bench_rollout_replot");
  Result r = run("bench rollout --model " + kGolden + " --frames 9 --policy dense,window --window 1 --sink 0 --report-every 1 --out " +
                 dir + "/a");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(count_lines_starting(dir + "/a.csv", "dense,"), 3);  // the final report: every chunk of both
  EXPECT_EQ(count_lines_starting(dir + "/a.csv", "window,"), 3);
  Result re = run("bench rollout --from-csv " + dir + "/a.csv," + dir + "/a.csv --out " + dir + "/b");
  ASSERT_EQ(re.exit_code, 0) << re.output;
  EXPECT_EQ(count_lines_starting(dir + "/b.csv", "dense,"), 6);
  EXPECT_TRUE(std::filesystem::exists(dir + "/b.svg"));
  EXPECT_TRUE(contains(re.output, "| window |")) << re.output;
  // A pixel-space model (the world model, no VAE): one output frame per latent frame.
  Result world_model = run("bench rollout --frames 3 --policy window --out " + dir + "/w");
  ASSERT_EQ(world_model.exit_code, 0) << world_model.output;
  EXPECT_EQ(count_lines_starting(dir + "/w.csv", "window,0,3,3,"), 1);
  Result missing = run("bench rollout --from-csv " + dir + "/none.csv --out " + dir + "/c");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_TRUE(contains(missing.output, "cannot read")) << missing.output;
}

// The world model is benchmarked with a real prompt and a moving player (what TempCache and AnnSA see
// in use); a rollout that ends less than a chunk short of frame 3000 (750 latent frames = 2997 video
// frames) still fills the "at 3000" column, marked with the frame it reached.
TEST(Cli, BenchRolloutPromptsActionsAndTheLastColumn) {
  const std::string dir = testing::make_temp_dir("cli_bench_rollout_world");
  Result r = run("bench rollout --frames 3 --policy window --prompt \"a red circle bounces .\" --actions RRL --out " + dir + "/w");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "prompt: \"a red circle bounces .\"")) << r.output;
  Result bad_actions = run("bench rollout --frames 3 --policy window --actions RXL --out " + dir + "/x");
  EXPECT_EQ(bad_actions.exit_code, 2);
  EXPECT_TRUE(contains(bad_actions.output, "'X'")) << bad_actions.output;
  Result no_encoder = run("bench rollout --model " + kGolden + " --frames 3 --prompt \"a red circle\" --out " + dir + "/y");
  EXPECT_EQ(no_encoder.exit_code, 2);
  EXPECT_TRUE(contains(no_encoder.output, "--prompt needs a model with its own text encoder")) << no_encoder.output;
  Result rows_on_world = run("bench rollout --frames 3 --prompt-rows 5 --out " + dir + "/z");
  EXPECT_EQ(rows_on_world.exit_code, 2);
  EXPECT_TRUE(contains(rows_on_world.output, "--prompt-rows is for models without a text encoder")) << rows_on_world.output;
  // A model without a text encoder gets a random prompt of real rows + padding: AnnCA then selects (sparse
  // calls on the steps past the dense phase); with --prompt-rows 0 (the all-zero prompt) it runs dense.
  Result random_prompt = run("bench rollout --model " + kGolden + " --frames 6 --policy window+annca --prompt-rows 3 --out " + dir + "/p");
  ASSERT_EQ(random_prompt.exit_code, 0) << random_prompt.output;
  EXPECT_TRUE(contains(random_prompt.output, "prompt: a random embedding of 3 real rows")) << random_prompt.output;
  EXPECT_FALSE(contains(random_prompt.output, "    all             0")) << random_prompt.output;
  Result zero_prompt = run("bench rollout --model " + kGolden + " --frames 6 --policy window+annca --prompt-rows 0 --out " + dir + "/q");
  ASSERT_EQ(zero_prompt.exit_code, 0) << zero_prompt.output;
  EXPECT_TRUE(contains(zero_prompt.output, "    all             0")) << zero_prompt.output;

  std::ofstream csv(dir + "/long.csv");
  csv << "policy,chunk,latent_frames,video_frames,chunk_ms,video_fps,mem_in_use_bytes,mem_peak_bytes,cache_bytes\n";
  for (int chunk = 0; chunk < 250; ++chunk) {
    const int latent = 3 * (chunk + 1), video = 1 + 4 * (latent - 1);
    csv << "window," << chunk << ',' << latent << ',' << video << ",400,30,1,1,1\n";
  }
  csv.close();
  Result table = run("bench rollout --from-csv " + dir + "/long.csv --out " + dir + "/long");
  ASSERT_EQ(table.exit_code, 0) << table.output;
  EXPECT_TRUE(contains(table.output, "| window | 2997 | 30.00 | 30.00 | 30.00 (at 2997) |")) << table.output;
}

}  // namespace
}  // namespace fastar
