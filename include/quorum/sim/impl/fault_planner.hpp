// The fault planner of the randomized runs, shared by the workloads (kv, queue): during the
// safety phase it injects random faults of the enabled classes; heal_majority() then ends
// them for the liveness phase. `Simulation` gives nodes() (a sim::cluster), events(), net()
// and random(). Included by the workloads' sources only.
#pragma once

#include <quorum/sim/cluster.hpp>
#include <quorum/sim/kv.hpp>

#include <algorithm>
#include <string>
#include <vector>

namespace quorum::sim::detail {

/** Injects random faults during the safety phase; heals a majority for the liveness phase. */
template <class Simulation>
class fault_planner {
 public:
  fault_planner(Simulation& sim, const run_config& config)
      : sim_(sim), config_(config), random_(sim.random().fork()) {
    for (fault f : {fault::clog, fault::partition, fault::swizzle, fault::crash, fault::pause,
                    fault::disk, fault::transfer, fault::membership, fault::reorder}) {
      if (config.faults.has(f)) actions_.push_back(f);
    }
    for (fault f : {fault::partition, fault::crash, fault::pause}) {
      if (config.faults.has(f)) leader_actions_.push_back(f);
    }
    const std::size_t n = sim.nodes().ids().size();
    // Damage at rest is permanent: keep it to a minority of the voters, which membership
    // changes may shrink to three.
    const std::size_t fewest_voters =
        config.faults.has(fault::membership) ? std::min<std::size_t>(3, n) : n;
    max_damaged_ = (fewest_voters - 1) / 2;
    strike_new_leader_ = static_cast<double>(random_.between(0, 30)) / 100;
  }

  void start() {
    if (actions_.empty()) return;
    schedule_next();
    // Nemeses aimed at leaders find what random ones rarely do: a leader that fails right
    // after its election (before its no-op spreads) or while its own write is pending.
    sim_.nodes().on_new_leader([this](raft::node_id id, raft::term_t) {
      if (!safety_ || leader_actions_.empty() || !random_.chance(strike_new_leader_)) return;
      const fault f = random_.pick(leader_actions_);
      sim_.events().after(random_.between(0, ticks / 2), [this, id, f] {
        if (safety_) strike(f, id);
      });
    });
  }

  /** Ends the safety phase: heals a random majority of healthy nodes; returns it. */
  std::vector<raft::node_id> heal_majority() {
    safety_ = false;
    auto& nodes = sim_.nodes();
    std::vector<raft::node_id> healthy;
    for (raft::node_id id : nodes.ids()) {
      // A disk with damage at rest fails when read: such a node cannot be part of the healed
      // majority. Damage is kept to a minority, so enough sound nodes remain.
      const bool damaged = std::find(damaged_.begin(), damaged_.end(), id) != damaged_.end();
      if (nodes.status(id) != node_status::failed && !damaged) healthy.push_back(id);
    }
    // Which nodes a majority needs depends on the configuration once membership changes:
    // then every sound node is healed.
    const std::size_t majority =
        config_.faults.has(fault::membership) ? healthy.size() : nodes.ids().size() / 2 + 1;
    std::vector<raft::node_id> chosen;
    while (chosen.size() < majority && !healthy.empty()) {
      const std::size_t at = static_cast<std::size_t>(random_.between(0, healthy.size() - 1));
      chosen.push_back(healthy[at]);
      healthy.erase(healthy.begin() + static_cast<std::ptrdiff_t>(at));
    }
    if (config_.log) {
      std::string line = std::to_string(sim_.events().now()) + " liveness phase: healing nodes";
      for (raft::node_id id : chosen) line += " " + std::to_string(id);
      config_.log(line);
      auto list = [](const std::vector<raft::node_id>& ids) {
        std::string out = "{";
        for (raft::node_id id : ids) out += (out.size() > 1 ? "," : "") + std::to_string(id);
        return out + "}";
      };
      for (raft::node_id id : nodes.ids()) {
        const auto* core = nodes.core_of(id);
        if (core == nullptr) continue;
        const auto& m = core->members();
        config_.log("  node " + std::to_string(id) + ": term " + std::to_string(core->term()) +
                    " last " + std::to_string(core->log().last_index()) + " commit " +
                    std::to_string(core->log().committed()) + " voters " + list(m.voters) +
                    " outgoing " + list(m.voters_outgoing) + " learners " + list(m.learners));
      }
    }
    network& net = sim_.net();
    net.faults.drop = 0;
    net.faults.duplicate = 0;
    net.heal_among(chosen);
    for (raft::node_id id : chosen) {
      nodes.disk_of(id).disarm();
      nodes.slow_disk(id, 1);
      if (nodes.status(id) == node_status::down) nodes.restart(id);
      if (nodes.status(id) == node_status::paused) nodes.resume(id);
    }
    return chosen;
  }

