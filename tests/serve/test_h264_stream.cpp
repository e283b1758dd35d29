// --codec h264 (serving-spec.md §3.3 path (iii), §6.8 "JPEG and H.264 encoders"): the per-session
// libx264 encoder's access units decode back (libavcodec's H.264 decoder, in the test) to the world's
// frames within a PSNR bound; keyframes at the start, after a reset and every --keyframe-interval
// frames, each an IDR with its SPS and PPS in band; the codec string matches the SPS; the media
// header's kind and key flag; the codec request's schema; a server streaming H.264 end to end.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <tuple>
#include <string>
#include <vector>

#include "fastar/core/error.h"
#include "fastar/serve/chunk_encoder.h"
#include "fastar/serve/client_message.h"
#include "fastar/serve/h264_encoder.h"
#include "fastar/serve/jpeg_encoder.h"
#include "fastar/serve/media_header.h"
#include "fastar/serve/server.h"
#include "fastar/serve/video_codec.h"
#include "fastar/serve/world_chunk_source.h"
#include "fastar/world/world.h"
#include "serve_test_client.h"

#ifdef FASTAR_HAVE_VIDEO
extern "C" {
#include <libavcodec/avcodec.h>
#include <libswscale/swscale.h>
}
#endif

namespace fastar::serve {
namespace {

// The bound for H.264 at the default --h264-crf 20 on world frames: 4:2:0 chroma on 64x64 frames with
// sharp coloured edges costs more than JPEG's 4:4:4 (which the JPEG tests hold to 30 dB too).
constexpr double kMinPsnrDb = 30.0;

[[maybe_unused]] std::vector<RgbFrame> world_frames(const std::string& prompt, const std::string& actions, int count, uint64_t seed = 3) {
  Tensor frames = world::render_frames(prompt, world::parse_actions(actions, count), seed, count);
  std::vector<RgbFrame> out;
  const size_t bytes = world::kFrameSize * world::kFrameSize * 3;
  for (int f = 0; f < count; ++f) {
    RgbFrame frame{world::kFrameSize, world::kFrameSize, {}};
    frame.rgb.assign(frames.data<uint8_t>() + f * bytes, frames.data<uint8_t>() + (f + 1) * bytes);
    out.push_back(std::move(frame));
  }
  return out;
}

[[maybe_unused]] double psnr(const RgbFrame& a, const RgbFrame& b) {
  // b may be the padded (even) size: compare a's pixels.
  double squared = 0;
  for (int y = 0; y < a.height; ++y)
    for (int x = 0; x < a.width * 3; ++x) {
      const double d = double(a.rgb[(size_t(y) * a.width * 3) + x]) - b.rgb[(size_t(y) * b.width * 3) + x];
      squared += d * d;
    }
  const double mse = squared / (double(a.width) * a.height * 3);
  return mse == 0 ? 99.0 : 10 * std::log10(255.0 * 255.0 / mse);
}

// NAL unit types in an Annex-B access unit (start codes 00 00 01 / 00 00 00 01).
[[maybe_unused]] std::vector<int> nal_types(const std::string& au, std::vector<size_t>* starts = nullptr) {
  std::vector<int> types;
  for (size_t i = 0; i + 3 < au.size(); ++i) {
    if (au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1) {
      types.push_back(static_cast<uint8_t>(au[i + 3]) & 0x1f);
      if (starts) starts->push_back(i + 3);
      i += 2;
    }
  }
  return types;
}

TEST(VideoCodec, NamesLevelsAndCodecStrings) {
  EXPECT_EQ(parse_video_codec("jpeg"), VideoCodec::Jpeg);
  EXPECT_EQ(parse_video_codec("h264"), VideoCodec::H264);
  EXPECT_FALSE(parse_video_codec("H264"));
  EXPECT_FALSE(parse_video_codec("vp9"));
  EXPECT_EQ(h264_level_for(64, 64, 16), 10);     // 16 macroblocks, 256 MB/s
  EXPECT_EQ(h264_level_for(832, 480, 16), 30);   // 1560 MBs: over 2.1's 792, within 3.0's 1620
  EXPECT_EQ(h264_level_for(1280, 720, 30), 31);
  EXPECT_EQ(h264_codec_string(64, 64, 16), "avc1.42C00A");
  EXPECT_EQ(h264_codec_string(832, 480, 16), "avc1.42C01E");
  EXPECT_EQ(h264_codec_string(63, 63, 16), "avc1.42C00A");  // padded to 64x64
  EXPECT_THROW(h264_level_for(16384, 16384, 60), fastar::Error);
  EXPECT_THROW(h264_level_for(0, 64, 16), fastar::Error);
}

TEST(ClientMessage, CodecRequestsAreSchemaChecked) {
  auto hello = parse_client_message(R"({"type":"hello","v":1,"prompt":"a red circle stays .","video":"h264"})");
  ASSERT_TRUE(std::holds_alternative<ClientMessage>(hello));
  EXPECT_EQ(std::get<HelloMessage>(std::get<ClientMessage>(hello)).video, VideoCodec::H264);
  auto plain = parse_client_message(R"({"type":"hello","v":1,"prompt":"a red circle stays ."})");
  ASSERT_TRUE(std::holds_alternative<ClientMessage>(plain));
  EXPECT_FALSE(std::get<HelloMessage>(std::get<ClientMessage>(plain)).video);
  auto set = parse_client_message(R"({"type":"set_video","video":"jpeg"})");
  ASSERT_TRUE(std::holds_alternative<ClientMessage>(set));
  EXPECT_EQ(std::get<VideoMessage>(std::get<ClientMessage>(set)).video, VideoCodec::Jpeg);
  EXPECT_STREQ(message_type_name(std::get<ClientMessage>(set)), "set_video");
  for (const char* bad : {R"({"type":"hello","v":1,"prompt":"x","video":"vp9"})",
                          R"({"type":"hello","v":1,"prompt":"x","video":264})",
                          R"({"type":"hello","v":1,"prompt":"x","video":null})",
                          R"({"type":"set_video"})",
                          R"({"type":"set_video","video":"mjpeg"})",
                          R"({"type":"set_video","video":"h264","bitrate":5})"}) {
    auto parsed = parse_client_message(bad);
    ASSERT_TRUE(std::holds_alternative<ParseFailure>(parsed)) << bad;
    EXPECT_NE(std::get<ParseFailure>(parsed).message.find("video"), std::string::npos) << bad;
  }
}

TEST(MediaHeader, KindAndKeyFlagOfH264Messages) {
  MediaHeader header;
  header.kind = MediaKind::H264;
  header.key = false;
  header.frame_index = 7;
  std::string message;
  append_media_header(header, message);
  message += "payload";
  auto back = read_media_header(message);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->kind, MediaKind::H264);
  EXPECT_FALSE(back->key);
  set_media_key_flag(true, message);
  EXPECT_TRUE(read_media_header(message)->key);
  EXPECT_EQ(read_media_header(message)->frame_index, 7u);
  set_media_key_flag(false, message);
  EXPECT_FALSE(read_media_header(message)->key);
  std::string unknown = message;
  unknown[4] = 9;  // no such kind
  EXPECT_FALSE(read_media_header(unknown));
  std::string too_short = "FAR1";
  EXPECT_THROW(set_media_key_flag(true, too_short), fastar::Error);
}

#ifdef FASTAR_HAVE_VIDEO

// libavcodec's H.264 decoder, one access unit in, one RGB frame out (no delay: no B-frames).
class TestH264Decoder {
 public:
  TestH264Decoder() {
    const AVCodec* codec = avcodec_find_decoder(AV_CODEC_ID_H264);
    if (!codec) throw std::runtime_error("no H.264 decoder");
    context_ = avcodec_alloc_context3(codec);
    context_->flags |= AV_CODEC_FLAG_LOW_DELAY;
    context_->thread_count = 1;
    if (avcodec_open2(context_, codec, nullptr) < 0) throw std::runtime_error("cannot open the H.264 decoder");
    frame_ = av_frame_alloc();
    packet_ = av_packet_alloc();
  }
  ~TestH264Decoder() {
    sws_freeContext(sws_);
    av_frame_free(&frame_);
    av_packet_free(&packet_);
    avcodec_free_context(&context_);
  }
  // The decoded frame, or none when the decoder rejects the unit or holds it back.
  std::optional<RgbFrame> decode(const std::string& au) {
    av_new_packet(packet_, static_cast<int>(au.size()));
    std::memcpy(packet_->data, au.data(), au.size());
    const int sent = avcodec_send_packet(context_, packet_);
    av_packet_unref(packet_);
    if (sent < 0) return std::nullopt;
    if (avcodec_receive_frame(context_, frame_) < 0) return std::nullopt;
    RgbFrame rgb{frame_->width, frame_->height, std::vector<uint8_t>(size_t(frame_->width) * frame_->height * 3)};
    sws_ = sws_getCachedContext(sws_, frame_->width, frame_->height, static_cast<AVPixelFormat>(frame_->format), frame_->width,
                                frame_->height, AV_PIX_FMT_RGB24, SWS_BILINEAR | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr,
                                nullptr, nullptr);
    uint8_t* planes[1] = {rgb.rgb.data()};
    const int strides[1] = {frame_->width * 3};
    sws_scale(sws_, frame_->data, frame_->linesize, 0, frame_->height, planes, strides);
    av_frame_unref(frame_);
    return rgb;
  }

