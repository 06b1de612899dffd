// Scenario tests on the simulator: each scripts one known Raft pitfall (partitions of odd
// shapes, stranded terms, minority leaders, torn tails) and checks the outcome, with the
// safety checkers running after every event. Deterministic: each prints the seed it uses.
#include <quorum/sim/kv.hpp>

#include <catch2/catch.hpp>

#include <set>

using namespace quorum;
using namespace quorum::sim;
using raft::node_id;

namespace {

cluster_options quiet(std::size_t nodes, std::function<void(raft::options&)> adjust = {}) {
  cluster_options o;
  o.nodes = nodes;
  o.adjust = std::move(adjust);
  return o;
}

node_id await_leader(kv_simulation& sim, std::uint64_t max_ticks = 300) {
  sim.run_until([&] { return sim.nodes().leader() != raft::no_node; }, max_ticks);
  return sim.nodes().leader();
}

/** Runs until a leader other than `old_leader` is up, for at most `max_ticks`. */
node_id await_new_leader(kv_simulation& sim, node_id old_leader, std::uint64_t max_ticks = 300) {
  sim.run_until(
      [&] {
        const node_id now = sim.nodes().leader();
        return now != raft::no_node && now != old_leader;
      },
      max_ticks);
  const node_id now = sim.nodes().leader();
  return now == old_leader ? raft::no_node : now;
}

/** Runs `ticks` more ticks; true if every client succeeded in that time. */
bool clients_progress(kv_simulation& sim, std::uint64_t ticks) {
  const sim_time start = sim.events().now();
  sim.run_ticks(ticks);
  return sim.every_client_succeeded_since(start);
}

std::vector<node_id> others(kv_simulation& sim, node_id except) {
  std::vector<node_id> out;
  for (node_id id : sim.nodes().ids()) {
    if (id != except) out.push_back(id);
  }
  return out;
}

/** Submits one command and records its outcome. */
struct request {
  bool answered = false;
  outcome result;
};
std::shared_ptr<request> submit(kv_simulation& sim, node_id to, const std::string& command) {
  auto r = std::make_shared<request>();
  sim.nodes().submit(to, raft::shared_bytes(command), [r](const outcome& o) {
    r->answered = true;
    r->result = o;
  });
  return r;
}

/** Sends a linearizable read of `key` to node `to` and records its outcome. */
std::shared_ptr<request> submit_read(kv_simulation& sim, node_id to, const std::string& key) {
  auto r = std::make_shared<request>();
  sim.nodes().submit_read(to, key, [r](const outcome& o) {
    r->answered = true;
    r->result = o;
  });
  return r;
}

/** Runs past the start-up vote quarantine (leases), waits for a leader and writes x = 1
 *  through it; returns the leader. */
node_id lease_leader_wrote_x1(kv_simulation& sim) {
  sim.run_ticks(15);
  const node_id leader = await_leader(sim);
  REQUIRE(leader != raft::no_node);
  auto first = submit(sim, leader, "W x 1");
  sim.run_until([&] { return first->answered; }, 100);
  REQUIRE(first->result.status == outcome::ok);
  return leader;
}

/** Reads `key` through whichever node leads, retrying; returns the value or "no answer". */
std::string read_back(kv_simulation& sim, const std::string& key) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    const node_id leader = await_leader(sim);
    if (leader == raft::no_node) continue;
    auto r = submit(sim, leader, "R " + key);
    sim.run_until([&] { return r->answered; }, 50);
    if (r->answered && r->result.status == outcome::ok) return r->result.result;
  }
  return "no answer";
}

void require_safe(kv_simulation& sim) {
  const auto verdict = sim.verdict();
  INFO(verdict.value_or("safe"));
  REQUIRE_FALSE(verdict.has_value());
}

}  // namespace

