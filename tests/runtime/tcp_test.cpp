// Tests of the TCP transport on loopback: authenticated connections carrying group-tagged
// messages both ways, one per pair of nodes; refusal (with a log line) of a wrong secret and of
// an oversized length prefix; messages waiting for a peer that is down; the queue cap on a slow
// peer; coalesced writes; and three nodes over TCP that lose their leader. Real sockets and
// timers; every wait is bounded.
#include <quorum/runtime/node.hpp>
#include <quorum/runtime/tcp_transport.hpp>
#include <quorum/storage/file_system.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/write.hpp>

#include "../support/tls_certs.hpp"

#include <catch2/catch.hpp>

#include "../support/scratch.hpp"

#include <unistd.h>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>

using namespace quorum;
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

transport::cluster_credentials credentials(const std::string& secret, std::uint64_t id = 7) {
  transport::cluster_credentials c;
  c.cluster_id = id;
  for (char ch : secret) c.secret.push_back(static_cast<std::byte>(ch));
  return c;
}

const std::string good_secret = "a cluster secret of 32 bytes....";

/** Transports of nodes 1..n on one io_context, with what each received and logged. */
struct mesh {
  explicit mesh(int n, std::function<void(runtime::tcp_settings&)> adjust = {}) {
    for (raft::node_id id = 1; id <= static_cast<raft::node_id>(n); ++id) {
      runtime::tcp_settings s;
      s.self = id;
      s.credentials = credentials(good_secret);
      s.reconnect_min = std::chrono::milliseconds(5);
      s.reconnect_max = std::chrono::milliseconds(50);
      s.log = [this](const std::string& line) { logs.push_back(line); };
      if (adjust) adjust(s);
      nodes[id] = std::make_unique<runtime::tcp_transport>(
          ioc.get_executor(), s,
          [this, id](transport::group_message m) { received[id].push_back(std::move(m)); });
      nodes[id]->start();
    }
    for (auto& [a, ta] : nodes) {
      for (auto& [b, tb] : nodes) {
        if (a != b) ta->add_peer(b, {asio::ip::make_address("127.0.0.1"), tb->local_port()});
      }
    }
  }
  ~mesh() {
    for (auto& [id, t] : nodes) t->stop();
    ioc.run_for(std::chrono::milliseconds(20));
  }

  template <class Done>
  bool run_until(Done done) {
    for (int i = 0; i < 5000 && !done(); ++i) ioc.run_for(std::chrono::milliseconds(1));
    return done();
  }

  bool logged(const std::string& text) const {
    for (const auto& l : logs) {
      if (l.find(text) != std::string::npos) return true;
    }
    return false;
  }

  static transport::group_message message(raft::node_id from, raft::node_id to, std::uint64_t group,
                                          raft::index_t index = 1) {
    raft::message m;
    m.type = raft::message_type::heartbeat;
    m.from = from;
    m.to = to;
    m.term = 3;
    m.commit = index;
    return {group, m};
  }

  asio::io_context ioc;
  std::map<raft::node_id, std::unique_ptr<runtime::tcp_transport>> nodes;
  std::map<raft::node_id, std::vector<transport::group_message>> received;
  std::vector<std::string> logs;
};

}  // namespace

TEST_CASE("transports authenticate and carry group messages both ways, one connection per pair",
          "[runtime][tcp]") {
  mesh m(3);
  REQUIRE(m.run_until([&] {
    for (auto& [a, t] : m.nodes) {
      for (auto& [b, u] : m.nodes) {
        if (a != b && !t->connected(b)) return false;
      }
    }
    return true;
  }));
  for (raft::node_id from = 1; from <= 3; ++from) {
    for (raft::node_id to = 1; to <= 3; ++to) {
      if (from != to) m.nodes[from]->send(mesh::message(from, to, from * 10 + to));
    }
  }
  REQUIRE(m.run_until([&] {
    return m.received[1].size() == 2 && m.received[2].size() == 2 && m.received[3].size() == 2;
  }));
  for (auto& [to, got] : m.received) {
    for (const auto& gm : got) {
      CHECK(gm.message.to == to);
      CHECK(gm.group == gm.message.from * 10 + to);
      CHECK(gm == mesh::message(gm.message.from, to, gm.group));
    }
  }
  // Each pair shares one connection: three "connected" lines per side pair, no replacements.
  int connected_lines = 0;
  for (const auto& l : m.logs) connected_lines += l.find("connected to node") != std::string::npos;
  CHECK(connected_lines == 6);
  CHECK_FALSE(m.logged("replaced"));
}

