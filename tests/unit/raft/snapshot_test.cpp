// Rule-named tests of snapshots and log compaction (paper 7, dissertation 5): a follower behind
// the compacted log gets the snapshot in chunks, resumably, acknowledges receipt before it
// restores, is never sent a second one meanwhile, and adopts the membership it records.
#include <quorum/raft/core.hpp>
#include <quorum/raft/log.hpp>

#include "../../support/entries.hpp"
#include "../../support/test_cluster.hpp"

#include <catch2/catch.hpp>

#include <algorithm>

using namespace quorum;
using namespace quorum::test;
using raft::membership;
using raft::progress_state;
using raft::shared_bytes;

namespace {

/** Options with small snapshot chunks and a small window, so a transfer takes many messages. */
test_cluster::tweak small_chunks(std::uint64_t chunk, std::size_t window) {
  return [=](raft::options& o) {
    o.snapshot_chunk_bytes = chunk;
    o.max_inflight_messages = window;
  };
}

/** Elects node 1 with node 3 cut off, commits `count` writes, and snapshots node 1. */
raft::snapshot_meta lag_node_3(test_cluster& c, int count, index_t trailing = 0) {
  c.elect(1);
  c.isolate(3);
  for (int i = 0; i < count; ++i) {
    REQUIRE_FALSE(c[1].propose(shared_bytes("v" + std::to_string(i))).error);
  }
  c.deliver_all();
  return c.take_snapshot(1, trailing);
}

bool is_snapshot_to(const message& m, node_id to) {
  return m.type == message_type::snapshot && m.to == to;
}

}  // namespace

TEST_CASE("a follower behind the compacted log gets the snapshot in chunks and catches up",
          "[raft][paper-7]") {
  test_cluster c(3, small_chunks(4, 2));
  const raft::snapshot_meta meta = lag_node_3(c, 5);  // "v0\n".."v4\n": 15 bytes
  CHECK(c.storage(1).first_index() == meta.index + 1);
  c.heal();
  std::vector<message> chunks;
  c.tick(1);
  c.deliver_all([&](const message& m) {
    if (is_snapshot_to(m, 3)) chunks.push_back(m);
    return true;
  });
  REQUIRE(chunks.size() == 4);  // 4 + 4 + 4 + 3 bytes
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    CHECK(chunks[i].context == 4 * i);
    CHECK(chunks[i].last == (i == 3));
  }
  CHECK(c.restored(3) == 1);
  CHECK(payloads(c.applied(3)) == payloads(c.applied(1)));
  CHECK(c[3].log().first_index() == meta.index + 1);
  CHECK(c[1].progress_of(3)->state() == progress_state::replicate);
  // Replication continues with appends after the snapshot.
  REQUIRE_FALSE(c[1].propose(shared_bytes("after")).error);
  c.deliver_all();
  CHECK(payloads(c.applied(3)).back() == "after");
  CHECK(c.restored(3) == 1);
}

TEST_CASE("a snapshot stream resumes from the last acknowledged chunk after a loss",
          "[raft][paper-7]") {
  test_cluster c(3, small_chunks(4, 2));
  lag_node_3(c, 5);
  c.heal();
  std::vector<std::uint64_t> offsets;
  bool dropped = false;
  c.tick(1);
  c.deliver_all([&](const message& m) {
    if (!is_snapshot_to(m, 3)) return true;
    if (m.context == 4 && !dropped) {
      dropped = true;  // the second chunk is lost once
      return false;
    }
    offsets.push_back(m.context);
    return true;
  });
  for (int i = 0; i < 5 && c.restored(3) == 0; ++i) {
    c.tick(1);
    c.deliver_all([&](const message& m) {
      if (is_snapshot_to(m, 3)) offsets.push_back(m.context);
      return true;
    });
  }
  REQUIRE(dropped);
  CHECK(c.restored(3) == 1);
  CHECK(payloads(c.applied(3)) == payloads(c.applied(1)));
  // The first chunk was acknowledged and never sent again.
  CHECK(std::count(offsets.begin(), offsets.end(), 0) == 1);
}

