// The TCP transport: group-tagged Raft messages between the nodes of a cluster, one connection
// per pair of nodes (the node with the smaller id dials), carrying every group. A connection
// is used only after mutual authentication (transport::handshake: HMAC-SHA256 over the cluster
// secret, fresh nonces both ways); until then frames are capped at 8 KiB, afterwards at
// max_frame_bytes, and every length is checked against the cap before a byte of the body is
// buffered. Messages queued for a peer while a write is in flight go out together in the next
// write; a peer that cannot keep up has its queue capped (back-pressure: further messages are
// dropped and counted, which Raft tolerates by retrying). A lost connection is dialed again
// with exponential backoff and jitter. An authenticated connection that has sent nothing for a
// keepalive interval sends a keepalive frame; one that has received nothing for peer_timeout is
// closed: this per-connection liveness is what lets quiesced groups (which send no heartbeats)
// notice a dead, paused or cut-off peer (on_peer_lost). With settings.tls, every connection is
// TLS first (the dialer is the client), and the handshake and messages travel inside it.
// Everything runs on one strand; send() may be called from any thread.
#pragma once

#include <quorum/detail/random.hpp>
#include <quorum/transport/codec.hpp>
#include <quorum/transport/handshake.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace quorum::runtime {

/** Settings of a TCP transport. */
struct tcp_settings {
  /** This node. */
  raft::node_id self = raft::no_node;
  /** Cluster id and secret, the same on every node. */
  transport::cluster_credentials credentials;
  /** Where to accept connections; port 0 picks a free one (see local_port()). */
  boost::asio::ip::tcp::endpoint listen{boost::asio::ip::make_address("127.0.0.1"), 0};
  /** The other nodes and where they listen. */
  std::map<raft::node_id, boost::asio::ip::tcp::endpoint> peers;
  /**
   * Optional TLS (encryption, and certificate checks as the context is set up): null for plain
   * TCP. Give every node a context with its certificate and key, the cluster's CA, and
   * verify_peer | verify_fail_if_no_peer_cert, so that both sides check each other. The cluster
   * handshake still runs inside TLS: certificates say who may connect at all, the cluster
   * secret which cluster and node a peer is. All nodes must agree on TLS or none.
   */
  std::shared_ptr<boost::asio::ssl::context> tls;
  /** Cap on a frame body from an authenticated peer. */
  std::uint32_t max_frame_bytes = transport::default_max_frame_bytes;
  /** Bytes queued for one peer beyond which further messages to it are dropped. */
  std::size_t max_queued_bytes = std::size_t{64} << 20;
  /** Reconnect backoff: first delay and cap; each delay is drawn in [d/2, d] (jitter). */
  std::chrono::milliseconds reconnect_min{20};
  std::chrono::milliseconds reconnect_max{2000};
  /** A connection that has not authenticated within this time is closed. */
  std::chrono::milliseconds handshake_timeout{3000};
  /** An authenticated connection idle for this long sends a keepalive frame ... */
  std::chrono::milliseconds keepalive_interval{200};
  /** ... and one that received nothing for this long is closed (the peer is dead, paused or
   *  cut off). Must exceed keepalive_interval plus a round trip. */
  std::chrono::milliseconds peer_timeout{1000};
  /** Receives one line per notable event (refused connections, lost peers). */
  std::function<void(const std::string&)> log;
};

/** Counters of a TCP transport (monotonic; read from any thread). */
struct tcp_statistics {
  std::uint64_t messages_sent = 0;
  std::uint64_t writes = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t messages_received = 0;
  std::uint64_t messages_dropped = 0;
  std::uint64_t connections_refused = 0;
  std::uint64_t keepalives_sent = 0;
};

class tcp_transport {
 public:
  using receiver = std::function<void(transport::group_message)>;
  using peer_observer = std::function<void(raft::node_id)>;

  /** A transport for `settings.self`; `on_message` is called on the transport's strand for each
   *  message from an authenticated peer. Call start() to listen and dial. */
  tcp_transport(boost::asio::any_io_executor ex, tcp_settings settings, receiver on_message)
      : strand_(boost::asio::make_strand(ex)),
        settings_(std::move(settings)),
        on_message_(std::move(on_message)),
        acceptor_(strand_),
        random_(settings_.self ^ static_cast<std::uint64_t>(
                                     std::chrono::steady_clock::now().time_since_epoch().count())) {
    if (settings_.self == raft::no_node) throw std::invalid_argument("tcp_settings.self is 0");
    for (const auto& [id, endpoint] : settings_.peers) {
      auto p = std::make_unique<peer>(strand_);
      p->endpoint = endpoint;
      p->backoff = settings_.reconnect_min;
      peers_.emplace(id, std::move(p));
    }
  }