TEST_CASE("a node with the wrong cluster secret is refused with a clear log line",
          "[runtime][tcp]") {
  mesh m(2, [](runtime::tcp_settings& s) {
    if (s.self == 1) s.credentials = credentials("not the cluster secret, 32 bytes");
  });
  m.nodes[1]->send(mesh::message(1, 2, 1));
  m.nodes[2]->send(mesh::message(2, 1, 1));
  // Node 1 finds that node 2's proof does not match its secret; node 2 sees node 1 give up
  // before authenticating. Each says so, once.
  REQUIRE(m.run_until([&] {
    return m.logged("node 1: refused the connection to 127.0.0.1:") &&
           m.logged("authentication failed: the peer's proof does not match our cluster secret") &&
           m.logged("node 2: the connection from 127.0.0.1:");
  }));
  m.ioc.run_for(std::chrono::milliseconds(100));
  int refusals = 0;
  for (const auto& l : m.logs) refusals += l.find("node 1: refused") != std::string::npos;
  CHECK(refusals == 1);  // not repeated on every redial
  m.ioc.run_for(std::chrono::milliseconds(50));
  CHECK(m.received.empty());
  CHECK_FALSE(m.nodes[1]->connected(2));
  CHECK(m.nodes[1]->statistics().connections_refused >= 1);
}

TEST_CASE("an oversized length prefix is refused before its body is read", "[runtime][tcp]") {
  mesh m(1);
  tcp::socket raw(m.ioc);
  raw.connect({asio::ip::make_address("127.0.0.1"), m.nodes[1]->local_port()});
  // A handshake frame header announcing a 4 GiB body, and nothing after it.
  std::array<std::uint8_t, transport::frame_header_bytes> header{1,    2,    0, 0, 0xff, 0xff,
                                                                 0xff, 0xff, 0, 0, 0,    0};
  asio::write(raw, asio::buffer(header));
  REQUIRE(m.run_until([&] { return m.logged("frame longer than the cap"); }));
  // The transport closed the connection: reading ends at once.
  std::array<char, 16> buf{};
  boost::system::error_code ec;
  m.run_until([&] { return raw.available(ec) == 0; });
  const std::size_t n = raw.read_some(asio::buffer(buf), ec);
  CHECK(n == 0);
  CHECK(ec == asio::error::eof);
}

TEST_CASE("messages wait for a peer that is down and go out once it is up", "[runtime][tcp]") {
  asio::io_context ioc;
  std::vector<std::string> logs;
  std::vector<transport::group_message> at_two;
  // Reserve a port for node 2, then free it: node 1 dials a closed port until 2 starts.
  tcp::acceptor reserve(ioc, {asio::ip::make_address("127.0.0.1"), 0});
  const auto port = reserve.local_endpoint().port();
  reserve.close();
  runtime::tcp_settings s1;
  s1.self = 1;
  s1.credentials = credentials(good_secret);
  s1.reconnect_min = std::chrono::milliseconds(5);
  s1.reconnect_max = std::chrono::milliseconds(40);
  s1.log = [&](const std::string& l) { logs.push_back(l); };
  s1.peers[2] = {asio::ip::make_address("127.0.0.1"), port};
  runtime::tcp_transport one(ioc.get_executor(), s1, [](transport::group_message) {});
  one.start();
  for (int i = 1; i <= 5; ++i) one.send(mesh::message(1, 2, 1, static_cast<raft::index_t>(i)));
  for (int i = 0; i < 100; ++i) ioc.run_for(std::chrono::milliseconds(1));
  bool unreachable_logged = false;
  for (const auto& l : logs)
    unreachable_logged |= l.find("cannot reach node 2") != std::string::npos;
  CHECK(unreachable_logged);

  runtime::tcp_settings s2 = s1;
  s2.self = 2;
  s2.listen = {asio::ip::make_address("127.0.0.1"), port};
  s2.peers = {{1, {asio::ip::make_address("127.0.0.1"), one.local_port()}}};
  auto two = std::make_unique<runtime::tcp_transport>(
      ioc.get_executor(), s2, [&](transport::group_message m) { at_two.push_back(std::move(m)); });
  two->start();
  for (int i = 0; i < 5000 && at_two.size() < 5; ++i) ioc.run_for(std::chrono::milliseconds(1));
  REQUIRE(at_two.size() == 5);
  for (std::size_t i = 0; i < 5; ++i) CHECK(at_two[i].message.commit == i + 1);  // in order

  // Node 2 goes away and comes back on the same port: node 1 reconnects and carries on.
  two->stop();
  ioc.run_for(std::chrono::milliseconds(20));
  two.reset();
  at_two.clear();
  two = std::make_unique<runtime::tcp_transport>(
      ioc.get_executor(), s2, [&](transport::group_message m) { at_two.push_back(std::move(m)); });
  two->start();
  for (int i = 0; i < 5000 && !one.connected(2); ++i) ioc.run_for(std::chrono::milliseconds(1));
  REQUIRE(one.connected(2));
  one.send(mesh::message(1, 2, 1, 99));
  for (int i = 0; i < 5000 && at_two.empty(); ++i) ioc.run_for(std::chrono::milliseconds(1));
  REQUIRE(at_two.size() == 1);
  CHECK(at_two[0].message.commit == 99);
  one.stop();
  two->stop();
  ioc.run_for(std::chrono::milliseconds(20));
}

