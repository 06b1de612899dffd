// An in-memory file_system with the failure modes of a real disk, for tests and the simulator:
// writes sit in a page cache until sync(); a crash keeps only synced data plus a random prefix
// of the unsynced writes (the last possibly torn); directory changes are lost unless the
// directory was synced; bit flips at rest; EIO at the Nth operation. Deterministic from its
// seed. Single-threaded.
#pragma once

#include <quorum/detail/random.hpp>
#include <quorum/storage/file_system.hpp>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace quorum::storage {

/** Operations that a fault can target. */
enum class fs_op : std::uint8_t {
  any,
  open,
  write,
  read,
  sync,
  truncate,
  rename,
  remove,
  sync_dir
};

class faulty_file_system final : public file_system {
 public:
  explicit faulty_file_system(std::uint64_t seed = 1) : random_(seed) {}

  std::unique_ptr<file> open(const std::string& path, bool create, std::error_code& ec) override;
  std::error_code remove(const std::string& path) override;
  std::error_code rename(const std::string& from, const std::string& to) override;
  std::error_code sync_dir(const std::string& dir) override;
  std::error_code make_dirs(const std::string& dir) override;
  std::vector<std::string> list(const std::string& dir, std::error_code& ec) override;

  // ---- faults ----
  /** The `n`th operation of kind `op` from now (1 = the next one) fails with EIO, once. */
  void fail_at(std::uint64_t n, fs_op op = fs_op::any);
  /** From now on each read fails with EIO with probability `read`, each sync with `sync`
   *  (drawn from this file system's seed). */
  void set_error_rates(double read, double sync) {
    read_error_ = read;
    sync_error_ = sync;
  }
  /** Makes every later operation of kind `op` fail with EIO (a dead disk), until heal(). */
  void fail_always(fs_op op = fs_op::any) { dead_.insert(op); }
  void heal() {
    dead_.clear();
    fail_countdown_ = 0;
    read_error_ = 0;
    sync_error_ = 0;
  }
  /** Power loss. Unsynced writes are lost except a random prefix (when `keep_some`), whose
   *  last write may be torn (when `tear`); unsynced directory changes are lost. Files opened
   *  before the crash fail every operation afterwards. */
  void crash(bool keep_some = true, bool tear = true);
  /** Flips one bit at `offset` of `path`'s durable bytes (and cached ones); false if absent. */
  bool flip_bit(const std::string& path, std::uint64_t offset);

  /** Operations performed so far (for fail matrices), in all and of one kind. */
  std::uint64_t operations() const noexcept { return operations_; }
  std::uint64_t operations(fs_op op) const {
    auto it = counts_.find(op);
    return it == counts_.end() ? 0 : it->second;
  }
  /** True if `path` exists (in the cache's view). */
  bool exists(const std::string& path) const { return names_.contains(path); }
  /** The file's current bytes (cache view), or empty. */
  std::vector<std::byte> contents(const std::string& path) const;

 private:
  struct pending_op {
    bool is_write = true;
    std::uint64_t offset = 0;  // write offset, or truncate size
    std::vector<std::byte> bytes;
  };
  struct inode {
    std::vector<std::byte> data;     // the page cache's view
    std::vector<std::byte> durable;  // what survives a crash
    std::vector<pending_op> pending;
  };
  class handle;
  friend class handle;

  std::error_code check(fs_op op);
  static void apply(std::vector<std::byte>& target, const pending_op& op);

  quorum::detail::splitmix64 random_;
  std::map<std::string, std::shared_ptr<inode>> names_;
  std::map<std::string, std::shared_ptr<inode>> durable_names_;
  std::set<std::string> dirs_;
  std::uint64_t operations_ = 0;
  std::map<fs_op, std::uint64_t> counts_;
  std::uint64_t generation_ = 0;
  std::uint64_t fail_countdown_ = 0;
  fs_op fail_op_ = fs_op::any;
  std::set<fs_op> dead_;
  double read_error_ = 0;
  double sync_error_ = 0;
};

}  // namespace quorum::storage
