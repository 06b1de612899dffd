// Rule-named tests of membership change (dissertation 4: joint consensus, learners, removing
// the leader) and of the membership type's majorities, with hand-delivered messages.
#include <quorum/raft/core.hpp>

#include "../../support/test_cluster.hpp"

#include <catch2/catch.hpp>

using namespace quorum;
using namespace quorum::test;
using raft::membership;

TEST_CASE("a joint configuration needs a majority of the old and of the new voters",
          "[raft][dissertation-4.3]") {
  const membership joint{{1, 4, 5}, {1, 2, 3}};
  auto commit_with = [&](std::set<node_id> holding) {
    return joint.majority_value(
        [&](node_id id) -> std::uint64_t { return holding.contains(id) ? 10 : 0; });
  };
  CHECK(commit_with({1, 2, 4}) == 10);  // 1,2 of old; 1,4 of new
  CHECK(commit_with({1, 2, 3}) == 0);   // the new configuration has only node 1
  CHECK(commit_with({1, 4, 5}) == 0);   // the old configuration has only node 1
  auto vote = [&](std::set<node_id> yes, std::set<node_id> no) {
    return joint.vote_result([&](node_id id) {
      return yes.contains(id) ? 1 : no.contains(id) ? -1 : 0;
    });
  };
  CHECK(vote({1, 2, 4}, {}) == 1);
  CHECK(vote({1, 2, 3}, {}) == 0);
  CHECK(vote({1}, {4, 5}) == -1);
}

TEST_CASE("adding a caught-up learner as voter goes through joint consensus and leaves it",
          "[raft][dissertation-4.3]") {
  member_cluster c(4, membership{{1, 2, 3}, {}, {4}});
  c.elect(1);
  REQUIRE_FALSE(c[1].propose(raft::shared_bytes("x")).error);
  c.deliver_all();
  REQUIRE(c[1].progress_of(4)->match() == c[1].log().last_index());  // the learner has the log
  REQUIRE_FALSE(c[1].change_membership({{1, 2, 3, 4}}));
  CHECK(c[1].members().joint());
  settle(c, 1, [&] { return !c[1].membership_change_in_flight(); });
  for (node_id id : {1, 2, 3, 4}) {
    INFO("node " << id);
    CHECK_FALSE(c[id].members().joint());
    CHECK(c[id].members().is_voter(4));
  }
}

TEST_CASE("a learner receives the log but never counts for commit or votes",
          "[raft][dissertation-4.2.1]") {
  member_cluster c(4, membership{{1, 2, 3}, {}, {4}});
  c.elect(1);
  c.isolate(2);
  c.isolate(3);
  const index_t before = c[1].log().committed();
  REQUIRE_FALSE(c[1].propose(raft::shared_bytes("x")).error);
  c.deliver_all();
  CHECK(c[4].log().last_index() == c[1].log().last_index());  // the learner has it ...
  CHECK(c[1].log().committed() == before);                    // ... and it does not count
  c.heal();
  c.tick(1);
  c.deliver_all();
  // A caught-up learner never campaigns, however long it hears nothing.
  c.isolate(4);
  c.tick(4, 100);
  CHECK(c[4].current_role() == role::follower);
  CHECK(c[4].term() == c[1].term());
}

TEST_CASE("a learner is promoted only once it is caught up", "[raft][dissertation-4.2.1]") {
  member_cluster c(4, membership{{1, 2, 3}, {}, {4}});
  c.isolate(4);
  c.elect(1);
  for (int i = 0; i < 5; ++i) REQUIRE_FALSE(c[1].propose(raft::shared_bytes("x")).error);
  c.deliver_all();
  CHECK(c[1].change_membership({{1, 2, 3, 4}}) == errc::not_caught_up);
  CHECK(c[1].change_membership({{1, 2, 3, 5}}) == errc::not_caught_up);  // not even a learner
  c.heal();
  settle(c, 1, [&] { return c[1].progress_of(4)->match() == c[1].log().last_index(); });
  CHECK_FALSE(c[1].change_membership({{1, 2, 3, 4}}));
}

