// Tests of the Asio runtime: three replicas on one io_context over the in-process transport
// elect a leader on their own timers, apply proposals, refuse them on followers with a leader
// hint, survive the leader's stop, and complete through callbacks, futures and coroutines.
// Real timers (1 ms ticks): each test runs the io_context until its condition holds, bounded.
#include <quorum/raft/memory_storage.hpp>
#include <quorum/runtime/local_network.hpp>
#include <quorum/runtime/replica.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

using namespace quorum;
namespace asio = boost::asio;

namespace {

/** A state machine that records what it applied. */
struct journal {
  std::vector<std::string> lines;
  std::string apply(const raft::entry& e) {
    lines.push_back(e.payload.to_string());
    return "applied " + lines.back();
  }
};

using test_replica = runtime::replica<journal, raft::memory_storage>;

struct group {
  explicit group(asio::io_context& io) : ioc(io) {
    const raft::membership members{{1, 2, 3}};
    for (raft::node_id id = 1; id <= 3; ++id) {
      auto& n = nodes[id];
      n.storage = std::make_unique<raft::memory_storage>(members);
      n.machine = std::make_unique<journal>();
      raft::options o;
      o.id = id;
      o.seed = 11;
      n.replica = std::make_unique<test_replica>(
          io.get_executor(), *n.storage, *n.machine, o,
          [this](raft::message m) { network.send(std::move(m)); },
          runtime::replica_settings{std::chrono::milliseconds(1)});
      network.attach(id, n.replica->get_executor(),
                     [r = n.replica.get()](raft::message m) { r->receive(std::move(m)); });
      n.replica->start();
    }
  }

  /** Runs the io_context until `done` holds, for at most ~5 s of real time. */
  template <class Done>
  bool run_until(Done done) {
    for (int i = 0; i < 5000 && !done(); ++i) ioc.run_for(std::chrono::milliseconds(1));
    return done();
  }

  raft::node_id leader() {
    for (auto& [id, n] : nodes) {
      if (n.replica && n.replica->leader() == id) return id;
    }
    return raft::no_node;
  }

  void stop_all() {
    for (auto& [id, n] : nodes) {
      if (n.replica) n.replica->stop();
    }
    ioc.run_for(std::chrono::milliseconds(5));
  }

  struct node {
    std::unique_ptr<raft::memory_storage> storage;
    std::unique_ptr<journal> machine;
    std::unique_ptr<test_replica> replica;
  };
  asio::io_context& ioc;
  runtime::local_network network;
  std::map<raft::node_id, node> nodes;
};

}  // namespace

TEST_CASE("replicas on timers elect a leader and apply a proposal everywhere", "[runtime]") {
  asio::io_context ioc;
  group g(ioc);
  REQUIRE(g.run_until([&] { return g.leader() != raft::no_node; }));
  const raft::node_id leader = g.leader();
  bool done = false;
  std::error_code error;
  runtime::propose_result result;
  g.nodes[leader].replica->async_propose(raft::shared_bytes("x=1"),
                                         [&](std::error_code ec, runtime::propose_result r) {
                                           done = true;
                                           error = ec;
                                           result = std::move(r);
                                         });
  REQUIRE(g.run_until([&] { return done; }));
  CHECK_FALSE(error);
  CHECK(result.result == "applied x=1");
  CHECK(result.index >= 2);
  REQUIRE(g.run_until([&] {
    for (auto& [id, n] : g.nodes) {
      if (n.machine->lines != std::vector<std::string>{"x=1"}) return false;
    }
    return true;
  }));
  g.stop_all();
}

