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
  memory_storage s({{1}});
  s.append(make_entries(1, {1, 2, 3, 4}));
  CHECK(s.compact(2) == errc::unavailable);  // not covered by a snapshot
  REQUIRE_FALSE(s.create_snapshot({2, 2, {{1}}}, shared_bytes("state")));
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

TEST_CASE("a snapshot is read in pieces, and the previous one stays readable",
          "[storage][memory][paper-7]") {
  memory_storage s({{1}});
  s.append(make_entries(1, {1, 1, 1, 1}));
  REQUIRE_FALSE(s.create_snapshot({2, 1, {{1}}}, shared_bytes("abcde")));
  std::error_code ec;
  auto piece = s.read_snapshot(2, 0, 3, ec);
  CHECK(piece.data.to_string() == "abc");
  CHECK_FALSE(piece.last);
  piece = s.read_snapshot(2, 3, 3, ec);
  CHECK(piece.data.to_string() == "de");
  CHECK(piece.last);
  CHECK(s.create_snapshot({2, 1, {{1}}}, shared_bytes("x")) == errc::compacted);
  CHECK(s.create_snapshot({9, 1, {{1}}}, shared_bytes("x")) == errc::unavailable);
  REQUIRE_FALSE(s.create_snapshot({4, 1, {{1}}}, shared_bytes("newer")));
  CHECK(s.snapshot().index == 4);
  CHECK(s.read_snapshot(2, 0, 10, ec).data.to_string() == "abcde");  // a stream may finish
  CHECK_FALSE(ec);
  s.append(make_entries(5, {1}));
  REQUIRE_FALSE(s.create_snapshot({5, 1, {{1}}}, shared_bytes("newest")));
  s.read_snapshot(2, 0, 10, ec);
  CHECK(ec == errc::compacted);  // two snapshots on: gone
}

TEST_CASE("an incoming snapshot's durable part is reported at start, to resume",
          "[storage][memory][paper-7]") {
  memory_storage s({{1, 2}});
  s.write_snapshot_chunk({{7, 3, {{1, 2, 3}}}, 0, shared_bytes("ab"), false});
  s.write_snapshot_chunk({{7, 3, {{1, 2, 3}}}, 2, shared_bytes("cd"), false});
  CHECK(s.initial_state().receiving == raft::snapshot_receipt{7, 3, 4});
  s.write_snapshot_chunk({{8, 3, {{1, 2, 3}}}, 0, shared_bytes("z"), true});  // another one
  CHECK(s.initial_state().receiving == raft::snapshot_receipt{8, 3, 1});
  s.install_snapshot({8, 3, {{1, 2, 3}}});
  CHECK(s.initial_state().receiving == raft::snapshot_receipt{});
  CHECK(s.initial_state().members == membership{{1, 2, 3}});
  CHECK(s.first_index() == 9);
  std::error_code ec;
  CHECK(s.term(8, ec) == 3);
}
