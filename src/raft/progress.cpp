// Replication progress and the in-flight window. Single-threaded, owned by one core.
#include <quorum/raft/progress.hpp>

#include <quorum/detail/assert.hpp>

#include <algorithm>
#include <limits>

namespace quorum::raft {

void inflights::add(index_t last, std::uint64_t bytes) {
  QUORUM_ASSERT(queue_.empty() || queue_.back().last < last, "in-flight appends out of order");
  queue_.push_back({last, bytes});
  bytes_ += bytes;
}

void inflights::free_le(index_t index) {
  while (!queue_.empty() && queue_.front().last <= index) {
    bytes_ -= queue_.front().bytes;
    queue_.pop_front();
  }
}

void inflights::free_first() {
  if (queue_.empty()) return;
  bytes_ -= queue_.front().bytes;
  queue_.pop_front();
}

void inflights::reset() noexcept {
  queue_.clear();
  bytes_ = 0;
}

std::string_view to_string(progress_state s) noexcept {
  switch (s) {
    case progress_state::probe: return "probe";
    case progress_state::replicate: return "replicate";
    case progress_state::snapshot: return "snapshot";
  }
  return "unknown";
}

bool progress::is_paused() const noexcept {
  switch (state_) {
    case progress_state::probe: return probe_sent_;
    case progress_state::replicate: return inflights_.full();
    case progress_state::snapshot: return snapshot_last_sent_ || inflights_.full();
  }
  return true;
}

void progress::become_probe() {
  state_ = progress_state::probe;
  probe_sent_ = false;
  inflights_.reset();
  next_ = match_ + 1;
}

void progress::become_replicate() {
  state_ = progress_state::replicate;
  probe_sent_ = false;
  inflights_.reset();
  next_ = match_ + 1;
}

void progress::become_snapshot(const snapshot_meta& meta) {
  state_ = progress_state::snapshot;
  probe_sent_ = false;
  inflights_.reset();
  snapshot_ = meta;
  snapshot_sent_ = 0;
  snapshot_rewound_to_ = std::numeric_limits<std::uint64_t>::max();
  snapshot_acked_ = 0;
  snapshot_acked_at_last_heartbeat_ = 0;
  snapshot_stalls_ = 0;
  snapshot_last_sent_ = false;
}

void progress::reset(index_t next, index_t match) {
  match_ = match;
  next_ = next;
  state_ = progress_state::probe;
  probe_sent_ = false;
  recent_active = false;
  inflights_.reset();
}

void progress::sent_append(std::size_t count, index_t last, std::uint64_t bytes) {
  switch (state_) {
    case progress_state::replicate:
      if (count > 0) {
        next_ = last + 1;
        inflights_.add(last, bytes);
      }
      break;
    case progress_state::probe: probe_sent_ = true; break;
    case progress_state::snapshot:
      QUORUM_ASSERT(false, "append sent to a follower that needs a snapshot");
  }
}

bool progress::maybe_update(index_t index) {
  bool updated = false;
  if (index > match_) {
    match_ = index;
    updated = true;
    probe_sent_ = false;
  }
  next_ = std::max(next_, index + 1);
  if (state_ == progress_state::replicate) inflights_.free_le(index);
  return updated;
}

bool progress::maybe_decrease_to(index_t rejected, index_t hint) {
  // A snapshot is under way: rejections of appends sent before it are stale.
  if (state_ == progress_state::snapshot) return false;
  if (state_ == progress_state::replicate) {
    // A rejection at or below the match point is stale: that append was overtaken.
    if (rejected <= match_) return false;
    next_ = match_ + 1;
    return true;
  }
  // Probing sends one append at a time from next - 1; any other rejection is stale.
  if (next_ - 1 != rejected) return false;
  next_ = std::max(std::min(rejected, hint + 1), match_ + 1);
  probe_sent_ = false;
  return true;
}

void progress::heartbeat_answered() {
  probe_sent_ = false;
  if (state_ == progress_state::replicate && inflights_.full()) inflights_.free_first();
  if (state_ == progress_state::snapshot) {
    const bool waiting = snapshot_last_sent_ || inflights_.count() > 0;
    if (!waiting || snapshot_acked_ != snapshot_acked_at_last_heartbeat_) {
      snapshot_stalls_ = 0;
    } else if (++snapshot_stalls_ >= 2) {
      // Two heartbeat answers in a row without an acknowledgement: chunks (or the final
      // acknowledgement) were lost. Resend from the last byte the follower holds.
      snapshot_stalls_ = 0;
      snapshot_rewind(snapshot_acked_, true);
    }
    snapshot_acked_at_last_heartbeat_ = snapshot_acked_;
  }
}

void progress::sent_snapshot_chunk(std::uint64_t end, std::uint64_t bytes, bool last) {
  QUORUM_ASSERT(state_ == progress_state::snapshot, "snapshot chunk sent outside snapshot state");
  inflights_.add(end, bytes);
  snapshot_sent_ = end;
  snapshot_last_sent_ = last;
}

void progress::snapshot_received(std::uint64_t received) {
  if (state_ != progress_state::snapshot || received < snapshot_acked_) return;
  snapshot_acked_ = received;
  inflights_.free_le(received);
}

void progress::snapshot_rewind(std::uint64_t received, bool force) {
  if (state_ != progress_state::snapshot || received < snapshot_acked_) return;
  if (!force && received == snapshot_rewound_to_ && inflights_.count() > 0) {
    snapshot_received(received);  // what it holds still counts
    return;
  }
  snapshot_rewound_to_ = received;
  snapshot_acked_ = received;
  snapshot_sent_ = received;
  snapshot_last_sent_ = false;
  inflights_.reset();
}

}  // namespace quorum::raft
