// Group commit for the replicas of one process: their groups share one storage::shared_wal,
// each replica writes its batch and asks for a sync, and one thread makes every batch written
// so far durable with one fdatasync, then tells each replica that asked. A replica keeps
// working meanwhile (the leader replicates while its own write is in flight). wal_group is one
// group's log over the shared WAL with a lock around every access, so replicas on different
// threads can share it.
#pragma once

#include <quorum/storage/shared_wal.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace quorum::runtime {

/** The thread that syncs a shared WAL for every replica that asked since the last sync. */
class group_commit {
 public:
  explicit group_commit(storage::shared_wal& wal) : wal_(&wal), thread_([this] { run(); }) {}

  /** Syncs what is still asked for, calls those callbacks, and joins the thread. */
  ~group_commit() {
    {
      std::lock_guard lock(queue_mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

  group_commit(const group_commit&) = delete;
  group_commit& operator=(const group_commit&) = delete;

  /** The lock every access to the WAL takes. */
  std::mutex& wal_mutex() noexcept { return wal_mutex_; }
  storage::shared_wal& wal() noexcept { return *wal_; }

  /** Calls `done` (on the commit thread) once everything written to the WAL before this call
   *  is durable, or with the error that prevented it. */
  void request(std::function<void(std::error_code)> done) {
    {
      std::lock_guard lock(queue_mutex_);
      waiting_.push_back(std::move(done));
    }
    wake_.notify_one();
  }

  /** fdatasync calls made, and sync requests served (requests / syncs = the batching). */
  std::uint64_t syncs() const noexcept { return syncs_.load(); }
  std::uint64_t requests() const noexcept { return requests_.load(); }

 private:
  void run() {
    std::vector<std::function<void(std::error_code)>> batch;
    for (;;) {
      {
        std::unique_lock lock(queue_mutex_);
        wake_.wait(lock, [this] { return stopping_ || !waiting_.empty(); });
        if (waiting_.empty()) return;  // stopping, nothing left
        batch.swap(waiting_);
      }
      std::error_code ec;
      {
        std::lock_guard lock(wal_mutex_);
        ec = wal_->sync();
      }
      ++syncs_;
      requests_ += batch.size();
      for (auto& done : batch) done(ec);
      batch.clear();
    }
  }

  storage::shared_wal* wal_;
  std::mutex wal_mutex_;
  std::mutex queue_mutex_;
  std::condition_variable wake_;
  std::vector<std::function<void(std::error_code)>> waiting_;
  bool stopping_ = false;
  std::atomic<std::uint64_t> syncs_{0};
  std::atomic<std::uint64_t> requests_{0};
  std::thread thread_;  // last: starts once everything above is built
};

/** One group's log in a shared WAL, safe to use beside the other groups' replicas: every call
 *  takes the WAL's lock, and async_sync() goes through the group commit. */
class wal_group {
  // Defined first: the members below deduce their return types from it.
  template <class F>
  auto locked(F&& f) const {
    std::lock_guard lock(commit_->wal_mutex());
    return f();
  }

 public:
  wal_group(group_commit& commit, storage::wal_log& log) : commit_(&commit), log_(&log) {}

  // ---- log_storage ----
  raft::initial_state initial_state() const {
    return locked([&] { return log_->initial_state(); });
  }
  raft::index_t first_index() const {
    return locked([&] { return log_->first_index(); });
  }
  raft::index_t last_index() const {
    return locked([&] { return log_->last_index(); });
  }
  raft::term_t term(raft::index_t i, std::error_code& ec) const {
    return locked([&] { return log_->term(i, ec); });
  }
  std::vector<raft::entry> entries(raft::index_t lo, raft::index_t hi, std::uint64_t max_bytes,
                                   std::error_code& ec) const {
    return locked([&] { return log_->entries(lo, hi, max_bytes, ec); });
  }
  raft::snapshot_meta snapshot() const {
    return locked([&] { return log_->snapshot(); });
  }
  raft::snapshot_piece read_snapshot(raft::index_t index, std::uint64_t offset,
                                     std::uint64_t max_bytes, std::error_code& ec) const {
    return locked([&] { return log_->read_snapshot(index, offset, max_bytes, ec); });
  }
  raft::shared_bytes snapshot_data() const {
    return locked([&] { return log_->snapshot_data(); });
  }

  // ---- writes ----
  std::error_code append(std::span<const raft::entry> batch) {
    return locked([&] { return log_->append(batch); });
  }
  std::error_code set_hard_state(const raft::hard_state& hs) {
    return locked([&] { return log_->set_hard_state(hs); });
  }
  std::error_code write_snapshot_chunk(const raft::snapshot_chunk& chunk) {
    return locked([&] { return log_->write_snapshot_chunk(chunk); });
  }
  std::error_code install_snapshot(const raft::snapshot_meta& meta) {
    return locked([&] { return log_->install_snapshot(meta); });
  }
  std::error_code create_snapshot(const raft::snapshot_meta& meta, const raft::shared_bytes& data,
                                  std::span<const raft::index_t> keep = {}) {
    return locked([&] { return log_->create_snapshot(meta, data, keep); });
  }
  std::error_code compact(raft::index_t index) {
    return locked([&] { return log_->compact(index); });
  }
  std::optional<raft::entry> kept_entry(raft::index_t index) const {
    return locked([&] { return log_->kept_entry(index); });
  }
  std::size_t kept_count() const {
    return locked([&] { return log_->kept_count(); });
  }
  /** Syncs the WAL on the caller's thread (one fdatasync for this group alone). */
  std::error_code sync() {
    return locked([&] { return log_->sync(); });
  }
  /** Syncs through the group commit: `done` is called on its thread. */
  void async_sync(std::function<void(std::error_code)> done) { commit_->request(std::move(done)); }

 private:
  group_commit* commit_;
  storage::wal_log* log_;
};

}  // namespace quorum::runtime