TEST_CASE("a peer that does not keep up has its queue capped and the excess dropped",
          "[runtime][tcp]") {
  asio::io_context ioc;
  std::vector<std::string> logs;
  // Node 2 "listens" but never answers the handshake: everything for it stays queued.
  tcp::acceptor silent(ioc, {asio::ip::make_address("127.0.0.1"), 0});
  runtime::tcp_settings s;
  s.self = 1;
  s.credentials = credentials(good_secret);
  s.max_queued_bytes = 4096;
  s.log = [&](const std::string& l) { logs.push_back(l); };
  s.peers[2] = silent.local_endpoint();
  runtime::tcp_transport one(ioc.get_executor(), s, [](transport::group_message) {});
  one.start();
  for (int i = 0; i < 200; ++i) one.send(mesh::message(1, 2, 1, static_cast<raft::index_t>(i)));
  for (int i = 0; i < 5000 && one.statistics().messages_dropped == 0; ++i) {
    ioc.run_for(std::chrono::milliseconds(1));
  }
  const auto stats = one.statistics();
  CHECK(stats.messages_dropped > 0);
  CHECK(stats.messages_dropped < 200);
  bool logged = false;
  for (const auto& l : logs) logged |= l.find("node 2 is not keeping up") != std::string::npos;
  CHECK(logged);
  one.stop();
  ioc.run_for(std::chrono::milliseconds(20));
}

TEST_CASE("messages queued while a write is in flight go out together", "[runtime][tcp]") {
  mesh m(2);
  REQUIRE(m.run_until([&] { return m.nodes[1]->connected(2); }));
  for (int i = 0; i < 2000; ++i)
    m.nodes[1]->send(mesh::message(1, 2, 5, static_cast<raft::index_t>(i)));
  REQUIRE(m.run_until([&] { return m.received[2].size() == 2000; }));
  const auto stats = m.nodes[1]->statistics();
  CHECK(stats.messages_sent >= 2000);
  CHECK(stats.writes < stats.messages_sent);
  for (std::size_t i = 0; i < 2000; ++i) CHECK(m.received[2][i].message.commit == i);
}

namespace {

struct journal {
  std::vector<std::string> lines;
  std::string apply(const raft::entry& e) {
    lines.push_back(e.payload.to_string());
    return "ok";
  }
};

}  // namespace

