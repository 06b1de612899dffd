// Raft safety checks for simulations. Single-threaded.
#include <quorum/sim/checker.hpp>

#include <quorum/sim/world.hpp>

#include <limits>
#include <string>

namespace quorum::sim {

std::uint64_t payload_hash(const raft::shared_bytes& payload) {
  trace_hash h;
  for (std::byte b : payload.bytes()) h.add(static_cast<std::uint64_t>(b));
  h.add(payload.size());
  return h.value();
}

void safety_checker::fail(std::string what) {
  if (violation_.empty()) violation_ = std::move(what);
}

void safety_checker::on_leader(raft::node_id node, raft::term_t term, const term_lookup& term_at) {
  auto [it, inserted] = leaders_.try_emplace(term, node);
  if (!inserted && it->second != node) {
    fail("two leaders in term " + std::to_string(term) + ": nodes " + std::to_string(it->second) +
         " and " + std::to_string(node));
    return;
  }
  // Leader Completeness (paper 5.4): a leader holds every committed entry.
  check_holds_committed(node, committed_.size(), term, term_at, "elected leader");
}

void safety_checker::check_holds_committed(raft::node_id node, raft::index_t upto,
                                           raft::term_t term, const term_lookup& term_at,
                                           const char* when) {
  for (raft::index_t i = 1; i <= upto && i <= committed_.size(); ++i) {
    if (committed_[i - 1].committed_by >= term) continue;
    const std::optional<raft::term_t> found = term_at(i);
    if (!found) continue;  // in the node's snapshot
    if (*found != committed_[i - 1].term) {
      fail(std::string(when) + " node " + std::to_string(node) + " lacks committed entry " +
           std::to_string(i) + " (term " + std::to_string(committed_[i - 1].term) +
           "; it has term " + std::to_string(*found) + ")");
      return;
    }
  }
}

void safety_checker::on_entries(raft::node_id node, raft::term_t prev_term,
                                std::span<const raft::entry> entries) {
  // Log Matching (paper 5.3): an (index, term) pair names one entry and one predecessor, so
  // equal pairs in two logs mean equal prefixes.
  for (const raft::entry& e : entries) {
    const seen_entry here{payload_hash(e.payload), prev_term};
    auto [it, inserted] = seen_.try_emplace({e.index, e.term}, here);
    if (!inserted &&
        (it->second.payload_hash != here.payload_hash || it->second.prev_term != here.prev_term)) {
      fail("log matching violated at index " + std::to_string(e.index) + " term " +
           std::to_string(e.term) + " on node " + std::to_string(node));
      return;
    }
    prev_term = e.term;
  }
}

void safety_checker::on_apply(raft::node_id node, raft::term_t node_term, const raft::entry& e) {
  raft::index_t& applied = applied_[node];
  if (e.index != applied + 1) {
    fail("node " + std::to_string(node) + " applied index " + std::to_string(e.index) + " after " +
         std::to_string(applied));
    return;
  }
  applied = e.index;
  const committed_entry here{e.term, payload_hash(e.payload), node_term};
  if (e.index <= committed_.size()) {
    const committed_entry& known = committed_[e.index - 1];
    if (known.term != here.term || known.payload_hash != here.payload_hash) {
      fail("node " + std::to_string(node) + " applied a different entry at index " +
           std::to_string(e.index) + " (term " + std::to_string(e.term) + ", committed term " +
           std::to_string(known.term) + ")");
    }
    return;
  }
  committed_.push_back(here);
}

void safety_checker::on_restart(raft::node_id node, raft::index_t durable_commit,
                                raft::index_t applied, const term_lookup& term_at) {
  applied_[node] = applied;
  // Whatever this node persisted as committed must still be in its log after a restart.
  check_holds_committed(node, durable_commit, std::numeric_limits<raft::term_t>::max(), term_at,
                        "restarted");
}

void safety_checker::on_snapshot(raft::node_id node, raft::index_t index, raft::term_t term,
                                 std::uint64_t data_hash) {
  const auto where = " at index " + std::to_string(index) + " on node " + std::to_string(node);
  if (index > applied_[node] || index > committed_.size() || committed_[index - 1].term != term) {
    fail("a snapshot was taken of entries not applied" + where);
    return;
  }
  auto [it, inserted] = snapshots_.try_emplace(index, term, data_hash);
  if (!inserted && it->second != std::pair(term, data_hash)) {
    fail("two snapshots of the same entries differ" + where);
  }
}

void safety_checker::on_restore(raft::node_id node, raft::index_t index, raft::term_t term,
                                std::uint64_t data_hash) {
  auto it = snapshots_.find(index);
  if (it == snapshots_.end() || it->second != std::pair(term, data_hash)) {
    fail("node " + std::to_string(node) + " restored a snapshot at index " + std::to_string(index) +
         " that no node took (damaged in transfer?)");
    return;
  }
  if (index <= applied_[node]) {
    fail("node " + std::to_string(node) + " restored a snapshot at index " + std::to_string(index) +
         " behind what it applied (" + std::to_string(applied_[node]) + ")");
    return;
  }
  applied_[node] = index;
}

void safety_checker::on_acknowledged(raft::index_t index, raft::term_t term) {
  ++acknowledged_;
  if (index > committed_.size() || committed_[index - 1].term != term) {
    fail("a write acknowledged at index " + std::to_string(index) + " term " +
         std::to_string(term) + " is not the committed entry there");
  }
}

}  // namespace quorum::sim
