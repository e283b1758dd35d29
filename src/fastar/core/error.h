// Two error tiers (docs/design.md, "core"):
//   - FASTAR_CHECK / fastar::Error: user or configuration errors (bad file, bad option, wrong shape).
//     Thrown as an exception whose message says what is wrong and what to do; the CLI prints it
//     and exits non-zero.
//   - FASTAR_ASSERT: internal invariants. A failure is a bug in fastar, so it aborts with the
//     location instead of unwinding through half-updated state.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace fastar {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

[[noreturn]] void assert_fail(const char* condition, const char* file, int line, const std::string& message);

}  // namespace fastar

// FASTAR_CHECK(cond, "text " << value << " more"): throws fastar::Error with the streamed message.
#define FASTAR_CHECK(cond, msg)                  \
  do {                                           \
    if (!(cond)) {                               \
      std::ostringstream fastar_check_stream_;   \
      fastar_check_stream_ << msg;               \
      throw ::fastar::Error(fastar_check_stream_.str()); \
    }                                            \
  } while (0)

#define FASTAR_FAIL(msg) FASTAR_CHECK(false, msg)

// FASTAR_ASSERT(cond, "text"): aborts; for invariants only a bug in fastar can break.
#define FASTAR_ASSERT(cond, msg)                                          \
  do {                                                                    \
    if (!(cond)) {                                                        \
      std::ostringstream fastar_assert_stream_;                           \
      fastar_assert_stream_ << msg;                                       \
      ::fastar::assert_fail(#cond, __FILE__, __LINE__, fastar_assert_stream_.str()); \
    }                                                                     \
  } while (0)
