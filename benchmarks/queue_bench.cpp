// queue_bench: quorum queues end to end, and the memory their metadata takes.
//
//   queue_bench [--dir DIR] [--seconds S] [--runs N] [--backlog N,N,...] [--node-backlog N]
//               [--disk-rounds N] [--fanout N] [--only SECTION] [--node-dir DIR]
//               [--restart-only] [--quick]
//
// 1. Publish with confirms: three queue::service nodes in one process, each on its own
//    io_context thread with its own shared WAL (fdatasync on every sync) in DIR on the real
//    disk, over TCP on loopback (authenticated). One queue with 3 replicas; a publisher on the
//    queue leader's node keeps `window` publishes of 1 KiB in flight (ack level majority: a
//    confirm means a majority has the message on disk). Windows 1, 64, 1,024.
// 2. Consume and ack: the queue is filled, then a consumer (prefetch 1,024) on the leader's
//    node acks every message it receives, in batches of 64 ids per settle.
// 3. Memory per backlog message: a queue::state_machine is fed N enqueues of 1 KiB messages
//    (bodies stay in the log, so only metadata counts); the growth of the process's resident
//    set divided by N. Then the time to restore that state from its snapshot.
// 4. A whole node: a one-node service (no body cache) is filled with N messages; the growth of
//    its resident set per message (WAL index + queue metadata), then the time to close it, open
//    it again and see its queue report all N (WAL replay and the queue's log applied again).
//    --node-dir DIR keeps the node there; --restart-only then measures restarts of what a
//    run left there (each run one restart), without filling it again.
// 5. Bounded disk: a one-node service holds one message unacknowledged (taken with get) while
//    --disk-rounds rounds of 100,000 messages of 1 KiB are published and consumed; the bytes
//    of its WAL directory (segments and snapshots) after each round, against the bytes of
//    messages written so far.
// 6. Fan-out: each of --fanout messages of 1 KiB goes to K = 10 queues (3 replicas each, the
//    cluster of 1.), either as one publish to a queue group of the 10 (one log entry) or as
//    10 publishes to 10 queues of their own, 64 messages in flight. The bytes the process
//    wrote to storage meanwhile (/proc/self/io write_bytes, all three nodes), and the rate.
// --only publish|consume|memory|node|disk|fanout runs one section.
// Medians of --runs runs. Prints a table; the figures in benchmarks/README.md come from here.
#include <quorum/queue/service.hpp>
#include <quorum/queue/state_machine.hpp>
#include <quorum/runtime/tcp_transport.hpp>
#include <quorum/storage/file_system.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <fmt/core.h>

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace quorum;
using clock_type = std::chrono::steady_clock;
using service = queue::service<runtime::tcp_transport>;

