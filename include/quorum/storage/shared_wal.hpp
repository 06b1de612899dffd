// One write-ahead log per process for many Raft groups: every group's entries, hard state and
// log start go into the same append-only segment files, each record framed with its length and
// a CRC32C and tagged with its group. Appends of many groups gather in memory and reach the
// file in one write followed by one fdatasync (group commit: append for every group, then call
// sync() once). Each group keeps its own in-memory index, so reading one group never scans
// another's records; a segment file is deleted once no group needs anything in it. Snapshots
// live in per-group directories, written to a temporary name, synced, renamed and the
// directory synced. docs/storage.md describes the formats and recovery rules. Not thread-safe:
// one owner (thread or strand) drives the WAL and all its groups.
#pragma once

#include <quorum/raft/storage.hpp>
#include <quorum/raft/types.hpp>
#include <quorum/storage/file_system.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace quorum::storage {

/**
 * A storage failure: a read that failed (errc::io_error) or found damage (errc::corruption), or
 * an open that found damage before the log's tail; what() names the file and the offset. The
 * node must stop; see docs/storage.md for repair.
 */
class storage_error : public std::system_error {
 public:
  using std::system_error::system_error;
};

/** Settings of a shared WAL (and of a file_log). */
struct file_log_options {
  /** A new segment file is started once the current one would grow beyond this. */
  std::uint64_t segment_bytes = std::uint64_t{64} << 20;
  /** Snapshot files are stored in checksummed blocks of this many bytes. */
  std::uint32_t snapshot_block_bytes = 64 << 10;
  /** Records larger than this are refused when written and taken as damage when read. */
  std::uint32_t max_record_bytes = 256 << 20;
  /**
   * 0 (the default): every sync() ends with fdatasync, so whatever the host acknowledges after
   * it survives power loss. Above 0, the weaker batched mode: sync() writes to the file system
   * at once but calls fdatasync at most once per interval, so a process crash loses nothing
   * but a power loss or kernel crash may lose up to one interval of acknowledged writes. With
   * Raft, data is then safe only while a majority does not lose power together. Opt in only if
   * that is acceptable.
   */
  std::chrono::milliseconds sync_interval{0};
};

class shared_wal;

/**
 * One group's log in a shared WAL: raft::log_storage plus the host's write side of a ready
 * batch, with the meaning of raft::memory_storage. Writes go to the page cache; they are
 * durable after the WAL's sync(), which sync() here calls.
 */
class wal_log {
 public:
  wal_log(const wal_log&) = delete;
  wal_log& operator=(const wal_log&) = delete;

  std::uint64_t group() const noexcept { return group_; }

  // ---- log_storage ----
  raft::initial_state initial_state() const;
  raft::index_t first_index() const noexcept { return base_ + 1; }
  raft::index_t last_index() const noexcept { return base_ + slots_.size(); }
  raft::term_t term(raft::index_t i, std::error_code& ec) const;
  /** Throws storage_error on an I/O error or a checksum mismatch. */
  std::vector<raft::entry> entries(raft::index_t lo, raft::index_t hi, std::uint64_t max_bytes,
                                   std::error_code& ec) const;
  raft::snapshot_meta snapshot() const;
  /** Reads the current snapshot or the one before it; throws storage_error on damage. */
  raft::snapshot_piece read_snapshot(raft::index_t index, std::uint64_t offset,
                                     std::uint64_t max_bytes, std::error_code& ec) const;
  /** The current snapshot's bytes (empty if none); throws storage_error on damage. */
  raft::shared_bytes snapshot_data() const;

