// `fastar generate` and `fastar inspect` on a small random Wan folder of both layouts (issue 16,
// items 5 and 6, CPU): prompt → MP4 with 1 + 4(N − 1) frames for N latent frames, the same frames
// from both layouts, and exit code 2 naming the file for corrupt, truncated and mismatched parts.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "fastar/rollout/png_writer.h"
#include "session/tiny_wan_folder.h"
#include "test_util.h"

#ifdef FASTAR_HAVE_VIDEO
extern "C" {
#include <libavformat/avformat.h>
}
#endif

namespace fastar {
namespace {

namespace fs = std::filesystem;
using testing::contains;

const testing::TinyWanFolders& folders() {
  static const testing::TinyWanFolders f = testing::write_tiny_wan_folders(testing::make_temp_dir("cli_wan_folder"));
  return f;
}

testing::CliResult run(const std::string& args) { return testing::run_fastar(args); }

int count_pngs(const std::string& dir) {
  int n = 0;
  for (const auto& entry : fs::directory_iterator(dir)) n += entry.path().extension() == ".png";
  return n;
}

const std::string kPrompt = "--prompt \"a red fox runs through the snow\" --seed 3 --threads 1";

TEST(CliWanFolder, PromptToPngFramesOneLayoutEqualsTheOther) {
  const std::string dir = testing::make_temp_dir("cli_wan_png");
  for (const auto& [model, out] : {std::pair{folders().original, dir + "/original"}, std::pair{folders().diffusers, dir + "/diffusers"}}) {
    const testing::CliResult r = run("generate --model " + model + " " + kPrompt + " --frames 6 --out " + out);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_TRUE(contains(r.output, "decoded by the Wan VAE")) << r.output;
    EXPECT_TRUE(contains(r.output, "6 latent frames give 21 video frames")) << r.output;
    EXPECT_TRUE(contains(r.output, "21/21 frames")) << r.output;  // the progress line counts video frames
    EXPECT_TRUE(contains(r.output, "umT5")) << r.output;
    EXPECT_EQ(count_pngs(out), 21);
  }
  for (int f = 0; f < 21; ++f) {
    char name[32];
    std::snprintf(name, sizeof name, "/frame_%06d.png", f);
    const RgbFrame a = read_png(dir + "/original" + name), b = read_png(dir + "/diffusers" + name);
    EXPECT_EQ(a.width, 48);
    EXPECT_EQ(a.height, 32);
    EXPECT_EQ(a.rgb, b.rgb) << name;
  }
}

TEST(CliWanFolder, FramesNotAMultipleOfTheChunkWriteTheFirstNLatentsFrames) {
  const std::string out = testing::make_temp_dir("cli_wan_png4") + "/frames";
  const testing::CliResult r = run("generate --model " + folders().original + " " + kPrompt + " --frames 4 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(count_pngs(out), 13);  // 1 + 4·3, although 6 latents were generated
}

TEST(CliWanFolder, DecoderLatentsWritesTheLatentFrames) {
  const std::string out = testing::make_temp_dir("cli_wan_latents") + "/frames";
  const testing::CliResult r =
      run("generate --model " + folders().diffusers + " " + kPrompt + " --frames 6 --decoder latents --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "first three channels")) << r.output;
  EXPECT_EQ(count_pngs(out), 6);
  EXPECT_EQ(read_png(out + "/frame_000000.png").width, 6);
}

#ifdef FASTAR_HAVE_VIDEO
int64_t count_video_packets(const std::string& path) {
  AVFormatContext* fmt = nullptr;
  if (avformat_open_input(&fmt, path.c_str(), nullptr, nullptr) < 0) return -1;
  avformat_find_stream_info(fmt, nullptr);
  const int stream = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  int64_t frames = 0;
  AVPacket* packet = av_packet_alloc();
  while (stream >= 0 && av_read_frame(fmt, packet) >= 0) {
    frames += packet->stream_index == stream;
    av_packet_unref(packet);
  }
  av_packet_free(&packet);
  avformat_close_input(&fmt);
  return frames;
}

TEST(CliWanFolder, PromptToMp4Has21Frames) {
  const std::string out = testing::make_temp_dir("cli_wan_mp4") + "/v.mp4";
  const testing::CliResult r = run("generate --model " + folders().original + " " + kPrompt + " --frames 6 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(count_video_packets(out), 21);
}
#endif

TEST(CliWanFolder, InspectShowsEveryPart) {
  for (const std::string& model : {folders().original, folders().diffusers}) {
    const testing::CliResult r = run("inspect " + model);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_TRUE(contains(r.output, model == folders().original ? "original Wan2.1 layout" : "diffusers layout")) << r.output;
    EXPECT_TRUE(contains(r.output, "umT5 encoder")) << r.output;
    EXPECT_TRUE(contains(r.output, "d_model 64")) << r.output;
    EXPECT_TRUE(contains(r.output, "tokenizer")) << r.output;
    EXPECT_TRUE(contains(r.output, "Wan2.1 VAE decoder")) << r.output;
    EXPECT_TRUE(contains(r.output, "base_dim 8, z_dim 16")) << r.output;
  }
  const testing::CliResult golden = run("inspect " + testing::source_path("tests/model/golden/wan_tiny_original"));
  ASSERT_EQ(golden.exit_code, 0) << golden.output;
  EXPECT_TRUE(contains(golden.output, "vae         none")) << golden.output;
}

// A copy of a layout to break one part of.
std::string copy_of(const std::string& folder, const std::string& name) {
  const std::string to = testing::make_temp_dir("cli_wan_" + name) + "/model";
  fs::copy(folder, to, fs::copy_options::recursive);
  return to;
}

TEST(CliWanFolder, BrokenPartsExitTwoNamingTheFile) {
  struct Case {
    std::string model, file;
  };
  std::vector<Case> cases;
  {
    const std::string m = copy_of(folders().original, "corrupt");
    std::ofstream(m + "/Wan2.1_VAE.safetensors", std::ios::binary | std::ios::trunc) << "garbage, not safetensors";
    cases.push_back({m, "Wan2.1_VAE.safetensors"});
  }
  {
    const std::string m = copy_of(folders().original, "truncated");
    const std::string f = m + "/models_t5_umt5-xxl-enc-bf16.safetensors";
    fs::resize_file(f, fs::file_size(f) - 1000);
    cases.push_back({m, "models_t5_umt5-xxl-enc-bf16.safetensors"});
  }
  {
    const std::string m = copy_of(folders().diffusers, "truncated_vae");
    const std::string f = m + "/vae/diffusion_pytorch_model.safetensors";
    fs::resize_file(f, 100);
    cases.push_back({m, "vae/diffusion_pytorch_model.safetensors"});
  }
  {
    const std::string m = copy_of(folders().original, "mismatch");
    testing::write_tiny_dit(testing::tiny_wan_dit_config(false, 16, /*text_dim=*/32), m, WanNameLayout::Original);
    cases.push_back({m, "models_t5_umt5-xxl-enc-bf16.safetensors"});
  }
  {
    const std::string m = copy_of(folders().original, "pth");
    fs::rename(m + "/Wan2.1_VAE.safetensors", m + "/Wan2.1_VAE.pth");
    cases.push_back({m, "tools/convert_wan_parts.py vae"});
  }
  for (const Case& c : cases) {
    for (const std::string& command : {"generate --model " + c.model + " " + kPrompt + " --frames 3 --out " + c.model + "/out",
                                       "inspect " + c.model}) {
      const testing::CliResult r = run(command);
      EXPECT_EQ(r.exit_code, 2) << command << "\n" << r.output;
      EXPECT_TRUE(contains(r.output, c.file)) << command << "\n" << r.output;
    }
  }
}

TEST(CliWanFolder, DecoderWanWithoutAVaeAndPromptWithoutATextEncoderAreErrors) {
  const std::string golden = testing::source_path("tests/model/golden/wan_tiny_original");
  testing::CliResult r = run("generate --model " + golden + " --frames 3 --decoder wan --out " + testing::make_temp_dir("cli_wan_nv"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "--decoder wan needs the Wan VAE")) << r.output;
  r = run("generate --model " + golden + " --frames 3 --prompt \"a fox\" --out " + testing::make_temp_dir("cli_wan_nt"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "models_t5_umt5-xxl-enc-bf16.safetensors")) << r.output;
  r = run("generate --model " + golden + " --frames 3 --decoder tiny --out " + testing::make_temp_dir("cli_wan_nd"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "--decoder tiny needs taew2_1.safetensors")) << r.output;
  EXPECT_TRUE(contains(r.output, "tools/convert_taehv.py")) << r.output;
  r = run("generate --model " + golden + " --frames 3 --decoder vqgan --out " + testing::make_temp_dir("cli_wan_nq"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "unknown --decoder 'vqgan'")) << r.output;
}

}  // namespace
}  // namespace fastar
