// The Wan2.1 VAE decoder (pipeline-spec.md §2) against diffusers' AutoencoderKLWan, through goldens
// written by tools/pipeline_golden/make_wan_vae_golden.py: the real layer structure at base_dim 8
// (widths [32, 32, 32, 16, 8]) with random bf16-exact weights, a [16, 6, 4, 6] latent and the
// decoder output [3, 21, 32, 48] before the clamp. Also: streaming chunk after chunk equals the
// whole clip, the first-latent ('Rep') rule, the bounded cache and the loader's errors (§2.9, §8).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <set>
#include <tuple>
#include <vector>

#include "fastar/core/error.h"
#include "fastar/core/safetensors.h"
#include "fastar/model/wan_vae_decoder.h"
#include "fastar/model/wan_vae_weights.h"
#include "test_util.h"

namespace fastar {
namespace {

// fp32 on both sides with identical weights: what remains is summation order (OpenBLAS tilings
// against PyTorch's conv algorithms, double against fp32 norm statistics) through ~30 layers;
// measured 1.7e-6 of max|output| (1 and 2 threads). 1e-5 leaves room for other BLAS builds; real
// bugs (a swapped even/odd frame, the 'Rep' rule, the latent statistics, a missing gamma or
// shortcut) move the output by > 1e-2 (ToleranceCatches…, FirstLatentRule tests).
constexpr double kGoldenTolerance = 1e-5;  // max |ours − diffusers| / max |diffusers|
// The same code on the same frames, only the chunk boundaries differ. Every GEMM runs per frame
// with the same shape however the clip is chunked, so this is bit-identical here (measured 0);
// 1e-6 only allows for a BLAS whose results depend on the buffers' alignment.
constexpr double kChunkingTolerance = 1e-6;

std::string golden(const std::string& name) { return testing::source_path("tests/model/golden/" + name); }

struct GoldenIo {
  Tensor latent_normalised;  // [16, 6, 4, 6]
  Tensor decoded;            // [3, 21, 32, 48], diffusers before its clamp
};

const GoldenIo& golden_io() {
  static const GoldenIo io = [] {
    Checkpoint file = Checkpoint::open(golden("wan_vae_tiny_io.safetensors"));
    return GoldenIo{file.tensor("latent_normalised").to_f32(), file.tensor("decoded").to_f32()};
  }();
  return io;
}

std::shared_ptr<const WanVaeDecoderWeights> golden_weights(const std::string& file) {
  return std::make_shared<const WanVaeDecoderWeights>(load_wan_vae_decoder_weights(golden(file)));
}

std::shared_ptr<const WanVaeDecoderWeights> diffusers_weights() {
  static const auto weights = golden_weights("wan_vae_tiny_diffusers.safetensors");
  return weights;
}

// max |a − b| / max |b| over all entries; infinity on NaN/Inf (tests/reference/scaled_error.h).
double relative_error(const Tensor& actual, const Tensor& expected) {
  EXPECT_EQ(actual.shape(), expected.shape());
  if (actual.shape() != expected.shape()) return INFINITY;
  return testing::peak_relative_error(actual.data<float>(), expected.data<float>(), expected.numel());
}

// Frames [begin, end) of a [C, T, ...] or [T, ...] tensor along `axis` (0 or 1).
Tensor frames_along(const Tensor& x, int64_t axis, int64_t begin, int64_t end) {
  Shape shape = x.shape();
  const int64_t outer = axis == 0 ? 1 : shape[0];
  const int64_t T = shape[static_cast<size_t>(axis)];
  const int64_t inner = x.numel() / (outer * T);
  shape[static_cast<size_t>(axis)] = end - begin;
  Tensor out = Tensor::zeros(shape);
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(out.data<float>() + o * (end - begin) * inner, x.data<float>() + (o * T + begin) * inner,
                sizeof(float) * (end - begin) * inner);
  return out;
}

// Concatenates [C, T_i, ...] tensors along T (axis 1) or [T_i, ...] along axis 0.
Tensor concat_frames(const std::vector<Tensor>& parts, int64_t axis) {
  Shape shape = parts.front().shape();
  int64_t total = 0;
  for (const Tensor& p : parts) total += p.size(axis);
  shape[static_cast<size_t>(axis)] = total;
  Tensor out = Tensor::zeros(shape);
  const int64_t outer = axis == 0 ? 1 : shape[0];
  const int64_t inner = out.numel() / (outer * total);
  int64_t offset = 0;
  for (const Tensor& p : parts) {
    const int64_t t = p.size(axis);
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(out.data<float>() + (o * total + offset) * inner, p.data<float>() + o * t * inner,
                  sizeof(float) * t * inner);
    offset += t;
  }
  return out;
}

// Decodes latent [16, T, h, w] in chunks of the given sizes (prefix of T if they sum to less).
Tensor decode_in_chunks(WanVaeStream& stream, const Tensor& latent, const std::vector<int64_t>& chunks,
                        bool unclamped) {
  std::vector<Tensor> outputs;
  int64_t begin = 0;
  for (int64_t n : chunks) {
    Tensor chunk = frames_along(latent, 1, begin, begin + n);
    const int64_t before = stream.latents_decoded();
    Tensor out = unclamped ? stream.decode_chunk_unclamped(chunk) : stream.decode_chunk(chunk);
    EXPECT_EQ(out.size(unclamped ? 1 : 0), wan_vae_output_frames(before, n));
    outputs.push_back(out);
    begin += n;
  }
  return concat_frames(outputs, unclamped ? 1 : 0);
}

// The golden output mapped as decode_chunk maps it: clamp, ·0.5 + 0.5, [3, T] -> [T, 3].
Tensor golden_frames() {
  const Tensor& d = golden_io().decoded;
  const int64_t C = d.size(0), T = d.size(1), hw = d.size(2) * d.size(3);
  Tensor frames = Tensor::zeros({T, C, d.size(2), d.size(3)});
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < hw; ++i)
        frames.data<float>()[(t * C + c) * hw + i] =
            std::clamp(d.data<float>()[(c * T + t) * hw + i], -1.0f, 1.0f) * 0.5f + 0.5f;
  return frames;
}

TEST(WanVaeNames, RealModelHas108DecoderTensorsInBothLayouts) {
  for (WanVaeNameLayout layout : {WanVaeNameLayout::Original, WanVaeNameLayout::Diffusers}) {
    const std::vector<std::string> names = wan_vae_tensor_names(WanVaeConfig{}, layout);
    EXPECT_EQ(names.size(), 108u);  // pipeline-spec.md §2.1
    EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size()) << "a name registered twice";
  }
  const std::vector<std::string> original = wan_vae_tensor_names(WanVaeConfig{}, WanVaeNameLayout::Original);
  EXPECT_NE(std::find(original.begin(), original.end(), "decoder.upsamples.4.shortcut.weight"), original.end());
  EXPECT_NE(std::find(original.begin(), original.end(), "decoder.upsamples.11.resample.1.weight"), original.end());
  EXPECT_NE(std::find(original.begin(), original.end(), "decoder.head.2.bias"), original.end());
}

