// An in-memory log_storage for tests, simulations and hosts that keep durability elsewhere.
// "Durable" here means "written into this object": it survives a restart of the core that
// reads it, not a restart of the process. Not thread-safe; one owner drives it.
#pragma once

#include <quorum/detail/assert.hpp>
#include <quorum/error.hpp>
#include <quorum/raft/storage.hpp>
#include <quorum/raft/types.hpp>

#include <span>
#include <vector>

namespace quorum::raft {

/** log_storage kept in a vector; the host writes it from each ready batch. */
class memory_storage {
 public:
  /** An empty log for a group whose voters are `members` (the bootstrap configuration). */
  explicit memory_storage(membership members = {}) : members_(std::move(members)) {
    entries_.push_back(entry{});  // the compaction point: index 0, term 0
  }

  raft::initial_state initial_state() const { return {hard_, members_}; }
  index_t first_index() const noexcept { return entries_.front().index + 1; }
  index_t last_index() const noexcept { return entries_.front().index + entries_.size() - 1; }

  term_t term(index_t i, std::error_code& ec) const {
    ec.clear();
    const index_t offset = entries_.front().index;
    if (i < offset) {
      ec = errc::compacted;
      return 0;
    }
    if (i > last_index()) {
      ec = errc::unavailable;
      return 0;
    }
    return entries_[i - offset].term;
  }

  std::vector<entry> entries(index_t lo, index_t hi, std::uint64_t max_bytes,
                             std::error_code& ec) const {
    ec.clear();
    const index_t offset = entries_.front().index;
    if (lo <= offset) {
      ec = errc::compacted;
      return {};
    }
    if (hi > last_index() + 1) {
      ec = errc::unavailable;
      return {};
    }
    std::vector<entry> out;
    std::uint64_t bytes = 0;
    for (index_t i = lo; i < hi; ++i) {
      const entry& e = entries_[i - offset];
      bytes += entry_footprint(e);
      if (!out.empty() && bytes > max_bytes) break;
      out.push_back(e);
    }
    return out;
  }

  /** Records the hard state from a ready batch. */
  void set_hard_state(const hard_state& hs) { hard_ = hs; }

  /**
   * Appends entries from a ready batch. They must be contiguous; the first may overwrite
   * existing entries, in which case everything from its index on is replaced (Raft's suffix
   * truncation of conflicting entries). The first index must be at most last_index() + 1 and
   * above the compaction point; anything else is a broken invariant of the caller.
   */
  void append(std::span<const entry> batch) {
    if (batch.empty()) return;
    const index_t offset = entries_.front().index;
    const index_t first = batch.front().index;
    QUORUM_ASSERT(first > offset && first <= last_index() + 1,
                  "appended entries must follow the compaction point and leave no gap");
    entries_.resize(static_cast<std::size_t>(first - offset));
    entries_.insert(entries_.end(), batch.begin(), batch.end());
  }

  /**
   * Discards entries up to and including `index`, keeping its term as the compaction point.
   * Returns errc::compacted if already compacted that far, errc::unavailable if beyond the
   * last entry; nothing changes then.
   */
  std::error_code compact(index_t index) {
    const index_t offset = entries_.front().index;
    if (index <= offset) return errc::compacted;
    if (index > last_index()) return errc::unavailable;
    const auto drop = static_cast<std::ptrdiff_t>(index - offset);
    entries_.erase(entries_.begin(), entries_.begin() + drop);
    entries_.front().payload = {};
    return {};
  }

 private:
  membership members_;
  hard_state hard_;
  // entries_[0] is the compaction point (only its index and term matter), then the log.
  std::vector<entry> entries_;
};

static_assert(log_storage<memory_storage>);

}  // namespace quorum::raft