 private:
  AVCodecContext* context_ = nullptr;
  AVFrame* frame_ = nullptr;
  AVPacket* packet_ = nullptr;
  SwsContext* sws_ = nullptr;
};

TEST(H264Encoder, TheStreamDecodesBackToTheWorldFrames) {
  const std::vector<RgbFrame> frames = world_frames("a red circle bounces . background stripes stays .", "RRRRRRDDDDDDLLLLLLUUUUUU", 24);
  H264Encoder encoder(64, 64, 16, H264Settings{/*keyframe_interval=*/10, /*crf=*/20});
  EXPECT_EQ(encoder.codec_string(), "avc1.42C00A");
  TestH264Decoder decoder;
  double worst = 99, total_bytes = 0;
  for (size_t f = 0; f < frames.size(); ++f) {
    std::string au;
    const bool key = encoder.encode(frames[f], false, au);
    total_bytes += au.size();
    // Keyframes: frame 0 and every 10 frames; each one an IDR (5) after its SPS (7) and PPS (8).
    EXPECT_EQ(key, f % 10 == 0) << "frame " << f;
    const std::vector<int> types = nal_types(au);
    ASSERT_FALSE(types.empty()) << "frame " << f << ": not Annex-B";
    EXPECT_EQ(au.compare(0, 4, std::string("\0\0\0\1", 4)), 0) << "frame " << f << " starts with a 4-byte start code";
    const bool has_idr = std::find(types.begin(), types.end(), 5) != types.end();
    const bool has_sps = std::find(types.begin(), types.end(), 7) != types.end();
    const bool has_pps = std::find(types.begin(), types.end(), 8) != types.end();
    EXPECT_EQ(has_idr, key) << "frame " << f;
    EXPECT_EQ(has_sps && has_pps, key) << "frame " << f << ": SPS and PPS travel in band with (only) the keyframes";
    auto back = decoder.decode(au);
    ASSERT_TRUE(back) << "frame " << f << " did not decode at once";
    ASSERT_EQ(back->width, 64);
    ASSERT_EQ(back->height, 64);
    const double p = psnr(frames[f], *back);
    worst = std::min(worst, p);
    EXPECT_GT(p, kMinPsnrDb) << "frame " << f;
  }
  std::printf("H.264 64x64 world frames: worst PSNR %.1f dB, %.0f bytes/frame\n", worst, total_bytes / frames.size());
  // Negative control: the comparison rejects a frame of a different scene.
  const std::vector<RgbFrame> other = world_frames("a blue square stays .", "", 1);
  EXPECT_LT(psnr(other[0], frames[0]), kMinPsnrDb);
}

TEST(H264Encoder, TheCodecStringMatchesTheSps) {
  for (auto [w, h] : {std::pair{64, 64}, std::pair{832, 480}, std::pair{63, 61}}) {
    RgbFrame frame{w, h, std::vector<uint8_t>(size_t(w) * h * 3, 90)};
    H264Encoder encoder(w, h, 16, H264Settings{});
    std::string au;
    ASSERT_TRUE(encoder.encode(frame, false, au));
    std::vector<size_t> starts;
    const std::vector<int> types = nal_types(au, &starts);
    const auto sps = std::find(types.begin(), types.end(), 7);
    ASSERT_NE(sps, types.end());
    const size_t at = starts[sps - types.begin()];
    char text[16];
    std::snprintf(text, sizeof text, "avc1.%02X%02X%02X", static_cast<uint8_t>(au[at + 1]), static_cast<uint8_t>(au[at + 2]),
                  static_cast<uint8_t>(au[at + 3]));
    EXPECT_EQ(encoder.codec_string(), text) << w << "x" << h;
    EXPECT_EQ(encoder.coded_width(), w + (w & 1));
    EXPECT_EQ(encoder.coded_height(), h + (h & 1));
  }
}

TEST(H264Encoder, OddSizesArePaddedAndDecodeBack) {
  std::vector<RgbFrame> frames = world_frames("a green circle stays .", "", 4);
  for (RgbFrame& frame : frames) {  // crop 64x64 to 63x61
    RgbFrame cropped{63, 61, {}};
    for (int y = 0; y < 61; ++y) cropped.rgb.insert(cropped.rgb.end(), frame.rgb.begin() + y * 64 * 3, frame.rgb.begin() + y * 64 * 3 + 63 * 3);
    frame = std::move(cropped);
  }
  H264Encoder encoder(63, 61, 16, H264Settings{});
  TestH264Decoder decoder;
  for (const RgbFrame& frame : frames) {
    std::string au;
    encoder.encode(frame, false, au);
    auto back = decoder.decode(au);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->width, 64);
    EXPECT_EQ(back->height, 62);
    EXPECT_GT(psnr(frame, *back), kMinPsnrDb);
  }
  RgbFrame wrong{64, 64, std::vector<uint8_t>(64 * 64 * 3)};
  std::string au;
  EXPECT_THROW(encoder.encode(wrong, false, au), fastar::Error);
  EXPECT_THROW(H264Encoder(64, 64, 16, H264Settings{0, 20}), fastar::Error);
  EXPECT_THROW(H264Encoder(64, 64, 16, H264Settings{8, 52}), fastar::Error);
}