TEST_CASE("a follower restarted during an install resumes from the chunks it made durable",
          "[raft][paper-7][restart]") {
  test_cluster c(3, small_chunks(4, 1));
  lag_node_3(c, 5);
  c.heal();
  c.tick(1);
  // Two chunks arrive and are persisted; then node 3 stops.
  c.deliver_all([&](const message& m) { return !is_snapshot_to(m, 3) || m.context < 8; });
  c.stop(3);
  c.start(3);
  CHECK(c.storage(3).initial_state().receiving.bytes == 8);
  std::vector<std::uint64_t> offsets;
  for (int i = 0; i < 10 && c.restored(3) == 0; ++i) {
    c.tick(1);
    c.deliver_all([&](const message& m) {
      if (is_snapshot_to(m, 3)) offsets.push_back(m.context);
      return true;
    });
  }
  CHECK(c.restored(3) == 1);
  CHECK(payloads(c.applied(3)) == payloads(c.applied(1)));
  REQUIRE_FALSE(offsets.empty());
  CHECK(*std::min_element(offsets.begin(), offsets.end()) == 8);
}

TEST_CASE("receipt is acknowledged before the state machine is restored",
          "[raft][paper-7][ready]") {
  test_cluster c(3, small_chunks(1 << 20, 8));
  const raft::snapshot_meta meta = lag_node_3(c, 3);
  c.heal();
  c.tick(1);
  std::vector<message> held;
  c.deliver_all([&](const message& m) {
    if (is_snapshot_to(m, 3)) held.push_back(m);
    return !is_snapshot_to(m, 3);
  });
  REQUIRE(held.size() == 1);
  REQUIRE(held[0].last);
  // Node 3 takes the whole snapshot in one chunk; the host persists the batch but has not
  // restored the state machine (a slow restore).
  REQUIRE_FALSE(c[3].step(held[0]));
  raft::ready rd = c[3].get_ready();
  REQUIRE(rd.snapshot);
  CHECK(rd.snapshot->index == meta.index);
  CHECK(rd.snapshot->members == meta.members);
  CHECK(rd.committed_entries.empty());  // nothing applies before the restore
  persist(c.storage(3), rd);
  auto ack = std::find_if(rd.persisted_messages.begin(), rd.persisted_messages.end(),
                          [](const message& m) { return m.type == message_type::append_response; });
  REQUIRE(ack != rd.persisted_messages.end());
  CHECK(ack->index == meta.index);
  // The leader moves on at once: it replicates new entries, never resending the snapshot.
  REQUIRE_FALSE(c[1].step(*ack));
  CHECK(c[1].progress_of(3)->state() == progress_state::replicate);
  CHECK(c[1].progress_of(3)->match() == meta.index);
  REQUIRE_FALSE(c[1].propose(shared_bytes("during restore")).error);
  for (const message& m : c[1].take_messages()) {
    CHECK(m.type != message_type::snapshot);
    if (m.to == 3) REQUIRE_FALSE(c[3].step(m));
  }
  c[3].advance(rd);  // the restore finished
  CHECK(c[3].log().applied() == meta.index);
  c.deliver_all();
  CHECK(payloads(c.applied(3)).back() == "during restore");
}

