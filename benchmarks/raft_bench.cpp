// raft_bench: replicated writes end to end. One process hosts every node of a cluster, each
// node on its own io_context thread with its own shared WAL (fdatasync on every sync) in a
// directory on the real disk, talking over the in-process transport or over TCP on loopback
// (authenticated connections). A driver keeps `window` proposals outstanding on each group's
// leader; a proposal completes once applied there, i.e. once a majority has it durable. Prints
// ops/s, MB/s, latency percentiles and the CPU the process used (cores busy), next to the disk's
// raw fdatasync latency and the loopback round trip measured in the same run; writes JSON.
//
//   raft_bench [--dir DIR] [--seconds S] [--runs N] [--json FILE] [--quick] [--idle-only]
//
// Cases: one group with 3 and 5 replicas x {in-process, TCP} x payload {32 B, 1 KiB, 16 KiB}
// x window {1, 1024}; then 100 and 1,000 groups on 3 nodes over TCP (aggregate throughput,
// 1 KiB, window 4 per group); then the CPU of 1,000 idle groups. Medians of --runs runs.
#include <quorum/runtime/local_network.hpp>
#include <quorum/runtime/node.hpp>
#include <quorum/runtime/tcp_transport.hpp>
#include <quorum/storage/file_system.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <fmt/core.h>

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace quorum;
using clock_type = std::chrono::steady_clock;

namespace {

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  return v[i];
}

double median(std::vector<double> v) {
  return percentile(std::move(v), 0.5);
}

/** The disk's fdatasync latency (microseconds: p50, p99) for 4 KiB appends. */
std::pair<double, double> fdatasync_us(const std::string& dir) {
  storage::posix_file_system fs;
  std::error_code ec;
  auto f = fs.open(dir + "/raw-sync", true, ec);
  if (ec) throw std::system_error(ec, "open");
  const std::vector<std::byte> block(4096, std::byte{1});
  std::vector<double> us;
  for (int i = 0; i < 300; ++i) {
    const auto start = clock_type::now();
    if ((ec = f->write_at(static_cast<std::uint64_t>(i) * block.size(), block)) ||
        (ec = f->sync())) {
      throw std::system_error(ec, "write");
    }
    us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - start).count());
  }
  std::filesystem::remove(dir + "/raw-sync");
  return {percentile(us, 0.5), percentile(us, 0.99)};
}

/** The loopback TCP round trip (microseconds, p50) of a 64-byte ping-pong. */
double loopback_rtt_p50_us() {
  asio::io_context ioc;
  asio::ip::tcp::acceptor acceptor(ioc, {asio::ip::make_address("127.0.0.1"), 0});
  std::thread echo([&] {
    asio::ip::tcp::socket s(ioc);
    acceptor.accept(s);
    s.set_option(asio::ip::tcp::no_delay(true));
    std::array<char, 64> buf{};
    boost::system::error_code ec;
    while (asio::read(s, asio::buffer(buf), ec) == buf.size())
      asio::write(s, asio::buffer(buf), ec);
  });
  asio::ip::tcp::socket c(ioc);
  c.connect(acceptor.local_endpoint());
  c.set_option(asio::ip::tcp::no_delay(true));
  std::array<char, 64> buf{};
  std::vector<double> us;
  for (int i = 0; i < 2000; ++i) {
    const auto start = clock_type::now();
    asio::write(c, asio::buffer(buf));
    asio::read(c, asio::buffer(buf));
    us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - start).count());
  }
  c.close();
  echo.join();
  return median(us);
}

struct counting_machine {
  std::uint64_t applied = 0;
  std::string apply(const raft::entry&) {
    ++applied;
    return {};
  }
};

const std::string secret = "raft_bench cluster secret, 32 bytes+";

/** Nodes 1..n, each on its own thread, with `groups` groups over Transport. */
template <class Transport>
class bench_cluster {
 public:
  using node_type = runtime::node<counting_machine, Transport>;

