// Frame sinks: PNG I/O, the PNG directory sink and (when built with FASTAR_VIDEO) the MP4 sink,
// whose output is decoded back with libavformat/libavcodec.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "fastar/core/error.h"
#include "fastar/rollout/frame_sink.h"
#include "fastar/rollout/png_writer.h"
#include "test_util.h"

#ifdef FASTAR_HAVE_VIDEO
#include "fastar/rollout/mp4_writer.h"
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>
}
#endif

namespace fastar {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

RgbFrame gradient(int width, int height, int seed = 0) {
  RgbFrame f;
  f.width = width;
  f.height = height;
  f.rgb.resize(static_cast<size_t>(width) * height * 3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      uint8_t* p = &f.rgb[(static_cast<size_t>(y) * width + x) * 3];
      p[0] = static_cast<uint8_t>(x * 255 / std::max(1, width - 1));
      p[1] = static_cast<uint8_t>(y * 255 / std::max(1, height - 1));
      p[2] = static_cast<uint8_t>((x * 31 + y * 17 + seed * 53) & 255);
    }
  }
  return f;
}

// ---- PNG -------------------------------------------------------------------------------------------

TEST(Png, RoundtripIsExactForOddSize) {
  const std::string dir = testing::make_temp_dir("png_roundtrip");
  const std::string path = dir + "/gradient.png";
  const RgbFrame original = gradient(37, 21);
  write_png(path, original);
  const RgbFrame back = read_png(path);
  EXPECT_EQ(back.width, 37);
  EXPECT_EQ(back.height, 21);
  EXPECT_EQ(back.rgb, original.rgb);
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"gradient.png"});  // no temp file left behind
}

TEST(Png, ReadMissingOrCorruptFileThrows) {
  const std::string dir = testing::make_temp_dir("png_bad");
  EXPECT_THROW(read_png(dir + "/missing.png"), Error);
  {
    std::ofstream out(dir + "/not_a.png");
    out << "definitely not a png";
  }
  EXPECT_THROW(read_png(dir + "/not_a.png"), Error);
}

TEST(Png, WriteRejectsMalformedFrameAndBadDirectory) {
  const std::string dir = testing::make_temp_dir("png_malformed");
  RgbFrame bad = gradient(8, 8);
  bad.rgb.pop_back();
  EXPECT_THROW(write_png(dir + "/bad.png", bad), Error);
  EXPECT_THROW(write_png(dir + "/empty.png", RgbFrame{}), Error);
  EXPECT_THROW(write_png(dir + "/no/such/dir/x.png", gradient(4, 4)), Error);
  EXPECT_TRUE(list_dir(dir).empty());
}

// ---- PNG directory sink --------------------------------------------------------------------------

TEST(PngDirSink, WritesNumberedFramesAndNoTempFiles) {
  const std::string dir = testing::make_temp_dir("png_dir_sink") + "/nested/out";  // created by the sink
  auto sink = make_frame_sink(dir, 16);
  EXPECT_EQ(sink->describe(), "PNG frames in " + dir + "/");
  constexpr int kFrames = 5;
  std::vector<RgbFrame> frames;
  for (int i = 0; i < kFrames; ++i) {
    frames.push_back(gradient(20, 11, i));
    sink->write(frames.back());
  }
  sink->finish();
  sink->finish();  // idempotent
  EXPECT_EQ(list_dir(dir), (std::vector<std::string>{"frame_000000.png", "frame_000001.png", "frame_000002.png",
                                                     "frame_000003.png", "frame_000004.png"}));
  for (int i = 0; i < kFrames; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "/frame_%06d.png", i);
    EXPECT_EQ(read_png(dir + name).rgb, frames[i].rgb) << "frame " << i;
  }
}

TEST(PngDirSink, MismatchedFrameSizeThrows) {
  const std::string dir = testing::make_temp_dir("png_dir_mismatch");
  auto sink = make_frame_sink(dir, 16);
  sink->write(gradient(16, 8));
  EXPECT_THROW(sink->write(gradient(16, 9)), Error);
  EXPECT_THROW(sink->write(gradient(15, 8)), Error);
  sink->write(gradient(16, 8));  // the sink is still usable after a rejected frame
  sink->finish();
  EXPECT_EQ(list_dir(dir), (std::vector<std::string>{"frame_000000.png", "frame_000001.png"}));
}