TEST_CASE("partial partition: a leader cut from one follower keeps leading (Cloudflare 2020)",
          "[sim][scenario][dissertation-9.6]") {
  for (std::uint64_t seed : {1, 2, 3}) {
    INFO("seed " << seed);
    kv_simulation sim(seed, quiet(3), 3, 4);
    sim.start_clients();
    const node_id leader = await_leader(sim);
    REQUIRE(leader != raft::no_node);
    const auto followers = others(sim, leader);
    // The leader and one follower cannot reach each other; both still reach the third node.
    sim.net().block_both(leader, followers[0]);
    const std::size_t before = sim.succeeded();
    const sim_time start = sim.events().now();
    std::size_t ticks_with_leader = 0;
    for (int i = 0; i < 300; ++i) {
      sim.run_ticks(1);
      if (sim.nodes().leader() != raft::no_node) ++ticks_with_leader;
    }
    CHECK(ticks_with_leader >= 280);
    CHECK(sim.succeeded() > before + 50);
    CHECK(sim.every_client_succeeded_since(start));
    require_safe(sim);
  }
}

TEST_CASE("asymmetric partition: a leader that cannot hear its followers is replaced",
          "[sim][scenario][dissertation-6.2]") {
  for (std::uint64_t seed : {4, 5, 6}) {
    INFO("seed " << seed);
    kv_simulation sim(seed, quiet(5), 3, 4);
    sim.start_clients();
    const node_id old_leader = await_leader(sim);
    REQUIRE(old_leader != raft::no_node);
    // Everyone hears the old leader; it hears nobody.
    for (node_id id : others(sim, old_leader)) sim.net().block(id, old_leader);
    const bool replaced = await_new_leader(sim, old_leader, 200) != raft::no_node;
    CHECK(replaced);
    CHECK(clients_progress(sim, 200));
    require_safe(sim);
  }
}

TEST_CASE("a node isolated for long rejoins without disrupting the leader (PreVote)",
          "[sim][scenario][dissertation-9.6]") {
  kv_simulation sim(7, quiet(3), 2, 4);
  sim.start_clients();
  const node_id leader = await_leader(sim);
  REQUIRE(leader != raft::no_node);
  const raft::term_t term = sim.nodes().core_of(leader)->term();
  const node_id stranded = others(sim, leader)[0];
  sim.net().isolate(stranded);
  sim.run_ticks(500);
  CHECK(sim.nodes().core_of(stranded)->term() == term);  // pre-votes failed; no term bump
  sim.net().heal();
  sim.run_ticks(100);
  CHECK(sim.nodes().leader() == leader);
  CHECK(sim.nodes().core_of(leader)->term() == term);
  CHECK(sim.nodes().core_of(stranded)->leader() == leader);
  require_safe(sim);
}

TEST_CASE("a node stranded with a higher term rejoins and the group recovers with its log intact",
          "[sim][scenario][dissertation-9.6]") {
  kv_simulation sim(8, quiet(3), 2, 4);
  sim.start_clients();
  const node_id leader = await_leader(sim);
  REQUIRE(leader != raft::no_node);
  const node_id stranded = others(sim, leader)[0];
  // The node passes PreVote (its peers' leases have lapsed) and bumps its term just as it is
  // cut off: it now holds a term higher than the group's, with a log that is behind.
  sim.nodes().pause(leader);
  sim.run_until(
      [&] {
        const auto* core = sim.nodes().core_of(stranded);
        return core->current_role() == raft::role::candidate;
      },
      200);
  sim.net().isolate(stranded);
  sim.nodes().resume(leader);
  sim.run_ticks(300);
  const raft::term_t stranded_term = sim.nodes().core_of(stranded)->term();
  sim.net().heal();
  const sim_time start = sim.events().now();
  sim.run_ticks(300);
  const node_id now = sim.nodes().leader();
  REQUIRE(now != raft::no_node);
  CHECK(sim.nodes().core_of(now)->term() >= stranded_term);
  CHECK(sim.every_client_succeeded_since(start));
  require_safe(sim);
}

TEST_CASE("an isolated leader steps down within two election timeouts (CheckQuorum)",
          "[sim][scenario][dissertation-6.2]") {
  kv_simulation sim(9, quiet(5), 2, 4);
  sim.start_clients();
  const node_id leader = await_leader(sim);
  REQUIRE(leader != raft::no_node);
  sim.net().isolate(leader);
  const int timeout = sim.nodes().options().election_ticks;
  sim.run_ticks(static_cast<std::uint64_t>(2 * timeout) + 2);
  CHECK(sim.nodes().core_of(leader)->current_role() != raft::role::leader);
  const node_id next = await_leader(sim);
  CHECK(next != raft::no_node);
  CHECK(next != leader);
  require_safe(sim);
}

