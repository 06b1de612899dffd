// The simulated disk. Single-threaded.
#include <quorum/sim/disk.hpp>

#include <quorum/detail/assert.hpp>
#include <quorum/error.hpp>

#include <algorithm>
#include <cstring>

namespace quorum::sim {

disk::disk(raft::membership members) {
  durable_.members = std::move(members);
  written_ = durable_;
}

std::uint64_t disk::checksum(const raft::entry& e) {
  trace_hash h;
  h.add(e.term);
  h.add(e.index);
  for (std::byte b : e.payload.bytes()) h.add(static_cast<std::uint64_t>(b));
  return h.value();
}

std::uint64_t disk::checksum(const raft::shared_bytes& data) {
  trace_hash h;
  h.add(data.size());
  for (std::byte b : data.bytes()) h.add(static_cast<std::uint64_t>(b));
  return h.value();
}

raft::term_t disk::term(raft::index_t i, std::error_code& ec) const {
  ec.clear();
  if (i < written_.base) {
    ec = errc::compacted;
    return 0;
  }
  if (i == written_.base) return written_.base_term;
  if (i > last_index()) {
    ec = errc::unavailable;
    return 0;
  }
  return written_.log[i - written_.base - 1].e.term;
}

std::vector<raft::entry> disk::entries(raft::index_t lo, raft::index_t hi, std::uint64_t max_bytes,
                                       std::error_code& ec) const {
  ec.clear();
  if (lo <= written_.base) {
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
    const record& r = written_.log[i - written_.base - 1];
    if (checksum(r.e) != r.checksum) {
      throw disk_failure(errc::corruption, "checksum mismatch at index " + std::to_string(i));
    }
    bytes += raft::entry_footprint(r.e);
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(r.e);
  }
  return out;
}

const disk::stored_snapshot* disk::find_snapshot(raft::index_t index) const {
  if (index == 0) return nullptr;
  for (const stored_snapshot* s : {&written_.snapshot, &written_.previous}) {
    if (s->meta.index != index) continue;
    if (checksum(s->data) != s->checksum) {
      throw disk_failure(errc::corruption, "snapshot " + std::to_string(index) + " is damaged");
    }
    return s;
  }
  return nullptr;
}

raft::snapshot_piece disk::read_snapshot(raft::index_t index, std::uint64_t offset,
                                         std::uint64_t max_bytes, std::error_code& ec) const {
  ec.clear();
  const stored_snapshot* s = find_snapshot(index);
  if (s == nullptr) {
    ec = errc::compacted;
    return {};
  }
  const std::uint64_t size = s->data.size();
  const std::uint64_t n =
      std::min(size - std::min(offset, size), std::max<std::uint64_t>(max_bytes, 1));
  return {raft::shared_bytes(s->data.bytes().subspan(offset, n)), offset + n >= size};
}

raft::shared_bytes disk::snapshot_data() const {
  const stored_snapshot* s = find_snapshot(written_.snapshot.meta.index);
  return s == nullptr ? raft::shared_bytes{} : s->data;
}

void disk::apply(image& target, const write& w) {
  switch (w.kind) {
    case write_kind::entries: {
      const raft::index_t first = w.batch.front().e.index;
      target.log.resize(static_cast<std::size_t>(first - target.base - 1));
      target.log.insert(target.log.end(), w.batch.begin(), w.batch.end());
      break;
    }
    case write_kind::hard: target.hard = w.hard; break;
    case write_kind::snapshot:
      target.previous = std::move(target.snapshot);
      target.snapshot = w.snapshot;
      break;
    case write_kind::compact: {
      const auto drop = static_cast<std::ptrdiff_t>(w.index - target.base);
      target.base_term = target.log[static_cast<std::size_t>(drop - 1)].e.term;
      target.log.erase(target.log.begin(), target.log.begin() + drop);
      target.base = w.index;
      target.members = target.snapshot.meta.members;
      break;
    }
    case write_kind::chunk: {
      if (w.chunk.offset == 0) {
        target.receiving = {w.chunk.meta.index, w.chunk.meta.term, 0};
        target.receiving_data.clear();
      }
      const auto bytes = w.chunk.data.bytes();
      target.receiving_data.insert(target.receiving_data.end(), bytes.begin(), bytes.end());
      target.receiving.bytes += bytes.size();
      break;
    }
    case write_kind::install: {
      const raft::snapshot_meta& meta = w.snapshot.meta;
      const raft::index_t last = target.base + target.log.size();
      const bool keep = meta.index > target.base && meta.index <= last &&
                        target.log[meta.index - target.base - 1].e.term == meta.term;
      if (keep) {
        target.log.erase(target.log.begin(), target.log.begin() + static_cast<std::ptrdiff_t>(
                                                                      meta.index - target.base));
      } else {
        target.log.clear();
      }
      target.base = meta.index;
      target.base_term = meta.term;
      target.members = meta.members;
      stored_snapshot received{meta, raft::shared_bytes(target.receiving_data), 0};
      received.checksum = checksum(received.data);
      target.previous = std::move(target.snapshot);
      target.snapshot = std::move(received);
      target.receiving = {};
      target.receiving_data.clear();
      break;
    }
  }
}

void disk::issue(write w) {
  apply(written_, w);
  pending_.push_back(std::move(w));
}

void disk::append(std::span<const raft::entry> batch) {
  if (batch.empty()) return;
  write w;
  for (const raft::entry& e : batch) w.batch.push_back({e, checksum(e)});
  QUORUM_ASSERT(batch.front().index > written_.base && batch.front().index <= last_index() + 1,
                "appended entries must follow the compaction point and leave no gap");
  issue(std::move(w));
}

void disk::set_hard_state(const raft::hard_state& hs) {
  write w;
  w.kind = write_kind::hard;
  w.hard = hs;
  issue(std::move(w));
}

std::error_code disk::create_snapshot(const raft::snapshot_meta& meta, raft::shared_bytes data) {
  if (meta.index <= written_.snapshot.meta.index) return errc::compacted;
  std::error_code ec;
  if (term(meta.index, ec) != meta.term || ec) return errc::unavailable;
  write w;
  w.kind = write_kind::snapshot;
  w.snapshot = {meta, data, checksum(data)};
  issue(std::move(w));
  return {};
}

std::error_code disk::compact(raft::index_t index) {
  if (index <= written_.base) return errc::compacted;
  if (index > written_.snapshot.meta.index) return errc::unavailable;
  write w;
  w.kind = write_kind::compact;
  w.index = index;
  issue(std::move(w));
  return {};
}

void disk::write_snapshot_chunk(const raft::snapshot_chunk& chunk) {
  QUORUM_ASSERT(chunk.offset == 0 || (written_.receiving.index == chunk.meta.index &&
                                      written_.receiving.term == chunk.meta.term &&
                                      written_.receiving.bytes == chunk.offset),
                "snapshot chunks must arrive in order");
  write w;
  w.kind = write_kind::chunk;
  w.chunk = chunk;
  issue(std::move(w));
}

void disk::install_snapshot(const raft::snapshot_meta& meta) {
  QUORUM_ASSERT(written_.receiving.index == meta.index && written_.receiving.term == meta.term,
                "installing a snapshot that was not received");
  write w;
  w.kind = write_kind::install;
  w.snapshot.meta = meta;
  issue(std::move(w));
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
    if (i + 1 == keep && w.kind == write_kind::entries && random_->chance(faults_.torn_write)) {
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
  const raft::index_t index = original.e.index;
  if (index > written_.base && index <= last_index()) {
    record& cached = written_.log[index - written_.base - 1];
    if (cached.checksum == original.checksum && cached.e.term == original.e.term) cached = r;
  }
  return true;
}

}  // namespace quorum::sim
