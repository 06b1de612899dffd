// A durable Raft log of one group in files: a shared_wal used by that group alone. Segmented,
// append-only, every record framed with its length and a CRC32C, durable only once fdatasync
// (and, for new or renamed files, a directory fsync) has returned. Implements raft::log_storage
// plus the host's write side of a ready batch, with the meaning of raft::memory_storage.
// Processes with many groups share one shared_wal instead (group commit). Not thread-safe.
#pragma once

#include <quorum/storage/shared_wal.hpp>

#include <string>
#include <utility>

namespace quorum::storage {

/** raft::log_storage in a directory of files, for one group. */
class file_log {
 public:
  /**
   * Opens (creating if missing) the log in `dir` over `fs`, which must outlive it; `bootstrap`
   * is the group's initial membership, used while no snapshot records one. Recovers from a
   * crash: a torn tail is cut off; damage before it throws storage_error naming file and
   * offset, as does an I/O error.
   */
  file_log(file_system& fs, std::string dir, raft::membership bootstrap,
           file_log_options options = {})
      : wal_(fs, std::move(dir), options), log_(&wal_.open(1, std::move(bootstrap))) {}

  // ---- log_storage ----
  raft::initial_state initial_state() const { return log_->initial_state(); }
  raft::index_t first_index() const noexcept { return log_->first_index(); }
  raft::index_t last_index() const noexcept { return log_->last_index(); }
  raft::term_t term(raft::index_t i, std::error_code& ec) const { return log_->term(i, ec); }
  std::vector<raft::entry> entries(raft::index_t lo, raft::index_t hi, std::uint64_t max_bytes,
                                   std::error_code& ec) const {
    return log_->entries(lo, hi, max_bytes, ec);
  }
  raft::snapshot_meta snapshot() const { return log_->snapshot(); }
  raft::snapshot_piece read_snapshot(raft::index_t index, std::uint64_t offset,
                                     std::uint64_t max_bytes, std::error_code& ec) const {
    return log_->read_snapshot(index, offset, max_bytes, ec);
  }
  raft::shared_bytes snapshot_data() const { return log_->snapshot_data(); }

  // ---- writes (see wal_log) ----
  std::error_code append(std::span<const raft::entry> batch) { return log_->append(batch); }
  std::error_code set_hard_state(const raft::hard_state& hs) { return log_->set_hard_state(hs); }
  std::error_code write_snapshot_chunk(const raft::snapshot_chunk& chunk) {
    return log_->write_snapshot_chunk(chunk);
  }
  std::error_code install_snapshot(const raft::snapshot_meta& meta) {
    return log_->install_snapshot(meta);
  }
  std::error_code create_snapshot(const raft::snapshot_meta& meta, const raft::shared_bytes& data,
                                  std::span<const raft::index_t> keep = {}) {
    return log_->create_snapshot(meta, data, keep);
  }
  std::error_code compact(raft::index_t index) { return log_->compact(index); }
  std::optional<raft::entry> kept_entry(raft::index_t index) const {
    return log_->kept_entry(index);
  }
  std::size_t kept_count() const noexcept { return log_->kept_count(); }
  std::error_code sync() { return wal_.sync(); }
  /** Writes what was appended to the file system without waiting for the disk (not durable). */
  std::error_code flush() { return wal_.flush(); }

  bool failed() const noexcept { return wal_.failed(); }
  std::size_t segment_count() const noexcept { return wal_.segment_count(); }

 private:
  shared_wal wal_;
  wal_log* log_;
};

static_assert(raft::log_storage<file_log>);

}  // namespace quorum::storage
