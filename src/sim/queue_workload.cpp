// The quorum-queue workload: one queue::state_machine replicated by the simulated cluster,
// publishers, consumers, the fault planner, and a checker that follows every applied entry's
// effects in log order. Single-threaded; everything derives from the run's seed.
#include <quorum/sim/impl/fault_planner.hpp>
#include <quorum/sim/queue_workload.hpp>

#include <map>
#include <set>

namespace quorum::sim {

namespace {

using queue::consumer_id;
using queue::message_id;

/** One applied entry: its command and what applying it did. */
struct applied {
  std::optional<queue::command> command;
  queue::effects effects;
};

/** Follows the queue through the effects of its applied entries, in log order. */
class queue_checker {
 public:
  void on_entry(raft::index_t index, const applied& a) {
    const queue::effects& fx = a.effects;
    if (fx.error || !a.command || !violation_.empty()) return;
    const queue::command& c = *a.command;
    if (c.type == queue::command::kind::enqueue &&
        fx.published == queue::effects::publish::accepted) {
      const std::pair key(c.producer, c.sequence);
      if (auto it = accepted_.find(key); it != accepted_.end()) {
        fail("publish " + name(key) + " was enqueued twice (entries " + std::to_string(it->second) +
             " and " + std::to_string(index) + ")");
        return;
      }
      accepted_[key] = index;
      messages_[index] = message{c.producer, c.priority};
      ++live_;
    }
    // What the command gives back, then what leaves, then what is delivered.
    if (c.type == queue::command::kind::settle) {
      for (message_id id : c.ids) release(id);
    }
    if (c.type == queue::command::kind::detach) {
      for (message_id id : std::set(held_[c.consumer])) release(id);
    }
    for (consumer_id who : fx.timed_out) {
      for (message_id id : std::set(held_[who])) release(id);
    }
    // At least once: a dead letter stays in the queue, undeliverable, until confirmed.
    for (message_id id : fx.dead_letters) {
      auto it = messages_.find(id);
      if (it == messages_.end() || it->second.gone || it->second.dead) {
        fail("entry " + std::to_string(index) + " dead-lettered message " + std::to_string(id) +
             ", which is not in the queue");
        continue;
      }
      release(id);
      it->second.dead = true;
      pending_dead_.insert(id);
    }
    if (c.type == queue::command::kind::dead_lettered) {
      for (const queue::removed& r : fx.removals) {
        if (pending_dead_.erase(r.id) == 0) {
          fail("entry " + std::to_string(index) + " confirmed dead letter " + std::to_string(r.id) +
               ", which was not pending");
        }
      }
    }
    for (const queue::removed& r : fx.removals) {
      auto it = messages_.find(r.id);
      if (it == messages_.end()) {
        const bool refused = r.id == index && fx.published == queue::effects::publish::rejected_dlx;
        if (!refused)
          fail("entry " + std::to_string(index) + " removed message " + std::to_string(r.id) +
               ", which was never enqueued");
        continue;
      }
      if (it->second.gone) {
        fail("message " + std::to_string(r.id) + " removed twice");
        continue;
      }
      release(r.id);
      it->second.gone = true;
      --live_;
      if (r.why == queue::removal::dead_lettered) ++dead_lettered_;
    }
    for (const queue::delivery& d : fx.deliveries) {
      auto it = messages_.find(d.id);
      if (it == messages_.end() || it->second.gone || it->second.dead) {
        fail("entry " + std::to_string(index) + " delivered message " + std::to_string(d.id) +
             ", which is not in the queue (or a pending dead letter)");
        continue;
      }
      message& m = it->second;
      if (m.holder != 0) {
        fail("entry " + std::to_string(index) + " delivered message " + std::to_string(d.id) +
             " to consumer " + std::to_string(d.consumer) + " while consumer " +
             std::to_string(m.holder) + " holds it unacknowledged");
        continue;
      }
      if (d.redelivered != m.delivered) {
        fail("message " + std::to_string(d.id) + " delivered with a wrong redelivered flag");
      }
      if (!m.delivered && m.producer != 0) {
        // FIFO per publisher within a priority: first deliveries in publish order.
        message_id& last = first_delivered_[{m.producer, m.priority}];
        if (d.id < last) {
          fail("FIFO broken for producer " + std::to_string(m.producer) + ", priority " +
               std::to_string(m.priority) + ": message " + std::to_string(d.id) +
               " first delivered after " + std::to_string(last));
        }
        last = d.id;
      }
      m.delivered = true;
      m.holder = d.consumer;
      held_[d.consumer].insert(d.id);
    }
  }

