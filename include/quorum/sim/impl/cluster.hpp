// Template bodies of quorum::sim::cluster. Included from cluster.hpp only.
#pragma once

#include <algorithm>
#include <cstdio>

namespace quorum::sim {

namespace detail_cluster {
inline std::vector<raft::node_id> make_ids(std::size_t count) {
  std::vector<raft::node_id> ids;
  for (raft::node_id id = 1; id <= count; ++id) ids.push_back(id);
  return ids;
}

inline term_lookup term_lookup_of(const raft::core<disk>* core) {
  return [core](raft::index_t i) -> std::optional<raft::term_t> {
    std::error_code ec;
    const raft::term_t t = core->log().term(i, ec);
    if (ec == errc::compacted) return std::nullopt;
    return ec ? 0 : t;
  };
}
}  // namespace detail_cluster

template <state_machine StateMachine>
cluster<StateMachine>::cluster(event_queue& events, rng& random, trace_hash& trace,
                               safety_checker& checker, cluster_options options)
    : events_(&events),
      random_(&random),
      trace_(&trace),
      checker_(&checker),
      options_(std::move(options)),
      ids_(detail_cluster::make_ids(options_.nodes)),
      network_(events, random, ids_, [this](const raft::message& m) { deliver(m); }) {
  const raft::membership members{ids_};
  for (raft::node_id id : ids_) {
    auto n = std::make_unique<node>(members);
    n->id = id;
    n->storage.arm(random, options_.disk);
    if (options_.max_clock_skew > 0) {
      const auto spread = static_cast<std::uint64_t>(options_.max_clock_skew * ticks);
      const auto drift = static_cast<sim_time>(random.between(0, 2 * spread));
      n->tick_length = ticks - spread + drift;
    }
    nodes_.push_back(std::move(n));
  }
  for (auto& n : nodes_) boot(*n);
}

template <state_machine StateMachine>
template <class... Args>
void cluster<StateMachine>::log(const char* format, Args... args) {
  if (!options_.log) return;
  char line[256];
  const int prefix =
      std::snprintf(line, sizeof line, "%8llu ", static_cast<unsigned long long>(events_->now()));
  std::snprintf(line + prefix, sizeof line - static_cast<std::size_t>(prefix), format, args...);
  options_.log(line);
}

template <state_machine StateMachine>
void cluster<StateMachine>::boot(node& n) {
  raft::options o;
  o.id = n.id;
  o.seed = random_->next();
  o.election_ticks = options_.election_ticks;
  o.heartbeat_ticks = options_.heartbeat_ticks;
  if (options_.adjust) options_.adjust(o);
  n.raft = std::make_unique<raft::core<disk>>(n.storage, o);
  n.machine = StateMachine{};
  n.status = node_status::up;
  n.applied = 0;
  if constexpr (snapshottable<StateMachine>) {
    // A restarted node resumes from its snapshot, then applies the log after it.
    const raft::snapshot_meta snap = n.storage.snapshot();
    if (snap.index != 0) {
      if (!n.machine.restore(n.storage.snapshot_data())) {
        checker_->fail("node " + std::to_string(n.id) + " cannot restore its own snapshot");
      }
      n.applied = snap.index;
    }
  }
  n.observed_leader_term = 0;
  ++n.generation;
  schedule_tick(n);
}

template <state_machine StateMachine>
void cluster<StateMachine>::schedule_tick(node& n) {
  const std::uint64_t generation = n.generation;
  events_->after(n.tick_length, [this, &n, generation] {
    if (n.generation != generation) return;
    if (n.status == node_status::up) {
      // A quiesced core ignores ticks: its host stops its timer (as runtime::replica does) and
      // only the failure detector runs.
      if (n.raft->quiesced()) {
        detect_failures(n);
      } else {
        n.leader_silent_ticks = 0;
        guarded(n, [&] { n.raft->tick(); });
      }
    } else if (n.status == node_status::paused) {
      ++n.missed_ticks;
    }
    if (n.generation == generation) schedule_tick(n);
  });
}

template <state_machine StateMachine>
void cluster<StateMachine>::detect_failures(node& n) {
  if (options_.suspect_after_ticks <= 0) return;
  const raft::node_id leader = n.raft->leader();
  if (leader == raft::no_node || leader == n.id) return;
  if (random_->chance(options_.false_suspicion)) {
    suspect(n, "wrongly");
    return;
  }
  const node& l = node_at(leader);
  const bool reachable = l.status == node_status::up && !network_.blocked(leader, n.id) &&
                         !network_.blocked(n.id, leader) && !network_.clogged(leader, n.id) &&
                         !network_.clogged(n.id, leader);
  n.leader_silent_ticks = reachable ? 0 : n.leader_silent_ticks + 1;
  if (n.leader_silent_ticks >= options_.suspect_after_ticks) suspect(n, "after silence");
}

template <state_machine StateMachine>
void cluster<StateMachine>::suspect(node& n, const char* why) {
  if (n.status != node_status::up || !n.raft->quiesced()) return;
  log("node %llu suspects its leader %llu %s", static_cast<unsigned long long>(n.id),
      static_cast<unsigned long long>(n.raft->leader()), why);
  trace_->add("suspect");
  trace_->add(n.id);
  ++suspicions_;
  n.leader_silent_ticks = 0;
  guarded(n, [&] { n.raft->unquiesce(); });
}

template <state_machine StateMachine>
template <class Action>
void cluster<StateMachine>::guarded(node& n, Action&& action) {
  try {
    action();
    pump(n);
  } catch (const disk_failure& e) {
    log("node %llu stops on a disk failure: %s", static_cast<unsigned long long>(n.id), e.what());
    trace_->add("disk failure");
    trace_->add(n.id);
    crash(n.id);
    if (e.code() == errc::corruption) n.status = node_status::failed;
    return;
  }
  observe(n);
}

template <state_machine StateMachine>
void cluster<StateMachine>::deliver(const raft::message& m) {
  node& n = node_at(m.to);
  switch (n.status) {
    case node_status::down:
    case node_status::failed: return;
    case node_status::paused: n.held.push_back(m); return;
    case node_status::up: break;
  }
  log("deliver %s %llu->%llu term %llu index %llu log_term %llu commit %llu entries %zu%s",
      std::string(raft::to_string(m.type)).c_str(), static_cast<unsigned long long>(m.from),
      static_cast<unsigned long long>(m.to), static_cast<unsigned long long>(m.term),
      static_cast<unsigned long long>(m.index), static_cast<unsigned long long>(m.log_term),
      static_cast<unsigned long long>(m.commit), m.entries.size(), m.reject ? " reject" : "");
  trace_->add(static_cast<std::uint64_t>(m.type));
  trace_->add(m.from * 1000 + m.to);
  trace_->add(m.term);
  trace_->add(m.index);
  guarded(n, [&] {
    if (auto ec = n.raft->step(m)) {
      checker_->fail("node " + std::to_string(n.id) +
                     " refused a message from the simulator: " + ec.message());
    }
  });
}

template <state_machine StateMachine>
void cluster<StateMachine>::pump(node& n) {
  if (n.status != node_status::up) return;
  if (n.persisting) {
    // The leader replicates while its own write is in flight.
    for (const raft::message& m : n.raft->take_messages()) network_.send(m);
    return;
  }
  if (!n.raft->has_ready()) return;
  raft::ready rd = n.raft->get_ready();
  if (rd.soft_state) {
    log("node %llu is %s in term %llu", static_cast<unsigned long long>(n.id),
        std::string(raft::to_string(rd.soft_state->current_role)).c_str(),
        static_cast<unsigned long long>(n.raft->term()));
  }
  if (rd.hard_state || !rd.entries.empty()) {
    log("node %llu writes hard state (term %llu vote %llu commit %llu) and %zu entries from %llu",
        static_cast<unsigned long long>(n.id),
        static_cast<unsigned long long>(n.raft->hard_state().term),
        static_cast<unsigned long long>(n.raft->hard_state().vote),
        static_cast<unsigned long long>(n.raft->hard_state().commit), rd.entries.size(),
        static_cast<unsigned long long>(rd.entries.empty() ? 0 : rd.entries.front().index));
  }
  if (!rd.entries.empty()) {
    checker_->on_entries(n.id, n.raft->log().term_or_zero(rd.entries.front().index - 1),
                         rd.entries);
  }
  for (const raft::message& m : rd.messages) network_.send(m);
  for (const raft::snapshot_chunk& c : rd.snapshot_chunks) n.storage.write_snapshot_chunk(c);
  if (rd.snapshot) {
    log("node %llu installs snapshot at index %llu term %llu",
        static_cast<unsigned long long>(n.id), static_cast<unsigned long long>(rd.snapshot->index),
        static_cast<unsigned long long>(rd.snapshot->term));
    n.storage.install_snapshot(*rd.snapshot);
  }
  n.storage.append(rd.entries);
  if (rd.hard_state) n.storage.set_hard_state(*rd.hard_state);
  const bool must_sync = n.storage.has_unsynced();
  n.persisting = std::move(rd);
  if (!must_sync) {
    finish_persist(n);
    return;
  }
  const std::uint64_t generation = n.generation;
  const sim_time latency =
      n.disk_slowdown * random_->between(options_.min_disk_latency, options_.max_disk_latency);
  events_->after(latency, [this, &n, generation] {
    if (n.generation != generation) return;
    guarded(n, [&] { finish_persist(n); });
  });
}

template <state_machine StateMachine>
void cluster<StateMachine>::finish_persist(node& n) {
  if (n.status == node_status::paused) {
    // A frozen process finishes its write when it runs again.
    const std::uint64_t generation = n.generation;
    events_->after(ticks, [this, &n, generation] {
      if (n.generation == generation) guarded(n, [&] { finish_persist(n); });
    });
    return;
  }
  if (n.storage.sync()) {
    // Principle 2: an fsync error stops the node; it is never retried and ignored.
    log("node %llu stops on an fsync failure", static_cast<unsigned long long>(n.id));
    trace_->add("fsync failure");
    crash(n.id);
    return;
  }
  raft::ready rd = std::move(*n.persisting);
  n.persisting.reset();
  for (const raft::message& m : rd.persisted_messages) network_.send(m);
  if (rd.snapshot) restore(n, *rd.snapshot);
  for (const raft::entry& e : rd.committed_entries) apply(n, e);
  on_proposal_states(n, rd.proposal_states);
  on_read_states(n, rd.read_states);
  n.raft->advance(rd);
  maybe_snapshot(n);
  pump(n);
}

template <state_machine StateMachine>
void cluster<StateMachine>::restore(node& n, const raft::snapshot_meta& meta) {
  if constexpr (snapshottable<StateMachine>) {
    log("node %llu restores its state machine from the snapshot at index %llu",
        static_cast<unsigned long long>(n.id), static_cast<unsigned long long>(meta.index));
    const raft::shared_bytes data = n.storage.snapshot_data();
    checker_->on_restore(n.id, meta.index, meta.term, payload_hash(data));
    trace_->add("restore");
    trace_->add(meta.index);
    n.machine = StateMachine{};
    if (!n.machine.restore(data)) {
      checker_->fail("node " + std::to_string(n.id) + " received a snapshot it cannot restore");
    }
    n.applied = meta.index;
    // Proposals the snapshot covers never reach this node's apply: their clients time out.
    n.proposals.erase(n.proposals.begin(), n.proposals.upper_bound(meta.index));
  } else {
    checker_->fail("a snapshot reached a state machine that cannot restore one");
  }
}

template <state_machine StateMachine>
void cluster<StateMachine>::maybe_snapshot(node& n) {
  if constexpr (snapshottable<StateMachine>) {
    if (options_.snapshot_every == 0) return;
    const raft::snapshot_meta meta = n.raft->applied_meta();
    if (meta.index < n.storage.snapshot().index + options_.snapshot_every) return;
    const raft::shared_bytes data = n.machine.snapshot();
    checker_->on_snapshot(n.id, meta.index, meta.term, payload_hash(data));
    log("node %llu takes a snapshot at index %llu (%zu bytes)",
        static_cast<unsigned long long>(n.id), static_cast<unsigned long long>(meta.index),
        data.size());
    trace_->add("snapshot");
    trace_->add(meta.index);
    if constexpr (requires(const StateMachine& m) {
                    { m.kept_entries() } -> std::same_as<std::vector<raft::index_t>>;
                  }) {
      // Entries the state still refers to (a queue's live bodies) stay past compaction.
      if (n.storage.create_snapshot(meta, data, n.machine.kept_entries())) return;
    } else if (n.storage.create_snapshot(meta, data)) {
      return;
    }
    const raft::index_t trailing = random_->between(0, options_.snapshot_trailing);
    if (meta.index > trailing) (void)n.storage.compact(meta.index - trailing);
  }
}

template <state_machine StateMachine>
void cluster<StateMachine>::apply(node& n, const raft::entry& e) {
  log("node %llu applies index %llu term %llu", static_cast<unsigned long long>(n.id),
      static_cast<unsigned long long>(e.index), static_cast<unsigned long long>(e.term));
  checker_->on_apply(n.id, n.raft->term(), e);
  n.applied = e.index;
  trace_->add(n.id);
  trace_->add(e.index);
  std::string result;
  if (!e.payload.empty()) result = n.machine.apply(e);
  auto it = n.proposals.find(e.index);
  if (it == n.proposals.end()) return;
  proposal p = std::move(it->second);
  n.proposals.erase(it);
  outcome o;
  o.index = e.index;
  if (p.term == e.term) {
    o.status = outcome::ok;
    o.result = std::move(result);
    checker_->on_acknowledged(e.index, e.term);
  } else {
    o.status = outcome::lost;  // another leader's entry took this index
  }
  reply(std::move(p.done), std::move(o));
}

template <state_machine StateMachine>
void cluster<StateMachine>::observe(node& n) {
  if (!n.raft) return;
  const bool quiesced = n.raft->quiesced();
  if (quiesced && !n.was_quiesced) {
    log("node %llu quiesces", static_cast<unsigned long long>(n.id));
    ++quiesces_;
  }
  n.was_quiesced = quiesced;
  if (n.raft->current_role() != raft::role::leader) return;
  const raft::term_t term = n.raft->term();
  if (term == n.observed_leader_term) return;
  n.observed_leader_term = term;
  const auto* core = n.raft.get();
  checker_->on_leader(n.id, term, detail_cluster::term_lookup_of(core));
  if (leader_observer_) leader_observer_(n.id, term);
}

template <state_machine StateMachine>
void cluster<StateMachine>::reply(reply_handler done, outcome result) {
  const sim_time latency =
      random_->between(options_.min_client_latency, options_.max_client_latency);
  events_->after(latency, [done = std::move(done), result = std::move(result)] { done(result); });
}

template <state_machine StateMachine>
void cluster<StateMachine>::submit(raft::node_id to, raft::shared_bytes command,
                                   reply_handler done) {
  const sim_time latency =
      random_->between(options_.min_client_latency, options_.max_client_latency);
  events_->after(latency, [this, to, command = std::move(command), done = std::move(done)] {
    node& n = node_at(to);
    if (n.status != node_status::up) return;  // the client will time out
    guarded(n, [&] {
      raft::proposal_result r = n.raft->propose(command);
      if (r.error == errc::not_leader && r.leader_hint != raft::no_node &&
          options_.forward_proposals) {
        // Contexts grow across restarts (core::forward): the generation counts them.
        const std::uint64_t context = (n.generation << 32) + ++n.next_forward;
        if (!n.raft->forward(context, command)) {
          n.forwards[context] = done;
          return;
        }
      }
      if (r.error) {
        outcome o;
        o.status = outcome::refused;
        o.leader_hint = r.leader_hint;
        reply(done, std::move(o));
        return;
      }
      n.proposals[r.first_index] = proposal{r.term, done};
    });
  });
}

template <state_machine StateMachine>
void cluster<StateMachine>::submit_read(raft::node_id to, std::string query,
                                        reply_handler done) requires queryable<StateMachine> {
  const sim_time latency =
      random_->between(options_.min_client_latency, options_.max_client_latency);
  events_->after(latency, [this, to, query = std::move(query), done = std::move(done)] {
    node& n = node_at(to);
    if (n.status != node_status::up) return;
    guarded(n, [&] {
      const std::uint64_t context = ++n.next_read;
      if (n.raft->read_index(context)) {
        outcome o;
        o.status = outcome::refused;
        o.leader_hint = n.raft->leader();
        reply(done, std::move(o));
        return;
      }
      n.reads[context] = pending_read{query, done};
    });
  });
}

template <state_machine StateMachine>
void cluster<StateMachine>::on_proposal_states(node& n,
                                               const std::vector<raft::proposal_state>& states) {
  for (const raft::proposal_state& ps : states) {
    auto it = n.forwards.find(ps.context);
    if (it == n.forwards.end()) continue;
    reply_handler done = std::move(it->second);
    n.forwards.erase(it);
    if (ps.error == errc::outcome_unknown) continue;  // no answer: the client times out
    if (ps.error) {
      outcome o;  // the leader refused: certainly not appended
      o.status = outcome::refused;
      o.leader_hint = ps.leader_hint;
      reply(done, std::move(o));
      continue;
    }
    // Applied here already (the commit outran the answer): its result is gone, no answer.
    if (ps.index <= n.applied) continue;
    auto [slot, fresh] = n.proposals.try_emplace(ps.index, proposal{ps.term, done});
    if (!fresh && slot->second.term < ps.term) slot->second = proposal{ps.term, done};
  }
}

template <state_machine StateMachine>
void cluster<StateMachine>::on_read_states(node& n, const std::vector<raft::read_state>& states) {
  for (const raft::read_state& rs : states) {
    auto it = n.reads.find(rs.context);
    if (it == n.reads.end()) continue;
    if (rs.error) {
      outcome o;
      o.status = outcome::refused;
      o.leader_hint = n.raft->leader();
      reply(std::move(it->second.done), std::move(o));
      n.reads.erase(it);
      continue;
    }
    it->second.index = rs.index;
    it->second.confirmed = true;
  }
  serve_reads(n);
}

template <state_machine StateMachine>
void cluster<StateMachine>::serve_reads(node& n) {
  if constexpr (queryable<StateMachine>) {
    // Dissertation 6.4 step 4: answer once the state machine has caught up with the read index.
    for (auto it = n.reads.begin(); it != n.reads.end();) {
      if (!it->second.confirmed || it->second.index > n.applied) {
        ++it;
        continue;
      }
      log("node %llu serves read %llu at applied index %llu (read index %llu)",
          static_cast<unsigned long long>(n.id), static_cast<unsigned long long>(it->first),
          static_cast<unsigned long long>(n.applied),
          static_cast<unsigned long long>(it->second.index));
      outcome o;
      o.status = outcome::ok;
      o.index = it->second.index;
      o.result = n.machine.query(it->second.query);
      reply(std::move(it->second.done), std::move(o));
      it = n.reads.erase(it);
    }
  }
}

template <state_machine StateMachine>
void cluster<StateMachine>::transfer(raft::node_id from, raft::node_id to) {
  node& n = node_at(from);
  if (n.status != node_status::up || n.raft->current_role() != raft::role::leader) return;
  log("node %llu transfers leadership to %llu", static_cast<unsigned long long>(from),
      static_cast<unsigned long long>(to));
  guarded(n, [&] { (void)n.raft->transfer_leadership(to); });
}

template <state_machine StateMachine>
void cluster<StateMachine>::change_membership(raft::node_id leader,
                                              const raft::membership& target) {
  node& n = node_at(leader);
  if (n.status != node_status::up || n.raft->current_role() != raft::role::leader) return;
  guarded(n, [&] {
    const std::error_code ec = n.raft->change_membership(target);
    log("node %llu changes membership to %zu voters, %zu learners: %s",
        static_cast<unsigned long long>(leader), target.voters.size(), target.learners.size(),
        ec ? ec.message().c_str() : "accepted");
  });
}

template <state_machine StateMachine>
void cluster<StateMachine>::crash(raft::node_id id) {
  node& n = node_at(id);
  if (n.status == node_status::down || n.status == node_status::failed) return;
  log("node %llu crashes", static_cast<unsigned long long>(id));
  trace_->add("crash");
  trace_->add(id);
  n.storage.crash();
  n.raft.reset();
  n.persisting.reset();
  n.proposals.clear();
  n.forwards.clear();
  n.next_forward = 0;  // as a restarted process would; the generation keeps contexts growing
  n.reads.clear();
  n.held.clear();
  n.status = node_status::down;
  n.missed_ticks = 0;
  n.was_quiesced = false;
  ++n.generation;
  if (options_.suspect_after_ticks > 0) {
    // Its peers' connections to it are reset: quiesced followers suspect it soon.
    for (auto& other : nodes_) {
      if (other->status != node_status::up || !other->raft->quiesced() ||
          other->raft->leader() != id) {
        continue;
      }
      const std::uint64_t generation = other->generation;
      node* o = other.get();
      events_->after(random_->between(1, ticks), [this, o, generation] {
        if (o->generation == generation) suspect(*o, "after its connection reset");
      });
    }
  }
}

template <state_machine StateMachine>
void cluster<StateMachine>::restart(raft::node_id id) {
  node& n = node_at(id);
  if (n.status != node_status::down) return;
  log("node %llu restarts", static_cast<unsigned long long>(id));
  trace_->add("restart");
  trace_->add(id);
  if (auto ec = n.storage.recover()) {
    log("node %llu cannot start: %s", static_cast<unsigned long long>(id), ec.message().c_str());
    // Damage before the tail keeps it out until repaired; a read error may pass (found by the
    // queue workload: a transient error here used to keep a node out for good).
    n.status = ec == errc::corruption ? node_status::failed : node_status::down;
    return;
  }
  try {
    boot(n);  // reads the log to find its latest configuration
  } catch (const disk_failure& e) {
    log("node %llu cannot start: %s", static_cast<unsigned long long>(id), e.what());
    n.raft.reset();
    ++n.generation;
    n.status = e.code() == errc::corruption ? node_status::failed : node_status::down;
    return;
  }
  const auto* core = n.raft.get();
  checker_->on_restart(id, n.storage.durable_hard_state().commit, n.applied,
                       detail_cluster::term_lookup_of(core));
  guarded(n, [] {});
}

template <state_machine StateMachine>
void cluster<StateMachine>::pause(raft::node_id id) {
  node& n = node_at(id);
  log("node %llu pauses", static_cast<unsigned long long>(id));
  if (n.status == node_status::up) n.status = node_status::paused;
}

template <state_machine StateMachine>
void cluster<StateMachine>::resume(raft::node_id id) {
  node& n = node_at(id);
  if (n.status != node_status::paused) return;
  log("node %llu resumes", static_cast<unsigned long long>(id));
  n.status = node_status::up;
  // A correct host feeds ticks from a monotonic clock: after a stall it first delivers the
  // ticks it missed, before anything else can happen (lease reads depend on it).
  for (; n.missed_ticks > 0 && n.status == node_status::up; --n.missed_ticks) {
    guarded(n, [&] { n.raft->tick(); });
  }
  n.missed_ticks = 0;
  auto held = std::move(n.held);
  n.held.clear();
  for (const raft::message& m : held) {
    if (n.status != node_status::up) break;
    deliver(m);
  }
  if (n.status == node_status::up) guarded(n, [] {});
}

template <state_machine StateMachine>
raft::node_id cluster<StateMachine>::leader() const {
  raft::node_id best = raft::no_node;
  raft::term_t best_term = 0;
  for (const auto& n : nodes_) {
    if (n->status == node_status::up && n->raft->current_role() == raft::role::leader &&
        n->raft->term() >= best_term) {
      best = n->id;
      best_term = n->raft->term();
    }
  }
  return best;
}

}  // namespace quorum::sim
