// The KV workload, the fault planner and run_kv(). Single-threaded; everything derives from
// the run's seed.
#include <quorum/sim/kv.hpp>

#include <algorithm>
#include <charconv>
#include <memory>

namespace quorum::sim {

// ---- state machine ----------------------------------------------------------------------------

std::string kv_state_machine::apply(const raft::entry& e) {
  const std::string text = e.payload.to_string();
  const auto first = text.find(' ');
  if (first == std::string::npos) return "bad command";
  const std::string_view op(text.data(), first);
  const std::string_view rest(text.data() + first + 1, text.size() - first - 1);
  if (op == "W") {
    const auto second = rest.find(' ');
    if (second == std::string_view::npos) return "bad command";
    values_[std::string(rest.substr(0, second))] = std::string(rest.substr(second + 1));
    return "ok";
  }
  if (op == "R") {
    auto it = values_.find(rest);
    return it == values_.end() ? "0" : it->second;
  }
  return "bad command";
}

raft::shared_bytes kv_state_machine::snapshot() const {
  std::string out;
  for (const auto& [key, value] : values_) out += key + ' ' + value + '\n';
  return raft::shared_bytes(out);
}

bool kv_state_machine::restore(const raft::shared_bytes& bytes) {
  std::map<std::string, std::string, std::less<>> values;
  const std::string text = bytes.to_string();
  std::size_t at = 0;
  while (at < text.size()) {
    const auto end = text.find('\n', at);
    const auto space = text.find(' ', at);
    if (end == std::string::npos || space == std::string::npos || space > end) return false;
    if (!values.emplace(text.substr(at, space - at), text.substr(space + 1, end - space - 1))
             .second) {
      return false;
    }
    at = end + 1;
  }
  values_ = std::move(values);
  return true;
}

std::string kv_state_machine::query(const std::string& key) const {
  auto it = values_.find(key);
  return it == values_.end() ? "0" : it->second;
}

// ---- fault sets -------------------------------------------------------------------------------

namespace {

struct fault_name {
  fault value;
  std::string_view name;
};

constexpr fault_name fault_names[] = {
    {fault::drop, "drop"},
    {fault::duplicate, "duplicate"},
    {fault::reorder, "reorder"},
    {fault::clog, "clog"},
    {fault::partition, "partition"},
    {fault::swizzle, "swizzle"},
    {fault::crash, "crash"},
    {fault::pause, "pause"},
    {fault::disk, "disk"},
    {fault::skew, "skew"},
    {fault::transfer, "transfer"},
    {fault::read, "read"},
    {fault::membership, "membership"},
    {fault::snapshot, "snapshot"},
    {fault::quiesce, "quiesce"},
};

}  // namespace

fault_set fault_set::all() {
  fault_set s;
  for (const auto& f : fault_names) s.add(f.value);
  return s;
}

std::optional<fault_set> fault_set::parse(std::string_view text, std::string& error) {
  if (text == "all") return all();
  fault_set s;
  if (text == "none") return s;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view name = text.substr(0, comma);
    auto it = std::find_if(std::begin(fault_names), std::end(fault_names),
                           [&](const fault_name& f) { return f.name == name; });
    if (it == std::end(fault_names)) {
      error = "unknown fault class '" + std::string(name) + "'; known: " + all().to_string() +
              " (or all, none)";
      return std::nullopt;
    }
    s.add(it->value);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
  }
  return s;
}

std::string fault_set::to_string() const {
  std::string out;
  for (const auto& f : fault_names) {
    if (!has(f.value)) continue;
    if (!out.empty()) out += ',';
    out += f.name;
  }
  return out.empty() ? "none" : out;
}

// ---- the scriptable simulation ----------------------------------------------------------------

kv_simulation::kv_simulation(std::uint64_t seed, cluster_options options, std::size_t clients,
                             std::size_t keys)
    : random_(seed),
      cluster_(events_, random_, trace_, checker_, options),
      keys_(keys),
      client_timeout_(static_cast<sim_time>(4 * options.election_ticks) * ticks),
      log_(options.log) {
  for (std::size_t i = 0; i < clients; ++i) {
    client c;
    c.id = i + 1;
    c.target = random_.pick(cluster_.ids());
    c.cursor = c.target;
    clients_.push_back(c);
  }
}

void kv_simulation::start_clients() {
  for (client& c : clients_) next_op(c, random_.between(0, ticks));
}

void kv_simulation::next_op(client& c, sim_time delay) {
  events_.after(delay, [this, &c] {
    if (!c.busy) issue(c);
  });
}

void kv_simulation::issue(client& c) {
  c.busy = true;
  const std::uint64_t serial = ++c.serial;
  c.invoked = events_.now();
  c.key = "k" + std::to_string(random_.between(1, keys_));
  c.is_write = random_.chance(0.5);
  c.value = c.is_write ? ++next_value_ : 0;
  const std::string command =
      c.is_write ? "W " + c.key + " " + std::to_string(c.value) : "R " + c.key;
  const bool by_index = !c.is_write && reads_by_index_ && random_.chance(0.7);
  if (log_) {
    log_(std::to_string(events_.now()) + " client " + std::to_string(c.id) + " sends '" + command +
         "' to node " + std::to_string(c.target) + (by_index ? " as a read" : ""));
  }
  auto done = [this, &c, serial](const outcome& o) { on_reply(c, serial, o); };
  if (by_index) {
    cluster_.submit_read(c.target, c.key, std::move(done));
  } else {
    cluster_.submit(c.target, raft::shared_bytes(command), std::move(done));
  }
  events_.after(client_timeout_, [this, &c, serial] { on_timeout(c, serial); });
}

