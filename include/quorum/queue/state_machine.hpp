// The quorum queue's replicated state, as a pure state machine: every replica applies the same
// commands in log order and reaches the same state. It keeps metadata only (log index, size,
// priority, delivery count); bodies stay in the Raft log and the host reads them back by index
// to deliver. apply() returns the effects a host acts on: deliveries to consumers, and messages
// that left the queue for good (acknowledged, dropped, expired or dead-lettered). No clock and
// no I/O: time arrives in the commands (the leader stamps each with its clock; the state
// machine never lets it run backwards), so every replica expires the same messages.
#pragma once

#include <quorum/raft/types.hpp>

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <system_error>
#include <tuple>
#include <vector>

namespace quorum::queue {

/** A message is named by the log index of the entry that enqueued it. */
using message_id = raft::index_t;
using consumer_id = std::uint64_t;

/** Strict priorities 0 (lowest) to max_priority; higher is delivered first. */
inline constexpr std::uint8_t max_priority = 31;

/** What a full queue does with one more message (max_length, max_length_bytes). */
enum class overflow : std::uint8_t {
  drop_head = 1,           // the oldest ready messages make room (dead-lettered or dropped)
  reject_publish = 2,      // the new message is refused (the publisher gets a negative confirm)
  reject_publish_dlx = 3,  // refused, and dead-lettered
};

/** How dead-lettered messages reach their target (queue_options::dead_letter_target). */
enum class dead_letter_strategy : std::uint8_t {
  /** The message leaves the queue at once; the host hands it to the target, and it is lost if
   *  the host fails first. */
  at_most_once = 1,
  /** The message stays in the queue (not deliverable) until the host has it durably in the
   *  target and says so with a dead_lettered command; a hand-over may repeat after a failure.
   *  Messages refused at publish (reject_publish_dlx) were never in the queue: at most once. */
  at_least_once = 2,
};

/** Deliberate bugs, for the simulator's own tests only (like raft::mutation). */
enum class queue_mutation : std::uint8_t {
  none,
  /** A requeued message is never made ready again: it is lost. */
  lose_requeued,
  /** The host keeps no message entries past a snapshot (the simulator's host honours it):
   *  compaction loses live bodies. */
  forget_bodies,
};

/** Per-queue settings, fixed when the queue is declared. */
struct queue_options {
  /** A message returned by consumers (nack or reject with requeue) more than this many times
   *  is dead-lettered (or dropped without a dead-letter target) instead of requeued again; -1
   *  disables the limit. 20 is RabbitMQ's default for quorum queues. A consumer that detaches
   *  releases its messages without counting a failure. */
  std::int32_t delivery_limit = 20;
  /** Where dead-lettered messages go (the host routes them); empty: they are dropped. */
  std::string dead_letter_target;
  dead_letter_strategy dead_letter = dead_letter_strategy::at_most_once;
  /** Ready messages (and their body bytes) beyond which `overflow` applies; 0: no limit.
   *  Unacknowledged messages do not count. */
  std::uint64_t max_length = 0;
  std::uint64_t max_length_bytes = 0;
  queue::overflow overflow = overflow::drop_head;
  /** A ready message older than this expires wherever it sits (0: never); a message's own TTL
   *  may shorten it. Delivered messages do not expire. */
  std::int64_t message_ttl_ms = 0;
  /** The queue expires once unused (no consumer attached, no get) for this long (0: never). */
  std::int64_t expires_ms = 0;
  /** A message held unacknowledged longer than this is taken back from its consumer and
   *  released (0: never); the host should tell that consumer. */
  std::int64_t consumer_timeout_ms = 0;
  /** Delayed retry: a requeued message waits min * 2^(failures - 1) ms, at most max, before it
   *  is ready again (0: at once). */
  std::int64_t retry_min_ms = 0;
  std::int64_t retry_max_ms = 0;
  /** One consumer at a time receives messages: the highest priority, then the earliest. A
   *  higher-priority consumer takes over once the active one holds nothing. */
  bool single_active_consumer = false;
  /** Test-only: a deliberate bug (not recorded in snapshots). */
  queue_mutation test_mutation = queue_mutation::none;

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
    enqueue = 1,        // size, priority (the message's id is its entry's index)
    attach = 2,         // consumer, prefetch (credit: unacknowledged deliveries at most; 0 = none)
    detach = 3,         // consumer: its unacknowledged messages return, uncounted
    settle = 4,         // consumer, outcome, ids
    purge = 5,          // every ready message is dropped (unacknowledged ones stay)
    get = 6,            // consumer: one ready message, held like a delivery, whatever its prefetch
    tick = 7,           // time passes: expiries, timeouts and delayed retries take effect
    dead_lettered = 8,  // ids: at-least-once dead letters the target now holds durably
  };
  kind type = kind::enqueue;
  consumer_id consumer = 0;
  std::uint32_t size = 0;
  std::uint8_t priority = 0;
  std::uint32_t prefetch = 0;
  settlement outcome = settlement::ack;
  std::vector<message_id> ids;
  /** The proposer's clock (ms); every command carries it. */
  std::int64_t time = 0;
  /** Enqueue: this message's TTL (ms, 0: the queue's). */
  std::int64_t ttl_ms = 0;
  /** Enqueue: publisher deduplication. A sequence at or below the producer's last accepted
   *  one is a duplicate and enqueues nothing (producer 0: no deduplication). A refused publish
   *  (length limit) is not recorded: it may be sent again with the same sequence, as long as
   *  no higher sequence of that producer was accepted meanwhile. */
  std::uint64_t producer = 0;
  std::uint64_t sequence = 0;
  /** Attach: the consumer's priority (higher is served first). */
  std::int32_t consumer_priority = 0;
  /** In a queue group (queue_group): the member queue the command is for (0 for a queue of
   *  its own). A tick is for every member. */
  std::uint8_t member = 0;
  /** In a queue group, an enqueue for several members: one bit per member (bit i: member i),
   *  one log entry and one body for all of them; 0: for `member` only. */
  std::uint64_t fanout = 0;

