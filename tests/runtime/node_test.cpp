// Tests of runtime::node: three nodes, each with many groups over one shared WAL on the real
// disk (group commit), exchanging group-tagged messages through the in-process transport.
// Linearizable reads, snapshots taken by the replicas, and a restart that restores the state
// machine from its snapshot. Real timers (1 ms ticks); each wait is bounded.
#include <quorum/runtime/local_network.hpp>
#include <quorum/runtime/node.hpp>
#include <quorum/storage/file_system.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <catch2/catch.hpp>

#include "../support/drain.hpp"
#include "../support/scratch.hpp"

#include <unistd.h>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

using namespace quorum;
using quorum::test::scratch;
namespace asio = boost::asio;

namespace {

/** Key-value state machine: "k=v" sets k. Snapshot-able. */
struct kv_machine {
  std::map<std::string, std::string> data;
  std::string apply(const raft::entry& e) {
    const std::string s = e.payload.to_string();
    const auto eq = s.find('=');
    if (eq == std::string::npos) return "bad command";
    data[s.substr(0, eq)] = s.substr(eq + 1);
    return "ok";
  }
  raft::shared_bytes snapshot() const {
    std::string out;
    for (const auto& [k, v] : data) out += k + "=" + v + "\n";
    return raft::shared_bytes(out);
  }
  void restore(const raft::shared_bytes& bytes) {
    data.clear();
    const std::string s = bytes.to_string();
    std::size_t at = 0;
    while (at < s.size()) {
      const auto nl = s.find('\n', at);
      const std::string line = s.substr(at, nl - at);
      const auto eq = line.find('=');
      data[line.substr(0, eq)] = line.substr(eq + 1);
      at = nl + 1;
    }
  }
};

using kv_node = runtime::node<kv_machine, runtime::local_network>;

/** Three nodes with `groups` groups each, on one io_context driven by the test thread. */
struct cluster {
  cluster(const std::string& path, int groups,
          runtime::replica_settings rs = {std::chrono::milliseconds(1)}, bool quiescing = false)
      : dir(path), group_count(groups), replica_settings(rs), quiesce(quiescing) {
    for (raft::node_id id = 1; id <= 3; ++id) open(id);
  }
  ~cluster() {
    // Stopped together, so that no node is left ticking while the others drain.
    for (auto& [id, m] : members) {
      if (m.node) m.node->stop();
    }
    for (raft::node_id id = 1; id <= 3; ++id) close(id);
  }

  void open(raft::node_id id) {
    auto& m = members[id];
    m.wal = std::make_unique<storage::shared_wal>(fs, dir + "/node-" + std::to_string(id));
    runtime::node_settings s;
    s.self = id;
    s.raft.seed = id * 7;
    s.raft.quiesce = quiesce;
    s.replica = replica_settings;
    m.node = std::make_unique<kv_node>(std::vector<asio::any_io_executor>{ioc.get_executor()},
                                       *m.wal, network, s);
    network.attach_node(id, ioc.get_executor(), [n = m.node.get()](transport::group_message gm) {
      n->deliver(std::move(gm));
    });
    for (int g = 1; g <= group_count; ++g) {
      m.node->add_group(static_cast<std::uint64_t>(g), raft::membership{{1, 2, 3}},
                        std::make_unique<kv_machine>());
    }
  }
  void close(raft::node_id id) {
    auto& m = members[id];
    if (!m.node) return;
    network.detach(id);
    m.node->stop();
    // The node may go once its replicas finished (no sync in flight) and their handlers ran.
    for (int i = 0; i < 10000 && !m.node->finished(); ++i)
      ioc.run_for(std::chrono::milliseconds(1));
    CHECK(m.node->finished());
    test::run_queued(ioc);  // the handlers already queued for it (other nodes keep running)
    m.node.reset();
    m.wal.reset();
  }

  template <class Done>
  bool run_until(Done done) {
    for (int i = 0; i < 10000 && !done(); ++i) ioc.run_for(std::chrono::milliseconds(1));
    return done();
  }

  kv_node::replica_type& replica(raft::node_id id, std::uint64_t group) {
    return *members[id].node->find(group);
  }
  raft::node_id leader_of(std::uint64_t group) {
    for (auto& [id, m] : members) {
      if (m.node && replica(id, group).leader() == id) return id;
    }
    return raft::no_node;
  }

