// The binary media header, the JPEG round trip and the Host / Origin checks (serving-spec.md §6.2, §6.6).
#include <gtest/gtest.h>

#include <cmath>

#include "fastar/core/error.h"
#include "fastar/serve/jpeg_encoder.h"
#include "fastar/serve/media_header.h"
#include "fastar/serve/request_guard.h"
#include "fastar/world/world.h"

namespace fastar::serve {
namespace {

TEST(MediaHeader, RoundTripsEveryField) {
  MediaHeader header;
  header.chunk_start = true;
  header.frame_index = (1ull << 40) + 5;
  header.chunk_index = 77;
  header.action_seq = 0xfffffffe;
  header.prompt_seq = 3;
  header.pts_ms = 123456;
  std::string bytes;
  append_media_header(header, bytes);
  ASSERT_EQ(bytes.size(), kMediaHeaderBytes);
  EXPECT_EQ(bytes.substr(0, 4), "FAR1");
  auto back = read_media_header(bytes);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->frame_index, header.frame_index);
  EXPECT_EQ(back->chunk_index, 77u);
  EXPECT_EQ(back->action_seq, 0xfffffffeu);
  EXPECT_EQ(back->prompt_seq, 3u);
  EXPECT_EQ(back->pts_ms, 123456u);
  EXPECT_TRUE(back->chunk_start);
  EXPECT_FALSE(back->chunk_end);
  EXPECT_FALSE(read_media_header("FAR2" + bytes.substr(4)));
  EXPECT_FALSE(read_media_header(bytes.substr(0, 31)));
}

TEST(JpegEncoder, AWorldFrameSurvivesTheRoundTrip) {
  Tensor frames = world::render_frames("a red circle stays . background stripes stays .", {}, 1, 1);
  RgbFrame frame{world::kFrameSize, world::kFrameSize, {}};
  frame.rgb.assign(frames.data<uint8_t>(), frames.data<uint8_t>() + world::kFrameSize * world::kFrameSize * 3);
  JpegEncoder encoder(90);
  std::string jpeg;
  encoder.encode(frame, jpeg);
  EXPECT_LT(jpeg.size(), 8000u);
  RgbFrame back = decode_jpeg(jpeg);
  ASSERT_EQ(back.width, frame.width);
  double squared = 0;
  for (size_t i = 0; i < frame.rgb.size(); ++i) squared += std::pow(double(frame.rgb[i]) - back.rgb[i], 2);
  const double psnr = 10 * std::log10(255.0 * 255.0 / (squared / frame.rgb.size()));
  EXPECT_GT(psnr, 30.0);
  EXPECT_THROW(decode_jpeg("not a jpeg"), fastar::Error);
  EXPECT_THROW(JpegEncoder(0), fastar::Error);
}

TEST(RequestGuard, LoopbackAcceptsOnlyItsOwnHostAndOrigin) {
  RequestGuard guard{"127.0.0.1", 8080, {}};
  EXPECT_EQ(guard.check_host("127.0.0.1:8080"), "");
  EXPECT_EQ(guard.check_host("localhost:8080"), "");
  EXPECT_EQ(guard.check_host("[::1]:8080"), "");
  EXPECT_NE(guard.check_host("evil.example:8080"), "");  // DNS rebinding
  EXPECT_NE(guard.check_host("127.0.0.1:9090"), "");
  EXPECT_EQ(guard.check_origin("127.0.0.1:8080", "http://127.0.0.1:8080"), "");
  EXPECT_NE(guard.check_origin("127.0.0.1:8080", "http://evil.example"), "");
  EXPECT_EQ(guard.check_origin("127.0.0.1:8080", std::nullopt), "");  // a non-browser client on loopback
}

TEST(RequestGuard, OffLoopbackNeedsAnOriginAndHonoursTheAllowList) {
  RequestGuard guard{"0.0.0.0", 8080, {"http://box.lan:8080"}};
  EXPECT_EQ(guard.check_host("box.lan:8080"), "");
  EXPECT_NE(guard.check_origin("box.lan:8080", std::nullopt), "");
  EXPECT_EQ(guard.check_origin("box.lan:8080", "http://box.lan:8080"), "");
  EXPECT_NE(guard.check_origin("box.lan:8080", "http://other.lan"), "");
}

}  // namespace
}  // namespace fastar::serve
