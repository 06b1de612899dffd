// Three replicas of the pure Raft core in one process, each with its own file log on disk
// (fdatasync before anything is acknowledged), and a tiny message loop: an election,
// replication, the leader stopped (core and open files gone), a new election, the old leader
// reopening its files and catching up, and a check that every committed entry survived.
// Single-threaded; time is a tick counter. Files go to ./raft-demo.data, removed at the end.
#include <quorum/raft/core.hpp>
#include <quorum/storage/file_log.hpp>

#include <fmt/core.h>

#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace raft = quorum::raft;
namespace storage = quorum::storage;

namespace {

const std::string data_dir = "raft-demo.data";

// One replica: its files (survive a stop), the open log and the core (do not), what it applied.
struct replica {
  std::unique_ptr<storage::file_log> log;
  std::unique_ptr<raft::core<storage::file_log>> core;
  std::vector<std::string> applied;
};

class demo_cluster {
 public:
  explicit demo_cluster(std::vector<raft::node_id> ids) : ids_(std::move(ids)) {
    std::filesystem::remove_all(data_dir);
    for (auto id : ids_) start(id);
  }
  ~demo_cluster() {
    replicas_.clear();
    std::filesystem::remove_all(data_dir);
  }
  demo_cluster(const demo_cluster&) = delete;
  demo_cluster& operator=(const demo_cluster&) = delete;

  // Opens the node's log (recovering whatever its files hold) and starts a core on it.
  void start(raft::node_id id) {
    raft::options o;
    o.id = id;
    o.seed = 2024;
    auto& r = replicas_[id];
    r.log = std::make_unique<storage::file_log>(files_, data_dir + "/node-" + std::to_string(id),
                                                raft::membership{ids_});
    r.core = std::make_unique<raft::core<storage::file_log>>(*r.log, o);
    r.applied.clear();
  }

  // The process of a node ends: its core and its open files are gone; only the disk remains.
  void stop(raft::node_id id) {
    replicas_.at(id).core.reset();
    replicas_.at(id).log.reset();
  }

  bool running(raft::node_id id) const { return replicas_.at(id).core != nullptr; }

  // One round of the loop: tick everyone, then handle ready batches and deliver messages
  // until the cluster is quiet.
  void step_time() {
    ++now_;
    for (auto& [id, r] : replicas_) {
      if (r.core) r.core->tick();
    }
    drain();
  }

  std::optional<raft::node_id> leader() const {
    for (auto& [id, r] : replicas_) {
      if (r.core && r.core->current_role() == raft::role::leader) return id;
    }
    return std::nullopt;
  }

  raft::core<storage::file_log>& core(raft::node_id id) { return *replicas_.at(id).core; }
  raft::index_t last_on_disk(raft::node_id id) const { return replicas_.at(id).log->last_index(); }
  const std::vector<std::string>& applied(raft::node_id id) { return replicas_.at(id).applied; }
  int now() const { return now_; }

  void drain() {
    for (;;) {
      bool busy = false;
      for (auto& [id, r] : replicas_) {
        if (r.core && r.core->has_ready()) {
          handle_ready(id, r);
          busy = true;
        }
      }
      while (!in_flight_.empty()) {
        raft::message m = std::move(in_flight_.front());
        in_flight_.pop_front();
        auto& to = replicas_.at(m.to);
        if (to.core) to.core->step(m);
        busy = true;
      }
      if (!busy) return;
    }
  }

