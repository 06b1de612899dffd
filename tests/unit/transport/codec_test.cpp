// Tests of the wire codec: round trips of every field, frames split anywhere, and refusal of
// every malformed input (truncations, bad versions, lengths over the cap, bad checksums,
// counts larger than the bytes present) without crashing or allocating from the length.
#include <quorum/detail/random.hpp>
#include <quorum/error.hpp>
#include <quorum/transport/codec.hpp>

#include <catch2/catch.hpp>

using namespace quorum;
using namespace quorum::transport;
using raft::message;
using raft::message_type;

namespace {

group_message sample() {
  group_message gm;
  gm.group = 42;
  message& m = gm.message;
  m.type = message_type::append;
  m.from = 1;
  m.to = 3;
  m.term = 7;
  m.index = 100;
  m.log_term = 6;
  m.commit = 99;
  m.reject_hint = 5;
  m.context = 0x1122334455667788ULL;
  m.reject = true;
  m.entries = {
      {7, 101, raft::shared_bytes("first")},
      {7, 102, raft::encode_membership({{1, 2, 3}, {1, 2}, {9}}), raft::entry_type::config},
      {7, 103, {}}};
  return gm;
}

group_message random_message(quorum::detail::splitmix64& random) {
  group_message gm;
  gm.group = random.next();
  message& m = gm.message;
  m.type = static_cast<message_type>(1 + random.below(raft::max_message_type));
  for (std::uint64_t* v :
       {&m.from, &m.to, &m.term, &m.index, &m.log_term, &m.commit, &m.reject_hint, &m.context}) {
    *v = random.below(4) == 0 ? random.next() : random.below(1000);
  }
  m.reject = random.below(2) == 0;
  m.last = random.below(2) == 0;
  m.quiesce = random.below(2) == 0;
  for (std::uint64_t i = random.below(5); i > 0; --i) {
    m.entries.push_back({random.below(10), random.below(1000),
                         raft::shared_bytes(std::string(random.below(50), 'p'))});
  }
  if (random.below(2) == 0) m.data = raft::shared_bytes(std::string(random.below(100), 'd'));
  if (random.below(2) == 0) m.members = {{1, 2, 3}, {}, {4}};
  return gm;
}

std::span<const std::byte> bytes_of(const std::vector<std::byte>& v) {
  return v;
}

}  // namespace

TEST_CASE("a message round-trips through its encoding, every field", "[transport][codec]") {
  const group_message gm = sample();
  std::error_code ec;
  const auto decoded = decode_message(encode_message(gm), ec);
  REQUIRE(decoded);
  CHECK_FALSE(ec);
  CHECK(*decoded == gm);

  group_message snapshot;
  snapshot.group = 1;
  snapshot.message.type = message_type::snapshot;
  snapshot.message.data = raft::shared_bytes("chunk bytes");
  snapshot.message.members = {{1, 2}, {}, {3}};
  snapshot.message.last = true;
  CHECK(decode_message(encode_message(snapshot), ec) == snapshot);

  quorum::detail::splitmix64 random(7);
  for (int i = 0; i < 500; ++i) {
    const group_message m = random_message(random);
    const auto back = decode_message(encode_message(m), ec);
    REQUIRE(back);
    CHECK(*back == m);
  }
}

TEST_CASE("every truncation and every trailing byte of a message is refused",
          "[transport][codec][input]") {
  const auto bytes = encode_message(sample());
  std::error_code ec;
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    CHECK_FALSE(decode_message(bytes_of(bytes).first(n), ec));
    CHECK(ec == errc::malformed_message);
  }
  auto longer = bytes;
  longer.push_back(std::byte{0});
  CHECK_FALSE(decode_message(longer, ec));
}

TEST_CASE("a count or length beyond the bytes present is refused before any allocation",
          "[transport][codec][input]") {
  group_message gm;
  gm.message.type = message_type::heartbeat;
  auto bytes = encode_message(gm);
  // The entry count sits after group (8), type (1), eight numbers (64) and flags (1).
  const std::size_t count_at = 8 + 1 + 64 + 1;
  for (std::size_t i = 0; i < 4; ++i) bytes[count_at + i] = std::byte{0xff};
  std::error_code ec;
  CHECK_FALSE(decode_message(bytes, ec));
  CHECK(ec == errc::malformed_message);
  // An unknown message type or entry type.
  auto bad_type = encode_message(sample());
  bad_type[8] = std::byte{0};
  CHECK_FALSE(decode_message(bad_type, ec));
  bad_type[8] = std::byte{raft::max_message_type + 1};
  CHECK_FALSE(decode_message(bad_type, ec));
}

TEST_CASE("frames are found however the stream is cut", "[transport][codec][frame]") {
  std::vector<std::byte> stream;
  std::vector<group_message> sent;
  quorum::detail::splitmix64 random(3);
  for (int i = 0; i < 20; ++i) {
    sent.push_back(random_message(random));
    append_frame(stream, frame_kind::raft, encode_message(sent.back()));
  }
  for (std::size_t piece : {1u, 7u, 12u, 100u, 5000u}) {
    INFO("pieces of " << piece);
    frame_reader reader(default_max_frame_bytes);
    std::vector<group_message> received;
    for (std::size_t at = 0; at < stream.size(); at += piece) {
      reader.feed(bytes_of(stream).subspan(at, std::min(piece, stream.size() - at)));
      while (auto f = reader.next()) {
        CHECK(f->kind == frame_kind::raft);
        std::error_code ec;
        auto m = decode_message(f->body, ec);
        REQUIRE(m);
        received.push_back(std::move(*m));
      }
    }
    CHECK_FALSE(reader.error());
    CHECK(received == sent);
    CHECK(reader.buffered() == 0);
  }
}

TEST_CASE("a frame reader refuses bad versions, kinds, checksums and lengths over the cap",
          "[transport][codec][frame][input]") {
  const auto body = encode_message(sample());
  std::vector<std::byte> good;
  append_frame(good, frame_kind::raft, body);
  auto refused = [](std::vector<std::byte> bytes, std::uint32_t cap, const char* reason) {
    frame_reader reader(cap);
    reader.feed(bytes);
    CHECK_FALSE(reader.next());
    CHECK(reader.error() == errc::malformed_message);
    CHECK(std::string(reader.reason()) == reason);
    reader.feed(bytes);  // a failed stream stays failed
    CHECK_FALSE(reader.next());
  };
  auto version = good;
  version[0] = std::byte{2};
  refused(version, default_max_frame_bytes, "unsupported wire version");
  auto kind = good;
  kind[1] = std::byte{99};
  refused(kind, default_max_frame_bytes, "unknown frame kind");
  auto checksum = good;
  checksum.back() ^= std::byte{1};
  refused(checksum, default_max_frame_bytes, "frame checksum mismatch");
  // Before authentication the cap is 8 KiB; a header announcing 4 GiB is refused at once,
  // before any of the body arrives.
  std::vector<std::byte> huge(good.begin(), good.begin() + frame_header_bytes);
  for (std::size_t i = 4; i < 8; ++i) huge[i] = std::byte{0xff};
  refused(huge, unauthenticated_max_frame_bytes, "frame longer than the cap");
  std::vector<std::byte> big;
  append_frame(big, frame_kind::raft, std::vector<std::byte>(9000));
  refused(big, unauthenticated_max_frame_bytes, "frame longer than the cap");
  frame_reader raised(unauthenticated_max_frame_bytes);
  raised.set_max_body(default_max_frame_bytes);
  raised.feed(big);
  CHECK(raised.next());
}
