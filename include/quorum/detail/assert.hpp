// QUORUM_ASSERT: checks an internal invariant and aborts with a message when it is broken.
// Never used for bad input from outside, which gets an error code instead.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace quorum::detail {

[[noreturn]] inline void assertion_failed(const char* expr, const char* file, int line,
                                          const char* why) noexcept {
  std::fprintf(stderr, "quorum: invariant broken: %s (%s) at %s:%d\n", why, expr, file, line);
  std::abort();
}

}  // namespace quorum::detail

#define QUORUM_ASSERT(expr, why) \
  ((expr) ? static_cast<void>(0) \
          : ::quorum::detail::assertion_failed(#expr, __FILE__, __LINE__, why))
