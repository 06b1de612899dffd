// Template bodies of quorum::raft::core. Included from core.hpp only.
#pragma once

#include <quorum/detail/assert.hpp>

#include <algorithm>
#include <string>

namespace quorum::raft {

template <log_storage Storage>
core<Storage>::core(const Storage& storage, const options& opts)
    : opts_(opts),
      storage_(&storage),
      log_(storage),
      random_(opts.seed ^ (opts.id * 0x9e3779b97f4a7c15ULL)) {
  std::string what;
  if (auto ec = validate(opts, what)) throw std::system_error(ec, what);
  const initial_state init = storage.initial_state();
  base_members_ = init.members;
  members_ = init.members;
  // The configuration in force is the latest in the log: scan for configuration entries.
  for (index_t next = log_.first_index(); next <= log_.last_index();) {
    std::error_code ec;
    auto batch = log_.entries_from(next, 4096, std::uint64_t{64} << 20, ec);
    if (ec || batch.empty()) break;
    next = batch.back().index + 1;
    record_configs(batch);
  }
  receiving_ = init.receiving;
  term_ = init.hard.term;
  vote_ = init.hard.vote;
  prev_hard_state_ = init.hard;
  prev_hard_state_.commit = log_.committed();
  become_follower(term_, no_node);
  prev_soft_state_ = current_soft_state();
  if (opts_.read_mode == read_mode::lease) {
    vote_quarantine_until_ = static_cast<std::uint64_t>(opts_.election_ticks);
  }
}

// ---- time -----------------------------------------------------------------------------------

template <log_storage Storage>
void core<Storage>::tick() {
  ++ticks_;
  fail_forwarded_proposals(true);
  if (quiesced_) return;
  if (role_ == role::leader) {
    tick_heartbeat();
  } else {
    tick_election();
  }
}

template <log_storage Storage>
void core<Storage>::tick_election() {
  ++election_elapsed_;
  // A sole voter waits for nobody: no other node can lead its group, so it campaigns at its
  // first tick instead of after an election timeout (a restarted one-replica group serves at
  // once). Timeouts are for liveness only, so this changes nothing about safety.
  const bool alone = !members_.joint() && members_.voters.size() == 1 &&
                     members_.voters.front() == opts_.id && role_ != role::candidate &&
                     role_ != role::pre_candidate;
  if ((election_elapsed_ >= randomized_timeout_ || alone) && promotable()) {
    election_elapsed_ = 0;
    campaign();
  }
}

template <log_storage Storage>
void core<Storage>::tick_heartbeat() {
  ++heartbeat_elapsed_;
  ++election_elapsed_;
  if (election_elapsed_ >= opts_.election_ticks) {
    election_elapsed_ = 0;
    // Dissertation 6.2: a leader that cannot reach a quorum steps down, so clients look for the
    // leader elsewhere instead of waiting on one that can commit nothing.
    if (opts_.check_quorum && !quorum_active()) {
      become_follower(term_, no_node);
      return;
    }
  }
  if (transferee_ != no_node && ++transfer_elapsed_ >= opts_.election_ticks) {
    // Dissertation 3.10: a transfer that has not completed within an election timeout is
    // abandoned, and the leader accepts proposals again.
    transferee_ = no_node;
  }
  if (heartbeat_elapsed_ >= opts_.heartbeat_ticks) {
    heartbeat_elapsed_ = 0;
    if (may_quiesce()) {
      quiesce();
    } else {
      start_read_round();
    }
  }
}

// ---- quiescing ------------------------------------------------------------------------------

template <log_storage Storage>
bool core<Storage>::may_quiesce() const {
  if (!opts_.quiesce || role_ != role::leader || quiet_round_ == 0) return false;
  const index_t last = log_.last_index();
  if (quiet_index_ != last || log_.committed() != last || log_.persisted_index() != last ||
      transferee_ != no_node || membership_change_in_flight() || !reads_.empty() ||
      !reads_before_commit_.empty() || receiving_.index != 0) {
    return false;
  }
  for (const auto& [peer, pr] : progress_) {
    if (peer == opts_.id) continue;
    auto acked = acked_round_.find(peer);
    if (pr.match() != last || acked == acked_round_.end() || acked->second < quiet_round_) {
      return false;
    }
  }
  return true;
}

template <log_storage Storage>
void core<Storage>::quiesce() {
  // Every peer acknowledged a heartbeat that carried commit == last: they hold and know
  // everything. The last heartbeat tells them to stop their clocks.
  quiesced_ = true;
  // The leader's clock stops with the group's, so a lease would never end: give it up. The
  // first read after waking confirms leadership with a heartbeat round.
  if (!mutated(mutation::quiesced_lease)) lease_until_ = 0;
  round_started_.clear();
  ++read_round_;
  acked_round_[opts_.id] = read_round_;
  broadcast_heartbeat(true);
}

template <log_storage Storage>
void core<Storage>::wake(bool ask_leader) {
  quiesced_ = false;
  quiet_round_ = 0;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  if (role_ == role::leader) {
    // Followers may be quiesced: heartbeat at once. Everyone gets a fresh election timeout to
    // answer before CheckQuorum counts them.
    for (auto& [peer, pr] : progress_) pr.recent_active = true;
    start_read_round();
  } else if (ask_leader && leader_ != no_node) {
    message m;
    m.type = message_type::wake;
    m.to = leader_;
    send_now(std::move(m));
  }
}

template <log_storage Storage>
void core<Storage>::unquiesce() {
  if (quiesced_) wake(true);
}

template <log_storage Storage>
void core<Storage>::reset_randomized_timeout() {
  const auto spread = static_cast<std::uint64_t>(opts_.election_ticks);
  randomized_timeout_ = opts_.election_ticks + static_cast<int>(random_.below(spread));
}

// ---- roles ----------------------------------------------------------------------------------

template <log_storage Storage>
void core<Storage>::reset(term_t term) {
  fail_reads();
  fail_forwarded_proposals(false);
  forwarded_high_.clear();
  transferee_ = no_node;
  transfer_elapsed_ = 0;
  lease_until_ = 0;
  acked_round_.clear();
  round_started_.clear();
  if (term != term_) {
    term_ = term;
    vote_ = no_node;
    transfer_tried_ = false;
  }
  leader_ = no_node;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  quiesced_ = false;
  quiet_round_ = 0;
  reset_randomized_timeout();
  votes_.clear();
  progress_.clear();
  uncommitted_bytes_ = 0;
}

template <log_storage Storage>
void core<Storage>::become_follower(term_t term, node_id leader) {
  reset(term);
  role_ = role::follower;
  leader_ = leader;
}

template <log_storage Storage>
void core<Storage>::become_pre_candidate() {
  // Dissertation 9.6: a pre-candidate changes neither its term nor its vote.
  QUORUM_ASSERT(role_ != role::leader, "a leader cannot become a pre-candidate");
  role_ = role::pre_candidate;
  leader_ = no_node;
  votes_.clear();
}

template <log_storage Storage>
void core<Storage>::become_candidate() {
  QUORUM_ASSERT(role_ != role::leader, "a leader cannot become a candidate");
  reset(term_ + 1);
  vote_ = opts_.id;
  role_ = role::candidate;
}

template <log_storage Storage>
void core<Storage>::become_leader() {
  QUORUM_ASSERT(role_ == role::candidate, "only a candidate can become leader");
  reset(term_);
  role_ = role::leader;
  leader_ = opts_.id;
  const index_t last = log_.last_index();
  auto tracked = members_.all();
  // A leader outside its own uncommitted configuration (it is removing itself) still tracks
  // its own log.
  if (!members_.contains(opts_.id)) tracked.push_back(opts_.id);
  for (node_id peer : tracked) {
    auto [it, inserted] = progress_.try_emplace(peer, last + 1, opts_.max_inflight_messages,
                                                opts_.max_inflight_bytes);
    if (peer == opts_.id) {
      // This node's own match is what it has persisted; the rest counts once advance() says so.
      it->second.reset(last + 1, log_.persisted_index());
      it->second.become_replicate();
      it->second.recent_active = true;
    }
  }
  // Paper 5.4.2 / 8: commit earlier terms' entries by committing a no-op of this term.
  const entry noop{term_, last + 1, {}};
  log_.append(std::span(&noop, 1));
  broadcast_append();
}

template <log_storage Storage>
void core<Storage>::campaign() {
  if (role_ == role::leader || !promotable()) return;
  start_election(opts_.pre_vote);
}

template <log_storage Storage>
void core<Storage>::start_election(bool pre) {
  quiesced_ = false;
  term_t vote_term;
  message_type type;
  if (pre) {
    become_pre_candidate();
    vote_term = term_ + 1;
    type = message_type::pre_vote;
  } else {
    become_candidate();
    vote_term = term_;
    type = message_type::vote;
  }
  if (tally(opts_.id, true) > 0) {
    // A group of one wins at once.
    if (pre) {
      start_election(false);
    } else {
      become_leader();
    }
    return;
  }
  for (node_id peer : members_.all()) {
    if (peer == opts_.id) continue;
    if (!members_.is_voter(peer) && !mutated(mutation::learner_votes)) continue;
    message m;
    m.type = type;
    m.to = peer;
    m.term = vote_term;
    m.index = log_.last_index();
    m.log_term = log_.last_term();
    if (!pre && campaign_for_transfer_) m.context = campaign_transfer;
    // A candidate's request vouches for its own durable vote: it leaves after persisting.
    send_after_persist(std::move(m));
  }
}

template <log_storage Storage>
int core<Storage>::tally(node_id from, bool granted) {
  votes_.try_emplace(from, granted);
  // Only this configuration's voters count; a learner's vote never does.
  membership counted = members_;
  if (mutated(mutation::learner_votes)) {
    counted.voters.insert(counted.voters.end(), counted.learners.begin(), counted.learners.end());
  }
  return counted.vote_result([this](node_id voter) {
    auto it = votes_.find(voter);
    return it == votes_.end() ? 0 : (it->second ? 1 : -1);
  });
}

template <log_storage Storage>
bool core<Storage>::in_leader_lease() const {
  if (ticks_ < vote_quarantine_until_) return true;
  return opts_.check_quorum && leader_ != no_node && election_elapsed_ < opts_.election_ticks;
}

template <log_storage Storage>
bool core<Storage>::quorum_active() {
  const bool active = members_.majority_value([this](node_id voter) -> std::uint64_t {
    if (voter == opts_.id) return 1;
    auto it = progress_.find(voter);
    return it != progress_.end() && it->second.recent_active ? 1 : 0;
  }) >= 1;
  for (auto& [peer, pr] : progress_) {
    if (peer != opts_.id) pr.recent_active = false;
  }
  return active;
}

// ---- messages in ----------------------------------------------------------------------------

namespace detail_core {

inline std::error_code check_message(const message& m, node_id self) {
  if (m.to != self) return errc::wrong_recipient;
  const auto type = static_cast<std::uint8_t>(m.type);
  if (type == 0 || type > max_message_type) return errc::malformed_message;
  if (m.from == no_node || m.from == self) return errc::malformed_message;
  if ((m.type != message_type::snapshot && m.type != message_type::propose && !m.data.empty()) ||
      (m.type != message_type::snapshot && m.last)) {
    return errc::malformed_message;
  }
  if (m.type == message_type::propose_response && !m.reject &&
      (m.index == 0 || m.log_term == 0 || m.log_term > m.term)) {
    return errc::malformed_message;
  }
  if (m.quiesce && m.type != message_type::heartbeat) return errc::malformed_message;
  if (m.type == message_type::snapshot) {
    std::string what;
    if (m.index == 0 || m.log_term == 0 || m.log_term > m.term || validate(m.members, what)) {
      return errc::malformed_message;
    }
  }
  if (!m.entries.empty()) {
    if (m.type != message_type::append) return errc::malformed_message;
    index_t expected = m.index + 1;
    for (const entry& e : m.entries) {
      // Entries are contiguous after the previous index, with terms that never decrease and
      // never exceed the sender's term.
      if (e.index != expected++ || e.term < m.log_term || e.term > m.term) {
        return errc::malformed_message;
      }
      if (e.type == entry_type::config && !decode_membership(e.payload.bytes())) {
        return errc::malformed_message;
      }
      if (static_cast<std::uint8_t>(e.type) > static_cast<std::uint8_t>(entry_type::config)) {
        return errc::malformed_message;
      }
    }
  }
  return {};
}

inline bool is_from_leader(message_type t) {
  return t == message_type::append || t == message_type::heartbeat || t == message_type::snapshot;
}

}  // namespace detail_core

template <log_storage Storage>
std::error_code core<Storage>::step(const message& m) {
  if (auto ec = detail_core::check_message(m, opts_.id)) return ec;

  // Anything but the answers to its own heartbeats wakes a quiesced node. A follower woken by
  // someone other than its leader asks the leader to resume heartbeats (it restarts its own
  // election clock meanwhile).
  const bool heartbeat_answer =
      role_ == role::leader && m.type == message_type::heartbeat_response && m.term == term_;
  if (quiesced_ && !heartbeat_answer) wake(!(m.from == leader_ && m.term == term_));

  if (m.term > term_) {
    const bool vote_request = m.type == message_type::vote || m.type == message_type::pre_vote;
    if (vote_request && m.context != campaign_transfer && in_leader_lease()) {
      // Dissertation 4.2.3: while a follower hears from a current leader it ignores vote
      // requests, so a removed or partitioned node cannot disrupt the group.
      return {};
    }
    if (m.type == message_type::pre_vote) {
      // A pre-vote proposes a future term; it changes nobody's term.
    } else if (m.type == message_type::pre_vote_response && !m.reject) {
      // A granted pre-vote echoes the proposed term; tallied below.
    } else {
      // Paper 5.1: a node that sees a higher term adopts it and becomes a follower.
      become_follower(m.term, detail_core::is_from_leader(m.type) ? m.from : no_node);
    }
  } else if (m.term < term_) {
    if ((opts_.check_quorum || opts_.pre_vote) && detail_core::is_from_leader(m.type)) {
      // A stale leader (partitioned, then back) learns our term and steps down. Without this,
      // a node stranded with a higher term by PreVote/CheckQuorum would never be heard.
      message r;
      r.type = message_type::append_response;
      r.to = m.from;
      send_after_persist(std::move(r));
    } else if (m.type == message_type::pre_vote) {
      message r;
      r.type = message_type::pre_vote_response;
      r.to = m.from;
      r.reject = true;
      send_after_persist(std::move(r));
    }
    // Paper 5.1: otherwise a message with a stale term is ignored.
    return {};
  }

  switch (m.type) {
    case message_type::pre_vote:
    case message_type::vote: handle_vote_request(m); return {};
    case message_type::read_index: handle_read_request(m.context, m.from); return {};
    case message_type::propose: handle_forwarded_proposal(m); return {};
    case message_type::propose_response: {
      auto it = forwarded_proposals_.find(m.context);
      if (it == forwarded_proposals_.end()) return {};  // answered already, or given up
      forwarded_proposals_.erase(it);
      proposal_state ps{m.context, {}, m.log_term, m.index, no_node};
      if (m.reject) {
        // A leader's refusal (back-pressure, a transfer) is exact: it takes each context once
        // per term, and no other node can append in its term. A non-leader's "not leader" is
        // not: a copy of the same proposal (the network may duplicate it) may have reached the
        // leader of that term, so the outcome is unknown.
        const auto why = static_cast<errc>(m.reject_hint);
        ps = proposal_state{m.context,
                            why == errc::uncommitted_limit || why == errc::transfer_in_progress
                                ? make_error_code(why)
                                : make_error_code(errc::outcome_unknown),
                            0, 0, m.index};
      }
      proposal_states_.push_back(ps);
      return {};
    }
    case message_type::read_index_response: {
      auto it = std::find(forwarded_reads_.begin(), forwarded_reads_.end(), m.context);
      if (it == forwarded_reads_.end()) return {};  // answered already, or failed
      forwarded_reads_.erase(it);
      read_state rs{m.context, m.reject ? 0 : m.index, {}};
      if (m.reject) rs.error = errc::read_not_confirmed;
      read_states_.push_back(rs);
      return {};
    }
    default: break;
  }
  switch (role_) {
    case role::leader: step_leader(m); break;
    case role::pre_candidate:
    case role::candidate: step_candidate(m); break;
    case role::follower: step_follower(m); break;
  }
  return {};
}

template <log_storage Storage>
void core<Storage>::handle_vote_request(const message& m) {
  const bool pre = m.type == message_type::pre_vote;
  // Paper 5.2: at most one vote per term, first come first served (a repeat is re-granted).
  // A pre-vote for a future term binds nothing, so it may be granted whatever we voted.
  const bool can_vote = vote_ == m.from || (vote_ == no_node && leader_ == no_node) ||
                        (pre && m.term > term_) || mutated(mutation::double_vote);
  message r;
  r.type = pre ? message_type::pre_vote_response : message_type::vote_response;
  r.to = m.from;
  // Paper 5.4.1: only for a candidate whose log is at least as up to date as ours.
  if (can_vote && (log_.is_up_to_date(m.index, m.log_term) || mutated(mutation::skip_log_check))) {
    r.term = m.term;
    if (!pre) {
      election_elapsed_ = 0;
      vote_ = m.from;
    }
  } else {
    r.term = term_;
    r.reject = true;
  }
  send_after_persist(std::move(r));
}

template <log_storage Storage>
void core<Storage>::step_leader(const message& m) {
  auto it = progress_.find(m.from);
  if (it == progress_.end()) return;
  class progress& pr = it->second;
  switch (m.type) {
    case message_type::append_response:
      pr.recent_active = true;
      handle_append_response(m);
      break;
    case message_type::snapshot_response:
      pr.recent_active = true;
      handle_snapshot_response(m);
      break;
    case message_type::wake:
      // A follower stopped trusting the quiet: show it that this leader is alive.
      pr.recent_active = true;
      send_heartbeat(m.from);
      break;
    case message_type::heartbeat_response: {
      pr.recent_active = true;
      pr.heartbeat_answered();
      std::uint64_t& acked = acked_round_[m.from];
      acked = std::max(acked, m.context);
      confirm_reads();
      if (pr.match() < log_.last_index()) send_append(m.from, true);
      break;
    }
    default: break;  // votes and leader messages of our own term mean nothing to a leader
  }
}

template <log_storage Storage>
void core<Storage>::handle_append_response(const message& m) {
  class progress& pr = progress_.at(m.from);
  if (m.reject) {
    // Dissertation 5.3's optimization: jump back past the follower's whole conflicting term.
    index_t next_probe = m.reject_hint;
    if (m.log_term > 0) next_probe = log_.find_conflict_by_term(m.reject_hint, m.log_term);
    if (pr.maybe_decrease_to(m.index, next_probe)) {
      if (pr.state() == progress_state::replicate) pr.become_probe();
      send_append(m.from, true);
    }
    return;
  }
  if (m.index > log_.last_index()) return;  // acknowledges entries we never sent: ignore
  const bool was_paused = pr.is_paused();
  if (!pr.maybe_update(m.index)) return;
  // A probe that matched, or a snapshot whose receipt the follower acknowledged, moves to
  // pipelined replication from the match point.
  if (pr.state() == progress_state::probe ||
      (pr.state() == progress_state::snapshot && pr.match() >= pr.snapshot_index())) {
    pr.become_replicate();
  }
  const bool committed = maybe_commit();
  // A commit may have removed this leader (it stepped down) or this follower from the group.
  if (role_ != role::leader || !progress_.contains(m.from)) return;
  if (committed) {
    broadcast_append();
  } else if (was_paused) {
    send_append(m.from, true);
  }
  if (m.from == transferee_ && pr.match() == log_.last_index()) send_timeout_now(m.from);
  maybe_promote(m.from);
  // Pipeline: keep sending while the window has room and there is something to send.
  while (send_append(m.from, false)) {
  }
}

template <log_storage Storage>
void core<Storage>::step_candidate(const message& m) {
  switch (m.type) {
    case message_type::append:
    case message_type::heartbeat:
    case message_type::snapshot:
      // Paper 5.2: a candidate that hears from a leader of its term returns to follower.
      become_follower(m.term, m.from);
      step_follower(m);
      break;
    case message_type::pre_vote_response:
    case message_type::vote_response: {
      const bool pre = role_ == role::pre_candidate;
      if (pre != (m.type == message_type::pre_vote_response)) return;
      const int result = tally(m.from, !m.reject);
      if (result > 0) {
        if (pre) {
          start_election(false);
        } else {
          become_leader();
        }
      } else if (result < 0) {
        become_follower(term_, no_node);
      }
      break;
    }
    default: break;
  }
}

template <log_storage Storage>
void core<Storage>::step_follower(const message& m) {
  switch (m.type) {
    case message_type::append:
      election_elapsed_ = 0;
      leader_ = m.from;
      handle_append(m);
      break;
    case message_type::heartbeat:
      election_elapsed_ = 0;
      leader_ = m.from;
      handle_heartbeat(m);
      break;
    case message_type::snapshot:
      election_elapsed_ = 0;
      leader_ = m.from;
      handle_snapshot(m);
      break;
    case message_type::timeout_now:
      // Dissertation 3.10: the leader hands over; campaign at once, without PreVote, and
      // mark the requests so that voters set their leases aside.
      if (promotable()) {
        campaign_for_transfer_ = true;
        start_election(false);
        campaign_for_transfer_ = false;
      }
      break;
    default: break;
  }
}

template <log_storage Storage>
void core<Storage>::handle_append(const message& m) {
  message r;
  r.type = message_type::append_response;
  r.to = m.from;
  r.term = term_;
  if (m.index < log_.committed()) {
    // Everything up to our commit index matches the leader's log (Leader Completeness).
    r.index = log_.committed();
  } else if (const auto last = log_.maybe_append(m.index, m.log_term, m.commit, m.entries)) {
    r.index = *last;
    refresh_members();
    record_configs(m.entries);
  } else {
    // Paper 5.3 consistency check failed. Hint where to probe next: our last entry at or
    // below the leader's prev index whose term is at most the leader's prev term.
    index_t hint = std::min(m.index, log_.last_index());
    hint = log_.find_conflict_by_term(hint, m.log_term);
    r.index = m.index;
    r.reject = true;
    r.reject_hint = hint;
    r.log_term = log_.term_or_zero(hint);
  }
  // An acknowledgement vouches that the entries are durable here: it leaves after persisting.
  if (mutated(mutation::ack_before_persist)) {
    send_now(std::move(r));
  } else {
    send_after_persist(std::move(r));
  }
}

template <log_storage Storage>
void core<Storage>::handle_heartbeat(const message& m) {
  log_.commit_to(std::min(m.commit, log_.last_index()));
  // Quiesce only if the leader's word is current: this node holds exactly what the leader
  // committed. (A quiesce heartbeat delayed past newer appends does not put it to sleep.)
  if (m.quiesce && m.commit == log_.last_index() && log_.committed() == m.commit &&
      receiving_.index == 0) {
    quiesced_ = true;
  }
  message r;
  r.type = message_type::heartbeat_response;
  r.to = m.from;
  r.term = term_;
  r.context = m.context;
  send_after_persist(std::move(r));
}

// ---- replication out ------------------------------------------------------------------------

template <log_storage Storage>
bool core<Storage>::maybe_commit() {
  // The highest index a majority holds (of each configuration, in joint consensus).
  const index_t candidate = members_.majority_value([this](node_id voter) -> std::uint64_t {
    auto it = progress_.find(voter);
    return it == progress_.end() ? 0 : it->second.match();
  });
  // Paper 5.4.2: only an entry of the leader's current term is committed by counting replicas;
  // earlier entries are committed indirectly by it (Figure 8).
  if (candidate > log_.committed() &&
      (log_.term_or_zero(candidate) == term_ || mutated(mutation::commit_earlier_term))) {
    log_.commit_to(candidate);
    if (!reads_before_commit_.empty() && committed_in_term()) {
      // Dissertation 6.4 step 1 is done: this leader's commit index is now current.
      auto waiting = std::exchange(reads_before_commit_, {});
      for (const pending_read& r : waiting) handle_read_request(r.context, r.requester);
    }
    after_commit();
    return true;
  }
  return false;
}

template <log_storage Storage>
void core<Storage>::broadcast_append() {
  for (node_id peer : members_.all()) {
    if (peer == opts_.id || !progress_.contains(peer)) continue;
    // One append even if empty (it carries the commit index), then fill the window.
    if (send_append(peer, true)) {
      while (send_append(peer, false)) {
      }
    }
  }
}

template <log_storage Storage>
void core<Storage>::broadcast_heartbeat(bool quiesce) {
  for (node_id peer : members_.all()) {
    if (peer != opts_.id && progress_.contains(peer)) send_heartbeat(peer, quiesce);
  }
}

template <log_storage Storage>
bool core<Storage>::send_append(node_id to, bool send_if_empty) {
  class progress& pr = progress_.at(to);
  if (pr.state() == progress_state::snapshot) return send_snapshot_chunk(to);
  if (pr.is_paused()) return false;
  const index_t prev = pr.next() - 1;
  std::error_code ec;
  const term_t prev_term = log_.term(prev, ec);
  std::vector<entry> batch;
  if (!ec) {
    batch = log_.entries_from(pr.next(), opts_.max_entries_per_message, opts_.max_bytes_per_message,
                              ec);
  }
  if (ec) {
    // The follower needs entries this log no longer has: only a snapshot can bring it up. (A
    // snapshot this node received is sent on only once installed.)
    const snapshot_meta snap = storage_->snapshot();
    if (ec != errc::compacted || snap.index + 1 < log_.first_index()) return false;
    pr.become_snapshot(snap);
    return send_snapshot_chunk(to);
  }
  if (batch.empty() && !send_if_empty) return false;
  std::uint64_t bytes = 0;
  for (const entry& e : batch) bytes += entry_footprint(e);
  message m;
  m.type = message_type::append;
  m.to = to;
  m.index = prev;
  m.log_term = prev_term;
  m.commit = log_.committed();
  const index_t last = batch.empty() ? prev : batch.back().index;
  const std::size_t count = batch.size();
  m.entries = std::move(batch);
  pr.sent_append(count, last, bytes);
  // Dissertation 10.2.1: the leader replicates before its own write is durable.
  send_now(std::move(m));
  return true;
}

template <log_storage Storage>
bool core<Storage>::send_snapshot_chunk(node_id to) {
  class progress& pr = progress_.at(to);
  if (pr.is_paused()) return false;
  std::error_code ec;
  snapshot_piece piece = storage_->read_snapshot(pr.snapshot_index(), pr.snapshot_offset(),
                                                 opts_.snapshot_chunk_bytes, ec);
  if (ec) {
    // The snapshot being sent was replaced by a newer one: start over with that.
    const snapshot_meta snap = storage_->snapshot();
    if (snap.index == pr.snapshot_index()) return false;
    pr.become_snapshot(snap);
    piece = storage_->read_snapshot(snap.index, 0, opts_.snapshot_chunk_bytes, ec);
    if (ec) return false;
  }
  message m;
  m.type = message_type::snapshot;
  m.to = to;
  m.index = pr.snapshot().index;
  m.log_term = pr.snapshot().term;
  m.context = pr.snapshot_offset();
  m.members = pr.snapshot().members;
  m.last = piece.last;
  const std::uint64_t size = piece.data.size();
  m.data = std::move(piece.data);
  pr.sent_snapshot_chunk(m.context + size, size, m.last);
  send_now(std::move(m));
  return true;
}

template <log_storage Storage>
void core<Storage>::handle_snapshot_response(const message& m) {
  class progress& pr = progress_.at(m.from);
  if (pr.state() != progress_state::snapshot || m.index != pr.snapshot().index ||
      m.log_term != pr.snapshot().term) {
    return;  // about another snapshot, or one that finished: stale
  }
  if (m.reject) {
    pr.snapshot_rewind(m.context);
  } else {
    pr.snapshot_received(m.context);
  }
  while (send_snapshot_chunk(m.from)) {
  }
}

template <log_storage Storage>
void core<Storage>::handle_snapshot(const message& m) {
  if (m.index <= log_.committed()) {
    // Paper 7: the snapshot covers nothing we lack (every committed entry matches the
    // leader's log): acknowledge our commit index instead.
    message r;
    r.type = message_type::append_response;
    r.to = m.from;
    r.index = log_.committed();
    send_after_persist(std::move(r));
    return;
  }
  if (snapshot_to_install_) {
    // A snapshot completed in this batch and is not yet handed to the host: a chunk of another
    // one would reach the storage before that install and replace it there. Drop the chunk;
    // the leader sends it again (found by the queue workload of the simulator).
    return;
  }
  if (receiving_.index != m.index || receiving_.term != m.log_term) {
    // Another snapshot than the one partly received: that one is of no more use.
    receiving_ = {m.index, m.log_term, 0};
  }
  message r;
  r.type = message_type::snapshot_response;
  r.to = m.from;
  r.index = m.index;
  r.log_term = m.log_term;
  if (m.context != receiving_.bytes && !mutated(mutation::accept_any_chunk)) {
    // Out of order (a chunk lost or reordered), or a resumed stream: say what we hold.
    r.reject = true;
    r.context = receiving_.bytes;
    send_after_persist(std::move(r));
    return;
  }
  const snapshot_meta meta{m.index, m.log_term, m.members};
  snapshot_chunks_.push_back({meta, receiving_.bytes, m.data, m.last});
  receiving_.bytes += m.data.size();
  if (!m.last) {
    // Acknowledges receipt once the chunk is durable; the leader sends on meanwhile.
    r.context = receiving_.bytes;
    send_after_persist(std::move(r));
    return;
  }
  install_snapshot(meta);
  // Receipt of the whole snapshot is acknowledged once it is durable, before the state
  // machine is restored from it: a slow restore never makes the leader send it again.
  message done;
  done.type = message_type::append_response;
  done.to = m.from;
  done.index = m.index;
  send_after_persist(std::move(done));
}

template <log_storage Storage>
void core<Storage>::install_snapshot(const snapshot_meta& meta) {
  log_.restore(meta.index, meta.term);
  receiving_ = {};
  snapshot_to_install_ = meta;
  // Dissertation 5.2: the snapshot's membership replaces the configurations it covers;
  // configuration entries after it stay only if the log after it stayed.
  std::erase_if(configs_, [&](const config_record& c) { return c.index <= meta.index; });
  base_members_ = meta.members;
  refresh_members();
}

template <log_storage Storage>
membership core<Storage>::members_at(index_t index) const {
  for (auto it = configs_.rbegin(); it != configs_.rend(); ++it) {
    if (it->index <= index) return it->members;
  }
  return base_members_;
}

template <log_storage Storage>
snapshot_meta core<Storage>::applied_meta() const {
  const index_t applied = log_.applied();
  if (applied == 0 || log_.pending_snapshot_index() != 0) return {};
  std::error_code ec;
  const term_t t = log_.term(applied, ec);
  if (ec) return {};
  return {applied, t, members_at(applied)};
}

template <log_storage Storage>
void core<Storage>::send_heartbeat(node_id to, bool quiesce) {
  const class progress& pr = progress_.at(to);
  message m;
  m.type = message_type::heartbeat;
  m.to = to;
  // Never tell a follower to commit past what it is known to hold.
  m.commit = std::min(pr.match(), log_.committed());
  m.context = read_round_;
  m.quiesce = quiesce;
  send_now(std::move(m));
}

template <log_storage Storage>
void core<Storage>::send_now(message m) {
  m.from = opts_.id;
  if (m.term == 0) m.term = term_;
  messages_.push_back(std::move(m));
}

template <log_storage Storage>
void core<Storage>::send_after_persist(message m) {
  m.from = opts_.id;
  if (m.term == 0) m.term = term_;
  persisted_messages_.push_back(std::move(m));
}

// ---- proposals ------------------------------------------------------------------------------

template <log_storage Storage>
proposal_result core<Storage>::propose(std::span<const shared_bytes> payloads) {
  proposal_result result;
  if (quiesced_ && role_ == role::leader) wake(false);
  if (role_ != role::leader) {
    result.error = errc::not_leader;
    result.leader_hint = leader_;
    return result;
  }
  if (transferee_ != no_node) {
    result.error = errc::transfer_in_progress;
    result.leader_hint = transferee_;
    return result;
  }
  std::uint64_t bytes = 0;
  for (const shared_bytes& p : payloads) bytes += p.size();
  if (opts_.max_uncommitted_bytes != 0 && uncommitted_bytes_ > 0 &&
      uncommitted_bytes_ + bytes > opts_.max_uncommitted_bytes) {
    result.error = errc::uncommitted_limit;
    result.leader_hint = leader_;
    return result;
  }
  uncommitted_bytes_ += bytes;
  std::vector<entry> batch;
  batch.reserve(payloads.size());
  index_t index = log_.last_index();
  for (const shared_bytes& p : payloads) batch.push_back(entry{term_, ++index, p});
  result.term = term_;
  result.first_index = log_.last_index() + 1;
  result.last_index = log_.append(batch);
  if (mutated(mutation::count_unpersisted_self)) {
    progress_.at(opts_.id).maybe_update(result.last_index);
  }
  broadcast_append();
  return result;
}

template <log_storage Storage>
std::error_code core<Storage>::forward(std::uint64_t context, shared_bytes payload) {
  if (context == 0) return errc::malformed_message;
  if (role_ == role::leader || leader_ == no_node) return errc::not_leader;
  // The answer is awaited by the clock: a quiesced follower resumes it (the proposal wakes
  // the leader).
  if (quiesced_) wake(false);
  forwarded_proposals_[context] = ticks_;
  message m;
  m.type = message_type::propose;
  m.to = leader_;
  m.context = context;
  m.data = std::move(payload);
  send_now(std::move(m));
  return {};
}

template <log_storage Storage>
void core<Storage>::handle_forwarded_proposal(const message& m) {
  // A proposal is not idempotent: a copy the network duplicated must not append it twice.
  // Each node's contexts only grow, so within this term anything at or below the highest seen
  // from that node is a copy (or overtaken by a later one): dropped unanswered, so the sender
  // ends it as outcome_unknown, never as refused. Older terms' copies never reach here.
  if (role_ == role::leader) {
    std::uint64_t& high = forwarded_high_[m.from];
    if (m.context <= high) return;
    high = m.context;
  }
  message r;
  r.type = message_type::propose_response;
  r.to = m.from;
  r.context = m.context;
  const proposal_result p = propose(m.data);
  if (p.error) {
    r.reject = true;
    r.reject_hint = static_cast<std::uint64_t>(p.error.value());
    r.index = p.leader_hint;
    send_now(std::move(r));
    return;
  }
  r.index = p.first_index;
  r.log_term = p.term;
  // Sent with the batch that makes the entry durable here: the answer vouches for it.
  send_after_persist(std::move(r));
}

template <log_storage Storage>
void core<Storage>::fail_forwarded_proposals(bool only_expired) {
  const auto patience = static_cast<std::uint64_t>(2 * opts_.election_ticks);
  for (auto it = forwarded_proposals_.begin(); it != forwarded_proposals_.end();) {
    if (only_expired && ticks_ - it->second < patience) {
      ++it;
      continue;
    }
    proposal_states_.push_back({it->first, errc::outcome_unknown, 0, 0, no_node});
    it = forwarded_proposals_.erase(it);
  }
}

// ---- ready / advance ------------------------------------------------------------------------

template <log_storage Storage>
bool core<Storage>::has_ready() const {
  return !messages_.empty() || !persisted_messages_.empty() || !read_states_.empty() ||
         !proposal_states_.empty() || !snapshot_chunks_.empty() || snapshot_to_install_ ||
         !log_.unstable().empty() || hard_state() != prev_hard_state_ ||
         current_soft_state() != prev_soft_state_ || log_.has_next_committed();
}

template <log_storage Storage>
ready core<Storage>::get_ready() {
  QUORUM_ASSERT(!ready_pending_, "get_ready() called twice without advance()");
  ready rd;
  if (current_soft_state() != prev_soft_state_) {
    rd.soft_state = current_soft_state();
    prev_soft_state_ = *rd.soft_state;
  }
  if (hard_state() != prev_hard_state_) rd.hard_state = hard_state();
  rd.snapshot_chunks = std::exchange(snapshot_chunks_, {});
  rd.snapshot = std::exchange(snapshot_to_install_, std::nullopt);
  rd.entries = log_.unstable();
  rd.messages = std::move(messages_);
  rd.persisted_messages = std::move(persisted_messages_);
  messages_.clear();
  persisted_messages_.clear();
  rd.committed_entries = log_.next_committed_entries(opts_.max_apply_bytes_per_ready);
  rd.read_states = std::exchange(read_states_, {});
  rd.proposal_states = std::exchange(proposal_states_, {});
  ready_pending_ = true;
  return rd;
}

template <log_storage Storage>
void core<Storage>::advance(const ready& rd) {
  QUORUM_ASSERT(ready_pending_, "advance() without get_ready()");
  ready_pending_ = false;
  if (rd.hard_state) prev_hard_state_ = *rd.hard_state;
  if (rd.snapshot) log_.snapshot_installed(rd.snapshot->index);
  if (!rd.entries.empty()) log_.stable_to(rd.entries.back().index, rd.entries.back().term);
  if (!rd.committed_entries.empty()) {
    log_.applied_to(rd.committed_entries.back().index);
    if (role_ == role::leader) {
      for (const entry& e : rd.committed_entries) {
        uncommitted_bytes_ -= std::min<std::uint64_t>(uncommitted_bytes_, e.payload.size());
      }
    }
  }
  if (rd.snapshot || !rd.committed_entries.empty()) refresh_members();
  if (role_ == role::leader) {
    // The leader's own copy counts toward commit only now that it is durable.
    if (progress_.at(opts_.id).maybe_update(log_.persisted_index()) && maybe_commit()) {
      broadcast_append();
    }
  }
}

// ---- membership -------------------------------------------------------------------------------

template <log_storage Storage>
std::error_code core<Storage>::change_membership(const membership& target) {
  if (role_ != role::leader) return errc::not_leader;
  if (transferee_ != no_node) return errc::transfer_in_progress;
  if (quiesced_) wake(false);
  std::string what;
  if (!target.voters_outgoing.empty() || validate(target, what)) return errc::invalid_membership;
  // Dissertation 4.1 (and its erratum on single-server changes): a leader changes the
  // configuration only once an entry of its own term has committed, so that no configuration
  // entry of an earlier leader that it does not know of can still commit.
  if (membership_change_in_flight() || !committed_in_term()) {
    return errc::membership_change_in_progress;
  }
  const index_t last = log_.last_index();
  for (node_id voter : target.voters) {
    if (std::find(members_.voters.begin(), members_.voters.end(), voter) != members_.voters.end()) {
      continue;
    }
    // Dissertation 4.2.1: a new voter first catches up as a learner, so that adding it does
    // not stall commits while it copies the log.
    auto it = progress_.find(voter);
    if (!members_.is_learner(voter) || it == progress_.end() ||
        it->second.match() + opts_.max_promotion_lag < last) {
      return errc::not_caught_up;
    }
  }
  auto sorted = [](std::vector<node_id> ids) {
    std::sort(ids.begin(), ids.end());
    return ids;
  };
  if (sorted(target.voters) == sorted(members_.voters)) {
    propose_config(target);  // learners only: quorums do not change, one step suffices
  } else {
    propose_config({target.voters, members_.voters, target.learners});
    if (mutated(mutation::leave_joint_early)) propose_config(target);
  }
  return {};
}

template <log_storage Storage>
void core<Storage>::propose_config(const membership& m) {
  const entry e{term_, log_.last_index() + 1, encode_membership(m), entry_type::config};
  log_.append(std::span(&e, 1));
  record_configs(std::span(&e, 1));
  broadcast_append();
}

template <log_storage Storage>
void core<Storage>::record_configs(std::span<const entry> entries) {
  for (const entry& e : entries) {
    if (e.type != entry_type::config || !log_.match_term(e.index, e.term)) continue;
    if (!configs_.empty() && configs_.back().index >= e.index) continue;  // known already
    auto decoded = decode_membership(e.payload.bytes());
    QUORUM_ASSERT(decoded.has_value(), "a configuration entry in the log does not decode");
    configs_.push_back({e.index, e.term, std::move(*decoded)});
  }
  refresh_members();
}

template <log_storage Storage>
void core<Storage>::refresh_members() {
  // A configuration entry that was truncated away no longer applies: fall back to the one
  // before it (dissertation 4.1).
  // (One compacted into a snapshot was committed: it stays.)
  while (!configs_.empty()) {
    std::error_code ec;
    const term_t t = log_.term(configs_.back().index, ec);
    if (ec == errc::compacted || (!ec && t == configs_.back().term)) break;
    configs_.pop_back();
  }
  // Configurations older than the newest applied one are history (a snapshot of the applied
  // state records the newest applied one).
  while (configs_.size() > 1 && configs_[1].index <= log_.applied()) {
    base_members_ = std::move(configs_.front().members);
    configs_.erase(configs_.begin());
  }
  const membership& latest = configs_.empty() ? base_members_ : configs_.back().members;
  if (latest == members_) return;
  members_ = latest;
  on_members_changed();
}

template <log_storage Storage>
void core<Storage>::on_members_changed() {
  if (role_ != role::leader) return;
  const auto everyone = members_.all();
  for (node_id id : everyone) {
    progress_.try_emplace(id, log_.last_index() + 1, opts_.max_inflight_messages,
                          opts_.max_inflight_bytes);
  }
  std::erase_if(progress_, [&](const auto& item) {
    return item.first != opts_.id &&
           std::find(everyone.begin(), everyone.end(), item.first) == everyone.end();
  });
}

template <log_storage Storage>
void core<Storage>::after_commit() {
  refresh_members();
  if (role_ != role::leader || config_in_flight()) return;
  if (members_.joint()) {
    // Dissertation 4.3: once the joint configuration commits, the leader moves on to the new
    // one by itself.
    propose_config({members_.voters, {}, members_.learners});
    return;
  }
  if (!members_.is_voter(opts_.id)) {
    // A leader removed from the group steps down once the new configuration is committed.
    become_follower(term_, no_node);
  }
}

template <log_storage Storage>
bool core<Storage>::promotable() const {
  if (members_.is_voter(opts_.id)) return true;
  // A voter of the committed configuration that its own uncommitted one removes may still
  // lead (dissertation 4.2.2: until the new configuration commits). Otherwise a leader that
  // removed itself and crashed before replicating the new configuration would hold the
  // longest log, refuse every candidate, and never campaign: the group would stall for good.
  bool committed_voter = base_members_.is_voter(opts_.id);
  for (auto it = configs_.rbegin(); it != configs_.rend(); ++it) {
    if (it->index <= log_.committed()) {
      committed_voter = it->members.is_voter(opts_.id);
      break;
    }
  }
  if (committed_voter) return true;
  // A non-voter holding entries beyond its commit index may hold the newest log while voters
  // count it in a configuration it never saw: it refuses their votes, so it must be able to
  // win itself (dissertation 4.2.2 lets any server campaign; votes count under the candidate's
  // configuration, its own never). Having committed its log, it steps down (after_commit).
  return log_.last_index() > log_.committed();
}

template <log_storage Storage>
void core<Storage>::maybe_promote(node_id learner) {
  if (!opts_.auto_promote_learners || role_ != role::leader || !members_.is_learner(learner)) {
    return;
  }
  membership target = members_;
  target.voters.push_back(learner);
  std::erase(target.learners, learner);
  (void)change_membership(target);  // refused while another change is in flight; tried again
}

// ---- reads and transfers ----------------------------------------------------------------------

template <log_storage Storage>
std::error_code core<Storage>::read_index(std::uint64_t context) {
  if (context == 0) return errc::malformed_message;
  if (quiesced_ && role_ == role::leader) wake(false);
  if (role_ == role::leader) {
    handle_read_request(context, opts_.id);
    return {};
  }
  if (leader_ == no_node) return errc::read_not_confirmed;
  forwarded_reads_.push_back(context);
  message m;
  m.type = message_type::read_index;
  m.to = leader_;
  m.context = context;
  send_after_persist(std::move(m));
  return {};
}

template <log_storage Storage>
void core<Storage>::handle_read_request(std::uint64_t context, node_id requester) {
  if (role_ != role::leader) {
    answer_read(context, requester, 0, false);
    return;
  }
  if (mutated(mutation::unconfirmed_reads)) {
    answer_read(context, requester, log_.committed(), true);
    return;
  }
  if (!committed_in_term()) {
    // Dissertation 6.4 step 1: until an entry of its own term commits, a new leader does not
    // know the latest commit index.
    reads_before_commit_.push_back({context, 0, 0, requester});
    return;
  }
  const bool lease_valid =
      opts_.read_mode == read_mode::lease && !transfer_tried_ && ticks_ < lease_until_;
  if (lease_valid) {
    answer_read(context, requester, log_.committed(), true);
    return;
  }
  // Dissertation 6.4 steps 2-3: the read waits for a heartbeat round that starts after it.
  reads_.push_back({context, log_.committed(), read_round_ + 1, requester});
  start_read_round();
}

template <log_storage Storage>
void core<Storage>::start_read_round() {
  ++read_round_;
  round_started_[read_round_] = ticks_;
  acked_round_[opts_.id] = read_round_;
  if (opts_.quiesce) {
    // A round whose heartbeats tell every peer that the whole log is committed: once all
    // acknowledge it, the group may quiesce (unless the log grew meanwhile).
    const index_t last = log_.last_index();
    bool quiet = log_.committed() == last;
    for (const auto& [peer, pr] : progress_) quiet = quiet && pr.match() == last;
    if (!quiet) {
      quiet_round_ = 0;
    } else if (quiet_round_ == 0 || quiet_index_ != last) {
      quiet_round_ = read_round_;
      quiet_index_ = last;
    }
  }
  broadcast_heartbeat();
  confirm_reads();
}

template <log_storage Storage>
void core<Storage>::confirm_reads() {
  // The highest round a quorum of voters (this leader included) has acknowledged.
  const std::uint64_t confirmed = members_.majority_value([this](node_id voter) -> std::uint64_t {
    auto it = acked_round_.find(voter);
    return it == acked_round_.end() ? 0 : it->second;
  });
  // Dissertation 6.4.1: followers that acknowledged a round started at tick T vote for nobody
  // else before T + election timeout; the drift bound covers clocks that run at other rates.
  for (auto it = round_started_.begin(); it != round_started_.end() && it->first <= confirmed;) {
    const std::uint64_t end = it->second + static_cast<std::uint64_t>(opts_.election_ticks) -
                              static_cast<std::uint64_t>(opts_.lease_drift_ticks);
    lease_until_ = std::max(lease_until_, end);
    it = round_started_.erase(it);
  }
  std::size_t done = 0;
  while (done < reads_.size() && reads_[done].round <= confirmed) {
    answer_read(reads_[done].context, reads_[done].requester, reads_[done].index, true);
    ++done;
  }
  reads_.erase(reads_.begin(), reads_.begin() + static_cast<std::ptrdiff_t>(done));
}

template <log_storage Storage>
void core<Storage>::answer_read(std::uint64_t context, node_id requester, index_t index,
                                bool confirmed) {
  if (requester == opts_.id) {
    read_state rs{context, confirmed ? index : 0, {}};
    if (!confirmed) rs.error = errc::read_not_confirmed;
    read_states_.push_back(rs);
    return;
  }
  message m;
  m.type = message_type::read_index_response;
  m.to = requester;
  m.context = context;
  m.index = index;
  m.reject = !confirmed;
  send_now(std::move(m));
}

template <log_storage Storage>
void core<Storage>::fail_reads() {
  for (const auto* list : {&reads_, &reads_before_commit_}) {
    for (const pending_read& r : *list) answer_read(r.context, r.requester, 0, false);
  }
  reads_.clear();
  reads_before_commit_.clear();
  for (std::uint64_t context : forwarded_reads_) {
    read_states_.push_back({context, 0, errc::read_not_confirmed});
  }
  forwarded_reads_.clear();
}

template <log_storage Storage>
std::error_code core<Storage>::transfer_leadership(node_id target) {
  if (role_ != role::leader) return errc::not_leader;
  if (!members_.is_voter(target)) return errc::invalid_transfer_target;
  if (quiesced_) wake(false);
  if (target == opts_.id || target == transferee_) return {};
  transferee_ = target;
  transfer_elapsed_ = 0;
  transfer_tried_ = true;  // the target may lead before any lease of ours would end
  if (progress_.at(target).match() == log_.last_index()) {
    send_timeout_now(target);
  } else {
    send_append(target, true);
  }
  return {};
}

template <log_storage Storage>
void core<Storage>::send_timeout_now(node_id to) {
  message m;
  m.type = message_type::timeout_now;
  m.to = to;
  send_now(std::move(m));
}

template <log_storage Storage>
const class progress* core<Storage>::progress_of(node_id peer) const {
  auto it = progress_.find(peer);
  return it == progress_.end() ? nullptr : &it->second;
}

}  // namespace quorum::raft
