// Rule-named tests of the Raft core: paper sections 5.1-5.4, PreVote (dissertation 9.6),
// CheckQuorum (dissertation 6.2), the ready/advance contract and input validation. Messages are
// delivered by hand through test_cluster; no clocks, no threads.
#include <quorum/raft/core.hpp>

#include "../../support/test_cluster.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

using namespace quorum;
using namespace quorum::test;

namespace {

raft::options no_pre_vote(raft::options& o) {
  o.pre_vote = false;
  return o;
}

message msg(message_type type, node_id from, node_id to, term_t term) {
  message m;
  m.type = type;
  m.from = from;
  m.to = to;
  m.term = term;
  return m;
}

std::vector<message> take(std::vector<message>& outbox, message_type type) {
  std::vector<message> out;
  for (auto& m : outbox) {
    if (m.type == type) out.push_back(m);
  }
  return out;
}

/** Writes a log of the given terms (index 1..n) and a hard state term into a stopped node. */
void preset_log(test_cluster& c, node_id id, const std::vector<term_t>& terms, term_t term) {
  c.stop(id);
  std::vector<entry> log;
  for (std::size_t i = 0; i < terms.size(); ++i) {
    log.push_back(entry{terms[i], i + 1, raft::shared_bytes(std::to_string(i + 1))});
  }
  c.storage(id).append(log);
  c.storage(id).set_hard_state({term, raft::no_node, 0});
  c.start(id);
}

std::vector<term_t> log_terms(memory_storage& s) {
  std::vector<term_t> out;
  for (index_t i = s.first_index(); i <= s.last_index(); ++i) {
    std::error_code ec;
    out.push_back(s.term(i, ec));
  }
  return out;
}

}  // namespace

// ---- 5.1 basics ---------------------------------------------------------------------------

TEST_CASE("a node starts as a follower in the term its storage holds", "[raft][paper-5.1]") {
  test_cluster c(3);
  CHECK(c[1].current_role() == role::follower);
  CHECK(c[1].term() == 0);
  CHECK(c[1].leader() == raft::no_node);
}

TEST_CASE("a node that sees a higher term adopts it and becomes a follower", "[raft][paper-5.1]") {
  SECTION("leader") {
    test_cluster c(3);
    c.elect(1);
    REQUIRE(c[1].current_role() == role::leader);
    REQUIRE_FALSE(c[1].step(msg(message_type::heartbeat, 2, 1, 5)));
    CHECK(c[1].current_role() == role::follower);
    CHECK(c[1].term() == 5);
    CHECK(c[1].leader() == 2);
  }
  SECTION("candidate") {
    test_cluster c(3, [](raft::options& o) { no_pre_vote(o); });
    c[1].campaign();
    REQUIRE(c[1].current_role() == role::candidate);
    REQUIRE_FALSE(c[1].step(msg(message_type::append, 3, 1, 4)));
    CHECK(c[1].current_role() == role::follower);
    CHECK(c[1].term() == 4);
    CHECK(c[1].vote() == raft::no_node);
  }
}

TEST_CASE("a message with a stale term is ignored", "[raft][paper-5.1]") {
  test_cluster c(3, [](raft::options& o) {
    o.check_quorum = false;
    o.pre_vote = false;
  });
  preset_log(c, 1, {}, 3);
  message vote = msg(message_type::vote, 2, 1, 2);
  REQUIRE_FALSE(c[1].step(vote));
  message append = msg(message_type::append, 2, 1, 2);
  append.entries.push_back(entry{2, 1, raft::shared_bytes("stale")});
  REQUIRE_FALSE(c[1].step(append));
  c.process(1);
  CHECK(c.outbox().empty());
  CHECK(c[1].vote() == raft::no_node);
  CHECK(c[1].log().last_index() == 0);
  CHECK(c[1].term() == 3);
}

// ---- 5.2 leader election ------------------------------------------------------------------

TEST_CASE("a leader sends a heartbeat to every follower each heartbeat interval",
          "[raft][paper-5.2]") {
  test_cluster c(3);
  c.elect(1);
  c.outbox().clear();
  c.tick(1);
  auto beats = take(c.outbox(), message_type::heartbeat);
  REQUIRE(beats.size() == 2);
  std::set<node_id> to;
  for (auto& m : beats) to.insert(m.to);
  CHECK(to == std::set<node_id>{2, 3});
}

TEST_CASE("a follower that hears nothing for an election timeout starts an election",
          "[raft][paper-5.2]") {
  test_cluster c(3, [](raft::options& o) { no_pre_vote(o); });
  c.tick(1, 2 * 10);
  CHECK(c[1].current_role() == role::candidate);
  CHECK(c[1].term() == 1);
  CHECK(c[1].vote() == 1);
  auto votes = take(c.outbox(), message_type::vote);
  REQUIRE(votes.size() == 2);
  for (auto& m : votes) {
    CHECK(m.term == 1);
    CHECK(m.index == 0);
    CHECK(m.log_term == 0);
  }
}

