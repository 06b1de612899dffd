// A directory on the real disk for one test (durability tests must not use tmpfs): under the
// working directory (ctest runs in the build tree), named after the test and the process,
// emptied before and removed after.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

namespace quorum::test {

struct scratch {
  std::string path;
  explicit scratch(const std::string& name)
      : path(std::filesystem::current_path().string() + "/" + name + "." +
             std::to_string(::getpid())) {
    std::filesystem::remove_all(path);
  }
  ~scratch() { std::filesystem::remove_all(path); }
  scratch(const scratch&) = delete;
  scratch& operator=(const scratch&) = delete;
};

}  // namespace quorum::test