TEST_CASE("a follower receiving a snapshot is not sent a second one", "[raft][paper-7]") {
  test_cluster c(3, small_chunks(4, 1));
  const raft::snapshot_meta first = lag_node_3(c, 5);
  c.heal();
  c.tick(1);
  // One chunk reaches node 3; meanwhile the leader commits more and snapshots again (keeping
  // its log from the first snapshot on).
  c.deliver_all([&](const message& m) { return !is_snapshot_to(m, 3) || m.context == 0; });
  c.isolate(3);
  for (int i = 0; i < 3; ++i) REQUIRE_FALSE(c[1].propose(shared_bytes("w")).error);
  c.deliver_all();
  const index_t applied = c[1].applied_meta().index;
  REQUIRE(applied > first.index);
  c.take_snapshot(1, applied - first.index);
  c.heal();
  std::vector<message> sent;
  for (int i = 0; i < 10 && c.restored(3) == 0; ++i) {
    c.tick(1);
    c.deliver_all([&](const message& m) {
      if (is_snapshot_to(m, 3)) sent.push_back(m);
      return true;
    });
  }
  CHECK(c.restored(3) == 1);
  REQUIRE_FALSE(sent.empty());
  for (const message& m : sent) {
    CHECK(m.index == first.index);  // the stream in progress, not the newer snapshot
    CHECK(m.context != 0);          // and never restarted
  }
  c.deliver_all();
  CHECK(payloads(c.applied(3)) == payloads(c.applied(1)));
}

TEST_CASE("a snapshot records the membership, and the node that installs it adopts it",
          "[raft][paper-7][dissertation-5.2]") {
  member_cluster c(4, membership{{1, 2, 3}}, small_chunks(16, 4));
  c.elect(1);
  c.isolate(4);
  REQUIRE_FALSE(c[1].change_membership({{1, 2, 3}, {}, {4}}));  // node 4 joins as a learner
  settle(c, 1, [&] { return !c[1].membership_change_in_flight(); });
  REQUIRE_FALSE(c[1].propose(shared_bytes("x")).error);
  c.deliver_all();
  const raft::snapshot_meta meta = c.take_snapshot(1);
  CHECK(meta.members.is_learner(4));
  CHECK_FALSE(c[4].members().is_learner(4));  // node 4 never saw the configuration entry
  c.heal();
  settle(c, 1, [&] { return c.restored(4) == 1; });
  REQUIRE(c.restored(4) == 1);
  CHECK(c[4].members() == c[1].members());
  CHECK(c.storage(4).initial_state().members == meta.members);
}

TEST_CASE("a node restarts from its snapshot and the log after it", "[raft][paper-7][restart]") {
  test_cluster c(3);
  c.elect(1);
  for (int i = 0; i < 4; ++i)
    REQUIRE_FALSE(c[1].propose(shared_bytes("s" + std::to_string(i))).error);
  c.deliver_all();
  const raft::snapshot_meta meta = c.take_snapshot(1, 2);  // keeps two entries before it
  REQUIRE_FALSE(c[1].propose(shared_bytes("tail")).error);
  c.deliver_all();
  const auto before = payloads(c.applied(1));
  c.stop(1);
  c.start(1);
  CHECK(c[1].log().applied() == meta.index);
  CHECK(c[1].log().first_index() == meta.index - 1);
  CHECK(c[1].members() == meta.members);
  c.process(1);  // applies the log after the snapshot
  CHECK(payloads(c.applied(1)) == before);
}

TEST_CASE("a snapshot of entries the follower already committed is acknowledged, not installed",
          "[raft][paper-7]") {
  test_cluster c(3);
  c.elect(1);
  REQUIRE_FALSE(c[1].propose(shared_bytes("a")).error);
  c.deliver_all();
  c.tick(1);
  c.deliver_all();
  const index_t committed = c[2].log().committed();
  REQUIRE(committed >= 2);
  message m;
  m.type = message_type::snapshot;
  m.from = 1;
  m.to = 2;
  m.term = c[1].term();
  m.index = committed;
  m.log_term = c[1].term();
  m.members = {{1, 2, 3}};
  m.data = shared_bytes("stale");
  m.last = true;
  REQUIRE_FALSE(c[2].step(m));
  raft::ready rd = c[2].get_ready();
  CHECK_FALSE(rd.snapshot);
  CHECK(rd.snapshot_chunks.empty());
  REQUIRE(rd.persisted_messages.size() == 1);
  CHECK(rd.persisted_messages[0].type == message_type::append_response);
  CHECK(rd.persisted_messages[0].index == committed);
  c[2].advance(rd);
}

