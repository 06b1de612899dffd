// An in-memory log_storage for tests, simulations and hosts that keep durability elsewhere.
// "Durable" here means "written into this object": it survives a restart of the core that
// reads it, not a restart of the process. Not thread-safe; one owner drives it.
#pragma once

#include <quorum/detail/assert.hpp>
#include <quorum/error.hpp>
#include <quorum/raft/storage.hpp>
#include <quorum/raft/types.hpp>

#include <algorithm>
#include <span>
#include <utility>
#include <vector>

namespace quorum::raft {

/** log_storage kept in a vector; the host writes it from each ready batch. */
class memory_storage {
 public:
  /** An empty log for a group whose voters are `members` (the bootstrap configuration). */
  explicit memory_storage(membership members = {}) : members_(std::move(members)) {
    entries_.push_back(entry{});  // the compaction point: index 0, term 0
  }

  raft::initial_state initial_state() const { return {hard_, members_, receiving_}; }
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

  /** Everything written is already as durable as this store gets: nothing to do. Present so
   *  that hosts (runtime::replica) drive every store the same way. */
  std::error_code sync() { return {}; }

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
   * Keeps `data` as the snapshot at `meta` (core::applied_meta() as the state machine's state
   * was taken), replacing the previous one. Returns errc::compacted if not newer than the
   * snapshot held, errc::unavailable if `meta` does not name an entry of the log; nothing
   * changes then. The log stays as it is until compact().
   */
  std::error_code create_snapshot(const snapshot_meta& meta, shared_bytes data) {
    if (meta.index <= snapshot_.index) return errc::compacted;
    std::error_code ec;
    if (term(meta.index, ec) != meta.term || ec) return errc::unavailable;
    keep_snapshot(meta, std::move(data));
    return {};
  }

  /**
   * Discards entries up to and including `index`, keeping its term as the compaction point.
   * Returns errc::compacted if already compacted that far, errc::unavailable if `index` is
   * beyond the snapshot (a log is compacted only into a snapshot); nothing changes then.
   */
  std::error_code compact(index_t index) {
    const index_t offset = entries_.front().index;
    if (index <= offset) return errc::compacted;
    if (index > snapshot_.index) return errc::unavailable;
    const auto drop = static_cast<std::ptrdiff_t>(index - offset);
    entries_.erase(entries_.begin(), entries_.begin() + drop);
    entries_.front().payload = {};
    members_ = snapshot_.members;
    return {};
  }

  snapshot_meta snapshot() const { return snapshot_; }
  /** The bytes of the snapshot held (empty if none). */
  const shared_bytes& snapshot_data() const noexcept { return snapshot_data_; }

  /** Reads the current snapshot, or the one before it (kept so that streams of it that are
   *  under way can finish). */
  snapshot_piece read_snapshot(index_t index, std::uint64_t offset, std::uint64_t max_bytes,
                               std::error_code& ec) const {
    ec.clear();
    const shared_bytes* data = nullptr;
    if (index != 0 && index == snapshot_.index) data = &snapshot_data_;
    if (index != 0 && index == previous_index_) data = &previous_data_;
    if (data == nullptr) {
      ec = errc::compacted;
      return {};
    }
    const std::uint64_t size = data->size();
    QUORUM_ASSERT(offset <= size, "snapshot read beyond its end");
    const std::uint64_t n = std::min(size - offset, std::max<std::uint64_t>(max_bytes, 1));
    return {shared_bytes(data->bytes().subspan(offset, n)), offset + n == size};
  }

  /** Writes a chunk of an incoming snapshot from a ready batch. */
  void write_snapshot_chunk(const snapshot_chunk& chunk) {
    if (chunk.offset == 0) {
      receiving_ = {chunk.meta.index, chunk.meta.term, 0};
      receiving_data_.clear();
    }
    QUORUM_ASSERT(receiving_.index == chunk.meta.index && receiving_.term == chunk.meta.term &&
                      receiving_.bytes == chunk.offset,
                  "snapshot chunks must arrive in order");
    const auto bytes = chunk.data.bytes();
    receiving_data_.insert(receiving_data_.end(), bytes.begin(), bytes.end());
    receiving_.bytes += bytes.size();
  }

  /**
   * Makes the completely received snapshot `meta` this store's snapshot, from a ready batch:
   * the log up to meta.index is discarded, and the entries after it are kept only if the
   * entry at meta.index has meta.term (paper 7, figure 13).
   */
  void install_snapshot(const snapshot_meta& meta) {
    QUORUM_ASSERT(receiving_.index == meta.index && receiving_.term == meta.term,
                  "installing a snapshot that was not received");
    std::error_code ec;
    const bool keep = term(meta.index, ec) == meta.term && !ec;
    const index_t offset = entries_.front().index;
    if (keep) {
      entries_.erase(entries_.begin(),
                     entries_.begin() + static_cast<std::ptrdiff_t>(meta.index - offset));
    } else {
      entries_.assign(1, entry{});
    }
    entries_.front() = entry{meta.term, meta.index, {}};
    keep_snapshot(meta, shared_bytes(receiving_data_));
    members_ = meta.members;
    receiving_ = {};
    receiving_data_.clear();
  }

 private:
  void keep_snapshot(const snapshot_meta& meta, shared_bytes data) {
    previous_index_ = snapshot_.index;
    previous_data_ = std::exchange(snapshot_data_, std::move(data));
    snapshot_ = meta;
  }

  membership members_;
  hard_state hard_;
  // entries_[0] is the compaction point (only its index and term matter), then the log.
  std::vector<entry> entries_;
  snapshot_meta snapshot_;
  shared_bytes snapshot_data_;
  index_t previous_index_ = 0;
  shared_bytes previous_data_;
  snapshot_receipt receiving_;
  std::vector<std::byte> receiving_data_;
};

static_assert(log_storage<memory_storage>);

}  // namespace quorum::raft
