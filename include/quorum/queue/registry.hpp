// The registry of declared queues: a pure state machine that every node of a cluster runs in
// one Raft group (queue::service's group 1). Declaring a queue records its name, settings and
// the nodes that hold its replicas; every node applies the same records and opens (or stops)
// its replicas accordingly. A queue's Raft group id is the registry index that declared it,
// plus one, so it is never reused, even for a queue declared again after a delete. A queue
// group (queue/group.hpp) is declared as a whole: each of its queues has a record, all with
// the group's Raft group id, and they are deleted together.
#pragma once

#include <quorum/queue/state_machine.hpp>
#include <quorum/raft/types.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace quorum::queue {

/** A declared queue. */
struct queue_record {
  std::string name;
  std::uint64_t group = 0;
  std::uint32_t replicas = 0;
  std::vector<raft::node_id> members;
  queue_options options;
  /** The queue group it belongs to (empty: a queue of its own), and its place there. */
  std::string queue_group;
  std::uint8_t member = 0;

  friend bool operator==(const queue_record&, const queue_record&) = default;
};

/** One queue of a queue group being declared. */
struct group_member {
  std::string name;
  queue_options options;

  friend bool operator==(const group_member&, const group_member&) = default;
};

/** A registry command. */
struct registry_command {
  /** declare_group: `name` is the group's, `queues` its queues (options is not used); remove
   *  of a group's name removes all its queues. */
  enum class kind : std::uint8_t { declare = 1, remove = 2, declare_group = 3 };
  kind type = kind::declare;
  std::string name;
  std::uint32_t replicas = 0;
  queue_options options;
  std::vector<group_member> queues;

  friend bool operator==(const registry_command&, const registry_command&) = default;
};

raft::shared_bytes encode(const registry_command& c);
std::optional<registry_command> decode_registry_command(std::span<const std::byte> bytes);

/** What applying a registry command did. */
enum class registry_result : std::uint8_t {
  created = 1,    // a new queue
  exists = 2,     // declared again with the same settings: nothing changed
  mismatch = 3,   // declared again with other settings: nothing changed
  removed = 4,    // deleted
  missing = 5,    // delete of a queue that is not declared
  malformed = 6,  // undecodable, or a replica count the cluster cannot hold
  grouped = 7,    // delete of one queue of a queue group (delete the group)
};

class registry {
 public:
  /** A registry for a cluster of `cluster` nodes (every node must list the same ones). */
  explicit registry(std::vector<raft::node_id> cluster);

  /** Applies the command in `e`; `records` receives the queues it concerns (every queue of a
   *  group), if any. */
  registry_result apply(const raft::entry& e, std::vector<queue_record>& records);

  const queue_record* find(const std::string& name) const;
  const std::map<std::string, queue_record>& queues() const noexcept { return queues_; }
  const std::vector<raft::node_id>& cluster() const noexcept { return cluster_; }

 private:
  std::vector<raft::node_id> cluster_;  // sorted
  std::map<std::string, queue_record> queues_;
  std::map<std::string, std::vector<std::string>> groups_;  // group -> its queues, in order
};

}  // namespace quorum::queue