void kv_simulation::on_reply(client& c, std::uint64_t serial, const outcome& o) {
  if (!c.busy || c.serial != serial) return;  // a late answer to an operation given up on
  c.busy = false;
  trace_.add(c.id);
  trace_.add(static_cast<std::uint64_t>(o.status));
  if (log_) {
    static constexpr const char* names[] = {"ok", "refused", "lost"};
    log_(std::to_string(events_.now()) + " client " + std::to_string(c.id) + " hears " +
         names[o.status] + " '" + o.result + "' for index " + std::to_string(o.index));
  }
  switch (o.status) {
    case outcome::ok: {
      register_op op;
      op.invoked = c.invoked;
      op.completed = events_.now();
      op.is_write = c.is_write;
      op.client = c.id;
      op.value = c.value;
      if (!c.is_write) {
        std::uint64_t read = 0;
        std::from_chars(o.result.data(), o.result.data() + o.result.size(), read);
        op.value = read;
      }
      history_.record(c.key, op);
      ++succeeded_;
      c.last_success = events_.now();
      c.succeeded_once = true;
      if (pause_chance_ > 0 && random_.chance(pause_chance_)) {
        next_op(c, random_.between(pause_min_, pause_max_));
      } else {
        next_op(c, random_.between(0, 3 * ticks));
      }
      return;
    }
    case outcome::refused:
      // Certainly not applied: nothing to record. Follow the hint, or try someone else.
      if (o.leader_hint != raft::no_node && o.leader_hint != c.target) {
        c.target = o.leader_hint;
      } else {
        c.cursor = next_node(c.cursor);
        c.target = c.cursor;
      }
      next_op(c, random_.between(ticks / 2, 2 * ticks));
      return;
    case outcome::lost: next_op(c, random_.between(0, ticks)); return;
  }
}

void kv_simulation::on_timeout(client& c, std::uint64_t serial) {
  if (!c.busy || c.serial != serial) return;
  c.busy = false;
  if (log_) log_(std::to_string(events_.now()) + " client " + std::to_string(c.id) + " times out");
  if (c.is_write) record_unknown_write(c);
  c.cursor = next_node(c.cursor);
  c.target = c.cursor;
  next_op(c, 0);
}

void kv_simulation::record_unknown_write(const client& c) {
  // The client never learned the outcome: the write may take effect at any time from its
  // start on, or never.
  register_op op;
  op.invoked = c.invoked;
  op.is_write = true;
  op.value = c.value;
  op.client = c.id;
  history_.record(c.key, op);
}

raft::node_id kv_simulation::next_node(raft::node_id after) const {
  // Clients know every node and try them in turn, so one that is down cannot hold them.
  return after % cluster_.ids().size() + 1;
}

void kv_simulation::run_ticks(std::uint64_t n) {
  const sim_time until = events_.now() + n * ticks;
  while (checker_.ok() && events_.run_one(until)) {
  }
  if (checker_.ok()) events_.run_until(until);
}

bool kv_simulation::run_until(const std::function<bool()>& done, std::uint64_t max_ticks) {
  for (std::uint64_t i = 0; i < max_ticks; ++i) {
    if (done()) return true;
    if (!checker_.ok()) return false;
    run_ticks(1);
  }
  return done();
}

bool kv_simulation::every_client_succeeded_since(sim_time since) const {
  return std::all_of(clients_.begin(), clients_.end(), [since](const client& c) {
    return c.succeeded_once && c.last_success >= since;
  });
}

std::optional<std::string> kv_simulation::verdict() {
  if (!checker_.ok()) return checker_.violation();
  // Writes still in flight may have taken effect (a read may even have seen them).
  for (client& c : clients_) {
    if (c.busy && c.is_write) record_unknown_write(c);
    c.busy = false;
  }
  return history_.check();
}

// ---- random runs ------------------------------------------------------------------------------

namespace {

/** Injects random faults during the safety phase; heals a majority for the liveness phase. */
class fault_planner {
 public:
  fault_planner(kv_simulation& sim, const run_config& config)
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
      if (!safety_ || !random_.chance(strike_new_leader_)) return;
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

