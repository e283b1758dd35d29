// A Wan model folder from a prompt to decoded frames (issue 16, items 5 and 6, CPU): both layouts
// load every part and give identical frames; the Wan VAE streams across chunks (1 + 4(T − 1) frames
// for the first, 4T after) exactly as decoding the whole clip; missing, corrupt, truncated and
// mismatched parts are errors naming the file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "fastar/core/error.h"
#include "fastar/model/taehv_decoder.h"
#include "fastar/model/wan_vae_decoder.h"
#include "fastar/rollout/video_frame.h"
#include "session/session_fixtures.h"
#include "session/tiny_wan_folder.h"

namespace fastar {
namespace {

namespace fs = std::filesystem;

const testing::TinyWanFolders& folders() {
  static const testing::TinyWanFolders f = testing::write_tiny_wan_folders(testing::make_temp_dir("wan_folder"));
  return f;
}

std::vector<Chunk> roll(const std::shared_ptr<const LoadedModel>& model, int64_t chunks, SessionOptions options = {},
                        const std::string& prompt = "a red fox runs through the snow") {
  Session session(model, options, SessionPrompt::from_text(prompt));
  std::vector<Chunk> out;
  for (int64_t c = 0; c < chunks; ++c) out.push_back(session.next_chunk(nullptr, c + 1 < chunks));
  return out;
}

std::vector<RgbFrame> all_frames(const std::vector<Chunk>& chunks) {
  std::vector<RgbFrame> frames;
  for (const Chunk& c : chunks) frames.insert(frames.end(), c.frames.begin(), c.frames.end());
  return frames;
}

// The latents of two 3-frame chunks as one clip [16, 6, 4, 6].
Tensor clip_of(const std::vector<Chunk>& chunks) {
  const int64_t plane = 4 * 6;
  Tensor clip = Tensor::zeros({16, 6, 4, 6});
  for (int64_t c = 0; c < 16; ++c)
    for (int64_t k = 0; k < 2; ++k)
      std::memcpy(clip.data<float>() + (c * 6 + 3 * k) * plane, chunks[k].latent.data<float>() + c * 3 * plane,
                  3 * plane * sizeof(float));
  return clip;
}

// A whole-clip decode [21, 3, H, W] equals the frames the two chunks streamed, byte for byte.
void expect_whole_clip_equals_streamed(const Tensor& video, const std::vector<Chunk>& chunks) {
  const std::vector<RgbFrame> streamed = all_frames(chunks);
  ASSERT_EQ(video.size(0), 21);
  ASSERT_EQ(streamed.size(), 21u);
  for (int64_t f = 0; f < 21; ++f) EXPECT_EQ(video_frame_to_rgb(video, f).rgb, streamed[static_cast<size_t>(f)].rgb) << f;
}

// `message` is a fastar::Error's text mentioning every one of `parts`.
template <typename F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    for (const std::string& part : parts) EXPECT_TRUE(testing::contains(e.what(), part)) << e.what() << "\nlacks: " << part;
  }
}

// A copy of a layout to break one part of.
std::string copy_of(const std::string& folder, const std::string& name) {
  const std::string to = testing::make_temp_dir("wan_folder_" + name) + "/model";
  fs::copy(folder, to, fs::copy_options::recursive);
  return to;
}

TEST(WanFolder, BothLayoutsLoadEveryPart) {
  for (const std::string& path : {folders().original, folders().diffusers}) {
    const auto model = LoadedModel::load(path);
    EXPECT_TRUE(model->has_umt5()) << path;
    EXPECT_TRUE(model->has_text_encoder()) << path;
    EXPECT_TRUE(model->has_vae()) << path;
    EXPECT_EQ(model->config().in_dim, 16);
    EXPECT_EQ(model->vae()->config.base_dim, 8);
  }
  EXPECT_EQ(LoadedModel::load(folders().original)->folder().layout, WanFolderLayout::Original);
  EXPECT_EQ(LoadedModel::load(folders().diffusers)->folder().layout, WanFolderLayout::Diffusers);
}

TEST(WanFolder, UmT5PromptIsZeroPaddedToTextLen) {
  const auto model = LoadedModel::load(folders().original);
  const Tensor context = model->encode_prompt("a red fox runs through the snow");
  ASSERT_EQ(context.shape(), (Shape{16, 64}));
  const int64_t real = model->umt5()->tokenize("a red fox runs through the snow").length;
  ASSERT_GT(real, 1);
  ASSERT_LT(real, 16);
  const float* rows = context.data<float>();
  double last_real = 0, padding = 0;
  for (int64_t j = 0; j < 64; ++j) {
    last_real += std::abs(rows[(real - 1) * 64 + j]);
    for (int64_t r = real; r < 16; ++r) padding += std::abs(rows[r * 64 + j]);
  }
  EXPECT_GT(last_real, 0);
  EXPECT_EQ(padding, 0);
  // The diffusers copy (HF names, same BF16 values) encodes identically.
  const Tensor other = LoadedModel::load(folders().diffusers)->encode_prompt("a red fox runs through the snow");
  EXPECT_EQ(std::memcmp(context.data<float>(), other.data<float>(), context.nbytes()), 0);
}

