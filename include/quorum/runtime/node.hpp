// A node: many Raft groups (replicas) in one process. Their logs share one storage::shared_wal
// synced by one group-commit thread, and their messages share one transport, which carries
// every group over one connection per peer node. Each group's replica runs on a strand of one
// of the host's executors (group id modulo their number), so with one io_context per thread a
// group stays on one thread. The host owns the executors, the WAL and the transport.
#pragma once

#include <quorum/runtime/group_commit.hpp>
#include <quorum/runtime/replica.hpp>
#include <quorum/transport/codec.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <utility>
#include <vector>

namespace quorum::runtime {

/** A transport a node can send through: queues a group-tagged message for its recipient. */
template <class T>
concept message_transport = requires(T& t, const transport::group_message& m) {
  t.send(m);
};

/** Settings of a node. */
struct node_settings {
  /** This node; every group's replica has this id. */
  raft::node_id self = raft::no_node;
  /** Options for every group (id is set to self). */
  raft::options raft;
  /** Ticks and snapshots of every replica. */
  replica_settings replica;
};

template <state_machine StateMachine, message_transport Transport>
class node {
 public:
  using replica_type = replica<StateMachine, wal_group>;

  /**
   * A node over `wal` and `transport` (both outlive it), running groups on `executors`. Wire the
   * transport's receiver to deliver(). Destroy the node only once its replicas are stopped and
   * the executors have run their completions (e.g. after the io_contexts' run() returned).
   */
  node(std::vector<boost::asio::any_io_executor> executors, storage::shared_wal& wal,
       Transport& transport, node_settings settings)
      : executors_(std::move(executors)),
        transport_(&transport),
        settings_(std::move(settings)),
        commit_(std::make_unique<group_commit>(wal)) {
    if (executors_.empty()) throw std::invalid_argument("a node needs at least one executor");
    settings_.raft.id = settings_.self;
  }

  node(const node&) = delete;
  node& operator=(const node&) = delete;

  ~node() {
    // The commit thread finishes first: its callbacks reach the replicas.
    commit_.reset();
  }

  /**
   * Opens group `group` (non-zero) with `machine` (owned by the node from now on) and starts its
   * replica. `bootstrap` is its membership while its log records none. Throws
   * std::invalid_argument if the group exists, storage_error if its files are damaged.
   */
  replica_type& add_group(std::uint64_t group, raft::membership bootstrap,
                          std::unique_ptr<StateMachine> machine) {
    if (find(group) != nullptr) throw std::invalid_argument("the group exists already");
    auto g = std::make_unique<group_state>();
    g->machine = std::move(machine);
    {
      std::lock_guard wal_lock(commit_->wal_mutex());
      g->storage = std::make_unique<wal_group>(*commit_, commit_->wal().open(group, bootstrap));
    }
    g->replica = std::make_unique<replica_type>(
        executors_[group % executors_.size()], *g->storage, *g->machine, settings_.raft,
        [this, group](raft::message m) {
          transport_->send(transport::group_message{group, std::move(m)});
        },
        settings_.replica);
    replica_type& r = *g->replica;
    {
      std::unique_lock lock(groups_mutex_);
      if (groups_.contains(group)) throw std::invalid_argument("the group exists already");
      groups_.emplace(group, std::move(g));
    }
    r.start();
    return r;
  }

  /** The replica of `group`, or nullptr. */
  replica_type* find(std::uint64_t group) const {
    std::shared_lock lock(groups_mutex_);
    auto it = groups_.find(group);
    return it == groups_.end() ? nullptr : it->second->replica.get();
  }

  /**
   * Entry `index` of group `group`'s log as stored on this node (in the log, or kept below its
   * start by the snapshot), or nothing if the group is not here, the entry is not (or no
   * longer) held, or reading it failed. Any thread.
   */
  std::optional<raft::entry> read_entry(std::uint64_t group, raft::index_t index) const {
    std::shared_lock lock(groups_mutex_);
    auto it = groups_.find(group);
    if (it == groups_.end()) return std::nullopt;
    try {
      std::error_code ec;
      std::vector<raft::entry> found =
          it->second->storage->entries(index, index + 1, ~std::uint64_t{0}, ec);
      if (ec == errc::compacted) return it->second->storage->kept_entry(index);
      if (ec || found.empty()) return std::nullopt;
      return std::move(found.front());
    } catch (const storage::storage_error&) {
      return std::nullopt;  // the replica itself stops on the damage when it reads there
    }
  }

  /** A message from the transport; dropped (and counted) if its group is not on this node. */
  void deliver(transport::group_message m) {
    if (replica_type* r = find(m.group)) {
      r->receive(std::move(m.message));
    } else {
      ++unknown_group_messages_;
    }
  }

  /**
   * The transport lost its connection to node `peer` (wire tcp_transport::on_peer_lost here):
   * every quiesced group led from `peer` wakes and, if `peer` is really gone, elects a new
   * leader within an election timeout. Any thread.
   */
  void peer_lost(raft::node_id peer) {
    std::shared_lock lock(groups_mutex_);
    for (auto& [id, g] : groups_) g->replica->suspect(peer);
  }

  /** Stops every replica (pending proposals fail with errc::shutting_down). */
  void stop() {
    std::shared_lock lock(groups_mutex_);
    for (auto& [id, g] : groups_) g->replica->stop();
  }

  /** True once every replica is finished (stopped, no sync in flight): run the executors until
   *  then, and until they are idle, before destroying the node. */
  bool finished() const {
    std::shared_lock lock(groups_mutex_);
    for (const auto& [id, g] : groups_) {
      if (!g->replica->finished()) return false;
    }
    return true;
  }

  std::size_t group_count() const {
    std::shared_lock lock(groups_mutex_);
    return groups_.size();
  }
  /** Messages for groups this node does not have. */
  std::uint64_t unknown_group_messages() const noexcept { return unknown_group_messages_.load(); }
  /** The group commit (its counters show how many syncs served how many batches). */
  const group_commit& commit() const noexcept { return *commit_; }

 private:
  struct group_state {
    std::unique_ptr<StateMachine> machine;
    std::unique_ptr<wal_group> storage;
    std::unique_ptr<replica_type> replica;
  };

  std::vector<boost::asio::any_io_executor> executors_;
  Transport* transport_;
  node_settings settings_;
  mutable std::shared_mutex groups_mutex_;
  std::map<std::uint64_t, std::unique_ptr<group_state>> groups_;
  std::atomic<std::uint64_t> unknown_group_messages_{0};
  std::unique_ptr<group_commit> commit_;  // destroyed first (see ~node)
};

}  // namespace quorum::runtime
