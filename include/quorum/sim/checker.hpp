// Raft safety checks for simulations, fed by the cluster driver after every event: at most one
// leader per term; log matching; committed entries never change or disappear (every applied
// sequence is a prefix of one sequence, and every new leader holds all of it); acknowledged
// writes are committed. Records the first violation. Single-threaded.
#pragma once

#include <quorum/raft/types.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace quorum::sim {

/** Looks up the term of an entry in some node's log: 0 if absent, nothing if compacted into
 *  the node's snapshot (which the checker verifies separately). */
using term_lookup = std::function<std::optional<raft::term_t>(raft::index_t)>;

class safety_checker {
 public:
  /** A node is leader in `term`. */
  void on_leader(raft::node_id node, raft::term_t term, const term_lookup& term_at);
  /** Entries enter a node's log after the entry with term `prev_term`. */
  void on_entries(raft::node_id node, raft::term_t prev_term, std::span<const raft::entry> entries);
  /** A node in term `node_term` applies an entry (it must be the next one for that node). */
  void on_apply(raft::node_id node, raft::term_t node_term, const raft::entry& e);
  /** A node restarts from its disk: it applies again after `applied` (its snapshot's index);
   *  its log must still hold every committed entry up to its durable commit index. */
  void on_restart(raft::node_id node, raft::index_t durable_commit, raft::index_t applied,
                  const term_lookup& term_at);
  /** A node took a snapshot of its state machine at `index` (term `term`); `data_hash` is
   *  payload_hash of its bytes. Snapshots at one index must be identical everywhere. */
  void on_snapshot(raft::node_id node, raft::index_t index, raft::term_t term,
                   std::uint64_t data_hash);
  /** A node restored its state machine from a received snapshot: it must be one some node
   *  took, and the node applies on after its index. */
  void on_restore(raft::node_id node, raft::index_t index, raft::term_t term,
                  std::uint64_t data_hash);
  /** A client was told its write at (index, term) succeeded. */
  void on_acknowledged(raft::index_t index, raft::term_t term);
  /** Something the driver itself found wrong. */
  void fail(std::string what);

  bool ok() const noexcept { return violation_.empty(); }
  const std::string& violation() const noexcept { return violation_; }
  /** Entries known committed (applied somewhere), in order. */
  std::size_t committed_count() const noexcept { return committed_.size(); }
  std::size_t acknowledged_count() const noexcept { return acknowledged_; }

 private:
  struct seen_entry {
    std::uint64_t payload_hash;
    raft::term_t prev_term;
  };
  struct committed_entry {
    raft::term_t term;
    std::uint64_t payload_hash;
    // An upper bound on the term in which the entry was committed: the term of the first node
    // seen applying it. Leaders of later terms must hold it (paper 5.4, Leader Completeness);
    // a leader of an older term, elected late, need not.
    raft::term_t committed_by;
  };
  void check_holds_committed(raft::node_id node, raft::index_t upto, raft::term_t term,
                             const term_lookup& term_at, const char* when);

  std::map<raft::term_t, raft::node_id> leaders_;
  std::map<std::pair<raft::index_t, raft::term_t>, seen_entry> seen_;
  std::vector<committed_entry> committed_;
  std::map<raft::node_id, raft::index_t> applied_;
  std::map<raft::index_t, std::pair<raft::term_t, std::uint64_t>> snapshots_;
  std::size_t acknowledged_ = 0;
  std::string violation_;
};

/** Hashes an entry's payload (for comparing entries without keeping their bytes). */
std::uint64_t payload_hash(const raft::shared_bytes& payload);

}  // namespace quorum::sim
