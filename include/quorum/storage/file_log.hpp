// A durable Raft log in files: segmented, append-only, every record framed with its length and
// a CRC32C, durable only once fdatasync (and, for new or renamed files, a directory fsync) has
// returned. Implements raft::log_storage plus the host's write side of a ready batch, with the
// same meaning as raft::memory_storage. Snapshots live in their own files, written to a
// temporary name, synced, renamed and the directory synced. docs/storage.md describes the
// formats and the recovery rules. Not thread-safe: one owner drives it.
#pragma once

#include <quorum/raft/storage.hpp>
#include <quorum/raft/types.hpp>
#include <quorum/storage/file_system.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
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

/** Settings of a file_log. */
struct file_log_options {
  /** A new segment file is started once the current one would grow beyond this. */
  std::uint64_t segment_bytes = std::uint64_t{64} << 20;
  /** Snapshot files are stored in checksummed blocks of this many bytes. */
  std::uint32_t snapshot_block_bytes = 64 << 10;
  /** Records larger than this are refused when written and taken as damage when read. */
  std::uint32_t max_record_bytes = 256 << 20;
};

/** raft::log_storage in a directory of files. */
class file_log {
 public:
  /**
   * Opens the log in `dir` (created if missing) over `fs`, which must outlive it; `bootstrap`
   * is the group's initial membership, used while no snapshot records one. Recovers from a
   * crash: a torn tail is cut off; damage before it throws storage_error naming file and
   * offset, as does an I/O error.
   */
  file_log(file_system& fs, std::string dir, raft::membership bootstrap,
           file_log_options options = {});
  ~file_log();
  file_log(const file_log&) = delete;
  file_log& operator=(const file_log&) = delete;

  // ---- log_storage (the page cache's view: written, synced or not) ----
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

  // ---- writes: into the page cache, durable after sync() unless said otherwise ----
  /** Appends entries from a ready batch, replacing any suffix from the first one's index. */
  std::error_code append(std::span<const raft::entry> batch);
  std::error_code set_hard_state(const raft::hard_state& hs);
  /** Writes a chunk of an incoming snapshot (ready::snapshot_chunks). */
  std::error_code write_snapshot_chunk(const raft::snapshot_chunk& chunk);
  /** Makes the received snapshot this log's snapshot (ready::snapshot), by paper 7's rules.
   *  The snapshot file is durable on return; the log's new start with the next sync(). */
  std::error_code install_snapshot(const raft::snapshot_meta& meta);
  /** Stores `data` as the snapshot at `meta`, durably on return. errc::compacted if not newer
   *  than the current one, errc::unavailable if `meta` names no entry of the log. */
  std::error_code create_snapshot(const raft::snapshot_meta& meta, const raft::shared_bytes& data);
  /** Discards entries up to `index` (which a snapshot must cover), durably on return, and
   *  deletes the segment files no longer needed. */
  std::error_code compact(raft::index_t index);
  /** fdatasync of everything written (and directory fsyncs for new files). */
  std::error_code sync();

  /** True once a write or sync failed: the log refuses everything until reopened. */
  bool failed() const noexcept { return failed_; }
  /** Segment files in use (for tests and monitoring). */
  std::size_t segment_count() const noexcept { return segments_.size(); }

 private:
  struct slot {
    raft::term_t term;
    std::uint64_t segment;
    std::uint64_t offset;
    std::uint32_t length;  // of the whole record
  };
  struct segment {
    std::unique_ptr<file> f;
    std::uint64_t size = 0;
    std::size_t live = 0;  // slots pointing into it
  };
  struct stored_snapshot {
    raft::snapshot_meta meta;
    std::string path;
    std::uint64_t data_offset = 0;  // where the first block starts
    std::uint64_t size = 0;         // bytes of data
  };
  struct incoming {
    raft::snapshot_receipt receipt;
    raft::membership members;
    std::string path;
    std::unique_ptr<file> f;
    std::uint64_t file_size = 0;
  };

  std::string path_of(const std::string& name) const { return dir_ + "/" + name; }
  std::error_code fail(std::error_code ec);
  std::error_code write_records(const std::vector<std::byte>& records,
                                const std::vector<std::pair<std::size_t, raft::term_t>>& entries,
                                raft::index_t first_entry);
  std::error_code roll();
  std::error_code write_base(raft::index_t index, raft::term_t term);
  void drop_slots_from(raft::index_t index);
  void drop_slots_through(raft::index_t index);
  void reclaim_segments();
  void recover();
  void recover_segment(std::uint64_t seq, bool last);
  void recover_snapshots(const std::vector<std::string>& names);
  void recover_incoming(const std::vector<std::string>& names);
  std::optional<stored_snapshot> open_snapshot(const std::string& name) const;
  std::error_code write_snapshot_file(const raft::snapshot_meta& meta,
                                      std::span<const std::byte> data);
  const stored_snapshot* find_snapshot(raft::index_t index) const;
  std::vector<std::byte> read_block(const stored_snapshot& s, std::uint64_t block) const;

  file_system* fs_;
  std::string dir_;
  raft::membership bootstrap_;
  file_log_options options_;

  raft::index_t base_ = 0;
  raft::term_t base_term_ = 0;
  std::deque<slot> slots_;  // slots_[i] is entry base_ + 1 + i
  raft::hard_state hard_;
  std::map<std::uint64_t, segment> segments_;
  std::uint64_t base_segment_ = 0;  // segments holding the newest base / hard state records
  std::uint64_t hard_segment_ = 0;
  raft::index_t gap_floor_ = 0;  // recovery: entries below this were in reclaimed segments
  std::vector<std::uint64_t> unsynced_;
  bool dir_unsynced_ = false;
  std::optional<stored_snapshot> snapshot_;
  std::optional<stored_snapshot> previous_snapshot_;
  std::optional<incoming> incoming_;
  bool incoming_unsynced_ = false;
  bool failed_ = false;
};

static_assert(raft::log_storage<file_log>);

}  // namespace quorum::storage
