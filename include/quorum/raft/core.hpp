// The pure Raft core: a deterministic state machine with no clock, sockets, threads or files.
// Inputs are tick(), step(message) and propose(); output is a `ready` batch that the host
// persists, sends and applies before calling advance(). Not thread-safe: one thread or strand
// drives a core, and the storage it reads, at a time.
#pragma once

#include <quorum/detail/random.hpp>
#include <quorum/error.hpp>
#include <quorum/raft/log.hpp>
#include <quorum/raft/message.hpp>
#include <quorum/raft/options.hpp>
#include <quorum/raft/progress.hpp>
#include <quorum/raft/ready.hpp>
#include <quorum/raft/storage.hpp>
#include <quorum/raft/types.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

namespace quorum::raft {

/** The outcome of core::propose. */
struct proposal_result {
  /** Empty on success; errc::not_leader or errc::uncommitted_limit otherwise. */
  std::error_code error;
  /** On success: the term and index range the proposal occupies in the log. */
  term_t term = 0;
  index_t first_index = 0;
  index_t last_index = 0;
  /** On errc::not_leader: the leader this node knows of, or no_node. */
  node_id leader_hint = no_node;
};

/**
 * One member of a Raft group.
 *
 * The core reads the durable log through `Storage` (the host writes it from ready batches).
 * PreVote and CheckQuorum are on by default. Time advances only through tick().
 */
template <log_storage Storage>
class core {
 public:
  /**
   * Starts from the durable state in `storage` (which must outlive the core) as a follower.
   * Throws std::system_error with errc::invalid_options naming the field if `opts` is invalid.
   */
  core(const Storage& storage, const options& opts);

  /** Advances logical time by one tick: election timeouts, heartbeats, CheckQuorum. */
  void tick();

  /**
   * Feeds one message from a peer. Returns errc::wrong_recipient or errc::malformed_message
   * (and changes nothing) for a message this node must not act on; stale messages are not
   * errors, they are ignored or answered as Raft says.
   */
  std::error_code step(const message& m);

  /**
   * Appends `payloads` as new entries if this node is the leader, and starts replicating them.
   * The entries are committed once a majority (counting this node only after it persisted
   * them) holds them, and then appear in a ready batch's committed_entries.
   * Fails with errc::not_leader (with a leader hint) or errc::uncommitted_limit.
   */
  proposal_result propose(std::span<const shared_bytes> payloads);

  /** propose() for one payload. */
  proposal_result propose(shared_bytes payload) { return propose(std::span(&payload, 1)); }

  /**
   * Forwards `payload` to the leader this follower knows of, which appends it as propose()
   * would and answers once the entry is durable on the leader. The answer arrives in a later
   * ready batch's proposal_states under `context`: where the entry landed, the leader's
   * refusal, or
   * errc::outcome_unknown if this node's term changes or no answer comes within two election
   * timeouts (the proposal may still commit). Returns errc::not_leader if no leader is known,
   * or if this node is the leader (call propose()), errc::malformed_message for context 0.
   *
   * `context` must grow with every call, for the node's whole life and across its restarts
   * (e.g. start from a clock's microseconds): the leader takes a context at or below the last
   * one it took from this node in its term for a duplicate, and drops it, since appending a
   * proposal twice would apply it twice.
   */
  std::error_code forward(std::uint64_t context, shared_bytes payload);

  /** Starts an election now (with PreVote if enabled), as if the election timeout expired. */
  void campaign();

  /**
   * Requests a linearizable read (dissertation 6.4) identified by `context` (non-zero, unique
   * among this node's reads in flight). On the leader: confirmed by a quorum heartbeat round,
   * or at once under a valid lease (read_mode::lease). On a follower: forwarded to the leader.
   * The answer arrives in a later ready batch's read_states: the index to wait for, or
   * errc::read_not_confirmed (leadership lost). Returns errc::read_not_confirmed at once if no
   * leader is known, errc::malformed_message for context 0.
   */
  std::error_code read_index(std::uint64_t context);

  /**
   * Hands leadership to the voter `target` (dissertation 3.10): brings it up to date, then
   * tells it to campaign at once. Proposals are refused with errc::transfer_in_progress
   * meanwhile; the transfer is abandoned after an election timeout. Fails with
   * errc::not_leader or errc::invalid_transfer_target.
   */
  std::error_code transfer_leadership(node_id target);

