// The KV workload, the fault planner and run_kv(). Single-threaded; everything derives from
// the run's seed.
#include <quorum/sim/impl/fault_planner.hpp>
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

namespace detail {

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
  // Odd seeds: followers forward commands to their leader (no extra draw: other seeds replay
  // as before).
  o.forward_proposals = config.seed % 2 == 1;
  return o;
}

}  // namespace detail

run_result run_kv(const run_config& config) {
  rng setup(config.seed);
  kv_simulation sim(setup.next(), detail::options_for(config, setup), config.clients, config.keys);
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
    detail::fault_planner<kv_simulation> planner(sim, config);
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
