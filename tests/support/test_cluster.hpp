// A hand-driven cluster of Raft cores for unit tests: in-memory storage per node, an outbox of
// messages that the test delivers (all, some, or none), and links that can be cut. One thread.
#pragma once

#include <quorum/raft/core.hpp>
#include <quorum/raft/memory_storage.hpp>

#include <catch2/catch.hpp>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace quorum::test {

using raft::core;
using raft::entry;
using raft::index_t;
using raft::memory_storage;
using raft::message;
using raft::message_type;
using raft::node_id;
using raft::role;
using raft::term_t;

/** Persists `rd` into `storage` the way a host must: snapshot chunks, a received snapshot,
 *  entries, then hard state. */
inline void persist(memory_storage& storage, const raft::ready& rd) {
  for (const auto& chunk : rd.snapshot_chunks) storage.write_snapshot_chunk(chunk);
  if (rd.snapshot) storage.install_snapshot(*rd.snapshot);
  storage.append(rd.entries);
  if (rd.hard_state) storage.set_hard_state(*rd.hard_state);
}

/** Options for tests: small windows, seed derived from id; PreVote/CheckQuorum as default. */
inline raft::options test_options(node_id id) {
  raft::options o;
  o.id = id;
  o.election_ticks = 10;
  o.heartbeat_ticks = 1;
  o.seed = 42;
  return o;
}

/** Payloads of entries, skipping the leaders' empty no-ops. */
inline std::vector<std::string> payloads(const std::vector<entry>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) {
    if (!e.payload.empty()) out.push_back(e.payload.to_string());
  }
  return out;
}

class test_cluster {
 public:
  using tweak = std::function<void(raft::options&)>;

  explicit test_cluster(std::size_t size, tweak adjust = {}) : adjust_(std::move(adjust)) {
    raft::membership members;
    for (node_id id = 1; id <= size; ++id) members.voters.push_back(id);
    for (node_id id : members.voters) {
      auto& n = nodes_[id];
      n.storage = std::make_unique<memory_storage>(members);
      start(id);
    }
  }

  core<memory_storage>& operator[](node_id id) { return *nodes_.at(id).raft; }
  memory_storage& storage(node_id id) { return *nodes_.at(id).storage; }
  const std::vector<entry>& applied(node_id id) { return nodes_.at(id).applied; }
  /** Answers to the proposals `id` forwarded (core::forward), in arrival order. */
  const std::vector<raft::proposal_state>& answers(node_id id) { return nodes_.at(id).answers; }
  std::vector<message>& outbox() { return outbox_; }

  /** Handles every ready batch of `id`: persist, collect messages, apply, advance. */
  void process(node_id id) {
    auto& n = nodes_.at(id);
    if (!n.raft) return;
    while (n.raft->has_ready()) {
      raft::ready rd = n.raft->get_ready();
      for (auto& m : rd.messages) outbox_.push_back(m);
      persist(*n.storage, rd);
      for (auto& m : rd.persisted_messages) outbox_.push_back(m);
      if (rd.snapshot) {
        n.applied = decode_state(n.storage->snapshot_data());
        ++n.restored;
      }
      for (auto& e : rd.committed_entries) n.applied.push_back(e);
      for (auto& ps : rd.proposal_states) n.answers.push_back(ps);
      n.raft->advance(rd);
    }
  }

  /**
   * Snapshots `id`'s applied state (its applied entries' payloads, one per line) and compacts
   * its log up to the snapshot but `trailing` entries. Returns the snapshot's meta.
   */
  raft::snapshot_meta take_snapshot(node_id id, index_t trailing = 0) {
    auto& n = nodes_.at(id);
    const raft::snapshot_meta meta = n.raft->applied_meta();
    REQUIRE(meta.index > 0);
    std::string data;
    for (const std::string& p : payloads(n.applied)) data += p + '\n';
    REQUIRE_FALSE(n.storage->create_snapshot(meta, raft::shared_bytes(data)));
    if (meta.index >= n.storage->first_index() + trailing) {
      REQUIRE_FALSE(n.storage->compact(meta.index - trailing));
    }
    return meta;
  }

  /** How many times `id` restored its state from a received snapshot. */
  int restored(node_id id) const { return nodes_.at(id).restored; }

  void process_all() {
    for (auto& [id, n] : nodes_) process(id);
  }

  /**
   * Delivers messages (and their consequences) until none are left; returns how many. Messages
   * for which `keep` returns false are dropped.
   */
  std::size_t deliver_all(const std::function<bool(const message&)>& keep = {}) {
    std::size_t delivered = 0;
    process_all();
    while (!outbox_.empty()) {
      auto batch = std::move(outbox_);
      outbox_.clear();
      for (auto& m : batch) {
        if (!can_reach(m.from, m.to) || (keep && !keep(m))) continue;
        ++delivered;
        REQUIRE_FALSE(nodes_.at(m.to).raft->step(m));
        process(m.to);
      }
      process_all();
    }
    return delivered;
  }

