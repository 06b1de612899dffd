// Tests of the simulator's parts on their own: the network's links and faults, the disk's
// crash and damage semantics, and the linearizability checker. Deterministic, one thread.
#include <quorum/sim/disk.hpp>
#include <quorum/sim/linearizability.hpp>
#include <quorum/sim/network.hpp>

#include <quorum/error.hpp>

#include "../support/storage.hpp"

#include <catch2/catch.hpp>

using namespace quorum;
using namespace quorum::sim;

namespace {

raft::message msg(raft::node_id from, raft::node_id to, raft::index_t index = 0) {
  raft::message m;
  m.type = raft::message_type::heartbeat;
  m.from = from;
  m.to = to;
  m.index = index;
  return m;
}

struct net_fixture {
  event_queue events;
  rng random{7};
  std::vector<std::pair<sim_time, raft::message>> arrived;
  network net{events, random, {1, 2, 3}, [this](const raft::message& m) {
                arrived.emplace_back(events.now(), m);
              }};
};

std::vector<raft::entry> entries(raft::index_t first, int count) {
  std::vector<raft::entry> out;
  for (int i = 0; i < count; ++i) {
    out.push_back({1, first + static_cast<raft::index_t>(i), raft::shared_bytes("payload")});
  }
  return out;
}

}  // namespace

TEST_CASE("a one-way block loses messages in one direction only", "[sim][network]") {
  net_fixture f;
  f.net.block(1, 2);
  f.net.send(msg(1, 2));
  f.net.send(msg(2, 1));
  f.events.run_until(1000);
  REQUIRE(f.arrived.size() == 1);
  CHECK(f.arrived[0].second.from == 2);
}

