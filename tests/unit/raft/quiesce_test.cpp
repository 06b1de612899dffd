// Rule-named tests of quiescing (options.quiesce): idle groups stop heartbeating and stop
// their election clocks, wake on any activity, and replace a leader the host suspects.
#include <quorum/raft/core.hpp>

#include "../../support/test_cluster.hpp"

#include <catch2/catch.hpp>

using namespace quorum;
using namespace quorum::test;

namespace {

void quiescing(raft::options& o) {
  o.quiesce = true;
}

/** A three-node group with quiescing, leader 1, one write committed, settled until quiet. */
test_cluster quiet_group() {
  test_cluster c(3, quiescing);
  c.elect(1);
  REQUIRE_FALSE(c[1].propose(raft::shared_bytes("x")).error);
  c.deliver_all();
  for (int i = 0; i < 5; ++i) {
    c.tick_all();
    c.deliver_all();
  }
  return c;
}

bool all_quiesced(test_cluster& c) {
  return c[1].quiesced() && c[2].quiesced() && c[3].quiesced();
}

}  // namespace

TEST_CASE("an idle group quiesces once every member holds and has committed the whole log",
          "[raft][quiesce]") {
  test_cluster c = quiet_group();
  CHECK(all_quiesced(c));
  for (node_id id : {1, 2, 3}) CHECK(c[id].log().committed() == c[1].log().last_index());
}

TEST_CASE("a quiesced group sends nothing and elects nobody however long it idles",
          "[raft][quiesce]") {
  test_cluster c = quiet_group();
  const term_t term = c[1].term();
  for (int i = 0; i < 1000; ++i) c.tick_all();
  CHECK(c.outbox().empty());
  CHECK(c.deliver_all() == 0);
  CHECK(c[1].current_role() == role::leader);
  for (node_id id : {1, 2, 3}) CHECK(c[id].term() == term);
}

TEST_CASE("without options.quiesce a group never quiesces", "[raft][quiesce]") {
  test_cluster c(3);
  c.elect(1);
  for (int i = 0; i < 20; ++i) {
    c.tick_all();
    CHECK_FALSE(c.outbox().empty());  // heartbeats every tick
    c.deliver_all();
  }
  CHECK_FALSE(c[1].quiesced());
  CHECK_FALSE(c[2].quiesced());
}

TEST_CASE("a proposal wakes a quiesced group, commits, and the group quiesces again",
          "[raft][quiesce]") {
  test_cluster c = quiet_group();
  REQUIRE_FALSE(c[1].propose(raft::shared_bytes("y")).error);
  CHECK_FALSE(c[1].quiesced());
  c.deliver_all();
  CHECK_FALSE(c[2].quiesced());
  CHECK_FALSE(c[3].quiesced());
  for (node_id id : {1, 2, 3}) CHECK(payloads(c.applied(id)) == std::vector<std::string>{"x", "y"});
  for (int i = 0; i < 5; ++i) {
    c.tick_all();
    c.deliver_all();
  }
  CHECK(all_quiesced(c));
}

TEST_CASE("a group does not quiesce while a follower lags", "[raft][quiesce]") {
  test_cluster c(3, quiescing);
  c.elect(1);
  c.cut(1, 3);
  REQUIRE_FALSE(c[1].propose(raft::shared_bytes("x")).error);
  for (int i = 0; i < 20; ++i) {
    c.tick(1);
    CHECK_FALSE(c.outbox().empty());  // still heartbeating
    c.deliver_all();
  }
  CHECK_FALSE(c[1].quiesced());
  c.heal();
  for (int i = 0; i < 5; ++i) {
    c.tick_all();
    c.deliver_all();
  }
  CHECK(all_quiesced(c));
  CHECK(payloads(c.applied(3)) == std::vector<std::string>{"x"});
}

