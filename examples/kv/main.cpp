// quorum-kv: a replicated key-value store, one process per node, built only on the public API:
// a runtime::node with one group over a shared WAL on disk and the authenticated TCP transport
// between nodes, and a line protocol for clients on a second port.
//
//   quorum-kv serve --id 1 --cluster 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103
//                   --client 127.0.0.1:7201 --data DIR --secret-file FILE
//   quorum-kv client 127.0.0.1:7201 PUT key value | GET key | STATUS
//
// Client lines and answers:
//   PUT key value -> OK <index>        (acknowledged: applied on a majority's durable logs)
//   GET key       -> VALUE <v> | NONE  (linearizable: ReadIndex through the leader)
//   STATUS        -> STATUS node <id> leader <id> applied <index>
//   errors        -> NOT_LEADER <hint> | ERR <reason>
// `client` prints the answer and exits 0 for OK, VALUE, NONE and STATUS, 1 otherwise.
#include <quorum/runtime/node.hpp>
#include <quorum/runtime/tcp_transport.hpp>
#include <quorum/storage/file_system.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <fmt/core.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace quorum;

namespace {

/** The replicated state: "key=value" commands; snapshots are "key=value" lines. */
struct kv_machine {
  std::map<std::string, std::string> data;

  std::string apply(const raft::entry& e) {
    const std::string s = e.payload.to_string();
    const auto eq = s.find('=');
    if (eq == std::string::npos) return "ignored";
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
    std::istringstream in(bytes.to_string());
    for (std::string line; std::getline(in, line);) {
      const auto eq = line.find('=');
      if (eq != std::string::npos) data[line.substr(0, eq)] = line.substr(eq + 1);
    }
  }
};

using kv_node = runtime::node<kv_machine, runtime::tcp_transport>;

void say(const std::string& line) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now).count();
  fmt::print(stderr, "[{}.{:03}] {}\n", ms / 1000, ms % 1000, line);
  std::fflush(stderr);
}

tcp::endpoint parse_endpoint(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) throw std::invalid_argument("expected host:port, got " + text);
  return {asio::ip::make_address(text.substr(0, colon)),
          static_cast<std::uint16_t>(std::stoul(text.substr(colon + 1)))};
}

struct serve_options {
  raft::node_id id = 0;
  std::map<raft::node_id, tcp::endpoint> cluster;
  tcp::endpoint client;
  std::string data;
  std::string secret_file;
};

serve_options parse_serve(int argc, char** argv) {
  serve_options o;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    const std::string value = argv[i + 1];
    if (key == "--id") {
      o.id = std::stoull(value);
    } else if (key == "--cluster") {
      std::istringstream in(value);
      for (std::string item; std::getline(in, item, ',');) {
        const auto eq = item.find('=');
        if (eq == std::string::npos)
          throw std::invalid_argument("expected id=host:port in --cluster");
        o.cluster[std::stoull(item.substr(0, eq))] = parse_endpoint(item.substr(eq + 1));
      }
    } else if (key == "--client") {
      o.client = parse_endpoint(value);
    } else if (key == "--data") {
      o.data = value;
    } else if (key == "--secret-file") {
      o.secret_file = value;
    } else {
      throw std::invalid_argument("unknown option " + key);
    }
  }
  if (o.id == 0 || !o.cluster.contains(o.id) || o.data.empty() || o.secret_file.empty() ||
      o.client.port() == 0) {
    throw std::invalid_argument(
        "serve needs --id, --cluster (including the id), --client, --data and --secret-file");
  }
  return o;
}

