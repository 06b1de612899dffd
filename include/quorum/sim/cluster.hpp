// The simulated cluster: Raft cores over simulated disks and a simulated network, each driven
// by a host loop that persists asynchronously (the core keeps stepping while a batch is being
// written), with crashes, restarts, pauses and clock skew. Runs any state machine; clients
// submit commands and learn their outcome. Single-threaded, on the world's event queue.
#pragma once

#include <quorum/raft/core.hpp>
#include <quorum/sim/checker.hpp>
#include <quorum/sim/disk.hpp>
#include <quorum/sim/network.hpp>
#include <quorum/sim/world.hpp>

#include <concepts>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace quorum::sim {

/**
 * What the simulator needs of a user's state machine: default-constructible (a restarted node
 * starts empty and applies the log again from its start), and `apply` of one committed,
 * non-empty entry returning the result a client sees.
 */
template <class T>
concept state_machine = std::default_initializable<T> && requires(T& sm, const raft::entry& e) {
  { sm.apply(e) } -> std::convertible_to<std::string>;
};

/**
 * A state machine whose state can be saved as bytes and restored from them: the cluster then
 * takes snapshots, compacts logs, and brings lagging nodes up with snapshots. `restore`
 * replaces the whole state and returns false if the bytes are not a valid snapshot.
 */
template <class T>
concept snapshottable = state_machine<T> &&
    requires(T& sm, const T& csm, const raft::shared_bytes& bytes) {
  { csm.snapshot() } -> std::same_as<raft::shared_bytes>;
  { sm.restore(bytes) } -> std::same_as<bool>;
};

/** A state machine that also answers read-only queries (served by linearizable reads). */
template <class T>
concept queryable = state_machine<T> && requires(const T& sm, const std::string& q) {
  { sm.query(q) } -> std::convertible_to<std::string>;
};

/** How a node is doing. */
enum class node_status : std::uint8_t {
  up,
  paused,  // frozen: no ticks, no deliveries, no disk completions until resumed
  down,    // crashed; restarts from its disk
  failed,  // its disk is damaged beyond the tail: it stays out until repaired
};

/** The outcome a client receives for a submitted command. */
struct outcome {
  enum kind : std::uint8_t {
    ok,       // committed and applied; `result` is the state machine's answer
    refused,  // not accepted (not leader, back-pressure); certainly not applied
    lost,     // accepted, then overwritten by another leader's entry; certainly not applied
  };
  kind status = refused;
  std::string result;
  raft::node_id leader_hint = raft::no_node;
  raft::index_t index = 0;
};

/** Settings of a simulated cluster. */
struct cluster_options {
  std::size_t nodes = 3;
  /** Applied to each node's raft::options (after id, seed and timing are set). */
  std::function<void(raft::options&)> adjust;
  int election_ticks = 10;
  int heartbeat_ticks = 2;
  /** Each node's tick lasts ticks * (1 +- skew), skew drawn once per node in [0, max). */
  double max_clock_skew = 0;
  /** A disk write plus sync takes a uniform time in this range (microticks). */
  sim_time min_disk_latency = 5;
  sim_time max_disk_latency = 60;
  /** A client request or reply takes a uniform time in this range (microticks). */
  sim_time min_client_latency = 5;
  sim_time max_client_latency = 30;
  disk_faults disk;
  /** With a snapshottable state machine: a node snapshots its state once it has applied this
   *  many entries past its last snapshot (0: never), then compacts its log up to the snapshot
   *  but a random number of trailing entries in [0, snapshot_trailing]. */
  raft::index_t snapshot_every = 0;
  raft::index_t snapshot_trailing = 0;
  /**
   * The hosts' failure detector, for cores with options.quiesce (whose quiesced followers stop
   * their election clocks): a node calls unquiesce() once its leader's node has been down,
   * paused or cut off (blocked or clogged either way) for this many of its ticks, and a few
   * ticks after the leader crashes (a reset connection). 0: no detector.
   */
  int suspect_after_ticks = 0;
  /** A follower that knows its leader forwards a client's command to it (core::forward)
   *  instead of refusing it; the client hears back once the follower applies the entry. A
   *  forward whose answer is lost leaves the client without an answer (it times out). */
  bool forward_proposals = false;
  /** Probability per tick that a quiesced node suspects its leader wrongly. */
  double false_suspicion = 0;
  /** If set, receives one line per event (deliveries, role changes, persists, applies,
   *  crashes): the readable trace of a replayed seed. */
  std::function<void(const std::string&)> log;
};

/** A cluster of `options.nodes` nodes with ids 1..N, running StateMachine. */
template <state_machine StateMachine>
class cluster {
 public:
  using reply_handler = std::function<void(const outcome&)>;

  /** All references must outlive the cluster. Nodes start up, as followers. */
  cluster(event_queue& events, rng& random, trace_hash& trace, safety_checker& checker,
          cluster_options options);

  network& net() noexcept { return network_; }
  const std::vector<raft::node_id>& ids() const noexcept { return ids_; }
  const cluster_options& options() const noexcept { return options_; }