TEST(PngDirSink, UnusableOutputPathThrows) {
  EXPECT_THROW(make_frame_sink("/proc/nonexistent/frames", 16), Error);
  const std::string dir = testing::make_temp_dir("png_dir_file");
  const std::string file = dir + "/a_file";
  { std::ofstream(file) << "x"; }
  EXPECT_THROW(make_frame_sink(file, 16), Error);  // exists but is not a directory
  EXPECT_THROW(make_frame_sink("", 16), Error);
}

#ifdef FASTAR_HAVE_VIDEO

// ---- MP4 sink ------------------------------------------------------------------------------------

struct Rgb {
  uint8_t r, g, b;
};

RgbFrame solid(int width, int height, Rgb c) {
  RgbFrame f;
  f.width = width;
  f.height = height;
  f.rgb.resize(static_cast<size_t>(width) * height * 3);
  for (size_t i = 0; i < f.rgb.size(); i += 3) {
    f.rgb[i] = c.r;
    f.rgb[i + 1] = c.g;
    f.rgb[i + 2] = c.b;
  }
  return f;
}

// A colour that changes frame by frame, kept inside video's limited range.
Rgb colour_at(int i) {
  return {static_cast<uint8_t>(200 - 15 * i), static_cast<uint8_t>(30 + 17 * i), static_cast<uint8_t>(60 + 13 * i)};
}


struct DecodedVideo {
  int width = 0, height = 0;
  std::vector<RgbFrame> frames;  // converted back to RGB at the coded size
};

DecodedVideo decode_video(const std::string& path) {
  DecodedVideo video;
  AVFormatContext* fmt = nullptr;
  if (avformat_open_input(&fmt, path.c_str(), nullptr, nullptr) < 0) {
    ADD_FAILURE() << "cannot open " << path;
    return video;
  }
  avformat_find_stream_info(fmt, nullptr);
  const AVCodec* decoder = nullptr;
  const int stream = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &decoder, 0);
  EXPECT_GE(stream, 0);
  EXPECT_NE(decoder, nullptr);
  if (stream < 0 || decoder == nullptr) {
    avformat_close_input(&fmt);
    return video;
  }
  AVCodecContext* dec = avcodec_alloc_context3(decoder);
  avcodec_parameters_to_context(dec, fmt->streams[stream]->codecpar);
  EXPECT_GE(avcodec_open2(dec, decoder, nullptr), 0);
  AVPacket* pkt = av_packet_alloc();
  AVFrame* frame = av_frame_alloc();
  SwsContext* sws = nullptr;

  auto receive = [&] {
    while (avcodec_receive_frame(dec, frame) >= 0) {
      video.width = frame->width;
      video.height = frame->height;
      sws = sws_getCachedContext(sws, frame->width, frame->height, static_cast<AVPixelFormat>(frame->format),
                                 frame->width, frame->height, AV_PIX_FMT_RGB24, SWS_BILINEAR | SWS_ACCURATE_RND,
                                 nullptr, nullptr, nullptr);
      RgbFrame rgb;
      rgb.width = frame->width;
      rgb.height = frame->height;
      rgb.rgb.resize(static_cast<size_t>(rgb.width) * rgb.height * 3);
      uint8_t* dst[1] = {rgb.rgb.data()};
      const int dst_stride[1] = {rgb.width * 3};
      sws_scale(sws, frame->data, frame->linesize, 0, frame->height, dst, dst_stride);
      video.frames.push_back(std::move(rgb));
      av_frame_unref(frame);
    }
  };
  while (av_read_frame(fmt, pkt) >= 0) {
    if (pkt->stream_index == stream) {
      EXPECT_GE(avcodec_send_packet(dec, pkt), 0);
      receive();
    }
    av_packet_unref(pkt);
  }
  avcodec_send_packet(dec, nullptr);
  receive();

  sws_freeContext(sws);
  av_frame_free(&frame);
  av_packet_free(&pkt);
  avcodec_free_context(&dec);
  avformat_close_input(&fmt);
  return video;
}

// Mean colour over the top-left width x height region (the part that was not padding).
std::vector<double> mean_rgb(const RgbFrame& f, int width, int height) {
  std::vector<double> sum(3, 0.0);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < 3; ++c) sum[c] += f.rgb[(static_cast<size_t>(y) * f.width + x) * 3 + c];
    }
  }
  for (double& s : sum) s /= static_cast<double>(width) * height;
  return sum;
}

void expect_close_colour(const RgbFrame& decoded, int width, int height, Rgb want, const std::string& what) {
  const std::vector<double> got = mean_rgb(decoded, width, height);
  const double want_v[3] = {double(want.r), double(want.g), double(want.b)};
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(got[c], want_v[c], 12.0) << what << " channel " << c;
  }
}

