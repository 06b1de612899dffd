// A simulated disk implementing log_storage, with the failure modes of a real one: writes sit
// in a volatile cache until synced; a crash loses unsynced writes (a random prefix of them may
// survive, the last one possibly torn); bit flips at rest; read errors; fsync errors. Every
// record carries a checksum, so damage is detected, never silently returned. Single-threaded.
#pragma once

#include <quorum/raft/storage.hpp>
#include <quorum/raft/types.hpp>
#include <quorum/sim/world.hpp>

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
  /** Probability that an entries() read fails with errc::io_error. */
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
  raft::initial_state initial_state() const {
    return {written_.hard, written_.members, written_.receiving};
  }
  raft::index_t first_index() const noexcept { return written_.base + 1; }
  raft::index_t last_index() const noexcept { return written_.base + written_.log.size(); }
  raft::term_t term(raft::index_t i, std::error_code& ec) const;
  /** Throws disk_failure on an injected read error or a checksum mismatch. */
  std::vector<raft::entry> entries(raft::index_t lo, raft::index_t hi, std::uint64_t max_bytes,
                                   std::error_code& ec) const;
  raft::snapshot_meta snapshot() const { return written_.snapshot.meta; }
  /** Reads the current snapshot or the one before it; throws disk_failure on damage. */
  raft::snapshot_piece read_snapshot(raft::index_t index, std::uint64_t offset,
                                     std::uint64_t max_bytes, std::error_code& ec) const;
  /** The current snapshot's bytes, to restore a state machine; throws disk_failure on damage. */
  raft::shared_bytes snapshot_data() const;

  // ---- writes: volatile until sync() ----
  /** Appends entries, replacing any suffix from the first one's index. */
  void append(std::span<const raft::entry> batch);
  void set_hard_state(const raft::hard_state& hs);
  /** Keeps `data` as the snapshot at `meta` (the previous one stays readable). Returns
   *  errc::compacted if not newer, errc::unavailable if `meta` names no entry of the log. */
  std::error_code create_snapshot(const raft::snapshot_meta& meta, raft::shared_bytes data);
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
  bool has_unsynced() const noexcept { return !pending_.empty(); }

  // ---- faults ----
  /** Arms fault injection from `random` (which must outlive the disk) at `rates`. */
  void arm(rng& random, disk_faults rates) {
    random_ = &random;
    faults_ = rates;
  }
  void disarm() { faults_ = {}; }
  /** Power loss: unsynced writes are lost, except a random prefix; the last may be torn. */
  void crash();
  /**
   * What a restart does first: checks every record. A damaged last record is a torn write and
   * is truncated; damage before it returns errc::corruption (the node must not start).
   */
  std::error_code recover();
  /** Flips one bit of a synced record that is not the last; false if there is none. */
  bool flip_bit();

  /** The durable hard state and log length, for checkers (no faults). */
  const raft::hard_state& durable_hard_state() const noexcept { return durable_.hard; }
  raft::index_t durable_last_index() const noexcept { return durable_.base + durable_.log.size(); }

 private:
  struct record {
    raft::entry e;
    std::uint64_t checksum;
  };
  struct stored_snapshot {
    raft::snapshot_meta meta;
    raft::shared_bytes data;
    std::uint64_t checksum = 0;
  };
  struct image {
    std::vector<record> log;  // log[i] holds index base + 1 + i
    raft::index_t base = 0;   // the compaction point and its term
    raft::term_t base_term = 0;
    raft::hard_state hard;
    raft::membership members;  // at the compaction point
    stored_snapshot snapshot;
    stored_snapshot previous;
    raft::snapshot_receipt receiving;
    std::vector<std::byte> receiving_data;
  };
  enum class write_kind : std::uint8_t { entries, hard, snapshot, compact, chunk, install };
  struct write {
    write_kind kind = write_kind::entries;
    std::vector<record> batch;
    raft::hard_state hard;
    stored_snapshot snapshot;
    raft::index_t index = 0;
    raft::snapshot_chunk chunk;
  };
  static std::uint64_t checksum(const raft::entry& e);
  static std::uint64_t checksum(const raft::shared_bytes& data);
  static void apply(image& target, const write& w);
  void issue(write w);
  const stored_snapshot* find_snapshot(raft::index_t index) const;

  image durable_;
  image written_;
  std::vector<write> pending_;
  rng* random_ = nullptr;
  disk_faults faults_;
};

static_assert(raft::log_storage<disk>);

}  // namespace quorum::sim