TEST_CASE("a candidate wins the election with votes from a majority", "[raft][paper-5.2]") {
  struct row {
    std::size_t size;
    std::vector<bool> responses;  // from nodes 2, 3, ...
    role expected;
  };
  const std::vector<row> rows = {
      {1, {}, role::leader},
      {3, {true}, role::leader},
      {3, {false}, role::candidate},
      {3, {false, false}, role::follower},
      {5, {true, false}, role::candidate},
      {5, {true, true}, role::leader},
      {5, {false, false, false}, role::follower},
      {5, {false, true, false, true}, role::leader},
  };
  for (const auto& r : rows) {
    test_cluster c(r.size, [](raft::options& o) { no_pre_vote(o); });
    c[1].campaign();
    for (std::size_t i = 0; i < r.responses.size(); ++i) {
      message m = msg(message_type::vote_response, i + 2, 1, 1);
      m.reject = !r.responses[i];
      REQUIRE_FALSE(c[1].step(m));
    }
    INFO("cluster of " << r.size << ", " << r.responses.size() << " responses");
    CHECK(c[1].current_role() == r.expected);
  }
}

TEST_CASE("a node grants at most one vote per term, first come first served", "[raft][paper-5.2]") {
  test_cluster c(3, [](raft::options& o) { no_pre_vote(o); });
  auto vote_from = [&](node_id from) {
    message m = msg(message_type::vote, from, 1, 1);
    REQUIRE_FALSE(c[1].step(m));
    c.process(1);
    auto responses = take(c.outbox(), message_type::vote_response);
    c.outbox().clear();
    REQUIRE(responses.size() == 1);
    return !responses[0].reject;
  };
  CHECK(vote_from(2));
  CHECK_FALSE(vote_from(3));
  CHECK(vote_from(2));  // a repeated request from the same candidate is granted again
  CHECK(c.storage(1).initial_state().hard.vote == 2);
}

TEST_CASE("a candidate returns to follower when it hears from a leader of its own term",
          "[raft][paper-5.2]") {
  test_cluster c(3, [](raft::options& o) { no_pre_vote(o); });
  c[1].campaign();
  REQUIRE(c[1].current_role() == role::candidate);
  REQUIRE_FALSE(c[1].step(msg(message_type::heartbeat, 2, 1, 1)));
  CHECK(c[1].current_role() == role::follower);
  CHECK(c[1].leader() == 2);
  CHECK(c[1].term() == 1);
}

TEST_CASE("a candidate whose election is not decided starts another in a higher term",
          "[raft][paper-5.2]") {
  test_cluster c(3, [](raft::options& o) { no_pre_vote(o); });
  c[1].campaign();
  REQUIRE(c[1].term() == 1);
  c.tick(1, 2 * 10);
  CHECK(c[1].current_role() == role::candidate);
  CHECK(c[1].term() == 2);
}

TEST_CASE("a candidate rejected by a majority returns to follower", "[raft][paper-5.2]") {
  test_cluster c(3, [](raft::options& o) { no_pre_vote(o); });
  c[1].campaign();
  for (node_id from : {2, 3}) {
    message m = msg(message_type::vote_response, from, 1, 1);
    m.reject = true;
    REQUIRE_FALSE(c[1].step(m));
  }
  CHECK(c[1].current_role() == role::follower);
  CHECK(c[1].term() == 1);
}

TEST_CASE("election timeouts are randomized between one and two election timeouts",
          "[raft][paper-5.2]") {
  std::set<int> seen;
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    memory_storage s({{1, 2, 3}});
    raft::options o = test_options(1);
    o.seed = seed;
    core<memory_storage> r(s, o);
    CHECK(r.randomized_election_timeout() >= 10);
    CHECK(r.randomized_election_timeout() < 20);
    seen.insert(r.randomized_election_timeout());
  }
  CHECK(seen.size() >= 8);
}

TEST_CASE("the same seed draws the same election timeouts", "[raft][paper-5.2]") {
  auto draws = [](std::uint64_t seed) {
    memory_storage s({{1, 2, 3}});
    raft::options o = test_options(1);
    o.seed = seed;
    o.pre_vote = false;
    core<memory_storage> r(s, o);
    std::vector<int> out;
    for (int i = 0; i < 20; ++i) {
      r.campaign();
      out.push_back(r.randomized_election_timeout());
    }
    return out;
  };
  CHECK(draws(7) == draws(7));
  CHECK(draws(7) != draws(8));
}

TEST_CASE("two candidates of one term cannot both win", "[raft][paper-5.2]") {
  test_cluster c(3, [](raft::options& o) { no_pre_vote(o); });
  c[1].campaign();
  c[2].campaign();
  c.deliver_all();
  std::size_t leaders = 0;
  for (node_id id : {1, 2, 3}) leaders += c[id].current_role() == role::leader ? 1 : 0;
  CHECK(leaders <= 1);
}

// ---- 5.3 log replication ------------------------------------------------------------------