  /**
   * Changes the group's membership to `target` (voters and learners; no outgoing voters). A
   * change of voters goes through joint consensus (dissertation 4.3): the leader appends the
   * joint configuration, and once it commits, the new one, on its own. Learner-only changes
   * take one step. New voters must be learners caught up within options.max_promotion_lag.
   * A leader that is not a voter of the new configuration steps down once it commits. Fails
   * with errc::not_leader, errc::transfer_in_progress, errc::invalid_membership,
   * errc::membership_change_in_progress (one change at a time, and none before an entry of the
   * leader's term has committed) or errc::not_caught_up.
   */
  std::error_code change_membership(const membership& target);

  /**
   * What a snapshot of the state machine taken now must record (paper 7): the applied index,
   * its term, and the membership in force there. The host takes the state machine's snapshot
   * between batches (after advance), stores it with this meta, and may then compact the log up
   * to its index. Index 0 if there is nothing to snapshot (nothing applied, or a received
   * snapshot is still being restored).
   */
  snapshot_meta applied_meta() const;

  /** True while a configuration entry is uncommitted or the group is in joint consensus. */
  bool membership_change_in_flight() const { return config_in_flight() || members_.joint(); }

  /** The target of the leadership transfer in progress, or no_node. */
  node_id transferee() const noexcept { return transferee_; }

  /**
   * With options.quiesce: true while this node's group is quiesced (see options.quiesce). A
   * quiesced core ignores tick(): the host may stop ticking it until the next step(),
   * propose(), read_index() or unquiesce().
   */
  bool quiesced() const noexcept { return quiesced_; }

  /**
   * Wakes a quiesced node. The host calls it when it suspects the leader's node (a dropped or
   * silent connection): a follower restarts its election clock and asks the leader to resume
   * heartbeats, so a dead leader is replaced within an election timeout. On a leader it
   * resumes heartbeats. Does nothing if not quiesced.
   */
  void unquiesce();

  /** True if get_ready() would return work. */
  bool has_ready() const;

  /** Takes the pending work; see `ready` for the contract. Call advance() before the next one. */
  ready get_ready();

  /** The host finished handling `rd` (persisted, sent, applied); see `ready`. */
  void advance(const ready& rd);

  /**
   * Takes the messages that may leave now (the leader's appends and heartbeats), at any time,
   * also between get_ready() and advance(). A host that persists asynchronously calls this
   * after each step/tick/propose so that replication never waits for the leader's own disk
   * (dissertation 10.2.1). Messages that must wait for persistence are never returned here.
   */
  std::vector<message> take_messages() { return std::exchange(messages_, {}); }

  node_id id() const noexcept { return opts_.id; }
  role current_role() const noexcept { return role_; }
  term_t term() const noexcept { return term_; }
  node_id vote() const noexcept { return vote_; }
  node_id leader() const noexcept { return leader_; }
  const membership& members() const noexcept { return members_; }
  const raft_log<Storage>& log() const noexcept { return log_; }
  raft::hard_state hard_state() const { return {term_, vote_, log_.committed()}; }
  /** The election timeout drawn for the current term, in ticks. */
  int randomized_election_timeout() const noexcept { return randomized_timeout_; }
  /** Payload bytes proposed as leader and not yet applied (the back-pressure measure). */
  std::uint64_t uncommitted_bytes() const noexcept { return uncommitted_bytes_; }
  /** The leader's view of `peer`'s replication, or nullptr if not leader or unknown peer. */
  const class progress* progress_of(node_id peer) const;

 private:
  void become_follower(term_t term, node_id leader);
  void become_pre_candidate();
  void become_candidate();
  void become_leader();
  void reset(term_t term);
  void start_election(bool pre);
  void reset_randomized_timeout();

  void tick_election();
  void tick_heartbeat();

  bool may_quiesce() const;
  void quiesce();
  void wake(bool ask_leader);

  struct pending_read {
    std::uint64_t context;
    index_t index;
    std::uint64_t round;
    node_id requester;
  };
  void start_read_round();
  void handle_read_request(std::uint64_t context, node_id requester);
  void answer_read(std::uint64_t context, node_id requester, index_t index, bool confirmed);
  void confirm_reads();
  void fail_reads();
  bool committed_in_term() const { return log_.term_or_zero(log_.committed()) == term_; }
  void send_timeout_now(node_id to);

  struct config_record {
    index_t index;
    term_t term;
    membership members;
  };
  void record_configs(std::span<const entry> entries);
  void refresh_members();
  void on_members_changed();
  void after_commit();
  void propose_config(const membership& m);
  void maybe_promote(node_id learner);
  index_t config_index() const { return configs_.empty() ? 0 : configs_.back().index; }
  bool config_in_flight() const { return config_index() > log_.committed(); }
  bool promotable() const;

