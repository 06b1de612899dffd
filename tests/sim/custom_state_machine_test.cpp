// The example from docs/simulator.md: a user's own state machine (a counter) run in the
// simulator with faults, its own client, and the safety checker watching every event.
#include <quorum/sim/cluster.hpp>

#include <catch2/catch.hpp>

#include <string>

namespace {

// The user's state machine: adds the number in each command to a running total.
struct counter {
  long total = 0;
  std::string apply(const quorum::raft::entry& e) {
    total += std::stol(e.payload.to_string());
    return std::to_string(total);
  }
};

}  // namespace

TEST_CASE("a user's own state machine runs in the simulator under faults", "[sim][guide]") {
  using namespace quorum::sim;
  const std::uint64_t seed = 2026;
  INFO("seed " << seed);

  event_queue events;
  rng random(seed);
  trace_hash trace;
  safety_checker checker;
  cluster_options options;
  options.nodes = 5;
  options.disk.torn_write = 0.5;
  cluster<counter> nodes(events, random, trace, checker, options);
  nodes.net().faults.drop = 0.05;

  // A client that adds 1 through whichever node it believes leads, following hints.
  long acknowledged = 0;
  quorum::raft::node_id target = 1;
  std::function<void()> add_one = [&] {
    nodes.submit(target, quorum::raft::shared_bytes("1"), [&](const outcome& o) {
      if (o.status == outcome::ok) ++acknowledged;
      if (o.status == outcome::refused) {
        target = o.leader_hint != quorum::raft::no_node ? o.leader_hint : target % 5 + 1;
      }
    });
    events.after(2 * ticks, add_one);
  };
  events.after(0, add_one);

  // Crash the leader every 200 ticks, restart it 50 ticks later.
  for (sim_time at = 200; at <= 1000; at += 200) {
    events.after(at * ticks, [&] {
      const auto leader = nodes.leader();
      if (leader == quorum::raft::no_node) return;
      nodes.crash(leader);
      events.after(50 * ticks, [&, leader] { nodes.restart(leader); });
    });
  }

  events.run_until(1200 * ticks);
  INFO(checker.violation());
  REQUIRE(checker.ok());
  CHECK(acknowledged > 100);
  CHECK(checker.acknowledged_count() == static_cast<std::size_t>(acknowledged));
}
