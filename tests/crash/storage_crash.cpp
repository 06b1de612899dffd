// The real crash test of the file log: a child process appends entries (and now and then
// snapshots and compacts) and prints each index once sync() has returned; the parent kills it
// with SIGKILL at a random moment, reopens the log and checks that every index printed as
// durable is there and intact, then starts the next child on the same directory.
//
//   quorum_storage_crash DIR KILLS SEED    (parent; DIR must be on a real disk)
//   quorum_storage_crash --child DIR       (child; started by the parent)
//
// Prints "kills: N, highest durable index: M, all intact" and exits 0, or names the first
// index that was lost or damaged and exits 1. Every run is bounded: each child stops on its own
// after 30 s, and the parent after KILLS kills.
#include <quorum/detail/random.hpp>
#include <quorum/storage/file_log.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

namespace {

using quorum::raft::entry;
using quorum::raft::index_t;
using quorum::raft::membership;
using quorum::raft::shared_bytes;
using quorum::storage::file_log;
using quorum::storage::file_log_options;
using quorum::storage::posix_file_system;

file_log_options options() {
  file_log_options o;
  o.segment_bytes = 64 << 10;  // many segments, so rolls and reclaims happen often
  o.snapshot_block_bytes = 512;
  return o;
}

/** The payload of entry `index`: deterministic, so any surviving copy can be checked. */
std::string payload_of(index_t index) {
  std::string p = "entry " + std::to_string(index) + ":";
  const std::size_t size = 16 + (index * 7919) % 700;
  while (p.size() < size) p += static_cast<char>('a' + (index + p.size()) % 26);
  return p;
}

std::string snapshot_of(index_t index) {
  return "snapshot at " + std::to_string(index);
}

int run_child(const std::string& dir) {
  posix_file_system fs;
  file_log log(fs, dir, membership{{1}}, options());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  index_t next = log.last_index() + 1;
  quorum::detail::splitmix64 random(next);
  while (std::chrono::steady_clock::now() < deadline) {
    std::vector<entry> batch;
    const auto count = 1 + random.below(8);
    for (std::uint64_t i = 0; i < count; ++i, ++next) {
      batch.push_back(entry{1, next, shared_bytes(payload_of(next))});
    }
    if (log.append(batch) || log.set_hard_state({1, 1, next - 1}) || log.sync()) {
      std::fprintf(stderr, "child: write failed\n");
      return 2;
    }
    std::printf("durable %llu\n", static_cast<unsigned long long>(next - 1));
    std::fflush(stdout);
    if (random.below(40) == 0) {
      const index_t at = next - 1;
      if (log.create_snapshot({at, 1, {{1}}}, shared_bytes(snapshot_of(at))) ||
          (at > 100 && log.compact(at - 100))) {
        std::fprintf(stderr, "child: snapshot failed\n");
        return 2;
      }
    }
  }
  return 0;
}

/** Starts a child, lets it run for `run` microseconds, kills it; returns the highest index it
 *  reported durable (0 if none). */
index_t run_and_kill(const std::string& self, const std::string& dir, std::uint64_t run) {
  int out[2];
  if (::pipe(out) != 0) std::exit(3);
  const pid_t pid = ::fork();
  if (pid < 0) std::exit(3);
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::close(out[0]);
    ::close(out[1]);
    ::execl(self.c_str(), self.c_str(), "--child", dir.c_str(), static_cast<char*>(nullptr));
    std::_Exit(4);
  }
  ::close(out[1]);
  std::this_thread::sleep_for(std::chrono::microseconds(run));
  ::kill(pid, SIGKILL);
  index_t durable = 0;
  FILE* in = ::fdopen(out[0], "r");
  char line[128];
  while (std::fgets(line, sizeof line, in) != nullptr) {
    unsigned long long n = 0;
    if (std::sscanf(line, "durable %llu", &n) == 1) durable = n;
  }
  std::fclose(in);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "child exited with %d\n", WEXITSTATUS(status));
    std::exit(1);
  }
  return durable;
}

/** Reopens the log and checks everything up to `durable`; returns false on a loss. */
bool verify(const std::string& dir, index_t durable) {
  posix_file_system fs;
  file_log log(fs, dir, membership{{1}}, options());
  if (log.last_index() < durable) {
    std::printf("LOST: index %llu was reported durable; the log ends at %llu\n",
                static_cast<unsigned long long>(durable),
                static_cast<unsigned long long>(log.last_index()));
    return false;
  }
  std::error_code ec;
  for (index_t i = log.first_index(); i <= durable;) {
    const auto got = log.entries(i, durable + 1, 1 << 20, ec);
    for (const entry& e : got) {
      if (e.index != i || e.payload.to_string() != payload_of(i)) {
        std::printf("DAMAGED: entry %llu\n", static_cast<unsigned long long>(i));
        return false;
      }
      ++i;
    }
  }
  const auto snap = log.snapshot();
  if (snap.index != 0 && log.snapshot_data().to_string() != snapshot_of(snap.index)) {
    std::printf("DAMAGED: snapshot at %llu\n", static_cast<unsigned long long>(snap.index));
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--child") return run_child(argv[2]);
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s DIR KILLS SEED | --child DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const unsigned long kills = std::strtoul(argv[2], nullptr, 10);
  const unsigned long long seed = std::strtoull(argv[3], nullptr, 10);
  std::printf("storage crash test: %lu kills, seed %llu, directory %s\n", kills, seed, dir.c_str());
  std::filesystem::remove_all(dir);
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  quorum::detail::splitmix64 random(seed);
  index_t highest = 0;
  try {
    for (unsigned long k = 1; k <= kills; ++k) {
      // Mostly short runs (kills during start-up and recovery too), some longer ones.
      const std::uint64_t run =
          random.below(4) == 0 ? 20'000 + random.below(200'000) : random.below(20'000);
      const index_t durable = run_and_kill(self, dir, run);
      highest = std::max(highest, durable);
      if (!verify(dir, highest)) {
        std::printf("after kill %lu (seed %llu)\n", k, seed);
        return 1;
      }
    }
  } catch (const std::exception& e) {
    std::printf("FAILED: %s (seed %llu)\n", e.what(), seed);
    return 1;
  }
  std::filesystem::remove_all(dir);
  std::printf("kills: %lu, highest durable index: %llu, all intact\n", kills,
              static_cast<unsigned long long>(highest));
  return 0;
}
