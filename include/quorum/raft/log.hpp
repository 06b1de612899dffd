// The Raft log as the core sees it: a durable part behind a log_storage and an unstable tail of
// entries not yet persisted (etcd-io/raft's split). Tracks the commit and applied indexes.
// Not thread-safe; owned by one core.
#pragma once

#include <quorum/detail/assert.hpp>
#include <quorum/error.hpp>
#include <quorum/raft/storage.hpp>
#include <quorum/raft/types.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace quorum::raft {

/**
 * A log over Storage. Entries [storage.first_index(), unstable_offset) are durable; entries
 * from unstable_offset on live in memory until the host persists them and the core is told so
 * through stable_to().
 */
template <log_storage Storage>
class raft_log {
 public:
  /** Reads the durable state of `storage`, which must outlive this log. */
  explicit raft_log(const Storage& storage)
      : storage_(&storage),
        unstable_offset_(storage.last_index() + 1),
        committed_(storage.initial_state().hard.commit),
        applied_(std::max(storage.first_index() - 1, storage.snapshot().index)) {
    QUORUM_ASSERT(committed_ <= storage.last_index(),
                  "storage's hard state commits entries it does not hold");
    committed_ = std::max(committed_, applied_);
  }

  index_t first_index() const {
    return pending_snapshot_ ? pending_snapshot_->index + 1 : storage_->first_index();
  }

  index_t last_index() const {
    return unstable_.empty() ? unstable_offset_ - 1 : unstable_.back().index;
  }

  /** The highest index known durable in this node's storage (the tail is not). */
  index_t persisted_index() const { return unstable_offset_ - 1; }

  index_t committed() const noexcept { return committed_; }
  index_t applied() const noexcept { return applied_; }

  /** The term of entry i; sets ec (compacted / unavailable) and returns 0 when unknown. */
  term_t term(index_t i, std::error_code& ec) const {
    ec.clear();
    if (pending_snapshot_ && i <= pending_snapshot_->index) {
      if (i == pending_snapshot_->index) return pending_snapshot_->term;
      ec = errc::compacted;
      return 0;
    }
    if (i >= unstable_offset_) {
      if (i > last_index()) {
        ec = errc::unavailable;
        return 0;
      }
      return unstable_[i - unstable_offset_].term;
    }
    return storage_->term(i, ec);
  }

  /** The term of entry i, or 0 when it is not in the log (compacted or beyond the end). */
  term_t term_or_zero(index_t i) const {
    std::error_code ec;
    return term(i, ec);
  }

  term_t last_term() const { return term_or_zero(last_index()); }

  bool match_term(index_t i, term_t t) const {
    std::error_code ec;
    const term_t found = term(i, ec);
    return !ec && found == t;
  }

  /**
   * Paper 5.4.1: a candidate's log is at least as up to date as ours if its last term is
   * higher, or equal with an index at least as high.
   */
  bool is_up_to_date(index_t last, term_t t) const {
    const term_t ours = last_term();
    return t > ours || (t == ours && last >= last_index());
  }

  /**
   * Entries [lo, last_index()], at most `max_count` and stopping before `max_bytes` (but at
   * least one). Sets ec when lo was compacted.
   */
  std::vector<entry> entries_from(index_t lo, std::size_t max_count, std::uint64_t max_bytes,
                                  std::error_code& ec) const {
    ec.clear();
    if (lo > last_index()) return {};
    const index_t hi = std::min(last_index() + 1, lo + max_count);
    return slice(lo, hi, max_bytes, ec);
  }

  /**
   * Appends entries proposed by this node as leader; they must follow the last index.
   * Returns the new last index.
   */
  index_t append(std::span<const entry> batch) {
    if (batch.empty()) return last_index();
    QUORUM_ASSERT(batch.front().index == last_index() + 1, "leader appends must be contiguous");
    QUORUM_ASSERT(batch.front().index > committed_, "cannot overwrite committed entries");
    truncate_and_append(batch);
    return last_index();
  }

  /**
   * Paper 5.3, the receiver's side of AppendEntries: if our entry at `prev` has term
   * `prev_term`, delete conflicting entries, append the new ones, advance the commit index to
   * min(leader_commit, last new index) and return that last new index. Returns nothing (and
   * changes nothing) when the consistency check fails.
   */
  std::optional<index_t> maybe_append(index_t prev, term_t prev_term, index_t leader_commit,
                                      std::span<const entry> batch) {
    if (!match_term(prev, prev_term)) return std::nullopt;
    const index_t last_new = prev + batch.size();
    const index_t conflict = find_conflict(batch);
    if (conflict != 0) {
      QUORUM_ASSERT(conflict > committed_, "a leader asked to overwrite a committed entry");
      truncate_and_append(batch.subspan(static_cast<std::size_t>(conflict - prev - 1)));
    }
    commit_to(std::min(leader_commit, last_new));
    return last_new;
  }

  /**
   * The largest index <= `index` whose term is <= `t`: where a leader (or follower) with a log
   * ending in term `t` could match. Used for fast back-tracking (dissertation 5.3 optimization).
   */
  index_t find_conflict_by_term(index_t index, term_t t) const {
    for (;;) {
      std::error_code ec;
      const term_t found = term(index, ec);
      if (ec || found <= t || index == 0) return index;
      --index;
    }
  }

