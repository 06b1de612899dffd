// Helpers for tests of log storage implementations.
#pragma once

#include <quorum/raft/storage.hpp>

#include <catch2/catch.hpp>

#include <string>

namespace quorum::test {

/** The payload of entry `i` of `log`, which must hold it. */
template <raft::log_storage Log>
std::string payload_at(const Log& log, raft::index_t i) {
  std::error_code ec;
  auto got = log.entries(i, i + 1, 1 << 20, ec);
  REQUIRE_FALSE(ec);
  REQUIRE(got.size() == 1);
  return got[0].payload.to_string();
}

/** What storage::wal_log streams for a snapshot that keeps no entries: the data's size (8
 *  bytes, little-endian), then the data. */
inline std::string image_of(const std::string& data) {
  std::string image;
  for (int i = 0; i < 8; ++i) image.push_back(static_cast<char>((data.size() >> (8 * i)) & 0xff));
  return image + data;
}

}  // namespace quorum::test
