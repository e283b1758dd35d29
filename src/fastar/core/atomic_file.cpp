#include "fastar/core/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "fastar/core/error.h"

namespace fastar {

void write_file_atomically(const std::string& path, std::string_view contents) {
  const std::string temp = path + ".tmp-" + std::to_string(::getpid());
  std::FILE* file = std::fopen(temp.c_str(), "wb");
  FASTAR_CHECK(file, path << ": cannot write (" << std::strerror(errno) << "); check that the folder exists and is writable");
  const bool written = std::fwrite(contents.data(), 1, contents.size(), file) == contents.size();
  const int write_errno = errno;
  const bool closed = std::fclose(file) == 0;
  if (!written || !closed) {
    std::remove(temp.c_str());
    FASTAR_FAIL(path << ": writing failed (" << std::strerror(written ? errno : write_errno) << "); is the disk full?");
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const int rename_errno = errno;
    std::remove(temp.c_str());
    FASTAR_FAIL(path << ": cannot replace the file (" << std::strerror(rename_errno) << ")");
  }
}

}  // namespace fastar
