// The wire codec. Every read is bounds-checked against the bytes present; nothing is allocated
// from a length that has not been checked.
#include <quorum/transport/codec.hpp>

#include <quorum/error.hpp>
#include <quorum/storage/crc32c.hpp>

#include <cstring>

namespace quorum::transport {

namespace {

void put(std::vector<std::byte>& out, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<std::byte>(value >> (8 * i)));
}

void put_bytes(std::vector<std::byte>& out, std::span<const std::byte> bytes) {
  put(out, bytes.size(), 4);
  out.insert(out.end(), bytes.begin(), bytes.end());
}

/** A cursor over untrusted bytes: every read fails (and stays failed) past the end. */
class reader {
 public:
  explicit reader(std::span<const std::byte> bytes) : bytes_(bytes) {}

  std::uint64_t number(int size) {
    if (!ok_ || remaining() < static_cast<std::size_t>(size)) {
      ok_ = false;
      return 0;
    }
    std::uint64_t value = 0;
    for (int i = 0; i < size; ++i) {
      value |= static_cast<std::uint64_t>(bytes_[at_ + static_cast<std::size_t>(i)]) << (8 * i);
    }
    at_ += static_cast<std::size_t>(size);
    return value;
  }

  std::span<const std::byte> bytes() {
    const std::uint64_t size = number(4);
    if (!ok_ || remaining() < size) {
      ok_ = false;
      return {};
    }
    const auto out = bytes_.subspan(at_, static_cast<std::size_t>(size));
    at_ += static_cast<std::size_t>(size);
    return out;
  }

  std::size_t remaining() const noexcept { return bytes_.size() - at_; }
  bool ok() const noexcept { return ok_; }
  void fail() noexcept { ok_ = false; }

 private:
  std::span<const std::byte> bytes_;
  std::size_t at_ = 0;
  bool ok_ = true;
};

// The smallest encoded entry: term, index, type and an empty payload's length.
constexpr std::size_t min_entry_bytes = 8 + 8 + 1 + 4;

}  // namespace

void append_frame(std::vector<std::byte>& out, frame_kind kind, std::span<const std::byte> body) {
  put(out, wire_version, 1);
  put(out, static_cast<std::uint8_t>(kind), 1);
  put(out, 0, 2);
  put(out, body.size(), 4);
  put(out, storage::crc32c(body), 4);
  out.insert(out.end(), body.begin(), body.end());
}

std::vector<std::byte> encode_message(const group_message& gm) {
  const raft::message& m = gm.message;
  std::vector<std::byte> out;
  put(out, gm.group, 8);
  put(out, static_cast<std::uint8_t>(m.type), 1);
  for (std::uint64_t v :
       {m.from, m.to, m.term, m.index, m.log_term, m.commit, m.reject_hint, m.context}) {
    put(out, v, 8);
  }
  put(out, (m.reject ? 1u : 0u) | (m.last ? 2u : 0u) | (m.quiesce ? 4u : 0u), 1);
  put(out, m.entries.size(), 4);
  for (const raft::entry& e : m.entries) {
    put(out, e.term, 8);
    put(out, e.index, 8);
    put(out, static_cast<std::uint8_t>(e.type), 1);
    put_bytes(out, e.payload.bytes());
  }
  put_bytes(out, m.data.bytes());
  if (m.members.voters.empty() && m.members.voters_outgoing.empty() && m.members.learners.empty()) {
    put(out, 0, 4);
  } else {
    put_bytes(out, raft::encode_membership(m.members).bytes());
  }
  return out;
}

std::optional<group_message> decode_message(std::span<const std::byte> body, std::error_code& ec) {
  ec.clear();
  reader in(body);
  group_message gm;
  raft::message& m = gm.message;
  gm.group = in.number(8);
  const auto type = static_cast<std::uint8_t>(in.number(1));
  if (type == 0 || type > raft::max_message_type) in.fail();
  m.type = static_cast<raft::message_type>(type);
  for (std::uint64_t* v :
       {&m.from, &m.to, &m.term, &m.index, &m.log_term, &m.commit, &m.reject_hint, &m.context}) {
    *v = in.number(8);
  }
  const auto flags = in.number(1);
  if (flags > 7) in.fail();
  m.reject = (flags & 1) != 0;
  m.last = (flags & 2) != 0;
  m.quiesce = (flags & 4) != 0;
  const std::uint64_t count = in.number(4);
  // The count is checked against the bytes present before anything is reserved.
  if (count > in.remaining() / min_entry_bytes) in.fail();
  if (in.ok()) m.entries.reserve(static_cast<std::size_t>(count));
  for (std::uint64_t i = 0; i < count && in.ok(); ++i) {
    raft::entry e;
    e.term = in.number(8);
    e.index = in.number(8);
    const auto entry_type = in.number(1);
    if (entry_type > static_cast<std::uint8_t>(raft::entry_type::config)) in.fail();
    e.type = static_cast<raft::entry_type>(entry_type);
    e.payload = raft::shared_bytes(in.bytes());
    m.entries.push_back(std::move(e));
  }
  m.data = raft::shared_bytes(in.bytes());
  const auto members = in.bytes();
  if (in.ok() && !members.empty()) {
    auto decoded = raft::decode_membership(members);
    if (!decoded) in.fail();
    if (decoded) m.members = std::move(*decoded);
  }
  if (!in.ok() || in.remaining() != 0) {
    ec = errc::malformed_message;
    return std::nullopt;
  }
  return gm;
}

void frame_reader::fail(const char* why) {
  error_ = errc::malformed_message;
  reason_ = why;
  buffer_.clear();
  consumed_ = 0;
}

void frame_reader::feed(std::span<const std::byte> bytes) {
  if (error_) return;
  if (consumed_ > 0 && consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  }
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

std::optional<frame> frame_reader::next() {
  if (error_ || buffered() < frame_header_bytes) return std::nullopt;
  const std::byte* h = buffer_.data() + consumed_;
  auto get = [&](std::size_t at, int size) {
    std::uint64_t v = 0;
    for (int i = 0; i < size; ++i)
      v |= static_cast<std::uint64_t>(h[at + static_cast<std::size_t>(i)]) << (8 * i);
    return v;
  };
  if (get(0, 1) != wire_version) {
    fail("unsupported wire version");
    return std::nullopt;
  }
  const auto kind = get(1, 1);
  if (kind != static_cast<std::uint8_t>(frame_kind::raft) &&
      kind != static_cast<std::uint8_t>(frame_kind::handshake) &&
      kind != static_cast<std::uint8_t>(frame_kind::keepalive)) {
    fail("unknown frame kind");
    return std::nullopt;
  }
  if (get(2, 2) != 0) {
    fail("reserved header bits set");
    return std::nullopt;
  }
  const std::uint64_t length = get(4, 4);
  if (length > max_body_) {
    // Refused before a byte of it is buffered or allocated.
    fail("frame longer than the cap");
    return std::nullopt;
  }
  if (buffered() < frame_header_bytes + length) return std::nullopt;
  const auto body =
      std::span<const std::byte>(h + frame_header_bytes, static_cast<std::size_t>(length));
  if (storage::crc32c(body) != static_cast<std::uint32_t>(get(8, 4))) {
    fail("frame checksum mismatch");
    return std::nullopt;
  }
  frame f{static_cast<frame_kind>(kind), {body.begin(), body.end()}};
  consumed_ += frame_header_bytes + static_cast<std::size_t>(length);
  if (consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  }
  return f;
}

}  // namespace quorum::transport
