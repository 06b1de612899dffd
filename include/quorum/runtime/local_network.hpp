// An in-process transport: replicas (or nodes) of one process or test exchange Raft messages
// through it, each delivered on the receiver's own executor. Links can be cut to simulate
// partitions. It carries plain messages between replicas and group-tagged messages between
// nodes (runtime::node). Thread-safe: send() may be called from any strand.
#pragma once

#include <quorum/raft/message.hpp>
#include <quorum/transport/codec.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>

#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <utility>

namespace quorum::runtime {

class local_network {
 public:
  using receiver = std::function<void(raft::message)>;
  using group_receiver = std::function<void(transport::group_message)>;

  /** Registers replica `id`: messages to it are posted to `ex` and handed to `receive`. */
  void attach(raft::node_id id, boost::asio::any_io_executor ex, receiver receive) {
    attach_node(id, std::move(ex),
                [r = std::move(receive)](transport::group_message m) { r(std::move(m.message)); });
  }
  /** Registers node `id` (many groups): messages to it are handed to `receive` on `ex`. */
  void attach_node(raft::node_id id, boost::asio::any_io_executor ex, group_receiver receive) {
    std::lock_guard lock(mutex_);
    nodes_[id] = {std::move(ex), std::move(receive)};
  }
  /** Unregisters node `id`: messages to it are dropped from now on. */
  void detach(raft::node_id id) {
    std::lock_guard lock(mutex_);
    nodes_.erase(id);
  }
  /** Cuts (or restores) both directions between `a` and `b`. */
  void set_link(raft::node_id a, raft::node_id b, bool up) {
    std::lock_guard lock(mutex_);
    for (auto link : {std::pair(a, b), std::pair(b, a)}) {
      if (up) {
        cut_.erase(link);
      } else {
        cut_.insert(link);
      }
    }
  }

  /** Delivers `m` to its recipient, if attached and reachable; otherwise drops it (as a network
   *  may). */
  void send(raft::message m) { send(transport::group_message{0, std::move(m)}); }
  /** The same for a group-tagged message (a node's transport). */
  void send(transport::group_message m) {
    std::lock_guard lock(mutex_);
    ++sent_;
    auto it = nodes_.find(m.message.to);
    if (it == nodes_.end() || cut_.contains({m.message.from, m.message.to})) return;
    boost::asio::post(it->second.executor, [receive = it->second.receive,
                                            m = std::move(m)]() mutable { receive(std::move(m)); });
  }

  /** Messages sent so far (delivered or not). */
  std::uint64_t sent() const {
    std::lock_guard lock(mutex_);
    return sent_;
  }

 private:
  struct node {
    boost::asio::any_io_executor executor;
    group_receiver receive;
  };
  mutable std::mutex mutex_;
  std::uint64_t sent_ = 0;
  std::map<raft::node_id, node> nodes_;
  std::set<std::pair<raft::node_id, raft::node_id>> cut_;
};

}  // namespace quorum::runtime