  void step_leader(const message& m);
  void step_candidate(const message& m);
  void step_follower(const message& m);
  void handle_vote_request(const message& m);
  void handle_append(const message& m);
  void handle_heartbeat(const message& m);
  void handle_append_response(const message& m);
  void handle_snapshot(const message& m);
  void handle_snapshot_response(const message& m);
  void install_snapshot(const snapshot_meta& meta);
  bool send_snapshot_chunk(node_id to);
  membership members_at(index_t index) const;

  /** Records a vote; returns +1 won, -1 lost, 0 pending. */
  int tally(node_id from, bool granted);
  bool in_leader_lease() const;
  bool quorum_active();
  bool maybe_commit();
  void broadcast_append();
  void broadcast_heartbeat(bool quiesce = false);
  bool send_append(node_id to, bool send_if_empty);
  void send_heartbeat(node_id to, bool quiesce = false);
  void handle_forwarded_proposal(const message& m);
  void fail_forwarded_proposals(bool only_expired);
  void send_now(message m);
  void send_after_persist(message m);
  soft_state current_soft_state() const { return {role_, leader_}; }
  bool mutated(mutation m) const noexcept { return opts_.test_mutation == m; }

  options opts_;
  const Storage* storage_;
  raft_log<Storage> log_;
  // The latest configuration in the log, committed or not (dissertation 4.1); configs_ holds
  // the configuration entries still in the log above base_members_, which storage gave.
  membership members_;
  membership base_members_;
  std::vector<config_record> configs_;
  detail::splitmix64 random_;

  role role_ = role::follower;
  term_t term_ = 0;
  node_id vote_ = no_node;
  node_id leader_ = no_node;

  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  int randomized_timeout_ = 0;

  std::map<node_id, bool> votes_;
  std::map<node_id, class progress> progress_;
  std::uint64_t uncommitted_bytes_ = 0;

  std::vector<message> messages_;
  std::vector<message> persisted_messages_;
  std::vector<read_state> read_states_;
  // Follower: the snapshot being received, chunks for the host to write, and a complete one to
  // install and restore.
  snapshot_receipt receiving_;
  std::vector<snapshot_chunk> snapshot_chunks_;
  std::optional<snapshot_meta> snapshot_to_install_;

  // Logical time, in ticks since this core started: read rounds and leases are measured in it.
  std::uint64_t ticks_ = 0;
  // Leader: reads waiting for confirmation (in round order), reads waiting for the first commit
  // of this term, the latest read round, each peer's latest acknowledged round, the start tick
  // of rounds not yet confirmed, and the end of the lease.
  std::vector<pending_read> reads_;
  std::vector<pending_read> reads_before_commit_;
  std::uint64_t read_round_ = 0;
  std::map<node_id, std::uint64_t> acked_round_;
  std::map<std::uint64_t, std::uint64_t> round_started_;
  std::uint64_t lease_until_ = 0;
  // Follower: reads forwarded to the leader and not yet answered.
  std::vector<std::uint64_t> forwarded_reads_;
  // Follower: proposals forwarded to the leader and not yet answered (context -> tick sent).
  std::map<std::uint64_t, std::uint64_t> forwarded_proposals_;
  std::vector<proposal_state> proposal_states_;
  // Leader: the highest forwarded-proposal context taken from each node this term.
  std::map<node_id, std::uint64_t> forwarded_high_;
  // With lease reads, a node refuses votes for one election timeout after it starts: it may
  // have acknowledged a leader's lease just before it stopped.
  std::uint64_t vote_quarantine_until_ = 0;

  // Quiescing: the node's group is idle and its clocks stopped. The leader quiesces once every
  // peer acknowledged a heartbeat round (quiet_round_) started while everyone held the whole
  // log at quiet_index_, committed, with nothing else pending.
  bool quiesced_ = false;
  std::uint64_t quiet_round_ = 0;
  index_t quiet_index_ = 0;

  node_id transferee_ = no_node;
  // A transfer campaign sets followers' leases aside, and a late timeout_now can start one
  // after the transfer was abandoned: once a leader has tried a transfer, it serves no lease
  // reads for the rest of its term.
  bool transfer_tried_ = false;
  int transfer_elapsed_ = 0;
  bool campaign_for_transfer_ = false;
  raft::hard_state prev_hard_state_;
  soft_state prev_soft_state_;
  bool ready_pending_ = false;
};

}  // namespace quorum::raft

#include <quorum/raft/impl/core.hpp>