void roundtrip_mp4(int width, int height, const std::string& name) {
  const std::string dir = testing::make_temp_dir(name);
  const std::string path = dir + "/out.mp4";
  constexpr int kFrames = 12;
  auto sink = make_frame_sink(path, 12);
  auto* mp4 = dynamic_cast<Mp4Sink*>(sink.get());
  ASSERT_NE(mp4, nullptr);
  std::cout << "[ encoder  ] " << mp4->encoder_name() << ": " << sink->describe() << "\n";
  EXPECT_EQ(sink->describe().find(" MP4 " + path) != std::string::npos, true) << sink->describe();
  for (int i = 0; i < kFrames; ++i) sink->write(solid(width, height, colour_at(i)));
  EXPECT_FALSE(fs::exists(path));  // not published before finish()
  sink->finish();
  sink->finish();  // idempotent
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"out.mp4"});  // temp renamed away, nothing else

  const DecodedVideo video = decode_video(path);
  ASSERT_EQ(static_cast<int>(video.frames.size()), kFrames);
  EXPECT_EQ(video.width, width + (width & 1));  // odd sizes are padded to even
  EXPECT_EQ(video.height, height + (height & 1));
  expect_close_colour(video.frames.front(), width, height, colour_at(0), "frame 0");
  expect_close_colour(video.frames.back(), width, height, colour_at(kFrames - 1), "frame 11");
  // The padded column/row repeats the edge, so the whole coded frame has the same colour too.
  expect_close_colour(video.frames.back(), video.width, video.height, colour_at(kFrames - 1), "frame 11 padded");
}

TEST(Mp4Sink, EncodesAndDecodesTwelveFrames) { roundtrip_mp4(64, 48, "mp4_even"); }

TEST(Mp4Sink, OddSizeIsPaddedToEven) { roundtrip_mp4(33, 17, "mp4_odd"); }

TEST(Mp4Sink, UnwritablePathThrows) {
  EXPECT_THROW(make_frame_sink("/proc/nonexistent/x.mp4", 16), Error);
  EXPECT_THROW(make_frame_sink(testing::make_temp_dir("mp4_nodir") + "/missing/x.mp4", 16), Error);
}

TEST(Mp4Sink, BadFrameRateThrows) {
  const std::string dir = testing::make_temp_dir("mp4_fps");
  EXPECT_THROW(make_frame_sink(dir + "/x.mp4", 0), Error);
  EXPECT_TRUE(list_dir(dir).empty());
}

TEST(Mp4Sink, MismatchedFrameSizeThrowsAndSinkStaysUsable) {
  const std::string dir = testing::make_temp_dir("mp4_mismatch");
  const std::string path = dir + "/out.MP4";  // the extension is matched case-insensitively
  auto sink = make_frame_sink(path, 8);
  sink->write(solid(32, 32, colour_at(0)));
  EXPECT_THROW(sink->write(solid(32, 30, colour_at(1))), Error);
  sink->write(solid(32, 32, colour_at(2)));
  sink->finish();
  EXPECT_EQ(decode_video(path).frames.size(), 2u);
}

TEST(Mp4Sink, UnfinishedSinkLeavesNoFile) {
  const std::string dir = testing::make_temp_dir("mp4_unfinished");
  {
    auto sink = make_frame_sink(dir + "/out.mp4", 8);
    sink->write(solid(16, 16, colour_at(0)));
    EXPECT_FALSE(list_dir(dir).empty());  // the temp file exists while encoding
  }
  EXPECT_TRUE(list_dir(dir).empty());
}

TEST(Mp4Sink, FinishWithoutFramesThrowsAndLeavesNoFile) {
  const std::string dir = testing::make_temp_dir("mp4_empty");
  auto sink = make_frame_sink(dir + "/out.mp4", 8);
  EXPECT_THROW(sink->finish(), Error);
  EXPECT_TRUE(list_dir(dir).empty());
  EXPECT_NO_THROW(sink->finish());  // idempotent after the first call
}

#else  // !FASTAR_HAVE_VIDEO

TEST(Mp4Sink, WithoutVideoSupportSaysHowToGetIt) {
  try {
    make_frame_sink(testing::make_temp_dir("mp4_off") + "/x.mp4", 16);
    FAIL() << "expected fastar::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("FASTAR_VIDEO"), std::string::npos) << e.what();
  }
}

#endif  // FASTAR_HAVE_VIDEO

}  // namespace
}  // namespace fastar
