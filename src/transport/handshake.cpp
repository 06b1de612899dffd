// The authentication handshake: HMAC-SHA256 via OpenSSL, strict message parsing.
#include <quorum/transport/handshake.hpp>

#include <quorum/error.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstring>
#include <stdexcept>

namespace quorum::transport {

namespace {

constexpr std::uint8_t handshake_version = 1;
enum message_kind : std::uint8_t { hello = 1, challenge = 2, proof = 3 };
constexpr std::size_t hello_bytes = 1 + 1 + 8 + 8 + nonce_bytes;
constexpr std::size_t challenge_bytes = 1 + 8 + 8 + nonce_bytes + mac_bytes;
constexpr std::size_t proof_bytes = 1 + mac_bytes;

void put(std::vector<std::byte>& out, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<std::byte>(value >> (8 * i)));
}

std::uint64_t get(std::span<const std::byte> in, std::size_t at, int bytes) {
  std::uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) {
    value |= static_cast<std::uint64_t>(in[at + static_cast<std::size_t>(i)]) << (8 * i);
  }
  return value;
}

void random_nonce(std::span<std::byte> out) {
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size())) != 1) {
    throw std::runtime_error("quorum: no random bytes for a handshake nonce");
  }
}

}  // namespace

handshake::handshake(side s, const cluster_credentials& credentials, raft::node_id self,
                     raft::node_id expected_peer, std::function<bool(raft::node_id)> admit,
                     nonce_source nonces)
    : side_(s),
      credentials_(credentials),
      self_(self),
      expected_peer_(expected_peer),
      admit_(std::move(admit)),
      nonces_(nonces ? std::move(nonces) : nonce_source(random_nonce)) {
  if (credentials_.secret.size() < 16) {
    throw std::invalid_argument("quorum: the cluster secret must be at least 16 bytes");
  }
  if (self == raft::no_node) throw std::invalid_argument("quorum: node id 0 is reserved");
  if (side_ == side::initiator && expected_peer == raft::no_node) {
    throw std::invalid_argument("quorum: an initiator must name the node it dials");
  }
}

std::error_code handshake::fail(std::string why) {
  state_ = state::failed;
  reason_ = std::move(why);
  return errc::authentication_failed;
}

std::array<std::byte, mac_bytes> handshake::mac(const char* label) const {
  // The MAC binds the label (which side speaks), the cluster, both node ids and both nonces.
  std::vector<std::byte> data(reinterpret_cast<const std::byte*>(label),
                              reinterpret_cast<const std::byte*>(label) + std::strlen(label));
  put(data, credentials_.cluster_id, 8);
  put(data, initiator_, 8);
  put(data, acceptor_, 8);
  data.insert(data.end(), nonce_i_.begin(), nonce_i_.end());
  data.insert(data.end(), nonce_a_.begin(), nonce_a_.end());
  std::array<std::byte, mac_bytes> out{};
  unsigned int length = 0;
  HMAC(EVP_sha256(), credentials_.secret.data(), static_cast<int>(credentials_.secret.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(),
       reinterpret_cast<unsigned char*>(out.data()), &length);
  return out;
}

std::vector<std::byte> handshake::start() {
  if (side_ != side::initiator || state_ != state::fresh) return {};
  nonces_(nonce_i_);
  initiator_ = self_;
  acceptor_ = expected_peer_;
  std::vector<std::byte> out;
  put(out, hello, 1);
  put(out, handshake_version, 1);
  put(out, credentials_.cluster_id, 8);
  put(out, self_, 8);
  out.insert(out.end(), nonce_i_.begin(), nonce_i_.end());
  state_ = state::sent_hello;
  return out;
}

std::error_code handshake::receive(std::span<const std::byte> message,
                                   std::vector<std::byte>& reply) {
  reply.clear();
  if (state_ == state::failed) return errc::authentication_failed;
  if (state_ == state::done) return fail("a message after the handshake completed");
  if (message.empty()) return fail("an empty handshake message");
  const auto kind = static_cast<std::uint8_t>(message[0]);

  if (side_ == side::acceptor && state_ == state::fresh) {
    if (kind != hello || message.size() != hello_bytes) return fail("expected a hello");
    if (get(message, 1, 1) != handshake_version) return fail("unsupported handshake version");
    if (get(message, 2, 8) != credentials_.cluster_id)
      return fail("the peer is of another cluster");
    const raft::node_id from = get(message, 10, 8);
    if (from == raft::no_node || from == self_) return fail("the peer claims an invalid node id");
    if (admit_ && !admit_(from)) {
      return fail("node " + std::to_string(from) + " is not a member of this cluster");
    }
    std::memcpy(nonce_i_.data(), message.data() + 18, nonce_bytes);
    nonces_(nonce_a_);
    initiator_ = from;
    acceptor_ = self_;
    put(reply, challenge, 1);
    put(reply, credentials_.cluster_id, 8);
    put(reply, self_, 8);
    reply.insert(reply.end(), nonce_a_.begin(), nonce_a_.end());
    const auto m = mac("quorum acceptor");
    reply.insert(reply.end(), m.begin(), m.end());
    state_ = state::sent_challenge;
    return {};
  }

  if (side_ == side::initiator && state_ == state::sent_hello) {
    if (kind != challenge || message.size() != challenge_bytes) return fail("expected a challenge");
    if (get(message, 1, 8) != credentials_.cluster_id)
      return fail("the peer is of another cluster");
    if (get(message, 9, 8) != expected_peer_) {
      return fail("dialed node " + std::to_string(expected_peer_) + " but node " +
                  std::to_string(get(message, 9, 8)) + " answered");
    }
    std::memcpy(nonce_a_.data(), message.data() + 17, nonce_bytes);
    const auto expected = mac("quorum acceptor");
    if (CRYPTO_memcmp(expected.data(), message.data() + 17 + nonce_bytes, mac_bytes) != 0) {
      return fail("the peer's proof does not match our cluster secret (the secrets differ)");
    }
    put(reply, proof, 1);
    const auto m = mac("quorum initiator");
    reply.insert(reply.end(), m.begin(), m.end());
    peer_ = expected_peer_;
    state_ = state::done;
    return {};
  }

  if (side_ == side::acceptor && state_ == state::sent_challenge) {
    if (kind != proof || message.size() != proof_bytes) return fail("expected a proof");
    const auto expected = mac("quorum initiator");
    if (CRYPTO_memcmp(expected.data(), message.data() + 1, mac_bytes) != 0) {
      return fail("the peer's proof does not match our cluster secret (the secrets differ)");
    }
    peer_ = initiator_;
    state_ = state::done;
    return {};
  }
  return fail("an unexpected handshake message");
}

}  // namespace quorum::transport