  tcp_transport(const tcp_transport&) = delete;
  tcp_transport& operator=(const tcp_transport&) = delete;

  /** Called on the strand when the authenticated connection to a peer closes for any reason
   *  (reset, silent past peer_timeout, refused): wire it to node::peer_lost so that quiesced
   *  groups suspect a leader on that node. Set it before start(). */
  void on_peer_lost(peer_observer observer) { on_peer_lost_ = std::move(observer); }

  /** Binds the listening socket (throws boost::system::system_error if it cannot), then starts
   *  accepting and dialing. */
  void start() {
    acceptor_.open(settings_.listen.protocol());
    acceptor_.set_option(boost::asio::ip::tcp::acceptor::reuse_address(true));
    acceptor_.bind(settings_.listen);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    boost::asio::dispatch(strand_, [this] {
      started_ = true;
      accept();
      for (auto& [id, p] : peers_) {
        if (dials(id)) dial(id);
      }
    });
  }

  /** Adds (or moves) peer `id` at `endpoint`; dials it if this node is the one that dials. */
  void add_peer(raft::node_id id, boost::asio::ip::tcp::endpoint endpoint) {
    boost::asio::dispatch(strand_, [this, id, endpoint] {
      auto [it, added] = peers_.try_emplace(id, nullptr);
      if (added) {
        it->second = std::make_unique<peer>(strand_);
        it->second->backoff = settings_.reconnect_min;
      }
      it->second->endpoint = endpoint;
      if (started_ && added && dials(id)) dial(id);
    });
  }

  /** The port connections are accepted on (after start()). */
  std::uint16_t local_port() const noexcept { return port_; }

  /** Closes every connection and stops dialing. The transport may be destroyed once the
   *  io_context has run the resulting completions (e.g. after run() returned). */
  void stop() {
    boost::asio::dispatch(strand_, [this] {
      stopped_ = true;
      boost::system::error_code ignored;
      acceptor_.close(ignored);
      for (auto& [id, p] : peers_) p->retry.cancel();
      for (const connection_ptr& c : std::vector(connections_)) close(c, "");
    });
  }

  /** Queues `m` for the node `m.message.to`; dropped if that node is unknown, or its queue is
   *  over max_queued_bytes. Any thread. */
  void send(const transport::group_message& m) {
    std::vector<std::byte> frame;
    transport::append_frame(frame, transport::frame_kind::raft, transport::encode_message(m));
    boost::asio::post(strand_, [this, to = m.message.to, frame = std::move(frame)]() mutable {
      enqueue(to, std::move(frame));
    });
  }

  /** True while an authenticated connection to `node` is open (a snapshot). */
  bool connected(raft::node_id node) const {
    std::lock_guard lock(connected_mutex_);
    return connected_.contains(node);
  }

  tcp_statistics statistics() const {
    return {messages_sent_.load(),     writes_.load(),           bytes_sent_.load(),
            messages_received_.load(), messages_dropped_.load(), connections_refused_.load(),
            keepalives_sent_.load()};
  }

 private:
  struct connection {
    connection(boost::asio::strand<boost::asio::any_io_executor>& strand, transport::handshake h)
        : socket(strand), timer(strand), hs(std::move(h)) {}
    boost::asio::ip::tcp::socket socket;
    std::optional<boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>> tls;
    bool secured = false;  // plain TCP, or the TLS handshake completed
    boost::asio::steady_timer timer;
    transport::handshake hs;
    transport::frame_reader reader;
    std::array<std::byte, 64 << 10> buffer{};
    std::vector<std::byte> out;      // frames waiting for the next write
    std::vector<std::byte> writing;  // the write in flight
    std::size_t out_messages = 0;
    std::chrono::steady_clock::time_point last_received = std::chrono::steady_clock::now();
    bool wrote_since_keepalive = false;
    bool write_in_flight = false;
    bool open = true;
    bool dialed = false;
    raft::node_id peer = raft::no_node;  // set once authenticated (or, dialing, the target)
    std::string remote;
  };
  using connection_ptr = std::shared_ptr<connection>;

