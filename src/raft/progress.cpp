// Replication progress and the in-flight window. Single-threaded, owned by one core.
#include <quorum/raft/progress.hpp>

#include <quorum/detail/assert.hpp>

#include <algorithm>

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
    case progress_state::snapshot_needed: return "snapshot-needed";
  }
  return "unknown";
}

bool progress::is_paused() const noexcept {
  switch (state_) {
    case progress_state::probe: return probe_sent_;
    case progress_state::replicate: return inflights_.full();
    case progress_state::snapshot_needed: return true;
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

void progress::become_snapshot_needed() {
  state_ = progress_state::snapshot_needed;
  probe_sent_ = false;
  inflights_.reset();
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
    case progress_state::snapshot_needed:
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
}

}  // namespace quorum::raft
