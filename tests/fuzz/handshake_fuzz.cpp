// Fuzzes the handshake: arbitrary messages to an acceptor and to an initiator that has sent its
// hello must be refused or answered, never crash, and never authenticate without the secret.
#include <quorum/transport/handshake.hpp>

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace quorum::transport;
  cluster_credentials credentials;
  credentials.cluster_id = 7;
  credentials.secret.assign(32, std::byte{0x5a});
  const auto fixed = [](std::span<std::byte> out) {
    for (std::byte& b : out) b = std::byte{1};
  };
  const auto input = std::as_bytes(std::span(data, size));
  std::vector<std::byte> reply;
  // Split the input in two messages at its first byte's position.
  const std::size_t cut = size == 0 ? 0 : std::min<std::size_t>(data[0], size - 1) + 1;
  handshake acceptor(handshake::side::acceptor, credentials, 2, quorum::raft::no_node, {}, fixed);
  if (!acceptor.receive(input.first(cut), reply)) (void)acceptor.receive(input.subspan(cut), reply);
  // Authenticating needs a MAC under the secret over the acceptor's nonce: a fuzzer does not
  // find one.
  if (acceptor.authenticated()) std::abort();
  handshake initiator(handshake::side::initiator, credentials, 1, 2, {}, fixed);
  (void)initiator.start();
  (void)initiator.receive(input, reply);
  return 0;
}