TEST_CASE(
    "three nodes over TCP elect, replicate and keep every acknowledged write after "
    "losing the leader",
    "[runtime][tcp][node]") {
  test::scratch dir("tcp_test");
  using tcp_node = runtime::node<journal, runtime::tcp_transport>;
  asio::io_context ioc;
  storage::posix_file_system fs;
  struct member {
    std::unique_ptr<storage::shared_wal> wal;
    std::unique_ptr<runtime::tcp_transport> transport;
    std::unique_ptr<tcp_node> node;
  };
  std::map<raft::node_id, member> members;
  for (raft::node_id id = 1; id <= 3; ++id) {
    auto& m = members[id];
    m.wal = std::make_unique<storage::shared_wal>(fs, dir.path + "/node-" + std::to_string(id));
    runtime::tcp_settings ts;
    ts.self = id;
    ts.credentials = credentials(good_secret);
    ts.reconnect_min = std::chrono::milliseconds(5);
    ts.reconnect_max = std::chrono::milliseconds(50);
    m.transport = std::make_unique<runtime::tcp_transport>(
        ioc.get_executor(), ts,
        [&members, id](transport::group_message gm) { members[id].node->deliver(std::move(gm)); });
    runtime::node_settings ns;
    ns.self = id;
    ns.replica.tick = std::chrono::milliseconds(2);
    m.node = std::make_unique<tcp_node>(std::vector<asio::any_io_executor>{ioc.get_executor()},
                                        *m.wal, *m.transport, ns);
    m.transport->start();
  }
  for (auto& [a, ma] : members) {
    for (auto& [b, mb] : members) {
      if (a != b)
        ma.transport->add_peer(b,
                               {asio::ip::make_address("127.0.0.1"), mb.transport->local_port()});
    }
    ma.node->add_group(1, raft::membership{{1, 2, 3}}, std::make_unique<journal>());
  }
  auto run_until = [&](auto done) {
    for (int i = 0; i < 10000 && !done(); ++i) ioc.run_for(std::chrono::milliseconds(1));
    return done();
  };
  auto leader = [&](raft::node_id except) {
    for (auto& [id, m] : members) {
      if (id != except && m.node && m.node->find(1)->leader() == id) return id;
    }
    return raft::no_node;
  };
  REQUIRE(run_until([&] { return leader(raft::no_node) != raft::no_node; }));
  const raft::node_id first = leader(raft::no_node);
  int acknowledged = 0;
  for (int i = 0; i < 20; ++i) {
    members[first].node->find(1)->async_propose(
        raft::shared_bytes("w" + std::to_string(i)),
        [&](std::error_code ec, runtime::propose_result) { acknowledged += !ec; });
  }
  REQUIRE(run_until([&] { return acknowledged == 20; }));
  // The leader vanishes: its transport closes and its replicas stop.
  members[first].transport->stop();
  members[first].node->stop();
  REQUIRE(run_until([&] { return leader(first) != raft::no_node; }));
  const raft::node_id second = leader(first);
  bool done = false;
  members[second].node->find(1)->async_propose(
      raft::shared_bytes("after"),
      [&](std::error_code ec, runtime::propose_result) { done = !ec; });
  REQUIRE(run_until([&] { return done; }));
  std::string lines;
  bool read = false;
  members[second].node->find(1)->async_read(
      [](const journal& j) {
        std::string all;
        for (const auto& l : j.lines) all += l + ",";
        return all;
      },
      [&](std::error_code ec, std::string all) {
        read = !ec;
        lines = std::move(all);
      });
  REQUIRE(run_until([&] { return read; }));
  std::string expected;
  for (int i = 0; i < 20; ++i) expected += "w" + std::to_string(i) + ",";
  CHECK(lines == expected + "after,");
  for (auto& [id, m] : members) {
    m.transport->stop();
    m.node->stop();
  }
  ioc.run_for(std::chrono::milliseconds(20));
}