TEST_CASE("a leader appends a proposal to its log and sends it to every follower",
          "[raft][paper-5.3]") {
  test_cluster c(3);
  c.elect(1);
  c.outbox().clear();
  auto result = c[1].propose(raft::shared_bytes("x"));
  REQUIRE_FALSE(result.error);
  CHECK(result.term == c[1].term());
  CHECK(result.first_index == c[1].log().last_index());
  c.process(1);
  auto appends = take(c.outbox(), message_type::append);
  REQUIRE(appends.size() == 2);
  for (auto& m : appends) {
    REQUIRE(m.entries.size() == 1);
    CHECK(m.entries[0].payload.to_string() == "x");
  }
}

TEST_CASE("an entry is committed once a majority stores it, then every node applies it",
          "[raft][paper-5.3]") {
  test_cluster c(5);
  c.elect(1);
  c.isolate(4);
  c.isolate(5);
  REQUIRE_FALSE(c[1].propose(raft::shared_bytes("x")).error);
  c.deliver_all();
  CHECK(c[1].log().committed() == c[1].log().last_index());
  for (node_id id : {1, 2, 3}) CHECK(payloads(c.applied(id)) == std::vector<std::string>{"x"});
  c.heal();
  c.tick(1);
  c.deliver_all();
  for (node_id id : {4, 5}) CHECK(payloads(c.applied(id)) == std::vector<std::string>{"x"});
}

TEST_CASE("an entry on a minority is never committed", "[raft][paper-5.3]") {
  test_cluster c(5);
  c.elect(1);
  c.isolate(3);
  c.isolate(4);
  c.isolate(5);
  const index_t before = c[1].log().committed();
  REQUIRE_FALSE(c[1].propose(raft::shared_bytes("x")).error);
  c.deliver_all();
  CHECK(c[1].log().committed() == before);
  CHECK(payloads(c.applied(1)).empty());
}

TEST_CASE("the leader's own entry counts toward commit only once persisted",
          "[raft][paper-5.3][ready]") {
  test_cluster c(3);
  c.elect(1);
  c.isolate(3);
  c.outbox().clear();
  REQUIRE_FALSE(c[1].propose(raft::shared_bytes("x")).error);
  raft::ready rd = c[1].get_ready();
  const index_t index = rd.entries.back().index;
  // Follower 2 stores the entry and acknowledges it while the leader is still writing.
  for (auto& m : rd.messages) {
    if (m.to == 2) REQUIRE_FALSE(c[2].step(m));
  }
  c.process(2);
  for (auto& m : take(c.outbox(), message_type::append_response)) REQUIRE_FALSE(c[1].step(m));
  CHECK(c[1].log().committed() < index);  // one replica of three is not a majority
  persist(c.storage(1), rd);
  c[1].advance(rd);
  CHECK(c[1].log().committed() == index);
}

TEST_CASE("a leader sends appends before its own log is persisted",
          "[raft][paper-5.3][ready][dissertation-10.2.1]") {
  test_cluster c(3);
  c.elect(1);
  REQUIRE_FALSE(c[1].propose(raft::shared_bytes("x")).error);
  raft::ready rd = c[1].get_ready();
  REQUIRE(rd.entries.size() == 1);
  REQUIRE(take(rd.messages, message_type::append).size() == 2);
  CHECK(take(rd.persisted_messages, message_type::append).empty());
  persist(c.storage(1), rd);
  c[1].advance(rd);
}

TEST_CASE("a follower's acknowledgement leaves only after what it vouches for is persisted",
          "[raft][paper-5.3][ready]") {
  test_cluster c(3);
  message m = msg(message_type::append, 2, 1, 1);
  m.entries = {entry{1, 1, raft::shared_bytes("x")}};
  REQUIRE_FALSE(c[1].step(m));
  raft::ready rd = c[1].get_ready();
  CHECK(rd.entries.size() == 1);
  CHECK(rd.messages.empty());
  REQUIRE(rd.persisted_messages.size() == 1);
  CHECK(rd.persisted_messages[0].type == message_type::append_response);
  CHECK(rd.persisted_messages[0].index == 1);
  REQUIRE(rd.hard_state);
  CHECK(rd.hard_state->term == 1);
  persist(c.storage(1), rd);
  c[1].advance(rd);
}

TEST_CASE("a vote is granted only after the vote is persisted", "[raft][paper-5.2][ready]") {
  test_cluster c(3, [](raft::options& o) { no_pre_vote(o); });
  REQUIRE_FALSE(c[1].step(msg(message_type::vote, 2, 1, 1)));
  raft::ready rd = c[1].get_ready();
  REQUIRE(rd.hard_state);
  CHECK(rd.hard_state->vote == 2);
  CHECK(rd.messages.empty());
  REQUIRE(rd.persisted_messages.size() == 1);
  CHECK_FALSE(rd.persisted_messages[0].reject);
  persist(c.storage(1), rd);
  c[1].advance(rd);
}

