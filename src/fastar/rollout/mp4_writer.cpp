#include "fastar/rollout/mp4_writer.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "fastar/core/error.h"

namespace fastar {
namespace {

std::string av_error_string(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, buf, sizeof(buf));
  return buf;
}

// Hide libav's chatter (libx264's banner, muxer notes); errors still reach stderr.
void quiet_libav_logging() {
  if (av_log_get_level() > AV_LOG_ERROR) av_log_set_level(AV_LOG_ERROR);
}

// Sets everything the encoder needs before avcodec_open2.
void configure_encoder(AVCodecContext* enc, const AVCodec* codec, int width, int height, int fps) {
  enc->width = width;
  enc->height = height;
  enc->pix_fmt = AV_PIX_FMT_YUV420P;
  enc->time_base = AVRational{1, fps};
  enc->framerate = AVRational{fps, 1};
  enc->gop_size = std::max(1, 2 * fps);  // a keyframe every two seconds keeps seeking cheap
  // swscale's default RGB->YUV matrix is BT.601, limited range: tag the stream accordingly.
  enc->color_range = AVCOL_RANGE_MPEG;
  enc->colorspace = AVCOL_SPC_SMPTE170M;
  enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;  // the MP4 muxer wants codec headers out of band
  const std::string name = codec->name;
  if (name == "libx264") {
    av_opt_set(enc->priv_data, "preset", "medium", 0);
    av_opt_set(enc->priv_data, "crf", "18", 0);  // visually lossless for generated video
  } else if (codec->id == AV_CODEC_ID_MPEG4) {
    enc->flags |= AV_CODEC_FLAG_QSCALE;
    enc->global_quality = FF_QP2LAMBDA * 3;
  } else {
    // Other H.264 encoders: a generous constant bitrate (~0.25 bit per pixel).
    const int64_t bits = static_cast<int64_t>(width) * height * fps / 4;
    enc->bit_rate = std::max<int64_t>(bits, 1'000'000);
  }
}

// Encoder candidates in order of preference: libx264, any other H.264 encoder, MPEG-4 part 2.
std::vector<const AVCodec*> encoder_candidates() {
  std::vector<const AVCodec*> out;
  auto add = [&out](const AVCodec* codec) {
    if (codec != nullptr && av_codec_is_encoder(codec) && std::find(out.begin(), out.end(), codec) == out.end()) {
      out.push_back(codec);
    }
  };
  add(avcodec_find_encoder_by_name("libx264"));
  add(avcodec_find_encoder(AV_CODEC_ID_H264));
  void* it = nullptr;
  while (const AVCodec* codec = av_codec_iterate(&it)) {
    if (codec->id == AV_CODEC_ID_H264) add(codec);
  }
  add(avcodec_find_encoder_by_name("mpeg4"));
  return out;
}

// The first candidate that actually opens (hardware encoders are listed but may have no device).
const AVCodec* pick_encoder(int fps, std::string* tried) {
  const int saved_level = av_log_get_level();
  av_log_set_level(AV_LOG_QUIET);  // failed probes are expected; don't print them
  const AVCodec* chosen = nullptr;
  for (const AVCodec* codec : encoder_candidates()) {
    if (!tried->empty()) *tried += ", ";
    *tried += codec->name;
    AVCodecContext* enc = avcodec_alloc_context3(codec);
    if (enc == nullptr) continue;
    configure_encoder(enc, codec, 64, 64, fps);
    const bool ok = avcodec_open2(enc, codec, nullptr) >= 0;
    avcodec_free_context(&enc);
    if (ok) {
      chosen = codec;
      break;
    }
  }
  av_log_set_level(saved_level);
  return chosen;
}

}  // namespace

struct Mp4Sink::Impl {
  std::string path, tmp;
  int fps = 0;
  const AVCodec* codec = nullptr;
  AVFormatContext* fmt = nullptr;
  AVCodecContext* enc = nullptr;
  AVStream* stream = nullptr;
  SwsContext* sws = nullptr;
  AVFrame* frame = nullptr;
  AVPacket* pkt = nullptr;
  int width = 0, height = 0;          // frames as given
  int enc_width = 0, enc_height = 0;  // rounded up to even for yuv420p
  int64_t next_pts = 0;
  std::vector<uint8_t> padded;
  bool started = false, finished = false, failed = false;

  ~Impl() { release(/*keep_file=*/false); }

