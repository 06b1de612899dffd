// Mutual authentication of two nodes on a new connection, as a pure state machine (the
// transport carries its messages in handshake frames). Challenge-response with HMAC-SHA256 over
// a cluster secret: each side proves it knows the secret by a MAC bound to the other side's
// fresh random nonce, the cluster id and both node ids, so a recorded handshake cannot be
// replayed and a node cannot pose as another. Decoding is strict (exact lengths, known types);
// every failure is an error with a reason, never a crash. One connection, one thread.
//
//   initiator -> acceptor  hello:     version, cluster id, node id, nonce_i
//   acceptor  -> initiator challenge: cluster id, node id, nonce_a, MAC("acceptor", ...)
//   initiator -> acceptor  proof:     MAC("initiator", ...)
#pragma once

#include <quorum/raft/types.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

namespace quorum::transport {

/** Bytes of a nonce and of a MAC. */
inline constexpr std::size_t nonce_bytes = 32;
inline constexpr std::size_t mac_bytes = 32;

/** What both sides of a connection must agree on. */
struct cluster_credentials {
  /** Identifies the cluster; a node of another cluster is refused even with the same secret. */
  std::uint64_t cluster_id = 0;
  /** The shared secret (at least 16 bytes). */
  std::vector<std::byte> secret;
};

/** Fills `out` with fresh random bytes; the default uses OpenSSL's RAND_bytes. */
using nonce_source = std::function<void(std::span<std::byte> out)>;

class handshake {
 public:
  enum class side : std::uint8_t { initiator, acceptor };

  /**
   * One side of a handshake. `self` is this node. The initiator knows whom it dialed:
   * `expected_peer`; the acceptor takes any node that `admit` accepts (by default any node but
   * itself). Throws std::invalid_argument for a secret shorter than 16 bytes or node 0.
   */
  handshake(side s, const cluster_credentials& credentials, raft::node_id self,
            raft::node_id expected_peer = raft::no_node,
            std::function<bool(raft::node_id)> admit = {}, nonce_source nonces = {});

  /** The initiator's first message (hello); empty for the acceptor. */
  std::vector<std::byte> start();

  /**
   * Takes the peer's next message; sets `reply` to what must be sent back (possibly empty).
   * Returns errc::authentication_failed (see reason()) on anything wrong, after which the
   * connection must be closed.
   */
  std::error_code receive(std::span<const std::byte> message, std::vector<std::byte>& reply);

  /** True once this side has verified the peer (the acceptor after the proof). */
  bool authenticated() const noexcept { return state_ == state::done; }
  /** The authenticated peer (valid once authenticated). */
  raft::node_id peer() const noexcept { return peer_; }
  /** Why the handshake failed, in words for a log line. */
  const std::string& reason() const noexcept { return reason_; }

 private:
  enum class state : std::uint8_t { fresh, sent_hello, sent_challenge, done, failed };
  std::error_code fail(std::string why);
  std::array<std::byte, mac_bytes> mac(const char* label) const;

  side side_;
  cluster_credentials credentials_;
  raft::node_id self_;
  raft::node_id expected_peer_;
  std::function<bool(raft::node_id)> admit_;
  nonce_source nonces_;
  state state_ = state::fresh;
  raft::node_id peer_ = raft::no_node;
  raft::node_id initiator_ = raft::no_node;
  raft::node_id acceptor_ = raft::no_node;
  std::array<std::byte, nonce_bytes> nonce_i_{};
  std::array<std::byte, nonce_bytes> nonce_a_{};
  std::string reason_;
};

}  // namespace quorum::transport
