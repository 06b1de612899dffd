// Rule-named tests of linearizable reads (dissertation 6.4: ReadIndex, leases, follower reads)
// and leadership transfer (dissertation 3.10), with hand-delivered messages.
#include <quorum/raft/core.hpp>

#include "../../support/test_cluster.hpp"

#include <catch2/catch.hpp>

using namespace quorum;
using namespace quorum::test;

namespace {

/** Delivers everything except to and from `skip`, collecting node `watch`'s read states. */
std::vector<raft::read_state> deliver_and_read(test_cluster& c, node_id watch) {
  std::vector<raft::read_state> out;
  for (int round = 0; round < 50; ++round) {
    auto mine = reads_of(c, watch);
    out.insert(out.end(), mine.begin(), mine.end());
    auto batch = std::move(c.outbox());
    c.outbox().clear();
    if (batch.empty()) break;
    for (auto& m : batch) {
      if (!c.can_reach(m.from, m.to)) continue;
      REQUIRE_FALSE(c[m.to].step(m));
      if (m.to != watch) c.process(m.to);
    }
  }
  return out;
}

raft::options lease(raft::options& o) {
  o.read_mode = raft::read_mode::lease;
  o.lease_drift_ticks = 2;
  return o;
}

}  // namespace

// ---- ReadIndex ------------------------------------------------------------------------------

TEST_CASE("a leader answers a read only after a quorum acknowledges a round started after it",
          "[raft][dissertation-6.4]") {
  test_cluster c(3);
  c.elect(1);
  REQUIRE_FALSE(c[1].read_index(7));
  CHECK(reads_of(c, 1).empty());  // heartbeats are out, nobody has answered yet
  auto reads = deliver_and_read(c, 1);
  REQUIRE(reads.size() == 1);
  CHECK(reads[0].context == 7);
  CHECK_FALSE(reads[0].error);
  CHECK(reads[0].index == c[1].log().committed());
}

TEST_CASE("acknowledgements of an earlier round do not confirm a later read",
          "[raft][dissertation-6.4]") {
  test_cluster c(3);
  c.elect(1);
  c.tick(1);  // a heartbeat round
  auto old_round = std::move(c.outbox());
  c.outbox().clear();
  for (auto& m : old_round) {
    REQUIRE_FALSE(c[m.to].step(m));
    c.process(m.to);
  }
  auto old_answers = std::move(c.outbox());  // answers to the old round, held back
  c.outbox().clear();
  REQUIRE_FALSE(c[1].read_index(9));
  reads_of(c, 1);
  c.outbox().clear();  // the read's own round is lost
  for (auto& m : old_answers) REQUIRE_FALSE(c[1].step(m));
  CHECK(reads_of(c, 1).empty());
}

TEST_CASE("a new leader holds reads until an entry of its own term commits",
          "[raft][dissertation-6.4]") {
  test_cluster c(3);
  c[1].campaign();
  // Elect node 1 but lose its no-op: its commit index is not yet current.
  c.deliver_all([](const message& m) {
    return m.type != message_type::append && m.type != message_type::heartbeat;
  });
  REQUIRE(c[1].current_role() == role::leader);
  REQUIRE(c[1].log().committed() < c[1].log().last_index());
  REQUIRE_FALSE(c[1].read_index(5));
  c.outbox().clear();
  CHECK(reads_of(c, 1).empty());
  c.tick(1);
  auto reads = deliver_and_read(c, 1);
  REQUIRE(reads.size() == 1);
  CHECK(reads[0].index == c[1].log().last_index());  // the no-op, now committed
}

TEST_CASE("a leader that loses leadership fails its pending reads", "[raft][dissertation-6.4]") {
  test_cluster c(3);
  c.elect(1);
  c.isolate(1);
  REQUIRE_FALSE(c[1].read_index(3));
  for (int i = 0; i < 2 * 10; ++i) c[1].tick();
  REQUIRE(c[1].current_role() == role::follower);
  auto reads = reads_of(c, 1);
  REQUIRE(reads.size() == 1);
  CHECK(reads[0].error == errc::read_not_confirmed);
}

TEST_CASE("a follower read is answered with the leader's confirmed commit index",
          "[raft][dissertation-6.4][follower-read]") {
  test_cluster c(3);
  c.elect(1);
  REQUIRE_FALSE(c[1].propose(raft::shared_bytes("x")).error);
  c.deliver_all();
  REQUIRE_FALSE(c[2].read_index(11));
  auto reads = deliver_and_read(c, 2);
  REQUIRE(reads.size() == 1);
  CHECK(reads[0].context == 11);
  CHECK_FALSE(reads[0].error);
  CHECK(reads[0].index == c[1].log().committed());
}

TEST_CASE("a follower that knows no leader refuses a read at once",
          "[raft][dissertation-6.4][follower-read]") {
  test_cluster c(3);
  CHECK(c[2].read_index(1) == errc::read_not_confirmed);
  CHECK(c[2].read_index(0) == errc::malformed_message);
}

// ---- leases ---------------------------------------------------------------------------------

TEST_CASE("under a valid lease a leader answers reads without a heartbeat round",
          "[raft][dissertation-6.4.1]") {
  test_cluster c(3, [](raft::options& o) { lease(o); });
  for (node_id id : {1, 2, 3}) c.tick(id, 10);  // past the start-up vote quarantine
  c.elect(1);
  c.tick(1);
  c.deliver_all();  // a quorum acknowledged a round: the lease runs
  REQUIRE_FALSE(c[1].read_index(4));
  auto reads = reads_of(c, 1);
  REQUIRE(reads.size() == 1);
  CHECK(reads[0].index == c[1].log().committed());
}

