// The file operations the storage layer uses, behind an interface so that tests and the
// simulator can inject faults (storage/faulty_file_system.hpp) under the same code that runs on
// real disks (posix_file_system). Errors are values; nothing here throws except std::bad_alloc.
// A file object is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <vector>

namespace quorum::storage {

/** An open file with explicit offsets. */
class file {
 public:
  virtual ~file() = default;
  /** Writes all of `data` at `offset` (into the page cache; durable only after sync()). */
  virtual std::error_code write_at(std::uint64_t offset, std::span<const std::byte> data) = 0;
  /** Reads up to out.size() bytes at `offset`; `got` is less only at the end of the file. */
  virtual std::error_code read_at(std::uint64_t offset, std::span<std::byte> out,
                                  std::size_t& got) = 0;
  /** fdatasync: everything written so far (and the size) is durable once this returns. */
  virtual std::error_code sync() = 0;
  /** Cuts (or extends with zeros) the file to `size` bytes; durable after sync(). */
  virtual std::error_code truncate(std::uint64_t size) = 0;
  /** The current size in bytes. */
  virtual std::error_code size(std::uint64_t& out) = 0;
  /** A hint that the whole file will be read soon, so the system may start reading it now
   *  (posix_fadvise WILLNEED); no effect on what any call returns. */
  virtual void will_need() {}
};

/** A directory tree of files. Paths are '/'-separated. */
class file_system {
 public:
  virtual ~file_system() = default;
  /** Opens `path` for reading and writing, creating it (empty) if `create` and missing. A new
   *  file's name is durable only after sync_dir() of its directory. */
  virtual std::unique_ptr<file> open(const std::string& path, bool create, std::error_code& ec) = 0;
  /** Removes a file; durable after sync_dir(). Missing files are not an error. */
  virtual std::error_code remove(const std::string& path) = 0;
  /** Atomically replaces `to` with `from`; durable after sync_dir(). */
  virtual std::error_code rename(const std::string& from, const std::string& to) = 0;
  /** fsync of a directory: creations, removals and renames in it become durable. */
  virtual std::error_code sync_dir(const std::string& dir) = 0;
  /** Creates `dir` (and its parents) if missing. */
  virtual std::error_code make_dirs(const std::string& dir) = 0;
  /** The names (not paths) of the files in `dir`. */
  virtual std::vector<std::string> list(const std::string& dir, std::error_code& ec) = 0;
};

/** The real file system: open(2), pwrite(2), pread(2), fdatasync(2), rename(2), fsync(2). */
class posix_file_system final : public file_system {
 public:
  std::unique_ptr<file> open(const std::string& path, bool create, std::error_code& ec) override;
  std::error_code remove(const std::string& path) override;
  std::error_code rename(const std::string& from, const std::string& to) override;
  std::error_code sync_dir(const std::string& dir) override;
  std::error_code make_dirs(const std::string& dir) override;
  std::vector<std::string> list(const std::string& dir, std::error_code& ec) override;
};

}  // namespace quorum::storage