  /** Raises the commit index; never lowers it. */
  void commit_to(index_t index) {
    if (index <= committed_) return;
    QUORUM_ASSERT(index <= last_index(), "commit index beyond the end of the log");
    committed_ = index;
  }

  /** Records that the host applied entries up to `index`. */
  void applied_to(index_t index) {
    if (index == 0) return;
    QUORUM_ASSERT(index <= committed_ && index >= applied_, "applied index out of range");
    applied_ = index;
  }

  /** Committed entries not yet applied, durable here, bounded by max_bytes (at least one). */
  std::vector<entry> next_committed_entries(std::uint64_t max_bytes) const {
    if (!has_next_committed()) return {};
    const index_t hi = std::min(committed_, persisted_index());
    std::error_code ec;
    auto out = slice(applied_ + 1, hi + 1, max_bytes, ec);
    QUORUM_ASSERT(!ec, "committed entries missing from the log");
    return out;
  }

  bool has_next_committed() const {
    return !pending_snapshot_ && applied_ < std::min(committed_, persisted_index());
  }

  /**
   * Paper 7: a received snapshot replaces the log up to meta.index; the entries after it stay
   * only if the entry at meta.index has meta.term. Until snapshot_installed(), the log reads
   * as compacted up to meta.index and nothing is applied: the state machine must be restored
   * from the snapshot first.
   */
  void restore(index_t index, term_t t) {
    QUORUM_ASSERT(index > committed_, "restoring a snapshot of committed entries");
    if (match_term(index, t)) {
      if (index >= unstable_offset_) {
        unstable_.erase(unstable_.begin(), unstable_.begin() + static_cast<std::ptrdiff_t>(
                                                                   index - unstable_offset_ + 1));
        unstable_offset_ = index + 1;
      }
    } else {
      unstable_.clear();
      unstable_offset_ = index + 1;
    }
    pending_snapshot_ = pending_snapshot{index, t};
    committed_ = index;
  }

  /** The snapshot at `index` handed out for restore is installed and the state machine
   *  restored from it: the log continues from there. */
  void snapshot_installed(index_t index) {
    if (pending_snapshot_ && pending_snapshot_->index == index) pending_snapshot_.reset();
    applied_ = std::max(applied_, index);
  }

  /** A restored snapshot's index not yet installed, or 0. */
  index_t pending_snapshot_index() const {
    return pending_snapshot_ ? pending_snapshot_->index : 0;
  }

  /** The entries the host has yet to persist. */
  const std::vector<entry>& unstable() const noexcept { return unstable_; }

  /**
   * The host persisted entries up to `index` at term `t`. Ignored if the tail changed since
   * (the entry at `index` now has another term or is gone): those entries come again.
   */
  void stable_to(index_t index, term_t t) {
    if (index < unstable_offset_ || index > last_index()) return;
    if (unstable_[index - unstable_offset_].term != t) return;
    unstable_.erase(unstable_.begin(),
                    unstable_.begin() + static_cast<std::ptrdiff_t>(index - unstable_offset_ + 1));
    unstable_offset_ = index + 1;
  }

 private:
  // The index of the first entry in `batch` that is new or conflicts with ours, 0 if none.
  index_t find_conflict(std::span<const entry> batch) const {
    for (const entry& e : batch) {
      if (!match_term(e.index, e.term)) return e.index;
    }
    return 0;
  }

  void truncate_and_append(std::span<const entry> batch) {
    const index_t first = batch.front().index;
    if (first == unstable_offset_ + unstable_.size()) {
      // Plain append to the tail.
    } else if (first <= unstable_offset_) {
      // Replaces durable entries too; the host's storage truncates when it appends these.
      unstable_offset_ = first;
      unstable_.clear();
    } else {
      unstable_.resize(static_cast<std::size_t>(first - unstable_offset_));
    }
    unstable_.insert(unstable_.end(), batch.begin(), batch.end());
  }

  std::vector<entry> slice(index_t lo, index_t hi, std::uint64_t max_bytes,
                           std::error_code& ec) const {
    std::vector<entry> out;
    if (lo < unstable_offset_) {
      out = storage_->entries(lo, std::min(hi, unstable_offset_), max_bytes, ec);
      if (ec) return {};
      if (out.size() < std::min(hi, unstable_offset_) - lo) return out;  // byte limit hit
    }
    std::uint64_t bytes = 0;
    for (const entry& e : out) bytes += entry_footprint(e);
    for (index_t i = std::max(lo, unstable_offset_); i < hi; ++i) {
      const entry& e = unstable_[i - unstable_offset_];
      bytes += entry_footprint(e);
      if (!out.empty() && bytes > max_bytes) break;
      out.push_back(e);
    }
    return out;
  }

  struct pending_snapshot {
    index_t index;
    term_t term;
  };

  const Storage* storage_;
  std::optional<pending_snapshot> pending_snapshot_;
  std::vector<entry> unstable_;
  index_t unstable_offset_;
  index_t committed_;
  index_t applied_;
};

}  // namespace quorum::raft