  /** Every confirmed publish must have been enqueued (and is then in the queue or gone). */
  void check_confirmed(const std::set<std::pair<std::uint64_t, std::uint64_t>>& confirmed) {
    for (const auto& key : confirmed) {
      if (!accepted_.contains(key)) fail("confirmed publish " + name(key) + " was lost");
    }
  }

  const std::set<message_id>& held_by(consumer_id who) { return held_[who]; }
  std::size_t live() const noexcept { return live_; }
  std::size_t dead_lettered() const noexcept { return dead_lettered_; }
  /** At-least-once dead letters applied and not yet confirmed. */
  const std::set<message_id>& pending_dead() const noexcept { return pending_dead_; }
  std::size_t enqueued() const noexcept { return accepted_.size(); }
  const std::string& violation() const noexcept { return violation_; }
  void fail(std::string what) {
    if (violation_.empty()) violation_ = std::move(what);
  }

 private:
  struct message {
    std::uint64_t producer = 0;
    std::uint8_t priority = 0;
    consumer_id holder = 0;
    bool delivered = false;
    bool gone = false;
    bool dead = false;  // an at-least-once dead letter awaiting confirmation
  };
  static std::string name(const std::pair<std::uint64_t, std::uint64_t>& key) {
    return "(producer " + std::to_string(key.first) + ", sequence " + std::to_string(key.second) +
           ")";
  }
  void release(message_id id) {
    auto it = messages_.find(id);
    if (it == messages_.end() || it->second.holder == 0) return;
    held_[it->second.holder].erase(id);
    it->second.holder = 0;
  }

  std::map<message_id, message> messages_;
  std::map<std::pair<std::uint64_t, std::uint64_t>, message_id> accepted_;
  std::map<std::pair<std::uint64_t, std::uint8_t>, message_id> first_delivered_;
  std::map<consumer_id, std::set<message_id>> held_;
  std::size_t live_ = 0;
  std::size_t dead_lettered_ = 0;
  std::set<message_id> pending_dead_;
  std::string violation_;
};

/** What the replicas of the run being simulated report to (the simulator is one thread). */
struct run_context {
  queue::queue_options options;
  std::map<raft::index_t, queue::effects> effects_at;
  queue_checker checker;
};
run_context* current = nullptr;

/** The queue state machine as the simulator runs it: each replica records its effects. */
class queue_machine {
 public:
  queue_machine() : sm_(current != nullptr ? current->options : queue::queue_options{}) {}