TEST(WanVaeNames, GoldenFilesHoldExactlyTheRegisteredNames) {
  for (auto [file, layout] : {std::pair{"wan_vae_tiny_original.safetensors", WanVaeNameLayout::Original},
                              std::pair{"wan_vae_tiny_diffusers.safetensors", WanVaeNameLayout::Diffusers}}) {
    Checkpoint checkpoint = Checkpoint::open(golden(file));
    EXPECT_EQ(detect_wan_vae_layout(checkpoint), layout) << file;
    const WanVaeConfig config = infer_wan_vae_config(checkpoint);
    EXPECT_EQ(config.base_dim, 8);
    std::vector<std::string> names = wan_vae_tensor_names(config, layout);
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, checkpoint.names()) << file;
  }
}

TEST(WanVaeGolden, DecoderMatchesDiffusers) {
  WanVaeStream stream(diffusers_weights());
  const Tensor z = denormalise_wan_latent(golden_io().latent_normalised);
  const Tensor decoded = stream.decode_chunk_unclamped(z);
  EXPECT_LT(relative_error(decoded, golden_io().decoded), kGoldenTolerance);
  EXPECT_EQ(stream.latents_decoded(), 6);
  EXPECT_EQ(stream.frames_decoded(), 21);
}

TEST(WanVaeGolden, FramesAreDenormalisedClampedAndInUnitRange) {
  WanVaeStream stream(diffusers_weights());
  const Tensor frames = stream.decode_chunk(golden_io().latent_normalised);  // [21, 3, 32, 48]
  ASSERT_EQ(frames.shape(), (Shape{21, 3, 32, 48}));
  EXPECT_LT(relative_error(frames, golden_frames()), kGoldenTolerance);
  const float* p = frames.data<float>();
  EXPECT_GE(*std::min_element(p, p + frames.numel()), 0.0f);
  EXPECT_LE(*std::max_element(p, p + frames.numel()), 1.0f);
}

