// The messages Raft nodes exchange. One flat struct for every kind (the fields a kind does not
// use stay zero), which keeps codecs, simulators and fault injection simple. Plain values.
#pragma once

#include <quorum/raft/types.hpp>

#include <cstdint>
#include <string_view>
#include <vector>

namespace quorum::raft {

/** Message kinds. Values are part of the wire format; never renumber. */
enum class message_type : std::uint8_t {
  /** Dissertation 9.6: "would you vote for me at term+1?"; changes nobody's term. */
  pre_vote = 1,
  pre_vote_response = 2,
  /** Paper 5.2 RequestVote: index/log_term are the candidate's last entry. */
  vote = 3,
  vote_response = 4,
  /** Paper 5.3 AppendEntries: index/log_term name the entry preceding `entries`. */
  append = 5,
  /** index is the follower's last matching index, or on reject the rejected prev index. */
  append_response = 6,
  /** Leader liveness and commit propagation; commit is capped at the follower's match. */
  heartbeat = 7,
  heartbeat_response = 8,
  /** A follower asks the leader for a read index; context identifies the read. */
  read_index = 9,
  /** The leader's answer: index to wait for (or reject); context echoes the request. */
  read_index_response = 10,
  /** Leadership transfer: the leader tells an up-to-date follower to campaign now. */
  timeout_now = 11,
  /** InstallSnapshot (paper 7), one chunk: index/log_term name the snapshot's last entry,
   *  context is the chunk's byte offset, data its bytes, last marks the final chunk. */
  snapshot = 12,
  /** A snapshot chunk's answer: context is how many bytes of the snapshot (index, log_term)
   *  the follower holds durably; reject asks the leader to resend from there. The final
   *  chunk is answered by an append_response once the snapshot is durable. */
  snapshot_response = 13,
  /** A quiesced follower that resumed its election clock without word from the leader (the
   *  host suspected it, or another node called) asks the leader to resume heartbeats. */
  wake = 14,
  /** A follower forwards a proposal to its leader (core::forward): context identifies it, data
   *  is its payload. */
  propose = 15,
  /** The leader's answer, sent once the entry is durable on the leader: index and log_term
   *  name where the proposal landed; reject says it was refused, with the errc value in
   *  reject_hint (not_leader, uncommitted_limit or transfer_in_progress). */
  propose_response = 16,
};

/** The highest valid message_type value; decoders refuse anything above it. */
inline constexpr std::uint8_t max_message_type = 16;

/** Vote context marking a campaign started by a leadership transfer (leases do not apply). */
inline constexpr std::uint64_t campaign_transfer = 1;

/** A readable name for a message kind. */
inline std::string_view to_string(message_type t) noexcept {
  switch (t) {
    case message_type::pre_vote: return "pre_vote";
    case message_type::pre_vote_response: return "pre_vote_response";
    case message_type::vote: return "vote";
    case message_type::vote_response: return "vote_response";
    case message_type::append: return "append";
    case message_type::append_response: return "append_response";
    case message_type::heartbeat: return "heartbeat";
    case message_type::heartbeat_response: return "heartbeat_response";
    case message_type::read_index: return "read_index";
    case message_type::read_index_response: return "read_index_response";
    case message_type::timeout_now: return "timeout_now";
    case message_type::snapshot: return "snapshot";
    case message_type::snapshot_response: return "snapshot_response";
    case message_type::wake: return "wake";
    case message_type::propose: return "propose";
    case message_type::propose_response: return "propose_response";
  }
  return "unknown";
}

/** One Raft message. */
struct message {
  message_type type = message_type::heartbeat;
  node_id from = no_node;
  node_id to = no_node;
  /** The sender's term; for pre-votes (and granted pre-vote responses) the proposed term. */
  term_t term = 0;
  /** Votes: candidate's last index. Append: previous index. Append response: see type. */
  index_t index = 0;
  /** Votes: candidate's last term. Append: previous term. Reject: term of the hint entry. */
  term_t log_term = 0;
  /** Leader's commit index (append, heartbeat). */
  index_t commit = 0;
  /** Entries to append, contiguous from index + 1. */
  std::vector<entry> entries;
  /** Responses: the request was refused. */
  bool reject = false;
  /** Append reject: the follower's suggestion for the leader's next probe (with log_term). */
  index_t reject_hint = 0;
  /** Heartbeats and their responses: the leader's read round. Read requests and responses:
   *  the read's id. Votes: campaign_transfer for a transfer's campaign. Snapshots: a byte
   *  offset. */
  std::uint64_t context = 0;
  /** Snapshot: the chunk's bytes. Propose: the payload. */
  shared_bytes data;
  /** Snapshot: the membership the snapshot records. */
  membership members;
  /** Snapshot: this chunk ends the snapshot. */
  bool last = false;
  /** Heartbeat: the group is idle and every member caught up; the follower stops its election
   *  clock until something happens (see options.quiesce). */
  bool quiesce = false;

  friend bool operator==(const message&, const message&) = default;
};

}  // namespace quorum::raft