TEST_CASE("writes proposed in a minority are never committed", "[sim][scenario][paper-5.3]") {
  kv_simulation sim(10, quiet(5), 0, 4);
  const node_id leader = await_leader(sim);
  REQUIRE(leader != raft::no_node);
  const auto rest = others(sim, leader);
  // The leader keeps one follower; the other three form the majority side.
  sim.net().split({leader, rest[0]});
  std::vector<std::shared_ptr<request>> minority;
  for (int i = 0; i < 5; ++i) {
    minority.push_back(submit(sim, leader, "W minority " + std::to_string(100 + i)));
  }
  sim.run_ticks(300);
  for (const auto& r : minority) {
    CHECK_FALSE((r->answered && r->result.status == outcome::ok));
  }
  const node_id majority_leader = sim.nodes().leader();
  REQUIRE(majority_leader != raft::no_node);
  CHECK(majority_leader != leader);
  sim.net().heal();
  sim.run_ticks(100);
  CHECK(read_back(sim, "minority") == "0");
  for (const auto& r : minority) {
    CHECK_FALSE((r->answered && r->result.status == outcome::ok));
  }
  require_safe(sim);
}

TEST_CASE("a node that crashes with an unsynced, torn tail restarts and catches up",
          "[sim][scenario][crash]") {
  for (std::uint64_t seed : {11, 12, 13, 14}) {
    INFO("seed " << seed);
    cluster_options o = quiet(3);
    o.disk.torn_write = 1.0;
    kv_simulation sim(seed, o, 3, 4);
    sim.start_clients();
    const node_id leader = await_leader(sim);
    REQUIRE(leader != raft::no_node);
    const node_id victim = others(sim, leader)[0];
    sim.nodes().slow_disk(victim, 50);  // its writes linger unsynced
    sim.run_until([&] { return sim.nodes().disk_of(victim).has_unsynced(); }, 100);
    REQUIRE(sim.nodes().disk_of(victim).has_unsynced());
    sim.run_ticks(3);
    sim.nodes().crash(victim);
    sim.nodes().slow_disk(victim, 1);
    sim.run_ticks(20);
    sim.nodes().restart(victim);
    REQUIRE(sim.nodes().status(victim) == node_status::up);
    sim.run_ticks(200);
    // It caught up: it applied what the leader applied, minus what is still in flight.
    CHECK(sim.nodes().applied_index(victim) + 10 >= sim.nodes().applied_index(leader));
    require_safe(sim);
  }
}

TEST_CASE("the same seed replays to the same trace hash", "[sim][replay]") {
  run_config config;
  config.seed = 12345;
  config.nodes = 5;
  const run_result a = run_kv(config);
  const run_result b = run_kv(config);
  CHECK(a.ok);
  CHECK(a.trace_hash == b.trace_hash);
  config.seed = 12346;
  CHECK(run_kv(config).trace_hash != a.trace_hash);
}

TEST_CASE("the simulator catches a leader that counts its own unpersisted entries",
          "[sim][mutant]") {
  // A leader's own entry may count toward commit only once it is durable there. Script: cut
  // one follower off, stall the leader's disk, propose; the mutant commits with the other
  // follower's acknowledgement alone. Crash the leader (losing its unsynced copy), cut off the
  // follower that holds the entry, and let the other two elect a leader without it. Whether
  // the crash loses the write is random, so each core gets a bounded number of seeds.
  auto scenario = [](std::uint64_t seed, raft::mutation m) {
    kv_simulation sim(seed, quiet(3, [m](raft::options& o) { o.test_mutation = m; }), 0, 4);
    const node_id leader = await_leader(sim);
    REQUIRE(leader != raft::no_node);
    const auto rest = others(sim, leader);
    sim.net().isolate(rest[1]);
    sim.nodes().slow_disk(leader, 1000);
    auto write = submit(sim, leader, "W x 1");
    sim.run_ticks(30);
    sim.nodes().crash(leader);
    sim.nodes().slow_disk(leader, 1);
    sim.net().unblock_all();
    sim.net().isolate(rest[0]);
    sim.nodes().restart(leader);
    await_leader(sim, 500);
    sim.run_ticks(50);
    return sim.verdict();
  };
  std::optional<std::uint64_t> caught;
  for (std::uint64_t seed = 100; seed < 120 && !caught; ++seed) {
    if (scenario(seed, raft::mutation::count_unpersisted_self)) caught = seed;
  }
  INFO("caught at seed " << caught.value_or(0));
  CHECK(caught.has_value());
  for (std::uint64_t seed = 100; seed < 120; ++seed) {
    INFO("sound core, seed " << seed);
    CHECK_FALSE(scenario(seed, raft::mutation::none).has_value());
  }
}