  std::string apply(const raft::entry& e) {
    if (e.type != raft::entry_type::normal) return {};
    applied a;
    std::error_code ec;
    a.command = queue::decode(e.payload.bytes(), ec);
    if (a.command) {
      a.effects = sm_.apply(e.index, *a.command);
    } else {
      a.effects.error = ec;
    }
    if (current != nullptr) {
      auto [it, first] = current->effects_at.try_emplace(e.index, a.effects);
      if (first) {
        current->checker.on_entry(e.index, a);
      } else if (!(it->second == a.effects)) {
        current->checker.fail("replicas disagree on the effects of entry " +
                              std::to_string(e.index));
      }
    }
    if (a.effects.error) return "error";
    switch (a.effects.published) {
      case queue::effects::publish::accepted: return "accepted";
      case queue::effects::publish::duplicate: return "duplicate";
      case queue::effects::publish::rejected:
      case queue::effects::publish::rejected_dlx: return "rejected";
      case queue::effects::publish::none: break;
    }
    return "ok";
  }
  raft::shared_bytes snapshot() const { return sm_.snapshot(); }
  bool restore(const raft::shared_bytes& bytes) { return sm_.restore(bytes); }
  /** Snapshots keep the entries of live messages: their bodies. */
  std::vector<raft::index_t> kept_entries() const {
    if (sm_.options().test_mutation == queue::queue_mutation::forget_bodies) return {};
    return sm_.live_ids();
  }
  const queue::state_machine& queue() const noexcept { return sm_; }

 private:
  queue::state_machine sm_;
};

class queue_simulation {
 public:
  queue_simulation(std::uint64_t seed, cluster_options options, std::size_t publishers,
                   std::size_t consumers)
      : random_(seed),
        cluster_(events_, random_, trace_, checker_, options),
        timeout_(static_cast<sim_time>(4 * options.election_ticks) * ticks),
        log_(options.log) {
    for (std::size_t i = 0; i < publishers; ++i) {
      publishers_.push_back({i + 1, random_.pick(cluster_.ids())});
    }
    for (std::size_t i = 0; i < consumers; ++i) {
      consumers_.push_back({100 + i, random_.pick(cluster_.ids())});
    }
  }

  void say(const std::string& line) {
    if (log_) log_(std::to_string(events_.now()) + " " + line);
  }

  event_queue& events() noexcept { return events_; }
  rng& random() noexcept { return random_; }
  cluster<queue_machine>& nodes() noexcept { return cluster_; }
  network& net() noexcept { return cluster_.net(); }
  safety_checker& checker() noexcept { return checker_; }
  trace_hash& trace() noexcept { return trace_; }

  void start() {
    for (auto& p : publishers_) publish_later(p, random_.between(0, ticks));
    for (auto& c : consumers_) consume_later(c, random_.between(0, ticks));
    tick_later();
  }
  /** Publishers stop; consumers ack everything from now on. */
  void drain() { draining_ = true; }

  bool ok() const { return checker_.ok() && current->checker.violation().empty(); }
  void run_ticks(std::uint64_t n) {
    for (std::uint64_t i = 0; i < n && ok(); ++i) {
      const sim_time until = events_.now() + ticks;
      while (ok() && events_.run_one(until)) {
      }
      if (ok()) events_.run_until(until);
      check_bodies();
    }
  }
  /** Every running node can read the body of every message its queue holds, from its log or
   *  from the entries its snapshot keeps: compaction lost none. */
  void check_bodies() {
    for (raft::node_id id : cluster_.ids()) {
      const queue_machine* m = cluster_.machine_of(id);
      // An installed snapshot reaches the state machine once the install is durable.
      if (m == nullptr || cluster_.applied_index(id) < cluster_.disk_of(id).snapshot().index) {
        continue;
      }
      for (raft::index_t i : m->queue().live_ids()) {
        std::optional<raft::entry> e;
        try {
          e = cluster_.disk_of(id).inspect_entry(i);
        } catch (const disk_failure&) {
          break;  // damage at rest, which the disk fault put there: the node stops on reading it
        }
        std::error_code ec;
        const auto c = e ? queue::decode(e->payload.bytes(), ec) : std::nullopt;
        if (!c || c->type != queue::command::kind::enqueue ||
            queue::body_of(e->payload.bytes()).size() != c->size) {
          current->checker.fail("node " + std::to_string(id) + " lost the body of message " +
                                std::to_string(i));
          return;
        }
      }
    }
  }
  bool run_until(const std::function<bool()>& done, std::uint64_t max_ticks) {
    for (std::uint64_t i = 0; i < max_ticks && ok(); ++i) {
      if (done()) return true;
      run_ticks(1);
    }
    return done();
  }
  bool every_publisher_confirmed_since(sim_time since) const {
    return std::all_of(publishers_.begin(), publishers_.end(),
                       [since](const publisher& p) { return p.last_confirm >= since; });
  }
  bool publishers_idle() const {
    return std::all_of(publishers_.begin(), publishers_.end(),
                       [](const publisher& p) { return !p.busy; });
  }
  const std::set<std::pair<std::uint64_t, std::uint64_t>>& confirmed() const { return confirmed_; }