  /** Proposes on the group's leader, following hints; true once applied there. */
  bool write(std::uint64_t group, const std::string& command) {
    for (int attempt = 0; attempt < 50; ++attempt) {
      if (!run_until([&] { return leader_of(group) != raft::no_node; })) return false;
      bool done = false;
      std::error_code error;
      replica(leader_of(group), group)
          .async_propose(raft::shared_bytes(command),
                         [&](std::error_code ec, runtime::propose_result) {
                           done = true;
                           error = ec;
                         });
      if (!run_until([&] { return done; })) return false;
      if (!error) return true;
    }
    return false;
  }

  /** A linearizable read of `key` through node `id`; retried while no leader is confirmed
   *  if `retry`. */
  std::pair<std::error_code, std::string> read(raft::node_id id, std::uint64_t group,
                                               const std::string& key, bool retry = true) {
    auto out = read_once(id, group, key);
    for (int i = 0; retry && i < 100 && out.first == errc::read_not_confirmed; ++i) {
      ioc.run_for(std::chrono::milliseconds(10));
      out = read_once(id, group, key);
    }
    return out;
  }
  std::pair<std::error_code, std::string> read_once(raft::node_id id, std::uint64_t group,
                                                    const std::string& key) {
    bool done = false;
    std::pair<std::error_code, std::string> out;
    replica(id, group).async_read(
        [key](const kv_machine& m) {
          auto it = m.data.find(key);
          return it == m.data.end() ? std::string("<none>") : it->second;
        },
        [&](std::error_code ec, std::string value) {
          out = {ec, std::move(value)};
          done = true;
        });
    run_until([&] { return done; });
    return out;
  }

  struct member {
    std::unique_ptr<storage::shared_wal> wal;
    std::unique_ptr<kv_node> node;
  };
  std::string dir;
  int group_count;
  runtime::replica_settings replica_settings;
  bool quiesce;
  storage::posix_file_system fs;
  asio::io_context ioc;
  // Quiesced groups leave the io_context without work: keep it running, as a host would.
  asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
  runtime::local_network network;
  std::map<raft::node_id, member> members;
};

}  // namespace

TEST_CASE("three nodes run many groups over one shared WAL each, and every group commits",
          "[runtime][node]") {
  scratch dir("node_test_groups");
  // 36 replicas on one thread: 5 ms ticks keep a slow run (ASan on a loaded machine) from
  // spending every tick on heartbeats.
  cluster c(dir.path, 12, {std::chrono::milliseconds(5)});
  for (std::uint64_t g = 1; g <= 12; ++g) {
    REQUIRE(c.write(g, "group=" + std::to_string(g)));
  }
  // Every node applies every group's write; each group's state is its own.
  for (raft::node_id id = 1; id <= 3; ++id) {
    for (std::uint64_t g = 1; g <= 12; ++g) {
      const auto [ec, value] = c.read(id, g, "group");
      CHECK_FALSE(ec);
      CHECK(value == std::to_string(g));
    }
  }
  // One commit thread per node served every group's batches.
  for (raft::node_id id = 1; id <= 3; ++id) {
    const auto& commit = c.members[id].node->commit();
    CHECK(commit.syncs() > 0);
    CHECK(commit.requests() >= commit.syncs());
  }
  // A message for a group the node does not have is dropped and counted.
  c.members[1].node->deliver({99, raft::message{}});
  CHECK(c.members[1].node->unknown_group_messages() == 1);
}

TEST_CASE("a linearizable read sees every write acknowledged before it, on leader and follower",
          "[runtime][node][dissertation-6.4]") {
  scratch dir("node_test_reads");
  cluster c(dir.path, 1);
  REQUIRE(c.write(1, "x=1"));
  REQUIRE(c.write(1, "x=2"));
  const raft::node_id leader = c.leader_of(1);
  const raft::node_id follower = leader % 3 + 1;
  // Acknowledged on the leader, read at once through a follower: the read waits for it.
  const auto [ec_f, on_follower] = c.read(follower, 1, "x");
  CHECK_FALSE(ec_f);
  CHECK(on_follower == "2");
  const auto [ec_l, on_leader] = c.read(leader, 1, "x");
  CHECK_FALSE(ec_l);
  CHECK(on_leader == "2");
}

TEST_CASE("a read with no leader in reach fails with read_not_confirmed", "[runtime][node]") {
  scratch dir("node_test_no_leader");
  cluster c(dir.path, 1);
  REQUIRE(c.write(1, "x=1"));
  const raft::node_id leader = c.leader_of(1);
  const raft::node_id follower = leader % 3 + 1;
  // The follower is cut off from everyone; once it no longer knows a leader, reads fail.
  for (raft::node_id id = 1; id <= 3; ++id) c.network.set_link(follower, id, false);
  REQUIRE(c.run_until([&] {
    return c.replica(follower, 1).leader() == raft::no_node ||
           c.replica(follower, 1).leader() == follower;
  }));
  const auto [ec, value] = c.read(follower, 1, "x", false);
  CHECK(ec == errc::read_not_confirmed);
}