  /** Power loss: the core and unsynced writes are gone; pending clients never hear back. */
  void crash(raft::node_id id);
  /** Restarts a crashed node from its disk; a damaged disk leaves it `failed`. */
  void restart(raft::node_id id);
  void pause(raft::node_id id);
  void resume(raft::node_id id);
  node_status status(raft::node_id id) const { return node_at(id).status; }
  /** Multiplies the node's disk latency by `factor` (1 = normal): a stalling disk. */
  void slow_disk(raft::node_id id, std::uint64_t factor) { node_at(id).disk_slowdown = factor; }
  disk& disk_of(raft::node_id id) { return node_at(id).storage; }

  /** Sends `command` to node `to`; `done` is called once if the node answers (never if it
   *  crashes or the request is lost). */
  void submit(raft::node_id to, raft::shared_bytes command, reply_handler done);

  /**
   * Sends a read-only `query` to node `to`, served through a linearizable read (ReadIndex or
   * lease, forwarded to the leader from a follower): `done` receives the state machine's
   * answer once the node has applied up to the confirmed index, or `refused`.
   */
  void submit_read(raft::node_id to, std::string query,
                   reply_handler done) requires queryable<StateMachine>;

  /** Asks node `from`, if it leads, to hand leadership to `to`. */
  void transfer(raft::node_id from, raft::node_id to);

  /** Asks node `leader`, if it leads, to change the membership to `target`. */
  void change_membership(raft::node_id leader, const raft::membership& target);

  /** The node's core, or nullptr while it is not running. */
  const raft::core<disk>* core_of(raft::node_id id) const { return node_at(id).raft.get(); }
  /** The node's state machine, or nullptr while it is not running. */
  const StateMachine* machine_of(raft::node_id id) const {
    return node_at(id).raft ? &node_at(id).machine : nullptr;
  }
  /** A running leader of the highest term, or no_node. */
  raft::node_id leader() const;
  /** Called whenever a node becomes leader (once per node and term), after the checks. */
  void on_new_leader(std::function<void(raft::node_id, raft::term_t)> observer) {
    leader_observer_ = std::move(observer);
  }
  /** How many times a node entered the quiesced state (observed after each event). */
  std::uint64_t quiesce_count() const noexcept { return quiesces_; }
  /** How many times a host suspected its quiesced node's leader (rightly or not). */
  std::uint64_t suspicion_count() const noexcept { return suspicions_; }

  /** How many entries the node has applied since it last started. */
  raft::index_t applied_index(raft::node_id id) const { return node_at(id).applied; }

 private:
  struct proposal {
    raft::term_t term;
    reply_handler done;
  };
  struct pending_read {
    std::string query;
    reply_handler done;
    raft::index_t index = 0;
    bool confirmed = false;
  };
  struct node {
    explicit node(raft::membership members) : storage(std::move(members)) {}
    raft::node_id id = raft::no_node;
    disk storage;
    std::unique_ptr<raft::core<disk>> raft;
    StateMachine machine;
    node_status status = node_status::up;
    std::uint64_t generation = 0;
    sim_time tick_length = ticks;
    std::uint64_t disk_slowdown = 1;
    std::uint64_t missed_ticks = 0;
    std::optional<raft::ready> persisting;
    std::map<raft::index_t, proposal> proposals;
    std::map<std::uint64_t, reply_handler> forwards;  // forwarded commands awaiting the leader
    std::uint64_t next_forward = 0;
    std::map<std::uint64_t, pending_read> reads;
    std::uint64_t next_read = 0;
    std::vector<raft::message> held;
    raft::index_t applied = 0;
    raft::term_t observed_leader_term = 0;
    bool was_quiesced = false;
    int leader_silent_ticks = 0;
  };

  node& node_at(raft::node_id id) { return *nodes_.at(id - 1); }
  const node& node_at(raft::node_id id) const { return *nodes_.at(id - 1); }
  void boot(node& n);
  void schedule_tick(node& n);
  void detect_failures(node& n);
  void suspect(node& n, const char* why);
  void deliver(const raft::message& m);
  void pump(node& n);
  void finish_persist(node& n);
  void apply(node& n, const raft::entry& e);
  void restore(node& n, const raft::snapshot_meta& meta);
  void maybe_snapshot(node& n);
  void observe(node& n);
  void on_read_states(node& n, const std::vector<raft::read_state>& states);
  void on_proposal_states(node& n, const std::vector<raft::proposal_state>& states);
  void serve_reads(node& n);
  void reply(reply_handler done, outcome result);
  template <class... Args>
  void log(const char* format, Args... args);
  /** Runs `action` on a running node; a disk failure inside stops the node. */
  template <class Action>
  void guarded(node& n, Action&& action);

  event_queue* events_;
  rng* random_;
  trace_hash* trace_;
  safety_checker* checker_;
  cluster_options options_;
  std::vector<raft::node_id> ids_;
  std::vector<std::unique_ptr<node>> nodes_;
  network network_;
  std::function<void(raft::node_id, raft::term_t)> leader_observer_;
  std::uint64_t quiesces_ = 0;
  std::uint64_t suspicions_ = 0;
};

}  // namespace quorum::sim

#include <quorum/sim/impl/cluster.hpp>
