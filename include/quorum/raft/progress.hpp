// The leader's view of each follower's log: how far it matches, what to send next, and how
// much is in flight. Plain values owned by one core; not thread-safe.
#pragma once

#include <quorum/raft/types.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string_view>

namespace quorum::raft {

/**
 * Appends sent but not yet acknowledged, bounded by message count and by bytes. Pipelining
 * stops when either bound is reached and resumes as acknowledgements free room.
 */
class inflights {
 public:
  inflights(std::size_t max_count, std::uint64_t max_bytes) noexcept
      : max_count_(max_count), max_bytes_(max_bytes) {}

  /** Records an append whose last entry is `last`, carrying `bytes`. */
  void add(index_t last, std::uint64_t bytes);
  /** Frees every append whose last entry is <= `index` (they were acknowledged). */
  void free_le(index_t index);
  /** Frees the oldest append: a heartbeat answer shows the follower is alive. */
  void free_first();
  void reset() noexcept;

  bool full() const noexcept { return queue_.size() >= max_count_ || bytes_ >= max_bytes_; }
  std::size_t count() const noexcept { return queue_.size(); }
  std::uint64_t bytes() const noexcept { return bytes_; }

 private:
  struct flight {
    index_t last;
    std::uint64_t bytes;
  };
  std::deque<flight> queue_;
  std::uint64_t bytes_ = 0;
  std::size_t max_count_;
  std::uint64_t max_bytes_;
};

/**
 * How the leader replicates to one follower:
 * - probe: the match point is unknown; one append at a time until one is accepted;
 * - replicate: the follower is in line; appends are pipelined within the in-flight window;
 * - snapshot: the entries the follower needs were compacted; it is sent the snapshot in chunks
 *   (pipelined within the same window, resumed from the last acknowledged byte), and appends
 *   wait until it acknowledges receipt of the whole snapshot.
 */
enum class progress_state : std::uint8_t { probe, replicate, snapshot };

std::string_view to_string(progress_state s) noexcept;

/** One follower's replication progress, as tracked by the leader. */
class progress {
 public:
  progress(index_t next, std::size_t max_inflight_count, std::uint64_t max_inflight_bytes)
      : next_(next), inflights_(max_inflight_count, max_inflight_bytes) {}

  index_t match() const noexcept { return match_; }
  index_t next() const noexcept { return next_; }
  progress_state state() const noexcept { return state_; }
  const class inflights& inflights() const noexcept { return inflights_; }

  /** Heard from since the last CheckQuorum round (dissertation 6.2). */
  bool recent_active = false;

  /** No append should go out now: probing and one is outstanding, window full, or snapshot. */
  bool is_paused() const noexcept;

  /** Back to probe from `next`, forgetting anything in flight. */
  void become_probe();
  /** Pipelining from match + 1. */
  void become_replicate();
  /** Appends stop: the follower is sent the snapshot `meta` from its first byte. */
  void become_snapshot(const snapshot_meta& meta);
  /** Forget everything: new leader, or this node's match and next restart from `next`. */
  void reset(index_t next, index_t match);

  /** Records an append of `count` entries (`bytes` in all) ending at `last` was sent. */
  void sent_append(std::size_t count, index_t last, std::uint64_t bytes);

  /**
   * The follower acknowledged up to `index`. Returns true if that moved the match point (an
   * old acknowledgement returns false). Unpauses a probe; frees acknowledged in-flight appends.
   */
  bool maybe_update(index_t index);

  /**
   * The follower rejected an append with previous index `rejected`, suggesting it matches at
   * most at `hint`. Returns false for a stale rejection (nothing changes).
   */
  bool maybe_decrease_to(index_t rejected, index_t hint);

  /**
   * A heartbeat was answered: unpause a probe, and release one slot of a full window. While
   * sending a snapshot: after two answers in a row with chunks outstanding and none
   * acknowledged, chunks were lost; resend from the last acknowledged byte.
   */
  void heartbeat_answered();

  // ---- snapshot state ----
  /** The snapshot being sent. */
  const snapshot_meta& snapshot() const noexcept { return snapshot_; }
  index_t snapshot_index() const noexcept { return snapshot_.index; }
  /** The next byte of the snapshot to send. */
  std::uint64_t snapshot_offset() const noexcept { return snapshot_sent_; }
  /** Records a chunk sent, ending at byte `end`; `last` if it ends the snapshot. */
  void sent_snapshot_chunk(std::uint64_t end, std::uint64_t bytes, bool last);
  /** The follower holds `received` bytes durably: frees the chunks it covers. */
  void snapshot_received(std::uint64_t received);
  /** The follower holds `received` bytes and wants the rest from there (it refused a chunk
   *  out of order). Ignored if stale, and, unless `force`, if sending already restarted from
   *  there and chunks are in flight: every refused chunk of the old window asks the same, and
   *  resending the window for each would multiply the traffic. (If the resent chunk is lost
   *  too, the stall check forces another rewind.) */
  void snapshot_rewind(std::uint64_t received, bool force = false);

 private:
  index_t match_ = 0;
  index_t next_;
  progress_state state_ = progress_state::probe;
  bool probe_sent_ = false;
  class inflights inflights_;
  snapshot_meta snapshot_;
  std::uint64_t snapshot_sent_ = 0;
  std::uint64_t snapshot_rewound_to_ = 0;  // where sending last restarted (max: not yet)
  std::uint64_t snapshot_acked_ = 0;
  std::uint64_t snapshot_acked_at_last_heartbeat_ = 0;
  int snapshot_stalls_ = 0;
  bool snapshot_last_sent_ = false;
};

}  // namespace quorum::raft