TEST_CASE("a deposed leader cut off in a minority serves no stale read",
          "[sim][scenario][dissertation-6.4]") {
  for (auto mode : {raft::read_mode::read_index, raft::read_mode::lease}) {
    INFO("lease mode " << (mode == raft::read_mode::lease));
    kv_simulation sim(15, quiet(5, [mode](raft::options& o) { o.read_mode = mode; }), 0, 4);
    const node_id old_leader = await_leader(sim);
    REQUIRE(old_leader != raft::no_node);
    auto first = submit(sim, old_leader, "W x 1");
    sim.run_until([&] { return first->answered; }, 100);
    REQUIRE(first->result.status == outcome::ok);
    const auto rest = others(sim, old_leader);
    sim.net().split({old_leader, rest[0]});
    const bool replaced = await_new_leader(sim, old_leader, 300) != raft::no_node;
    REQUIRE(replaced);
    auto second = submit(sim, sim.nodes().leader(), "W x 2");
    sim.run_until([&] { return second->answered; }, 100);
    REQUIRE(second->result.status == outcome::ok);
    // Ask the old leader, and its follower, for x: "1" would be a stale read.
    for (node_id asked : {old_leader, rest[0]}) {
      auto read = std::make_shared<request>();
      sim.nodes().submit_read(asked, "x", [read](const outcome& o) {
        read->answered = true;
        read->result = o;
      });
      sim.run_ticks(100);
      CHECK_FALSE(
          (read->answered && read->result.status == outcome::ok && read->result.result == "1"));
    }
    require_safe(sim);
  }
}

TEST_CASE("leadership transfers under load lose no acknowledged write",
          "[sim][scenario][dissertation-3.10]") {
  kv_simulation sim(16, quiet(5), 3, 4);
  sim.use_read_index(true);
  sim.start_clients();
  std::set<node_id> leaders;
  for (int round = 0; round < 8; ++round) {
    const node_id leader = await_leader(sim);
    REQUIRE(leader != raft::no_node);
    leaders.insert(leader);
    sim.nodes().transfer(leader, leader % 5 + 1);
    sim.run_ticks(60);
  }
  CHECK(leaders.size() >= 4);
  CHECK(clients_progress(sim, 100));
  require_safe(sim);
}

TEST_CASE("a lease leader frozen past its lease serves no stale read once it resumes",
          "[sim][scenario][dissertation-6.4.1]") {
  // Found by quorum-sim: a paused leader whose tick count froze still trusted its lease. The
  // host must deliver the ticks it missed (monotonic clock) before anything else.
  kv_simulation sim(17, quiet(3, [](raft::options& o) { o.read_mode = raft::read_mode::lease; }), 0,
                    4);
  const node_id old_leader = lease_leader_wrote_x1(sim);
  sim.nodes().pause(old_leader);
  // Nothing reaches the old leader: only its own clock can tell it that its lease is over.
  for (node_id id : others(sim, old_leader)) sim.net().block(id, old_leader);
  const bool replaced = await_new_leader(sim, old_leader, 300) != raft::no_node;
  REQUIRE(replaced);
  auto second = submit(sim, sim.nodes().leader(), "W x 2");
  sim.run_until([&] { return second->answered; }, 100);
  REQUIRE(second->result.status == outcome::ok);
  sim.nodes().resume(old_leader);
  auto read = submit_read(sim, old_leader, "x");
  sim.run_ticks(100);
  CHECK_FALSE((read->answered && read->result.status == outcome::ok && read->result.result == "1"));
  require_safe(sim);
}