TEST(WanFolder, ChunksDecodeToOnePlusFourTMinusOneFramesThenFourT) {
  const auto model = LoadedModel::load(folders().original);
  const std::vector<Chunk> chunks = roll(model, 2);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0].frames.size(), 9u);   // 1 + 4·2
  EXPECT_EQ(chunks[1].frames.size(), 12u);  // 4·3
  EXPECT_EQ(chunks[0].video_frame_start, 0);
  EXPECT_EQ(chunks[1].video_frame_start, 9);
  for (const Chunk& c : chunks) {
    EXPECT_EQ(c.frames[0].width, 48);
    EXPECT_EQ(c.frames[0].height, 32);
    // rgb packs the same frames [F, H, W, 3].
    ASSERT_EQ(c.rgb.shape(), (Shape{static_cast<int64_t>(c.frames.size()), 32, 48, 3}));
    for (size_t f = 0; f < c.frames.size(); ++f)
      EXPECT_EQ(std::memcmp(c.rgb.data<uint8_t>() + f * c.frames[f].rgb.size(), c.frames[f].rgb.data(), c.frames[f].rgb.size()), 0);
    EXPECT_EQ(c.latent.shape(), (Shape{16, 3, 4, 6}));
  }
}

TEST(WanFolder, StreamedChunksEqualDecodingTheWholeClip) {
  const auto model = LoadedModel::load(folders().original);
  const std::vector<Chunk> chunks = roll(model, 2);
  // Decoded in one go by a fresh stream, the two chunks' latents give the streamed frames.
  WanVaeStream whole(model->vae());
  expect_whole_clip_equals_streamed(whole.decode_chunk(clip_of(chunks)), chunks);
}

TEST(WanFolder, BothLayoutsGiveIdenticalFrames) {
  const auto a = all_frames(roll(LoadedModel::load(folders().original), 2));
  const auto b = all_frames(roll(LoadedModel::load(folders().diffusers), 2));
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(testing::frames_hash(a), testing::frames_hash(b));
  // The prompt matters (umT5 reaches the DiT).
  EXPECT_NE(testing::frames_hash(a), testing::frames_hash(all_frames(roll(LoadedModel::load(folders().original), 2, {}, "a blue car"))));
}

TEST(WanFolder, ResetRestartsTheDecoderAndRecacheLeavesIt) {
  const auto model = LoadedModel::load(folders().original);
  Session session(model, {}, SessionPrompt::from_text("a red fox"));
  const Chunk first = session.next_chunk();
  session.set_prompt(SessionPrompt::from_text("a red fox"), {.recache = true});  // same prompt: changes nothing
  const Chunk second = session.next_chunk();
  EXPECT_EQ(second.frames.size(), 12u);
  session.reset(0);
  const Chunk again = session.next_chunk();
  ASSERT_EQ(again.frames.size(), 9u);  // a new video: the first-latent rule again
  EXPECT_EQ(testing::frames_hash(again.frames), testing::frames_hash(first.frames));
  const std::vector<Chunk> plain = roll(model, 2, {}, "a red fox");
  EXPECT_EQ(testing::frames_hash(second.frames), testing::frames_hash(plain[1].frames));
}

TEST(WanFolder, DecoderLatentsAndErrors) {
  const auto model = LoadedModel::load(folders().original);
  SessionOptions latents;
  latents.decoder = "latents";
  const std::vector<Chunk> chunks = roll(model, 1, latents);
  EXPECT_EQ(chunks[0].frames.size(), 3u);
  EXPECT_EQ(chunks[0].frames[0].width, 6);
  SessionOptions wan;
  wan.decoder = "wan";
  EXPECT_EQ(Session(model, wan).decoder(), "wan");
  EXPECT_EQ(Session(model, {}).decoder(), "wan");  // auto
  expect_error([&] { Session(testing::golden_model(), wan); }, {"--decoder wan", "Wan2.1_VAE", "convert_wan_parts.py"});
  EXPECT_EQ(Session(testing::golden_model(), {}).decoder(), "latents");
  SessionOptions bad;
  bad.decoder = "vqgan";
  expect_error([&] { Session(model, bad); }, {"unknown --decoder 'vqgan'", "auto, wan, tiny or latents"});
  SessionOptions tiny;
  tiny.decoder = "tiny";
  expect_error([&] { Session(testing::golden_model(), tiny); }, {"--decoder tiny", "taew2_1", "convert_taehv.py"});
}

