#include "fastar/serve/h264_encoder.h"

#include "fastar/core/error.h"

#ifdef FASTAR_HAVE_VIDEO

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace fastar::serve {

namespace {

std::string av_error_text(int code) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, text, sizeof text);
  return text;
}

}  // namespace

struct H264Encoder::Impl {
  int width = 0, height = 0, coded_width = 0, coded_height = 0;
  H264Settings settings;
  std::string codec;
  AVCodecContext* context = nullptr;
  SwsContext* sws = nullptr;
  AVFrame* frame = nullptr;
  AVPacket* packet = nullptr;
  std::vector<uint8_t> padded;  // coded_height x coded_width x 3
  int64_t next_pts = 0, since_key = 0;  // frames encoded; frames since the last keyframe
  double frame_duration_ms = 0;

  ~Impl() {
    sws_freeContext(sws);
    av_frame_free(&frame);
    av_packet_free(&packet);
    avcodec_free_context(&context);
  }

  [[noreturn]] void fail(const std::string& what, int code) const {
    FASTAR_FAIL("H.264 encoder (" << width << "x" << height << "): " << what << " failed (" << av_error_text(code)
                                  << "); use --codec jpeg");
  }
};

H264Encoder::H264Encoder(int width, int height, double fps, H264Settings settings) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  FASTAR_CHECK(width > 0 && height > 0, "H.264 encoder: frames of " << width << "x" << height << " cannot be encoded");
  FASTAR_CHECK(settings.keyframe_interval >= 1, "H.264 encoder: --keyframe-interval must be at least 1 (got "
                                                    << settings.keyframe_interval << ")");
  FASTAR_CHECK(settings.crf >= 0 && settings.crf <= 51, "H.264 encoder: --h264-crf must be in [0, 51] (got " << settings.crf << ")");
  s.width = width;
  s.height = height;
  s.coded_width = width + (width & 1);
  s.coded_height = height + (height & 1);
  s.settings = settings;
  s.codec = h264_codec_string(width, height, fps);
  if (av_log_get_level() > AV_LOG_ERROR) av_log_set_level(AV_LOG_ERROR);  // no libx264 banner per session

  const AVCodec* x264 = avcodec_find_encoder_by_name("libx264");
  FASTAR_CHECK(x264 != nullptr, "H.264 encoder: this FFmpeg has no libx264 (Debian's libavcodec does); "
                                "install an FFmpeg built with --enable-libx264, or use --codec jpeg");
  s.context = avcodec_alloc_context3(x264);
  if (s.context == nullptr) s.fail("allocating the encoder", AVERROR(ENOMEM));
  AVCodecContext* c = s.context;
  c->width = s.coded_width;
  c->height = s.coded_height;
  c->pix_fmt = AV_PIX_FMT_YUV420P;
  // Timestamps in milliseconds, as the media header's pts_ms.
  c->time_base = AVRational{1, 1000};
  c->framerate = av_d2q(fps, 1000);
  c->gop_size = settings.keyframe_interval;
  c->keyint_min = settings.keyframe_interval;
  c->max_b_frames = 0;
  c->thread_count = 1;  // one encoder per session: sessions, not slices, use the cores
  c->level = h264_level_for(s.coded_width, s.coded_height, fps);
  c->color_range = AVCOL_RANGE_MPEG;  // swscale's RGB -> YUV: BT.601, limited range; said in the SPS's VUI
  c->colorspace = AVCOL_SPC_SMPTE170M;
  c->color_primaries = AVCOL_PRI_SMPTE170M;
  c->color_trc = AVCOL_TRC_SMPTE170M;
  av_opt_set(c->priv_data, "preset", "ultrafast", 0);
  av_opt_set(c->priv_data, "tune", "zerolatency", 0);
  av_opt_set(c->priv_data, "profile", "baseline", 0);
  av_opt_set_int(c->priv_data, "forced-idr", 1, 0);  // a forced keyframe is an IDR (an entry point), not an I-frame
  av_opt_set_double(c->priv_data, "crf", settings.crf, 0);
  // scenecut=0: keyframes only where asked (start, reset, interval); the page's skip logic relies on
  // knowing where they are.
  av_opt_set(c->priv_data, "x264-params", "scenecut=0", 0);
  int rc = avcodec_open2(c, x264, nullptr);
  if (rc < 0) s.fail("opening libx264 at " + std::to_string(s.coded_width) + "x" + std::to_string(s.coded_height), rc);

  s.sws = sws_getContext(s.coded_width, s.coded_height, AV_PIX_FMT_RGB24, s.coded_width, s.coded_height, AV_PIX_FMT_YUV420P,
                         SWS_BILINEAR | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, nullptr, nullptr, nullptr);
  if (s.sws == nullptr) s.fail("setting up RGB to YUV conversion", AVERROR(EINVAL));
  s.frame = av_frame_alloc();
  s.packet = av_packet_alloc();
  if (s.frame == nullptr || s.packet == nullptr) s.fail("allocating frame buffers", AVERROR(ENOMEM));
  s.frame->format = AV_PIX_FMT_YUV420P;
  s.frame->width = s.coded_width;
  s.frame->height = s.coded_height;
  s.frame->color_range = AVCOL_RANGE_MPEG;
  s.frame->colorspace = AVCOL_SPC_SMPTE170M;
  rc = av_frame_get_buffer(s.frame, 0);
  if (rc < 0) s.fail("allocating a frame", rc);
  s.padded.resize(static_cast<size_t>(s.coded_width) * s.coded_height * 3);
  s.frame_duration_ms = 1000.0 / fps;
}