// encode_chunk with the H.264 codec: the header's kind and key flag, frame indices and timestamps;
// a keyframe at the session start and at a reset (restart), delta frames between.
TEST(H264Encoder, ChunksCarryKindKeyAndTimestampAndRestartWithAKeyframe) {
  auto video = std::make_shared<SessionVideo>();
  video->settings = H264Settings{/*keyframe_interval=*/1000, 20};
  JpegEncoder jpeg(90);
  const std::vector<RgbFrame> frames = world_frames("a red circle bounces .", "RRRRRRRRR", 9);
  TestH264Decoder decoder;
  auto chunk_job = [&](int index, int first, bool restart) {
    ChunkToEncode job;
    job.chunk.index = index;
    job.chunk.first_frame = first;
    job.chunk.frames.assign(frames.begin() + first, frames.begin() + first + 3);
    job.fps = 16;
    job.action_seq = 4;
    job.prompt_seq = 2;
    job.codec = VideoCodec::H264;
    job.restart = restart;
    job.video = video;
    return job;
  };
  std::vector<bool> keys;
  for (auto [index, first, restart] : {std::tuple{0, 0, true}, std::tuple{1, 3, false}, std::tuple{0, 6, true}}) {
    EncodedChunk encoded = encode_chunk(chunk_job(index, first, restart), jpeg);
    ASSERT_EQ(encoded.media.size(), 3u);
    for (size_t f = 0; f < 3; ++f) {
      auto header = read_media_header(encoded.media[f]);
      ASSERT_TRUE(header);
      EXPECT_EQ(header->kind, MediaKind::H264);
      EXPECT_EQ(header->frame_index, uint64_t(first + f));
      EXPECT_EQ(header->chunk_index, uint32_t(index));
      EXPECT_EQ(header->pts_ms, uint32_t(std::llround((first + f) * 1000.0 / 16)));
      EXPECT_EQ(header->action_seq, 4u);
      EXPECT_EQ(header->chunk_start, f == 0);
      keys.push_back(header->key);
      auto back = decoder.decode(encoded.media[f].substr(kMediaHeaderBytes));
      ASSERT_TRUE(back);
      EXPECT_GT(psnr(frames[first + f], *back), kMinPsnrDb);
    }
  }
  EXPECT_EQ(keys, (std::vector<bool>{true, false, false, false, false, false, true, false, false}));
  // Without the session's state an H.264 job cannot be encoded.
  ChunkToEncode orphan = chunk_job(0, 0, true);
  orphan.video.reset();
  EXPECT_THROW(encode_chunk(orphan, jpeg), fastar::Error);
}

