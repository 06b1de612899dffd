// Tests of raft_log: the durable/unstable split, conflict handling, commit and apply bounds.
#include <quorum/raft/log.hpp>

#include <quorum/raft/memory_storage.hpp>

#include "../../support/entries.hpp"

#include <catch2/catch.hpp>

using namespace quorum;
using namespace quorum::raft;

using quorum::test::make_entries;

TEST_CASE("new entries stay unstable until the host reports them persisted", "[raft][log]") {
  memory_storage s;
  raft_log log(s);
  log.append(make_entries(1, {1, 1}));
  CHECK(log.last_index() == 2);
  CHECK(log.persisted_index() == 0);
  CHECK(log.unstable().size() == 2);
  s.append(log.unstable());
  log.stable_to(2, 1);
  CHECK(log.persisted_index() == 2);
  CHECK(log.unstable().empty());
  CHECK(log.last_index() == 2);
}

TEST_CASE("a persist report for entries replaced meanwhile is ignored", "[raft][log]") {
  memory_storage s;
  raft_log log(s);
  log.append(make_entries(1, {1, 1, 1}));
  REQUIRE(
      log.maybe_append(1, 1, 0, make_entries(2, {2})));  // replaces 2..3 with one entry of term 2
  log.stable_to(3, 1);                                   // the host persisted the old 1..3
  CHECK(log.persisted_index() == 0);
  CHECK(log.last_index() == 2);
  CHECK(log.unstable().size() == 2);
}

TEST_CASE("a conflict below the unstable tail replaces persisted entries", "[raft][log]") {
  memory_storage s;
  s.append(make_entries(1, {1, 1, 1}));
  raft_log log(s);
  REQUIRE(log.maybe_append(1, 1, 0, make_entries(2, {2, 2, 2})) == index_t{4});
  CHECK(log.persisted_index() == 1);
  CHECK(log.term_or_zero(2) == 2);
  s.append(log.unstable());
  log.stable_to(4, 2);
  std::error_code ec;
  CHECK(s.term(3, ec) == 2);
  CHECK(s.last_index() == 4);
}

TEST_CASE("committed entries are handed out only once durable here", "[raft][log]") {
  memory_storage s;
  raft_log log(s);
  REQUIRE(log.maybe_append(0, 0, 2, make_entries(1, {1, 1})));
  CHECK(log.committed() == 2);
  CHECK_FALSE(log.has_next_committed());
  s.append(log.unstable());
  log.stable_to(2, 1);
  CHECK(log.next_committed_entries(1 << 20).size() == 2);
  log.applied_to(2);
  CHECK_FALSE(log.has_next_committed());
}

TEST_CASE("the commit index never exceeds the last new entry of an append", "[raft][log]") {
  memory_storage s;
  raft_log log(s);
  log.append(make_entries(1, {1, 1, 1, 1}));
  REQUIRE(log.maybe_append(1, 1, 100, make_entries(2, {1})));
  CHECK(log.committed() == 2);
}

TEST_CASE("find_conflict_by_term finds the last entry at or below a term", "[raft][log]") {
  memory_storage s;
  s.append(make_entries(1, {1, 1, 3, 3, 5}));
  raft_log log(s);
  CHECK(log.find_conflict_by_term(5, 4) == 4);
  CHECK(log.find_conflict_by_term(5, 2) == 2);
  CHECK(log.find_conflict_by_term(5, 0) == 0);
  CHECK(log.find_conflict_by_term(3, 5) == 3);
}

TEST_CASE("reads from a log respect the byte budget but return at least one entry", "[raft][log]") {
  memory_storage s;
  s.append(make_entries(1, {1, 1}));
  raft_log log(s);
  log.append(make_entries(3, {1, 1}));
  std::error_code ec;
  CHECK(log.entries_from(1, 100, 1, ec).size() == 1);
  CHECK(log.entries_from(1, 100, 1 << 20, ec).size() == 4);
  CHECK(log.entries_from(2, 2, 1 << 20, ec).size() == 2);
  CHECK(log.entries_from(5, 10, 1 << 20, ec).empty());
}
