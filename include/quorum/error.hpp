// quorum's error codes: one enum, one category, usable as std::error_code (and, through
// Boost.System's interoperation, as boost::system::error_code at the asynchronous edges).
// Stateless; safe to use from any thread.
#pragma once

#include <string>
#include <system_error>

namespace quorum {

/** Errors the library reports to its users. Values are stable; never reuse one. */
enum class errc {
  /** A proposal reached a node that is not the leader; retry on the leader it names, if any. */
  not_leader = 1,
  /** Too many bytes are proposed but not yet committed; wait for commits, then retry. */
  uncommitted_limit = 2,
  /** The requested log entries were compacted into a snapshot; read the snapshot instead. */
  compacted = 3,
  /** The requested log entries are not in storage (yet). */
  unavailable = 4,
  /** A message was addressed to another node; check the transport's routing. */
  wrong_recipient = 5,
  /** A message is malformed (bad type, non-contiguous entries, zero sender); it was dropped. */
  malformed_message = 6,
  /** A configuration value is out of range; the message of the thrown error names it. */
  invalid_options = 7,
  /** Storage failed to read, write or sync. The node stops; restart it once the disk is sound. */
  io_error = 8,
  /** A checksum failed before the end of the log: the log is damaged and the node stays out of
   *  elections; repair it from its peers. */
  corruption = 9,
  /** A leadership transfer is in progress; retry on the new leader once it completes. */
  transfer_in_progress = 10,
  /** A leadership transfer named a node that is not a voter of the group. */
  invalid_transfer_target = 11,
  /** A read could not be confirmed (leadership lost, or no leader known); retry. */
  read_not_confirmed = 12,
  /** A membership change is still in flight; retry once it has committed. */
  membership_change_in_progress = 13,
  /** A proposed membership is invalid; the message of the thrown error, or `what`, says why. */
  invalid_membership = 14,
  /** A learner is not yet caught up with the leader's log; promote it later. */
  not_caught_up = 15,
  /** A peer failed mutual authentication (wrong secret, cluster or node id, or a malformed
   *  handshake); the connection is closed. */
  authentication_failed = 16,
  /** A proposal was accepted, then overwritten by another leader's entry: it was not applied
   *  and may be retried. */
  proposal_dropped = 17,
  /** The replica is stopping (or stopped on a storage failure); the operation did not run. */
  shutting_down = 18,
  /** A queue command names a consumer that is not attached, or a message that consumer does not
   *  hold; it changed nothing. */
  invalid_command = 19,
  /** A forwarded command got no answer (the leader changed, or the answer was lost): it may or
   *  may not have been applied. Retry only what is safe to repeat (a publish with producer id
   *  and sequence number is). */
  outcome_unknown = 20,
  /** This node holds no replica of the queue (or group) named; use one of its members. */
  no_replica = 21,
  /** A queue was declared again with other settings than it has; it is unchanged. */
  queue_mismatch = 22,
  /** No queue of that name is declared (or it was deleted). */
  no_queue = 23,
};

/** The category of quorum::errc; its name is "quorum". */
const std::error_category& error_category() noexcept;

/** Makes an std::error_code in quorum's category. */
std::error_code make_error_code(errc e) noexcept;

}  // namespace quorum

template <>
struct std::is_error_code_enum<quorum::errc> : std::true_type {};