  kv_simulation& sim_;
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

cluster_options options_for(const run_config& config, rng& setup) {
  cluster_options o;
  o.nodes = config.nodes;
  o.log = config.log;
  // Vary the core's limits per seed: small batches and windows split replication into many
  // messages, which is where ordering bugs hide.
  static constexpr std::size_t batch_sizes[] = {1, 2, 4, 64, 256};
  static constexpr std::size_t windows[] = {1, 2, 8, 256};
  const std::size_t batch = batch_sizes[setup.between(0, std::size(batch_sizes) - 1)];
  const std::size_t window = windows[setup.between(0, std::size(windows) - 1)];
  const std::uint64_t message_bytes = setup.chance(0.25) ? 64 : 1 << 20;
  // Paper 5.6: broadcast time << election timeout. An election costs two round trips and two
  // disk writes (up to ~16 ticks here with the widest delays); timeouts stay well above that
  // on average, or no run could be live.
  o.heartbeat_ticks = static_cast<int>(setup.between(1, 3));
  o.election_ticks = static_cast<int>(setup.between(10, 20));
  // Lease reads on some seeds: the drift bound covers 5% clock skew over an election timeout
  // plus one tick of rounding (dissertation 6.4.1).
  static constexpr std::uint64_t chunk_sizes[] = {7, 32, 128, 1 << 20};
  const std::uint64_t chunk = chunk_sizes[setup.between(0, std::size(chunk_sizes) - 1)];
  const bool lease = config.faults.has(fault::read) && setup.chance(0.5);
  const int drift = 1 + o.election_ticks / 5;
  const bool quiesce = config.faults.has(fault::quiesce);
  if (quiesce) {
    // Hosts notice a dead or cut-off leader's node within up to two election timeouts (their
    // connection-level liveness), and now and then suspect a healthy one.
    o.suspect_after_ticks = static_cast<int>(setup.between(1, 2 * o.election_ticks));
    o.false_suspicion = static_cast<double>(setup.between(0, 20)) / 1000;
  }
  o.adjust = [batch, window, message_bytes, chunk, lease, drift, quiesce,
              user = config.adjust](raft::options& r) {
    r.quiesce = quiesce;
    r.max_entries_per_message = batch;
    r.max_inflight_messages = window;
    r.max_bytes_per_message = message_bytes;
    r.snapshot_chunk_bytes = chunk;
    if (lease) {
      r.read_mode = raft::read_mode::lease;
      r.lease_drift_ticks = drift;
    }
    if (user) user(r);
  };
  if (config.faults.has(fault::snapshot)) {
    // Snapshots every few entries, so that crashed, cut-off and new nodes are often fed by
    // snapshots, in chunks small enough that a transfer spans many messages and faults.
    o.snapshot_every = setup.between(4, 40);
    o.snapshot_trailing = setup.between(0, 8);
  }
  o.max_disk_latency = setup.chance(0.5) ? 60 : 200;
  if (config.faults.has(fault::skew)) o.max_clock_skew = 0.05;
  if (config.faults.has(fault::disk)) {
    o.disk.read_error = 0.0005;
    o.disk.fsync_error = 0.0005;
  }
  if (config.faults.has(fault::crash)) o.disk.torn_write = 0.5;
  if (config.faults.has(fault::reorder)) o.max_client_latency = 80;
  return o;
}

}  // namespace

run_result run_kv(const run_config& config) {
  rng setup(config.seed);
  kv_simulation sim(setup.next(), options_for(config, setup), config.clients, config.keys);
  sim.use_read_index(config.faults.has(fault::read));
  if (config.faults.has(fault::quiesce)) sim.pause_clients(0.25, 10 * ticks, 80 * ticks);
  network& net = sim.net();
  if (config.faults.has(fault::drop))
    net.faults.drop = static_cast<double>(setup.between(1, 10)) / 100;
  if (config.faults.has(fault::duplicate)) {
    net.faults.duplicate = static_cast<double>(setup.between(1, 5)) / 100;
  }
  if (config.faults.has(fault::reorder)) net.faults.max_delay = setup.between(50, 300);

  run_result result;
  try {
    fault_planner planner(sim, config);
    planner.start();
    sim.start_clients();
    sim.run_ticks(static_cast<std::uint64_t>(config.ticks));
    if (sim.checker().ok()) {
      planner.heal_majority();
      const sim_time healed = sim.events().now();
      const auto bound = static_cast<std::uint64_t>(config.liveness_timeouts) *
                         static_cast<std::uint64_t>(sim.nodes().options().election_ticks);
      const bool live =
          sim.run_until([&] { return sim.every_client_succeeded_since(healed); }, bound);
      result.recovery_ticks = (sim.events().now() - healed) / ticks;
      if (!live && sim.checker().ok()) {
        result.failure = "liveness: not every client succeeded within " +
                         std::to_string(config.liveness_timeouts) +
                         " election timeouts after a majority was healed";
      }
    }
    result.faults_injected = planner.injected();
  } catch (const std::exception& e) {
    result.failure = std::string("exception: ") + e.what();
  }
  if (result.failure.empty()) {
    if (auto why = sim.verdict()) result.failure = *why;
  }
  result.ok = result.failure.empty();
  result.trace_hash = sim.trace().value();
  result.committed = sim.checker().committed_count();
  result.acknowledged = sim.checker().acknowledged_count();
  result.operations = sim.history_size();
  result.messages = net.sent();
  result.quiesces = sim.nodes().quiesce_count();
  result.suspicions = sim.nodes().suspicion_count();
  return result;
}

}  // namespace quorum::sim