  struct peer {
    explicit peer(boost::asio::strand<boost::asio::any_io_executor>& strand) : retry(strand) {}
    boost::asio::ip::tcp::endpoint endpoint;
    connection_ptr live;             // authenticated connection, if any
    std::vector<std::byte> waiting;  // frames queued while no connection is up
    std::size_t waiting_messages = 0;
    boost::asio::steady_timer retry;
    std::chrono::milliseconds backoff{0};
    bool reported_unreachable = false;
    bool reported_congested = false;
    bool reported_refused = false;
  };

  bool dials(raft::node_id other) const { return settings_.self < other; }

  void log(const std::string& line) {
    if (settings_.log) settings_.log("node " + std::to_string(settings_.self) + ": " + line);
  }

  transport::handshake make_handshake(transport::handshake::side side, raft::node_id expected) {
    return transport::handshake(
        side, settings_.credentials, settings_.self, expected,
        [this](raft::node_id id) { return peers_.contains(id) && !dials(id); });
  }

  // ---- sending ----

  void enqueue(raft::node_id to, std::vector<std::byte> frame) {
    auto it = peers_.find(to);
    if (stopped_ || it == peers_.end()) {
      ++messages_dropped_;
      return;
    }
    peer& p = *it->second;
    const bool up = p.live && p.live->open;
    std::vector<std::byte>& queue = up ? p.live->out : p.waiting;
    const std::size_t queued = queue.size() + (up ? p.live->writing.size() : 0);
    if (queued + frame.size() > settings_.max_queued_bytes) {
      ++messages_dropped_;
      if (!p.reported_congested) {
        p.reported_congested = true;
        log("node " + std::to_string(to) + " is not keeping up; dropping messages to it");
      }
      return;
    }
    p.reported_congested = false;
    queue.insert(queue.end(), frame.begin(), frame.end());
    if (up) {
      ++p.live->out_messages;
      write(p.live);
    } else {
      ++p.waiting_messages;
    }
  }

  /** Writes everything queued on `c` in one write, unless a write is in flight. */
  void write(const connection_ptr& c) {
    if (!c->open || !c->secured || c->write_in_flight || c->out.empty()) return;
    c->write_in_flight = true;
    c->wrote_since_keepalive = true;
    c->writing.swap(c->out);
    c->out.clear();
    messages_sent_ += std::exchange(c->out_messages, 0);
    ++writes_;
    bytes_sent_ += c->writing.size();
    auto done = boost::asio::bind_executor(
        strand_, [this, c](const boost::system::error_code& ec, std::size_t) {
          c->write_in_flight = false;
          c->writing.clear();
          if (ec) {
            close(c, ec == boost::asio::error::operation_aborted ? ""
                                                                 : "write failed: " + ec.message());
            return;
          }
          write(c);
        });
    if (c->tls) {
      boost::asio::async_write(*c->tls, boost::asio::buffer(c->writing), std::move(done));
    } else {
      boost::asio::async_write(c->socket, boost::asio::buffer(c->writing), std::move(done));
    }
  }

  /** Queues a frame on the connection itself (handshake frames). */
  void send_frame(const connection_ptr& c, transport::frame_kind kind,
                  const std::vector<std::byte>& body) {
    transport::append_frame(c->out, kind, body);
    write(c);
  }

  // ---- connecting ----

  void accept() {
    auto c = std::make_shared<connection>(
        strand_, make_handshake(transport::handshake::side::acceptor, raft::no_node));
    acceptor_.async_accept(
        c->socket,
        boost::asio::bind_executor(strand_, [this, c](const boost::system::error_code& ec) {
          if (stopped_ || ec == boost::asio::error::operation_aborted) return;
          if (!ec) begin(c);
          accept();
        }));
  }

  void dial(raft::node_id id) {
    if (stopped_) return;
    peer& p = *peers_.at(id);
    auto c = std::make_shared<connection>(
        strand_, make_handshake(transport::handshake::side::initiator, id));
    c->dialed = true;
    c->peer = id;
    c->socket.async_connect(
        p.endpoint,
        boost::asio::bind_executor(strand_, [this, c, id](const boost::system::error_code& ec) {
          if (stopped_) return;
          if (ec) {
            peer& q = *peers_.at(id);
            if (!q.reported_unreachable) {
              q.reported_unreachable = true;
              log("cannot reach node " + std::to_string(id) + " at " + to_string(q.endpoint) +
                  ": " + ec.message() + "; retrying with backoff");
            }
            redial(id);
            return;
          }
          begin(c);
          send_frame(c, transport::frame_kind::handshake, c->hs.start());
        }));
  }

