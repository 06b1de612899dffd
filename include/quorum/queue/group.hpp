// A queue group: several quorum queues that share one Raft group, so that a message routed to
// several of them is one log entry with one body (fan-out without write amplification). Each
// member is a whole queue (state_machine) with its own options, consumers and counters; a
// message enqueued to several members has the same id (its entry's index) in each, and each
// member delivers, settles and drops it on its own. The entry stays in the log while any member
// still holds the message. A queue of its own is a group of one ("solo"), whose commands and
// snapshots are a plain state_machine's.
#pragma once

#include <quorum/queue/state_machine.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace quorum::queue {

/** The most queues one group holds (a fan-out is a 64-bit mask of them). */
inline constexpr std::size_t max_group_members = 64;

/** What one member did with a command. */
struct member_effects {
  std::uint8_t member = 0;
  effects fx;
};

/** What applying one command to a group asks of the host. */
struct group_effects {
  /** Each member the command reached, in member order. */
  std::vector<member_effects> members;
  /** What the proposer is told, when it is not the one member's effects (see reply()): the
   *  combined outcome of an enqueue to several members (deliveries and removals empty), or
   *  errc::invalid_command for a member the group does not have. */
  effects answer;
  bool own_answer = true;

  /** What the proposer is told: `answer`, or the effects of the one member reached. */
  const effects& reply() const {
    return own_answer || members.empty() ? answer : members.front().fx;
  }
};

class queue_group {
 public:
  /** A group of these member queues (1 to max_group_members). A solo group has one member and
   *  snapshots as that queue alone. */
  explicit queue_group(std::vector<queue_options> members, bool solo = false);

  /**
   * Applies `c` as the entry at `index`. An enqueue goes to every member in c.fanout (or to
   * c.member alone): it is accepted if every one of them accepts it, rejected if any rejects it
   * (the others keep it, as a broker routing to several queues does), a duplicate if all say
   * so. A tick reaches every member. Anything naming a member the group lacks changes nothing.
   */
  group_effects apply(raft::index_t index, const command& c);

  std::size_t size() const noexcept { return members_.size(); }
  bool solo() const noexcept { return solo_; }
  const state_machine& member(std::size_t i) const { return members_.at(i); }

  /** The entries any member still needs, ascending and each once. */
  std::vector<message_id> live_ids() const;
  /** Live messages summed over the members (a message in k members counts k times). */
  std::uint64_t live_count() const;

  raft::shared_bytes snapshot() const;
  /** Replaces every member's state; false (nothing changed) if the bytes are malformed or hold
   *  another number of members. */
  bool restore(const raft::shared_bytes& bytes);

 private:
  std::vector<state_machine> members_;
  bool solo_ = false;
};

}  // namespace quorum::queue