  std::size_t injected() const noexcept { return injected_; }

 private:
  void schedule_next() {
    sim_.events().after(random_.between(1, 10) * ticks, [this] {
      if (!safety_) return;
      inject(random_.pick(actions_));
      schedule_next();
    });
  }

  raft::node_id any_node() { return random_.pick(sim_.nodes().ids()); }

  /** Half the time the current leader, if there is one; otherwise any node. */
  raft::node_id victim() {
    const raft::node_id leader = sim_.nodes().leader();
    return leader != raft::no_node && random_.chance(0.5) ? leader : any_node();
  }

  /**
   * A composed nemesis: cut one follower off, stall the leader's disk, then crash the leader
   * while its own writes are pending. Entries its other followers acknowledged are then on
   * exactly a majority that does not include the leader's disk.
   */
  bool lonely_leader() {
    const raft::node_id leader = sim_.nodes().leader();
    if (leader == raft::no_node) return false;
    raft::node_id cut = any_node();
    if (cut == leader) cut = leader % sim_.nodes().ids().size() + 1;
    sim_.net().unblock_all();
    sim_.net().isolate(cut);
    const std::uint64_t episode = ++partition_episode_;
    sim_.nodes().slow_disk(leader, 30);
    later(2, 20, [this, leader, episode] {
      sim_.nodes().crash(leader);
      sim_.nodes().slow_disk(leader, 1);
      later(1, 40, [this, leader] { sim_.nodes().restart(leader); });
      later(1, 60, [this, episode] {
        if (partition_episode_ == episode) sim_.net().unblock_all();
      });
    });
    return true;
  }

  /**
   * Asks the leader for one membership change: remove or demote a voter (keeping at least
   * min(3, N)), add an outsider as learner, promote a learner, or drop a learner.
   */
  void change_members() {
    auto& nodes = sim_.nodes();
    const raft::node_id leader = nodes.leader();
    if (leader == raft::no_node) return;
    raft::membership target = nodes.core_of(leader)->members();
    if (target.joint()) return;
    const raft::node_id id = any_node();
    const std::size_t min_voters = std::min<std::size_t>(3, nodes.ids().size());
    if (!target.learners.empty() && random_.chance(0.3)) {
      // Swap a voter for a learner in one change: the old and new majorities may then be
      // disjoint, which only joint consensus makes safe.
      const raft::node_id in = random_.pick(target.learners);
      const raft::node_id out = random_.pick(target.voters);
      std::erase(target.learners, in);
      std::erase(target.voters, out);
      target.voters.push_back(in);
      target.learners.push_back(out);
      nodes.change_membership(leader, target);
      return;
    }
    const bool voter =
        std::find(target.voters.begin(), target.voters.end(), id) != target.voters.end();
    if (voter) {
      if (target.voters.size() <= min_voters) return;
      std::erase(target.voters, id);
      if (random_.chance(0.5)) target.learners.push_back(id);  // demote, or remove outright
    } else if (target.is_learner(id)) {
      std::erase(target.learners, id);
      if (random_.chance(0.7)) target.voters.push_back(id);  // promote, or remove
    } else {
      target.learners.push_back(id);
    }
    nodes.change_membership(leader, target);
  }

  /** Isolates, crashes or pauses `id` for a while. */
  void strike(fault f, raft::node_id id) {
    auto& nodes = sim_.nodes();
    switch (f) {
      case fault::partition: {
        sim_.net().unblock_all();
        sim_.net().isolate(id);
        const std::uint64_t episode = ++partition_episode_;
        later(5, 120, [this, episode] {
          if (partition_episode_ == episode) sim_.net().unblock_all();
        });
        break;
      }
      case fault::crash:
        nodes.crash(id);
        later(1, 80, [this, id] { sim_.nodes().restart(id); });
        break;
      case fault::pause:
        nodes.pause(id);
        later(1, 80, [this, id] { sim_.nodes().resume(id); });
        break;
      default: break;
    }
  }

  void later(std::uint64_t min_ticks, std::uint64_t max_ticks, std::function<void()> action) {
    sim_.events().after(random_.between(min_ticks, max_ticks) * ticks, std::move(action));
  }