TEST_CASE("a follower applies an entry once it learns it is committed", "[raft][paper-5.3]") {
  test_cluster c(3);
  message m = msg(message_type::append, 2, 1, 1);
  m.entries = {entry{1, 1, raft::shared_bytes("x")}};
  REQUIRE_FALSE(c[1].step(m));
  c.process(1);
  CHECK(c.applied(1).empty());
  message beat = msg(message_type::heartbeat, 2, 1, 1);
  beat.commit = 1;
  REQUIRE_FALSE(c[1].step(beat));
  c.process(1);
  CHECK(payloads(c.applied(1)) == std::vector<std::string>{"x"});
}

TEST_CASE("a follower rejects an append whose previous entry does not match", "[raft][paper-5.3]") {
  test_cluster c(3);
  preset_log(c, 1, {1, 1, 2}, 2);
  message m = msg(message_type::append, 2, 1, 3);
  m.index = 3;
  m.log_term = 3;
  m.entries = {entry{3, 4, raft::shared_bytes("x")}};
  REQUIRE_FALSE(c[1].step(m));
  c.process(1);
  auto responses = take(c.outbox(), message_type::append_response);
  REQUIRE(responses.size() == 1);
  CHECK(responses[0].reject);
  CHECK(responses[0].index == 3);
  CHECK(responses[0].reject_hint == 3);
  CHECK(responses[0].log_term == 2);
  CHECK(c[1].log().last_index() == 3);
}

TEST_CASE("a follower deletes a conflicting entry and all that follow it", "[raft][paper-5.3]") {
  test_cluster c(3);
  preset_log(c, 1, {1, 1, 2, 2}, 2);
  message m = msg(message_type::append, 2, 1, 3);
  m.index = 1;
  m.log_term = 1;
  m.entries = {entry{1, 2, raft::shared_bytes("2")}, entry{3, 3, raft::shared_bytes("new")}};
  REQUIRE_FALSE(c[1].step(m));
  c.process(1);
  CHECK(log_terms(c.storage(1)) == std::vector<term_t>{1, 1, 3});
}

TEST_CASE("a leader brings every divergent follower's log in line with its own",
          "[raft][paper-5.3][figure-7]") {
  const std::vector<term_t> leader = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
  const std::vector<std::vector<term_t>> followers = {
      {1, 1, 1, 4, 4, 5, 5, 6, 6},           // (a) missing one
      {1, 1, 1, 4},                          // (b) missing many
      {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6},     // (c) one extra uncommitted
      {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7},  // (d) extra entries of a later term
      {1, 1, 1, 4, 4, 4, 4},                 // (e) divergent term 4 tail
      {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3},     // (f) divergent terms 2 and 3
  };
  for (std::size_t i = 0; i < followers.size(); ++i) {
    INFO("figure 7 case " << char('a' + i));
    test_cluster c(3);
    preset_log(c, 1, leader, 7);
    preset_log(c, 2, followers[i], 7);
    preset_log(c, 3, leader, 7);
    c.elect(1);
    REQUIRE(c.leader() == 1);
    c.deliver_all();
    std::vector<term_t> expected = leader;
    expected.push_back(c[1].term());  // the new leader's no-op
    CHECK(log_terms(c.storage(2)) == expected);
  }
}

TEST_CASE("back-tracking skips a whole conflicting term per round trip",
          "[raft][paper-5.3][dissertation-5.3]") {
  test_cluster c(3);
  std::vector<term_t> leader(5, 1);
  leader.insert(leader.end(), 50, 3);
  std::vector<term_t> follower(5, 1);
  follower.insert(follower.end(), 100, 2);
  preset_log(c, 1, leader, 3);
  preset_log(c, 2, follower, 3);
  preset_log(c, 3, leader, 3);
  c.isolate(2);
  c.elect(1);
  c.heal();
  c.tick(1);
  std::size_t rejections = 0;
  c.deliver_all([&](const message& m) {
    if (m.type == message_type::append_response && m.reject) ++rejections;
    return true;
  });
  CHECK(rejections <= 2);
  CHECK(c.storage(2).last_index() == c.storage(1).last_index());
}

TEST_CASE("appends are batched within the per-message entry and byte limits", "[raft][paper-5.3]") {
  SECTION("entry count") {
    test_cluster c(2, [](raft::options& o) { o.max_entries_per_message = 3; });
    c.elect(1);
    c.outbox().clear();
    std::vector<raft::shared_bytes> batch(10, raft::shared_bytes("p"));
    REQUIRE_FALSE(c[1].propose(batch).error);
    c.process(1);
    auto appends = take(c.outbox(), message_type::append);
    REQUIRE(appends.size() == 4);
    for (auto& m : appends) CHECK(m.entries.size() <= 3);
    c.deliver_all();
    CHECK(payloads(c.applied(2)).size() == 10);
  }
  SECTION("bytes") {
    test_cluster c(2, [](raft::options& o) { o.max_bytes_per_message = 100; });
    c.elect(1);
    c.outbox().clear();
    std::vector<raft::shared_bytes> batch(4, raft::shared_bytes(std::string(50, 'b')));
    REQUIRE_FALSE(c[1].propose(batch).error);
    c.process(1);
    auto appends = take(c.outbox(), message_type::append);
    REQUIRE(appends.size() == 4);
    for (auto& m : appends) CHECK(m.entries.size() == 1);
  }
}

