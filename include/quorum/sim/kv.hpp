// A replicated key-value workload for the simulator: a small KV state machine, clients that
// write and read keys through the log with timeouts and leader hints, a fault planner, and
// run_kv(), which runs one seed through a safety phase (random faults) and a liveness phase
// (a majority healed) and checks everything. Single-threaded; one seed replays exactly.
#pragma once

#include <quorum/queue/state_machine.hpp>
#include <quorum/sim/checker.hpp>
#include <quorum/sim/cluster.hpp>
#include <quorum/sim/linearizability.hpp>
#include <quorum/sim/world.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace quorum::sim {

/** Commands "W <key> <value>" (answers "ok") and "R <key>" (answers the value, "0" if none). */
class kv_state_machine {
 public:
  std::string apply(const raft::entry& e);
  /** The whole state as "<key> <value>\n" lines, in key order. */
  raft::shared_bytes snapshot() const;
  /** Replaces the state with a snapshot's; false (state unchanged) if the bytes are malformed. */
  bool restore(const raft::shared_bytes& bytes);
  /** The value of key `key`, "0" if none (served by linearizable reads). */
  std::string query(const std::string& key) const;

 private:
  std::map<std::string, std::string, std::less<>> values_;
};

/** Fault classes a run may inject. */
enum class fault : std::uint32_t {
  drop = 1 << 0,       // messages lost
  duplicate = 1 << 1,  // messages delivered twice
  reorder = 1 << 2,    // widely varying delays
  clog = 1 << 3,       // links hold messages, then release them
  partition =
      1 << 4,  // halves, isolation, one-way links, partial (two nodes cut, both reach a third)
  swizzle = 1 << 5,      // clog nodes one by one, unclog in random order
  crash = 1 << 6,        // power loss (unsynced writes lost, torn tail), then restart
  pause = 1 << 7,        // process frozen, then resumed
  disk = 1 << 8,         // stalls, bit flips at rest, read errors, fsync errors
  skew = 1 << 9,         // nodes' clocks tick at slightly different rates
  transfer = 1 << 10,    // the leader hands leadership to a random voter
  read = 1 << 11,        // client reads use ReadIndex or leases, also on followers
  membership = 1 << 12,  // voters removed and demoted, learners added and promoted
  snapshot = 1 << 13,    // frequent snapshots and compaction; lagging nodes fed in small chunks
  quiesce = 1 << 14,     // idle groups quiesce; clients pause; hosts suspect leaders, also wrongly
};

/** A set of fault classes. */
class fault_set {
 public:
  constexpr fault_set() = default;
  static fault_set all();
  /** Parses "all", "none" or a comma-separated list of names; sets `error` on failure. */
  static std::optional<fault_set> parse(std::string_view text, std::string& error);
  bool has(fault f) const noexcept { return (bits_ & static_cast<std::uint32_t>(f)) != 0; }
  void add(fault f) noexcept { bits_ |= static_cast<std::uint32_t>(f); }
  std::string to_string() const;

 private:
  std::uint32_t bits_ = 0;
};

/** One simulation run. */
struct run_config {
  std::uint64_t seed = 0;
  std::size_t nodes = 3;
  fault_set faults = fault_set::all();
  /** Length of the safety phase (random faults), in ticks. */
  int ticks = 1000;
  /** The liveness phase must see every client succeed within this many election timeouts. */
  int liveness_timeouts = 40;
  std::size_t clients = 3;
  std::size_t keys = 8;
  /** Applied to every node's raft::options, e.g. to switch a test mutant on. */
  std::function<void(raft::options&)> adjust;
  /** The queue workload only: a deliberate bug in the queue state machine. */
  queue::queue_mutation queue_mutant = queue::queue_mutation::none;
  /** If set, receives the readable event trace (see cluster_options::log). */
  std::function<void(const std::string&)> log;
};