  friend bool operator==(const command&, const command&) = default;
};

/** The bytes of a command, as proposed to the log; an enqueue carries its body (of c.size
 *  bytes) after the command. */
raft::shared_bytes encode(const command& c, std::span<const std::byte> body = {});
/** The body an encoded enqueue carries (empty for anything else or malformed bytes); a view
 *  into `payload`. */
std::span<const std::byte> body_of(std::span<const std::byte> payload);
/** Queue options as bytes (for a registry of declared queues), and back; nothing if malformed
 *  or out of range. */
std::vector<std::byte> encode(const queue_options& o);
std::optional<queue_options> decode_options(std::span<const std::byte> bytes);
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
enum class removal : std::uint8_t {
  acked,
  dropped,        // rejected, or over the delivery limit or max length, with no target
  dead_lettered,  // the same, with a dead-letter target: the host routes it there
  purged,
  expired,  // its TTL ran out (dead-lettered too if the queue has a target)
};

struct removed {
  message_id id = 0;
  removal why = removal::acked;

  friend bool operator==(const removed&, const removed&) = default;
};

/** What applying one command asks of the host. */
struct effects {
  std::vector<delivery> deliveries;
  std::vector<removed> removals;
  /** Enqueue: what became of the message. */
  enum class publish : std::uint8_t { none, accepted, duplicate, rejected, rejected_dlx };
  publish published = publish::none;
  /** Consumers whose unacknowledged messages were taken back by the consumer timeout. */
  std::vector<consumer_id> timed_out;
  /** At-least-once dead letters: the host hands each to the dead-letter target, then
   *  proposes dead_lettered with its id. They stay in the queue meanwhile. */
  std::vector<message_id> dead_letters;
  /** The queue has been unused for queue_options::expires_ms: the host deletes it. */
  bool queue_expired = false;
  /** Empty on success; errc::malformed_message (undecodable command) or errc::invalid_command
   *  (an unknown consumer, a message it does not hold) otherwise. The state is unchanged. */
  std::error_code error;

  friend bool operator==(const effects&, const effects&) = default;
};

/** Counters of the queue, as every replica sees them. */
struct queue_status {
  std::uint64_t ready = 0;
  std::uint64_t unacked = 0;
  std::uint64_t ready_bytes = 0;
  std::uint64_t unacked_bytes = 0;
  /** Requeued messages waiting out their retry delay. */
  std::uint64_t delayed = 0;
  /** At-least-once dead letters not yet confirmed in the target. */
  std::uint64_t dead_lettering = 0;
  std::uint64_t consumers = 0;
  /** The consumer that receives messages under single_active_consumer, or 0. */
  consumer_id active_consumer = 0;
};

class state_machine {
 public:
  explicit state_machine(queue_options options = {}) : options_(std::move(options)) {}

  /** Applies the command in log entry `e` (index e.index). */
  effects apply(const raft::entry& e);
  /** Applies a decoded command as if it were the entry at `index`. */
  effects apply(raft::index_t index, const command& c);

  queue_status status() const;
  /** Every consumer the queue knows: attached ones, and getters holding a message (a getter
   *  that is not attached is forgotten once it holds nothing). */
  std::vector<consumer_id> consumers() const;
  /** The messages consumer `c` holds unacknowledged, as deliveries (marked redelivered). */
  std::vector<delivery> held_by(consumer_id c) const;
  /** At-least-once dead letters not yet confirmed in the target, oldest first. */
  std::vector<message_id> dead_letters() const;
  const queue_options& options() const noexcept { return options_; }
  /** The oldest log index any live message needs (ready or unacknowledged), or 0 if none: the
   *  log before it holds no live body. */
  raft::index_t oldest_live() const;
  /** The ids of every live message (ready, unacknowledged, waiting to retry or to be
   *  dead-lettered), ascending: the log entries whose bodies the queue still needs. */
  std::vector<message_id> live_ids() const;
  /** How many messages are live. */
  std::uint64_t live_count() const;