  // Frees every libav object; deletes the temp file unless it was already renamed into place.
  void release(bool keep_file) noexcept {
    sws_freeContext(sws);
    sws = nullptr;
    av_frame_free(&frame);
    av_packet_free(&pkt);
    avcodec_free_context(&enc);
    if (fmt != nullptr) {
      if (fmt->pb != nullptr) avio_closep(&fmt->pb);
      avformat_free_context(fmt);
      fmt = nullptr;
    }
    stream = nullptr;
    if (!keep_file && !tmp.empty()) std::remove(tmp.c_str());
  }

  std::string label() const {
    return std::string(codec != nullptr && codec->id == AV_CODEC_ID_H264 ? "H.264" : "MPEG-4 Part 2") + " MP4 " + path;
  }

  // Discards the output and throws: the sink is unusable after a libav failure.
  [[noreturn]] void fail(const std::string& what, int code) {
    failed = true;
    release(/*keep_file=*/false);
    FASTAR_FAIL(label() << ": " << what << " failed (" << av_error_string(code)
                        << "); nothing was written. Check free disk space, or pass a directory to get PNG frames");
  }

  void start(int w, int h) {
    width = w;
    height = h;
    enc_width = w + (w & 1);
    enc_height = h + (h & 1);
    enc = avcodec_alloc_context3(codec);
    if (enc == nullptr) fail("allocating the encoder", AVERROR(ENOMEM));
    configure_encoder(enc, codec, enc_width, enc_height, fps);
    int rc = avcodec_open2(enc, codec, nullptr);
    if (rc < 0) fail(std::string("opening encoder ") + codec->name + " at " + std::to_string(enc_width) + "x" + std::to_string(enc_height), rc);
    stream = avformat_new_stream(fmt, nullptr);
    if (stream == nullptr) fail("adding the video stream", AVERROR(ENOMEM));
    rc = avcodec_parameters_from_context(stream->codecpar, enc);
    if (rc < 0) fail("copying codec parameters", rc);
    stream->time_base = enc->time_base;
    stream->avg_frame_rate = enc->framerate;
    rc = avformat_write_header(fmt, nullptr);
    if (rc < 0) fail("writing the MP4 header", rc);

    sws = sws_getContext(enc_width, enc_height, AV_PIX_FMT_RGB24, enc_width, enc_height, AV_PIX_FMT_YUV420P,
                         SWS_BILINEAR | SWS_ACCURATE_RND, nullptr, nullptr, nullptr);
    if (sws == nullptr) fail("setting up RGB to YUV conversion", AVERROR(EINVAL));
    frame = av_frame_alloc();
    pkt = av_packet_alloc();
    if (frame == nullptr || pkt == nullptr) fail("allocating frame buffers", AVERROR(ENOMEM));
    frame->format = AV_PIX_FMT_YUV420P;
    frame->width = enc_width;
    frame->height = enc_height;
    frame->color_range = AVCOL_RANGE_MPEG;
    frame->colorspace = AVCOL_SPC_SMPTE170M;
    rc = av_frame_get_buffer(frame, 0);
    if (rc < 0) fail("allocating a frame", rc);
    started = true;
  }

  // Moves every packet the encoder has ready into the file.
  void drain() {
    for (;;) {
      int rc = avcodec_receive_packet(enc, pkt);
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      if (rc < 0) fail("encoding", rc);
      if (pkt->duration == 0) pkt->duration = 1;  // one frame, in the encoder's 1/fps time base
      av_packet_rescale_ts(pkt, enc->time_base, stream->time_base);
      pkt->stream_index = stream->index;
      rc = av_interleaved_write_frame(fmt, pkt);  // takes the packet's reference
      if (rc < 0) fail("writing a packet", rc);
    }
  }

  // Converts `rgb` (width x height) into `frame`, repeating the last column/row for odd sizes.
  void convert(const RgbFrame& rgb) {
    const uint8_t* src = rgb.rgb.data();
    if (enc_width != width || enc_height != height) {
      const size_t src_row = static_cast<size_t>(width) * 3, dst_row = static_cast<size_t>(enc_width) * 3;
      padded.resize(dst_row * enc_height);
      for (int y = 0; y < enc_height; ++y) {
        const uint8_t* in = src + src_row * std::min(y, height - 1);
        uint8_t* out = padded.data() + dst_row * y;
        std::memcpy(out, in, src_row);
        if (enc_width != width) std::memcpy(out + src_row, in + src_row - 3, 3);
      }
      src = padded.data();
    }
    const int rc = av_frame_make_writable(frame);
    if (rc < 0) fail("preparing a frame", rc);
    const uint8_t* planes[1] = {src};
    const int strides[1] = {enc_width * 3};
    sws_scale(sws, planes, strides, 0, enc_height, frame->data, frame->linesize);
  }
};