 private:
  struct publisher {
    std::uint64_t id;
    raft::node_id target;
    raft::node_id cursor = target;
    std::uint64_t sequence = 0;
    std::uint8_t priority = 0;
    bool busy = false;
    std::uint64_t serial = 0;
    sim_time last_confirm = 0;
  };
  struct consumer {
    consumer_id id;
    raft::node_id target;
    raft::node_id cursor = target;
    bool attached = false;
    bool busy = false;
    std::uint64_t serial = 0;
  };

  raft::node_id next_node(raft::node_id after) const { return after % cluster_.ids().size() + 1; }

  /** The clock that stamps commands: 10 ms per tick. */
  std::int64_t now_ms() const { return static_cast<std::int64_t>(events_.now() / ticks) * 10; }

  /** A clock client proposes a tick command every tick or so, so that time passes for TTLs,
   *  timeouts and delayed retries even when nothing else happens. With at-least-once
   *  dead-lettering it also plays the host that hands dead letters over: it confirms the
   *  pending ones (a few at a time, some of them again) in place of a tick. */
  void tick_later() {
    events_.after(random_.between(ticks / 2, 2 * ticks), [this] {
      if (clock_.busy) {
        tick_later();
        return;
      }
      queue::command c;
      c.type = queue::command::kind::tick;
      const auto& pending = current->checker.pending_dead();
      if (!pending.empty() && random_.chance(0.5)) {
        c.type = queue::command::kind::dead_lettered;
        for (message_id id : pending) {
          if (c.ids.size() == 4) break;
          c.ids.push_back(id);
        }
      }
      submit(clock_, c, [this](bool, const std::string&) { tick_later(); });
    });
  }

  /** Submits `c` (stamped with the clock) to the client's target; `done(true, result)` on an
   *  answer, `done(false, "")` on a refusal or a timeout. */
  template <class Client, class Done>
  void submit(Client& who, queue::command c, Done done) {
    c.time = now_ms();
    const std::uint64_t serial = ++who.serial;
    who.busy = true;
    const std::vector<std::byte> body(c.type == queue::command::kind::enqueue ? c.size : 0);
    cluster_.submit(who.target, queue::encode(c, body),
                    [this, &who, serial, done](const outcome& o) {
                      if (!who.busy || who.serial != serial) return;
                      who.busy = false;
                      if (o.status == outcome::ok) {
                        done(true, o.result);
                        return;
                      }
                      // Follow a hint once; otherwise try the next node. The cursor moves only on
                      // the latter, so stale hints (two nodes naming each other) cannot trap a
                      // client.
                      if (o.leader_hint != raft::no_node && o.leader_hint != who.target) {
                        who.target = o.leader_hint;
                      } else {
                        who.cursor = next_node(who.cursor);
                        who.target = who.cursor;
                      }
                      done(false, std::string());
                    });
    events_.after(timeout_, [this, &who, serial, done] {
      if (!who.busy || who.serial != serial) return;
      who.busy = false;
      who.cursor = next_node(who.cursor);
      who.target = who.cursor;
      done(false, std::string());
    });
  }