  bench_cluster(const std::string& dir, int n, int groups, std::chrono::milliseconds tick,
                bool quiesce = false)
      : n_(n) {
    std::filesystem::remove_all(dir);
    for (int i = 0; i < n; ++i) {
      contexts_.push_back(std::make_unique<asio::io_context>());
      guards_.emplace_back(contexts_.back()->get_executor());
    }
    raft::membership members;
    for (int i = 1; i <= n; ++i) members.voters.push_back(static_cast<raft::node_id>(i));
    for (int i = 1; i <= n; ++i) {
      auto ex = contexts_[static_cast<std::size_t>(i - 1)]->get_executor();
      wals_.push_back(
          std::make_unique<storage::shared_wal>(fs_, dir + "/node-" + std::to_string(i)));
      Transport& t = transport(i, ex);
      runtime::node_settings s;
      s.self = static_cast<raft::node_id>(i);
      s.raft.seed = static_cast<std::uint64_t>(i);
      s.replica.tick = tick;
      s.raft.quiesce = quiesce;
      nodes_.push_back(
          std::make_unique<node_type>(std::vector<asio::any_io_executor>{ex}, *wals_.back(), t, s));
    }
    wire();
    for (auto& node : nodes_) {
      for (int g = 1; g <= groups; ++g) {
        node->add_group(static_cast<std::uint64_t>(g), members,
                        std::make_unique<counting_machine>());
      }
    }
    for (auto& c : contexts_) threads_.emplace_back([c = c.get()] { c->run(); });
  }

  ~bench_cluster() {
    for (auto& node : nodes_) node->stop();
    stop_transports();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    guards_.clear();
    for (auto& c : contexts_) c->stop();
    for (auto& t : threads_) t.join();
  }