/** The verdict of one run. */
struct run_result {
  bool ok = false;
  std::string failure;
  std::uint64_t trace_hash = 0;
  std::size_t committed = 0;
  std::size_t acknowledged = 0;
  std::size_t operations = 0;
  std::uint64_t messages = 0;
  std::size_t faults_injected = 0;
  /** Ticks from the start of the liveness phase until every client had succeeded. */
  std::uint64_t recovery_ticks = 0;
  /** Times a node quiesced, and times a host suspected a quiesced node's leader. */
  std::uint64_t quiesces = 0;
  std::uint64_t suspicions = 0;
};

/**
 * A scriptable KV simulation: a cluster, clients and checkers on one event queue. Scenario
 * tests drive it by hand; run_kv() drives it with random faults.
 */
class kv_simulation {
 public:
  kv_simulation(std::uint64_t seed, cluster_options options, std::size_t clients, std::size_t keys);

  event_queue& events() noexcept { return events_; }
  rng& random() noexcept { return random_; }
  trace_hash& trace() noexcept { return trace_; }
  safety_checker& checker() noexcept { return checker_; }
  cluster<kv_state_machine>& nodes() noexcept { return cluster_; }
  network& net() noexcept { return cluster_.net(); }

  /** Client reads use read_index (on any node) instead of going through the log. */
  void use_read_index(bool on) { reads_by_index_ = on; }
  /** After a success, a client pauses with probability `chance` for a uniform time in
   *  [min, max] (so that groups go idle and quiesce). */
  void pause_clients(double chance, sim_time min, sim_time max) {
    pause_chance_ = chance;
    pause_min_ = min;
    pause_max_ = max;
  }

  /** Clients start issuing operations (one outstanding each). */
  void start_clients();
  /** Advances time by `n` ticks, stopping early on a safety violation. */
  void run_ticks(std::uint64_t n);
  /** Runs until `done` holds (checked once per tick) or `max_ticks` pass; returns whether it
   *  held. Stops early on a safety violation. */
  bool run_until(const std::function<bool()>& done, std::uint64_t max_ticks);

  /** Operations that succeeded, in all and per client since time `since`. */
  std::size_t succeeded() const noexcept { return succeeded_; }
  bool every_client_succeeded_since(sim_time since) const;
  /** Operations recorded for the linearizability check. */
  std::size_t history_size() const { return history_.size(); }

  /**
   * The safety verdict: checker violations, then linearizability of the client history, with
   * operations still in flight counted as possibly done. Ends the clients' work: call once, at
   * the end.
   */
  std::optional<std::string> verdict();

 private:
  struct client {
    std::uint64_t id = 0;
    raft::node_id target = 1;
    // Where the client is in its list of nodes: advanced on timeouts and refusals without a
    // hint. Hints are followed once and do not move it, so a stale hint cannot trap a client.
    raft::node_id cursor = 1;
    bool busy = false;
    std::uint64_t serial = 0;
    sim_time invoked = 0;
    std::string key;
    bool is_write = false;
    std::uint64_t value = 0;
    sim_time last_success = 0;
    bool succeeded_once = false;
  };
  void issue(client& c);
  void on_reply(client& c, std::uint64_t serial, const outcome& o);
  void on_timeout(client& c, std::uint64_t serial);
  void next_op(client& c, sim_time delay);
  raft::node_id next_node(raft::node_id after) const;
  void record_unknown_write(const client& c);

  event_queue events_;
  rng random_;
  trace_hash trace_;
  safety_checker checker_;
  cluster<kv_state_machine> cluster_;
  std::vector<client> clients_;
  std::size_t keys_;
  kv_history history_;
  std::uint64_t next_value_ = 0;
  std::size_t succeeded_ = 0;
  sim_time client_timeout_;
  bool reads_by_index_ = false;
  double pause_chance_ = 0;
  sim_time pause_min_ = 0;
  sim_time pause_max_ = 0;
  std::function<void(const std::string&)> log_;
};

/** Runs one seed: safety phase with the configured faults, then liveness; checks all. */
run_result run_kv(const run_config& config);

}  // namespace quorum::sim
