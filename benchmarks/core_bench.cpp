// core_bench: the CPU cost of the pure Raft core. N cores in one thread over in-memory storage
// (no fsync: this measures the core's own work per replicated entry, not durability) replicate
// batches of proposals until every node has applied them. Prints a table of medians and writes
// JSON when asked. Single-threaded.
#include <quorum/raft/core.hpp>
#include <quorum/raft/memory_storage.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace raft = quorum::raft;

namespace {

struct result {
  double entries_per_second;
  double megabytes_per_second;
  double cpu_microseconds_per_entry;
};

// Replicates `total` entries of `payload` bytes through `nodes` cores, `window` proposals per
// round, delivering every message in between.
result run_once(std::size_t nodes, std::size_t payload, std::size_t window, std::size_t total) {
  raft::membership members;
  for (raft::node_id id = 1; id <= nodes; ++id) members.voters.push_back(id);
  std::vector<std::unique_ptr<raft::memory_storage>> storage;
  std::vector<std::unique_ptr<raft::core<raft::memory_storage>>> cores;
  for (raft::node_id id = 1; id <= nodes; ++id) {
    storage.push_back(std::make_unique<raft::memory_storage>(members));
    raft::options o;
    o.id = id;
    o.seed = 1;
    cores.push_back(std::make_unique<raft::core<raft::memory_storage>>(*storage.back(), o));
  }
  std::deque<raft::message> network;
  std::vector<std::size_t> applied(nodes, 0);
  auto drain = [&] {
    for (bool busy = true; busy;) {
      busy = false;
      for (std::size_t i = 0; i < nodes; ++i) {
        while (cores[i]->has_ready()) {
          raft::ready rd = cores[i]->get_ready();
          for (auto& m : rd.messages) network.push_back(std::move(m));
          storage[i]->append(rd.entries);
          if (rd.hard_state) storage[i]->set_hard_state(*rd.hard_state);
          for (auto& m : rd.persisted_messages) network.push_back(std::move(m));
          for (auto& e : rd.committed_entries) applied[i] += e.payload.empty() ? 0 : 1;
          cores[i]->advance(rd);
          busy = true;
        }
      }
      while (!network.empty()) {
        raft::message m = std::move(network.front());
        network.pop_front();
        cores[m.to - 1]->step(m);
        busy = true;
      }
    }
  };
  cores[0]->campaign();
  drain();
  const raft::shared_bytes body(std::string(payload, 'x'));
  std::vector<raft::shared_bytes> batch(window, body);

  const auto wall_start = std::chrono::steady_clock::now();
  const std::clock_t cpu_start = std::clock();
  for (std::size_t proposed = 0; proposed < total; proposed += window) {
    if (cores[0]->propose(batch).error) {
      std::fprintf(stderr, "proposal refused\n");
      std::exit(1);
    }
    drain();
  }
  const double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  for (std::size_t count : applied) {
    if (count < total) {
      std::fprintf(stderr, "a node applied %zu of %zu entries\n", count, total);
      std::exit(1);
    }
  }
  const double entries = static_cast<double>(total);
  return {entries / wall, entries * static_cast<double>(payload) / wall / 1e6, cpu * 1e6 / entries};
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path;
  int runs = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else if (arg == "--runs" && i + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: core_bench [--runs N] [--json FILE]\n");
      return 2;
    }
  }
  fmt::print(
      "core_bench: pure Raft core, in-memory storage, fsync off, one thread; "
      "median of {} runs\n",
      runs);
  fmt::print("{:>5} {:>8} {:>7} {:>14} {:>10} {:>16}\n", "nodes", "payload", "window", "entries/s",
             "MB/s", "CPU us/entry");
  std::string json = "[\n";
  bool first = true;
  for (std::size_t nodes : {3, 5}) {
    for (std::size_t payload : {32, 1024, 16384}) {
      for (std::size_t window : {1, 64}) {
        const std::size_t total = payload >= 16384 ? 20000 : 100000;
        std::vector<double> rate, bandwidth, cpu;
        for (int r = 0; r < runs; ++r) {
          const result one = run_once(nodes, payload, window, total);
          rate.push_back(one.entries_per_second);
          bandwidth.push_back(one.megabytes_per_second);
          cpu.push_back(one.cpu_microseconds_per_entry);
        }
        fmt::print("{:>5} {:>8} {:>7} {:>14.0f} {:>10.1f} {:>16.2f}\n", nodes, payload, window,
                   median(rate), median(bandwidth), median(cpu));
        json += fmt::format(
            "{}  {{\"nodes\": {}, \"payload\": {}, \"window\": {}, \"entries_per_s\": {:.0f}, "
            "\"mb_per_s\": {:.1f}, \"cpu_us_per_entry\": {:.3f}, \"fsync\": false}}",
            first ? "" : ",\n", nodes, payload, window, median(rate), median(bandwidth),
            median(cpu));
        first = false;
      }
    }
  }
  json += "\n]\n";
  if (!json_path.empty()) {
    std::FILE* f = std::fopen(json_path.c_str(), "w");
    if (f == nullptr) {
      std::fprintf(stderr, "cannot write %s\n", json_path.c_str());
      return 1;
    }
    std::fputs(json.c_str(), f);
    std::fclose(f);
  }
  return 0;
}