TEST_CASE("a clogged link holds its messages and releases them when unclogged", "[sim][network]") {
  net_fixture f;
  f.net.clog(1, 2);
  for (raft::index_t i = 0; i < 5; ++i) f.net.send(msg(1, 2, i));
  f.events.run_until(10'000);
  CHECK(f.arrived.empty());
  f.net.unclog(1, 2);
  f.events.run_until(20'000);
  CHECK(f.arrived.size() == 5);
}

TEST_CASE("a link with its own delay range delivers within it", "[sim][network]") {
  net_fixture f;
  f.net.set_link_delay(1, 2, 500, 600);
  for (int i = 0; i < 20; ++i) f.net.send(msg(1, 2));
  f.net.send(msg(1, 3));
  f.events.run_until(10'000);
  REQUIRE(f.arrived.size() == 21);
  for (const auto& [at, m] : f.arrived) {
    if (m.to == 2) {
      CHECK(at >= 500);
      CHECK(at <= 600);
    } else {
      CHECK(at <= f.net.faults.max_delay);
    }
  }
}

TEST_CASE("a partial partition cuts two nodes apart while both reach the third", "[sim][network]") {
  net_fixture f;
  f.net.block_both(1, 2);
  for (raft::node_id from : {1, 2, 3}) {
    for (raft::node_id to : {1, 2, 3}) {
      if (from != to) f.net.send(msg(from, to));
    }
  }
  f.events.run_until(1000);
  CHECK(f.arrived.size() == 4);  // 1<->3 and 2<->3
}

TEST_CASE("a crash loses unsynced writes and keeps synced ones", "[sim][disk]") {
  rng random(3);
  disk d({{1}});
  d.arm(random, {});
  d.append(entries(1, 3));
  REQUIRE_FALSE(d.sync());
  d.append(entries(4, 3));
  CHECK(d.last_index() == 6);
  d.crash();
  REQUIRE_FALSE(d.recover());
  CHECK(d.last_index() >= 3);  // a prefix of the unsynced writes may survive
  CHECK(d.last_index() <= 6);
}

TEST_CASE("snapshot chunks are durable once synced, an install at once", "[sim][disk][paper-7]") {
  disk d({{1}});  // unarmed: a crash keeps none of the unsynced writes
  d.append(entries(1, 3));
  const raft::snapshot_meta meta{5, 2, {{1, 2}}};
  const std::string image = test::image_of("abcd");
  d.write_snapshot_chunk({meta, 0, raft::shared_bytes(image.substr(0, 2)), false});
  REQUIRE_FALSE(d.sync());
  d.write_snapshot_chunk({meta, 2, raft::shared_bytes(image.substr(2)), true});
  CHECK(d.initial_state().receiving.bytes == image.size());
  d.crash();
  REQUIRE_FALSE(d.recover());
  CHECK(d.initial_state().receiving == raft::snapshot_receipt{5, 2, 2});  // resume from 2
  d.write_snapshot_chunk({meta, 2, raft::shared_bytes(image.substr(2)), true});
  d.install_snapshot(meta);
  CHECK(d.first_index() == 6);
  d.crash();  // the snapshot file was renamed into place and synced: the install holds
  REQUIRE_FALSE(d.recover());
  CHECK(d.snapshot() == meta);
  CHECK(d.snapshot_data().to_string() == "abcd");
  CHECK(d.first_index() == 6);
  CHECK(d.last_index() == 5);
  CHECK(d.initial_state().members == meta.members);
  std::error_code ec;
  CHECK(d.term(5, ec) == 2);
}

TEST_CASE("compaction keeps the snapshot's membership and refuses reads before it",
          "[sim][disk][paper-7]") {
  disk d({{1}});
  d.append(entries(1, 6));
  CHECK(d.compact(3) == errc::unavailable);  // no snapshot covers it
  REQUIRE_FALSE(d.create_snapshot({4, 1, {{1, 2}}}, raft::shared_bytes("state")));
  REQUIRE_FALSE(d.compact(3));
  REQUIRE_FALSE(d.sync());
  d.crash();
  REQUIRE_FALSE(d.recover());
  CHECK(d.first_index() == 4);
  CHECK(d.initial_state().members == raft::membership{{1, 2}});
  std::error_code ec;
  d.entries(3, 5, 1 << 20, ec);
  CHECK(ec == errc::compacted);
  CHECK(d.entries(4, 7, 1 << 20, ec).size() == 3);
  const raft::snapshot_piece piece = d.read_snapshot(4, 8 + 1, 3, ec);  // past the size
  CHECK(piece.data.to_string() == "tat");
  CHECK_FALSE(piece.last);
}

TEST_CASE("a torn tail is cut off on recovery but damage before it is never returned",
          "[sim][disk]") {
  bool partial_seen = false;
  for (std::uint64_t seed = 0; seed < 40; ++seed) {
    INFO("seed " << seed);
    rng random(seed);
    disk d({{1}});
    d.arm(random, {0, 0, 1.0});  // every surviving last write is torn
    d.append(entries(1, 2));
    REQUIRE_FALSE(d.sync());
    for (raft::index_t i = 3; i <= 8; ++i) d.append(entries(i, 1));
    d.crash();
    REQUIRE_FALSE(d.recover());
    CHECK(d.last_index() >= 2);
    CHECK(d.last_index() <= 8);
    if (d.last_index() > 2 && d.last_index() < 8) partial_seen = true;
    std::error_code ec;
    CHECK(d.entries(1, d.last_index() + 1, 1 << 20, ec).size() == d.last_index());  // intact
  }
  CHECK(partial_seen);

  rng random(1);
  disk d({{1}});
  d.arm(random, {});
  for (raft::index_t i = 1; i <= 200; i += 5) d.append(entries(i, 5));
  REQUIRE_FALSE(d.sync());
  REQUIRE(d.flip_bit());
  d.crash();
  // A sealed segment is replayed from its index, so the damage is found when its record is
  // read (or at open, without an index); damaged data is never returned.
  const std::error_code opened = d.recover();
  if (opened) {
    CHECK(opened == errc::corruption);
  } else {
    std::error_code ec;
    try {
      const auto got = d.entries(1, 201, 1 << 20, ec);
      REQUIRE(got.size() == 200);
      const auto want = entries(1, 200);
      for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == want[i]);
    } catch (const disk_failure& e) {
      CHECK(e.code() == errc::corruption);
    }
  }
}

TEST_CASE("a flipped bit is reported when read, never returned", "[sim][disk]") {
  rng random(2);
  disk d({{1}});
  d.arm(random, {});
  for (raft::index_t i = 1; i <= 200; i += 5) d.append(entries(i, 5));
  REQUIRE_FALSE(d.sync());
  REQUIRE(d.flip_bit());
  std::error_code ec;
  CHECK_THROWS_AS(d.entries(1, 201, 1 << 20, ec), disk_failure);
}

TEST_CASE("an fsync error is reported and nothing becomes durable", "[sim][disk]") {
  rng random(4);
  disk d({{1}});
  d.arm(random, {0, 1.0, 0});
  d.append(entries(1, 3));
  CHECK(d.sync() == errc::io_error);
  CHECK(d.durable_last_index() == 0);
}

TEST_CASE("the register checker accepts linearizable and refuses stale histories",
          "[sim][linearizability]") {
  // write 1 [0,10], read 1 [20,30]: fine.
  CHECK_FALSE(check_register({{0, 10, true, 1}, {20, 30, false, 1}}));
  // write 1 [0,10], write 2 [20,30], read 1 [40,50]: stale.
  CHECK(check_register({{0, 10, true, 1}, {20, 30, true, 2}, {40, 50, false, 1}}));
  // Concurrent write 2 [20,60] and read 1 [40,50]: the read may come first.
  CHECK_FALSE(check_register({{0, 10, true, 1}, {20, 60, true, 2}, {40, 50, false, 1}}));
  // A write whose outcome is unknown may take effect at any time after it began ...
  CHECK_FALSE(
      check_register({{0, 10, true, 1}, {20, register_op::never, true, 2}, {40, 50, false, 2}}));
  // ... but not before it began.
  CHECK(check_register({{0, 10, true, 1}, {60, register_op::never, true, 2}, {40, 50, false, 2}}));
}

TEST_CASE("writes of unknown outcome that nobody read do not slow the register check",
          "[sim][linearizability]") {
  std::vector<register_op> history;
  for (std::uint64_t i = 1; i <= 200; ++i) {
    history.push_back({i * 10, register_op::never, true, 1000 + i});  // timed out, never read
  }
  history.push_back({5, 8, true, 1});
  history.push_back({3000, 3010, false, 1});
  history.push_back({3020, 3030, true, 2});
  history.push_back({3040, 3050, false, 2});
  // A bound of a few thousand steps: the unread unknown writes must not enter the search.
  CHECK_FALSE(check_register(history, 5000));
  history.push_back({3060, 3070, false, 1050});  // now one of them was observed, after 2
  CHECK_FALSE(check_register(history, 20000));
  history.push_back({3080, 3090, false, 2});  // and 2 again after it: not linearizable
  CHECK(check_register(history, 20000));
}