  /** Dials `id` again after the backoff delay (with jitter), then doubles the delay. */
  void redial(raft::node_id id) {
    if (stopped_) return;
    peer& p = *peers_.at(id);
    const auto d = p.backoff.count();
    const auto delay = std::chrono::milliseconds(
        d / 2 + static_cast<long>(random_.below(static_cast<std::uint64_t>(d / 2 + 1))));
    p.backoff = std::min(p.backoff * 2, settings_.reconnect_max);
    p.retry.expires_after(delay);
    p.retry.async_wait(
        boost::asio::bind_executor(strand_, [this, id](const boost::system::error_code& ec) {
          if (!ec) dial(id);
        }));
  }

  /** A socket is connected: bound the handshake's time, set up TLS if asked, start reading. */
  void begin(const connection_ptr& c) {
    connections_.push_back(c);
    boost::system::error_code ignored;
    c->socket.set_option(boost::asio::ip::tcp::no_delay(true), ignored);
    const auto remote = c->socket.remote_endpoint(ignored);
    c->remote = ignored ? std::string("an unknown address") : to_string(remote);
    c->timer.expires_after(settings_.handshake_timeout);
    c->timer.async_wait(
        boost::asio::bind_executor(strand_, [this, c](const boost::system::error_code& ec) {
          if (!ec && c->open && !c->hs.authenticated()) {
            refuse(c, "no authentication within " +
                          std::to_string(settings_.handshake_timeout.count()) + " ms");
          }
        }));
    if (!settings_.tls) {
      secured(c);
      return;
    }
    c->tls.emplace(c->socket, *settings_.tls);
    c->tls->async_handshake(
        c->dialed ? boost::asio::ssl::stream_base::client : boost::asio::ssl::stream_base::server,
        boost::asio::bind_executor(strand_, [this, c](const boost::system::error_code& ec) {
          if (!c->open) return;
          if (ec) {
            refuse(c, "TLS handshake failed: " + ec.message());
            return;
          }
          secured(c);
        }));
  }

  /** The byte stream is ready (TLS set up, if any): read, and write what waits. */
  void secured(const connection_ptr& c) {
    c->secured = true;
    read(c);
    write(c);
  }

  void read(const connection_ptr& c) {
    auto done = boost::asio::bind_executor(strand_, [this, c](const boost::system::error_code& ec,
                                                              std::size_t n) {
      if (!c->open) return;
      if (ec) {
        const std::string why = ec == boost::asio::error::eof ? "closed by the peer" : ec.message();
        if (!c->hs.authenticated() && !c->dialed) {
          log("the connection from " + c->remote + " was " +
              (ec == boost::asio::error::eof ? "closed" : "lost: " + ec.message()) +
              " before it authenticated (the peer may have refused our credentials)");
        }
        close(c, why);
        return;
      }
      c->last_received = std::chrono::steady_clock::now();
      c->reader.feed(std::span(c->buffer.data(), n));
      while (c->open) {
        std::optional<transport::frame> f = c->reader.next();
        if (!f) break;
        handle(c, *f);
      }
      if (!c->open) return;
      if (c->reader.error()) {
        refuse(c, c->reader.reason());
        return;
      }
      read(c);
    });
    if (c->tls) {
      c->tls->async_read_some(boost::asio::buffer(c->buffer), std::move(done));
    } else {
      c->socket.async_read_some(boost::asio::buffer(c->buffer), std::move(done));
    }
  }

  void handle(const connection_ptr& c, transport::frame& f) {
    if (f.kind == transport::frame_kind::handshake) {
      std::vector<std::byte> reply;
      if (c->hs.receive(f.body, reply)) {
        refuse(c, "authentication failed: " + c->hs.reason());
        return;
      }
      if (!reply.empty()) send_frame(c, transport::frame_kind::handshake, reply);
      if (c->hs.authenticated()) authenticated(c);
      return;
    }
    if (!c->hs.authenticated()) {
      refuse(c, "a message before authentication");
      return;
    }
    if (f.kind == transport::frame_kind::keepalive) {
      if (!f.body.empty()) refuse(c, "a keepalive frame with a body");
      return;  // its arrival already counted as a sign of life
    }
    std::error_code ec;
    std::optional<transport::group_message> m = transport::decode_message(f.body, ec);
    if (!m || m->message.from != c->peer || m->message.to != settings_.self) {
      refuse(c, m ? "a message with another sender or recipient" : "a malformed message");
      return;
    }
    ++messages_received_;
    on_message_(std::move(*m));
  }