std::vector<std::byte> read_secret(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument("cannot read the secret file " + path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  std::vector<std::byte> secret;
  for (char c : text) secret.push_back(static_cast<std::byte>(c));
  return secret;
}

/** One client connection: a line in, a line out. */
asio::awaitable<void> session(tcp::socket socket, kv_node::replica_type& replica,
                              raft::node_id self) {
  asio::streambuf buffer(64 << 10);  // a line longer than this ends the session
  try {
    for (;;) {
      const std::size_t n =
          co_await asio::async_read_until(socket, buffer, '\n', asio::use_awaitable);
      std::string line(asio::buffers_begin(buffer.data()),
                       asio::buffers_begin(buffer.data()) + static_cast<std::ptrdiff_t>(n));
      buffer.consume(n);
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
      std::istringstream in(line);
      std::string verb, key, value;
      in >> verb >> key;
      std::getline(in >> std::ws, value);
      std::string answer;
      if (verb == "PUT" && !key.empty() && key.find('=') == std::string::npos) {
        // No temporaries inside co_await expressions: GCC 12 may destroy them twice.
        raft::shared_bytes command(key + "=" + value);
        auto [ec, r] = co_await replica.async_propose(std::move(command), asio::use_awaitable);
        if (!ec) {
          answer = fmt::format("OK {}", r.index);
        } else if (ec == errc::not_leader) {
          answer = fmt::format("NOT_LEADER {}", r.leader_hint);
        } else {
          answer = "ERR " + ec.message();
        }
      } else if (verb == "GET" && !key.empty()) {
        kv_node::replica_type::query_function query = [key](const kv_machine& m) {
          auto it = m.data.find(key);
          return it == m.data.end() ? std::string("\n") : it->second;
        };
        auto [ec, v] = co_await replica.async_read(std::move(query), asio::use_awaitable);
        if (ec) {
          answer = "ERR " + ec.message();
        } else {
          answer = v == "\n" ? "NONE" : "VALUE " + v;
        }
      } else if (verb == "STATUS") {
        answer = fmt::format("STATUS node {} leader {} applied {}", self, replica.leader(),
                             replica.applied());
      } else {
        answer = "ERR expected PUT key value, GET key or STATUS";
      }
      answer += "\n";
      co_await asio::async_write(socket, asio::buffer(answer), asio::use_awaitable);
    }
  } catch (const std::exception&) {
    // The client went away (or sent a line over the limit): nothing to clean up.
  }
}

asio::awaitable<void> listen(tcp::acceptor& acceptor, kv_node::replica_type& replica,
                             raft::node_id self) {
  for (;;) {
    tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
    asio::co_spawn(acceptor.get_executor(), session(std::move(socket), replica, self),
                   asio::detached);
  }
}

int serve(int argc, char** argv) {
  const serve_options o = parse_serve(argc, argv);
  asio::io_context ioc;
  storage::posix_file_system fs;
  storage::shared_wal wal(fs, o.data);  // throws, naming file and offset, on damage

  runtime::tcp_settings ts;
  ts.self = o.id;
  ts.credentials.cluster_id = 0x6b76;  // "kv"
  ts.credentials.secret = read_secret(o.secret_file);
  ts.listen = o.cluster.at(o.id);
  for (const auto& [id, endpoint] : o.cluster) {
    if (id != o.id) ts.peers[id] = endpoint;
  }
  ts.log = say;
  std::unique_ptr<kv_node> node;
  runtime::tcp_transport transport(
      ioc.get_executor(), ts, [&node](transport::group_message m) { node->deliver(std::move(m)); });

  runtime::node_settings ns;
  ns.self = o.id;
  // An idle store costs nothing: the group quiesces, and the transport's keepalives (and its
  // reports of lost peers) take over noticing a dead leader.
  ns.raft.quiesce = true;
  transport.on_peer_lost([&node](raft::node_id peer) { node->peer_lost(peer); });
  ns.replica.snapshot_every = 1000;
  ns.replica.snapshot_trailing = 100;
  node = std::make_unique<kv_node>(std::vector<asio::any_io_executor>{ioc.get_executor()}, wal,
                                   transport, ns);
  raft::membership members;
  for (const auto& [id, endpoint] : o.cluster) members.voters.push_back(id);
  auto& replica = node->add_group(1, members, std::make_unique<kv_machine>());
  replica.on_leadership([self = o.id](raft::node_id leader, raft::term_t term) {
    if (leader == raft::no_node) {
      say(fmt::format("node {}: no leader known (term {})", self, term));
    } else {
      say(fmt::format("node {}: node {} is the leader (term {}){}", self, leader, term,
                      leader == self ? ", this node" : ""));
    }
  });
  transport.start();

  tcp::acceptor clients(ioc, o.client);
  asio::co_spawn(ioc, listen(clients, replica, o.id), asio::detached);
  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    say(fmt::format("node {}: stopping", o.id));
    node->stop();
    transport.stop();
    clients.close();
    ioc.stop();
  });
  say(fmt::format("node {}: serving peers on {}:{}, clients on {}:{}, data in {}", o.id,
                  ts.listen.address().to_string(), ts.listen.port(), o.client.address().to_string(),
                  o.client.port(), o.data));
  ioc.run();
  return 0;
}

int client(int argc, char** argv) {
  if (argc < 4) throw std::invalid_argument("client needs host:port and a command");
  std::string line;
  for (int i = 3; i < argc; ++i) line += std::string(i > 3 ? " " : "") + argv[i];
  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect(parse_endpoint(argv[2]));
  asio::write(socket, asio::buffer(line + "\n"));
  asio::streambuf buffer;
  const std::size_t n = asio::read_until(socket, buffer, '\n');
  std::string answer(asio::buffers_begin(buffer.data()),
                     asio::buffers_begin(buffer.data()) + static_cast<std::ptrdiff_t>(n) - 1);
  fmt::print("{}\n", answer);
  for (const char* ok : {"OK", "VALUE", "NONE", "STATUS"}) {
    if (answer.rfind(ok, 0) == 0) return 0;
  }
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "serve") return serve(argc, argv);
    if (mode == "client") return client(argc, argv);
    fmt::print(stderr,
               "usage: quorum-kv serve --id N --cluster ID=HOST:PORT,... --client HOST:PORT "
               "--data DIR --secret-file FILE\n"
               "       quorum-kv client HOST:PORT PUT key value | GET key | STATUS\n");
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "quorum-kv: {}\n", e.what());
    return 2;
  }
}
