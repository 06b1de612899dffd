// A linearizability checker for register histories (one register per key): a Wing & Gong
// search with Lowe's memoization of (linearized set, value). Operations whose outcome is
// unknown (the client timed out) may take effect at any time after they began, or never.
// Pure and single-threaded.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace quorum::sim {

/** One operation on one register. Values are non-zero; 0 is the initial (absent) value. */
struct register_op {
  static constexpr std::uint64_t never = std::numeric_limits<std::uint64_t>::max();

  std::uint64_t invoked = 0;
  /** When the client learned the outcome; `never` if it did not (a write that may have
   *  happened). Unknown reads constrain nothing and should not be recorded. */
  std::uint64_t completed = never;
  bool is_write = false;
  /** The value written, or the value the read returned. */
  std::uint64_t value = 0;
  std::uint64_t client = 0;
};

/**
 * Checks one register's history. Returns nothing if linearizable, or a description of why
 * not. Gives up (with a message saying so) after `max_steps` search steps.
 */
std::optional<std::string> check_register(const std::vector<register_op>& history,
                                          std::uint64_t max_steps = 20'000'000);

/** Histories of many registers, checked one key at a time (linearizability is local). */
class kv_history {
 public:
  void record(const std::string& key, const register_op& op) { ops_[key].push_back(op); }
  std::optional<std::string> check() const;
  std::size_t size() const;

 private:
  std::map<std::string, std::vector<register_op>> ops_;
};

}  // namespace quorum::sim