// The server end to end with --codec h264: ready names the codec; H.264 frames decode back to the
// world's; set_video switches the session (video_changed names the first frame of the new codec, a
// keyframe when it is H.264); a reset restarts with a keyframe.
TEST(ServeH264, StreamsH264AndSwitchesCodecOnRequest) {
  ServerOptions options = testing::no_lead();
  options.media.codec = VideoCodec::H264;
  options.media.h264.keyframe_interval = 6;
  testing::RunningServer s(options);
  testing::ServeTestClient client(s.port);
  const char* prompt = "a red circle stays .";
  client.hello(prompt, 5);
  auto ready = client.read_json("ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ((*ready)["video"], "h264");
  EXPECT_EQ((*ready)["codec"], "avc1.42C00A");
  Tensor truth = world::render_frames(prompt, {}, 5, 9);
  TestH264Decoder decoder;
  for (uint64_t f = 0; f < 9; ++f) {
    auto frame = client.read_frame();
    ASSERT_TRUE(frame) << "frame " << f;
    EXPECT_EQ(frame->first.kind, MediaKind::H264);
    EXPECT_EQ(frame->first.frame_index, f);
    EXPECT_EQ(frame->first.key, f % 6 == 0) << "frame " << f;
    auto back = decoder.decode(frame->second);
    ASSERT_TRUE(back) << "frame " << f;
    RgbFrame expected{64, 64, std::vector<uint8_t>(truth.data<uint8_t>() + f * 64 * 64 * 3, truth.data<uint8_t>() + (f + 1) * 64 * 64 * 3)};
    EXPECT_GT(psnr(expected, *back), kMinPsnrDb) << "frame " << f;
  }
  client.send(R"({"type":"set_video","video":"jpeg"})");
  auto changed = client.read_json("video_changed");
  ASSERT_TRUE(changed);
  EXPECT_EQ((*changed)["video"], "jpeg");
  EXPECT_EQ((*changed)["codec"], "jpeg");
  auto jpeg_frame = client.read_frame();
  ASSERT_TRUE(jpeg_frame);
  EXPECT_EQ(jpeg_frame->first.kind, MediaKind::Jpeg);
  EXPECT_EQ(jpeg_frame->first.frame_index, (*changed)["at_frame"].get<uint64_t>());
  EXPECT_NO_THROW(decode_jpeg(jpeg_frame->second));
  client.send(R"({"type":"set_video","video":"h264"})");
  changed = client.read_json("video_changed");
  ASSERT_TRUE(changed);
  EXPECT_EQ((*changed)["video"], "h264");
  auto again = client.read_frame();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->first.kind, MediaKind::H264);
  EXPECT_TRUE(again->first.key) << "the first H.264 frame after a switch is a keyframe";
  EXPECT_EQ(again->first.frame_index, (*changed)["at_frame"].get<uint64_t>());
  client.send(R"({"type":"reset","seed":3})");
  ASSERT_TRUE(client.read_json("reset_applied"));
  auto after_reset = client.read_frame();
  ASSERT_TRUE(after_reset);
  EXPECT_EQ(after_reset->first.frame_index, 0u);
  EXPECT_TRUE(after_reset->first.key) << "a reset restarts the stream with a keyframe";
  TestH264Decoder fresh;  // a decoder that starts at the reset's keyframe
  EXPECT_TRUE(fresh.decode(after_reset->second));
}

