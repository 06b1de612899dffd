// The quorum queue's replicated state, as a pure state machine: every replica applies the same
// commands in log order and reaches the same state. It keeps metadata only (log index, size,
// priority, delivery count); bodies stay in the Raft log and the host reads them back by index
// to deliver. apply() returns the effects a host acts on: deliveries to consumers, and messages
// that left the queue for good (acknowledged, dropped or dead-lettered). No clock, no I/O.
#pragma once

#include <quorum/raft/types.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <system_error>
#include <vector>

namespace quorum::queue {

/** A message is named by the log index of the entry that enqueued it. */
using message_id = raft::index_t;
using consumer_id = std::uint64_t;

/** Strict priorities 0 (lowest) to max_priority; higher is delivered first. */
inline constexpr std::uint8_t max_priority = 31;

/** Per-queue settings, fixed when the queue is declared. */
struct queue_options {
  /** A message returned by consumers (nack or reject with requeue) more than this many times
   *  is dead-lettered (or dropped without a dead-letter target) instead of requeued again; -1
   *  disables the limit. 20 is RabbitMQ's default for quorum queues. A consumer that detaches
   *  releases its messages without counting a failure. */
  std::int32_t delivery_limit = 20;
  /** Where dead-lettered messages go (the host routes them); empty: they are dropped. */
  std::string dead_letter_target;

  friend bool operator==(const queue_options&, const queue_options&) = default;
};

/** What a consumer does with a delivered message. */
enum class settlement : std::uint8_t {
  ack = 1,      // done: removed
  requeue = 2,  // nack or reject with requeue: back in the queue, a failed delivery counted
  reject = 3,   // nack or reject without requeue: dead-lettered, or dropped without a target
};

/** One replicated command. */
struct command {
  enum class kind : std::uint8_t {
    enqueue = 1,  // size, priority (the message's id is its entry's index)
    attach = 2,   // consumer, prefetch (credit: unacknowledged deliveries at most; 0 = none)
    detach = 3,   // consumer: its unacknowledged messages return, uncounted
    settle = 4,   // consumer, outcome, ids
    purge = 5,    // every ready message is dropped (unacknowledged ones stay)
  };
  kind type = kind::enqueue;
  consumer_id consumer = 0;
  std::uint32_t size = 0;
  std::uint8_t priority = 0;
  std::uint32_t prefetch = 0;
  settlement outcome = settlement::ack;
  std::vector<message_id> ids;

  friend bool operator==(const command&, const command&) = default;
};

/** The bytes of a command, as proposed to the log. */
raft::shared_bytes encode(const command& c);
/** Decodes a command; nothing (and errc::malformed_message) on any malformed input. */
std::optional<command> decode(std::span<const std::byte> bytes, std::error_code& ec);

/** A message handed to a consumer. */
struct delivery {
  consumer_id consumer = 0;
  message_id id = 0;
  /** Failed deliveries so far (returns by nack/reject with requeue). */
  std::uint32_t failed = 0;
  /** Delivered before (returned by a consumer that detached, or requeued). */
  bool redelivered = false;

  friend bool operator==(const delivery&, const delivery&) = default;
};

/** Why a message left the queue. */
enum class removal : std::uint8_t { acked, dropped, dead_lettered, purged };

struct removed {
  message_id id = 0;
  removal why = removal::acked;

  friend bool operator==(const removed&, const removed&) = default;
};

/** What applying one command asks of the host. */
struct effects {
  std::vector<delivery> deliveries;
  std::vector<removed> removals;
  /** Empty on success; errc::malformed_message (undecodable command) or errc::invalid_command
   *  (an unknown consumer, a message it does not hold) otherwise. The state is unchanged. */
  std::error_code error;
};

/** Counters of the queue, as every replica sees them. */
struct queue_status {
  std::uint64_t ready = 0;
  std::uint64_t unacked = 0;
  std::uint64_t ready_bytes = 0;
  std::uint64_t unacked_bytes = 0;
  std::uint64_t consumers = 0;
};

class state_machine {
 public:
  explicit state_machine(queue_options options = {}) : options_(std::move(options)) {}

  /** Applies the command in log entry `e` (index e.index). */
  effects apply(const raft::entry& e);
  /** Applies a decoded command as if it were the entry at `index`. */
  effects apply(raft::index_t index, const command& c);

  queue_status status() const;
  const queue_options& options() const noexcept { return options_; }
  /** The oldest log index any live message needs (ready or unacknowledged), or 0 if none: the
   *  log before it holds no live body. */
  raft::index_t oldest_live() const;

  /** The whole state, as bytes (for Raft snapshots). */
  raft::shared_bytes snapshot() const;
  /** Replaces the state with a snapshot's; false (state unchanged) if the bytes are malformed. */
  bool restore(const raft::shared_bytes& bytes);

  friend bool operator==(const state_machine&, const state_machine&) = default;

 private:
  struct message {
    std::uint32_t size = 0;
    std::uint8_t priority = 0;
    std::uint32_t failed = 0;
    bool delivered = false;

    friend bool operator==(const message&, const message&) = default;
  };
  struct consumer {
    std::uint32_t prefetch = 0;
    std::set<message_id> unacked;

    friend bool operator==(const consumer&, const consumer&) = default;
  };
  // Ready messages in delivery order: higher priority first, then oldest first (a returned
  // message goes back to its place).
  struct delivery_order {
    bool operator()(const std::pair<std::uint8_t, message_id>& a,
                    const std::pair<std::uint8_t, message_id>& b) const {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    }
  };

  void deliver(effects& out);
  void give_back(message_id id, bool count_failure, effects& out);

  queue_options options_;
  std::map<message_id, message> messages_;  // every live message, ready or unacknowledged
  std::set<std::pair<std::uint8_t, message_id>, delivery_order> ready_;
  std::map<consumer_id, consumer> consumers_;
  consumer_id next_turn_ = 0;  // round robin: the consumer after the last one served
};

}  // namespace quorum::queue
