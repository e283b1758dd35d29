// The tiny decoders TAEHV (taew2_1) and LightTAE (lighttaew2_1) (pipeline-spec.md §3, §8 item 5)
// against an independent PyTorch implementation of the spec's layer table, through goldens written
// by tools/pipeline_golden/make_taehv_golden.py: the published layer structure at widths
// (16, 12, 8, 8) with random fp16-exact weights (an F16 file, as published), a [16, 6, 3, 5] latent,
// the raw decoder output [24, 3, 24, 40] and both variants' stream outputs [21, 3, 24, 40].
// Also: streaming chunk after chunk equals the whole clip, frame accounting, the bounded state and
// the loader (oversize TGrow, variant detection, errors naming the file and the tensor).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "fastar/core/error.h"
#include "fastar/core/safetensors.h"
#include "fastar/model/taehv_decoder.h"
#include "fastar/model/taehv_weights.h"
#include "fastar/model/wan_vae_decoder.h"
#include "test_util.h"

namespace fastar {
namespace {

// fp32 on both sides with identical weights: what remains is summation order (OpenBLAS per-tap GEMMs
// against PyTorch's conv algorithms) through 23 layers; 1e-5 of max|output| as pipeline-spec.md §8 asks.
constexpr double kGoldenTolerance = 1e-5;  // max |ours − PyTorch| / max |PyTorch|
// The same code on the same frames, only the chunk boundaries differ; every GEMM runs per frame with
// the same shape however the clip is chunked, so this is expected bit-identical ("exactly in fp32",
// §8 item 5); 1e-7 only allows for a BLAS whose results depend on buffer alignment.
constexpr double kChunkingTolerance = 1e-7;

std::string golden(const std::string& name) { return testing::source_path("tests/model/golden/" + name); }

struct GoldenIo {
  Tensor latent_normalised;  // [16, 6, 3, 5]
  Tensor raw;                // [24, 3, 24, 40], taew2_1 decoder output: no trim, no clamp
  Tensor frames;             // [21, 3, 24, 40], taew2_1 stream output
  Tensor frames_lighttae;    // [21, 3, 24, 40], LightTAE stream output (denormalised input)
};

const GoldenIo& golden_io() {
  static const GoldenIo io = [] {
    Checkpoint file = Checkpoint::open(golden("taehv_tiny_io.safetensors"));
    return GoldenIo{file.tensor("latent_normalised").to_f32(), file.tensor("raw").to_f32(),
                    file.tensor("frames").to_f32(), file.tensor("frames_lighttae").to_f32()};
  }();
  return io;
}

std::shared_ptr<const TaehvDecoderWeights> golden_weights(TaehvVariant variant = TaehvVariant::Taew2_1) {
  return std::make_shared<const TaehvDecoderWeights>(load_taehv_decoder_weights(golden("taehv_tiny.safetensors"),
                                                                                variant));
}

// max |a − b| / max |b| over all entries; infinity on NaN/Inf (tests/reference/scaled_error.h).
double relative_error(const Tensor& actual, const Tensor& expected) {
  EXPECT_EQ(actual.shape(), expected.shape());
  if (actual.shape() != expected.shape()) return INFINITY;
  return testing::peak_relative_error(actual.data<float>(), expected.data<float>(), expected.numel());
}

// Latent frames [begin, end) of latent [C, T, h, w].
Tensor latent_frames(const Tensor& x, int64_t begin, int64_t end) {
  const int64_t C = x.size(0), T = x.size(1), hw = x.size(2) * x.size(3), n = end - begin;
  Tensor out = Tensor::zeros({C, n, x.size(2), x.size(3)});
  for (int64_t c = 0; c < C; ++c)
    std::memcpy(out.data<float>() + c * n * hw, x.data<float>() + (c * T + begin) * hw, sizeof(float) * n * hw);
  return out;
}

// Concatenates [T_i, ...] tensors along axis 0.
Tensor concat_frames(const std::vector<Tensor>& parts) {
  Shape shape = parts.front().shape();
  int64_t total = 0;
  for (const Tensor& p : parts) total += p.size(0);
  shape[0] = total;
  Tensor out = Tensor::zeros(shape);
  int64_t offset = 0;
  for (const Tensor& p : parts) {
    std::memcpy(out.data<float>() + offset, p.data<float>(), sizeof(float) * p.numel());
    offset += p.numel();
  }
  return out;
}

// Decodes latent [16, T, h, w] in chunks of the given sizes, checking each chunk's frame count.
Tensor decode_in_chunks(TaehvStream& stream, const Tensor& latent, const std::vector<int64_t>& chunks, bool raw) {
  std::vector<Tensor> outputs;
  int64_t begin = 0;
  for (int64_t n : chunks) {
    const int64_t before = stream.latents_decoded();
    Tensor out = raw ? stream.decode_chunk_raw(latent_frames(latent, begin, begin + n))
                     : stream.decode_chunk(latent_frames(latent, begin, begin + n));
    EXPECT_EQ(out.size(0), raw ? 4 * n : taehv_output_frames(before, n)) << "chunk at latent " << begin;
    outputs.push_back(out);
    begin += n;
  }
  return concat_frames(outputs);
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// The golden weights as fp32 named tensors, to write altered copies.
std::vector<std::pair<std::string, Tensor>> golden_named() {
  Checkpoint file = Checkpoint::open(golden("taehv_tiny.safetensors"));
  std::vector<std::pair<std::string, Tensor>> named;
  for (const std::string& name : file.names()) named.emplace_back(name, file.tensor(name).to_f32());
  return named;
}

TEST(TaehvNames, PublishedLayoutHas64DecoderTensors) {
  const std::vector<std::string> names = taehv_tensor_names(TaehvConfig{});
  EXPECT_EQ(names.size(), 64u);
  EXPECT_EQ(names.front(), "decoder.1.weight");
  EXPECT_EQ(names.back(), "decoder.22.bias");
  EXPECT_NE(std::find(names.begin(), names.end(), "decoder.7.conv.weight"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "decoder.17.conv.4.bias"), names.end());
  // Parameter count of the published decoder (pipeline-spec.md §3.1): 9,844,611.
  const TaehvDecoderWeights w = random_taehv_decoder_weights(TaehvConfig{}, 1);
  int64_t params = 0;
  for (const auto& [name, t] : taehv_weights_to_named(w)) params += t.numel();
  EXPECT_EQ(params, 9844611);
}

TEST(TaehvGolden, LoaderReadsWidthsAndIgnoresTheEncoder) {
  const Checkpoint file = Checkpoint::open(golden("taehv_tiny.safetensors"));
  EXPECT_NE(file.find("encoder.0.weight"), nullptr);
  const TaehvConfig config = infer_taehv_config(file);
  EXPECT_EQ(config.widths, (std::array<int64_t, 4>{16, 12, 8, 8}));
  EXPECT_EQ(detect_taehv_variant(file), TaehvVariant::Taew2_1);  // no metadata, no "lighttae" in the name
  EXPECT_EQ(golden_weights()->stages[2].tgrow.weight.shape(), (Shape{16, 8, 1, 1}));
}

TEST(TaehvGolden, RawDecoderMatchesPyTorch) {
  TaehvStream stream(golden_weights());
  const Tensor raw = stream.decode_chunk_raw(golden_io().latent_normalised);
  const double err = relative_error(raw, golden_io().raw);
  EXPECT_LT(err, kGoldenTolerance);
  std::printf("[taehv] raw decoder vs PyTorch: max relative error %.2e\n", err);
}

TEST(TaehvGolden, Taew2_1FramesAreTrimmedClampedAndMatchPyTorch) {
  TaehvStream stream(golden_weights());
  const Tensor frames = stream.decode_chunk(golden_io().latent_normalised);
  ASSERT_EQ(frames.shape(), (Shape{21, 3, 24, 40}));  // 1 + 4·(6 − 1)
  EXPECT_LT(relative_error(frames, golden_io().frames), kGoldenTolerance);
  const float* p = frames.data<float>();
  EXPECT_EQ(*std::min_element(p, p + frames.numel()), 0.0f);  // the random decoder overshoots both ends
  EXPECT_EQ(*std::max_element(p, p + frames.numel()), 1.0f);
}

TEST(TaehvGolden, LightTaeDenormalisesTheLatent) {
  TaehvStream light(golden_weights(TaehvVariant::LightTae));
  const Tensor frames = light.decode_chunk(golden_io().latent_normalised);
  EXPECT_LT(relative_error(frames, golden_io().frames_lighttae), kGoldenTolerance);
  // The scaling flag matters: the same weights without it give the taew2_1 output, far from LightTAE's.
  EXPECT_GT(relative_error(golden_io().frames, golden_io().frames_lighttae), 1e-2);
  // decode_chunk = decode_chunk_raw of the denormalised latent, trimmed and clamped.
  TaehvStream raw_stream(golden_weights(TaehvVariant::LightTae));
  const Tensor raw = raw_stream.decode_chunk_raw(denormalise_wan_latent(golden_io().latent_normalised));
  for (int64_t i = 0; i < frames.numel(); ++i)
    ASSERT_EQ(frames.data<float>()[i], std::clamp(raw.data<float>()[i + 3 * 3 * 24 * 40], 0.0f, 1.0f)) << i;
}

TEST(TaehvGolden, ToleranceCatchesAMissingMemBlockPast) {
  // A decoder that forgets the MemBlock state at every latent (a stream that does not carry it) is
  // far outside the tolerance after the first latent.
  auto weights = golden_weights();
  std::vector<Tensor> parts;
  for (int64_t t = 0; t < 6; ++t) {
    TaehvStream fresh(weights);
    parts.push_back(fresh.decode_chunk_raw(latent_frames(golden_io().latent_normalised, t, t + 1)));
  }
  EXPECT_GT(relative_error(concat_frames(parts), golden_io().raw), 1e-3);
}

class TaehvChunking : public ::testing::TestWithParam<std::vector<int64_t>> {};

TEST_P(TaehvChunking, EqualsWholeClip) {
  auto weights = golden_weights();
  for (bool raw : {true, false}) {
    TaehvStream whole(weights);
    const Tensor expected = raw ? whole.decode_chunk_raw(golden_io().latent_normalised)
                                : whole.decode_chunk(golden_io().latent_normalised);
    TaehvStream chunked(weights);
    const Tensor actual = decode_in_chunks(chunked, golden_io().latent_normalised, GetParam(), raw);
    EXPECT_LE(relative_error(actual, expected), kChunkingTolerance) << (raw ? "raw" : "frames");
    EXPECT_LT(relative_error(actual, raw ? golden_io().raw : golden_io().frames), kGoldenTolerance);
  }
}

INSTANTIATE_TEST_SUITE_P(Chunkings, TaehvChunking,
                         ::testing::Values(std::vector<int64_t>{6}, std::vector<int64_t>{3, 3},
                                           std::vector<int64_t>{1, 2, 3}, std::vector<int64_t>{1, 1, 1, 1, 1, 1},
                                           std::vector<int64_t>{2, 4}, std::vector<int64_t>{5, 1}));

TEST(TaehvStreaming, WholeChunkPassEqualsLatentByLatent) {
  auto weights = golden_weights();
  TaehvStream per_latent(weights);
  TaehvStream one_pass(weights, TaehvStreamOptions{.latents_per_pass = 0});
  const Tensor a = per_latent.decode_chunk_raw(golden_io().latent_normalised);
  const Tensor b = one_pass.decode_chunk_raw(golden_io().latent_normalised);
  EXPECT_LE(relative_error(a, b), kChunkingTolerance);
}

TEST(TaehvStreaming, FrameAccountingMatchesTheWanVae) {
  EXPECT_EQ(taehv_output_frames(0, 1), 1);
  EXPECT_EQ(taehv_output_frames(0, 3), 9);   // first 3-latent chunk
  EXPECT_EQ(taehv_output_frames(3, 3), 12);  // every later one
  int64_t total = 0;
  for (int64_t chunk = 0; chunk < 7; ++chunk) total += taehv_output_frames(3 * chunk, 3);
  EXPECT_EQ(total, 81);  // 21 latents
  for (int64_t before = 0; before < 5; ++before)
    for (int64_t n = 1; n < 5; ++n) EXPECT_EQ(taehv_output_frames(before, n), wan_vae_output_frames(before, n));
  // The stream agrees, chunk by chunk.
  TaehvStream stream(golden_weights());
  int64_t frames = 0;
  for (int64_t t = 0; t < 6; t += 3)
    frames += stream.decode_chunk(latent_frames(golden_io().latent_normalised, t, t + 3)).size(0);
  EXPECT_EQ(frames, 21);
  EXPECT_EQ(stream.latents_decoded(), 6);
  EXPECT_EQ(stream.raw_frames_decoded(), 24);
}

TEST(TaehvStreaming, StateIsOneFramePerMemBlockAndDoesNotGrow) {
  TaehvStream stream(golden_weights());
  EXPECT_EQ(stream.state_bytes(), 0);
  stream.decode_chunk(latent_frames(golden_io().latent_normalised, 0, 2));
  // 3 × [16, 3×5] + 3 × [12, 6×10] + 3 × [8, 12×20] fp32: each stage's MemBlocks run before its
  // upsample (§3.3 at the test size; [256, 60×104] … [64, 240×416] at 480×832)
  const int64_t expected = 4 * 3 * (16 * 3 * 5 + 12 * 6 * 10 + 8 * 12 * 20);
  EXPECT_EQ(stream.state_bytes(), expected);
  stream.decode_chunk(latent_frames(golden_io().latent_normalised, 2, 6));
  EXPECT_EQ(stream.state_bytes(), expected);
}

TEST(TaehvStreaming, ResetStartsANewVideo) {
  TaehvStream stream(golden_weights());
  const Tensor first = stream.decode_chunk(golden_io().latent_normalised);
  stream.reset();
  EXPECT_EQ(stream.latents_decoded(), 0);
  const Tensor again = stream.decode_chunk(golden_io().latent_normalised);
  EXPECT_EQ(relative_error(again, first), 0.0);
}

TEST(TaehvErrors, WrongLatentShapeOrSizeChangeIsAnError) {
  TaehvStream stream(golden_weights());
  std::string message = message_of([&] { stream.decode_chunk(Tensor::zeros({8, 1, 3, 5})); });
  EXPECT_TRUE(testing::contains(message, "[16, T, h, w]")) << message;
  EXPECT_THROW(stream.decode_chunk(Tensor::zeros({1, 16, 1, 3, 5})), Error);  // batch axis
  stream.decode_chunk(Tensor::zeros({16, 1, 3, 5}));
  message = message_of([&] { stream.decode_chunk(Tensor::zeros({16, 1, 4, 5})); });
  EXPECT_TRUE(testing::contains(message, "reset()")) << message;
}

TEST(TaehvErrors, LoaderNamesTheFileAndTheTensor) {
  const std::string dir = testing::make_temp_dir("taehv_errors");
  // A missing tensor.
  std::vector<std::pair<std::string, Tensor>> kept;
  for (auto& [name, t] : golden_named())
    if (name != "decoder.16.conv.2.bias") kept.emplace_back(name, t);
  const std::string missing_path = dir + "/missing.safetensors";
  write_safetensors(missing_path, kept);
  std::string message = message_of([&] { load_taehv_decoder_weights(missing_path); });
  EXPECT_TRUE(testing::contains(message, missing_path)) << message;
  EXPECT_TRUE(testing::contains(message, "'decoder.16.conv.2.bias'")) << message;
  EXPECT_TRUE(testing::contains(message, "missing")) << message;
  // A wrong shape.
  std::vector<std::pair<std::string, Tensor>> bad = golden_named();
  for (auto& [name, t] : bad)
    if (name == "decoder.10.conv.4.weight") t = Tensor::zeros({12, 12, 1, 1});
  const std::string shape_path = dir + "/shape.safetensors";
  write_safetensors(shape_path, bad);
  message = message_of([&] { load_taehv_decoder_weights(shape_path); });
  EXPECT_TRUE(testing::contains(message, shape_path)) << message;
  EXPECT_TRUE(testing::contains(message, "'decoder.10.conv.4.weight'")) << message;
  EXPECT_TRUE(testing::contains(message, "[12, 12, 3, 3]")) << message;
  // Not a TAEHV file at all.
  const std::string other = dir + "/vae.safetensors";
  write_safetensors(other, {{"decoder.conv_in.weight", Tensor::zeros({4, 4})}});
  message = message_of([&] { load_taehv_decoder_weights(other); });
  EXPECT_TRUE(testing::contains(message, other)) << message;
  EXPECT_TRUE(testing::contains(message, "'decoder.22.bias'")) << message;
  EXPECT_TRUE(testing::contains(message, "not a TAEHV")) << message;
  // A bad variant tag.
  const std::string tagged = dir + "/tagged.safetensors";
  write_safetensors(tagged, golden_named(), {{"fastar_taehv_variant", "taew2_2"}});
  message = message_of([&] { load_taehv_decoder_weights(tagged); });
  EXPECT_TRUE(testing::contains(message, "taew2_2")) << message;
}

TEST(TaehvLoader, OversizeTGrowKeepsItsLastRows) {
  // Some shipped files store decoder.7 for stride 2 ([2C, C, 1, 1]) while the model uses stride 1
  // (pipeline-spec.md §3.1): the loader keeps the last C rows.
  std::vector<std::pair<std::string, Tensor>> named = golden_named();
  for (auto& [name, t] : named)
    if (name == "decoder.7.conv.weight") {
      Tensor big = Tensor::zeros({32, 16, 1, 1});
      for (int64_t i = 0; i < 16 * 16; ++i) big.data<float>()[i] = 1e3f;  // rows that must be dropped
      std::memcpy(big.data<float>() + 16 * 16, t.data<float>(), sizeof(float) * 16 * 16);
      t = big;
    }
  const std::string path = testing::make_temp_dir("taehv_oversize") + "/taew2_1.safetensors";
  write_safetensors(path, named);
  TaehvStream stream(std::make_shared<const TaehvDecoderWeights>(load_taehv_decoder_weights(path)));
  EXPECT_LT(relative_error(stream.decode_chunk_raw(golden_io().latent_normalised), golden_io().raw), kGoldenTolerance);
}

TEST(TaehvLoader, VariantFromMetadataOrFileName) {
  const std::string dir = testing::make_temp_dir("taehv_variant");
  write_safetensors(dir + "/lighttaew2_1.safetensors", golden_named());
  EXPECT_EQ(load_taehv_decoder_weights(dir + "/lighttaew2_1.safetensors").variant, TaehvVariant::LightTae);
  write_safetensors(dir + "/decoder.safetensors", golden_named(), {{"fastar_taehv_variant", "lighttaew2_1"}});
  EXPECT_EQ(load_taehv_decoder_weights(dir + "/decoder.safetensors").variant, TaehvVariant::LightTae);
  EXPECT_EQ(load_taehv_decoder_weights(dir + "/decoder.safetensors", TaehvVariant::Taew2_1).variant,
            TaehvVariant::Taew2_1);  // an explicit choice wins
  write_safetensors(dir + "/taew2_1.safetensors", golden_named(), {{"fastar_taehv_variant", "taew2_1"}});
  EXPECT_EQ(load_taehv_decoder_weights(dir + "/taew2_1.safetensors").variant, TaehvVariant::Taew2_1);
}

TEST(TaehvLoader, RandomWeightsRoundTripThroughSafetensors) {
  TaehvConfig config;
  config.widths = {8, 8, 4, 4};
  const TaehvDecoderWeights w = random_taehv_decoder_weights(config, 7);
  const std::string path = testing::make_temp_dir("taehv_roundtrip") + "/taew2_1.safetensors";
  write_safetensors(path, taehv_weights_to_named(w));
  auto loaded = std::make_shared<const TaehvDecoderWeights>(load_taehv_decoder_weights(path));
  EXPECT_EQ(loaded->config.widths, config.widths);
  TaehvStream a(std::make_shared<const TaehvDecoderWeights>(w)), b(loaded);
  const Tensor latent = Tensor::zeros({16, 2, 2, 3});
  EXPECT_EQ(relative_error(b.decode_chunk_raw(latent), a.decode_chunk_raw(latent)), 0.0);
}

// CPU time of one 3-latent chunk at the published widths (random weights), at the test latent size
// and at 60×104 (480×832 output). Opt-in: --gtest_also_run_disabled_tests.
TEST(TaehvTiming, DISABLED_ThreeLatentChunkAtPublishedWidths) {
  auto weights = std::make_shared<const TaehvDecoderWeights>(random_taehv_decoder_weights(TaehvConfig{}, 3));
  for (auto [h, w] : {std::pair<int64_t, int64_t>{3, 5}, {60, 104}}) {
    TaehvStream stream(weights);
    const Tensor latent = Tensor::zeros({16, 3, h, w});
    for (int chunk = 0; chunk < 2; ++chunk) {
      const auto start = std::chrono::steady_clock::now();
      const Tensor frames = stream.decode_chunk(latent);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("[taehv timing] latent %lldx%lld, chunk %d (3 latents -> %lld frames %lldx%lld): %.3f s\n",
                  static_cast<long long>(h), static_cast<long long>(w), chunk, static_cast<long long>(frames.size(0)),
                  static_cast<long long>(frames.size(2)), static_cast<long long>(frames.size(3)), s);
      std::fflush(stdout);
    }
  }
}

}  // namespace
}  // namespace fastar
