// Tests of peer authentication: two nodes with the cluster secret authenticate each other;
// a wrong secret, cluster or node id, a replayed handshake and malformed messages are refused
// with a reason.
#include <quorum/error.hpp>
#include <quorum/transport/handshake.hpp>

#include <catch2/catch.hpp>

using namespace quorum;
using namespace quorum::transport;

namespace {

cluster_credentials credentials(const std::string& secret, std::uint64_t cluster = 7) {
  cluster_credentials c;
  c.cluster_id = cluster;
  const auto bytes = std::as_bytes(std::span(secret.data(), secret.size()));
  c.secret.assign(bytes.begin(), bytes.end());
  return c;
}

const std::string secret = "a cluster secret of some length";

/** Runs a handshake to its end; returns the first error. */
std::error_code run(handshake& initiator, handshake& acceptor) {
  std::vector<std::byte> challenge;
  std::vector<std::byte> proof;
  std::vector<std::byte> nothing;
  if (auto ec = acceptor.receive(initiator.start(), challenge)) return ec;
  if (auto ec = initiator.receive(challenge, proof)) return ec;
  if (auto ec = acceptor.receive(proof, nothing)) return ec;
  CHECK(nothing.empty());
  return {};
}

}  // namespace

TEST_CASE("two nodes with the cluster secret authenticate each other", "[transport][auth]") {
  handshake initiator(handshake::side::initiator, credentials(secret), 1, 2);
  handshake acceptor(handshake::side::acceptor, credentials(secret), 2);
  REQUIRE_FALSE(run(initiator, acceptor));
  CHECK(initiator.authenticated());
  CHECK(acceptor.authenticated());
  CHECK(initiator.peer() == 2);
  CHECK(acceptor.peer() == 1);
}

TEST_CASE("a wrong secret is refused on either side, with a reason", "[transport][auth]") {
  {
    handshake initiator(handshake::side::initiator, credentials(secret), 1, 2);
    handshake acceptor(handshake::side::acceptor, credentials("another secret, just as long"), 2);
    CHECK(run(initiator, acceptor) == errc::authentication_failed);
    CHECK(initiator.reason() ==
          "the peer's proof does not match our cluster secret (the secrets differ)");
    CHECK_FALSE(initiator.authenticated());
  }
  {
    handshake initiator(handshake::side::initiator, credentials("another secret, just as long"), 1,
                        2);
    handshake acceptor(handshake::side::acceptor, credentials(secret), 2);
    // The initiator cannot check the acceptor's MAC either; if it could not, the acceptor would
    // still refuse its proof.
    CHECK(run(initiator, acceptor) == errc::authentication_failed);
    CHECK_FALSE(acceptor.authenticated());
  }
}

TEST_CASE("another cluster, an unexpected node or a non-member is refused", "[transport][auth]") {
  std::vector<std::byte> reply;
  {
    handshake initiator(handshake::side::initiator, credentials(secret, 8), 1, 2);
    handshake acceptor(handshake::side::acceptor, credentials(secret, 7), 2);
    CHECK(acceptor.receive(initiator.start(), reply) == errc::authentication_failed);
    CHECK(acceptor.reason() == "the peer is of another cluster");
  }
  {
    handshake initiator(handshake::side::initiator, credentials(secret), 1, 3);  // dialed 3
    handshake acceptor(handshake::side::acceptor, credentials(secret), 2);
    CHECK(run(initiator, acceptor) == errc::authentication_failed);
    CHECK(initiator.reason() == "dialed node 3 but node 2 answered");
  }
  {
    handshake initiator(handshake::side::initiator, credentials(secret), 9, 2);
    handshake acceptor(handshake::side::acceptor, credentials(secret), 2, raft::no_node,
                       [](raft::node_id id) { return id <= 3; });
    CHECK(run(initiator, acceptor) == errc::authentication_failed);
    CHECK(acceptor.reason() == "node 9 is not a member of this cluster");
  }
  CHECK_THROWS_AS(handshake(handshake::side::acceptor, credentials("short"), 2),
                  std::invalid_argument);
}

TEST_CASE("a recorded handshake cannot be replayed", "[transport][auth]") {
  handshake initiator(handshake::side::initiator, credentials(secret), 1, 2);
  handshake acceptor(handshake::side::acceptor, credentials(secret), 2);
  const auto hello = initiator.start();
  std::vector<std::byte> challenge;
  std::vector<std::byte> proof;
  std::vector<std::byte> nothing;
  REQUIRE_FALSE(acceptor.receive(hello, challenge));
  REQUIRE_FALSE(initiator.receive(challenge, proof));
  REQUIRE_FALSE(acceptor.receive(proof, nothing));
  // An eavesdropper replays the hello and the proof to a new connection: the acceptor's fresh
  // nonce makes the old proof worthless.
  handshake victim(handshake::side::acceptor, credentials(secret), 2);
  REQUIRE_FALSE(victim.receive(hello, challenge));
  CHECK(victim.receive(proof, nothing) == errc::authentication_failed);
  CHECK_FALSE(victim.authenticated());
}

TEST_CASE("malformed or out-of-order handshake messages are refused", "[transport][auth][input]") {
  handshake initiator(handshake::side::initiator, credentials(secret), 1, 2);
  handshake reference(handshake::side::acceptor, credentials(secret), 2);
  const auto hello = initiator.start();
  std::vector<std::byte> challenge;
  REQUIRE_FALSE(reference.receive(hello, challenge));
  std::vector<std::byte> reply;
  for (std::size_t n = 0; n < hello.size(); ++n) {
    handshake acceptor(handshake::side::acceptor, credentials(secret), 2);
    CHECK(acceptor.receive(std::span(hello).first(n), reply) == errc::authentication_failed);
  }
  for (std::size_t n = 0; n < challenge.size(); ++n) {
    handshake fresh(handshake::side::initiator, credentials(secret), 1, 2);
    (void)fresh.start();
    CHECK(fresh.receive(std::span(challenge).first(n), reply) == errc::authentication_failed);
  }
  handshake acceptor(handshake::side::acceptor, credentials(secret), 2);
  CHECK(acceptor.receive(challenge, reply) == errc::authentication_failed);  // not a hello
  CHECK(acceptor.reason() == "expected a hello");
  CHECK(acceptor.receive(hello, reply) == errc::authentication_failed);  // failed stays failed
}
