// Proposals a follower forwards to its leader (core::forward): answered once durable on the
// leader, refused with the leader's reason, or given up as outcome_unknown.
#include "../../support/test_cluster.hpp"

using namespace quorum;
using namespace quorum::test;

namespace {

bool is_answer(const message& m) {
  return m.type == message_type::propose_response;
}

}  // namespace

TEST_CASE("a forwarded proposal is appended by the leader and answered with its place",
          "[raft][forward]") {
  test_cluster c(3);
  c.elect(1);
  REQUIRE_FALSE(c[2].forward(5, raft::shared_bytes("x")));
  c.deliver_all();
  REQUIRE(c.answers(2).size() == 1);
  const raft::proposal_state& a = c.answers(2)[0];
  CHECK(a.context == 5);
  CHECK_FALSE(a.error);
  CHECK(a.term == c[1].term());
  CHECK(a.index == c[1].log().last_index());
  for (node_id id : {1, 2, 3}) {
    REQUIRE_FALSE(c.applied(id).empty());
    CHECK(c.applied(id).back().index == a.index);
    CHECK(c.applied(id).back().payload.to_string() == "x");
  }
}

TEST_CASE("the leader answers a forwarded proposal only once the entry is durable there",
          "[raft][forward]") {
  test_cluster c(3);
  c.elect(1);
  REQUIRE_FALSE(c[2].forward(5, raft::shared_bytes("x")));
  c.process(2);
  auto out = std::move(c.outbox());
  c.outbox().clear();
  REQUIRE(out.size() == 1);
  REQUIRE(out[0].type == message_type::propose);
  REQUIRE_FALSE(c[1].step(out[0]));
  raft::ready rd = c[1].get_ready();
  CHECK(std::none_of(rd.messages.begin(), rd.messages.end(), is_answer));
  REQUIRE(rd.entries.size() == 1);
  CHECK(std::count_if(rd.persisted_messages.begin(), rd.persisted_messages.end(), is_answer) == 1);
  persist(c.storage(1), rd);
  c[1].advance(rd);
}

TEST_CASE("a forwarded proposal refused by the leader reports the leader's reason",
          "[raft][forward]") {
  test_cluster c(3);
  c.elect(1);
  c.isolate(3);
  REQUIRE_FALSE(c[1].transfer_leadership(3));  // 3 cannot catch up: the transfer stays pending
  c.deliver_all();
  REQUIRE_FALSE(c[2].forward(6, raft::shared_bytes("y")));
  c.deliver_all();
  REQUIRE(c.answers(2).size() == 1);
  CHECK(c.answers(2)[0].error == errc::transfer_in_progress);
  CHECK(c.applied(1).back().payload.to_string() != "y");
}

TEST_CASE("a forwarded proposal whose answer is lost ends as outcome_unknown", "[raft][forward]") {
  test_cluster c(3);
  c.elect(1);
  REQUIRE_FALSE(c[2].forward(7, raft::shared_bytes("z")));
  for (int i = 0; i < 2 * 10 + 1 && c.answers(2).empty(); ++i) {
    c.tick_all();
    c.deliver_all([](const message& m) { return !is_answer(m); });
  }
  REQUIRE(c.answers(2).size() == 1);
  CHECK(c.answers(2)[0].error == errc::outcome_unknown);
  // The leader did append it: "unknown" is the honest answer, not "failed".
  CHECK(c.applied(2).back().payload.to_string() == "z");
}

TEST_CASE("a follower whose term changes gives up on its forwarded proposals", "[raft][forward]") {
  test_cluster c(3);
  c.elect(1);
  REQUIRE_FALSE(c[2].forward(8, raft::shared_bytes("w")));
  c.process(2);
  c.outbox().clear();  // the proposal is lost
  c.stop(1);
  REQUIRE(c.await_leader_among({2, 3}) != raft::no_node);
  REQUIRE(c.answers(2).size() == 1);
  CHECK(c.answers(2)[0].error == errc::outcome_unknown);
}

TEST_CASE("a forwarded proposal the network duplicates is appended once", "[raft][forward]") {
  test_cluster c(3);
  c.elect(1);
  REQUIRE_FALSE(c[2].forward(10, raft::shared_bytes("once")));
  c.process(2);
  auto out = std::move(c.outbox());
  c.outbox().clear();
  REQUIRE(out.size() == 1);
  const raft::index_t before = c[1].log().last_index();
  for (int copy = 0; copy < 3; ++copy) REQUIRE_FALSE(c[1].step(out[0]));
  c.deliver_all();
  CHECK(c[1].log().last_index() == before + 1);
  REQUIRE(c.answers(2).size() == 1);
  CHECK_FALSE(c.answers(2)[0].error);
  // A later proposal from the same node (a higher context) is taken as new.
  REQUIRE_FALSE(c[2].forward(11, raft::shared_bytes("twice")));
  c.deliver_all();
  CHECK(c[1].log().last_index() == before + 2);
}

TEST_CASE("a copy refused by a node that is no longer leader leaves the outcome unknown",
          "[raft][forward]") {
  test_cluster c(3);
  c.elect(1);
  REQUIRE_FALSE(c[2].forward(12, raft::shared_bytes("maybe")));
  c.process(2);
  auto out = std::move(c.outbox());
  c.outbox().clear();
  REQUIRE(out.size() == 1);
  REQUIRE_FALSE(c[1].step(out[0]));
  c.process(1);                      // appended and durable; its answer is on its way...
  c.stop(1);                         // ...and lost with the leader's crash
  c.start(1);                        // back as a follower of the same term
  REQUIRE_FALSE(c[1].step(out[0]));  // a copy the network kept
  c.deliver_all();
  REQUIRE(c.answers(2).size() == 1);
  // "Not the leader" says nothing about the first copy, which the leader did append.
  CHECK(c.answers(2)[0].error == errc::outcome_unknown);
  CHECK(c.storage(1).last_index() == c.storage(1).first_index() + 1);
}

TEST_CASE("only a follower that knows its leader forwards", "[raft][forward]") {
  test_cluster c(3);
  CHECK(c[2].forward(1, raft::shared_bytes("a")) == errc::not_leader);
  c.elect(1);
  CHECK(c[1].forward(1, raft::shared_bytes("a")) == errc::not_leader);
  CHECK(c[2].forward(0, raft::shared_bytes("a")) == errc::malformed_message);
}

TEST_CASE("a proposal answer without a place is refused as malformed", "[raft][forward]") {
  test_cluster c(3);
  c.elect(1);
  REQUIRE_FALSE(c[2].forward(9, raft::shared_bytes("v")));
  message m;
  m.type = message_type::propose_response;
  m.from = 1;
  m.to = 2;
  m.term = c[1].term();
  m.context = 9;
  CHECK(c[2].step(m) == errc::malformed_message);
  m.type = message_type::heartbeat_response;
  m.data = raft::shared_bytes("payload");
  CHECK(c[2].step(m) == errc::malformed_message);
}
