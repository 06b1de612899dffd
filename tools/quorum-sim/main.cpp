// quorum-sim: runs the deterministic Raft simulator over one seed (printing its trace hash) or
// many (ending with "seeds: N passed, M failed"). Single-threaded.
#include <quorum/sim/kv.hpp>
#include <quorum/sim/queue_workload.hpp>

#include <fmt/core.h>

#include <unistd.h>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view usage = R"(usage:
  quorum-sim --seed S [options]          replay one seed; prints its trace hash
  quorum-sim --seeds N [--first S0] [options]
                                         run seeds S0 .. S0+N-1; ends "seeds: N passed, M failed"
options:
  --nodes 3|5|7       cluster size (default: 3, 5 or 7 chosen by seed)
  --faults LIST       all (default), none, or a comma list of: drop, duplicate, reorder, clog,
                      partition, swizzle, crash, pause, disk, skew, transfer, read,
                      membership, snapshot, quiesce
  --ticks T           length of the safety phase in ticks (default 1000)
  --workload W        kv (default: clients write and read keys) or queue (one quorum queue:
                      publishers with deduplication, consumers that ack, requeue, reject)
  --verbose           print every seed's result
  --trace             print every event of the run (use with --seed)
test-only:
  --mutant NAME       run a deliberately broken core: commit_earlier_term, ack_before_persist,
                      double_vote, count_unpersisted_self, skip_log_check, unconfirmed_reads,
                      leave_joint_early, learner_votes, accept_any_chunk, quiesced_lease;
                      with --workload queue also lose_requeued (a broken queue) and
                      forget_bodies (snapshots keep no message entries)
  --expect-failure    succeed only if some seed fails (proves the checkers catch the mutant)
)";

// The seed being run, for the abort handler: a broken invariant aborts, and the message must
// still say which seed to replay.
char replay_line[512] = "";
bool expect_failure = false;

extern "C" void on_abort(int) {
  const char* head = expect_failure ? "caught (invariant broken) " : "FAILED (invariant broken) ";
  ssize_t ignored = ::write(STDERR_FILENO, head, std::strlen(head));
  ignored = ::write(STDERR_FILENO, replay_line, std::strlen(replay_line));
  ignored = ::write(STDERR_FILENO, "\n", 1);
  (void)ignored;
  ::_exit(expect_failure ? 0 : 3);
}

std::optional<quorum::raft::mutation> parse_mutation(std::string_view name) {
  using quorum::raft::mutation;
  if (name == "commit_earlier_term") return mutation::commit_earlier_term;
  if (name == "ack_before_persist") return mutation::ack_before_persist;
  if (name == "double_vote") return mutation::double_vote;
  if (name == "count_unpersisted_self") return mutation::count_unpersisted_self;
  if (name == "skip_log_check") return mutation::skip_log_check;
  if (name == "unconfirmed_reads") return mutation::unconfirmed_reads;
  if (name == "leave_joint_early") return mutation::leave_joint_early;
  if (name == "learner_votes") return mutation::learner_votes;
  if (name == "accept_any_chunk") return mutation::accept_any_chunk;
  if (name == "quiesced_lease") return mutation::quiesced_lease;
  return std::nullopt;
}

[[noreturn]] void fail_usage(const std::string& why) {
  fmt::print(stderr, "quorum-sim: {}\n{}", why, usage);
  std::exit(2);
}

