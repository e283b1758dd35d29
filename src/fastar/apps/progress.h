// A progress line on stderr: frames done, frames/s and memory; redrawn in place on a terminal,
// one line per update otherwise (logs, CI).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace fastar::app {

class ProgressBar {
 public:
  explicit ProgressBar(int64_t total_frames);
  void update(int64_t frames_done, const std::string& extra);
  void finish();

 private:
  int64_t total_;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace fastar::app
