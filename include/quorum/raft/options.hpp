// Options of one Raft core. Plain values; validated when a core is constructed.
#pragma once

#include <quorum/error.hpp>
#include <quorum/raft/types.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>

namespace quorum::raft {

/**
 * Deliberate bugs, for the library's own tests only: they prove that the simulator's checkers
 * catch what they claim to. Never set one outside a test.
 */
enum class mutation : std::uint8_t {
  none,
  /** Commit an entry of an earlier term by counting replicas (breaks paper 5.4.2). */
  commit_earlier_term,
  /** Acknowledge appends before they are persisted (breaks principle 2). */
  ack_before_persist,
  /** Grant a vote to every candidate, even twice in one term (breaks paper 5.2). */
  double_vote,
  /** Count the leader's own entries before they are persisted. */
  count_unpersisted_self,
  /** Grant votes without the up-to-date log check (breaks paper 5.4.1). */
  skip_log_check,
  /** Answer ReadIndex requests without confirming leadership (stale reads). */
  unconfirmed_reads,
  /** Propose the new configuration before the joint one has committed (breaks 4.3). */
  leave_joint_early,
  /** Count a learner's vote in elections. */
  learner_votes,
  /** Take snapshot chunks at any offset, out of order or twice (corrupts the snapshot). */
  accept_any_chunk,
  /** A quiescing leader keeps its lease; its clock stops, so the lease never ends. */
  quiesced_lease,
};

/** How the leader confirms it still leads before serving a read. */
enum class read_mode : std::uint8_t {
  /** One heartbeat round acknowledged by a quorum (dissertation 6.4). Safe under any clocks. */
  read_index,
  /**
   * A lease (dissertation 6.4.1): no round while a quorum acknowledged the leader within the
   * last election timeout minus `lease_drift_ticks`. Requires CheckQuorum and clocks whose
   * rates differ by less than the drift bound, and a host whose ticks follow a monotonic
   * clock: after any stall (a pause, a slow handler) it must deliver the ticks it missed
   * before it steps a message or asks for a read. Otherwise a leader that was frozen still
   * believes in a lease that ended long ago and serves stale reads.
   */
  lease,
};

/** How one Raft core behaves. Times are in ticks; the host decides how long a tick is. */
struct options {
  /** This node's id: non-zero, unique in the group. */
  node_id id = no_node;
  /**
   * Followers start an election after hearing nothing for a random number of ticks in
   * [election_ticks, 2 * election_ticks). Must exceed heartbeat_ticks.
   */
  int election_ticks = 10;
  /** The leader sends heartbeats every heartbeat_ticks ticks. */
  int heartbeat_ticks = 1;
  /** Seeds the generator of randomized election timeouts; the same seed replays exactly. */
  std::uint64_t seed = 0;
  /** Dissertation 9.6: ask "would you vote for me?" before disrupting anyone's term. */
  bool pre_vote = true;
  /**
   * Dissertation 6.2: a leader that has not heard from a quorum for an election timeout
   * steps down, and followers ignore vote requests while they hear from a leader.
   */
  bool check_quorum = true;
  /** At most this many entries in one append message (>= 1). */
  std::size_t max_entries_per_message = 256;
  /** At most this many entry bytes in one append message (at least one entry is sent). */
  std::uint64_t max_bytes_per_message = 1 << 20;
  /** Pipelining window per follower: appends in flight (>= 1) ... */
  std::size_t max_inflight_messages = 256;
  /** ... and bytes in flight (>= 1). */
  std::uint64_t max_inflight_bytes = 32 << 20;
  /**
   * Back-pressure: proposals are refused (errc::uncommitted_limit) while the leader holds more
   * than this many payload bytes proposed but not committed. One proposal is always accepted
   * when nothing is pending, however large. 0 disables the limit.
   */
  std::uint64_t max_uncommitted_bytes = 64 << 20;
  /** A snapshot is sent in chunks of at most this many bytes (>= 1), pipelined within the
   *  same in-flight window as appends. */
  std::uint64_t snapshot_chunk_bytes = 1 << 20;
  /** At most this many entry bytes handed to the host to apply in one ready batch. */
  std::uint64_t max_apply_bytes_per_ready = 16 << 20;
  /** A learner may become a voter once at most this many entries behind the leader's log. */
  std::uint64_t max_promotion_lag = 0;
  /** The leader promotes a learner to voter on its own once it is caught up (see above). */
  bool auto_promote_learners = false;
  /** How reads are confirmed; see read_mode. */
  raft::read_mode read_mode = raft::read_mode::read_index;
  /** With read_mode::lease: ticks subtracted from the lease for clock-rate differences. */
  int lease_drift_ticks = 2;
  /**
   * Idle groups go quiet: once every member holds and has committed the whole log and nothing
   * is pending (reads, transfers, membership changes), the leader sends one last heartbeat
   * marked quiesce and stops heartbeating; followers stop their election clocks. Any message,
   * proposal or read wakes the group. A quiesced follower no longer notices a dead leader by
   * itself: the host must call core::unquiesce() when it suspects the leader's node (its
   * connection dropped or went silent). A quiescing leader gives up its lease.
   */
  bool quiesce = false;
  /** Test-only: a deliberate bug to switch on; see `mutation`. */
  mutation test_mutation = mutation::none;
};

/**
 * Checks `o`; returns errc::invalid_options and sets `what` to the field at fault and why, or
 * returns no error.
 */
inline std::error_code validate(const options& o, std::string& what) {
  what.clear();
  if (o.id == no_node)
    what = "options.id must be non-zero";
  else if (o.heartbeat_ticks < 1)
    what = "options.heartbeat_ticks must be at least 1";
  else if (o.election_ticks <= o.heartbeat_ticks)
    what = "options.election_ticks must exceed options.heartbeat_ticks";
  else if (o.max_entries_per_message < 1)
    what = "options.max_entries_per_message must be >= 1";
  else if (o.max_inflight_messages < 1)
    what = "options.max_inflight_messages must be >= 1";
  else if (o.max_inflight_bytes < 1)
    what = "options.max_inflight_bytes must be >= 1";
  else if (o.snapshot_chunk_bytes < 1)
    what = "options.snapshot_chunk_bytes must be >= 1";
  else if (o.read_mode == read_mode::lease && !o.check_quorum)
    what = "options.read_mode lease requires options.check_quorum";
  else if (o.read_mode == read_mode::lease &&
           (o.lease_drift_ticks < 1 || o.lease_drift_ticks >= o.election_ticks))
    what = "options.lease_drift_ticks must be in [1, election_ticks) for lease reads";
  if (what.empty()) return {};
  return errc::invalid_options;
}

}  // namespace quorum::raft
