// The simulated disk: a file_log on the fault-injecting file system. Single-threaded.
#include <quorum/sim/disk.hpp>

#include <quorum/error.hpp>

#include <algorithm>
#include <string>

namespace quorum::sim {

namespace {
const std::string root = "/disk";

storage::file_log_options sim_options() {
  storage::file_log_options o;
  o.segment_bytes = 4096;  // several segments per run: rolls, reclaims, damage in old ones
  o.snapshot_block_bytes = 256;
  return o;
}
}  // namespace

disk::disk(raft::membership members) : members_(std::move(members)) {
  log_.emplace(files_, root, members_, sim_options());
}

template <class Action>
auto disk::guarded(Action&& action) const -> decltype(action()) {
  try {
    return action();
  } catch (const storage::storage_error& e) {
    throw disk_failure(e.code(), e.what());
  }
}

std::vector<raft::entry> disk::entries(raft::index_t lo, raft::index_t hi, std::uint64_t max_bytes,
                                       std::error_code& ec) const {
  return guarded([&] { return log_->entries(lo, hi, max_bytes, ec); });
}

raft::snapshot_piece disk::read_snapshot(raft::index_t index, std::uint64_t offset,
                                         std::uint64_t max_bytes, std::error_code& ec) const {
  return guarded([&] { return log_->read_snapshot(index, offset, max_bytes, ec); });
}

raft::shared_bytes disk::snapshot_data() const {
  return guarded([&] { return log_->snapshot_data(); });
}

namespace {
void written(std::error_code ec) {
  if (ec) throw disk_failure(ec, "simulated write failed");
}
}  // namespace

// Each write reaches the page cache at once (flush), as with pwrite: a crash before the sync
// keeps a random prefix of them, the last possibly torn.

void disk::append(std::span<const raft::entry> batch) {
  if (batch.empty()) return;
  written(log_->append(batch));
  written(log_->flush());
  unsynced_ = true;
}

void disk::set_hard_state(const raft::hard_state& hs) {
  written(log_->set_hard_state(hs));
  written(log_->flush());
  unsynced_ = true;
}

std::error_code disk::create_snapshot(const raft::snapshot_meta& meta, raft::shared_bytes data,
                                      std::span<const raft::index_t> keep) {
  return guarded([&] { return log_->create_snapshot(meta, data, keep); });
}

std::optional<raft::entry> disk::kept_entry(raft::index_t index) const {
  return guarded([&] { return log().kept_entry(index); });
}

std::optional<raft::entry> disk::inspect_entry(raft::index_t index) {
  if (!log_) return std::nullopt;
  files_.set_error_rates(0, 0);
  std::optional<raft::entry> found;
  try {
    std::error_code ec;
    auto got = log_->entries(index, index + 1, ~std::uint64_t{0}, ec);
    if (ec == errc::compacted) {
      found = log_->kept_entry(index);
    } else if (!ec && !got.empty()) {
      found = std::move(got.front());
    }
  } catch (const storage::storage_error& e) {
    files_.set_error_rates(faults_.read_error, faults_.fsync_error);
    throw disk_failure(e.code(), e.what());
  }
  files_.set_error_rates(faults_.read_error, faults_.fsync_error);
  return found;
}

std::error_code disk::compact(raft::index_t index) {
  return guarded([&] { return log_->compact(index); });
}

void disk::write_snapshot_chunk(const raft::snapshot_chunk& chunk) {
  written(log_->write_snapshot_chunk(chunk));
  unsynced_ = true;
}

void disk::install_snapshot(const raft::snapshot_meta& meta) {
  written(guarded([&] { return log_->install_snapshot(meta); }));
  unsynced_ = true;
}

std::error_code disk::sync() {
  if (auto ec = log_->sync()) return ec;
  unsynced_ = false;
  durable_hard_ = log_->initial_state().hard;
  durable_last_ = log_->last_index();
  return {};
}

void disk::arm(rng& random, disk_faults rates) {
  random_ = &random;
  faults_ = rates;
  files_.set_error_rates(rates.read_error, rates.fsync_error);
}

void disk::disarm() {
  faults_ = {};
  files_.set_error_rates(0, 0);
}

void disk::crash() {
  const bool armed = random_ != nullptr;
  files_.crash(armed, armed && random_->chance(faults_.torn_write));
  unsynced_ = false;
}

std::error_code disk::recover() {
  try {
    log_.reset();
    log_.emplace(files_, root, members_, sim_options());
  } catch (const storage::storage_error& e) {
    // Leave an empty view behind; the node stays down.
    return e.code() == errc::corruption ? make_error_code(errc::corruption)
                                        : make_error_code(errc::io_error);
  }
  durable_hard_ = log_->initial_state().hard;
  durable_last_ = log_->last_index();
  return {};
}

bool disk::flip_bit() {
  if (random_ == nullptr) return false;
  std::error_code ec;
  std::vector<std::string> segments;
  for (const std::string& name : files_.list(root, ec)) {
    if (name.rfind("seg-", 0) == 0 && name.ends_with(".log")) segments.push_back(name);
  }
  std::sort(segments.begin(), segments.end());
  if (segments.size() < 2) return false;
  // Not the last segment: damage at its tail could not be told from a torn write.
  segments.pop_back();
  const std::string path = root + "/" + random_->pick(segments);
  const auto size = files_.contents(path).size();
  if (size <= 8) return false;
  return files_.flip_bit(path, random_->between(8, size - 1));
}

}  // namespace quorum::sim
