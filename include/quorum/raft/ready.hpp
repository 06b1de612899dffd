// The batch of work the Raft core hands to its host, and the contract for handling it.
// Plain values; moved out of the core by get_ready().
#pragma once

#include <quorum/raft/message.hpp>
#include <quorum/raft/types.hpp>

#include <optional>
#include <system_error>
#include <vector>

namespace quorum::raft {

/** Role and leader as of a ready batch; present when either changed. */
struct soft_state {
  role current_role = role::follower;
  node_id leader = no_node;

  friend bool operator==(const soft_state&, const soft_state&) = default;
};

/**
 * A read confirmed (or refused). Serve it once the state machine has applied `index`: the
 * result then reflects every write committed before the read was requested (linearizable).
 */
struct read_state {
  std::uint64_t context = 0;
  index_t index = 0;
  /** Set if the read could not be confirmed (errc::read_not_confirmed); index is 0 then. */
  std::error_code error;
};

/**
 * The answer to a proposal this node forwarded to its leader (core::forward). On success the
 * proposal is entry (term, index) of the log, durable on the leader; it is applied once that
 * entry commits, unless another leader's entry takes its place (the term at index differs).
 */
struct proposal_state {
  std::uint64_t context = 0;
  /** Empty on success. The leader refused (errc::uncommitted_limit or
   *  errc::transfer_in_progress: nothing was appended), or errc::outcome_unknown: no answer
   *  came (the term changed, or two election timeouts passed), or the node asked was not the
   *  leader (another copy of the proposal may have reached the leader); it may or may not
   *  commit. leader_hint names the leader the node asked knew of, if any. */
  std::error_code error;
  term_t term = 0;
  index_t index = 0;
  node_id leader_hint = no_node;
};

/**
 * Work for the host. Handle it in this order, then call core::advance(ready):
 *
 * 1. `messages`: send now, even before persisting. These are the leader's appends and
 *    heartbeats; a leader may write its own log in parallel with replicating it
 *    (dissertation 10.2.1) because its own entry counts for commit only after advance().
 * 2. `snapshot_chunks`: write each to the incoming snapshot, in order (offset 0 starts a new
 *    one). `snapshot` (if set): the incoming snapshot is complete; make it this node's
 *    snapshot, discard the log up to its index, and keep the entries after it only if the
 *    entry at its index has its term (paper 7, figure 13). `entries`: append to storage
 *    (truncating any existing suffix from the first one's index). `hard_state` (if set):
 *    write it. Then make all of it durable (fdatasync), in this order.
 * 3. `persisted_messages`: send only after step 2 is durable. They vouch for it: votes granted,
 *    appends and snapshots acknowledged, terms adopted.
 * 4. `snapshot` (if set): restore the state machine from it. `committed_entries`: apply in
 *    order; they are already durable on this node and follow the snapshot. `read_states`:
 *    serve each read once applied up to its index (maybe in a later batch). `proposal_states`:
 *    answers to forwarded proposals.
 * 5. call advance(ready) with this same batch.
 *
 * Between get_ready() and advance() the host may keep calling step(), tick() and propose();
 * whatever they produce goes into the next batch. It must not call get_ready() again first.
 * It may call take_messages() at any time to send the leader's new appends without waiting
 * for the batch being persisted.
 */
struct ready {
  std::optional<raft::soft_state> soft_state;
  std::optional<raft::hard_state> hard_state;
  std::vector<snapshot_chunk> snapshot_chunks;
  std::optional<snapshot_meta> snapshot;
  std::vector<entry> entries;
  std::vector<message> messages;
  std::vector<message> persisted_messages;
  std::vector<entry> committed_entries;
  std::vector<read_state> read_states;
  std::vector<proposal_state> proposal_states;
};

}  // namespace quorum::raft