TEST_CASE("a caught-up learner is promoted automatically when asked to",
          "[raft][dissertation-4.2.1]") {
  member_cluster c(4, membership{{1, 2, 3}, {}, {4}},
                   [](raft::options& o) { o.auto_promote_learners = true; });
  c.elect(1);
  settle(c, 1, [&] { return c[1].members().is_voter(4) && !c[1].membership_change_in_flight(); });
  CHECK(c[1].members().is_voter(4));
  CHECK_FALSE(c[1].members().is_learner(4));
}

TEST_CASE("one membership change at a time and bad memberships are refused",
          "[raft][dissertation-4.1]") {
  member_cluster c(4, membership{{1, 2, 3}, {}, {4}});
  CHECK(c[1].change_membership({{1, 2}}) == errc::not_leader);
  c.elect(1);
  c.isolate(2);
  c.isolate(3);  // nothing can commit: the change stays in flight
  REQUIRE_FALSE(c[1].change_membership({{1, 2, 3}, {}, {}}));  // drop the learner
  CHECK(c[1].change_membership({{1, 2}}) == errc::membership_change_in_progress);
  c.heal();
  settle(c, 1, [&] { return !c[1].membership_change_in_flight(); });
  CHECK(c[1].change_membership({{}}) == errc::invalid_membership);
  CHECK(c[1].change_membership({{1, 2}, {}, {2}}) == errc::invalid_membership);
  CHECK(c[1].change_membership({{1, 1, 2}}) == errc::invalid_membership);
}

TEST_CASE("a new leader changes the membership only once an entry of its term commits",
          "[raft][dissertation-4.1]") {
  member_cluster c(4, membership{{1, 2, 3}, {}, {4}});
  c.isolate(2);
  c.isolate(3);
  c[1].campaign();
  c.heal();
  c.deliver_all([](const message& m) { return m.type != message_type::append_response; });
  REQUIRE(c[1].current_role() == role::leader);
  REQUIRE(c[1].log().committed() < c[1].log().last_index());  // its no-op is not committed
  CHECK(c[1].change_membership({{1, 2, 3}}) == errc::membership_change_in_progress);
  c.tick(1);
  c.deliver_all();
  CHECK_FALSE(c[1].change_membership({{1, 2, 3}}));
}

TEST_CASE("a configuration change while logs diverge never yields two leaders or lost entries",
          "[raft][dissertation-4.3][single-server-bug]") {
  // The bug class of single-server changes (raft-dev, 2015): a leader appends a change and
  // crashes before replicating it; the next leader, whose log lacks it, makes another change;
  // the first leader returns with the first change in its log. With joint consensus and the
  // own-term commit rule, the first change dies with the old term.
  member_cluster c(5, membership{{1, 2, 3}, {}, {4, 5}}, [](raft::options& o) {
    o.check_quorum = false;  // so that node 1 may campaign when it returns
  });
  c.elect(1);
  c.deliver_all();
  c.isolate(1);
  REQUIRE_FALSE(c[1].change_membership({{1, 2, 3, 4}, {}, {5}}));  // only node 1 has it
  c.process(1);
  c.stop(1);
  const node_id second = c.await_leader_among({2, 3});
  REQUIRE(second != raft::no_node);
  const term_t second_term = c[second].term();
  settle(c, second, [&] { return c[second].log().committed() == c[second].log().last_index(); });
  REQUIRE_FALSE(c[second].change_membership({{1, 2, 3, 5}, {}, {4}}));
  settle(c, second, [&] { return !c[second].membership_change_in_flight(); });
  REQUIRE_FALSE(c[second].propose(raft::shared_bytes("committed")).error);
  c.deliver_all();
  // Node 1 returns with the other change (a joint configuration naming node 4) in its log.
  c.start(1);
  CHECK(c[1].members().joint());
  c.heal();
  for (int i = 0; i < 60; ++i) {
    c.tick_all();
    c.deliver_all();
    c.leader();  // fails the test on two leaders of one term
  }
  const node_id last = c.leader();
  REQUIRE(last != raft::no_node);
  CHECK(c[last].term() >= second_term);
  const membership expected{{1, 2, 3, 5}, {}, {4}};
  for (node_id id = 1; id <= 5; ++id) {
    INFO("node " << id);
    CHECK(c[id].members() == expected);
    CHECK(payloads(c.applied(id)).back() == "committed");
  }
}