 private:
  void handle_ready(raft::node_id id, replica& r) {
    raft::ready rd = r.core->get_ready();
    if (rd.soft_state && rd.soft_state->current_role != raft::role::follower) {
      fmt::print("  t={:3}  node {} is {} in term {}\n", now_, id,
                 raft::to_string(rd.soft_state->current_role), r.core->term());
    }
    // The ready contract: send the leader's appends now, persist, then send what vouches for
    // the persisted state, then apply.
    for (auto& m : rd.messages) in_flight_.push_back(std::move(m));
    std::error_code ec = r.log->append(rd.entries);
    if (!ec && rd.hard_state) ec = r.log->set_hard_state(*rd.hard_state);
    if (!ec) ec = r.log->sync();  // fdatasync: only now may acknowledgements leave
    if (ec) {
      fmt::print("node {}: storage failed ({}); a real node stops here\n", id, ec.message());
      std::exit(1);
    }
    for (auto& m : rd.persisted_messages) in_flight_.push_back(std::move(m));
    for (auto& e : rd.committed_entries) {
      if (!e.payload.empty()) r.applied.push_back(e.payload.to_string());
    }
    r.core->advance(rd);
  }

  std::vector<raft::node_id> ids_;
  storage::posix_file_system files_;
  std::map<raft::node_id, replica> replicas_;
  std::deque<raft::message> in_flight_;
  int now_ = 0;
};

raft::node_id wait_for_leader(demo_cluster& cluster) {
  for (int i = 0; i < 200; ++i) {
    if (auto id = cluster.leader()) return *id;
    cluster.step_time();
  }
  fmt::print("no leader after 200 ticks\n");
  std::exit(1);
}

}  // namespace

int main() {
  const std::vector<raft::node_id> ids = {1, 2, 3};
  demo_cluster cluster(ids);
  std::vector<std::string> committed;

  fmt::print("== 1. election: three followers, randomized timeouts, PreVote then vote\n");
  raft::node_id leader = wait_for_leader(cluster);
  fmt::print("  leader: node {}\n", leader);

  fmt::print("== 2. replication: five writes through node {}\n", leader);
  for (int i = 1; i <= 5; ++i) {
    const std::string value = fmt::format("set x={}", i);
    auto result = cluster.core(leader).propose(raft::shared_bytes(value));
    if (result.error) {
      fmt::print("  propose failed: {}\n", result.error.message());
      return 1;
    }
    cluster.drain();
    fmt::print("  '{}' at index {} -> committed index {}\n", value, result.first_index,
               cluster.core(leader).log().committed());
    committed.push_back(value);
  }
  for (auto id : ids) {
    fmt::print("  node {} applied {} entries\n", id, cluster.applied(id).size());
  }

  fmt::print("== 3. the leader, node {}, stops\n", leader);
  cluster.stop(leader);
  const raft::node_id old_leader = leader;
  for (auto id : ids) {
    if (id != old_leader) {
      auto refused = cluster.core(id).propose(raft::shared_bytes("write during failover"));
      fmt::print("  a write to node {} is refused: {} (leader hint: {})\n", id,
                 refused.error.message(), refused.leader_hint);
      break;
    }
  }

  fmt::print("== 4. re-election among the two survivors\n");
  leader = wait_for_leader(cluster);
  fmt::print("  new leader: node {} in term {}\n", leader, cluster.core(leader).term());
  const std::string after = "set y=after-failover";
  if (cluster.core(leader).propose(raft::shared_bytes(after)).error) return 1;
  cluster.drain();
  committed.push_back(after);

  fmt::print("== 5. node {} reopens its files and catches up\n", old_leader);
  cluster.start(old_leader);
  fmt::print("  recovered from {}/node-{}: {} entries on disk\n", data_dir, old_leader,
             cluster.last_on_disk(old_leader));
  for (int i = 0; i < 5; ++i) cluster.step_time();

  fmt::print("== 6. every committed entry is still there, on every node\n");
  bool ok = true;
  for (auto id : ids) {
    const bool same = cluster.applied(id) == committed;
    ok = ok && same;
    fmt::print("  node {}: {} of {} committed entries applied, in order: {}\n", id,
               cluster.applied(id).size(), committed.size(), same ? "yes" : "NO");
  }
  fmt::print("{}\n", ok ? "demo: all committed entries survived the leader's stop"
                        : "demo: FAILED, committed entries missing");
  return ok ? 0 : 1;
}
