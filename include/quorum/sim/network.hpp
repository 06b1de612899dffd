// A simulated network between Raft nodes: per-link delays, drops, duplicates, reordering,
// clogged links that hold messages until released, and blocked links for partitions of every
// shape (halves, isolation, one-way, partial). Runs on the world's single thread.
#pragma once

#include <quorum/raft/message.hpp>
#include <quorum/sim/world.hpp>

#include <functional>
#include <map>
#include <set>
#include <utility>
#include <vector>

namespace quorum::sim {

/** Knobs of the network; change them at any time. */
struct network_faults {
  /** Probability that a message is lost. */
  double drop = 0;
  /** Probability that a message is delivered twice. */
  double duplicate = 0;
  /** Each delivery takes a uniform delay in [min_delay, max_delay] microticks; a wide range
   *  reorders messages. */
  sim_time min_delay = 5;
  sim_time max_delay = 30;
};

/** Directed links between nodes, with faults. */
class network {
 public:
  using link = std::pair<raft::node_id, raft::node_id>;

  /** `deliver` is called once per arriving message, from the event queue. */
  network(event_queue& events, rng& random, std::vector<raft::node_id> nodes,
          std::function<void(const raft::message&)> deliver);

  /** Sends `m` from m.from to m.to, subject to the faults in force. */
  void send(raft::message m);

  network_faults faults;

  /** Partitions: a blocked link loses every message on it, also those already in flight. */
  void block(raft::node_id from, raft::node_id to);
  void block_both(raft::node_id a, raft::node_id b);
  /** `id` can neither send to nor receive from anyone. */
  void isolate(raft::node_id id);
  /** Two sides that cannot hear each other. */
  void split(const std::vector<raft::node_id>& side);
  bool blocked(raft::node_id from, raft::node_id to) const { return blocked_.contains({from, to}); }
  bool clogged(raft::node_id from, raft::node_id to) const { return clogged_.contains({from, to}); }
  /** Unblocks every link (partitions end); clogs stay. */
  void unblock_all() { blocked_.clear(); }
  /** Unblocks every link, and releases every clog. */
  void heal();
  /** Unblocks and unclogs every link between members of `group`, leaving the rest as it is. */
  void heal_among(const std::vector<raft::node_id>& group);

  /** Gives the link from -> to its own delay range (a slow or distant link); clear_link_delay
   *  (or healing the link) returns it to `faults`. */
  void set_link_delay(raft::node_id from, raft::node_id to, sim_time min, sim_time max) {
    link_delay_[{from, to}] = {min, max};
  }
  void clear_link_delay(raft::node_id from, raft::node_id to) { link_delay_.erase({from, to}); }

  /** Clogs: messages on a clogged link are held, then delivered when it is unclogged. */
  void clog(raft::node_id from, raft::node_id to);
  void unclog(raft::node_id from, raft::node_id to);
  void clog_node(raft::node_id id);
  void unclog_node(raft::node_id id);

  const std::vector<raft::node_id>& nodes() const noexcept { return nodes_; }
  /** Messages sent so far. */
  std::uint64_t sent() const noexcept { return sent_; }

 private:
  void schedule(raft::message m);
  void arrive(raft::message m);

  event_queue* events_;
  rng* random_;
  std::vector<raft::node_id> nodes_;
  std::function<void(const raft::message&)> deliver_;
  std::set<link> blocked_;
  std::set<link> clogged_;
  std::map<link, std::vector<raft::message>> held_;
  std::map<link, std::pair<sim_time, sim_time>> link_delay_;
  std::uint64_t sent_ = 0;
};

}  // namespace quorum::sim