TEST_CASE("a leader pipelines appends up to the in-flight window, then waits",
          "[raft][paper-5.3][pipeline]") {
  SECTION("window counted in messages") {
    test_cluster c(2, [](raft::options& o) {
      o.max_entries_per_message = 1;
      o.max_inflight_messages = 2;
    });
    c.elect(1);
    REQUIRE(c[1].progress_of(2)->state() == raft::progress_state::replicate);
    c.outbox().clear();
    std::vector<raft::shared_bytes> batch(5, raft::shared_bytes("p"));
    REQUIRE_FALSE(c[1].propose(batch).error);
    c.process(1);
    auto appends = take(c.outbox(), message_type::append);
    REQUIRE(appends.size() == 2);
    CHECK(c[1].progress_of(2)->is_paused());
    // One acknowledgement frees one slot: exactly one more append goes out.
    c.outbox().clear();
    REQUIRE_FALSE(c[2].step(appends[0]));
    c.process(2);
    auto acks = take(c.outbox(), message_type::append_response);
    REQUIRE(acks.size() == 1);
    c.outbox().clear();
    REQUIRE_FALSE(c[1].step(acks[0]));
    c.process(1);
    CHECK(take(c.outbox(), message_type::append).size() == 1);
  }
  SECTION("window counted in bytes") {
    test_cluster c(2, [](raft::options& o) {
      o.max_entries_per_message = 1;
      o.max_inflight_bytes = 100;
    });
    c.elect(1);
    c.outbox().clear();
    std::vector<raft::shared_bytes> batch(5, raft::shared_bytes(std::string(50, 'b')));
    REQUIRE_FALSE(c[1].propose(batch).error);
    c.process(1);
    CHECK(take(c.outbox(), message_type::append).size() == 2);
    CHECK(c[1].progress_of(2)->inflights().bytes() >= 100);
  }
}

TEST_CASE("a follower being probed gets one append at a time until it answers",
          "[raft][paper-5.3][probe]") {
  test_cluster c(3);
  c.isolate(3);
  c.elect(1);
  REQUIRE(c[1].progress_of(3)->state() == raft::progress_state::probe);
  REQUIRE(c[1].progress_of(3)->is_paused());
  c.outbox().clear();
  for (int i = 0; i < 3; ++i) REQUIRE_FALSE(c[1].propose(raft::shared_bytes("p")).error);
  c.process(1);
  for (auto& m : c.outbox()) CHECK(m.to != 3);
  // A heartbeat answer unpauses the probe; the next append carries everything missing.
  c.outbox().clear();
  REQUIRE_FALSE(c[1].step(msg(message_type::heartbeat_response, 3, 1, c[1].term())));
  c.process(1);
  auto appends = take(c.outbox(), message_type::append);
  REQUIRE(appends.size() == 1);
  CHECK(appends[0].to == 3);
  CHECK(appends[0].entries.size() == 4);  // the no-op and the three proposals
}

// ---- 5.4 safety ---------------------------------------------------------------------------

TEST_CASE("a node refuses its vote to a candidate whose log is less up to date",
          "[raft][paper-5.4.1]") {
  struct row {
    index_t last_index;
    term_t last_term;
    bool granted;
  };
  // The voter's log ends at index 2, term 2.
  const std::vector<row> rows = {
      {1, 2, false}, {3, 1, false}, {0, 0, false}, {2, 2, true}, {3, 2, true}, {1, 3, true},
  };
  for (const auto& r : rows) {
    test_cluster c(3, [](raft::options& o) { no_pre_vote(o); });
    preset_log(c, 1, {1, 2}, 2);
    message m = msg(message_type::vote, 2, 1, 3);
    m.index = r.last_index;
    m.log_term = r.last_term;
    REQUIRE_FALSE(c[1].step(m));
    c.process(1);
    auto responses = take(c.outbox(), message_type::vote_response);
    REQUIRE(responses.size() == 1);
    INFO("candidate last index " << r.last_index << " term " << r.last_term);
    CHECK(responses[0].reject == !r.granted);
  }
}

TEST_CASE("a leader never commits an entry of an earlier term by counting replicas",
          "[raft][paper-5.4.2][figure-8]") {
  test_cluster c(3, [](raft::options& o) { no_pre_vote(o); });
  preset_log(c, 1, {1, 2}, 2);
  preset_log(c, 2, {1}, 2);
  preset_log(c, 3, {1}, 2);
  c[1].campaign();
  // Deliver the votes only, so the leader's appends do not reach anyone.
  c.deliver_all([](const message& m) {
    return m.type == message_type::vote || m.type == message_type::vote_response;
  });
  REQUIRE(c[1].current_role() == role::leader);
  REQUIRE(c[1].log().last_index() == 3);  // index 3 is the term-3 no-op
  message ack = msg(message_type::append_response, 2, 1, c[1].term());
  ack.index = 2;
  REQUIRE_FALSE(c[1].step(ack));
  c.process(1);
  CHECK(c[1].log().committed() < 2);  // index 2 (term 2) is on a majority, yet not committed
  ack.index = 3;
  REQUIRE_FALSE(c[1].step(ack));
  c.process(1);
  CHECK(c[1].log().committed() == 3);  // committing the term-3 entry commits index 2 with it
}