  void inject(fault f) {
    ++injected_;
    sim_.trace().add(static_cast<std::uint64_t>(f));
    auto& nodes = sim_.nodes();
    network& net = sim_.net();
    const auto& ids = nodes.ids();
    switch (f) {
      case fault::partition: {
        net.unblock_all();
        const std::uint64_t episode = ++partition_episode_;
        switch (random_.between(0, 3)) {
          case 0: {  // random halves
            std::vector<raft::node_id> side;
            for (raft::node_id id : ids) {
              if (random_.chance(0.5)) side.push_back(id);
            }
            net.split(side);
            break;
          }
          case 1: net.isolate(victim()); break;
          case 2: {  // one-way links: a hears b, b does not hear a
            for (std::uint64_t i = random_.between(1, ids.size()); i > 0; --i) {
              const raft::node_id a = any_node();
              const raft::node_id b = any_node();
              if (a != b) net.block(a, b);
            }
            break;
          }
          default: {  // partial: two nodes cannot reach each other, both reach the rest
            const raft::node_id a = any_node();
            raft::node_id b = any_node();
            if (a == b) b = a % ids.size() + 1;
            net.block_both(a, b);
            break;
          }
        }
        later(5, 120, [this, episode] {
          if (partition_episode_ == episode) sim_.net().unblock_all();
        });
        break;
      }
      case fault::clog: {
        const raft::node_id a = any_node();
        const raft::node_id b = any_node();
        if (a == b) break;
        net.clog(a, b);
        later(1, 60, [this, a, b] { sim_.net().unclog(a, b); });
        break;
      }
      case fault::swizzle: {
        std::vector<raft::node_id> order = ids;
        for (std::size_t i = order.size(); i > 1; --i) {
          std::swap(order[i - 1], order[static_cast<std::size_t>(random_.between(0, i - 1))]);
        }
        sim_time at = 0;
        for (raft::node_id id : order) {
          at += random_.between(1, 5) * ticks;
          sim_.events().after(at, [this, id] { sim_.net().clog_node(id); });
        }
        std::vector<raft::node_id> release = order;
        for (std::size_t i = release.size(); i > 1; --i) {
          std::swap(release[i - 1], release[static_cast<std::size_t>(random_.between(0, i - 1))]);
        }
        for (raft::node_id id : release) {
          at += random_.between(1, 10) * ticks;
          sim_.events().after(at, [this, id] { sim_.net().unclog_node(id); });
        }
        break;
      }
      case fault::crash:
        if (random_.chance(0.3) && lonely_leader()) break;
        strike(f, victim());
        break;
      case fault::pause: strike(f, victim()); break;
      case fault::disk: {
        if (random_.chance(0.5)) {
          // A stalling disk (fsync taking tens of times longer for a while), often the leader's:
          // its followers then commit its entries before it has them itself.
          const raft::node_id id = victim();
          nodes.slow_disk(id, random_.between(5, 30));
          later(5, 50, [this, id] { sim_.nodes().slow_disk(id, 1); });
          break;
        }
        // Damage at rest takes a node out for good: keep it to a minority of nodes.
        const raft::node_id id = any_node();
        const bool known = std::find(damaged_.begin(), damaged_.end(), id) != damaged_.end();
        if (!known && damaged_.size() >= max_damaged_) break;
        if (nodes.disk_of(id).flip_bit()) {
          if (!known) damaged_.push_back(id);
          if (config_.log)
            config_.log(std::to_string(sim_.events().now()) + " bit flip on node " +
                        std::to_string(id));
        }
        break;
      }
      case fault::transfer: {
        const raft::node_id leader = nodes.leader();
        if (leader != raft::no_node) nodes.transfer(leader, any_node());
        break;
      }
      case fault::membership: change_members(); break;
      case fault::reorder: {
        // One slow link, with its own delay distribution, for a while.
        const raft::node_id a = any_node();
        const raft::node_id b = any_node();
        if (a == b) break;
        const sim_time low = random_.between(20, 100);
        net.set_link_delay(a, b, low, low + random_.between(0, 300));
        later(5, 60, [this, a, b] { sim_.net().clear_link_delay(a, b); });
        break;
      }
      default: break;
    }
    // Nodes stopped by disk errors come back after a while, as an operator would bring them.
    for (raft::node_id id : ids) {
      if (nodes.status(id) == node_status::down && random_.chance(0.2)) nodes.restart(id);
    }
  }

  Simulation& sim_;
  const run_config& config_;
  rng random_;
  std::vector<fault> actions_;
  std::vector<fault> leader_actions_;
  std::vector<raft::node_id> damaged_;
  std::size_t max_damaged_ = 0;
  double strike_new_leader_ = 0;
  std::uint64_t partition_episode_ = 0;
  std::size_t injected_ = 0;
  bool safety_ = true;
};

/** The cluster options of a randomized run: core limits, timings and fault rates per seed. */
cluster_options options_for(const run_config& config, rng& setup);

}  // namespace quorum::sim::detail