  /** Makes `id` campaign and delivers everything: it should then lead. */
  void elect(node_id id) {
    (*this)[id].campaign();
    deliver_all();
  }

  void tick(node_id id, int times = 1) {
    for (int i = 0; i < times; ++i) {
      if (nodes_.at(id).raft) nodes_.at(id).raft->tick();
    }
    process(id);
  }

  void tick_all(int times = 1) {
    for (int i = 0; i < times; ++i) {
      for (auto& [id, n] : nodes_) {
        if (n.raft) n.raft->tick();
      }
      process_all();
    }
  }

  /** Cuts both directions between `a` and `b`. */
  void cut(node_id a, node_id b) {
    cut_.insert({a, b});
    cut_.insert({b, a});
  }
  /** Cuts `id` off from everyone. */
  void isolate(node_id id) {
    for (auto& [other, n] : nodes_) {
      if (other != id) cut(id, other);
    }
  }
  void heal() { cut_.clear(); }
  bool can_reach(node_id from, node_id to) const {
    return !cut_.contains({from, to}) && nodes_.at(to).raft != nullptr;
  }

  /** Stops `id` (its core and unsent messages are lost; its storage stays). */
  void stop(node_id id) {
    nodes_.at(id).raft.reset();
    std::erase_if(outbox_, [id](const message& m) { return m.from == id; });
  }
  /** Starts `id` again from what its storage holds. */
  void start(node_id id) {
    auto& n = nodes_.at(id);
    raft::options o = test_options(id);
    if (adjust_) adjust_(o);
    n.raft = std::make_unique<core<memory_storage>>(*n.storage, o);
    n.applied = decode_state(n.storage->snapshot_data());
  }

  /**
   * Ticks `candidates` (and delivers) until one of them leads, for at most `rounds` ticks;
   * returns it, or no_node. Followers must first wait out their lease on the old leader.
   */
  node_id await_leader_among(std::initializer_list<node_id> candidates, int rounds = 100) {
    for (int i = 0; i < rounds; ++i) {
      for (node_id id : candidates) tick(id);
      deliver_all();
      for (node_id id : candidates) {
        if (nodes_.at(id).raft && nodes_.at(id).raft->current_role() == role::leader) return id;
      }
    }
    return raft::no_node;
  }

  /** The single leader among running nodes, or no_node. */
  node_id leader() {
    node_id found = raft::no_node;
    for (auto& [id, n] : nodes_) {
      if (n.raft && n.raft->current_role() == role::leader) {
        if (found != raft::no_node && (*this)[found].term() == n.raft->term()) FAIL("two leaders");
        if (found == raft::no_node || n.raft->term() > (*this)[found].term()) found = id;
      }
    }
    return found;
  }

 private:
  struct node {
    std::unique_ptr<memory_storage> storage;
    std::unique_ptr<core<memory_storage>> raft;
    std::vector<entry> applied;
    std::vector<raft::proposal_state> answers;
    int restored = 0;
  };
  // The test state machine's snapshot format: one applied payload per line.
  static std::vector<entry> decode_state(const raft::shared_bytes& data) {
    std::vector<entry> out;
    const std::string text = data.to_string();
    for (std::size_t at = 0; at < text.size();) {
      const auto end = text.find('\n', at);
      out.push_back(entry{0, 0, raft::shared_bytes(text.substr(at, end - at))});
      at = end + 1;
    }
    return out;
  }
  tweak adjust_;
  std::map<node_id, node> nodes_;
  std::vector<message> outbox_;
  std::set<std::pair<node_id, node_id>> cut_;
};

/** A cluster of `size` nodes whose initial membership is `members` (others are outsiders). */
class member_cluster : public test_cluster {
 public:
  member_cluster(std::size_t size, const raft::membership& members, tweak adjust = {})
      : test_cluster(size, std::move(adjust)) {
    for (node_id id = 1; id <= size; ++id) {
      stop(id);
      storage(id) = memory_storage(members);
      start(id);
    }
  }
};

/** Handles `id`'s ready batches as test_cluster::process does, and returns their read
 *  states (which process() drops). */
inline std::vector<raft::read_state> reads_of(test_cluster& c, node_id id) {
  std::vector<raft::read_state> out;
  while (c[id].has_ready()) {
    raft::ready rd = c[id].get_ready();
    for (auto& m : rd.messages) c.outbox().push_back(m);
    persist(c.storage(id), rd);
    for (auto& m : rd.persisted_messages) c.outbox().push_back(m);
    out.insert(out.end(), rd.read_states.begin(), rd.read_states.end());
    c[id].advance(rd);
  }
  return out;
}

/** Ticks the leader and delivers until `done` or 50 rounds. */
template <class Done>
void settle(test_cluster& c, node_id leader, Done done) {
  for (int i = 0; i < 50 && !done(); ++i) {
    c.tick(leader);
    c.deliver_all();
  }
}

}  // namespace quorum::test
