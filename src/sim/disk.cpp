// The simulated disk. Single-threaded.
#include <quorum/sim/disk.hpp>

#include <quorum/error.hpp>

#include <cstring>

namespace quorum::sim {

disk::disk(raft::membership members) : members_(std::move(members)) {
}

std::uint64_t disk::checksum(const raft::entry& e) {
  trace_hash h;
  h.add(e.term);
  h.add(e.index);
  for (std::byte b : e.payload.bytes()) h.add(static_cast<std::uint64_t>(b));
  return h.value();
}

raft::term_t disk::term(raft::index_t i, std::error_code& ec) const {
  ec.clear();
  if (i == 0) return 0;
  if (i > last_index()) {
    ec = errc::unavailable;
    return 0;
  }
  return written_.log[i - 1].e.term;
}

std::vector<raft::entry> disk::entries(raft::index_t lo, raft::index_t hi, std::uint64_t max_bytes,
                                       std::error_code& ec) const {
  ec.clear();
  if (lo == 0) {
    ec = errc::compacted;
    return {};
  }
  if (hi > last_index() + 1) {
    ec = errc::unavailable;
    return {};
  }
  if (random_ != nullptr && random_->chance(faults_.read_error)) {
    throw disk_failure(errc::io_error, "simulated read error");
  }
  std::vector<raft::entry> out;
  std::uint64_t bytes = 0;
  for (raft::index_t i = lo; i < hi; ++i) {
    const record& r = written_.log[i - 1];
    if (checksum(r.e) != r.checksum) {
      throw disk_failure(errc::corruption, "checksum mismatch at index " + std::to_string(i));
    }
    bytes += raft::entry_footprint(r.e);
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(r.e);
  }
  return out;
}

void disk::apply(image& target, const write& w) {
  if (!w.batch.empty()) {
    target.log.resize(static_cast<std::size_t>(w.batch.front().e.index - 1));
    target.log.insert(target.log.end(), w.batch.begin(), w.batch.end());
  }
  if (w.hard) target.hard = *w.hard;
}

void disk::append(std::span<const raft::entry> batch) {
  if (batch.empty()) return;
  write w;
  for (const raft::entry& e : batch) w.batch.push_back({e, checksum(e)});
  apply(written_, w);
  pending_.push_back(std::move(w));
}

void disk::set_hard_state(const raft::hard_state& hs) {
  write w;
  w.hard = hs;
  apply(written_, w);
  pending_.push_back(std::move(w));
}

std::error_code disk::sync() {
  if (random_ != nullptr && random_->chance(faults_.fsync_error)) return errc::io_error;
  for (const write& w : pending_) apply(durable_, w);
  pending_.clear();
  return {};
}

void disk::crash() {
  std::size_t keep = 0;
  if (random_ != nullptr && !pending_.empty()) {
    keep = static_cast<std::size_t>(random_->between(0, pending_.size()));
  }
  for (std::size_t i = 0; i < keep; ++i) {
    write w = pending_[i];
    if (i + 1 == keep && !w.batch.empty() && random_->chance(faults_.torn_write)) {
      // The last write reached the platter only in part: a prefix of its records, the last
      // of which is damaged.
      const auto survive = static_cast<std::size_t>(random_->between(1, w.batch.size()));
      w.batch.resize(survive);
      w.batch.back().checksum ^= 0x5a5a5a5a;
    }
    apply(durable_, w);
  }
  pending_.clear();
  written_ = durable_;
}

std::error_code disk::recover() {
  for (std::size_t i = 0; i < durable_.log.size(); ++i) {
    const record& r = durable_.log[i];
    if (checksum(r.e) == r.checksum) continue;
    if (i + 1 != durable_.log.size()) return errc::corruption;
    durable_.log.pop_back();  // a torn tail was never acknowledged: drop it
  }
  written_ = durable_;
  return {};
}

bool disk::flip_bit() {
  if (random_ == nullptr || durable_.log.size() < 2) return false;
  // A record with a payload, not the last (damage there is indistinguishable from a torn
  // write). Terms live in the in-memory index, checked when the log was opened.
  std::vector<std::size_t> candidates;
  for (std::size_t i = 0; i + 1 < durable_.log.size(); ++i) {
    if (!durable_.log[i].e.payload.empty()) candidates.push_back(i);
  }
  if (candidates.empty()) return false;
  const std::size_t at = random_->pick(candidates);
  record& r = durable_.log[at];
  const record original = r;
  std::vector<std::byte> bytes(r.e.payload.bytes().begin(), r.e.payload.bytes().end());
  const auto bit = random_->between(0, bytes.size() * 8 - 1);
  bytes[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
  r.e.payload = raft::shared_bytes(bytes);
  // The cache holds the same sector unless it was rewritten since.
  if (at < written_.log.size() && written_.log[at].checksum == original.checksum &&
      written_.log[at].e.term == original.e.term) {
    written_.log[at] = r;
  }
  return true;
}

}  // namespace quorum::sim
