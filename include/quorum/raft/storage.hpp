// The storage concept: what the Raft core reads from a node's durable log. The core never
// writes storage itself; the host writes what a `ready` batch tells it to, makes it durable,
// then calls `advance`. Implementations need no internal locking for the core's sake: the core
// calls them only from the thread (or strand) that drives it.
#pragma once

#include <quorum/raft/types.hpp>

#include <concepts>
#include <cstdint>
#include <system_error>
#include <vector>

namespace quorum::raft {

/**
 * A durable Raft log as the core sees it.
 *
 * The log holds entries [first_index(), last_index()]; everything before first_index() was
 * compacted, and the term of first_index() - 1 (the compaction point) must still be known.
 * An empty log has first_index() == 1, last_index() == 0 and term(0) == 0.
 *
 * - `initial_state()`: the durable hard state and membership, read once at start.
 * - `term(i, ec)`: the term of entry i, for first_index() - 1 <= i <= last_index(); otherwise
 *   sets ec to errc::compacted (i too small) or errc::unavailable (i too large) and returns 0.
 * - `entries(lo, hi, max_bytes, ec)`: entries [lo, hi), at least one if lo < hi, then stopping
 *   before the total entry_footprint would exceed max_bytes; errc::compacted / unavailable as
 *   for term.
 * - `snapshot()`: the latest complete snapshot's meta (index 0 if none). The compaction point
 *   is at or below its index: a log is compacted only into a snapshot.
 * - `read_snapshot(index, offset, max_bytes, ec)`: up to max_bytes (at least one byte unless
 *   at the end) of the snapshot at `index` from `offset`, with `last` set at its end; sets ec
 *   to errc::compacted if that snapshot is no longer held (a newer one replaced it). The bytes
 *   at an offset never change: a stream may resume anywhere.
 */
template <class S>
concept log_storage = requires(const S& s, index_t i, std::uint64_t max_bytes,
                               std::error_code& ec) {
  { s.initial_state() } -> std::same_as<initial_state>;
  { s.first_index() } -> std::same_as<index_t>;
  { s.last_index() } -> std::same_as<index_t>;
  { s.term(i, ec) } -> std::same_as<term_t>;
  { s.entries(i, i, max_bytes, ec) } -> std::same_as<std::vector<entry>>;
  { s.snapshot() } -> std::same_as<snapshot_meta>;
  { s.read_snapshot(i, max_bytes, max_bytes, ec) } -> std::same_as<snapshot_piece>;
};

}  // namespace quorum::raft
