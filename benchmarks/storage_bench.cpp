// storage_bench: durable append throughput of the file log and of the shared WAL (1 to 1,000
// groups, group commit) on a real disk, next to the raw fdatasync rate of the same disk
// measured in the same run. Every batch is appended and then
// made durable (fdatasync) before the next one, as a Raft node must before acknowledging.
// Prints a markdown table of medians. Single-threaded.
//
//   storage_bench [--dir DIR] [--runs N] [--syncs N]
#include <quorum/storage/file_log.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace raft = quorum::raft;
namespace storage = quorum::storage;

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

/** fdatasyncs per second of 4 KiB appends to one file, straight through the file system. */
double raw_sync_rate(const std::string& dir, int syncs) {
  storage::posix_file_system fs;
  std::error_code ec;
  auto f = fs.open(dir + "/raw", true, ec);
  if (ec) throw std::system_error(ec, "open");
  const std::vector<std::byte> block(4096, std::byte{7});
  const auto start = clock_type::now();
  for (int i = 0; i < syncs; ++i) {
    if ((ec = f->write_at(static_cast<std::uint64_t>(i) * block.size(), block)) ||
        (ec = f->sync())) {
      throw std::system_error(ec, "raw write");
    }
  }
  const double rate = syncs / seconds_since(start);
  f.reset();
  (void)fs.remove(dir + "/raw");
  return rate;
}

struct figures {
  double entries_per_second;
  double megabytes_per_second;
};

/** `logs` file logs, round robin: each appends `batch` entries of `size` bytes, then syncs. */
figures log_rate(const std::string& dir, std::size_t logs, std::size_t size, std::size_t batch,
                 int syncs) {
  storage::posix_file_system fs;
  std::vector<std::unique_ptr<storage::file_log>> open;
  for (std::size_t i = 0; i < logs; ++i) {
    open.push_back(std::make_unique<storage::file_log>(fs, dir + "/log" + std::to_string(i),
                                                       raft::membership{{1}}));
  }
  const raft::shared_bytes payload(std::string(size, 'x'));
  std::vector<raft::index_t> next(logs, 1);
  const auto start = clock_type::now();
  for (int s = 0; s < syncs; ++s) {
    const std::size_t at = static_cast<std::size_t>(s) % logs;
    std::vector<raft::entry> entries;
    for (std::size_t i = 0; i < batch; ++i) entries.push_back({1, next[at]++, payload});
    if (auto ec = open[at]->append(entries)) throw std::system_error(ec, "append");
    if (auto ec = open[at]->sync()) throw std::system_error(ec, "sync");
  }
  const double elapsed = seconds_since(start);
  open.clear();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const double entries = static_cast<double>(syncs) * static_cast<double>(batch);
  return {entries / elapsed, entries * static_cast<double>(size) / elapsed / 1e6};
}

/** One shared WAL with `groups` groups: each round every group appends `batch` entries of
 *  `size` bytes, then one sync makes them all durable (group commit). */
