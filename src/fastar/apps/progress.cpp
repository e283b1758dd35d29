#include "fastar/apps/progress.h"

#include <unistd.h>

#include <cstdio>

namespace fastar::app {

ProgressBar::ProgressBar(int64_t total_frames)
    : total_(total_frames), tty_(isatty(fileno(stderr)) != 0), start_(std::chrono::steady_clock::now()) {}

void ProgressBar::update(int64_t frames_done, const std::string& extra) {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double fps = seconds > 0 ? static_cast<double>(frames_done) / seconds : 0.0;
  constexpr int kWidth = 30;
  const int filled = total_ > 0 ? static_cast<int>(kWidth * frames_done / total_) : kWidth;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "%s[%s] %lld/%lld frames  %.2f frames/s  %s%s", tty_ ? "\r" : "", bar.c_str(),
               static_cast<long long>(frames_done), static_cast<long long>(total_), fps, extra.c_str(),
               tty_ ? "\033[K" : "\n");
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (tty_) std::fputc('\n', stderr);
}

}  // namespace fastar::app