TEST(WanVaeGolden, OriginalNamesGiveIdenticalOutput) {
  // Same fp32 values (bf16-exact, stored once as F32 and once as BF16) under the two name layouts.
  WanVaeStream diffusers(diffusers_weights());
  WanVaeStream original(golden_weights("wan_vae_tiny_original.safetensors"));
  const Tensor a = diffusers.decode_chunk(golden_io().latent_normalised);
  const Tensor b = original.decode_chunk(golden_io().latent_normalised);
  ASSERT_EQ(a.shape(), b.shape());
  EXPECT_EQ(std::memcmp(a.data<float>(), b.data<float>(), static_cast<size_t>(a.nbytes())), 0);
}

TEST(WanVaeGolden, ToleranceCatchesAWrongLatentStatistic) {
  // Decoding without the mean/std step (the diffusers-pipeline mistake of §2.6) must fail the test.
  WanVaeStream stream(diffusers_weights());
  const Tensor decoded = stream.decode_chunk_unclamped(golden_io().latent_normalised);
  EXPECT_GT(relative_error(decoded, golden_io().decoded), 1e-2);
}

// (chunk sizes, latents per pass: 1 = latent by latent, 0 = each chunk in one pass)
class WanVaeChunking : public ::testing::TestWithParam<std::tuple<std::vector<int64_t>, int64_t>> {};

TEST_P(WanVaeChunking, EqualsWholeClip) {
  const auto& [chunks, latents_per_pass] = GetParam();
  const int64_t latents = std::accumulate(chunks.begin(), chunks.end(), int64_t{0});
  // Unclamped, so no difference hides under the clamp. The decoder is causal, so a prefix of the
  // clip decodes to the prefix of the whole clip's frames.
  static const Tensor z = denormalise_wan_latent(golden_io().latent_normalised);
  static const Tensor whole = WanVaeStream(diffusers_weights()).decode_chunk_unclamped(z);  // [3, 21, 32, 48]
  const Tensor reference = frames_along(whole, 1, 0, wan_vae_output_frames(0, latents));
  WanVaeStream stream(diffusers_weights(), {.latents_per_pass = latents_per_pass});
  const Tensor chunked = decode_in_chunks(stream, z, chunks, /*unclamped=*/true);
  EXPECT_LT(relative_error(chunked, reference), kChunkingTolerance);
  EXPECT_EQ(stream.frames_decoded(), 1 + 4 * (latents - 1));
}

INSTANTIATE_TEST_SUITE_P(Chunkings, WanVaeChunking,
                         ::testing::Combine(::testing::Values(std::vector<int64_t>{1, 2}, std::vector<int64_t>{3, 3},
                                                              std::vector<int64_t>{1, 1, 1}, std::vector<int64_t>{6},
                                                              std::vector<int64_t>{1, 5}, std::vector<int64_t>{2, 4},
                                                              std::vector<int64_t>{1, 2, 3},
                                                              std::vector<int64_t>{1, 1, 1, 1, 1, 1}),
                                            ::testing::Values(int64_t{1}, int64_t{0})));

TEST(WanVaeStreaming, FrameAccountingIsOnePlusFourPerLatent) {
  EXPECT_EQ(wan_vae_output_frames(0, 3), 9);  // pipeline-spec.md §1: first 3-latent chunk
  EXPECT_EQ(wan_vae_output_frames(3, 3), 12);
  EXPECT_EQ(wan_vae_output_frames(0, 21), 81);
  EXPECT_EQ(wan_vae_output_frames(0, 1), 1);
  EXPECT_EQ(wan_vae_output_frames(0, 3, WanVaeFirstLatent::ThroughTimeConv), 12);
}