TEST_CASE("a follower refuses a proposal with a leader hint", "[runtime]") {
  asio::io_context ioc;
  group g(ioc);
  REQUIRE(g.run_until([&] {
    const raft::node_id l = g.leader();
    if (l == raft::no_node) return false;
    for (auto& [id, n] : g.nodes) {
      if (n.replica->leader() != l) return false;
    }
    return true;
  }));
  const raft::node_id leader = g.leader();
  const raft::node_id follower = leader % 3 + 1;
  std::error_code error;
  runtime::propose_result result;
  bool done = false;
  g.nodes[follower].replica->async_propose(raft::shared_bytes("x"),
                                           [&](std::error_code ec, runtime::propose_result r) {
                                             done = true;
                                             error = ec;
                                             result = r;
                                           });
  REQUIRE(g.run_until([&] { return done; }));
  CHECK(error == errc::not_leader);
  CHECK(result.leader_hint == leader);
  g.stop_all();
}

TEST_CASE("after the leader stops, the others elect a new one and keep every applied write",
          "[runtime]") {
  asio::io_context ioc;
  group g(ioc);
  REQUIRE(g.run_until([&] { return g.leader() != raft::no_node; }));
  const raft::node_id first = g.leader();
  int ok = 0;
  for (int i = 0; i < 5; ++i) {
    g.nodes[first].replica->async_propose(raft::shared_bytes("w" + std::to_string(i)),
                                          [&](std::error_code ec, runtime::propose_result) {
                                            if (!ec) ++ok;
                                          });
  }
  REQUIRE(g.run_until([&] { return ok == 5; }));
  // The leader's process stops: pending proposals fail, its messages stop.
  g.network.detach(first);
  g.nodes[first].replica->stop();
  REQUIRE(g.run_until([&] {
    for (auto& [id, n] : g.nodes) {
      if (id != first && n.replica->leader() != raft::no_node && n.replica->leader() != first &&
          n.replica->leader() == id) {
        return true;
      }
    }
    return false;
  }));
  raft::node_id second = raft::no_node;
  for (auto& [id, n] : g.nodes) {
    if (id != first && n.replica->leader() == id) second = id;
  }
  REQUIRE(second != raft::no_node);
  bool done = false;
  std::error_code error;
  g.nodes[second].replica->async_propose(raft::shared_bytes("after"),
                                         [&](std::error_code ec, runtime::propose_result) {
                                           done = true;
                                           error = ec;
                                         });
  REQUIRE(g.run_until([&] { return done; }));
  CHECK_FALSE(error);
  const auto& lines = g.nodes[second].machine->lines;
  REQUIRE(lines.size() == 6);
  CHECK(lines.front() == "w0");
  CHECK(lines.back() == "after");
  g.stop_all();
}

TEST_CASE("proposals complete through futures and coroutines and stop fails what is pending",
          "[runtime]") {
  asio::io_context ioc;
  group g(ioc);
  REQUIRE(g.run_until([&] { return g.leader() != raft::no_node; }));
  const raft::node_id leader = g.leader();
  auto* r = g.nodes[leader].replica.get();

  // use_future: the io_context runs on another thread while this one waits.
  std::thread runner([&] {
    for (int i = 0; i < 5000 && g.nodes[leader].machine->lines.empty(); ++i) {
      ioc.run_for(std::chrono::milliseconds(1));
    }
  });
  auto future = r->async_propose(raft::shared_bytes("by future"), asio::use_future);
  const auto [ec, result] = future.get();
  runner.join();
  CHECK_FALSE(ec);
  CHECK(result.result == "applied by future");

  // use_awaitable: a coroutine proposes and checks the answer.
  bool coroutine_done = false;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        // The command is not a temporary of the co_await expression: GCC 12 may destroy such
        // temporaries twice.
        raft::shared_bytes command("by coroutine");
        auto [e, res] = co_await r->async_propose(std::move(command), asio::use_awaitable);
        CHECK_FALSE(e);
        CHECK(res.result == "applied by coroutine");
        coroutine_done = true;
      },
      asio::detached);
  REQUIRE(g.run_until([&] { return coroutine_done; }));

  // A proposal that cannot commit (the leader is cut off) fails with shutting_down on stop.
  for (raft::node_id id = 1; id <= 3; ++id) g.network.set_link(leader, id, false);
  std::error_code pending_error;
  bool pending_done = false;
  r->async_propose(raft::shared_bytes("never"), [&](std::error_code e, runtime::propose_result) {
    pending_done = true;
    pending_error = e;
  });
  ioc.run_for(std::chrono::milliseconds(2));
  r->stop();
  REQUIRE(g.run_until([&] { return pending_done; }));
  CHECK((pending_error == errc::shutting_down || pending_error == errc::not_leader));
  g.stop_all();
}

