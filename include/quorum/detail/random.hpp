// A small, fast, seedable generator (splitmix64). Deterministic across platforms, so a seed
// replays exactly. Not thread-safe; one per owner.
#pragma once

#include <cstdint>

namespace quorum::detail {

class splitmix64 {
 public:
  explicit splitmix64(std::uint64_t seed) noexcept : state_(seed) {}

  std::uint64_t next() noexcept {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  /** A value in [0, bound); bound must be > 0. The tiny modulo bias is irrelevant here. */
  std::uint64_t below(std::uint64_t bound) noexcept { return next() % bound; }

 private:
  std::uint64_t state_;
};

}  // namespace quorum::detail