/** Runs a quiescing lease group until quiet, cuts its leader off, writes x=2 through a new
 *  leader, then reads x at the old one; returns the read's outcome (status refused if none). */
outcome read_at_quiesced_leader_after_cut(raft::mutation mutant) {
  cluster_options o = quiet(3, [mutant](raft::options& r) {
    r.read_mode = raft::read_mode::lease;
    r.quiesce = true;
    r.test_mutation = mutant;
  });
  o.suspect_after_ticks = 5;
  kv_simulation sim(29, o, 0, 4);
  const node_id old_leader = lease_leader_wrote_x1(sim);
  const bool quiet_now = sim.run_until(
      [&] {
        for (node_id id : sim.nodes().ids()) {
          if (!sim.nodes().core_of(id)->quiesced()) return false;
        }
        return true;
      },
      100);
  REQUIRE(quiet_now);
  // The quiet leader is cut off; its followers' hosts notice and elect another.
  sim.net().isolate(old_leader);
  REQUIRE(await_new_leader(sim, old_leader, 300) != raft::no_node);
  auto second = submit(sim, sim.nodes().leader(), "W x 2");
  sim.run_until([&] { return second->answered; }, 100);
  REQUIRE(second->result.status == outcome::ok);
  REQUIRE(sim.nodes().core_of(old_leader)->quiesced());  // nothing has woken it
  auto read = submit_read(sim, old_leader, "x");
  sim.run_ticks(100);
  if (mutant == raft::mutation::none) require_safe(sim);
  return read->answered ? read->result : outcome{};
}

TEST_CASE("a quiesced lease leader cut off while quiet serves no stale read after waking",
          "[sim][scenario][quiesce][dissertation-6.4.1]") {
  // Its clock stopped while it was quiet, so its lease would never have ended: quiescing gives
  // the lease up. The quiesced_lease mutant keeps it and serves the stale value.
  const outcome sound = read_at_quiesced_leader_after_cut(raft::mutation::none);
  CHECK_FALSE((sound.status == outcome::ok && sound.result == "1"));
  const outcome broken = read_at_quiesced_leader_after_cut(raft::mutation::quiesced_lease);
  CHECK((broken.status == outcome::ok && broken.result == "1"));
}

TEST_CASE("a quiesced group replaces a crashed leader once its hosts suspect it",
          "[sim][scenario][quiesce]") {
  cluster_options o = quiet(5, [](raft::options& r) { r.quiesce = true; });
  o.suspect_after_ticks = 10;
  kv_simulation sim(31, o, 0, 4);
  const node_id old_leader = await_leader(sim);
  REQUIRE(old_leader != raft::no_node);
  auto first = submit(sim, old_leader, "W x 1");
  sim.run_until([&] { return first->answered; }, 100);
  sim.run_ticks(30);
  REQUIRE(sim.nodes().quiesce_count() >= 5);
  const auto messages = sim.net().sent();
  sim.run_ticks(200);
  CHECK(sim.net().sent() == messages);  // quiet: no heartbeats at all
  sim.nodes().crash(old_leader);
  const node_id next = await_new_leader(sim, old_leader, 100);
  CHECK(next != raft::no_node);
  CHECK(sim.nodes().suspicion_count() >= 1);
  CHECK(read_back(sim, "x") == "1");
  require_safe(sim);
}

TEST_CASE("the leader crashes in the middle of a joint configuration and the group recovers",
          "[sim][scenario][dissertation-4.3]") {
  for (std::uint64_t seed : {21, 22, 23}) {
    INFO("seed " << seed);
    kv_simulation sim(seed, quiet(5), 3, 4);
    sim.use_read_index(true);
    sim.start_clients();
    node_id leader = await_leader(sim);
    REQUIRE(leader != raft::no_node);
    // Voters 1, 2, 3 with learners 4 and 5; then replace two voters at once (joint consensus).
    sim.nodes().change_membership(leader, {{1, 2, 3}, {}, {4, 5}});
    sim.run_until([&] { return !sim.nodes().core_of(leader)->membership_change_in_flight(); }, 200);
    sim.run_ticks(20);
    // Refused while the learners are still catching up: ask again until accepted.
    bool joint = false;
    for (int attempt = 0; attempt < 20 && !joint; ++attempt) {
      sim.run_ticks(5);
      leader = await_leader(sim);
      REQUIRE(leader != raft::no_node);
      sim.nodes().change_membership(leader, {{3, 4, 5}, {}, {1, 2}});
      joint = sim.nodes().core_of(leader)->members().joint();
    }
    REQUIRE(joint);
    sim.run_ticks(1);
    sim.nodes().crash(leader);
    sim.run_ticks(100);
    sim.nodes().restart(leader);
    const bool settled = sim.run_until(
        [&] {
          const node_id now = sim.nodes().leader();
          return now != raft::no_node && !sim.nodes().core_of(now)->membership_change_in_flight();
        },
        500);
    CHECK(settled);
    CHECK(clients_progress(sim, 200));
    require_safe(sim);
  }
}

