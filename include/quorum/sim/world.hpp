// The simulated world's clock, randomness and event queue. Everything in a simulation derives
// from one seed and runs on one thread, so a seed replays exactly. Not thread-safe.
#pragma once

#include <quorum/detail/random.hpp>

#include <cstdint>
#include <functional>
#include <queue>
#include <string_view>
#include <vector>

namespace quorum::sim {

/** Simulated time, in microticks. A node's tick lasts about `ticks` microticks. */
using sim_time = std::uint64_t;
inline constexpr sim_time ticks = 100;

/** The seeded source of every random choice in a simulation. */
class rng {
 public:
  explicit rng(std::uint64_t seed) : generator_(seed) {}

  std::uint64_t next() { return generator_.next(); }
  /** Uniform in [lo, hi]; lo <= hi. */
  std::uint64_t between(std::uint64_t lo, std::uint64_t hi) {
    return lo + generator_.below(hi - lo + 1);
  }
  /** True with probability p (0..1). */
  bool chance(double p) {
    if (p <= 0) return false;
    return static_cast<double>(generator_.next() >> 11) * 0x1.0p-53 < p;
  }
  /** A uniformly chosen element of a non-empty vector. */
  template <class T>
  const T& pick(const std::vector<T>& items) {
    return items[generator_.below(items.size())];
  }
  /** A new generator, seeded from this one, for a sub-component. */
  rng fork() { return rng(next()); }

 private:
  detail::splitmix64 generator_;
};

/** 64-bit FNV-1a over everything that happens: equal hashes mean equal traces. */
class trace_hash {
 public:
  void add(std::uint64_t value) {
    for (int i = 0; i < 8; ++i) {
      hash_ ^= (value >> (8 * i)) & 0xff;
      hash_ *= 0x100000001b3ULL;
    }
  }
  void add(std::string_view text) {
    for (char c : text) {
      hash_ ^= static_cast<unsigned char>(c);
      hash_ *= 0x100000001b3ULL;
    }
  }
  std::uint64_t value() const noexcept { return hash_; }

 private:
  std::uint64_t hash_ = 0xcbf29ce484222325ULL;
};

/** A time-ordered queue of actions; ties run in scheduling order. */
class event_queue {
 public:
  sim_time now() const noexcept { return now_; }

  /** Runs `action` at now() + delay. */
  void after(sim_time delay, std::function<void()> action) {
    queue_.push({now_ + delay, next_sequence_++, std::move(action)});
  }

  /** Runs the next event, if any is due at or before `until`; returns false otherwise. */
  bool run_one(sim_time until) {
    if (queue_.empty() || queue_.top().at > until) return false;
    event e = queue_.top();
    queue_.pop();
    now_ = e.at;
    e.action();
    return true;
  }

  /** Moves the clock to `until` after running every event due by then. */
  void run_until(sim_time until) {
    while (run_one(until)) {
    }
    if (now_ < until) now_ = until;
  }

 private:
  struct event {
    sim_time at;
    std::uint64_t sequence;
    std::function<void()> action;
    bool operator>(const event& other) const {
      return at != other.at ? at > other.at : sequence > other.sequence;
    }
  };
  std::priority_queue<event, std::vector<event>, std::greater<>> queue_;
  std::uint64_t next_sequence_ = 0;
  sim_time now_ = 0;
};

}  // namespace quorum::sim