  // ---- writes ----
  /** Appends entries from a ready batch, replacing any suffix from the first one's index. */
  std::error_code append(std::span<const raft::entry> batch);
  std::error_code set_hard_state(const raft::hard_state& hs);
  /** Writes a chunk of an incoming snapshot (ready::snapshot_chunks). */
  std::error_code write_snapshot_chunk(const raft::snapshot_chunk& chunk);
  /** Makes the received snapshot this group's snapshot (ready::snapshot), by paper 7's rules.
   *  The snapshot file is durable on return; the log's new start with the next sync(). */
  std::error_code install_snapshot(const raft::snapshot_meta& meta);
  /**
   * Stores `data` as the snapshot at `meta`, durably on return. `keep` lists (ascending) the
   * entries at or below meta.index that must stay readable after compaction: a queue's live
   * messages, whose bodies are in the log. They survive compact(), restarts and segment
   * reclaiming (kept_entry() reads them), and travel with the snapshot to a follower that
   * installs it. Entries kept for the previous snapshot and not listed are let go.
   * errc::compacted if not newer than the current one, errc::unavailable if `meta` names no
   * entry of the log or `keep` names an entry no longer held.
   */
  std::error_code create_snapshot(const raft::snapshot_meta& meta, const raft::shared_bytes& data,
                                  std::span<const raft::index_t> keep = {});
  /** Discards entries up to `index` (which a snapshot must cover), except those the snapshot
   *  keeps, durably on return; segment files no group needs any more are deleted. */
  std::error_code compact(raft::index_t index);
  /** Entry `index` if the current snapshot keeps it and it is below the log's start (else
   *  nothing); throws storage_error on damage. */
  std::optional<raft::entry> kept_entry(raft::index_t index) const;
  /** Entries kept below the log's start. */
  std::size_t kept_count() const noexcept { return kept_.size(); }
  /** The WAL's sync(): makes every group's writes durable with one fdatasync. */
  std::error_code sync();
  /** True once a write or sync of the WAL failed: everything is refused until reopened. */
  bool failed() const noexcept;

 private:
  friend class shared_wal;
  wal_log(shared_wal& wal, std::uint64_t group);

  // Where an entry's record is: 24 bytes per entry, the WAL's memory per message of a queue.
  struct slot {
    raft::term_t term;
    std::uint64_t offset;
    std::uint32_t segment;  // segment sequence numbers stay below 2^32 (see segment_of)
    std::uint32_t length;   // of the whole record
  };
  struct stored_snapshot {
    raft::snapshot_meta meta;
    std::string path;
    std::uint64_t data_offset = 0;  // where the first block starts
    std::uint64_t size = 0;         // bytes of data
    std::uint64_t kept = 0;         // entries it keeps
  };
  // An entry kept below the log's start for the current snapshot.
  struct kept_slot {
    raft::index_t index;
    slot where;
  };
  // Where a snapshot transfer last stopped: its next kept entry and that entry's offset.
  struct image_cursor {
    raft::index_t index = 0;
    raft::term_t term = 0;
    std::size_t position = 0;
    std::uint64_t offset = 0;
    std::uint64_t size = 0;  // of the whole image
  };
  struct incoming {
    raft::snapshot_receipt receipt;
    std::string path;
    std::unique_ptr<file> f;
    std::uint64_t file_size = 0;
  };

