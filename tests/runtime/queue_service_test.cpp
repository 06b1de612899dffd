// Tests of queue::service, the client API of quorum queues: three nodes, each with a shared
// WAL on the real disk, over the in-process transport. Declare and redeclare, publish at each
// ack level, consume on another node than the publisher, ack / requeue / reject, get, purge,
// delete, status, deduplication, and a restart of every node that keeps the messages. Real
// timers (1 ms ticks); each wait is bounded.
#include <quorum/queue/service.hpp>
#include <quorum/runtime/local_network.hpp>
#include <quorum/storage/file_system.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <catch2/catch.hpp>

#include "../support/drain.hpp"
#include "../support/scratch.hpp"

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

using namespace quorum;
namespace asio = boost::asio;
using queue::settlement;
using runtime::ack_level;

namespace {

using service = queue::service<runtime::local_network>;

struct brokers {
  explicit brokers(const std::string& path, storage::file_log_options wal = {},
                   raft::index_t snapshots = 4096, raft::index_t tail = 262'144)
      : dir(path), wal_options(wal), snapshot_every(snapshots), snapshot_tail(tail) {
    for (raft::node_id id = 1; id <= 3; ++id) open(id);
  }
  ~brokers() {
    // Stopped together, so that no node is left ticking while the others drain.
    for (auto& [id, m] : members) {
      if (m.svc) m.svc->stop();
    }
    for (raft::node_id id = 1; id <= 3; ++id) close(id);
  }

  void open(raft::node_id id) {
    auto& m = members[id];
    m.wal =
        std::make_unique<storage::shared_wal>(fs, dir + "/node-" + std::to_string(id), wal_options);
    queue::service_settings s;
    s.self = id;
    s.cluster = {1, 2, 3};
    s.raft.seed = id * 13;
    // 2 ms ticks: fast, yet slow enough that a run under ASan does not elect all the time.
    s.replica.tick = std::chrono::milliseconds(2);
    s.clock_interval = std::chrono::milliseconds(5);
    s.retry_interval = std::chrono::milliseconds(5);
    s.body_cache_bytes = cache_bytes;
    s.consumer_grace = std::chrono::milliseconds(20);
    s.snapshot_every = snapshot_every;
    s.snapshot_tail = snapshot_tail;
    m.svc = std::make_unique<service>(std::vector<asio::any_io_executor>{ioc.get_executor()},
                                      *m.wal, network, s);
    network.attach_node(id, ioc.get_executor(), [n = m.svc.get()](transport::group_message gm) {
      n->deliver(std::move(gm));
    });
    m.svc->start();
  }
  void close(raft::node_id id) {
    auto& m = members[id];
    if (!m.svc) return;
    network.detach(id);
    m.svc->stop();
    for (int i = 0; i < 10000 && !m.svc->finished(); ++i) ioc.run_for(std::chrono::milliseconds(1));
    CHECK(m.svc->finished());
    test::run_queued(ioc);
    m.svc.reset();
    m.wal.reset();
  }

  /** Every node stopped, then every node started again. */
  void restart_all() {
    for (raft::node_id id = 1; id <= 3; ++id) close(id);
    for (raft::node_id id = 1; id <= 3; ++id) open(id);
  }

  template <class Done>
  bool run_until(Done done) {
    for (int i = 0; i < 10000 && !done(); ++i) ioc.run_for(std::chrono::milliseconds(1));
    return done();
  }

  /** Runs an asynchronous call to completion; returns its (error, values...). */
  template <class... Values, class Start>
  std::tuple<std::error_code, Values...> call(Start start) {
    std::optional<std::tuple<std::error_code, Values...>> out;
    start([&](std::error_code ec, Values... v) { out.emplace(ec, std::move(v)...); });
    REQUIRE(run_until([&] { return out.has_value(); }));
    return std::move(*out);
  }

  service& operator[](raft::node_id id) { return *members.at(id).svc; }

  std::error_code declare(raft::node_id at, const std::string& name,
                          queue::declare_options o = {}) {
    return std::get<0>(call<>([&](auto h) { (*this)[at].async_declare(name, o, h); }));
  }
  std::pair<std::error_code, queue::publish_outcome> publish(raft::node_id at,
                                                             const std::string& name,
                                                             const std::string& body,
                                                             queue::publish_options o = {}) {
    if (o.producer == 0) {
      // Deduplicated, so that a publish whose forward is lost in a leader change (slow runs,
      // e.g. under ASan, elect often at 1 ms ticks) is sent again safely by the service.
      o.producer = 1'000'000;
      o.sequence = ++sequence;
    }
    auto [ec, outcome] = call<queue::publish_outcome>(
        [&](auto h) { (*this)[at].async_publish(name, raft::shared_bytes(body), o, h); });
    return {ec, outcome};
  }
  /** Attaches a consumer on node `at` whose deliveries land in `received`. */
  queue::consumer_id consume(raft::node_id at, const std::string& name, queue::consumer_options o,
                             std::vector<queue::message>& received) {
    auto [ec, consumer] = call<queue::consumer_id>([&](auto h) {
      (*this)[at].async_consume(
          name, o, [&received](queue::message m) { received.push_back(std::move(m)); },
          ioc.get_executor(), h);
    });
    REQUIRE_FALSE(ec);
    return consumer;
  }
  std::optional<queue::message> get(raft::node_id at, const std::string& name) {
    auto [ec, m] =
        call<std::optional<queue::message>>([&](auto h) { (*this)[at].async_get(name, h); });
    REQUIRE_FALSE(ec);
    return m;
  }
  std::error_code settle(raft::node_id at, const queue::message& m, settlement s) {
    return std::get<0>(call<>([&](auto h) {
      (*this)[at].async_settle(m.queue, m.consumer, s, std::vector<queue::message_id>{m.id}, h);
    }));
  }
  queue::queue_info status(raft::node_id at, const std::string& name) {
    auto [ec, info] = call<queue::queue_info>([&](auto h) { (*this)[at].async_status(name, h); });
    REQUIRE_FALSE(ec);
    return info;
  }

  /** Queue `name`'s counters once nothing is held unacknowledged (a restarted node releases
   *  its earlier life's consumers from its clock), or as they are after 200 tries. */
  queue::queue_status released(raft::node_id at, const std::string& name) {
    queue::queue_status counters;
    for (int i = 0; i < 200; ++i) {
      counters = status(at, name).counters;
      if (counters.unacked == 0) break;
      ioc.run_for(std::chrono::milliseconds(5));
    }
    return counters;
  }

  struct member {
    std::unique_ptr<storage::shared_wal> wal;
    std::unique_ptr<service> svc;
  };
  std::string dir;
  storage::file_log_options wal_options;
  raft::index_t snapshot_every;
  raft::index_t snapshot_tail;
  std::uint64_t sequence = 0;  // of the helper's own producer
  std::uint64_t cache_bytes = std::uint64_t{64} << 20;
  storage::posix_file_system fs;
  asio::io_context ioc;
  asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
  runtime::local_network network;
  std::map<raft::node_id, member> members;
};

std::string text(const raft::shared_bytes& b) {
  return b.to_string();
}

/** Bytes of a node's WAL segment files. */
std::uintmax_t wal_bytes(const std::string& node_dir) {
  std::uintmax_t total = 0;
  for (const auto& f : std::filesystem::directory_iterator(node_dir)) {
    if (f.path().filename().string().rfind("seg-", 0) == 0) total += f.file_size();
  }
  return total;
}

/** True once the group's directory on that node holds a snapshot. */
bool has_snapshot(const std::string& node_dir, std::uint64_t group) {
  const std::string g = node_dir + "/group-" + std::to_string(group);
  if (!std::filesystem::exists(g)) return false;
  for (const auto& f : std::filesystem::directory_iterator(g)) {
    const std::string name = f.path().filename().string();
    if (name.rfind("snap-", 0) == 0 && name.ends_with(".snap")) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("declaring a queue again with the same options does nothing, with others fails",
          "[queue][service][declare]") {
  test::scratch dir("queue_service_declare");
  brokers b(dir.path);
  queue::declare_options o;
  o.queue.max_length = 10;
  REQUIRE_FALSE(b.declare(1, "orders", o));
  CHECK_FALSE(b.declare(2, "orders", o));  // the same, through another node
  o.queue.max_length = 11;
  CHECK(b.declare(3, "orders", o) == errc::queue_mismatch);
  o.replicas = 4;
  CHECK(b.declare(1, "too-many", o) == errc::invalid_options);
  CHECK(b.declare(1, "", {}) == errc::invalid_options);
  // Every node learns the queue, with the options it was first declared with.
  REQUIRE(b.run_until([&] {
    for (raft::node_id id = 1; id <= 3; ++id) {
      if (b[id].queues().size() != 1) return false;
    }
    return true;
  }));
  CHECK(b[3].queues()[0].options.max_length == 10);
  CHECK(b[3].queues()[0].members == std::vector<raft::node_id>{1, 2, 3});
}

TEST_CASE("a message published on one node is delivered to a consumer on another and acked",
          "[queue][service][consume]") {
  test::scratch dir("queue_service_consume");
  brokers b(dir.path);
  REQUIRE_FALSE(b.declare(1, "jobs"));
  std::vector<queue::message> received;
  const queue::consumer_id consumer = b.consume(2, "jobs", {}, received);
  auto [pec, outcome] = b.publish(3, "jobs", "hello");
  REQUIRE_FALSE(pec);
  CHECK(outcome == queue::publish_outcome::accepted);
  REQUIRE(b.run_until([&] { return received.size() == 1; }));
  CHECK(text(received[0].body) == "hello");
  CHECK(received[0].consumer == consumer);
  CHECK_FALSE(received[0].redelivered);
  CHECK(b.status(1, "jobs").counters.unacked == 1);
  REQUIRE_FALSE(b.settle(2, received[0], settlement::ack));
  const queue::queue_info info = b.status(1, "jobs");
  CHECK(info.counters.ready + info.counters.unacked == 0);
  CHECK(info.counters.consumers == 1);
  CHECK(info.leader != raft::no_node);
  // Nothing is delivered twice.
  b.ioc.run_for(std::chrono::milliseconds(20));
  CHECK(received.size() == 1);
}

TEST_CASE("a publish completes at each ack level and every level enqueues the message",
          "[queue][service][ack-level]") {
  test::scratch dir("queue_service_ack_levels");
  brokers b(dir.path);
  REQUIRE_FALSE(b.declare(1, "levels"));
  for (auto level : {ack_level::none, ack_level::leader, ack_level::majority}) {
    queue::publish_options o;
    o.ack = level;
    for (raft::node_id at = 1; at <= 3; ++at) {
      auto [ec, outcome] = b.publish(at, "levels", "m", o);
      CHECK_FALSE(ec);
      CHECK(outcome == (level == ack_level::majority ? queue::publish_outcome::accepted
                                                     : queue::publish_outcome::sent));
    }
  }
  // Fire-and-forget publishes are applied too, once they commit.
  REQUIRE(b.run_until([&] { return b.status(2, "levels").counters.ready == 9; }));
}

TEST_CASE("a retried publish with the same producer and sequence is confirmed as a duplicate",
          "[queue][service][deduplication]") {
  test::scratch dir("queue_service_dedup");
  brokers b(dir.path);
  REQUIRE_FALSE(b.declare(1, "dedup"));
  queue::publish_options o;
  o.producer = 7;
  o.sequence = 1;
  CHECK(b.publish(1, "dedup", "a", o).second == queue::publish_outcome::accepted);
  CHECK(b.publish(2, "dedup", "a", o).second == queue::publish_outcome::duplicate);
  o.sequence = 2;
  CHECK(b.publish(3, "dedup", "b", o).second == queue::publish_outcome::accepted);
  CHECK(b.status(1, "dedup").counters.ready == 2);
}

TEST_CASE("get takes one message, a requeue returns it counted, a reject drops it",
          "[queue][service][get]") {
  test::scratch dir("queue_service_get");
  brokers b(dir.path);
  REQUIRE_FALSE(b.declare(1, "one-shot"));
  CHECK_FALSE(b.get(2, "one-shot"));  // empty
  REQUIRE_FALSE(b.publish(1, "one-shot", "first").first);
  REQUIRE_FALSE(b.publish(1, "one-shot", "second").first);
  std::optional<queue::message> m = b.get(3, "one-shot");
  REQUIRE(m);
  CHECK(text(m->body) == "first");
  REQUIRE_FALSE(b.settle(3, *m, settlement::requeue));
  m = b.get(2, "one-shot");
  REQUIRE(m);
  CHECK(text(m->body) == "first");  // back in its place, ahead of newer messages
  CHECK(m->redelivered);
  CHECK(m->failed == 1);
  REQUIRE_FALSE(b.settle(2, *m, settlement::reject));
  m = b.get(1, "one-shot");
  REQUIRE(m);
  CHECK(text(m->body) == "second");
  // Settling what the consumer does not hold changes nothing.
  queue::message wrong = *m;
  wrong.id += 1000;
  CHECK(b.settle(1, wrong, settlement::ack) == errc::invalid_command);
  REQUIRE_FALSE(b.settle(1, *m, settlement::ack));
  CHECK_FALSE(b.get(1, "one-shot"));
}

TEST_CASE("a consumer that cancels returns its unacknowledged messages, uncounted",
          "[queue][service][cancel]") {
  test::scratch dir("queue_service_cancel");
  brokers b(dir.path);
  REQUIRE_FALSE(b.declare(1, "work"));
  std::vector<queue::message> received;
  const queue::consumer_id consumer = b.consume(1, "work", {1, 0, {}}, received);
  REQUIRE_FALSE(b.publish(2, "work", "a").first);
  REQUIRE_FALSE(b.publish(2, "work", "b").first);
  REQUIRE(b.run_until([&] { return received.size() == 1; }));
  b.ioc.run_for(std::chrono::milliseconds(20));
  CHECK(received.size() == 1);  // prefetch 1
  REQUIRE_FALSE(std::get<0>(b.call<>([&](auto h) { b[1].async_cancel("work", consumer, h); })));
  std::optional<queue::message> m = b.get(3, "work");
  REQUIRE(m);
  CHECK(text(m->body) == "a");
  CHECK(m->redelivered);
  CHECK(m->failed == 0);
}

TEST_CASE("purge drops the ready messages, delete removes the queue",
          "[queue][service][purge][delete]") {
  test::scratch dir("queue_service_purge");
  brokers b(dir.path);
  REQUIRE_FALSE(b.declare(1, "tmp"));
  for (int i = 0; i < 3; ++i) REQUIRE_FALSE(b.publish(1, "tmp", "x").first);
  auto [ec, purged] = b.call<std::uint64_t>([&](auto h) { b[2].async_purge("tmp", h); });
  REQUIRE_FALSE(ec);
  CHECK(purged == 3);
  REQUIRE_FALSE(std::get<0>(b.call<>([&](auto h) { b[3].async_delete("tmp", h); })));
  REQUIRE(b.run_until([&] { return b[1].queues().empty() && b[2].queues().empty(); }));
  CHECK(b.publish(1, "tmp", "x").first == errc::no_queue);
  CHECK(std::get<0>(b.call<>([&](auto h) { b[1].async_delete("tmp", h); })) == errc::no_queue);
  // Declared again, it is a new queue (a new group), empty.
  REQUIRE_FALSE(b.declare(2, "tmp"));
  CHECK(b.status(1, "tmp").counters.ready == 0);
}

TEST_CASE("a node without a replica of the queue says so, and status names the members",
          "[queue][service][members]") {
  test::scratch dir("queue_service_members");
  brokers b(dir.path);
  queue::declare_options o;
  o.replicas = 1;
  REQUIRE_FALSE(b.declare(1, "single", o));
  REQUIRE(b.run_until([&] {
    for (raft::node_id id = 1; id <= 3; ++id) {
      if (b[id].queues().size() != 1) return false;
    }
    return true;
  }));
  const std::vector<raft::node_id> members = b[1].queues()[0].members;
  REQUIRE(members.size() == 1);
  const raft::node_id holder = members[0];
  const raft::node_id other = holder % 3 + 1;
  CHECK(b.publish(other, "single", "x").first == errc::no_replica);
  auto [ec, info] = b.call<queue::queue_info>([&](auto h) { b[other].async_status("single", h); });
  CHECK(ec == errc::no_replica);
  CHECK(info.members == members);
  CHECK_FALSE(b.publish(holder, "single", "x").first);
}

TEST_CASE("every node restarts: the queues and their messages are still there, read from the log",
          "[queue][service][restart]") {
  test::scratch dir("queue_service_restart");
  brokers b(dir.path);
  b.cache_bytes = 0;  // every body is read back from the log, before and after the restart
  for (raft::node_id id = 1; id <= 3; ++id) {
    b.close(id);
    b.open(id);
  }
  REQUIRE_FALSE(b.declare(1, "durable"));
  for (int i = 0; i < 5; ++i) {
    REQUIRE_FALSE(b.publish(2, "durable", "message " + std::to_string(i)).first);
  }
  std::optional<queue::message> first = b.get(3, "durable");
  REQUIRE(first);
  CHECK(text(first->body) == "message 0");
  b.restart_all();
  REQUIRE(b.run_until([&] { return b[1].queues().size() == 1; }));
  // The get's consumer belonged to node 3's earlier life: node 3 detaches it, and the message
  // it held returns to its place.
  const queue::queue_status counters = b.released(1, "durable");
  CHECK(counters.unacked == 0);
  CHECK(counters.ready == 5);
  for (int i = 0; i < 5; ++i) {
    std::optional<queue::message> m = b.get(1 + static_cast<raft::node_id>(i % 3), "durable");
    REQUIRE(m);
    CHECK(text(m->body) == "message " + std::to_string(i));
    CHECK(m->redelivered == (i == 0));
  }
}

TEST_CASE("after a queue's leader stops, the other members keep publishing and delivering",
          "[queue][service][failover]") {
  test::scratch dir("queue_service_failover");
  brokers b(dir.path);
  REQUIRE_FALSE(b.declare(1, "ha"));
  REQUIRE_FALSE(b.publish(1, "ha", "before").first);
  const raft::node_id leader = b.status(1, "ha").leader;
  REQUIRE(leader != raft::no_node);
  b.close(leader);
  const raft::node_id survivor = leader % 3 + 1;
  // A publish forwarded to the stopped leader gets no answer (errc::outcome_unknown): with a
  // producer id and sequence it is safe to send again until it is confirmed.
  queue::publish_options o;
  o.producer = 1;
  o.sequence = 1;
  std::error_code ec = errc::outcome_unknown;
  for (int i = 0; i < 10 && ec == errc::outcome_unknown; ++i) {
    ec = b.publish(survivor, "ha", "after", o).first;
  }
  REQUIRE_FALSE(ec);
  std::optional<queue::message> m = b.get(survivor, "ha");
  REQUIRE(m);
  CHECK(text(m->body) == "before");
  REQUIRE_FALSE(b.settle(survivor, *m, settlement::ack));
  m = b.get(survivor % 3 + 1 == leader ? survivor : survivor % 3 + 1, "ha");
  REQUIRE(m);
  CHECK(text(m->body) == "after");
}

TEST_CASE("an at-most-once dead letter is handed to its target queue",
          "[queue][service][dead-letter]") {
  test::scratch dir("queue_service_dlx_at_most_once");
  brokers b(dir.path);
  REQUIRE_FALSE(b.declare(1, "dlq"));
  queue::declare_options o;
  o.queue.dead_letter_target = "dlq";
  REQUIRE_FALSE(b.declare(1, "source", o));
  REQUIRE_FALSE(b.publish(2, "source", "poison").first);
  std::optional<queue::message> m = b.get(3, "source");
  REQUIRE(m);
  REQUIRE_FALSE(b.settle(3, *m, settlement::reject));
  REQUIRE(b.run_until([&] { return b.status(1, "dlq").counters.ready == 1; }));
  // Only the leader that proposed the reject hands the message over, once: not the other
  // members, and not the nodes replaying their logs after a restart.
  b.restart_all();
  REQUIRE(b.run_until([&] { return b[1].queues().size() == 2; }));
  CHECK(b.status(1, "source").counters.ready == 0);
  b.ioc.run_for(std::chrono::milliseconds(50));
  CHECK(b.status(2, "dlq").counters.ready == 1);
  m = b.get(2, "dlq");
  REQUIRE(m);
  CHECK(text(m->body) == "poison");
}

TEST_CASE("an at-least-once dead letter leaves its queue only once its target has it",
          "[queue][service][dead-letter][at-least-once]") {
  test::scratch dir("queue_service_dlx_at_least_once");
  brokers b(dir.path);
  queue::declare_options o;
  o.queue.dead_letter_target = "dlq";
  o.queue.dead_letter = queue::dead_letter_strategy::at_least_once;
  REQUIRE_FALSE(b.declare(1, "source", o));
  REQUIRE_FALSE(b.publish(2, "source", "poison").first);
  std::optional<queue::message> m = b.get(3, "source");
  REQUIRE(m);
  REQUIRE_FALSE(b.settle(3, *m, settlement::reject));
  // The target does not exist yet: the hand-over fails, and the message waits in the source.
  b.ioc.run_for(std::chrono::milliseconds(30));
  queue::queue_info source = b.status(1, "source");
  CHECK(source.counters.dead_lettering == 1);
  CHECK(source.counters.ready == 0);
  REQUIRE_FALSE(b.declare(1, "dlq"));
  // The clock resumes the hand-over; the source lets the message go once the target has it.
  REQUIRE(b.run_until([&] { return b.status(1, "source").counters.dead_lettering == 0; }));
  const queue::queue_info target = b.status(2, "dlq");
  CHECK(target.counters.ready >= 1);  // at least once: a repeated hand-over may add a copy
  m = b.get(2, "dlq");
  REQUIRE(m);
  CHECK(text(m->body) == "poison");
}

TEST_CASE("the consumers of a node cut off past the grace period are detached, and told",
          "[queue][service][consumer-lost]") {
  test::scratch dir("queue_service_consumer_lost");
  brokers b(dir.path);
  REQUIRE_FALSE(b.declare(1, "q"));
  std::vector<queue::message> received;
  bool cancelled = false;
  queue::consumer_options o;
  o.prefetch = 1;
  o.on_cancelled = [&] { cancelled = true; };
  b.consume(3, "q", o, received);
  REQUIRE_FALSE(b.publish(1, "q", "held").first);
  REQUIRE(b.run_until([&] { return received.size() == 1; }));
  // Node 3 is cut off; the others' transports report it lost once what it sent before has
  // arrived (anything heard from a node means it is back, as on a new connection).
  for (raft::node_id other : {1, 2}) b.network.set_link(3, other, false);
  test::run_queued(b.ioc);
  for (raft::node_id other : {1, 2}) b[other].peer_lost(3);
  // Past the grace period, the queue's leader (1 or 2) detaches node 3's consumer: the message
  // it held returns, counted as delivered before.
  std::optional<queue::message> m;
  for (int i = 0; i < 1000 && !m; ++i) {
    // If node 3 led the queue, a get may meet the leader change and end with outcome_unknown
    // (the service gives back whatever such a get took): ask again.
    auto [ec, got] = b.call<std::optional<queue::message>>([&](auto h) { b[1].async_get("q", h); });
    if (ec) REQUIRE(ec == errc::outcome_unknown);
    m = std::move(got);
    if (!m) b.ioc.run_for(std::chrono::milliseconds(10));
  }
  REQUIRE(m);
  CHECK(text(m->body) == "held");
  CHECK(m->redelivered);
  CHECK_FALSE(cancelled);
  // Back on the network, node 3 learns its consumer was detached and says so.
  for (raft::node_id other : {1, 2}) b.network.set_link(3, other, true);
  REQUIRE(b.run_until([&] { return cancelled; }));
  CHECK(received.size() == 1);
}

TEST_CASE("a coroutine receives a consumer's deliveries as an awaitable stream",
          "[queue][service][consume][awaitable]") {
  test::scratch dir("queue_service_awaitable");
  brokers b(dir.path);
  REQUIRE_FALSE(b.declare(1, "stream"));
  queue::subscription sub(b.ioc.get_executor());
  auto [ec, consumer] = b.call<queue::consumer_id>(
      [&](auto h) { b[2].async_consume("stream", {}, sub.handler(), sub.executor(), h); });
  REQUIRE_FALSE(ec);
  std::vector<std::string> got;
  bool ended = false;
  asio::co_spawn(
      b.ioc,
      [&]() -> asio::awaitable<void> {
        for (;;) {
          auto [e, m] = co_await sub.async_receive(asio::use_awaitable);
          if (e) break;
          got.push_back(text(m.body));
          // Settle through the same service; the ids are the consumer's own. (No temporaries
          // inside co_await expressions: GCC 12 may destroy them twice.)
          std::vector<queue::message_id> ids{m.id};
          std::string name = "stream";
          const std::error_code se = co_await b[2].async_settle(
              std::move(name), m.consumer, settlement::ack, std::move(ids), asio::use_awaitable);
          CHECK_FALSE(se);
        }
        ended = true;
      },
      asio::detached);
  for (int i = 0; i < 3; ++i) {
    REQUIRE_FALSE(b.publish(1, "stream", "m" + std::to_string(i)).first);
  }
  REQUIRE(b.run_until([&] { return got.size() == 3; }));
  CHECK(got == std::vector<std::string>{"m0", "m1", "m2"});
  sub.close();
  REQUIRE(b.run_until([&] { return ended; }));
  CHECK(b.status(1, "stream").counters.unacked == 0);
}

TEST_CASE("a growing backlog is snapshot at least every snapshot_tail entries",
          "[queue][service][snapshot]") {
  // Without the bound, a backlog of 400 would have had its last snapshot near index 256 (each
  // time it doubled), leaving some 150 entries for a restart to read after it.
  test::scratch dir("queue_service_snapshot_tail");
  brokers b(dir.path, {}, 8, 32);
  REQUIRE_FALSE(b.declare(1, "q"));
  for (int i = 0; i < 400; ++i) REQUIRE_FALSE(b.publish(1, "q", "backlog").first);
  const std::uint64_t group = b[1].queues().at(0).group;
  const raft::node_id leader = b.status(1, "q").leader;
  REQUIRE(leader != raft::no_node);
  // The log holds the 400 enqueues and a few leader no-ops; its newest snapshot is near its end.
  std::uint64_t newest = 0;
  const std::string g =
      dir.path + "/node-" + std::to_string(leader) + "/group-" + std::to_string(group);
  for (const auto& f : std::filesystem::directory_iterator(g)) {
    const std::string name = f.path().filename().string();
    if (name.rfind("snap-", 0) == 0)
      newest = std::max<std::uint64_t>(newest, std::stoull(name.substr(5, 20)));
  }
  CHECK(newest >= 400 - 32 - 8);
}

TEST_CASE("a long-unacknowledged message does not pin a queue's log, and a lagger gets it",
          "[queue][service][bounded-disk]") {
  test::scratch dir("queue_service_bounded");
  storage::file_log_options wal;
  wal.segment_bytes = 64 << 10;
  brokers b(dir.path, wal, 64);
  REQUIRE_FALSE(b.declare(1, "q"));
  REQUIRE_FALSE(b.publish(1, "q", "the old one").first);
  const queue::queue_info info = b.status(1, "q");
  const std::uint64_t group = b[1].queues().at(0).group;
  const raft::node_id leader = info.leader;
  REQUIRE(leader != raft::no_node);
  const raft::node_id holder = leader % 3 + 1;
  const raft::node_id lagger = holder % 3 + 1;
  const auto node_dir = [&](raft::node_id id) { return dir.path + "/node-" + std::to_string(id); };
  // The holder takes the first message and keeps it unacknowledged; the lagger is away.
  std::optional<queue::message> old = b.get(holder, "q");
  REQUIRE(old);
  b.close(lagger);
  // Some 480 KiB of messages come and go (purged), ten times the live data's worth of segments.
  const std::string kib(1024, 'x');
  for (int round = 0; round < 6; ++round) {
    for (int i = 0; i < 80; ++i) REQUIRE_FALSE(b.publish(leader, "q", kib).first);
    REQUIRE_FALSE(
        std::get<0>(b.call<std::uint64_t>([&](auto h) { b[holder].async_purge("q", h); })));
  }
  for (int i = 0; i < 70; ++i) REQUIRE_FALSE(b.publish(holder, "q", "small").first);
  CHECK(has_snapshot(node_dir(leader), group));
  CHECK(wal_bytes(node_dir(leader)) < 300 * 1024);
  CHECK(wal_bytes(node_dir(holder)) < 300 * 1024);
  // The lagger is behind the leader's log start: it receives the snapshot and, with it, the
  // old message's entry. It keeps it across a restart.
  b.open(lagger);
  REQUIRE(b.run_until([&] { return has_snapshot(node_dir(lagger), group); }));
  b.close(lagger);
  b.open(lagger);
  // The leader goes; the old message returns (requeued) and the lagger serves it.
  b.close(leader);
  // A settle is not repeated on an unknown outcome (a repeated requeue would count twice): wait
  // for the new leader first.
  REQUIRE(b.run_until([&] {
    auto [ec, now] = b.call<queue::queue_info>([&](auto h) { b[holder].async_status("q", h); });
    return !ec && now.leader != raft::no_node && now.leader != leader;
  }));
  REQUIRE_FALSE(b.settle(holder, *old, settlement::requeue));
  std::optional<queue::message> again = b.get(lagger, "q");
  REQUIRE(again);
  CHECK(again->id == old->id);
  CHECK(text(again->body) == "the old one");
  CHECK(again->redelivered);
}

TEST_CASE("a consumer on a member that fell behind a snapshot still gets what it holds",
          "[queue][service][bounded-disk]") {
  test::scratch dir("queue_service_restored");
  brokers b(dir.path, {}, 16);
  REQUIRE_FALSE(b.declare(1, "q"));
  const raft::node_id leader = b.status(1, "q").leader;
  REQUIRE(leader != raft::no_node);
  const raft::node_id away = leader % 3 + 1;
  std::vector<queue::message> received;
  queue::consumer_options o;
  o.prefetch = 100;
  b.consume(away, "q", o, received);
  // The consumer's node is cut off: the others assign it messages and compact their logs past
  // everything it has, so it catches up from a snapshot that skips those deliveries.
  b.network.detach(away);
  for (int i = 0; i < 40; ++i) {
    REQUIRE_FALSE(b.publish(leader, "q", "m" + std::to_string(i)).first);
  }
  CHECK(b.status(leader, "q").counters.unacked == 40);
  b.network.attach_node(away, b.ioc.get_executor(), [&b, away](transport::group_message gm) {
    b[away].deliver(std::move(gm));
  });
  REQUIRE(b.run_until([&] { return received.size() == 40; }));
  // Those the snapshot covered come again from the restored state, marked redelivered.
  CHECK(has_snapshot(dir.path + "/node-" + std::to_string(away), b[1].queues().at(0).group));
  std::set<std::string> bodies;
  std::size_t again = 0;
  for (const queue::message& m : received) {
    bodies.insert(text(m.body));
    if (m.redelivered) ++again;
  }
  CHECK(again > 0);
  CHECK(bodies.size() == 40);
  CHECK(bodies.contains("m0"));
  CHECK(bodies.contains("m39"));
  for (const queue::message& m : received) REQUIRE_FALSE(b.settle(away, m, settlement::ack));
  CHECK(b.status(leader, "q").counters.unacked == 0);
}

namespace {

std::error_code declare_group(brokers& b, raft::node_id at, const std::string& group,
                              const std::vector<std::string>& names, queue::queue_options o = {}) {
  std::vector<queue::group_member> queues;
  for (const std::string& n : names) queues.push_back({n, o});
  return std::get<0>(
      b.call<>([&](auto h) { b[at].async_declare_group(group, 3, std::move(queues), h); }));
}

std::pair<std::error_code, queue::publish_outcome> publish_fanout(
    brokers& b, raft::node_id at, const std::vector<std::string>& queues, const std::string& body) {
  queue::publish_options o;
  o.producer = 2'000'000;
  o.sequence = ++b.sequence;
  auto [ec, outcome] = b.call<queue::publish_outcome>(
      [&](auto h) { b[at].async_publish_fanout(queues, raft::shared_bytes(body), o, h); });
  return {ec, outcome};
}

}  // namespace

TEST_CASE("a message published once to a queue group reaches each queue it is routed to",
          "[queue][service][group]") {
  test::scratch dir("queue_service_group");
  brokers b(dir.path);
  REQUIRE_FALSE(b.declare(1, "dead"));
  queue::queue_options dlx;
  dlx.dead_letter_target = "dead";
  dlx.dead_letter = queue::dead_letter_strategy::at_least_once;
  REQUIRE_FALSE(declare_group(b, 1, "fan", {"a", "b", "c"}, dlx));
  // Again the same way: nothing; otherwise, or a name taken, a mismatch.
  CHECK_FALSE(declare_group(b, 2, "fan", {"a", "b", "c"}, dlx));
  CHECK(declare_group(b, 2, "fan", {"a", "b"}, dlx) == errc::queue_mismatch);
  CHECK(b.declare(3, "a") == errc::queue_mismatch);
  CHECK(declare_group(b, 3, "empty", {}) == errc::invalid_options);

  auto [ec, outcome] = publish_fanout(b, 2, {"a", "c"}, "to a and c");
  REQUIRE_FALSE(ec);
  CHECK(outcome == queue::publish_outcome::accepted);
  REQUIRE_FALSE(b.publish(3, "b", "to b alone").first);
  // Queues of different groups, or a queue of none, take no fan-out.
  CHECK(publish_fanout(b, 1, {"a", "dead"}, "x").first == errc::invalid_options);
  CHECK(publish_fanout(b, 1, {"a", "nowhere"}, "x").first == errc::no_queue);

  std::vector<queue::message> received;
  queue::consumer_options co;
  co.prefetch = 10;
  b.consume(3, "a", co, received);
  REQUIRE(b.run_until([&] { return received.size() == 1; }));
  CHECK(received[0].queue == "a");
  CHECK(text(received[0].body) == "to a and c");
  std::optional<queue::message> from_c = b.get(1, "c");
  REQUIRE(from_c);
  CHECK(from_c->id == received[0].id);
  CHECK(text(from_c->body) == "to a and c");
  std::optional<queue::message> from_b = b.get(2, "b");
  REQUIRE(from_b);
  CHECK(text(from_b->body) == "to b alone");
  CHECK_FALSE(b.get(2, "b"));

  // Each queue settles on its own: a acks, c rejects (at least once into "dead"), b requeues.
  REQUIRE_FALSE(b.settle(3, received[0], settlement::ack));
  REQUIRE_FALSE(b.settle(1, *from_c, settlement::reject));
  REQUIRE_FALSE(b.settle(2, *from_b, settlement::requeue));
  CHECK(b.status(1, "a").counters.unacked == 0);
  CHECK(b.status(2, "b").counters.ready == 1);
  std::optional<queue::message> dead;
  REQUIRE(b.run_until([&] {
    dead = b.get(2, "dead");
    return dead.has_value();
  }));
  CHECK(text(dead->body) == "to a and c");
  REQUIRE(b.run_until([&] { return b.status(1, "c").counters.dead_lettering == 0; }));

  // A queue of a group is deleted with its group only.
  CHECK(std::get<0>(b.call<>([&](auto h) { b[1].async_delete("a", h); })) == errc::invalid_options);
  REQUIRE_FALSE(std::get<0>(b.call<>([&](auto h) { b[2].async_delete("fan", h); })));
  REQUIRE(b.run_until([&] {
    for (raft::node_id id = 1; id <= 3; ++id) {
      if (b[id].queues().size() != 1) return false;
    }
    return true;
  }));
  CHECK(b.publish(1, "a", "x").first == errc::no_queue);
}

TEST_CASE("a queue group keeps an entry while any of its queues holds it, across restarts",
          "[queue][service][group][bounded-disk][restart]") {
  test::scratch dir("queue_service_group_disk");
  storage::file_log_options wal;
  wal.segment_bytes = 64 << 10;
  brokers b(dir.path, wal, 64);
  b.cache_bytes = 0;  // every body is read back from the log
  for (raft::node_id id = 1; id <= 3; ++id) {
    b.close(id);
    b.open(id);
  }
  REQUIRE_FALSE(declare_group(b, 1, "pair", {"x", "y"}));
  REQUIRE_FALSE(publish_fanout(b, 1, {"x", "y"}, "the old one").first);
  // x is done with it at once; y's getter keeps it unacknowledged.
  std::optional<queue::message> in_x = b.get(2, "x");
  REQUIRE(in_x);
  REQUIRE_FALSE(b.settle(2, *in_x, settlement::ack));
  std::optional<queue::message> in_y = b.get(3, "y");
  REQUIRE(in_y);
  // Some 480 KiB go through both queues, one entry each.
  const std::string kib(1024, 'x');
  const std::uint64_t group = b[1].queues().at(0).group;
  for (int round = 0; round < 6; ++round) {
    for (int i = 0; i < 80; ++i) REQUIRE_FALSE(publish_fanout(b, 1, {"x", "y"}, kib).first);
    for (const char* q : {"x", "y"}) {
      REQUIRE_FALSE(std::get<0>(b.call<std::uint64_t>([&](auto h) { b[1].async_purge(q, h); })));
    }
  }
  const auto node_dir = [&](raft::node_id id) { return dir.path + "/node-" + std::to_string(id); };
  for (raft::node_id id = 1; id <= 3; ++id) {
    CHECK(has_snapshot(node_dir(id), group));
    CHECK(wal_bytes(node_dir(id)) < 300 * 1024);
  }
  b.restart_all();
  REQUIRE(b.run_until([&] { return b[1].queues().size() == 2; }));
  // The getter was node 3's earlier life: its message returns to y, and only to y.
  CHECK(b.released(1, "y").ready == 1);
  std::optional<queue::message> again = b.get(2, "y");
  REQUIRE(again);
  CHECK(again->id == in_y->id);
  CHECK(text(again->body) == "the old one");
  CHECK(again->redelivered);
  CHECK(b.status(1, "x").counters.ready == 0);
}