Mp4Sink::Mp4Sink(const std::string& path, int fps) : impl_(std::make_unique<Impl>()) {
  FASTAR_CHECK(fps > 0, "MP4 output " << path << " needs a positive frame rate, got fps=" << fps);
  quiet_libav_logging();
  Impl& s = *impl_;
  s.path = path;
  s.fps = fps;
  std::string tried;
  s.codec = pick_encoder(fps, &tried);
  FASTAR_CHECK(s.codec != nullptr, "MP4 output " << path << ": no usable video encoder in this FFmpeg (tried: "
                                                 << (tried.empty() ? "none found" : tried)
                                                 << "); install an FFmpeg with libx264, or pass a directory "
                                                    "instead of a .mp4 path to get PNG frames");
  s.tmp = path + ".tmp-" + std::to_string(::getpid()) + ".mp4";
  int rc = avformat_alloc_output_context2(&s.fmt, nullptr, "mp4", s.tmp.c_str());
  FASTAR_CHECK(rc >= 0 && s.fmt != nullptr,
               "MP4 output " << path << ": FFmpeg has no MP4 muxer (" << av_error_string(rc)
                             << "); install a full FFmpeg, or pass a directory to get PNG frames");
  rc = avio_open(&s.fmt->pb, s.tmp.c_str(), AVIO_FLAG_WRITE);
  if (rc < 0) {
    s.tmp.clear();  // nothing was created; don't try to remove it
    FASTAR_FAIL("cannot write MP4 " << path << " (" << av_error_string(rc)
                                    << "); check that its directory exists and is writable");
  }
}

Mp4Sink::~Mp4Sink() {
  try {
    impl_.reset();  // Impl's destructor frees libav state and deletes an unpublished temp file
  } catch (...) {
  }
}

void Mp4Sink::write(const RgbFrame& rgb) {
  Impl& s = *impl_;
  FASTAR_CHECK(!s.failed, s.label() << ": write() after an earlier error; the output was discarded");
  FASTAR_CHECK(!s.finished, s.label() << ": write() after finish(); frames must come before finish()");
  check_rgb_frame(rgb, s.label());
  if (!s.started) s.start(rgb.width, rgb.height);
  FASTAR_CHECK(rgb.width == s.width && rgb.height == s.height,
               s.label() << ": frame " << s.next_pts << " is " << rgb.width << "x" << rgb.height
                         << " but earlier frames are " << s.width << "x" << s.height
                         << "; all frames of one video must have the same size");
  s.convert(rgb);
  s.frame->pts = s.next_pts++;
  const int rc = avcodec_send_frame(s.enc, s.frame);
  if (rc < 0) s.fail("encoding", rc);
  s.drain();
}

void Mp4Sink::finish() {
  Impl& s = *impl_;
  if (s.finished) return;
  FASTAR_CHECK(!s.failed, s.label() << ": cannot finish after an earlier error; the output was discarded");
  if (!s.started) {
    s.finished = true;
    s.release(/*keep_file=*/false);
    FASTAR_FAIL(s.label() << ": no frames were written, so there is no video to publish");
  }
  int rc = avcodec_send_frame(s.enc, nullptr);  // flush delayed frames (B-frames, lookahead)
  if (rc < 0) s.fail("flushing the encoder", rc);
  s.drain();
  rc = av_write_trailer(s.fmt);
  if (rc < 0) s.fail("writing the MP4 index", rc);
  rc = avio_closep(&s.fmt->pb);
  if (rc < 0) s.fail("closing the file", rc);
  if (std::rename(s.tmp.c_str(), s.path.c_str()) != 0) {
    const int err = errno;
    s.fail("renaming " + s.tmp + " to " + s.path, AVERROR(err));
  }
  s.tmp.clear();  // published: nothing left to delete
  s.finished = true;
  s.release(/*keep_file=*/true);
}

std::string Mp4Sink::describe() const { return impl_->label(); }

std::string Mp4Sink::encoder_name() const { return impl_->codec != nullptr ? impl_->codec->name : ""; }

}  // namespace fastar