TEST_CASE("a new leader commits the entries of earlier terms through its no-op",
          "[raft][paper-5.4.2]") {
  test_cluster c(3);
  preset_log(c, 1, {1}, 1);
  preset_log(c, 2, {1}, 1);
  c.elect(1);
  c.deliver_all();
  CHECK(c[1].log().committed() == 2);
  for (node_id id : {1, 2, 3}) CHECK(payloads(c.applied(id)) == std::vector<std::string>{"1"});
}

TEST_CASE("a leader never overwrites or deletes entries in its own log",
          "[raft][paper-5.3][leader-append-only]") {
  test_cluster c(3);
  c.elect(1);
  REQUIRE_FALSE(c[1].propose(raft::shared_bytes("x")).error);
  c.deliver_all();
  const auto before = log_terms(c.storage(1));
  message append = msg(message_type::append, 2, 1, c[1].term());
  append.index = 0;
  append.entries = {entry{c[1].term(), 1, raft::shared_bytes("intruder")}};
  REQUIRE_FALSE(c[1].step(append));
  message reject = msg(message_type::append_response, 2, 1, c[1].term());
  reject.reject = true;
  reject.index = 1;
  REQUIRE_FALSE(c[1].step(reject));
  c.deliver_all();
  CHECK(log_terms(c.storage(1)) == before);
  CHECK(c[1].current_role() == role::leader);
}

TEST_CASE("committed entries survive every change of leader", "[raft][paper-5.4][completeness]") {
  // CheckQuorum off: followers would otherwise ignore the new candidate until their lease on
  // the stopped leader ran out, which this test does not tick through.
  test_cluster c(5, [](raft::options& o) { o.check_quorum = false; });
  c.elect(1);
  std::vector<std::string> committed;
  for (node_id down = 1; down <= 3; ++down) {
    const node_id leader = c.leader();
    REQUIRE(leader == down);
    for (int i = 0; i < 3; ++i) {
      const std::string value = std::to_string(leader) + "-" + std::to_string(i);
      REQUIRE_FALSE(c[leader].propose(raft::shared_bytes(value)).error);
      committed.push_back(value);
    }
    c.deliver_all();
    c.stop(leader);
    c.elect(down + 1);
    REQUIRE(c.leader() == down + 1);
    c.deliver_all();
    CHECK(payloads(c.applied(down + 1)) == committed);
    c.start(leader);
  }
}

TEST_CASE("a candidate missing committed entries cannot win", "[raft][paper-5.4.1]") {
  test_cluster c(3, [](raft::options& o) { o.check_quorum = false; });
  c.elect(1);
  c.isolate(3);
  REQUIRE_FALSE(c[1].propose(raft::shared_bytes("x")).error);
  c.deliver_all();
  c.stop(1);
  c.heal();
  c[3].campaign();
  c.deliver_all();
  CHECK(c[3].current_role() != role::leader);
  c.elect(2);
  CHECK(c.leader() == 2);
}

// ---- PreVote (dissertation 9.6) -----------------------------------------------------------

TEST_CASE("a pre-candidate changes neither its term nor its vote", "[raft][dissertation-9.6]") {
  test_cluster c(3);
  c[1].campaign();
  CHECK(c[1].current_role() == role::pre_candidate);
  CHECK(c[1].term() == 0);
  CHECK(c[1].vote() == raft::no_node);
  c.process(1);
  auto pre_votes = take(c.outbox(), message_type::pre_vote);
  REQUIRE(pre_votes.size() == 2);
  for (auto& m : pre_votes) CHECK(m.term == 1);
}

TEST_CASE("a pre-candidate granted pre-votes by a majority becomes a candidate",
          "[raft][dissertation-9.6]") {
  test_cluster c(3);
  c[1].campaign();
  message grant = msg(message_type::pre_vote_response, 2, 1, 1);
  REQUIRE_FALSE(c[1].step(grant));
  CHECK(c[1].current_role() == role::candidate);
  CHECK(c[1].term() == 1);
  CHECK(c[1].vote() == 1);
}

TEST_CASE("an isolated node with PreVote keeps its term and does not disrupt the leader",
          "[raft][dissertation-9.6]") {
  test_cluster c(3);
  c.elect(1);
  const term_t term = c[1].term();
  c.isolate(3);
  for (int i = 0; i < 100; ++i) {
    c.tick_all();
    c.deliver_all();
  }
  CHECK(c[3].term() == term);
  c.heal();
  for (int i = 0; i < 30; ++i) {
    c.tick_all();
    c.deliver_all();
  }
  CHECK(c.leader() == 1);
  CHECK(c[1].term() == term);
  CHECK(c[3].leader() == 1);
}