  void authenticated(const connection_ptr& c) {
    c->timer.cancel();
    c->peer = c->hs.peer();
    c->reader.set_max_body(settings_.max_frame_bytes);
    peer& p = *peers_.at(c->peer);
    if (p.live && p.live != c) close(p.live, "replaced by a new connection");
    p.live = c;
    p.backoff = settings_.reconnect_min;
    p.reported_unreachable = false;
    p.reported_refused = false;
    {
      std::lock_guard lock(connected_mutex_);
      connected_.insert(c->peer);
    }
    log("connected to node " + std::to_string(c->peer) + " (" + c->remote + ")");
    c->out.insert(c->out.end(), p.waiting.begin(), p.waiting.end());
    c->out_messages += std::exchange(p.waiting_messages, 0);
    p.waiting.clear();
    write(c);
    keepalive(c);
  }

  /** Every keepalive interval: close a silent connection, or say we are alive if we wrote
   *  nothing since the last time. */
  void keepalive(const connection_ptr& c) {
    c->timer.expires_after(settings_.keepalive_interval);
    c->timer.async_wait(
        boost::asio::bind_executor(strand_, [this, c](const boost::system::error_code& ec) {
          if (ec || !c->open) return;
          const auto silent = std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::steady_clock::now() - c->last_received);
          if (silent >= settings_.peer_timeout) {
            close(c, "nothing received for " + std::to_string(silent.count()) + " ms");
            return;
          }
          if (!std::exchange(c->wrote_since_keepalive, false)) {
            ++keepalives_sent_;
            send_frame(c, transport::frame_kind::keepalive, {});
            c->wrote_since_keepalive = false;  // a keepalive does not count as traffic
          }
          keepalive(c);
        }));
  }

  /** Closes `c` because of what the peer did, with a log line saying why. */
  void refuse(const connection_ptr& c, const std::string& why) {
    ++connections_refused_;
    if (c->dialed) {
      // Dialing again after a backoff would repeat the same line: say it once per episode.
      peer& p = *peers_.at(c->peer);
      if (std::exchange(p.reported_refused, true)) {
        close(c, "");
        return;
      }
    }
    const std::string who = c->hs.authenticated()
                                ? "node " + std::to_string(c->peer) + " (" + c->remote + ")"
                                : c->remote;
    log("refused the connection " + std::string(c->dialed ? "to " : "from ") + who + ": " + why);
    close(c, "");
  }

  void close(const connection_ptr& c, const std::string& why) {
    if (!c->open) return;
    c->open = false;
    boost::system::error_code ignored;
    c->socket.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
    c->socket.close(ignored);
    c->timer.cancel();
    std::erase(connections_, c);
    auto it = peers_.find(c->peer);
    if (it == peers_.end()) return;
    peer& p = *it->second;
    if (p.live == c) {
      p.live.reset();
      {
        std::lock_guard lock(connected_mutex_);
        connected_.erase(c->peer);
      }
      if (!why.empty() && !stopped_) {
        log("lost the connection to node " + std::to_string(c->peer) + ": " + why);
      }
      if (!stopped_ && on_peer_lost_) on_peer_lost_(c->peer);
      // What was not written waits for the next connection, within the queue's cap.
      if (c->out.size() <= settings_.max_queued_bytes) {
        p.waiting = std::move(c->out);
        p.waiting_messages = c->out_messages;
      }
    }
    if (c->dialed && !stopped_ && !p.live) redial(c->peer);
  }

  static std::string to_string(const boost::asio::ip::tcp::endpoint& e) {
    return e.address().to_string() + ":" + std::to_string(e.port());
  }

  boost::asio::strand<boost::asio::any_io_executor> strand_;
  tcp_settings settings_;
  receiver on_message_;
  peer_observer on_peer_lost_;
  boost::asio::ip::tcp::acceptor acceptor_;
  detail::splitmix64 random_;
  std::map<raft::node_id, std::unique_ptr<peer>> peers_;
  std::vector<connection_ptr> connections_;
  std::atomic<std::uint16_t> port_{0};
  bool started_ = false;
  bool stopped_ = false;
  mutable std::mutex connected_mutex_;
  std::set<raft::node_id> connected_;
  std::atomic<std::uint64_t> messages_sent_{0}, writes_{0}, bytes_sent_{0}, messages_received_{0},
      messages_dropped_{0}, connections_refused_{0}, keepalives_sent_{0};
};

}  // namespace quorum::runtime