TEST(ServeH264, HelloPicksTheCodecAndAMalformedRequestIsRejected) {
  ServerOptions options = testing::no_lead();
  options.media.codec = VideoCodec::H264;
  testing::RunningServer s(options);
  {
    testing::ServeTestClient client(s.port);
    client.send(R"({"type":"hello","v":1,"prompt":"a red circle stays .","video":"jpeg"})");
    auto ready = client.read_json("ready");
    ASSERT_TRUE(ready);
    EXPECT_EQ((*ready)["video"], "jpeg");
    auto frame = client.read_frame();
    ASSERT_TRUE(frame);
    EXPECT_EQ(frame->first.kind, MediaKind::Jpeg);
  }
  {
    testing::ServeTestClient client(s.port);
    client.send(R"({"type":"hello","v":1,"prompt":"a red circle stays .","video":"vp9"})");
    auto error = client.read_json("error");
    ASSERT_TRUE(error);
    EXPECT_EQ((*error)["fatal"], true);
    EXPECT_NE((*error)["message"].get<std::string>().find("video"), std::string::npos);
    EXPECT_EQ(client.wait_close(), 1008);
  }
  {
    testing::ServeTestClient client(s.port);
    client.hello("a red circle stays .");
    ASSERT_TRUE(client.read_json("ready"));
    client.send(R"({"type":"set_video","video":"av1"})");
    EXPECT_EQ(client.wait_close(), 1008);
  }
  // A JPEG server gives H.264 to a hello that asks for it.
  testing::RunningServer jpeg_server(testing::no_lead());
  testing::ServeTestClient client(jpeg_server.port);
  client.send(R"({"type":"hello","v":1,"prompt":"a red circle stays .","video":"h264"})");
  auto ready = client.read_json("ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ((*ready)["video"], "h264");
  auto frame = client.read_frame();
  ASSERT_TRUE(frame);
  EXPECT_EQ(frame->first.kind, MediaKind::H264);
  EXPECT_TRUE(frame->first.key);
}

// Bytes and encode time per frame, JPEG vs H.264 (docs/perf.md); not a test: run with
//   build-serve/tests/test_serve --gtest_also_run_disabled_tests --gtest_filter='*MediaBench*'
TEST(MediaBench, DISABLED_BytesAndMillisecondsPerFrame) {
  auto measure = [](const char* label, const std::vector<RgbFrame>& frames, double fps) {
    JpegEncoder jpeg(90);
    H264Encoder h264(frames[0].width, frames[0].height, fps, H264Settings{});
    for (int pass = 0; pass < 2; ++pass) {  // pass 0 warms up
      double jpeg_bytes = 0, h264_bytes = 0, jpeg_ms = 0, h264_ms = 0;
      for (const RgbFrame& frame : frames) {
        std::string out;
        auto t0 = std::chrono::steady_clock::now();
        jpeg.encode(frame, out);
        auto t1 = std::chrono::steady_clock::now();
        jpeg_bytes += out.size();
        out.clear();
        h264.encode(frame, false, out);
        auto t2 = std::chrono::steady_clock::now();
        h264_bytes += out.size();
        jpeg_ms += std::chrono::duration<double, std::milli>(t1 - t0).count();
        h264_ms += std::chrono::duration<double, std::milli>(t2 - t1).count();
      }
      const double n = frames.size();
      if (pass == 1)
        std::printf("%-34s jpeg q90: %8.0f B/frame %6.2f ms/frame | h264 crf20 (key every 32): %8.0f B/frame %6.2f ms/frame\n",
                    label, jpeg_bytes / n, jpeg_ms / n, h264_bytes / n, h264_ms / n);
    }
  };
  std::string walk;
  for (int i = 0; i < 96; ++i) walk += "RRRRDDDDLLLLUUUU"[i % 16];
  measure("world 64x64 (96 frames)", world_frames("a red circle bounces . background stripes stays .", walk, 96), 16);
  // Synthetic 480x832 (H x W), 96 frames: a scrolling gradient and a moving disc, with per-pixel noise of
  // +-1 (smooth, video-like) or +-8 (grain: the hard case for both codecs).
  for (const int noise_amplitude : {1, 8}) {
    std::vector<RgbFrame> large;
    uint32_t rng = 12345;
    for (int f = 0; f < 96; ++f) {
      RgbFrame frame{832, 480, std::vector<uint8_t>(832 * 480 * 3)};
      const double cx = 100 + 6.0 * f, cy = 240 + 80 * std::sin(f / 8.0);
      for (int y = 0; y < 480; ++y)
        for (int x = 0; x < 832; ++x) {
          rng = rng * 1664525u + 1013904223u;
          const int noise = static_cast<int>(rng >> 16) % (2 * noise_amplitude + 1) - noise_amplitude;
          const bool disc = (x - cx) * (x - cx) + (y - cy) * (y - cy) < 60 * 60;
          uint8_t* p = frame.rgb.data() + (size_t(y) * 832 + x) * 3;
          p[0] = static_cast<uint8_t>(std::clamp(disc ? 230 : (x + f * 2) % 256 / 2 + 40 + noise, 0, 255));
          p[1] = static_cast<uint8_t>(std::clamp(disc ? 60 : y * 255 / 480 / 2 + 60 + noise, 0, 255));
          p[2] = static_cast<uint8_t>(std::clamp(disc ? 40 : 120 + noise, 0, 255));
        }
      large.push_back(std::move(frame));
    }
    measure(noise_amplitude == 1 ? "synthetic 480x832, noise +-1" : "synthetic 480x832, noise +-8", large, 16);
  }
}

#else  // FASTAR_VIDEO=OFF: no libavcodec

TEST(ServeH264, WithoutFastarVideoH264IsAClearErrorAndSessionsStayJpeg) {
  EXPECT_FALSE(h264_available());
  EXPECT_THROW(H264Encoder(64, 64, 16, H264Settings{}), fastar::Error);
  ServerOptions options;
  options.media.codec = VideoCodec::H264;
  EXPECT_THROW(Server(options, make_world_source_factory(3, 16)), fastar::Error);
  testing::RunningServer s(testing::no_lead());
  testing::ServeTestClient client(s.port);
  client.send(R"({"type":"hello","v":1,"prompt":"a red circle stays .","video":"h264"})");
  auto error = client.read_json("error");
  ASSERT_TRUE(error);
  EXPECT_EQ((*error)["code"], "codec_unavailable");
  EXPECT_EQ((*error)["fatal"], false);
  auto ready = client.read_json("ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ((*ready)["video"], "jpeg");
  auto frame = client.read_frame();
  ASSERT_TRUE(frame);
  EXPECT_EQ(frame->first.kind, MediaKind::Jpeg);
}

#endif  // FASTAR_HAVE_VIDEO

}  // namespace
}  // namespace fastar::serve
