#include "fastar/core/error.h"

#include <cstdio>
#include <cstdlib>

namespace fastar {

void assert_fail(const char* condition, const char* file, int line, const std::string& message) {
  std::fprintf(stderr, "fastar internal error: %s\n  check `%s` failed at %s:%d\n  this is a bug in fastar; please report it\n",
               message.c_str(), condition, file, line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace fastar
