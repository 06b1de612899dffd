// A simulated disk: the real storage::file_log over a storage::faulty_file_system, so the
// simulator exercises the library's own file formats and recovery under the failure modes of a
// real disk: writes sit in a page cache until synced; a crash loses unsynced writes (a random
// prefix of them may survive, the last possibly torn) and unsynced directory changes; bit flips
// at rest; read errors; fsync errors. Every record carries a checksum, so damage is detected,
// never silently returned. Single-threaded.
#pragma once

#include <quorum/detail/assert.hpp>
#include <quorum/raft/storage.hpp>
#include <quorum/raft/types.hpp>
#include <quorum/sim/world.hpp>
#include <quorum/storage/faulty_file_system.hpp>
#include <quorum/storage/file_log.hpp>

#include <optional>
#include <span>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace quorum::sim {

/**
 * Thrown by a disk read that fails (errc::io_error) or finds a damaged record
 * (errc::corruption). The node that was reading must stop: its core is discarded and it may
 * restart from what the disk holds.
 */
class disk_failure : public std::system_error {
 public:
  using std::system_error::system_error;
};

/** Fault rates of one disk; all zero by default. */
struct disk_faults {
  /** Probability that a read of the log fails with errc::io_error. */
  double read_error = 0;
  /** Probability that a sync() fails with errc::io_error. */
  double fsync_error = 0;
  /** Probability that, in a crash, the last surviving unsynced write is torn. */
  double torn_write = 0;
};

/** log_storage on a simulated disk. */
class disk {
 public:
  /** An empty disk for a group whose voters are `members`. */
  explicit disk(raft::membership members);

  // ---- log_storage: what has been written, synced or not (the page cache's view) ----
  raft::initial_state initial_state() const { return log().initial_state(); }
  raft::index_t first_index() const { return log().first_index(); }
  raft::index_t last_index() const { return log().last_index(); }
  raft::term_t term(raft::index_t i, std::error_code& ec) const { return log().term(i, ec); }
  /** Throws disk_failure on a read error or a checksum mismatch. */
  std::vector<raft::entry> entries(raft::index_t lo, raft::index_t hi, std::uint64_t max_bytes,
                                   std::error_code& ec) const;
  raft::snapshot_meta snapshot() const { return log().snapshot(); }
  /** Reads the current snapshot or the one before it; throws disk_failure on damage. */
  raft::snapshot_piece read_snapshot(raft::index_t index, std::uint64_t offset,
                                     std::uint64_t max_bytes, std::error_code& ec) const;
  /** The current snapshot's bytes, to restore a state machine; throws disk_failure on damage. */
  raft::shared_bytes snapshot_data() const;

  // ---- writes: volatile until sync(); a failed write throws disk_failure ----
  /** Appends entries, replacing any suffix from the first one's index. */
  void append(std::span<const raft::entry> batch);
  void set_hard_state(const raft::hard_state& hs);
  /** Keeps `data` as the snapshot at `meta` (the previous one stays readable unless it kept
   *  entries), and entries `keep` past compaction (storage::wal_log::create_snapshot). Returns
   *  errc::compacted if not newer, errc::unavailable if `meta` names no entry of the log. */
  std::error_code create_snapshot(const raft::snapshot_meta& meta, raft::shared_bytes data,
                                  std::span<const raft::index_t> keep = {});
  /** An entry the snapshot keeps below the log's start (storage::wal_log::kept_entry). */
  std::optional<raft::entry> kept_entry(raft::index_t index) const;
  /** For checkers: entry `index` as held, in the log or kept below its start, read with fault
   *  injection off (nothing if not held); throws disk_failure if the record is damaged. */
  std::optional<raft::entry> inspect_entry(raft::index_t index);
  /** Discards the log up to `index`, which the snapshot must cover (else errc::unavailable;
   *  errc::compacted if already compacted that far). */
  std::error_code compact(raft::index_t index);
  /** Writes a chunk of an incoming snapshot (ready::snapshot_chunks). */
  void write_snapshot_chunk(const raft::snapshot_chunk& chunk);
  /** Makes the received snapshot this disk's snapshot (ready::snapshot), paper 7's rules. */
  void install_snapshot(const raft::snapshot_meta& meta);
  /** Makes every write so far durable, or fails with errc::io_error (nothing is then known to
   *  be durable; the node must stop, never retry). */
  std::error_code sync();
  /** Writes issued but not synced. */
  bool has_unsynced() const noexcept { return unsynced_; }

  // ---- faults ----
  /** Arms fault injection from `random` (which must outlive the disk) at `rates`. */
  void arm(rng& random, disk_faults rates);
  void disarm();
  /** Power loss: unsynced writes are lost, except a random prefix; the last may be torn. */
  void crash();
  /**
   * What a restart does first: opens the log, which checks every record. A damaged last record
   * is a torn write and is cut off; damage before it returns errc::corruption (the node must
   * not start); an I/O error returns errc::io_error.
   */
  std::error_code recover();
  /** Flips one bit in a synced segment file that is not the last; false if there is none. */
  bool flip_bit();

  /** The durable hard state and log length as of the last sync or recovery, for checkers. */
  const raft::hard_state& durable_hard_state() const noexcept { return durable_hard_; }
  raft::index_t durable_last_index() const noexcept { return durable_last_; }

 private:
  const storage::file_log& log() const {
    QUORUM_ASSERT(log_.has_value(), "a disk that failed recovery has no log to read");
    return *log_;
  }
  template <class Action>
  auto guarded(Action&& action) const -> decltype(action());

  raft::membership members_;
  storage::faulty_file_system files_;
  std::optional<storage::file_log> log_;
  rng* random_ = nullptr;
  disk_faults faults_;
  bool unsynced_ = false;
  raft::hard_state durable_hard_;
  raft::index_t durable_last_ = 0;
};

static_assert(raft::log_storage<disk>);

}  // namespace quorum::sim