TEST_CASE("a quiesce heartbeat delayed past newer entries does not put a follower to sleep",
          "[raft][quiesce]") {
  test_cluster c(3, quiescing);
  c.elect(1);
  REQUIRE_FALSE(c[1].propose(raft::shared_bytes("x")).error);
  c.deliver_all();
  std::vector<message> quiesce_to_2;
  for (int i = 0; i < 5 && quiesce_to_2.empty(); ++i) {
    c.tick(1);
    for (const message& m : c.outbox()) {
      if (m.quiesce && m.to == 2) quiesce_to_2.push_back(m);
    }
    c.deliver_all([](const message& m) { return !(m.quiesce && m.to == 2); });
  }
  REQUIRE(quiesce_to_2.size() == 1);
  REQUIRE(c[1].quiesced());
  REQUIRE_FALSE(c[2].quiesced());
  REQUIRE_FALSE(c[1].propose(raft::shared_bytes("y")).error);
  c.deliver_all();
  REQUIRE_FALSE(c[2].step(quiesce_to_2[0]));  // arrives late
  c.process(2);
  CHECK_FALSE(c[2].quiesced());
}

TEST_CASE("a quiesced follower does not notice a dead leader until the host suspects it",
          "[raft][quiesce]") {
  test_cluster c = quiet_group();
  c.stop(1);
  for (int i = 0; i < 200; ++i) {
    c.tick(2);
    c.tick(3);
    c.deliver_all();
  }
  CHECK(c.leader() == raft::no_node);
  // The host saw the connection to node 1 drop.
  c[2].unquiesce();
  c[3].unquiesce();
  const node_id next = c.await_leader_among({2, 3}, 60);
  CHECK(next != raft::no_node);
}

TEST_CASE("a follower woken by its host asks the leader to resume heartbeats", "[raft][quiesce]") {
  test_cluster c = quiet_group();
  const term_t term = c[1].term();
  c[2].unquiesce();
  c.process(2);
  REQUIRE(c.outbox().size() == 1);
  CHECK(c.outbox()[0].type == message_type::wake);
  CHECK(c.outbox()[0].to == 1);
  c.deliver_all();
  CHECK_FALSE(c[1].quiesced());
  // The leader heartbeats again, so node 2 does not time out; the group settles back.
  for (int i = 0; i < 40; ++i) {
    c.tick_all();
    c.deliver_all();
  }
  CHECK(c[1].current_role() == role::leader);
  CHECK(c[2].term() == term);
  CHECK(all_quiesced(c));
}

TEST_CASE("a restarted follower rejoins a quiesced group without disrupting its leader",
          "[raft][quiesce]") {
  test_cluster c = quiet_group();
  const term_t term = c[1].term();
  c.stop(3);
  c.start(3);  // knows no leader; its election clock runs
  for (int i = 0; i < 100 && !all_quiesced(c); ++i) {
    c.tick_all();
    c.deliver_all();
  }
  CHECK(c[1].current_role() == role::leader);
  CHECK(c[1].term() == term);
  CHECK(c[3].leader() == 1);
  CHECK(all_quiesced(c));
}

TEST_CASE("a quiescing leader gives up its lease", "[raft][quiesce][dissertation-6.4.1]") {
  auto run = [](raft::mutation mutant) {
    test_cluster c(3, [mutant](raft::options& o) {
      o.quiesce = true;
      o.read_mode = raft::read_mode::lease;
      o.lease_drift_ticks = 2;
      o.test_mutation = mutant;
    });
    for (node_id id : {1, 2, 3}) c.tick(id, 10);  // past the start-up vote quarantine
    c.elect(1);
    for (int i = 0; i < 5; ++i) {
      c.tick_all();
      c.deliver_all();
    }
    REQUIRE(all_quiesced(c));
    // Node 1's clock stopped while quiesced, so a lease would never end: a read must wait for
    // a heartbeat round.
    REQUIRE_FALSE(c[1].read_index(4));
    return reads_of(c, 1).size();
  };
  CHECK(run(raft::mutation::none) == 0);
  CHECK(run(raft::mutation::quiesced_lease) == 1);  // the test can tell
}

TEST_CASE("the quiesce flag on anything but a heartbeat is malformed", "[raft][quiesce]") {
  test_cluster c(3, quiescing);
  message m;
  m.type = message_type::append_response;
  m.from = 2;
  m.to = 1;
  m.term = 1;
  m.quiesce = true;
  CHECK(c[1].step(m) == errc::malformed_message);
}