  void publish_later(publisher& p, sim_time delay) {
    events_.after(delay, [this, &p] {
      if (!p.busy && !draining_) publish(p);
    });
  }
  void publish(publisher& p) {
    if (p.sequence == 0 || confirmed_.contains({p.id, p.sequence})) {
      ++p.sequence;  // a new message; otherwise the same one again (deduplicated)
      p.priority = static_cast<std::uint8_t>(random_.between(0, 2));
    }
    queue::command c;
    c.type = queue::command::kind::enqueue;
    c.producer = p.id;
    c.sequence = p.sequence;
    c.priority = p.priority;
    c.size = static_cast<std::uint32_t>(random_.between(1, 300));
    say("publisher " + std::to_string(p.id) + " sends sequence " + std::to_string(p.sequence) +
        " to node " + std::to_string(p.target));
    submit(p, c, [this, &p](bool answered, const std::string& result) {
      say("publisher " + std::to_string(p.id) + " hears " + (answered ? result : "nothing"));
      if (answered && (result == "accepted" || result == "duplicate")) {
        confirmed_.insert({p.id, p.sequence});
        p.last_confirm = events_.now();
        publish_later(p, random_.between(0, 3 * ticks));
      } else {
        publish_later(p, random_.between(ticks / 2, 2 * ticks));
      }
    });
  }

  void consume_later(consumer& c, sim_time delay) {
    events_.after(delay, [this, &c] {
      if (!c.busy) consume(c);
    });
  }
  void consume(consumer& c) {
    queue::command cmd;
    cmd.consumer = c.id;
    const std::set<message_id>& held = current->checker.held_by(c.id);
    // Attaching is idempotent: a consumer with nothing in hand attaches again now and then, in
    // case a detach whose answer it never heard took effect.
    if (!c.attached || (held.empty() && random_.chance(draining_ ? 0.5 : 0.1))) {
      cmd.type = queue::command::kind::attach;
      cmd.prefetch = static_cast<std::uint32_t>(random_.between(1, 5));
    } else if (!draining_ && random_.chance(0.02)) {
      cmd.type = queue::command::kind::detach;
    } else if (!held.empty()) {
      cmd.type = queue::command::kind::settle;
      cmd.ids = {*held.begin()};
      const std::uint64_t roll = random_.between(0, 9);
      cmd.outcome = draining_ || roll < 7 ? queue::settlement::ack
                    : roll < 9            ? queue::settlement::requeue
                                          : queue::settlement::reject;
    } else {
      consume_later(c, random_.between(1, 2 * ticks));
      return;
    }
    submit(c, cmd, [this, &c, kind = cmd.type](bool answered, const std::string& result) {
      if (answered && result != "error") {
        if (kind == queue::command::kind::attach) c.attached = true;
        if (kind == queue::command::kind::detach) c.attached = false;
      }
      if (answered && result == "error" && kind == queue::command::kind::detach) {
        c.attached = false;
      }
      consume_later(c, random_.between(0, ticks));
    });
  }