namespace {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

/** Resident set size of this process, in bytes (from /proc/self/statm), after the allocator
 *  gave back what earlier cases freed (or it would be counted, or reused unseen). */
std::uint64_t rss_bytes() {
  malloc_trim(0);
  std::ifstream statm("/proc/self/statm");
  std::uint64_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

const std::string secret = "queue_bench cluster secret, 32 bytes";

/** `n` queue services on their own threads over TCP loopback, each with a WAL under `dir`. */
class bench_cluster {
 public:
  bench_cluster(const std::string& dir, int n,
                std::uint64_t cache_bytes = std::uint64_t{64} << 20) {
    std::vector<raft::node_id> ids;
    for (int i = 1; i <= n; ++i) ids.push_back(static_cast<raft::node_id>(i));
    for (int i = 1; i <= n; ++i) {
      contexts_.push_back(std::make_unique<asio::io_context>());
      guards_.emplace_back(contexts_.back()->get_executor());
      auto ex = contexts_.back()->get_executor();
      wals_.push_back(
          std::make_unique<storage::shared_wal>(fs_, dir + "/node-" + std::to_string(i)));
      runtime::tcp_settings t;
      t.self = static_cast<raft::node_id>(i);
      t.credentials.cluster_id = 1;
      for (char c : secret) t.credentials.secret.push_back(static_cast<std::byte>(c));
      const std::size_t at = tcp_.size();
      tcp_.push_back(std::make_unique<runtime::tcp_transport>(
          ex, t, [this, at](transport::group_message m) { services_[at]->deliver(std::move(m)); }));
      tcp_.back()->on_peer_lost([this, at](raft::node_id p) { services_[at]->peer_lost(p); });
      tcp_.back()->start();
      queue::service_settings s;
      s.self = static_cast<raft::node_id>(i);
      s.cluster = ids;
      s.raft.seed = static_cast<std::uint64_t>(i);
      s.replica.tick = std::chrono::milliseconds(10);
      s.body_cache_bytes = cache_bytes;
      services_.push_back(std::make_unique<service>(std::vector<asio::any_io_executor>{ex},
                                                    *wals_.back(), *tcp_.back(), s));
    }
    for (int a = 0; a < n; ++a) {
      for (int b = 0; b < n; ++b) {
        if (a == b) continue;
        tcp_[static_cast<std::size_t>(a)]->add_peer(
            static_cast<raft::node_id>(b + 1),
            {asio::ip::make_address("127.0.0.1"), tcp_[static_cast<std::size_t>(b)]->local_port()});
      }
    }
    for (auto& s : services_) s->start();
    for (auto& c : contexts_) threads_.emplace_back([c = c.get()] { c->run(); });
  }

  ~bench_cluster() {
    for (auto& s : services_) s->stop();
    for (auto& t : tcp_) t->stop();
    for (auto& s : services_) {
      for (int i = 0; i < 5000 && !s->finished(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    guards_.clear();
    for (auto& c : contexts_) c->stop();
    for (auto& t : threads_) t.join();
  }

  service& operator[](std::size_t i) { return *services_.at(i); }
  std::size_t size() const { return services_.size(); }
  asio::any_io_executor executor(std::size_t i) { return contexts_.at(i)->get_executor(); }

  void declare(const std::string& name, std::uint32_t replicas) {
    std::promise<std::error_code> p;
    queue::declare_options o;
    o.replicas = replicas;
    services_[0]->async_declare(name, o, [&](std::error_code ec) { p.set_value(ec); });
    if (auto ec = p.get_future().get()) throw std::system_error(ec, "declare");
  }

  /** The node (index) leading queue `name`. */
  std::size_t leader(const std::string& name) {
    for (int attempt = 0; attempt < 200; ++attempt) {
      std::promise<queue::queue_info> p;
      services_[0]->async_status(
          name, [&](std::error_code, queue::queue_info i) { p.set_value(std::move(i)); });
      const queue::queue_info info = p.get_future().get();
      if (info.leader != raft::no_node) return info.leader - 1;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    throw std::runtime_error("no leader");
  }

  queue::queue_status counters(const std::string& name) {
    std::promise<queue::queue_info> p;
    services_[0]->async_status(
        name, [&](std::error_code, queue::queue_info i) { p.set_value(std::move(i)); });
    return p.get_future().get().counters;
  }

 private:
  storage::posix_file_system fs_;
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::vector<std::unique_ptr<storage::shared_wal>> wals_;
  std::vector<std::unique_ptr<runtime::tcp_transport>> tcp_;
  std::vector<std::unique_ptr<service>> services_;
  std::vector<std::thread> threads_;
};

struct publish_result {
  double rate = 0, p50 = 0, p99 = 0;
};

/** Keeps `window` publishes in flight from node `at` for `seconds`. */
publish_result publish_for(bench_cluster& c, std::size_t at, const std::string& name,
                           std::size_t payload, int window, double seconds) {
  const raft::shared_bytes body(std::string(payload, 'm'));
  std::atomic<bool> stopping{false};
  std::atomic<std::uint64_t> done{0}, failed{0};
  std::atomic<std::int64_t> outstanding{0};
  std::mutex m;
  std::vector<double> latencies;
  std::function<void()> issue = [&] {
    ++outstanding;
    const auto start = clock_type::now();
    c[at].async_publish(name, body, {}, [&, start](std::error_code ec, queue::publish_outcome) {
      if (ec) {
        ++failed;
      } else {
        ++done;
        std::lock_guard lock(m);
        latencies.push_back(
            std::chrono::duration<double, std::micro>(clock_type::now() - start).count());
      }
      if (!stopping.load()) issue();
      --outstanding;
    });
  };
  const auto t0 = clock_type::now();
  for (int w = 0; w < window; ++w) issue();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stopping = true;
  const double wall = std::chrono::duration<double>(clock_type::now() - t0).count();
  const std::uint64_t completed = done.load();
  while (outstanding.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  if (failed.load() > 0) fmt::print("  ({} publishes failed)\n", failed.load());
  std::lock_guard lock(m);
  return {static_cast<double>(completed) / wall, percentile(latencies, 0.5),
          percentile(latencies, 0.99)};
}

/** Publishes `count` messages from node `at`, `window` at a time. */
void fill(bench_cluster& c, std::size_t at, const std::string& name, std::size_t payload,
          std::uint64_t count, int window) {
  const raft::shared_bytes body(std::string(payload, 'f'));
  std::atomic<std::uint64_t> issued{0}, finished{0};
  std::function<void()> issue = [&] {
    if (issued.fetch_add(1) >= count) return;
    c[at].async_publish(name, body, {}, [&](std::error_code ec, queue::publish_outcome) {
      if (ec) throw std::system_error(ec, "publish");
      ++finished;
      issue();
    });
  };
  for (int w = 0; w < window; ++w) issue();
  while (finished.load() < count) std::this_thread::sleep_for(std::chrono::milliseconds(2));
}

/** Consumes and acks `count` messages on node `at`; returns messages per second. */
double consume(bench_cluster& c, std::size_t at, const std::string& name, std::uint64_t count) {
  std::atomic<std::uint64_t> acked{0};
  std::mutex m;
  std::vector<queue::message_id> batch;
  queue::consumer_id self = 0;
  std::promise<queue::consumer_id> attached;
  const auto t0 = clock_type::now();
  auto flush = [&](queue::consumer_id who, std::vector<queue::message_id> ids) {
    const auto n = ids.size();
    c[at].async_settle(name, who, queue::settlement::ack, std::move(ids),
                       [&, n](std::error_code ec) {
                         if (ec) throw std::system_error(ec, "ack");
                         acked += n;
                       });
  };
  std::uint64_t received = 0;
  c[at].async_consume(
      name, {1024, 0, {}},
      [&](queue::message msg) {
        std::vector<queue::message_id> ready;
        {
          std::lock_guard lock(m);
          batch.push_back(msg.id);
          ++received;
          if (batch.size() >= 64 || received == count) ready = std::exchange(batch, {});
        }
        // Deliveries may come before the attach completes: the message names its consumer.
        if (!ready.empty()) flush(msg.consumer, std::move(ready));
      },
      c.executor(at),
      [&](std::error_code ec, queue::consumer_id id) {
        if (ec) throw std::system_error(ec, "consume");
        attached.set_value(id);
      });
  self = attached.get_future().get();
  while (acked.load() < count) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  const double wall = std::chrono::duration<double>(clock_type::now() - t0).count();
  std::promise<void> cancelled;
  c[at].async_cancel(name, self, [&](std::error_code) { cancelled.set_value(); });
  cancelled.get_future().get();
  return static_cast<double>(count) / wall;
}

struct memory_result {
  double bytes_per_message = 0;
  double restore_seconds = 0;
};

/** Metadata of `count` backlog messages of 1 KiB in a queue state machine. */
memory_result metadata(std::uint64_t count) {
  const std::uint64_t before = rss_bytes();
  memory_result r;
  {
    auto sm = std::make_unique<queue::state_machine>();
    queue::command c;
    c.type = queue::command::kind::enqueue;
    c.size = 1024;
    for (std::uint64_t i = 1; i <= count; ++i) (void)sm->apply(i, c);
    r.bytes_per_message = static_cast<double>(rss_bytes() - before) / static_cast<double>(count);
    const raft::shared_bytes snapshot = sm->snapshot();
    sm.reset();
    queue::state_machine restored;
    const auto t0 = clock_type::now();
    if (!restored.restore(snapshot)) throw std::runtime_error("restore failed");
    r.restore_seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    if (restored.status().ready != count) throw std::runtime_error("restore lost messages");
  }
  return r;
}

/** Bytes of the files under `dir`. */
std::uint64_t dir_bytes(const std::string& dir) {
  std::uint64_t total = 0;
  for (const auto& f : std::filesystem::recursive_directory_iterator(dir)) {
    if (f.is_regular_file()) total += f.file_size();
  }
  return total;
}

/** One message held unacknowledged while `rounds` rounds of `per_round` messages come and go:
 *  prints the WAL's size on disk after each round. */
void bounded_disk(const std::string& dir, int rounds, std::uint64_t per_round) {
  std::filesystem::remove_all(dir);
  bench_cluster c(dir, 1, 0);
  c.declare("disk", 1);
  fill(c, 0, "disk", 1024, 1, 1);
  std::promise<std::error_code> got;
  c[0].async_get("disk", [&](std::error_code ec, std::optional<queue::message> m) {
    got.set_value(ec ? ec : m ? std::error_code{} : make_error_code(errc::no_queue));
  });
  if (auto ec = got.get_future().get()) throw std::system_error(ec, "get");
  fmt::print("\n{:<34} {:>14} {:>14}\n", "bounded disk (1 message held)", "written MiB",
             "on disk MiB");
  for (int round = 1; round <= rounds; ++round) {
    fill(c, 0, "disk", 1024, per_round, 1024);
    consume(c, 0, "disk", per_round);
    const double written =
        static_cast<double>(per_round * static_cast<std::uint64_t>(round) * 1024) / (1 << 20);
    fmt::print("{:<34} {:>14.0f} {:>14.1f}\n", fmt::format("after round {}", round), written,
               static_cast<double>(dir_bytes(dir)) / (1 << 20));
  }
  if (c.counters("disk").unacked != 1) throw std::runtime_error("the held message is gone");
}

/** A one-node service (no body cache) filled with `count` messages of `payload` bytes: the
 *  growth of the resident set per message, and the seconds it takes to open again and report
 *  them all. */
/** Bytes this process has caused to be written to storage (/proc/self/io). */
std::uint64_t written_bytes() {
  std::ifstream io("/proc/self/io");
  std::string key;
  std::uint64_t value = 0;
  while (io >> key >> value) {
    if (key == "write_bytes:") return value;
  }
  throw std::runtime_error("no write_bytes in /proc/self/io");
}

struct fanout_result {
  double bytes_per_message = 0;  // written to storage, all nodes, per message sent to K queues
  double rate = 0;               // messages (each to K queues) per second
};

/** `count` messages of 1 KiB, each to `k` queues: one fan-out publish to a queue group, or k
 *  publishes to queues of their own; `window` messages in flight. */
fanout_result fanout(const std::string& dir, bool grouped, int k, std::uint64_t count, int window) {
  std::filesystem::remove_all(dir);
  bench_cluster c(dir, 3);
  std::vector<std::string> names;
  for (int i = 0; i < k; ++i) names.push_back(fmt::format("q{}", i));
  if (grouped) {
    std::vector<queue::group_member> members;
    for (const std::string& n : names) members.push_back({n, {}});
    std::promise<std::error_code> p;
    c[0].async_declare_group("fan", 3, members, [&](std::error_code ec) { p.set_value(ec); });
    if (auto ec = p.get_future().get()) throw std::system_error(ec, "declare group");
  } else {
    for (const std::string& n : names) c.declare(n, 3);
  }
  for (const std::string& n : names) c.leader(n);  // every queue has elected
  const raft::shared_bytes body(std::string(1024, 'f'));
  std::atomic<std::uint64_t> issued{0}, finished{0};
  std::function<void()> issue = [&] {
    if (issued.fetch_add(1) >= count) return;
    auto one_done = [&](std::error_code ec, queue::publish_outcome) {
      if (ec) throw std::system_error(ec, "publish");
    };
    if (grouped) {
      c[0].async_publish_fanout(names, body, {}, [&, one_done](std::error_code ec, auto outcome) {
        one_done(ec, outcome);
        ++finished;
        issue();
      });
      return;
    }
    auto left = std::make_shared<std::atomic<int>>(k);
    for (const std::string& n : names) {
      c[0].async_publish(n, body, {}, [&, one_done, left](std::error_code ec, auto outcome) {
        one_done(ec, outcome);
        if (--*left > 0) return;
        ++finished;
        issue();
      });
    }
  };
  const std::uint64_t before = written_bytes();
  const auto t0 = clock_type::now();
  for (int w = 0; w < window; ++w) issue();
  while (finished.load() < count) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  const double wall = std::chrono::duration<double>(clock_type::now() - t0).count();
  return {static_cast<double>(written_bytes() - before) / static_cast<double>(count),
          static_cast<double>(count) / wall};
}

memory_result node_backlog(const std::string& dir, std::uint64_t count, std::size_t payload,
                           bool restart_only) {
  memory_result r;
  if (!restart_only) {
    std::filesystem::remove_all(dir);
    bench_cluster c(dir, 1, 0);
    c.declare("backlog", 1);
    const std::uint64_t before = rss_bytes();
    fill(c, 0, "backlog", payload, count, 1024);
    r.bytes_per_message = static_cast<double>(rss_bytes() - before) / static_cast<double>(count);
  }
  const auto t0 = clock_type::now();
  bench_cluster c(dir, 1, 0);
  while (c.counters("backlog").ready != count) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  r.restore_seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = std::filesystem::current_path().string() + "/queue_bench.data";
  double seconds = 3;
  int runs = 3;
  std::vector<std::uint64_t> backlogs{1'000'000, 10'000'000};
  std::uint64_t node_count = 1'000'000;
  int disk_rounds = 5;
  std::uint64_t fanout_messages = 20'000;
  std::string only;
  std::string node_dir;  // empty: a fresh one under --dir, removed afterwards
  bool restart_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--dir") {
      dir = next();
    } else if (a == "--seconds") {
      seconds = std::stod(next());
    } else if (a == "--runs") {
      runs = std::stoi(next());
    } else if (a == "--backlog") {
      backlogs.clear();
      const std::string list = next();
      for (std::size_t at = 0; at < list.size();) {
        const auto comma = list.find(',', at);
        backlogs.push_back(std::stoull(list.substr(at, comma - at)));
        at = comma == std::string::npos ? list.size() : comma + 1;
      }
    } else if (a == "--node-backlog") {
      node_count = std::stoull(next());
    } else if (a == "--disk-rounds") {
      disk_rounds = std::stoi(next());
    } else if (a == "--fanout") {
      fanout_messages = std::stoull(next());
    } else if (a == "--only") {
      only = next();
    } else if (a == "--node-dir") {
      node_dir = next();
    } else if (a == "--restart-only") {
      restart_only = true;
    } else if (a == "--quick") {
      seconds = 1;
      runs = 1;
      backlogs = {100'000};
      node_count = 20'000;
      disk_rounds = 1;
      fanout_messages = 1'000;
    } else {
      fmt::print(stderr,
                 "usage: queue_bench [--dir DIR] [--seconds S] [--runs N] "
                 "[--backlog N,N] [--node-backlog N] [--disk-rounds N] [--fanout N] "
                 "[--only publish|consume|memory|node|disk|fanout] [--node-dir DIR] "
                 "[--restart-only] [--quick]\n");
      return 2;
    }
  }
  auto wanted = [&](const char* section) { return only.empty() || only == section; };
  fmt::print(
      "queue_bench: 3 nodes over TCP loopback, 1 queue x 3 replicas, 1 KiB messages, "
      "fsync on, medians of {} runs of {} s\n",
      runs, seconds);
  if (wanted("publish")) {
    fmt::print("\n{:<34} {:>12} {:>10} {:>10}\n", "publish (confirm: majority)", "msg/s", "p50 us",
               "p99 us");
    for (int window : {1, 64, 1024}) {
      std::vector<double> rate, p50, p99;
      for (int run = 0; run < runs; ++run) {
        std::filesystem::remove_all(dir);
        bench_cluster c(dir, 3);
        c.declare("bench", 3);
        const std::size_t leader = c.leader("bench");
        const publish_result r = publish_for(c, leader, "bench", 1024, window, seconds);
        rate.push_back(r.rate);
        p50.push_back(r.p50);
        p99.push_back(r.p99);
      }
      fmt::print("{:<34} {:>12.0f} {:>10.0f} {:>10.0f}\n", fmt::format("window {}", window),
                 median(rate), median(p50), median(p99));
    }
  }
  if (wanted("consume")) {
    std::vector<double> rate;
    const std::uint64_t count = static_cast<std::uint64_t>(20'000 * seconds);
    for (int run = 0; run < runs; ++run) {
      std::filesystem::remove_all(dir);
      bench_cluster c(dir, 3);
      c.declare("bench", 3);
      const std::size_t leader = c.leader("bench");
      fill(c, leader, "bench", 1024, count, 1024);
      rate.push_back(consume(c, leader, "bench", count));
    }
    fmt::print("{:<34} {:>12.0f}\n", fmt::format("consume + ack ({} msgs)", count), median(rate));
  }
  std::filesystem::remove_all(dir);
  if (wanted("memory")) {
    fmt::print("\n{:<34} {:>12} {:>12}\n", "backlog (state machine)", "B/message", "restore s");
    for (std::uint64_t n : backlogs) {
      const memory_result m = metadata(n);
      fmt::print("{:<34} {:>12.1f} {:>12.3f}\n", fmt::format("{} x 1 KiB", n), m.bytes_per_message,
                 m.restore_seconds);
    }
  }
  if (wanted("node")) {
    std::vector<double> per_message, restarts;
    for (int run = 0; run < runs; ++run) {
      const memory_result m = node_backlog(node_dir.empty() ? dir + "/backlog" : node_dir,
                                           node_count, 1024, restart_only);
      per_message.push_back(m.bytes_per_message);
      restarts.push_back(m.restore_seconds);
    }
    std::filesystem::remove_all(dir);
    fmt::print("\n{:<34} {:>12} {:>12}\n", "backlog (one node, WAL + queue)", "B/message",
               "restart s");
    fmt::print("{:<34} {:>12} {:>12.3f}\n", fmt::format("{} x 1 KiB", node_count),
               restart_only ? std::string("-") : fmt::format("{:.1f}", median(per_message)),
               median(restarts));
  }
  if (wanted("disk") && disk_rounds > 0) bounded_disk(dir + "/disk", disk_rounds, 100'000);
  if (wanted("fanout") && fanout_messages > 0) {
    constexpr int k = 10;
    fmt::print("\n{:<34} {:>12} {:>12}\n",
               fmt::format("fan-out, K = {} ({} msgs)", k, fanout_messages), "written B/msg",
               "msg/s");
    double ratio[2] = {0, 0};
    for (bool grouped : {false, true}) {
      std::vector<double> bytes, rate;
      for (int run = 0; run < runs; ++run) {
        const fanout_result r = fanout(dir + "/fanout", grouped, k, fanout_messages, 64);
        bytes.push_back(r.bytes_per_message);
        rate.push_back(r.rate);
      }
      ratio[grouped ? 1 : 0] = median(bytes);
      fmt::print("{:<34} {:>12.0f} {:>12.0f}\n",
                 grouped ? "one queue group of 10" : fmt::format("{} queues of their own", k),
                 median(bytes), median(rate));
    }
    fmt::print("{:<34} {:>12.2f}\n", "bytes ratio (own / group)", ratio[0] / ratio[1]);
  }
  std::filesystem::remove_all(dir);
  return 0;
}
