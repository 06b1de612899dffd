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

}  // namespace quorum::test
