// Shared by the libFuzzer targets (tests/fuzz/README.md): the input as a file, and the error contract.
//
// fastar's contract for hostile input is "a fastar::Error naming the problem": any other exception
// (std::out_of_range, nlohmann::json::type_error, std::bad_alloc, ...) is a bug, so the targets let
// fastar::Error through silently and abort on everything else, which libFuzzer reports as a crash.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "fastar/core/error.h"

namespace fastar_fuzz {

// An anonymous in-memory file holding the input, reachable by path ("/proc/self/fd/N") for the
// library's file entry points (Checkpoint::open maps files; there is no in-memory entry point).
class MemFile {
 public:
  MemFile(const uint8_t* data, size_t size) {
    fd_ = ::memfd_create("fastar-fuzz", MFD_CLOEXEC);
    if (fd_ < 0) std::abort();
    size_t done = 0;
    while (done < size) {
      const ssize_t n = ::write(fd_, data + done, size - done);
      if (n <= 0) std::abort();
      done += static_cast<size_t>(n);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { ::close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// Runs `body`; a fastar::Error is the expected outcome for bad input, anything else aborts.
template <typename Body>
void expect_only_fastar_errors(const char* what, Body&& body) {
  try {
    body();
  } catch (const fastar::Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: escaped as a non-fastar exception: %s\n", what, e.what());
    std::abort();
  }
}

}  // namespace fastar_fuzz