TEST_CASE("a node restarted in the middle of a snapshot install resumes it and catches up",
          "[sim][scenario][paper-7][crash]") {
  for (std::uint64_t seed : {31, 32, 33}) {
    INFO("seed " << seed);
    cluster_options o = quiet(3, [](raft::options& r) {
      r.snapshot_chunk_bytes = 7;
      r.max_inflight_messages = 1;
    });
    o.snapshot_every = 5;
    kv_simulation sim(seed, o, 3, 8);
    sim.start_clients();
    const node_id leader = await_leader(sim);
    REQUIRE(leader != raft::no_node);
    const node_id victim = others(sim, leader)[0];
    sim.nodes().crash(victim);
    // The others go on, snapshot and compact their logs past everything the victim has.
    sim.run_until([&] { return sim.nodes().disk_of(leader).snapshot().index > 40; }, 2000);
    REQUIRE(sim.nodes().disk_of(leader).first_index() > sim.nodes().disk_of(victim).last_index());
    sim.nodes().restart(victim);
    auto receiving = [&] { return sim.nodes().disk_of(victim).initial_state().receiving.bytes; };
    REQUIRE(sim.run_until([&] { return receiving() > 7; }, 200));
    sim.nodes().crash(victim);  // mid-install, with part of the snapshot durable
    sim.run_ticks(10);
    sim.nodes().restart(victim);
    CHECK(receiving() > 0);  // what was durable is kept, to resume from
    CHECK(sim.run_until(
        [&] { return sim.nodes().applied_index(victim) + 10 >= sim.nodes().applied_index(leader); },
        600));
    CHECK(sim.nodes().disk_of(victim).snapshot().index > 0);
    CHECK(clients_progress(sim, 200));
    require_safe(sim);
  }
}

TEST_CASE("never two leaders in one term while voters are swapped under partitions",
          "[sim][scenario][dissertation-4.3]") {
  for (std::uint64_t seed : {41, 42, 43, 44}) {
    INFO("seed " << seed);
    kv_simulation sim(seed, quiet(5), 3, 4);
    sim.start_clients();
    node_id leader = await_leader(sim);
    REQUIRE(leader != raft::no_node);
    sim.nodes().change_membership(leader, {{1, 2, 3}, {}, {4, 5}});
    sim.run_ticks(60);
    // Swap voters back and forth; each time the joint configuration is appended, cut the
    // leader off, so the others elect a leader with or without the joint entry.
    raft::membership a{{3, 4, 5}, {}, {1, 2}};
    raft::membership b{{1, 2, 3}, {}, {4, 5}};
    int swaps = 0;
    for (int round = 0; round < 4; ++round) {
      // Refused while learners catch up or a change is in flight: ask again until accepted.
      bool joint = false;
      for (int attempt = 0; attempt < 40 && !joint; ++attempt) {
        sim.run_ticks(5);
        leader = await_leader(sim);
        if (leader == raft::no_node) continue;
        const auto* core = sim.nodes().core_of(leader);
        sim.nodes().change_membership(leader, core->members().is_voter(4) ? b : a);
        joint = core->members().joint();
      }
      if (!joint) continue;
      ++swaps;
      sim.run_ticks(1);
      sim.net().isolate(leader);
      sim.run_ticks(40);
      sim.net().unblock_all();
    }
    CHECK(swaps >= 3);
    CHECK(clients_progress(sim, 300));
    require_safe(sim);
  }
}