  event_queue events_;
  rng random_;
  trace_hash trace_;
  safety_checker checker_;
  cluster<queue_machine> cluster_;
  sim_time timeout_;
  std::vector<publisher> publishers_;
  std::vector<consumer> consumers_;
  consumer clock_{999, 1};
  std::set<std::pair<std::uint64_t, std::uint64_t>> confirmed_;
  bool draining_ = false;
  std::function<void(const std::string&)> log_;
};

queue::queue_options queue_options_for(const run_config& config, rng& setup) {
  queue::queue_options o;
  static constexpr std::int32_t limits[] = {-1, 0, 2, 20};
  o.delivery_limit = limits[setup.between(0, std::size(limits) - 1)];
  if (setup.chance(0.5)) {
    o.dead_letter_target = "dlx";
    if (setup.chance(0.5)) o.dead_letter = queue::dead_letter_strategy::at_least_once;
  }
  // The rules that depend on time or size, on some seeds each (a tick is 10 ms of the clock).
  if (setup.chance(0.3)) o.message_ttl_ms = setup.chance(0.5) ? 200 : 1000;
  if (setup.chance(0.3)) {
    o.max_length = setup.between(3, 10);
    o.overflow = static_cast<queue::overflow>(setup.between(1, 3));
  }
  if (setup.chance(0.3)) o.consumer_timeout_ms = setup.chance(0.5) ? 500 : 2000;
  if (setup.chance(0.3)) {
    o.retry_min_ms = 50;
    o.retry_max_ms = 400;
  }
  o.single_active_consumer = setup.chance(0.3);
  o.test_mutation = config.queue_mutant;
  return o;
}

}  // namespace

run_result run_queue(const run_config& config) {
  rng setup(config.seed);
  run_context context;
  context.options = queue_options_for(config, setup);
  current = &context;
  run_result result;
  {
    cluster_options options = detail::options_for(config, setup);
    // A queue's snapshot carries the bodies of its live messages: chunks of a few bytes would
    // make a transfer outlast the liveness bound.
    options.adjust = [inner = options.adjust](raft::options& r) {
      if (inner) inner(r);
      r.snapshot_chunk_bytes = std::max<std::uint64_t>(r.snapshot_chunk_bytes, 512);
    };
    queue_simulation sim(setup.next(), options, 2, 2);
    network& net = sim.net();
    if (config.faults.has(fault::drop)) {
      net.faults.drop = static_cast<double>(setup.between(1, 10)) / 100;
    }
    if (config.faults.has(fault::duplicate)) {
      net.faults.duplicate = static_cast<double>(setup.between(1, 5)) / 100;
    }
    if (config.faults.has(fault::reorder)) net.faults.max_delay = setup.between(50, 300);
    try {
      detail::fault_planner<queue_simulation> planner(sim, config);
      planner.start();
      sim.start();
      sim.run_ticks(static_cast<std::uint64_t>(config.ticks));
      if (sim.ok()) {
        planner.heal_majority();
        const sim_time healed = sim.events().now();
        const auto timeout = static_cast<std::uint64_t>(sim.nodes().options().election_ticks);
        const std::uint64_t bound = static_cast<std::uint64_t>(config.liveness_timeouts) * timeout;
        if (!sim.run_until([&] { return sim.every_publisher_confirmed_since(healed); }, bound) &&
            sim.ok()) {
          result.failure = "liveness: a publisher was not confirmed within " +
                           std::to_string(config.liveness_timeouts) +
                           " election timeouts after a majority was healed";
        }
        result.recovery_ticks = (sim.events().now() - healed) / ticks;
        if (result.failure.empty() && sim.ok()) {
          sim.drain();
          const bool drained = sim.run_until(
              [&] { return sim.publishers_idle() && context.checker.live() == 0; }, 4 * bound);
          if (!drained && sim.ok()) {
            result.failure = "the queue did not drain: " + std::to_string(context.checker.live()) +
                             " messages left";
          }
        }
      }
      result.faults_injected = planner.injected();
    } catch (const std::exception& e) {
      result.failure = std::string("exception: ") + e.what();
    }
    if (result.failure.empty()) {
      if (!sim.checker().ok()) {
        result.failure = sim.checker().violation();
      } else if (!context.checker.violation().empty()) {
        result.failure = context.checker.violation();
      } else {
        context.checker.check_confirmed(sim.confirmed());
        if (!context.checker.violation().empty()) result.failure = context.checker.violation();
      }
    }
    result.trace_hash = sim.trace().value();
    result.committed = sim.checker().committed_count();
    result.acknowledged = sim.confirmed().size();
    result.operations = context.checker.enqueued();
    result.messages = net.sent();
    result.quiesces = sim.nodes().quiesce_count();
    result.suspicions = sim.nodes().suspicion_count();
  }
  current = nullptr;
  result.ok = result.failure.empty();
  return result;
}

}  // namespace quorum::sim