  std::string path_of(const std::string& name) const { return dir_ + "/" + name; }
  std::error_code write_base(raft::index_t index, raft::term_t term);
  std::error_code write_hard();
  /** True if the log holds the entry `index` with term `t` (above its start). */
  bool holds(raft::index_t index, raft::term_t t) const;
  /** Paper 7: the log now starts after (index, t); the entries after it stay only if the log
   *  holds (index, t). An older start changes nothing. */
  void move_start(raft::index_t index, raft::term_t t);
  void drop_slots_from(raft::index_t index);
  /** Moves the start up to `index`: the entries the snapshot keeps go to kept_. */
  void drop_slots_through(raft::index_t index);
  bool keeps(raft::index_t index) const;
  /** Lets go of kept entries that `keep` does not list (both ascending). */
  void retain_only(std::span<const raft::index_t> keep);
  /** Recovery: orders kept_, keeps the newest copy of each entry, checks it against the
   *  snapshot's list (recovery_keep_), then ends recovery. */
  void settle_kept();
  /** The slot of the `position`-th entry the current snapshot keeps. */
  const slot& kept_at(std::size_t position) const;
  std::size_t kept_total() const noexcept { return kept_.size() + keep_above_.size(); }
  /** The record of an entry (kept or in the log), checked; throws storage_error on damage. */
  std::vector<std::byte> read_record(const slot& s, raft::index_t index) const;
  /** Copies kept entries in segment `seq` to the end of the WAL (see shared_wal::reclaim). */
  std::error_code move_kept_out_of(std::uint64_t seq);
  /** True if the log's (not kept) entries start in segment `seq`. */
  bool log_starts_in(std::uint64_t seq) const;
  /** True if the log's entries take more than `limit` bytes (counting stops there). */
  bool log_bytes_beyond(std::uint64_t limit) const;
  /** Copies the whole log (every entry from its start, in order) to the end of the WAL: replay
   *  then reads the copies last, which replace the originals. For small, idle logs. */
  std::error_code move_log();
  /** The newest snapshot's keep list, read before replay (nothing if there is none). */
  void peek_keep();
  /** A record's kind, its body's size and its fixed fields: entry and kept entry: term, index;
   *  hard state: term, vote, commit; log start: index, term. */
  struct record_fields {
    std::uint8_t kind = 0;
    std::uint64_t body_size = 0;
    std::uint64_t v[3] = {0, 0, 0};
  };
  /** The fixed fields of the record whose body (kind and group first) is `body`. */
  static record_fields fields_of(std::span<const std::byte> body);
  /** Replays a record (read from its segment, or from the segment's index). */
  void replay(const record_fields& r, std::uint64_t seq, std::uint64_t at, const std::string& path);
  void open(raft::membership bootstrap);
  void recover_snapshots(const std::vector<std::string>& names, std::vector<raft::index_t>& keep);
  void recover_incoming(const std::vector<std::string>& names);
  std::error_code write_snapshot_file(const raft::snapshot_meta& meta,
                                      std::span<const std::byte> data,
                                      std::span<const raft::index_t> keep);
  std::optional<stored_snapshot> open_snapshot(const std::string& name,
                                               std::vector<raft::index_t>* keep) const;
  const stored_snapshot* find_snapshot(raft::index_t index) const;
  /** The data of blocks [first, last] of `s`, checked; throws storage_error on damage. */
  std::vector<std::byte> read_blocks(const stored_snapshot& s, std::uint64_t first,
                                     std::uint64_t last) const;

  shared_wal* wal_;
  std::uint64_t group_;
  std::string dir_;
  bool opened_ = false;
  raft::membership bootstrap_;
  raft::index_t base_ = 0;
  raft::term_t base_term_ = 0;
  std::deque<slot> slots_;  // slots_[i] is entry base_ + 1 + i
  raft::hard_state hard_;
  std::uint64_t base_segment_ = 0;  // segments holding the newest base / hard state records
  std::uint64_t hard_segment_ = 0;
  // Recovery: the log start assumed from a gap left by reclaimed segments, and the newest
  // log-start record seen, which must confirm it.
  raft::index_t gap_floor_ = 0;
  raft::index_t known_base_ = 0;
  raft::term_t known_base_term_ = 0;
  // Kept entries at or below base_, by index; and the current snapshot's kept entries above
  // base_ (still in slots_). During recovery, the newest snapshot's whole list is in
  // recovery_keep_ and kept_ gathers candidates in replay order.
  std::vector<kept_slot> kept_;
  std::deque<raft::index_t> keep_above_;
  std::vector<raft::index_t> recovery_keep_;
  std::string peeked_snapshot_;          // the snapshot whose list peek_keep parsed
  mutable std::size_t recovery_at_ = 0;  // where keeps() last looked in recovery_keep_
  bool recovering_ = true;
  mutable image_cursor cursor_;
  std::optional<stored_snapshot> snapshot_;
  std::optional<stored_snapshot> previous_snapshot_;
  std::optional<incoming> incoming_;
};

/** The write-ahead log shared by the groups of one process. */
class shared_wal {
 public:
  /**
   * Opens the WAL in `dir` (created if missing) over `fs`, which must outlive it, and replays
   * every group's records. A torn tail is cut off; damage before it throws storage_error naming
   * file and offset, as does an I/O error.
   */
  shared_wal(file_system& fs, std::string dir, file_log_options options = {});
  ~shared_wal();
  shared_wal(const shared_wal&) = delete;
  shared_wal& operator=(const shared_wal&) = delete;