  /** The leader's replica of `group`, once all nodes agree on one (waits up to 10 s). */
  typename node_type::replica_type* leader(std::uint64_t group) {
    const auto deadline = clock_type::now() + std::chrono::seconds(10);
    while (clock_type::now() < deadline) {
      for (int i = 1; i <= n_; ++i) {
        auto* r = nodes_[static_cast<std::size_t>(i - 1)]->find(group);
        if (r->leader() == static_cast<raft::node_id>(i)) return r;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    throw std::runtime_error("no leader elected");
  }

 private:
  Transport& transport(int i, asio::any_io_executor ex);
  void wire();
  void stop_transports();

  int n_;
  storage::posix_file_system fs_;
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::vector<std::unique_ptr<storage::shared_wal>> wals_;
  std::vector<std::unique_ptr<runtime::tcp_transport>> tcp_;
  runtime::local_network local_;
  std::vector<std::unique_ptr<node_type>> nodes_;
  std::vector<std::thread> threads_;
};

template <>
runtime::local_network& bench_cluster<runtime::local_network>::transport(int,
                                                                         asio::any_io_executor) {
  return local_;
}
template <>
void bench_cluster<runtime::local_network>::wire() {
  for (int i = 1; i <= n_; ++i) {
    auto* node = nodes_[static_cast<std::size_t>(i - 1)].get();
    local_.attach_node(static_cast<raft::node_id>(i),
                       contexts_[static_cast<std::size_t>(i - 1)]->get_executor(),
                       [node](transport::group_message m) { node->deliver(std::move(m)); });
  }
}
template <>
void bench_cluster<runtime::local_network>::stop_transports() {
  for (int i = 1; i <= n_; ++i) local_.detach(static_cast<raft::node_id>(i));
}

template <>
runtime::tcp_transport& bench_cluster<runtime::tcp_transport>::transport(int i,
                                                                         asio::any_io_executor ex) {
  runtime::tcp_settings s;
  s.self = static_cast<raft::node_id>(i);
  s.credentials.cluster_id = 1;
  for (char c : secret) s.credentials.secret.push_back(static_cast<std::byte>(c));
  const std::size_t at = tcp_.size();
  tcp_.push_back(std::make_unique<runtime::tcp_transport>(
      ex, s, [this, at](transport::group_message m) { nodes_[at]->deliver(std::move(m)); }));
  tcp_.back()->on_peer_lost([this, at](raft::node_id peer) { nodes_[at]->peer_lost(peer); });
  tcp_.back()->start();
  return *tcp_.back();
}
template <>
void bench_cluster<runtime::tcp_transport>::wire() {
  for (int a = 0; a < n_; ++a) {
    for (int b = 0; b < n_; ++b) {
      if (a != b) {
        tcp_[static_cast<std::size_t>(a)]->add_peer(
            static_cast<raft::node_id>(b + 1),
            {asio::ip::make_address("127.0.0.1"), tcp_[static_cast<std::size_t>(b)]->local_port()});
      }
    }
  }
}
template <>
void bench_cluster<runtime::tcp_transport>::stop_transports() {
  for (auto& t : tcp_) t->stop();
}

struct result {
  double ops = 0, mbps = 0, p50 = 0, p99 = 0, p999 = 0, cores = 0;
  std::uint64_t errors = 0;
  std::string error;  // the last error's message, if any
};

/** Keeps `window` proposals of `payload` bytes in flight on each group's leader for `seconds`. */
template <class Transport>
result drive(bench_cluster<Transport>& cluster, int groups, std::size_t payload, int window,
             double seconds) {
  using replica_type = typename bench_cluster<Transport>::node_type::replica_type;
  struct lane {
    replica_type* leader;
    std::vector<double> latencies;  // touched on the leader's thread only
  };
  std::vector<lane> lanes;
  for (int g = 1; g <= groups; ++g)
    lanes.push_back({cluster.leader(static_cast<std::uint64_t>(g)), {}});
  const raft::shared_bytes body(std::string(payload, 'x'));
  std::atomic<bool> stopping{false};
  std::atomic<std::uint64_t> done{0}, errors{0};
  std::atomic<int> last_error{0};
  std::atomic<std::int64_t> outstanding{0};
  std::function<void(lane*)> issue = [&](lane* l) {
    ++outstanding;
    const auto start = clock_type::now();
    l->leader->async_propose(body, [&, l, start](std::error_code ec, runtime::propose_result) {
      if (ec) {
        ++errors;
        last_error = ec.value();
      } else {
        ++done;
        l->latencies.push_back(
            std::chrono::duration<double, std::micro>(clock_type::now() - start).count());
      }
      if (!stopping.load()) issue(l);
      --outstanding;
    });
  };
  const double cpu0 = cpu_seconds();
  const auto t0 = clock_type::now();
  for (auto& l : lanes) {
    for (int w = 0; w < window; ++w) issue(&l);
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stopping = true;
  const std::uint64_t completed = done.load();
  const double wall = std::chrono::duration<double>(clock_type::now() - t0).count();
  const double cpu = cpu_seconds() - cpu0;
  const auto deadline = clock_type::now() + std::chrono::seconds(20);
  while (outstanding.load() > 0 && clock_type::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::vector<double> all;
  for (auto& l : lanes) all.insert(all.end(), l.latencies.begin(), l.latencies.end());
  result r;
  r.ops = static_cast<double>(completed) / wall;
  r.mbps = r.ops * static_cast<double>(payload) / 1e6;
  r.p50 = percentile(all, 0.5);
  r.p99 = percentile(all, 0.99);
  r.p999 = percentile(all, 0.999);
  r.cores = cpu / wall;
  r.errors = errors.load();
  if (r.errors) r.error = make_error_code(static_cast<errc>(last_error.load())).message();
  return r;
}

template <class Transport>
result run_case(const std::string& dir, int replicas, int groups, std::size_t payload, int window,
                double seconds, int runs) {
  std::vector<result> all;
  for (int run = 0; run < runs; ++run) {
    bench_cluster<Transport> cluster(dir, replicas, groups, std::chrono::milliseconds(10));
    all.push_back(drive(cluster, groups, payload, window, seconds));
  }
  std::filesystem::remove_all(dir);
  auto med = [&](double result::*field) {
    std::vector<double> v;
    for (const auto& r : all) v.push_back(r.*field);
    return median(v);
  };
  result r;
  r.ops = med(&result::ops);
  r.mbps = med(&result::mbps);
  r.p50 = med(&result::p50);
  r.p99 = med(&result::p99);
  r.p999 = med(&result::p999);
  r.cores = med(&result::cores);
  for (const auto& x : all) {
    r.errors += x.errors;
    if (!x.error.empty()) r.error = x.error;
  }
  return r;
}

/** Cores busy while `groups` groups on 3 nodes over TCP sit idle (after one write each). */
double idle_cores(const std::string& dir, int groups, std::chrono::milliseconds tick, bool quiesce,
                  double seconds) {
  bench_cluster<runtime::tcp_transport> cluster(dir, 3, groups, tick, quiesce);
  drive(cluster, groups, 32, 1, 0.0);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const double cpu0 = cpu_seconds();
  const auto t0 = clock_type::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const double cores =
      (cpu_seconds() - cpu0) / std::chrono::duration<double>(clock_type::now() - t0).count();
  return cores;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "raft_bench.data";
  std::string json_path = "raft_bench.json";
  double seconds = 3;
  int runs = 3;
  bool quick = false;
  bool idle_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc)
      dir = argv[++i];
    else if (a == "--seconds" && i + 1 < argc)
      seconds = std::stod(argv[++i]);
    else if (a == "--runs" && i + 1 < argc)
      runs = std::stoi(argv[++i]);
    else if (a == "--json" && i + 1 < argc)
      json_path = argv[++i];
    else if (a == "--quick")
      quick = true;
    else if (a == "--idle-only")
      idle_only = true;
    else {
      fmt::print(stderr,
                 "usage: raft_bench [--dir DIR] [--seconds S] [--runs N] [--json FILE] [--quick] "
                 "[--idle-only]\n");
      return 2;
    }
  }
  if (quick) {
    seconds = 0.5;
    runs = 1;
  }
  std::filesystem::create_directories(dir);
  const auto [sync_us, sync_p99_us] = fdatasync_us(dir);
  const double rtt_us = loopback_rtt_p50_us();
  fmt::print(
      "raft_bench: fsync on (fdatasync per batch), {} s per run, medians of {} runs, "
      "directory {}\n",
      seconds, runs, dir);
  fmt::print(
      "disk fdatasync p50 {:.0f} us, p99 {:.0f} us (4 KiB); loopback TCP round trip p50 "
      "{:.0f} us\n\n",
      sync_us, sync_p99_us, rtt_us);
  std::string json = fmt::format(
      "{{\"fdatasync_p50_us\": {:.1f}, \"fdatasync_p99_us\": {:.1f}, \"loopback_rtt_p50_us\": "
      "{:.1f}, "
      "\"seconds\": {}, \"runs\": {}, \"cases\": [",
      sync_us, sync_p99_us, rtt_us, seconds, runs);
  bool first = true;
  auto report = [&](const char* transport_name, int replicas, int groups, std::size_t payload,
                    int window, const result& r) {
    fmt::print(
        "| {:>9} | {:>2} | {:>5} | {:>6} | {:>6} | {:>9.0f} | {:>7.1f} | {:>8.0f} | {:>8.0f} | "
        "{:>8.0f} | {:>5.2f} |{}\n",
        transport_name, replicas, groups, payload, window, r.ops, r.mbps, r.p50, r.p99, r.p999,
        r.cores, r.errors ? fmt::format(" {} failed ({})", r.errors, r.error) : "");
    std::fflush(stdout);
    json += fmt::format(
        "{}{{\"transport\": \"{}\", \"replicas\": {}, \"groups\": {}, "
        "\"payload\": {}, \"window\": {}, \"ops_per_s\": {:.1f}, \"mb_per_s\": {:.2f}, "
        "\"p50_us\": {:.1f}, \"p99_us\": {:.1f}, \"p999_us\": {:.1f}, "
        "\"cores\": {:.3f}, \"errors\": {}}}",
        first ? "" : ", ", transport_name, replicas, groups, payload, window, r.ops, r.mbps, r.p50,
        r.p99, r.p999, r.cores, r.errors);
    first = false;
  };
  fmt::print(
      "| transport | replicas | groups | payload B | window | ops/s | MB/s | p50 us | p99 us | "
      "p99.9 us | cores |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
  const std::vector<std::size_t> payloads =
      quick ? std::vector<std::size_t>{1024} : std::vector<std::size_t>{32, 1024, 16384};
  for (int replicas : idle_only ? std::vector<int>{} : std::vector<int>{3, 5}) {
    for (std::size_t payload : payloads) {
      for (int window : {1, 1024}) {
        report("in-proc", replicas, 1, payload, window,
               run_case<runtime::local_network>(dir + "/case", replicas, 1, payload, window,
                                                seconds, runs));
        report("tcp", replicas, 1, payload, window,
               run_case<runtime::tcp_transport>(dir + "/case", replicas, 1, payload, window,
                                                seconds, runs));
      }
    }
  }
  for (int groups : idle_only ? std::vector<int>{} : std::vector<int>{100, 1000}) {
    report("tcp", 3, groups, 1024, 4,
           run_case<runtime::tcp_transport>(dir + "/case", 3, groups, 1024, 4, seconds, runs));
  }
  json += "], \"idle\": [";
  fmt::print("\nidle groups (3 nodes in this process, TCP, after one write each):\n");
  first = true;
  for (const auto& [tick_ms, quiesce] :
       {std::pair(10, true), std::pair(10, false), std::pair(100, false)}) {
    std::vector<double> v;
    for (int run = 0; run < runs; ++run) {
      v.push_back(
          idle_cores(dir + "/idle", 1000, std::chrono::milliseconds(tick_ms), quiesce, seconds));
    }
    const double cores = median(v);
    fmt::print("  1000 groups, tick {} ms, {}: {:.3f} cores for 3 nodes, {:.3f} per node\n",
               tick_ms, quiesce ? "quiescing" : "heartbeat every tick", cores, cores / 3);
    json += fmt::format(
        "{}{{\"groups\": 1000, \"tick_ms\": {}, \"quiesce\": {}, \"cores_3_nodes\": {:.3f}}}",
        first ? "" : ", ", tick_ms, quiesce, cores);
    first = false;
  }
  json += "]}\n";
  std::filesystem::remove_all(dir);
  if (std::FILE* f = std::fopen(json_path.c_str(), "w")) {
    std::fputs(json.c_str(), f);
    std::fclose(f);
    fmt::print("\nJSON written to {}\n", json_path);
  }
  return 0;
}