TEST_CASE("a follower submits through its leader and completes at each ack level",
          "[runtime][ack-level]") {
  asio::io_context ioc;
  group g(ioc);
  REQUIRE(g.run_until([&] { return g.leader() != raft::no_node; }));
  const raft::node_id follower = g.leader() == 1 ? 2 : 1;
  struct outcome {
    bool done = false;
    std::error_code error;
    runtime::propose_result result;
  };
  std::map<runtime::ack_level, outcome> seen;
  for (auto level :
       {runtime::ack_level::none, runtime::ack_level::leader, runtime::ack_level::majority}) {
    const std::string line = "level " + std::to_string(static_cast<int>(level));
    g.nodes[follower].replica->async_submit(
        raft::shared_bytes(line), level,
        [&seen, level](std::error_code ec, runtime::propose_result r) {
          seen[level] = {true, ec, std::move(r)};
        });
  }
  REQUIRE(g.run_until([&] { return seen.size() == 3; }));
  for (auto& [level, o] : seen) CHECK_FALSE(o.error);
  CHECK(seen[runtime::ack_level::none].result.index == 0);  // forwarded: no place known yet
  CHECK(seen[runtime::ack_level::leader].result.index > 0);
  CHECK(seen[runtime::ack_level::leader].result.result.empty());  // not applied yet
  CHECK(seen[runtime::ack_level::majority].result.result == "applied level 2");
  // Applied on the follower that submitted, with the result it returned.
  const auto& lines = g.nodes[follower].machine->lines;
  CHECK(std::find(lines.begin(), lines.end(), "level 2") != lines.end());
  REQUIRE(g.run_until([&] {
    for (auto& [id, n] : g.nodes) {
      if (n.machine->lines.size() != 3) return false;
    }
    return true;
  }));
  g.stop_all();
}

TEST_CASE("a leader-level submit completes without a majority, a majority-level one does not",
          "[runtime][ack-level]") {
  asio::io_context ioc;
  group g(ioc);
  REQUIRE(g.run_until([&] { return g.leader() != raft::no_node; }));
  const raft::node_id leader = g.leader();
  for (raft::node_id id = 1; id <= 3; ++id) {
    if (id != leader) g.network.set_link(leader, id, false);
  }
  std::optional<std::error_code> at_leader;
  std::optional<std::error_code> at_majority;
  g.nodes[leader].replica->async_submit(
      raft::shared_bytes("a"), runtime::ack_level::leader,
      [&](std::error_code ec, runtime::propose_result) { at_leader = ec; });
  g.nodes[leader].replica->async_submit(
      raft::shared_bytes("b"), runtime::ack_level::majority,
      [&](std::error_code ec, runtime::propose_result) { at_majority = ec; });
  REQUIRE(g.run_until([&] { return at_leader.has_value(); }));
  CHECK_FALSE(*at_leader);
  // The leader's own disk has both; nobody else does, so nothing commits until CheckQuorum
  // makes the cut-off leader step down, and the majority-level submit is not confirmed.
  REQUIRE(g.run_until([&] { return g.nodes[leader].replica->leader() != leader; }));
  if (at_majority) CHECK(*at_majority);
  for (auto& [id, n] : g.nodes) CHECK(n.machine->lines.empty());
  g.stop_all();
}
