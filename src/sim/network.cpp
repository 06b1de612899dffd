// The simulated network. Single-threaded, driven by the world's event queue.
#include <quorum/sim/network.hpp>

#include <algorithm>

namespace quorum::sim {

network::network(event_queue& events, rng& random, std::vector<raft::node_id> nodes,
                 std::function<void(const raft::message&)> deliver)
    : events_(&events), random_(&random), nodes_(std::move(nodes)), deliver_(std::move(deliver)) {
}

void network::send(raft::message m) {
  ++sent_;
  if (blocked(m.from, m.to) || random_->chance(faults.drop)) return;
  if (random_->chance(faults.duplicate)) schedule(m);
  schedule(std::move(m));
}

void network::schedule(raft::message m) {
  sim_time low = faults.min_delay;
  sim_time high = std::max(faults.min_delay, faults.max_delay);
  if (auto it = link_delay_.find({m.from, m.to}); it != link_delay_.end()) {
    low = it->second.first;
    high = std::max(low, it->second.second);
  }
  const sim_time delay = random_->between(low, high);
  events_->after(delay, [this, m = std::move(m)]() mutable { arrive(std::move(m)); });
}

void network::arrive(raft::message m) {
  const link l{m.from, m.to};
  if (blocked_.contains(l)) return;
  if (clogged_.contains(l)) {
    held_[l].push_back(std::move(m));
    return;
  }
  deliver_(m);
}

void network::block(raft::node_id from, raft::node_id to) {
  blocked_.insert({from, to});
}

void network::block_both(raft::node_id a, raft::node_id b) {
  block(a, b);
  block(b, a);
}

void network::isolate(raft::node_id id) {
  for (raft::node_id other : nodes_) {
    if (other != id) block_both(id, other);
  }
}

void network::split(const std::vector<raft::node_id>& side) {
  for (raft::node_id a : side) {
    for (raft::node_id b : nodes_) {
      if (std::find(side.begin(), side.end(), b) == side.end()) block_both(a, b);
    }
  }
}

void network::heal() {
  blocked_.clear();
  link_delay_.clear();
  for (auto l : std::set<link>(clogged_)) unclog(l.first, l.second);
}

void network::heal_among(const std::vector<raft::node_id>& group) {
  for (raft::node_id a : group) {
    for (raft::node_id b : group) {
      if (a == b) continue;
      blocked_.erase({a, b});
      link_delay_.erase({a, b});
      unclog(a, b);
    }
  }
}

void network::clog(raft::node_id from, raft::node_id to) {
  clogged_.insert({from, to});
}

void network::unclog(raft::node_id from, raft::node_id to) {
  const link l{from, to};
  clogged_.erase(l);
  auto it = held_.find(l);
  if (it == held_.end()) return;
  auto held = std::move(it->second);
  held_.erase(it);
  // Released messages arrive after fresh delays, so they may also be reordered.
  for (auto& m : held) schedule(std::move(m));
}

void network::clog_node(raft::node_id id) {
  for (raft::node_id other : nodes_) {
    if (other == id) continue;
    clog(id, other);
    clog(other, id);
  }
}

void network::unclog_node(raft::node_id id) {
  for (raft::node_id other : nodes_) {
    if (other == id) continue;
    unclog(id, other);
    unclog(other, id);
  }
}

}  // namespace quorum::sim