  /** The whole state, as bytes (for Raft snapshots). */
  raft::shared_bytes snapshot() const;
  /** Replaces the state with a snapshot's; false (state unchanged) if the bytes are malformed. */
  bool restore(const raft::shared_bytes& bytes);

  /** The same queue: equal options, clock, messages (wherever they sit) and consumers. */
  friend bool operator==(const state_machine& a, const state_machine& b);

 private:
  // One live message's metadata: 24 bytes, so a backlog of millions stays small. Failure
  // counts saturate at 65,535.
  struct message {
    message_id id = 0;
    std::int64_t expires_at = 0;  // 0: never
    std::uint32_t size = 0;
    std::uint16_t failed = 0;
    std::uint8_t priority = 0;
    std::uint8_t flags = 0;  // see the flag_ constants

    friend bool operator==(const message&, const message&) = default;
  };
  static constexpr std::uint8_t flag_delivered = 1;  // handed to a consumer before
  static constexpr std::uint8_t flag_dead = 2;       // an at-least-once dead letter, pending
  static constexpr std::uint8_t flag_own_ttl = 4;    // expires by its own TTL, not the queue's
  static constexpr std::uint8_t flag_gone = 8;       // a tombstone in its lane (taken out)

  struct held {
    message m;
    std::int64_t since = 0;  // when delivered

    friend bool operator==(const held&, const held&) = default;
  };
  struct consumer {
    std::uint32_t prefetch = 0;
    std::int32_t priority = 0;
    std::uint64_t arrival = 0;  // attach order, for single active consumer
    bool attached = false;      // false: it only holds messages it took with get
    std::map<message_id, held> unacked;

    friend bool operator==(const consumer&, const consumer&) = default;
  };
  struct delayed_message {
    message m;
    std::int64_t ready_at = 0;

    friend bool operator==(const delayed_message&, const delayed_message&) = default;
  };
  using lane = std::deque<message>;

  void enqueue(raft::index_t index, const command& c, effects& out);
  /** The first ready message in delivery order (priority, then id), other than `skip`. */
  std::optional<std::pair<std::uint8_t, message_id>> head(message_id skip = 0) const;
  /** Takes ready message `id` of `priority` out of its lane or returned set. */
  message take(std::uint8_t priority, message_id id);
  void make_ready(const message& m);
  void discard(message m, removal why, effects& out);
  void give_back(message m, bool count_failure, effects& out);
  void housekeeping(effects& out);
  void choose_active();
  bool may_receive(const consumer& c) const;
  void deliver(effects& out);
  void hand_over(consumer_id who, consumer& c, message m, effects& out);
  /** Every live message, by id, with its retry time (0 unless it waits to retry). */
  template <class Visit>
  void visit_live(Visit&& visit) const;

  queue_options options_;
  std::int64_t now_ = 0;
  // Ready messages never delivered, per priority, in arrival (id) order; a message taken from
  // the middle (its own TTL ran out) leaves a tombstone, dropped once it reaches the front.
  std::array<lane, max_priority + 1> fresh_;
  // Ready messages delivered before and returned, per priority, by id: back in their place,
  // ahead of newer messages.
  std::array<std::map<message_id, message>, max_priority + 1> returned_;
  std::uint64_t ready_count_ = 0;
  std::uint64_t ready_bytes_ = 0;
  // Ready messages whose expiry is not in arrival order (own TTL, or returned): expiry, id,
  // priority. Fresh messages under the queue's TTL expire in arrival order from each lane.
  std::set<std::tuple<std::int64_t, message_id, std::uint8_t>> expiry_;
  std::map<message_id, delayed_message> delayed_;           // requeued, waiting to retry
  std::set<std::pair<std::int64_t, message_id>> retry_at_;  // delayed_, by retry time
  std::map<message_id, message> dead_;  // at-least-once, awaiting the target's confirmation
  std::map<consumer_id, consumer> consumers_;
  consumer_id next_turn_ = 0;  // round robin: the consumer after the last one served
  std::uint64_t arrivals_ = 0;
  consumer_id active_ = 0;                            // single active consumer
  std::map<std::uint64_t, std::uint64_t> producers_;  // producer -> last sequence
  std::int64_t last_used_ = -1;                       // -1: nothing applied yet (the queue is new)
  bool expired_ = false;
};

}  // namespace quorum::queue