TEST_CASE("an idle connection sends keepalives, and a silent peer is closed and reported lost",
          "[runtime][tcp][quiesce]") {
  std::vector<raft::node_id> lost;
  mesh m(2, [](runtime::tcp_settings& s) {
    s.keepalive_interval = std::chrono::milliseconds(20);
    s.peer_timeout = std::chrono::milliseconds(150);
  });
  // Node 2 is real; node 1 is played by a raw socket that authenticates, then falls silent
  // (a paused process: the connection stays open, nothing arrives).
  m.nodes[1]->stop();
  m.nodes[2]->on_peer_lost([&](raft::node_id id) { lost.push_back(id); });
  tcp::socket raw(m.ioc);
  raw.connect({asio::ip::make_address("127.0.0.1"), m.nodes[2]->local_port()});
  transport::handshake hs(transport::handshake::side::initiator, credentials(good_secret), 1, 2,
                          [](raft::node_id) { return false; });
  std::vector<std::byte> out;
  transport::append_frame(out, transport::frame_kind::handshake, hs.start());
  asio::write(raw, asio::buffer(out));
  transport::frame_reader reader(transport::default_max_frame_bytes);
  int keepalives = 0;
  bool closed = false;
  auto poll = [&] {
    boost::system::error_code ec;
    while (!closed && raw.available(ec) > 0) {
      std::array<std::byte, 4096> buf{};
      const std::size_t n = raw.read_some(asio::buffer(buf), ec);
      if (ec) break;
      reader.feed(std::span(buf.data(), n));
      while (auto f = reader.next()) {
        if (f->kind == transport::frame_kind::keepalive) ++keepalives;
        if (f->kind != transport::frame_kind::handshake) continue;
        std::vector<std::byte> reply;
        REQUIRE_FALSE(hs.receive(f->body, reply));
        out.clear();
        transport::append_frame(out, transport::frame_kind::handshake, reply);
        asio::write(raw, asio::buffer(out));
      }
    }
  };
  REQUIRE(m.run_until([&] {
    poll();
    return m.logged("connected to node 1");
  }));
  REQUIRE(m.run_until([&] {
    poll();
    return !lost.empty();
  }));
  CHECK(keepalives >= 2);  // node 2 had nothing else to say
  CHECK(lost == std::vector<raft::node_id>{1});
  CHECK(m.logged("lost the connection to node 1: nothing received for"));
  CHECK(m.nodes[2]->statistics().keepalives_sent >= 2);
}

// ---- TLS ----------------------------------------------------------------------------------------

namespace {

std::shared_ptr<asio::ssl::context> tls_context(const test::test_ca& ca,
                                                const test::test_ca::issued& identity) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls);
  ctx->set_options(asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                   asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  ctx->use_certificate_chain(asio::buffer(identity.certificate));
  ctx->use_private_key(asio::buffer(identity.private_key), asio::ssl::context::pem);
  ctx->add_certificate_authority(asio::buffer(ca.certificate()));
  ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
  return ctx;
}

/** A TCP relay on loopback that records every byte it forwards, both ways. */
class recording_proxy {
 public:
  recording_proxy(asio::io_context& ioc, tcp::endpoint target)
      : state_(std::make_shared<state>(ioc, target)) {
    accept(state_);
  }
  ~recording_proxy() {
    boost::system::error_code ignored;
    state_->acceptor.close(ignored);
  }
  tcp::endpoint endpoint() const { return state_->acceptor.local_endpoint(); }
  const std::string& seen() const { return state_->seen; }

 private:
  struct state {
    state(asio::io_context& ioc, tcp::endpoint to)
        : acceptor(ioc, {asio::ip::make_address("127.0.0.1"), 0}), target(to) {}
    tcp::acceptor acceptor;
    tcp::endpoint target;
    std::string seen;
  };
  using socket_ptr = std::shared_ptr<tcp::socket>;

  static void accept(const std::shared_ptr<state>& s) {
    auto in = std::make_shared<tcp::socket>(s->acceptor.get_executor());
    s->acceptor.async_accept(*in, [s, in](const boost::system::error_code& ec) {
      if (ec) return;
      auto out = std::make_shared<tcp::socket>(s->acceptor.get_executor());
      out->async_connect(s->target, [s, in, out](const boost::system::error_code& e) {
        if (e) return;
        pipe(s, in, out);
        pipe(s, out, in);
      });
      accept(s);
    });
  }
  static void pipe(const std::shared_ptr<state>& s, const socket_ptr& from, const socket_ptr& to) {
    auto buf = std::make_shared<std::array<char, 4096>>();
    from->async_read_some(asio::buffer(*buf),
                          [=](const boost::system::error_code& ec, std::size_t n) {
                            if (ec) {
                              boost::system::error_code ignored;
                              to->close(ignored);
                              return;
                            }
                            s->seen.append(buf->data(), n);
                            asio::async_write(*to, asio::buffer(buf->data(), n),
                                              [=](const boost::system::error_code& e, std::size_t) {
                                                if (!e) pipe(s, from, to);
                                              });
                          });
  }

  std::shared_ptr<state> state_;
};

/** Node 2, and node 1 dialing it through a recording proxy, each with its own TLS context
 *  (null: plain TCP); node 1 sends one append carrying `payload`. */