std::uint64_t number(const char* text, const char* flag) {
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0')
    fail_usage(fmt::format("{} needs a number, got '{}'", flag, text));
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<std::uint64_t> one_seed;
  std::uint64_t seeds = 0;
  std::uint64_t first = 0;
  std::optional<std::size_t> nodes;
  quorum::sim::fault_set faults = quorum::sim::fault_set::all();
  std::string faults_text = "all";
  int ticks = 1000;
  bool verbose = false;
  bool trace = false;
  std::string mutant_name;
  std::optional<quorum::raft::mutation> mutant;
  auto queue_mutant = quorum::queue::queue_mutation::none;
  std::string workload = "kv";

  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) fail_usage(fmt::format("{} needs a value", arg));
      return argv[++i];
    };
    if (arg == "--seed") {
      one_seed = number(value(), "--seed");
    } else if (arg == "--seeds") {
      seeds = number(value(), "--seeds");
    } else if (arg == "--first") {
      first = number(value(), "--first");
    } else if (arg == "--nodes") {
      nodes = number(value(), "--nodes");
      if (*nodes != 3 && *nodes != 5 && *nodes != 7) fail_usage("--nodes takes 3, 5 or 7");
    } else if (arg == "--faults") {
      faults_text = value();
      std::string error;
      auto parsed = quorum::sim::fault_set::parse(faults_text, error);
      if (!parsed) fail_usage(error);
      faults = *parsed;
    } else if (arg == "--ticks") {
      ticks = static_cast<int>(number(value(), "--ticks"));
      if (ticks < 1) fail_usage("--ticks must be at least 1");
    } else if (arg == "--verbose") {
      verbose = true;
    } else if (arg == "--trace") {
      trace = true;
    } else if (arg == "--mutant") {
      mutant_name = value();
      mutant = parse_mutation(mutant_name);
      if (mutant_name == "lose_requeued")
        queue_mutant = quorum::queue::queue_mutation::lose_requeued;
      if (mutant_name == "forget_bodies")
        queue_mutant = quorum::queue::queue_mutation::forget_bodies;
      if (!mutant && queue_mutant == quorum::queue::queue_mutation::none) {
        fail_usage(fmt::format("unknown mutant '{}'", mutant_name));
      }
    } else if (arg == "--workload") {
      workload = value();
      if (workload != "kv" && workload != "queue") fail_usage("--workload takes kv or queue");
    } else if (arg == "--expect-failure") {
      expect_failure = true;
    } else if (arg == "--help" || arg == "-h") {
      fmt::print("{}", usage);
      return 0;
    } else {
      fail_usage(fmt::format("unknown argument '{}'", arg));
    }
  }
  if (one_seed.has_value() == (seeds > 0)) fail_usage("give exactly one of --seed S or --seeds N");
  std::signal(SIGABRT, on_abort);

  const std::uint64_t begin = one_seed.value_or(first);
  const std::uint64_t count = one_seed ? 1 : seeds;
  std::uint64_t passed = 0;
  std::uint64_t failed = 0;
  for (std::uint64_t seed = begin; seed < begin + count; ++seed) {
    quorum::sim::run_config config;
    config.seed = seed;
    config.nodes = nodes.value_or(3 + 2 * (seed % 3));
    config.faults = faults;
    config.ticks = ticks;
    if (trace) config.log = [](const std::string& line) { fmt::print("{}\n", line); };
    config.queue_mutant = queue_mutant;
    if (mutant) {
      config.adjust = [m = *mutant](quorum::raft::options& o) { o.test_mutation = m; };
    }
    const std::string replay =
        fmt::format("quorum-sim --workload {} --seed {} --nodes {} --faults {} --ticks {}{}",
                    workload, seed, config.nodes, faults.to_string(), ticks,
                    mutant_name.empty() ? std::string() : " --mutant " + mutant_name);
    std::snprintf(replay_line, sizeof replay_line, "seed %llu: replay: %s",
                  static_cast<unsigned long long>(seed), replay.c_str());

    auto run = workload == "queue" ? quorum::sim::run_queue : quorum::sim::run_kv;
    quorum::sim::run_result r = run(config);
    if (!r.ok && expect_failure) {
      // A catch counts only if the same seed passes with the sound core.
      quorum::sim::run_config sound = config;
      sound.adjust = nullptr;
      sound.queue_mutant = quorum::queue::queue_mutation::none;
      sound.log = nullptr;
      if (!run(sound).ok) r.ok = true;
    }
    if (r.ok) {
      ++passed;
    } else {
      ++failed;
      fmt::print("seed {} FAILED (nodes {}): {}\n  replay: {}\n", seed, config.nodes, r.failure,
                 replay);
    }
    if (one_seed || verbose) {
      fmt::print(
          "seed {} nodes {} faults {}: {}; trace hash {:016x}; committed {}, acknowledged {}, "
          "client operations {}, messages {}, faults {}, recovery {} ticks, quiesced {}, "
          "suspected {}\n",
          seed, config.nodes, faults.to_string(), r.ok ? "ok" : "FAILED", r.trace_hash, r.committed,
          r.acknowledged, r.operations, r.messages, r.faults_injected, r.recovery_ticks, r.quiesces,
          r.suspicions);
    }
    if (expect_failure && failed > 0) {
      fmt::print("caught: the checkers found the mutant at seed {}\n", seed);
      return 0;
    }
  }
  fmt::print("seeds: {} passed, {} failed\n", passed, failed);
  if (expect_failure) {
    fmt::print("not caught: no seed failed\n");
    return 1;
  }
  return failed == 0 ? 0 : 1;
}