/** A snapshot chunk from leader 1 to node 2 of the snapshot at `index` (leader's term). */
message chunk_to_2(test_cluster& c, index_t index) {
  message m;
  m.type = message_type::snapshot;
  m.from = 1;
  m.to = 2;
  m.term = c[1].term();
  m.index = index;
  m.log_term = c[1].term();
  m.members = {{1, 2, 3}};
  return m;
}

TEST_CASE("a chunk of another snapshot waits while a completed one is not yet installed",
          "[raft][paper-7]") {
  test_cluster c(3);
  c.elect(1);
  message m = chunk_to_2(c, 20);
  m.data = shared_bytes("whole");
  m.last = true;
  c.process(2);
  REQUIRE_FALSE(c[2].step(m));  // completes snapshot 20
  message next = m;
  next.index = 30;
  next.last = false;  // the first chunk of a newer one, in the same batch
  REQUIRE_FALSE(c[2].step(next));
  raft::ready rd = c[2].get_ready();
  REQUIRE(rd.snapshot);
  CHECK(rd.snapshot->index == 20);
  REQUIRE(rd.snapshot_chunks.size() == 1);  // the storage never sees 30's chunk before it
  CHECK(rd.snapshot_chunks[0].meta.index == 20);
  persist(c.storage(2), rd);
  c[2].advance(rd);
  REQUIRE_FALSE(c[2].step(next));  // sent again: taken now
  rd = c[2].get_ready();
  REQUIRE(rd.snapshot_chunks.size() == 1);
  CHECK(rd.snapshot_chunks[0].meta.index == 30);
  c[2].advance(rd);
}

TEST_CASE("malformed snapshot messages are refused and change nothing", "[raft][input]") {
  test_cluster c(3);
  c.elect(1);
  message m = chunk_to_2(c, 5);
  auto refused = [&](message bad) { return c[2].step(bad) == errc::malformed_message; };
  message no_index = m;
  no_index.index = 0;
  CHECK(refused(no_index));
  message future_term = m;
  future_term.log_term = m.term + 1;
  CHECK(refused(future_term));
  message no_voters = m;
  no_voters.members = {};
  CHECK(refused(no_voters));
  message data_on_append;
  data_on_append.type = message_type::append;
  data_on_append.from = 1;
  data_on_append.to = 2;
  data_on_append.term = m.term;
  data_on_append.data = shared_bytes("x");
  CHECK(refused(data_on_append));
  CHECK_FALSE(c[2].has_ready());
}

TEST_CASE("restoring a snapshot keeps the log after it only if the entry there matches",
          "[raft][log][paper-7]") {
  SECTION("matching entry: the suffix stays") {
    raft::memory_storage s({{1}});
    s.append(make_entries(1, {1, 1, 2, 2}));
    raft::raft_log log(s);
    log.restore(3, 2);
    CHECK(log.first_index() == 4);
    CHECK(log.last_index() == 4);
    CHECK(log.committed() == 3);
    CHECK_FALSE(log.has_next_committed());  // nothing applies before the restore
    s.write_snapshot_chunk({{3, 2, {{1}}}, 0, shared_bytes("state"), true});
    s.install_snapshot({3, 2, {{1}}});
    log.snapshot_installed(3);
    CHECK(log.applied() == 3);
    CHECK(s.first_index() == 4);
    CHECK(s.last_index() == 4);
    CHECK(s.snapshot_data().to_string() == "state");
  }
  SECTION("conflicting entry: the whole log goes") {
    raft::memory_storage s({{1}});
    s.append(make_entries(1, {1, 1, 1, 1}));
    raft::raft_log log(s);
    log.restore(3, 2);
    CHECK(log.last_index() == 3);
    CHECK(log.last_term() == 2);
    s.write_snapshot_chunk({{3, 2, {{1}}}, 0, shared_bytes("state"), true});
    s.install_snapshot({3, 2, {{1}}});
    CHECK(s.first_index() == 4);
    CHECK(s.last_index() == 3);
  }
}