TEST_CASE("a leader removed from the group steps down once the change commits",
          "[raft][dissertation-4.2.2]") {
  test_cluster c(3);
  c.elect(1);
  REQUIRE_FALSE(c[1].change_membership({{2, 3}}));
  settle(c, 1, [&] { return c[1].current_role() != role::leader; });
  CHECK(c[1].current_role() == role::follower);
  CHECK_FALSE(c[2].members().is_voter(1));
  // The remaining two time out, elect a leader and commit without node 1.
  c.isolate(1);
  const node_id next = c.await_leader_among({2, 3});
  REQUIRE((next == 2 || next == 3));
  REQUIRE_FALSE(c[next].propose(raft::shared_bytes("after")).error);
  c.deliver_all();
  CHECK(c[next].log().committed() == c[next].log().last_index());
}

TEST_CASE("a node uses the latest configuration in its log, and the previous one if truncated",
          "[raft][dissertation-4.1]") {
  // CheckQuorum off: node 3's lease on node 1 would otherwise delay node 2's election.
  test_cluster c(3, [](raft::options& o) { o.check_quorum = false; });
  c.elect(1);
  c.isolate(2);
  c.isolate(3);
  REQUIRE_FALSE(c[1].change_membership({{1, 2}}));  // appended, never committed
  CHECK(c[1].members().joint());                    // in force at once, uncommitted
  c.process(1);                                     // persisted
  // Node 2 leads a new term without that entry; node 1's entry is overwritten.
  c.stop(1);
  c.heal();
  c.elect(2);
  REQUIRE(c.leader() == 2);
  c.start(1);
  CHECK(c[1].members().joint());  // recovered from its log
  c.tick(2);
  c.deliver_all();
  CHECK_FALSE(c[1].members().joint());
  CHECK(c[1].members().voters.size() == 3);
}

TEST_CASE("membership survives a restart", "[raft][dissertation-4.1][restart]") {
  member_cluster c(4, membership{{1, 2, 3}, {}, {4}});
  c.elect(1);
  c.deliver_all();
  REQUIRE_FALSE(c[1].change_membership({{1, 2, 3, 4}}));
  settle(c, 1, [&] { return !c[1].membership_change_in_flight(); });
  c.stop(4);
  c.start(4);
  CHECK(c[4].members().is_voter(4));
  CHECK_FALSE(c[4].members().joint());
}

TEST_CASE("a voter being demoted may be an outgoing voter and a learner at once",
          "[raft][dissertation-4.3]") {
  std::string what;
  CHECK_FALSE(raft::validate(membership{{3, 4, 5}, {1, 2, 3}, {1, 2}}, what));
  CHECK(raft::validate(membership{{1, 2}, {}, {2}}, what) == errc::invalid_membership);
  CHECK(what == "node 2 is voter and learner");
}

TEST_CASE("membership payloads round-trip and malformed ones are refused", "[raft][codec]") {
  const membership m{{1, 2, 3}, {1, 2}, {9}};
  auto decoded = raft::decode_membership(raft::encode_membership(m).bytes());
  REQUIRE(decoded);
  CHECK(*decoded == m);
  const auto bytes = raft::encode_membership(m);
  CHECK_FALSE(raft::decode_membership(bytes.bytes().first(bytes.size() - 1)));
  std::vector<std::byte> huge(4, std::byte{0xff});  // a count far beyond the bytes present
  CHECK_FALSE(raft::decode_membership(huge));
}
