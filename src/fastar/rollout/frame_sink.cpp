#include "fastar/rollout/frame_sink.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "fastar/core/error.h"

#ifdef FASTAR_HAVE_VIDEO
#include "fastar/rollout/mp4_writer.h"
#endif

namespace fastar {
namespace {

namespace fs = std::filesystem;

bool ends_with_mp4(const std::string& out) {
  if (out.size() < 4) return false;
  std::string tail = out.substr(out.size() - 4);
  std::transform(tail.begin(), tail.end(), tail.begin(), [](unsigned char c) { return std::tolower(c); });
  return tail == ".mp4";
}

// A directory of frame_000000.png, frame_000001.png, ...
class PngDirSink final : public FrameSink {
 public:
  explicit PngDirSink(const std::string& dir) : dir_(dir) {
    std::error_code ec;
    fs::create_directories(dir_, ec);
    FASTAR_CHECK(!ec, "cannot create output directory " << dir_ << " (" << ec.message()
                                                        << "); pass --out a writable directory or a .mp4 file path");
    FASTAR_CHECK(fs::is_directory(dir_, ec),
                 "output path " << dir_ << " exists but is not a directory; pass --out a directory for PNG frames "
                                << "or a path ending in .mp4 for a video");
    FASTAR_CHECK(::access(dir_.c_str(), W_OK | X_OK) == 0,
                 "output directory " << dir_ << " is not writable; pass --out a writable directory");
  }

  void write(const RgbFrame& frame) override {
    FASTAR_CHECK(!finished_, "PNG frames in " << dir_ << ": write() after finish(); frames must come before finish()");
    check_rgb_frame(frame, "PNG frames in " + dir_);
    if (count_ == 0) {
      width_ = frame.width;
      height_ = frame.height;
    }
    FASTAR_CHECK(frame.width == width_ && frame.height == height_,
                 "PNG frames in " << dir_ << ": frame " << count_ << " is " << frame.width << "x" << frame.height
                                  << " but earlier frames are " << width_ << "x" << height_
                                  << "; all frames of one output must have the same size");
    char name[32];
    std::snprintf(name, sizeof(name), "frame_%06lld.png", static_cast<long long>(count_));
    write_png((fs::path(dir_) / name).string(), frame);
    ++count_;
  }

  void finish() override { finished_ = true; }  // every PNG is already complete and in place

  std::string describe() const override {
    return "PNG frames in " + dir_ + (dir_.empty() || dir_.back() == '/' ? "" : "/");
  }

 private:
  std::string dir_;
  int width_ = 0, height_ = 0;
  long long count_ = 0;
  bool finished_ = false;
};

}  // namespace

std::unique_ptr<FrameSink> make_frame_sink(const std::string& out, int fps) {
  FASTAR_CHECK(!out.empty(), "no output path given; pass a directory for PNG frames or a path ending in .mp4");
  if (ends_with_mp4(out)) {
#ifdef FASTAR_HAVE_VIDEO
    FASTAR_CHECK(fps > 0, "MP4 output " << out << " needs a positive frame rate, got fps=" << fps);
    return std::make_unique<Mp4Sink>(out, fps);
#else
    FASTAR_FAIL("MP4 output " << out << " requested, but this fastar was built without video support "
                              << "(FASTAR_VIDEO=OFF); rebuild with -DFASTAR_VIDEO=ON (needs the FFmpeg libav* "
                              << "development packages) or pass a directory to get PNG frames instead");
#endif
  }
  return std::make_unique<PngDirSink>(out);
}

}  // namespace fastar
