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

#include <cstdint>
#include <map>
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

  /** Starts an election now (with PreVote if enabled), as if the election timeout expired. */
  void campaign();

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

  void step_leader(const message& m);
  void step_candidate(const message& m);
  void step_follower(const message& m);
  void handle_vote_request(const message& m);
  void handle_append(const message& m);
  void handle_heartbeat(const message& m);
  void handle_append_response(const message& m);

  /** Records a vote; returns +1 won, -1 lost, 0 pending. */
  int tally(node_id from, bool granted);
  bool in_leader_lease() const;
  bool quorum_active();
  bool maybe_commit();
  void broadcast_append();
  void broadcast_heartbeat();
  bool send_append(node_id to, bool send_if_empty);
  void send_heartbeat(node_id to);
  void send_now(message m);
  void send_after_persist(message m);
  soft_state current_soft_state() const { return {role_, leader_}; }
  bool mutated(mutation m) const noexcept { return opts_.test_mutation == m; }

  options opts_;
  const Storage* storage_;
  raft_log<Storage> log_;
  membership members_;
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
  raft::hard_state prev_hard_state_;
  soft_state prev_soft_state_;
  bool ready_pending_ = false;
};

}  // namespace quorum::raft

#include <quorum/raft/impl/core.hpp>