TEST_CASE("replicas snapshot and compact, and a restarted node restores from its snapshot",
          "[runtime][node][paper-7]") {
  scratch dir("node_test_snapshots");
  runtime::replica_settings rs{std::chrono::milliseconds(1)};
  rs.snapshot_every = 5;
  rs.snapshot_trailing = 2;
  {
    cluster c(dir.path, 1, rs);
    for (int i = 0; i < 30; ++i)
      REQUIRE(c.write(1, "k" + std::to_string(i) + "=" + std::to_string(i)));
    REQUIRE(c.run_until([&] {
      for (raft::node_id id = 1; id <= 3; ++id) {
        if (c.replica(id, 1).applied() < 31) return false;
      }
      return true;
    }));
  }
  // Every node's log was compacted behind a snapshot.
  storage::posix_file_system fs;
  for (raft::node_id id = 1; id <= 3; ++id) {
    storage::shared_wal wal(fs, dir.path + "/node-" + std::to_string(id));
    storage::wal_log& log = wal.open(1, raft::membership{{1, 2, 3}});
    CHECK(log.snapshot().index >= 25);
    CHECK(log.first_index() > 20);
  }
  // Restarted, the nodes restore their state machines from the snapshots and the log after.
  cluster c(dir.path, 1, rs);
  for (raft::node_id id = 1; id <= 3; ++id) {
    const auto [ec0, first] = c.read(id, 1, "k0");
    const auto [ec29, last] = c.read(id, 1, "k29");
    CHECK_FALSE(ec0);
    CHECK(first == "0");
    CHECK(last == "29");
  }
}

TEST_CASE("idle groups quiesce: no timer fires and no message is sent until something happens",
          "[runtime][node][quiesce]") {
  scratch dir("node_test_quiesce");
  cluster c(dir.path, 20, {std::chrono::milliseconds(1)}, true);
  for (std::uint64_t g = 1; g <= 20; ++g) REQUIRE(c.write(g, "x=" + std::to_string(g)));
  auto all_quiet = [&] {
    for (raft::node_id id = 1; id <= 3; ++id) {
      for (std::uint64_t g = 1; g <= 20; ++g) {
        if (!c.replica(id, g).quiesced()) return false;
      }
    }
    return true;
  };
  REQUIRE(c.run_until(all_quiet));
  c.ioc.run_for(std::chrono::milliseconds(20));  // stragglers: the last heartbeat answers
  const std::uint64_t sent = c.network.sent();
  // 60 replicas with 1 ms ticks, and not one handler runs in 200 ms.
  CHECK(c.ioc.run_for(std::chrono::milliseconds(200)) == 0);
  CHECK(c.network.sent() == sent);
  // A write wakes its group (only it), commits, and the group goes quiet again.
  REQUIRE(c.write(7, "x=seven"));
  CHECK(c.replica(1, 3).quiesced());
  const auto [ec, value] = c.read(c.leader_of(7) % 3 + 1, 7, "x");
  CHECK_FALSE(ec);
  CHECK(value == "seven");
  CHECK(c.run_until(all_quiet));
}

TEST_CASE("a quiesced group replaces a lost leader once its node reports the peer lost",
          "[runtime][node][quiesce]") {
  scratch dir("node_test_quiesce_failover");
  cluster c(dir.path, 1, {std::chrono::milliseconds(1)}, true);
  REQUIRE(c.write(1, "x=1"));
  const raft::node_id old_leader = c.leader_of(1);
  const raft::node_id a = old_leader % 3 + 1;
  const raft::node_id b = a % 3 + 1;
  REQUIRE(c.run_until([&] { return c.replica(a, 1).quiesced() && c.replica(b, 1).quiesced(); }));
  c.close(old_leader);
  // Quiesced followers do not notice by themselves: their election clocks are stopped.
  c.ioc.run_for(std::chrono::milliseconds(100));
  CHECK(c.replica(a, 1).leader() == old_leader);
  CHECK(c.replica(b, 1).leader() == old_leader);
  // The transport reports the lost connection; the group elects a new leader.
  c.members[a].node->peer_lost(old_leader);
  c.members[b].node->peer_lost(old_leader);
  REQUIRE(c.run_until([&] {
    const raft::node_id now = c.replica(a, 1).leader();
    return now == a || now == b;
  }));
  const auto [ec, value] = c.read(a, 1, "x");
  CHECK_FALSE(ec);
  CHECK(value == "1");
  REQUIRE(c.write(1, "x=2"));
}