figures wal_rate(const std::string& dir, std::size_t groups, std::size_t size, std::size_t batch,
                 int syncs) {
  storage::posix_file_system fs;
  double entries = 0;
  double elapsed = 0;
  {
    storage::shared_wal wal(fs, dir + "/wal");
    std::vector<storage::wal_log*> logs;
    for (std::size_t g = 1; g <= groups; ++g) logs.push_back(&wal.open(g, raft::membership{{1}}));
    if (auto ec = wal.sync()) throw std::system_error(ec, "sync");
    const raft::shared_bytes payload(std::string(size, 'x'));
    raft::index_t next = 1;
    const auto start = clock_type::now();
    for (int s = 0; s < syncs; ++s, next += batch) {
      for (storage::wal_log* log : logs) {
        std::vector<raft::entry> batch_entries;
        for (std::size_t i = 0; i < batch; ++i) batch_entries.push_back({1, next + i, payload});
        if (auto ec = log->append(batch_entries)) throw std::system_error(ec, "append");
      }
      if (auto ec = wal.sync()) throw std::system_error(ec, "sync");
    }
    elapsed = seconds_since(start);
    entries = static_cast<double>(syncs) * static_cast<double>(batch * groups);
  }
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return {entries / elapsed, entries * static_cast<double>(size) / elapsed / 1e6};
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "storage_bench.data";
  int runs = 3;
  int syncs = 300;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--dir") dir = argv[i + 1];
    if (flag == "--runs") runs = std::atoi(argv[i + 1]);
    if (flag == "--syncs") syncs = std::atoi(argv[i + 1]);
  }
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  fmt::print("storage_bench: {} runs (medians), {} fdatasyncs per case, directory {}\n\n", runs,
             syncs, dir);
  std::vector<double> raw;
  for (int r = 0; r < runs; ++r) raw.push_back(raw_sync_rate(dir, syncs));
  fmt::print("raw fdatasync (4 KiB appends): {:.0f} syncs/s\n\n", median(raw));
  fmt::print("| logs | entry | entries per sync | entries/s | MB/s | syncs/s |\n");
  fmt::print("| --- | --- | --- | --- | --- | --- |\n");
  struct case_t {
    std::size_t logs, size, batch;
  };
  const case_t cases[] = {{1, 64, 1},    {1, 64, 64},    {1, 1024, 1},  {1, 1024, 64},
                          {1, 16384, 1}, {1, 16384, 64}, {1, 65536, 1}, {1, 65536, 16},
                          {100, 64, 1},  {100, 1024, 1}};
  for (const case_t& c : cases) {
    std::vector<double> rate;
    std::vector<double> mb;
    for (int r = 0; r < runs; ++r) {
      const figures f = log_rate(dir, c.logs, c.size, c.batch, syncs);
      rate.push_back(f.entries_per_second);
      mb.push_back(f.megabytes_per_second);
    }
    const double entries = median(rate);
    fmt::print("| {} | {} B | {} | {:.0f} | {:.1f} | {:.0f} |\n", c.logs, c.size, c.batch, entries,
               median(mb), entries / static_cast<double>(c.batch));
  }
  fmt::print("\nshared WAL, group commit: every group appends one batch, then one fdatasync\n\n");
  fmt::print("| groups | entry | entries per group per sync | entries/s | MB/s | syncs/s |\n");
  fmt::print("| --- | --- | --- | --- | --- | --- |\n");
  const case_t wal_cases[] = {{1, 64, 1},     {10, 64, 1},     {100, 64, 1},   {1000, 64, 1},
                              {100, 1024, 1}, {1000, 1024, 1}, {100, 16384, 1}};
  double wal_100 = 0;
  for (const case_t& c : wal_cases) {
    std::vector<double> rate;
    std::vector<double> mb;
    const int wal_syncs =
        std::max(20, syncs / static_cast<int>(std::max<std::size_t>(1, c.logs / 10)));
    for (int r = 0; r < runs; ++r) {
      const figures f = wal_rate(dir, c.logs, c.size, c.batch, wal_syncs);
      rate.push_back(f.entries_per_second);
      mb.push_back(f.megabytes_per_second);
    }
    const double entries = median(rate);
    if (c.logs == 100 && c.size == 64) wal_100 = entries;
    fmt::print("| {} | {} B | {} | {:.0f} | {:.1f} | {:.0f} |\n", c.logs, c.size, c.batch, entries,
               median(mb), entries / static_cast<double>(c.logs * c.batch));
  }
  std::vector<double> independent;
  for (int r = 0; r < runs; ++r)
    independent.push_back(log_rate(dir, 100, 64, 1, syncs).entries_per_second);
  fmt::print(
      "\n100 groups, 64 B entries: shared WAL {:.0f} entries/s vs 100 independent logs {:.0f} "
      "entries/s: {:.1f}x\n",
      wal_100, median(independent), wal_100 / median(independent));
  std::filesystem::remove_all(dir);
  return 0;
}