TEST(WanVaeStreaming, CacheIsTwoFramesPerCausalConvAndDoesNotGrow) {
  WanVaeStream stream(diffusers_weights());
  const Tensor& latent = golden_io().latent_normalised;
  stream.decode_chunk(frames_along(latent, 1, 0, 2));
  const int64_t after_first = stream.cache_bytes();
  EXPECT_EQ(stream.cache_slots(), 32);  // pipeline-spec.md §2.3
  // 2 frames × (1×16 + 11×4b channels at h×w, 1×2b + 6×4b at 2h×2w, 6×2b at 4h×4w, 7×b at 8h×8w), b = 8,
  // h×w = 4×6: the spec's 944,286,720 elements at b = 96, 60×104, scaled.
  const int64_t b = 8, hw = 4 * 6;
  const int64_t elements = 2 * hw * ((16 + 11 * 4 * b) + 4 * (2 * b + 6 * 4 * b) + 16 * (6 * 2 * b) + 64 * (7 * b));
  EXPECT_EQ(after_first, elements * 4);
  stream.decode_chunk(frames_along(latent, 1, 2, 4));
  stream.decode_chunk(frames_along(latent, 1, 4, 6));
  EXPECT_EQ(stream.cache_bytes(), after_first);
  stream.reset();
  EXPECT_EQ(stream.cache_bytes(), 0);
  EXPECT_EQ(stream.latents_decoded(), 0);
}

TEST(WanVaeStreaming, ResetStartsANewVideo) {
  WanVaeStream stream(diffusers_weights());
  const Tensor& latent = golden_io().latent_normalised;
  const Tensor first = stream.decode_chunk(frames_along(latent, 1, 0, 3));
  stream.decode_chunk(frames_along(latent, 1, 3, 6));
  stream.reset();
  const Tensor again = stream.decode_chunk(frames_along(latent, 1, 0, 3));
  ASSERT_EQ(again.shape(), first.shape());
  EXPECT_EQ(std::memcmp(again.data<float>(), first.data<float>(), static_cast<size_t>(first.nbytes())), 0);
}

TEST(WanVaeFirstLatentRule, DecoderThatForgetsItFailsOnLaterLatents) {
  // (a) The Self-Forcing demo's zero-cache start (§2.5 item 1): latent 0 goes through time_conv and
  //     yields 4 frames; even after dropping 3 of them, latents >= 1 differ from the reference.
  const Tensor reference = golden_frames();  // [21, 3, 32, 48]
  WanVaeStream through(diffusers_weights(), {.first_latent = WanVaeFirstLatent::ThroughTimeConv});
  const Tensor demo = through.decode_chunk(golden_io().latent_normalised);
  ASSERT_EQ(demo.size(0), 24);
  const Tensor demo_trimmed = frames_along(demo, 0, 3, 24);
  EXPECT_GT(relative_error(frames_along(demo_trimmed, 0, 1, 21), frames_along(reference, 0, 1, 21)), 1e-2);
  // (b) A chunked decoder that starts every chunk as a new stream (clear_cache per chunk, §2.5
  //     item 3): the second 3-latent chunk gives 9 frames instead of 12, and different ones.
  const Tensor& latent = golden_io().latent_normalised;
  WanVaeStream restarted(diffusers_weights());
  restarted.decode_chunk(frames_along(latent, 1, 0, 3));
  restarted.reset();
  const Tensor second = restarted.decode_chunk(frames_along(latent, 1, 3, 6));
  EXPECT_EQ(second.size(0), 9);
  EXPECT_GT(relative_error(second, frames_along(reference, 0, 12, 21)), 1e-2);
}

TEST(WanVaeLatent, DenormalisationUsesWanStatistics) {
  Tensor zn = Tensor::zeros({16, 1, 1, 2});
  for (int64_t c = 0; c < 16; ++c) zn.data<float>()[c * 2 + 1] = 1.0f;
  const Tensor z = denormalise_wan_latent(zn);
  EXPECT_FLOAT_EQ(z.data<float>()[0], -0.7571f);            // channel 0: mean
  EXPECT_FLOAT_EQ(z.data<float>()[1], -0.7571f + 2.8184f);  // mean + std
  EXPECT_FLOAT_EQ(z.data<float>()[15 * 2 + 1], -0.2921f + 1.9160f);
}

TEST(WanVaeErrors, WrongLatentShapeOrSizeChangeIsAnError) {
  WanVaeStream stream(diffusers_weights());
  try {
    stream.decode_chunk(Tensor::zeros({48, 1, 4, 6}));
    FAIL() << "no error for a 48-channel latent";
  } catch (const Error& e) {
    EXPECT_TRUE(testing::contains(e.what(), "[16, T, h, w]")) << e.what();
  }
  EXPECT_THROW(stream.decode_chunk(Tensor::zeros({1, 16, 1, 4, 6})), Error);  // batch axis
  stream.decode_chunk(Tensor::zeros({16, 1, 4, 6}));
  try {
    stream.decode_chunk(Tensor::zeros({16, 1, 4, 8}));
    FAIL() << "no error for a latent size change mid-stream";
  } catch (const Error& e) {
    EXPECT_TRUE(testing::contains(e.what(), "reset()")) << e.what();
  }
}