TEST_CASE("a lease ends an election timeout minus the drift bound after its round began",
          "[raft][dissertation-6.4.1]") {
  test_cluster c(3, [](raft::options& o) { lease(o); });
  for (node_id id : {1, 2, 3}) c.tick(id, 10);
  c.elect(1);
  c.tick(1);
  c.deliver_all();
  c.isolate(1);
  for (int i = 0; i < 10 - 2; ++i) c[1].tick();  // the lease has run out, CheckQuorum not yet
  REQUIRE(c[1].current_role() == role::leader);
  c.outbox().clear();
  REQUIRE_FALSE(c[1].read_index(4));
  CHECK(reads_of(c, 1).empty());  // it needs a round now, which cannot complete
}

TEST_CASE("lease reads require CheckQuorum and a drift bound below the election timeout",
          "[raft][dissertation-6.4.1][options]") {
  raft::options o = test_options(1);
  lease(o);
  std::string what;
  o.check_quorum = false;
  CHECK(raft::validate(o, what) == errc::invalid_options);
  o.check_quorum = true;
  o.lease_drift_ticks = o.election_ticks;
  CHECK(raft::validate(o, what) == errc::invalid_options);
  CHECK(what.find("lease_drift_ticks") != std::string::npos);
}

TEST_CASE("with lease reads a node refuses votes for an election timeout after it starts",
          "[raft][dissertation-6.4.1]") {
  test_cluster c(3, [](raft::options& o) {
    lease(o);
    o.pre_vote = false;
  });
  message vote;
  vote.type = message_type::vote;
  vote.from = 2;
  vote.to = 1;
  vote.term = 1;
  REQUIRE_FALSE(c[1].step(vote));
  c.process(1);
  CHECK(c.outbox().empty());
  c.tick(1, 10);
  c.outbox().clear();
  vote.term = 2;
  REQUIRE_FALSE(c[1].step(vote));
  c.process(1);
  CHECK(c[1].vote() == 2);
}

// ---- leadership transfer --------------------------------------------------------------------

TEST_CASE("leadership moves to an up-to-date follower at once", "[raft][dissertation-3.10]") {
  test_cluster c(3);
  c.elect(1);
  const term_t term = c[1].term();
  REQUIRE_FALSE(c[1].transfer_leadership(2));
  c.deliver_all();
  CHECK(c.leader() == 2);
  CHECK(c[2].term() == term + 1);
  CHECK(c[1].current_role() == role::follower);
}

TEST_CASE("a lagging transfer target is brought up to date first", "[raft][dissertation-3.10]") {
  test_cluster c(3);
  c.elect(1);
  c.isolate(3);
  for (int i = 0; i < 3; ++i) REQUIRE_FALSE(c[1].propose(raft::shared_bytes("x")).error);
  c.deliver_all();
  REQUIRE(c[1].progress_of(3)->match() < c[1].log().last_index());
  c.heal();
  REQUIRE_FALSE(c[1].transfer_leadership(3));
  c.deliver_all();
  CHECK(c.leader() == 3);
  CHECK(c[3].log().last_index() >= c[1].log().last_index());
}

TEST_CASE("proposals are refused while leadership is being transferred",
          "[raft][dissertation-3.10]") {
  test_cluster c(3);
  c.elect(1);
  c.isolate(2);
  REQUIRE_FALSE(c[1].transfer_leadership(2));
  auto refused = c[1].propose(raft::shared_bytes("x"));
  CHECK(refused.error == errc::transfer_in_progress);
  CHECK(refused.leader_hint == 2);
}

TEST_CASE("a transfer that does not complete within an election timeout is abandoned",
          "[raft][dissertation-3.10]") {
  test_cluster c(3);
  c.elect(1);
  c.isolate(2);
  REQUIRE_FALSE(c[1].transfer_leadership(2));
  for (int i = 0; i < 10; ++i) {
    c.tick(1);
    c.deliver_all();
  }
  CHECK(c[1].current_role() == role::leader);
  CHECK(c[1].transferee() == raft::no_node);
  CHECK_FALSE(c[1].propose(raft::shared_bytes("x")).error);
}

TEST_CASE("a transfer to a node outside the group is refused", "[raft][dissertation-3.10]") {
  test_cluster c(3);
  CHECK(c[1].transfer_leadership(2) == errc::not_leader);
  c.elect(1);
  CHECK(c[1].transfer_leadership(9) == errc::invalid_transfer_target);
  CHECK(c[1].transfer_leadership(1) == std::error_code{});
}

TEST_CASE("a leader gives up its lease when it starts a transfer",
          "[raft][dissertation-3.10][dissertation-6.4.1]") {
  test_cluster c(3, [](raft::options& o) { lease(o); });
  for (node_id id : {1, 2, 3}) c.tick(id, 10);
  c.elect(1);
  c.tick(1);
  c.deliver_all();
  c.isolate(2);
  REQUIRE_FALSE(c[1].transfer_leadership(2));
  c.outbox().clear();
  REQUIRE_FALSE(c[1].read_index(8));
  CHECK(reads_of(c, 1).empty());  // no lease: the read waits for a round
}
