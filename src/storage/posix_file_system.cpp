// posix_file_system: thin wrappers over POSIX calls, retrying only EINTR and short transfers.
#include <quorum/storage/file_system.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace quorum::storage {

namespace {

std::error_code last_error() {
  return {errno, std::system_category()};
}

class posix_file final : public file {
 public:
  explicit posix_file(int fd) : fd_(fd) {}
  ~posix_file() override { ::close(fd_); }
  posix_file(const posix_file&) = delete;
  posix_file& operator=(const posix_file&) = delete;

  std::error_code write_at(std::uint64_t offset, std::span<const std::byte> data) override {
    while (!data.empty()) {
      const ssize_t n = ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        return last_error();
      }
      data = data.subspan(static_cast<std::size_t>(n));
      offset += static_cast<std::uint64_t>(n);
    }
    return {};
  }

  std::error_code read_at(std::uint64_t offset, std::span<std::byte> out,
                          std::size_t& got) override {
    got = 0;
    while (got < out.size()) {
      const ssize_t n =
          ::pread(fd_, out.data() + got, out.size() - got, static_cast<off_t>(offset + got));
      if (n < 0) {
        if (errno == EINTR) continue;
        return last_error();
      }
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
    }
    return {};
  }

  std::error_code sync() override {
    while (::fdatasync(fd_) != 0) {
      if (errno != EINTR) return last_error();
    }
    return {};
  }

  std::error_code truncate(std::uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return last_error();
    return {};
  }

  std::error_code size(std::uint64_t& out) override {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return last_error();
    out = static_cast<std::uint64_t>(st.st_size);
    return {};
  }

  void will_need() override { (void)::posix_fadvise(fd_, 0, 0, POSIX_FADV_WILLNEED); }

 private:
  int fd_;
};

}  // namespace

std::unique_ptr<file> posix_file_system::open(const std::string& path, bool create,
                                              std::error_code& ec) {
  ec.clear();
  const int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0);
  int fd;
  do {
    fd = ::open(path.c_str(), flags, 0644);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    ec = last_error();
    return nullptr;
  }
  return std::make_unique<posix_file>(fd);
}

std::error_code posix_file_system::remove(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return last_error();
  return {};
}

std::error_code posix_file_system::rename(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) return last_error();
  return {};
}

std::error_code posix_file_system::sync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return last_error();
  std::error_code ec;
  while (::fsync(fd) != 0) {
    if (errno != EINTR) {
      ec = last_error();
      break;
    }
  }
  ::close(fd);
  return ec;
}

std::error_code posix_file_system::make_dirs(const std::string& dir) {
  for (std::size_t at = 1; at <= dir.size(); ++at) {
    if (at != dir.size() && dir[at] != '/') continue;
    const std::string prefix = dir.substr(0, at);
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) return last_error();
  }
  return {};
}

std::vector<std::string> posix_file_system::list(const std::string& dir, std::error_code& ec) {
  ec.clear();
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    ec = last_error();
    return names;
  }
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  return names;
}

}  // namespace quorum::storage