// --decoder tiny (issue 16, item 4): the folder's taew2_1 streams chunk after chunk exactly as it
// decodes the whole clip, with the Wan VAE's frame count; a folder without the Wan VAE picks it.
TEST(WanFolder, TinyDecoderStreamsLikeTheWholeClip) {
  const auto model = LoadedModel::load(folders().original);
  ASSERT_TRUE(model->has_tiny_decoder());
  EXPECT_EQ(model->tiny_decoder()->config.widths, (std::array<int64_t, 4>{16, 8, 8, 8}));
  SessionOptions options;
  options.decoder = "tiny";
  const std::vector<Chunk> chunks = roll(model, 2, options);
  ASSERT_EQ(chunks[0].frames.size(), 9u);
  ASSERT_EQ(chunks[1].frames.size(), 12u);
  EXPECT_EQ(chunks[1].video_frame_start, 9);
  EXPECT_EQ(chunks[0].rgb.shape(), (Shape{9, 32, 48, 3}));
  TaehvStream whole(model->tiny_decoder());
  expect_whole_clip_equals_streamed(whole.decode_chunk(clip_of(chunks)), chunks);
  const std::vector<RgbFrame> streamed = all_frames(chunks);
  // Not the Wan VAE's frames (the comparison above can fail).
  EXPECT_NE(testing::frames_hash(streamed), testing::frames_hash(all_frames(roll(model, 2))));
  EXPECT_TRUE(testing::contains(Session(model, options).describe(), "taew2_1"));
  // Without the Wan VAE, auto picks the tiny decoder.
  const std::string m = copy_of(folders().original, "tiny_only");
  fs::remove(m + "/Wan2.1_VAE.safetensors");
  EXPECT_EQ(Session(LoadedModel::load(m), {}).decoder(), "tiny");
}

TEST(WanFolder, TinyDecoderPthOrBrokenFileNamesTheFileAndTheCommand) {
  {
    const std::string m = copy_of(folders().original, "taehv_pth");
    fs::rename(m + "/taew2_1.safetensors", m + "/taew2_1.pth");
    expect_error([&] { LoadedModel::load(m); }, {"taew2_1.pth", "python3 tools/convert_taehv.py"});
  }
  {
    const std::string m = copy_of(folders().diffusers, "taehv_truncated");
    fs::resize_file(m + "/taew2_1.safetensors", 100);
    expect_error([&] { LoadedModel::load(m); }, {"taew2_1.safetensors", "convert_taehv.py"});
  }
}

TEST(WanFolder, MissingHalvesAndUnconvertedPthNameTheFileAndTheCommand) {
  {
    const std::string m = copy_of(folders().original, "no_tokenizer");
    fs::remove_all(m + "/google");
    expect_error([&] { LoadedModel::load(m); }, {"models_t5_umt5-xxl-enc-bf16.safetensors", "google/umt5-xxl"});
  }
  {
    const std::string m = copy_of(folders().original, "pth_only");
    fs::rename(m + "/models_t5_umt5-xxl-enc-bf16.safetensors", m + "/models_t5_umt5-xxl-enc-bf16.pth");
    expect_error([&] { LoadedModel::load(m); },
                 {"models_t5_umt5-xxl-enc-bf16.pth", "python3 tools/convert_wan_parts.py t5"});
  }
  {
    const std::string m = copy_of(folders().original, "vae_pth");
    fs::rename(m + "/Wan2.1_VAE.safetensors", m + "/Wan2.1_VAE.pth");
    expect_error([&] { LoadedModel::load(m); }, {"Wan2.1_VAE.pth", "python3 tools/convert_wan_parts.py vae"});
  }
  {
    const std::string m = copy_of(folders().diffusers, "no_text_encoder");
    fs::remove_all(m + "/text_encoder");
    expect_error([&] { LoadedModel::load(m); }, {"tokenizer", "text_encoder/"});
  }
}

TEST(WanFolder, CorruptTruncatedAndMismatchedPartsNameTheFile) {
  {
    const std::string m = copy_of(folders().original, "corrupt_vae");
    std::ofstream(m + "/Wan2.1_VAE.safetensors", std::ios::binary | std::ios::trunc) << "this is not a safetensors file";
    expect_error([&] { LoadedModel::load(m); }, {"Wan2.1_VAE.safetensors"});
  }
  {
    const std::string m = copy_of(folders().diffusers, "truncated_t5");
    const std::string f = m + "/text_encoder/model.safetensors";
    fs::resize_file(f, fs::file_size(f) / 2);
    expect_error([&] { LoadedModel::load(m); }, {"text_encoder/model.safetensors"});
  }
  {
    const std::string m = copy_of(folders().original, "vae_z_dim");
    testing::write_tiny_dit(testing::tiny_wan_dit_config(false, /*in_out=*/4), m, WanNameLayout::Original);
    expect_error([&] { LoadedModel::load(m); }, {"Wan2.1_VAE.safetensors", "z_dim 16"});
  }
  {
    const std::string m = copy_of(folders().diffusers, "t5_width");
    testing::write_tiny_dit(testing::tiny_wan_dit_config(true, 16, /*text_dim=*/32), m + "/transformer", WanNameLayout::Diffusers);
    expect_error([&] { LoadedModel::load(m); }, {"text_encoder", "text_dim 32"});
  }
}

}  // namespace
}  // namespace fastar