  /**
   * The log of group `group` (non-zero), with what the WAL holds for it; `bootstrap` is its
   * initial membership, used while no snapshot records one. The reference stays valid for the
   * WAL's life. Throws storage_error if the group's snapshot files are damaged.
   */
  wal_log& open(std::uint64_t group, raft::membership bootstrap);

  /** Group commit: one write of every record gathered since the last sync (per segment
   *  touched) and one fdatasync make every group's writes durable. After an error the WAL
   *  refuses everything (never retried). */
  std::error_code sync();

  /** Writes the records gathered so far to the file system (its page cache) without waiting
   *  for the disk: nothing becomes durable, but a later sync() has less to write. */
  std::error_code flush();

  bool failed() const noexcept { return failed_; }
  /** Segment files in use (for tests and monitoring). */
  std::size_t segment_count() const noexcept { return segments_.size(); }
  /** Groups with records in the WAL or opened. */
  std::vector<std::uint64_t> groups() const;

 private:
  friend class wal_log;
  struct segment {
    std::unique_ptr<file> f;
    std::uint64_t size = 0;
    std::size_t live = 0;          // slots of any group pointing into it
    std::size_t kept = 0;          // of those, entries kept below a group's log start
    std::uint64_t live_bytes = 0;  // their records' bytes
    bool indexed = false;          // an index file exists beside it
  };
  /** Segment `seq` (which exists), through a one-entry cache: replay and compaction count
   *  many records of one segment in a row. */
  segment& segment_at(std::uint64_t seq) {
    if (cached_segment_ == nullptr || cached_seq_ != seq) {
      cached_segment_ = &segments_.at(seq);
      cached_seq_ = seq;
    }
    return *cached_segment_;
  }
  /** Adds the records in `records` to `index` (a segment's index). */
  static void note_records(std::span<const std::byte> records, std::vector<std::byte>& index);
  /** Writes the index of sealed segment `seq` (not synced: it is only a shortcut). */
  std::error_code write_index(std::uint64_t seq, const std::vector<std::byte>& index);
  /** Replays sealed segment `seq` from its index file; false if there is none that fits. */
  bool replay_index(std::uint64_t seq);
  void hold(const wal_log::slot& s, bool kept);
  void let_go(const wal_log::slot& s, bool kept);
  /** True if the files hold more than twice the live records, plus two segments: worth moving
   *  kept entries out of the oldest segment so that it can go. */
  bool wasteful() const;
  std::string path_of(const std::string& name) const { return dir_ + "/" + name; }
  std::error_code fail(std::error_code ec);
  /** Writes `records` to the active segment; returns where they start. */
  std::error_code write(const std::vector<std::byte>& records, std::uint64_t& seq,
                        std::uint64_t& offset);
  std::error_code roll();
  /** Reads segment bytes, from the file or from records not yet flushed; throws storage_error. */
  void read(std::uint64_t seq, std::uint64_t offset, std::span<std::byte> out,
            std::size_t& got) const;
  wal_log& group(std::uint64_t id);
  void recover();
  void recover_segment(std::uint64_t seq, bool last);
  std::error_code reclaim();

  file_system* fs_;
  std::string dir_;
  file_log_options options_;
  std::map<std::uint64_t, segment> segments_;
  /** A record of a segment's index, parsed (replay_index). */
  struct index_item {
    std::uint64_t group;
    wal_log::record_fields fields;
  };
  std::vector<index_item> index_items_;  // replay_index's buffer, reused for every segment
  segment* cached_segment_ = nullptr;    // segment_at's last answer (cleared when one is erased)
  std::uint64_t cached_seq_ = 0;
  std::map<std::uint64_t, std::unique_ptr<wal_log>> groups_;
  std::vector<std::byte> pending_;  // records for the active segment, not yet written
  std::vector<std::byte> index_;    // the active segment's index, written when it is sealed
  std::vector<std::uint64_t> unsynced_;
  std::vector<wal_log*> incoming_unsynced_;
  std::vector<std::string> dirs_unsynced_;
  std::optional<std::chrono::steady_clock::time_point> last_fdatasync_;
  bool failed_ = false;
};

static_assert(raft::log_storage<wal_log>);

}  // namespace quorum::storage