TEST_CASE("without PreVote a returning isolated node disrupts the leader",
          "[raft][dissertation-9.6]") {
  test_cluster c(3, [](raft::options& o) {
    o.pre_vote = false;
    o.check_quorum = false;
  });
  c.elect(1);
  const term_t term = c[1].term();
  c.isolate(3);
  for (int i = 0; i < 100; ++i) c.tick(3);
  CHECK(c[3].term() > term);
  c.heal();
  for (int i = 0; i < 2 * 10; ++i) {
    c.tick(3);
    c.deliver_all();
  }
  CHECK(c[1].term() > term);  // the old leader was deposed by the stranded term
}

TEST_CASE("a node that hears from a current leader ignores pre-votes and votes",
          "[raft][dissertation-9.6][dissertation-4.2.3]") {
  test_cluster c(3);
  c.elect(1);
  c.outbox().clear();
  for (auto type : {message_type::pre_vote, message_type::vote}) {
    message m = msg(type, 3, 2, c[2].term() + 1);
    m.index = 100;
    m.log_term = 100;
    REQUIRE_FALSE(c[2].step(m));
  }
  c.process(2);
  CHECK(c.outbox().empty());
  CHECK(c[2].term() == c[1].term());
}

// ---- CheckQuorum (dissertation 6.2) -------------------------------------------------------

TEST_CASE("a leader steps down when it has not heard from a quorum for an election timeout",
          "[raft][dissertation-6.2]") {
  test_cluster c(3);
  c.elect(1);
  c.isolate(1);
  for (int i = 0; i < 2 * 10; ++i) c.tick(1);
  CHECK(c[1].current_role() == role::follower);
  CHECK(c[1].leader() == raft::no_node);
}

TEST_CASE("a leader that hears from a quorum keeps leading", "[raft][dissertation-6.2]") {
  test_cluster c(5);
  c.elect(1);
  c.isolate(4);
  c.isolate(5);
  for (int i = 0; i < 100; ++i) {
    c.tick(1);
    c.deliver_all();
  }
  CHECK(c[1].current_role() == role::leader);
}

TEST_CASE("a stale leader steps down when a follower answers with a higher term",
          "[raft][dissertation-6.2][paper-5.1]") {
  test_cluster c(3);
  c.elect(1);
  c.isolate(1);
  // Nodes 2 and 3 wait out their lease on node 1, then elect one of themselves.
  const node_id next = c.await_leader_among({2, 3});
  REQUIRE(next != raft::no_node);
  const term_t term = c[next].term();
  c.heal();
  // The old leader still believes it leads (its CheckQuorum round has not ended).
  REQUIRE(c[1].current_role() == role::leader);
  c.tick(1);
  c.deliver_all();
  CHECK(c[1].current_role() == role::follower);
  CHECK(c[1].term() == term);
}

// ---- proposals ----------------------------------------------------------------------------

TEST_CASE("a proposal to a follower is refused with a hint naming the leader", "[raft][propose]") {
  test_cluster c(3);
  c.elect(1);
  auto result = c[2].propose(raft::shared_bytes("x"));
  CHECK(result.error == errc::not_leader);
  CHECK(result.leader_hint == 1);
  CHECK(c[2].log().last_index() == c[1].log().last_index());
}

TEST_CASE("a proposal is refused while no leader is known", "[raft][propose]") {
  test_cluster c(3);
  auto result = c[1].propose(raft::shared_bytes("x"));
  CHECK(result.error == errc::not_leader);
  CHECK(result.leader_hint == raft::no_node);
  CHECK(result.error.message().find("not the leader") != std::string::npos);
}

TEST_CASE("proposals are refused while uncommitted bytes exceed the limit",
          "[raft][propose][back-pressure]") {
  test_cluster c(3, [](raft::options& o) { o.max_uncommitted_bytes = 100; });
  c.elect(1);
  c.isolate(2);
  c.isolate(3);
  const std::string body(40, 'x');
  CHECK_FALSE(c[1].propose(raft::shared_bytes(body)).error);
  CHECK_FALSE(c[1].propose(raft::shared_bytes(body)).error);
  auto refused = c[1].propose(raft::shared_bytes(body));
  CHECK(refused.error == errc::uncommitted_limit);
  CHECK(c[1].uncommitted_bytes() == 80);
  c.heal();
  c.tick(1);
  c.deliver_all();
  CHECK(c[1].uncommitted_bytes() == 0);
  CHECK_FALSE(c[1].propose(raft::shared_bytes(body)).error);
}