H264Encoder::~H264Encoder() = default;

bool H264Encoder::encode(const RgbFrame& rgb, bool force_key, std::string& out) {
  Impl& s = *impl_;
  FASTAR_CHECK(rgb.width == s.width && rgb.height == s.height && rgb.rgb.size() == static_cast<size_t>(s.width) * s.height * 3,
               "H.264 encoder: a frame of " << rgb.width << "x" << rgb.height << " (" << rgb.rgb.size()
                                            << " bytes) into a stream of " << s.width << "x" << s.height
                                            << " RGB; every frame of a session has its first frame's size");
  // Pad to even: repeat the last column and the last row.
  const size_t src_row = static_cast<size_t>(s.width) * 3, dst_row = static_cast<size_t>(s.coded_width) * 3;
  for (int y = 0; y < s.coded_height; ++y) {
    const uint8_t* in = rgb.rgb.data() + src_row * std::min(y, s.height - 1);
    uint8_t* row = s.padded.data() + dst_row * y;
    std::memcpy(row, in, src_row);
    if (s.coded_width != s.width) std::memcpy(row + src_row, in + src_row - 3, 3);
  }
  int rc = av_frame_make_writable(s.frame);
  if (rc < 0) s.fail("preparing a frame", rc);
  const uint8_t* planes[1] = {s.padded.data()};
  const int strides[1] = {static_cast<int>(dst_row)};
  sws_scale(s.sws, planes, strides, 0, s.coded_height, s.frame->data, s.frame->linesize);

  const bool key = force_key || s.next_pts == 0 || s.since_key >= s.settings.keyframe_interval;
  s.frame->pict_type = key ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
  s.frame->pts = static_cast<int64_t>(std::llround(static_cast<double>(s.next_pts) * s.frame_duration_ms));
  ++s.next_pts;
  rc = avcodec_send_frame(s.context, s.frame);
  if (rc < 0) s.fail("sending a frame", rc);
  // zerolatency: the access unit comes out at once; a frame held back would break one message = one frame.
  rc = avcodec_receive_packet(s.context, s.packet);
  if (rc == AVERROR(EAGAIN)) s.fail("getting the frame's access unit (the encoder delayed it)", rc);
  if (rc < 0) s.fail("encoding", rc);
  const bool is_key = (s.packet->flags & AV_PKT_FLAG_KEY) != 0;
  out.append(reinterpret_cast<const char*>(s.packet->data), static_cast<size_t>(s.packet->size));
  av_packet_unref(s.packet);
  FASTAR_CHECK(!key || is_key, "H.264 encoder: libx264 did not make the keyframe it was asked for (frame " << s.next_pts - 1 << ")");
  s.since_key = is_key ? 1 : s.since_key + 1;
  return is_key;
}

int H264Encoder::width() const { return impl_->width; }
int H264Encoder::height() const { return impl_->height; }
int H264Encoder::coded_width() const { return impl_->coded_width; }
int H264Encoder::coded_height() const { return impl_->coded_height; }
const std::string& H264Encoder::codec_string() const { return impl_->codec; }

}  // namespace fastar::serve

#else  // FASTAR_VIDEO=OFF: no libavcodec in this build

namespace fastar::serve {

struct H264Encoder::Impl {};

H264Encoder::H264Encoder(int width, int height, double fps, H264Settings settings) {
  FASTAR_FAIL("H.264 needs FFmpeg's libavcodec, and this fastar was built with FASTAR_VIDEO=OFF; "
              "rebuild with -DFASTAR_VIDEO=ON (Debian: libavcodec-dev libswscale-dev), or use --codec jpeg");
}
H264Encoder::~H264Encoder() = default;
bool H264Encoder::encode(const RgbFrame&, bool, std::string&) { FASTAR_FAIL("H.264: built with FASTAR_VIDEO=OFF"); }
int H264Encoder::width() const { return 0; }
int H264Encoder::height() const { return 0; }
int H264Encoder::coded_width() const { return 0; }
int H264Encoder::coded_height() const { return 0; }
const std::string& H264Encoder::codec_string() const {
  static const std::string none;
  return none;
}

}  // namespace fastar::serve

#endif