struct relayed_pair {
  relayed_pair(std::shared_ptr<asio::ssl::context> tls1, std::shared_ptr<asio::ssl::context> tls2,
               const std::string& payload) {
    for (raft::node_id id : {1, 2}) {
      runtime::tcp_settings s;
      s.self = id;
      s.credentials = credentials(good_secret);
      s.tls = id == 1 ? tls1 : tls2;
      s.reconnect_min = std::chrono::milliseconds(5);
      s.reconnect_max = std::chrono::milliseconds(50);
      s.log = [this](const std::string& line) { logs.push_back(line); };
      nodes[id] = std::make_unique<runtime::tcp_transport>(
          ioc.get_executor(), s,
          [this](transport::group_message m) { received.push_back(std::move(m)); });
    }
    nodes[2]->start();
    nodes[2]->add_peer(1, {asio::ip::make_address("127.0.0.1"), 9});  // never dialed: 1 < 2
    proxy = std::make_unique<recording_proxy>(
        ioc, tcp::endpoint{asio::ip::make_address("127.0.0.1"), nodes[2]->local_port()});
    nodes[1]->add_peer(2, proxy->endpoint());
    nodes[1]->start();
    raft::message m;
    m.type = raft::message_type::append;
    m.from = 1;
    m.to = 2;
    m.term = 3;
    m.entries.push_back({3, 1, raft::shared_bytes(payload)});
    nodes[1]->send({5, m});
  }
  ~relayed_pair() {
    for (auto& [id, t] : nodes) t->stop();
    ioc.run_for(std::chrono::milliseconds(20));
  }
  bool delivered() {
    for (int i = 0; i < 3000 && received.empty(); ++i) ioc.run_for(std::chrono::milliseconds(1));
    return !received.empty();
  }
  bool logged(const std::string& text) {
    for (int i = 0; i < 3000; ++i) {
      for (const auto& l : logs) {
        if (l.find(text) != std::string::npos) return true;
      }
      ioc.run_for(std::chrono::milliseconds(1));
    }
    return false;
  }

  asio::io_context ioc;
  std::map<raft::node_id, std::unique_ptr<runtime::tcp_transport>> nodes;
  std::unique_ptr<recording_proxy> proxy;
  std::vector<transport::group_message> received;
  std::vector<std::string> logs;
};

const std::string secret_payload = "the payload nobody on the path may read";

}  // namespace

TEST_CASE("with TLS, peers authenticate and exchange messages, and nothing crosses in clear",
          "[runtime][tcp][tls]") {
  {
    // Without TLS the relay sees the payload: the check below can fail.
    relayed_pair plain(nullptr, nullptr, secret_payload);
    REQUIRE(plain.delivered());
    CHECK(plain.proxy->seen().find(secret_payload) != std::string::npos);
  }
  const test::test_ca ca("quorum test CA");
  relayed_pair secure(tls_context(ca, ca.issue("node 1")), tls_context(ca, ca.issue("node 2")),
                      secret_payload);
  REQUIRE(secure.delivered());
  CHECK(secure.received[0].message.entries.at(0).payload.to_string() == secret_payload);
  CHECK(secure.received[0].group == 5);
  CHECK(secure.proxy->seen().size() > secret_payload.size());
  CHECK(secure.proxy->seen().find(secret_payload) == std::string::npos);
  CHECK(secure.proxy->seen().front() == '\x16');  // a TLS handshake record opened the stream
}

TEST_CASE("with TLS, a peer whose certificate another authority signed is refused",
          "[runtime][tcp][tls]") {
  const test::test_ca ca("quorum test CA");
  const test::test_ca stranger("another CA");
  relayed_pair pair(tls_context(ca, ca.issue("node 1")), tls_context(ca, stranger.issue("node 2")),
                    secret_payload);
  CHECK(pair.logged("TLS handshake failed"));
  CHECK(pair.received.empty());
  CHECK(pair.proxy->seen().find(secret_payload) == std::string::npos);
}

TEST_CASE("a TLS node refuses a peer that speaks plain TCP", "[runtime][tcp][tls]") {
  const test::test_ca ca("quorum test CA");
  relayed_pair pair(nullptr, tls_context(ca, ca.issue("node 2")), secret_payload);
  CHECK(pair.logged("refused the connection from"));
  CHECK(pair.logged("TLS handshake failed"));
  CHECK(pair.received.empty());
}