// Writes the golden diffusers weights with one tensor changed by `edit` (or left out when it
// returns an undefined tensor) and returns the load error message.
std::string load_error_after(const std::string& name, const std::function<Tensor(const Tensor&)>& edit,
                             std::string* path_out) {
  const auto weights = diffusers_weights();
  auto named = wan_vae_weights_to_named(*weights, WanVaeNameLayout::Diffusers);
  std::vector<std::pair<std::string, Tensor>> kept;
  for (auto& [n, t] : named) {
    Tensor value = n == name ? edit(t) : t;
    if (value.defined()) kept.emplace_back(n, value);
  }
  const std::string path = testing::make_temp_dir("wan_vae_errors") + "/vae.safetensors";
  write_safetensors(path, kept);
  *path_out = path;
  try {
    load_wan_vae_decoder_weights(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(WanVaeErrors, LoaderNamesTheFileAndTheTensor) {
  std::string path;
  std::string message = load_error_after(
      "decoder.conv_out.bias", [](const Tensor&) { return Tensor(); }, &path);
  EXPECT_TRUE(testing::contains(message, path)) << message;
  EXPECT_TRUE(testing::contains(message, "'decoder.conv_out.bias'")) << message;
  EXPECT_TRUE(testing::contains(message, "missing")) << message;

  message = load_error_after(
      "decoder.up_blocks.1.resnets.0.conv_shortcut.weight",
      [](const Tensor&) {
        return Tensor::zeros({32, 16, 3, 3, 3});
      },
      &path);
  EXPECT_TRUE(testing::contains(message, "decoder.up_blocks.1.resnets.0.conv_shortcut.weight")) << message;
  EXPECT_TRUE(testing::contains(message, "[32, 16, 1, 1, 1]")) << message;

  // A Wan2.2-style 48-channel latent is refused with a reason.
  message = load_error_after(
      "decoder.conv_in.weight",
      [](const Tensor&) {
        return Tensor::zeros({32, 48, 3, 3, 3});
      },
      &path);
  EXPECT_TRUE(testing::contains(message, "48 latent channels")) << message;

  // Not a VAE at all.
  const std::string other = testing::make_temp_dir("wan_vae_not_a_vae") + "/dit.safetensors";
  write_safetensors(other, {{"blocks.0.self_attn.q.weight", Tensor::zeros({4, 4})}});
  try {
    load_wan_vae_decoder_weights(other);
    FAIL() << "no error for a non-VAE file";
  } catch (const Error& e) {
    EXPECT_TRUE(testing::contains(e.what(), other)) << e.what();
    EXPECT_TRUE(testing::contains(e.what(), "not a Wan2.1 VAE")) << e.what();
  }
}

TEST(WanVaeWeights, RandomWeightsRoundTripThroughBothLayouts) {
  WanVaeConfig config;
  config.base_dim = 4;
  const WanVaeDecoderWeights weights = random_wan_vae_decoder_weights(config, 7);
  const std::string dir = testing::make_temp_dir("wan_vae_roundtrip");
  const Tensor latent = Tensor::zeros({16, 2, 2, 3});
  Tensor reference;
  for (WanVaeNameLayout layout : {WanVaeNameLayout::Original, WanVaeNameLayout::Diffusers}) {
    const std::string path = dir + (layout == WanVaeNameLayout::Original ? "/original" : "/diffusers") + ".safetensors";
    write_safetensors(path, wan_vae_weights_to_named(weights, layout));
    WanVaeStream stream(std::make_shared<const WanVaeDecoderWeights>(load_wan_vae_decoder_weights(path)));
    const Tensor frames = stream.decode_chunk(latent);
    ASSERT_EQ(frames.shape(), (Shape{5, 3, 16, 24}));
    if (!reference.defined()) reference = frames;
    EXPECT_EQ(std::memcmp(frames.data<float>(), reference.data<float>(), static_cast<size_t>(frames.nbytes())), 0);
  }
}

}  // namespace
}  // namespace fastar
