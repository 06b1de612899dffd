// Tests of memory_storage against the log_storage contract.
#include <quorum/raft/memory_storage.hpp>

#include "../../support/entries.hpp"

#include <catch2/catch.hpp>

using namespace quorum;
using namespace quorum::raft;

using quorum::test::make_entries;

TEST_CASE("an empty store has first index 1, last index 0 and term 0 at index 0",
          "[storage][memory]") {
  memory_storage s({{1, 2, 3}});
  CHECK(s.first_index() == 1);
  CHECK(s.last_index() == 0);
  std::error_code ec;
  CHECK(s.term(0, ec) == 0);
  CHECK_FALSE(ec);
  s.term(1, ec);
  CHECK(ec == errc::unavailable);
  CHECK(s.initial_state().members.voters.size() == 3);
}

TEST_CASE("appending over existing entries truncates the conflicting suffix", "[storage][memory]") {
  memory_storage s;
  s.append(make_entries(1, {1, 1, 1, 1}));
  s.append(make_entries(3, {2}));
  CHECK(s.last_index() == 3);
  std::error_code ec;
  CHECK(s.term(3, ec) == 2);
}

TEST_CASE("compaction keeps the term of the compaction point and refuses older reads",
          "[storage][memory]") {
  memory_storage s;
  s.append(make_entries(1, {1, 2, 3, 4}));
  CHECK_FALSE(s.compact(2));
  CHECK(s.first_index() == 3);
  std::error_code ec;
  CHECK(s.term(2, ec) == 2);
  CHECK_FALSE(ec);
  s.term(1, ec);
  CHECK(ec == errc::compacted);
  s.entries(2, 4, 1 << 20, ec);
  CHECK(ec == errc::compacted);
  CHECK(s.compact(2) == errc::compacted);
  CHECK(s.compact(9) == errc::unavailable);
  CHECK(s.entries(3, 5, 1 << 20, ec).size() == 2);
}

TEST_CASE("reads stop at the byte budget but return at least one entry", "[storage][memory]") {
  memory_storage s;
  s.append(make_entries(1, {1, 1, 1}));
  std::error_code ec;
  CHECK(s.entries(1, 4, 0, ec).size() == 1);
  CHECK(s.entries(1, 4, 2 * entry_footprint(entry{1, 1, shared_bytes("e")}), ec).size() == 2);
}