TEST_CASE("one proposal larger than the limit is accepted when nothing is pending",
          "[raft][propose][back-pressure]") {
  test_cluster c(3, [](raft::options& o) { o.max_uncommitted_bytes = 10; });
  c.elect(1);
  CHECK_FALSE(c[1].propose(raft::shared_bytes(std::string(50, 'x'))).error);
  CHECK(c[1].propose(raft::shared_bytes("y")).error == errc::uncommitted_limit);
}

// ---- input from outside -------------------------------------------------------------------

TEST_CASE("step refuses misaddressed and malformed messages and changes nothing", "[raft][input]") {
  test_cluster c(3);
  c.elect(1);
  const auto hs = c[2].hard_state();
  const index_t last = c[2].log().last_index();

  message wrong = msg(message_type::append, 1, 3, c[1].term());
  CHECK(c[2].step(wrong) == errc::wrong_recipient);

  message bad_type = msg(static_cast<message_type>(99), 1, 2, c[1].term());
  CHECK(c[2].step(bad_type) == errc::malformed_message);

  message no_sender = msg(message_type::heartbeat, raft::no_node, 2, c[1].term() + 5);
  CHECK(c[2].step(no_sender) == errc::malformed_message);

  message gap = msg(message_type::append, 1, 2, c[1].term());
  gap.index = last;
  gap.log_term = c[1].term();
  gap.entries = {entry{c[1].term(), last + 2, raft::shared_bytes("gap")}};
  CHECK(c[2].step(gap) == errc::malformed_message);

  message future = msg(message_type::append, 1, 2, c[1].term());
  future.index = last;
  future.log_term = c[1].term();
  future.entries = {entry{c[1].term() + 1, last + 1, raft::shared_bytes("future term")}};
  CHECK(c[2].step(future) == errc::malformed_message);

  c.process(2);
  CHECK(c[2].hard_state() == hs);
  CHECK(c[2].log().last_index() == last);
}

TEST_CASE("a sole voter campaigns at its first tick, and a voter among others waits its timeout",
          "[raft][election]") {
  test_cluster alone(1);
  alone.tick(1);
  alone.process(1);
  CHECK(alone[1].current_role() == role::leader);
  // Restarted, it leads again at once, in a new term.
  const term_t before = alone[1].term();
  alone.stop(1);
  alone.start(1);
  alone.tick(1);
  alone.process(1);
  CHECK(alone[1].current_role() == role::leader);
  CHECK(alone[1].term() > before);
  // With three voters, one tick is far from an election timeout.
  test_cluster three(3);
  three.tick(1);
  three.process(1);
  CHECK(three[1].current_role() == role::follower);
}

TEST_CASE("invalid options are refused with an error that names the field", "[raft][options]") {
  memory_storage s({{1}});
  raft::options o = test_options(1);
  o.election_ticks = 1;
  o.heartbeat_ticks = 1;
  try {
    core<memory_storage> r(s, o);
    FAIL("constructed with invalid options");
  } catch (const std::system_error& e) {
    CHECK(e.code() == errc::invalid_options);
    CHECK(std::string(e.what()).find("election_ticks") != std::string::npos);
  }
  std::string what;
  o = test_options(raft::no_node);
  CHECK(raft::validate(o, what) == errc::invalid_options);
  CHECK(what.find("options.id") != std::string::npos);
}

// ---- restart and compaction ---------------------------------------------------------------

TEST_CASE("a restarted node recovers its term, vote and log from storage", "[raft][restart]") {
  test_cluster c(3);
  c.elect(1);
  REQUIRE_FALSE(c[1].propose(raft::shared_bytes("x")).error);
  c.deliver_all();
  const auto hs = c[2].hard_state();
  const index_t last = c[2].log().last_index();
  c.stop(2);
  c.start(2);
  CHECK(c[2].term() == hs.term);
  CHECK(c[2].vote() == hs.vote);
  CHECK(c[2].log().committed() == hs.commit);
  CHECK(c[2].log().last_index() == last);
  c.process(2);
  CHECK(payloads(c.applied(2)) == std::vector<std::string>{"x"});  // re-applied from index 1
}

TEST_CASE("a leader's new appends can leave while its previous batch is being persisted",
          "[raft][ready][dissertation-10.2.1]") {
  test_cluster c(3);
  c.elect(1);
  REQUIRE_FALSE(c[1].propose(raft::shared_bytes("a")).error);
  raft::ready first = c[1].get_ready();  // being persisted
  REQUIRE_FALSE(c[1].propose(raft::shared_bytes("b")).error);
  auto now = c[1].take_messages();
  REQUIRE(take(now, message_type::append).size() == 2);
  for (auto& m : now) {
    REQUIRE(m.entries.size() == 1);
    CHECK(m.entries[0].payload.to_string() == "b");
  }
  // Acknowledgements never come out of take_messages(): only leader traffic may skip the disk.
  message append = msg(message_type::append, 1, 2, c[1].term());
  append.index = c[2].log().last_index();
  append.log_term = c[2].log().last_term();
  REQUIRE_FALSE(c[2].step(append));
  CHECK(c[2].take_messages().empty());
  persist(c.storage(1), first);
  c[1].advance(first);
}
