// The wire format between nodes: frames (version, kind, length, CRC32C) carrying Raft messages
// tagged with their group. Decoders never trust a length: every length is checked against a
// cap and against the bytes actually present before anything is allocated, and every malformed
// input is refused with an error, never a crash. Plain functions and a small incremental frame
// reader; no I/O. A frame_reader is used by one thread at a time.
#pragma once

#include <quorum/raft/message.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <system_error>
#include <vector>

namespace quorum::transport {

/** The wire format version this build speaks. */
inline constexpr std::uint8_t wire_version = 1;

/** Bytes of a frame header: version (1), kind (1), reserved (2), length (4), CRC32C (4). */
inline constexpr std::size_t frame_header_bytes = 12;

/** Default cap on a frame body once a peer is authenticated. */
inline constexpr std::uint32_t default_max_frame_bytes = 16 << 20;
/** Cap on a frame body before authentication. */
inline constexpr std::uint32_t unauthenticated_max_frame_bytes = 8 << 10;

/** What a frame carries. Values are part of the wire format; never renumber. */
enum class frame_kind : std::uint8_t {
  raft = 1,       // one group-tagged Raft message
  handshake = 2,  // connection set-up and authentication
  keepalive = 3,  // empty body: the connection is alive (sent when it is otherwise idle)
};

/** A Raft message of one group, as carried between nodes. */
struct group_message {
  std::uint64_t group = 0;
  raft::message message;

  friend bool operator==(const group_message&, const group_message&) = default;
};

/** Appends a frame of `kind` around `body` to `out`. */
void append_frame(std::vector<std::byte>& out, frame_kind kind, std::span<const std::byte> body);

/** The body of a raft frame: the group and every field of the message. */
std::vector<std::byte> encode_message(const group_message& m);

/**
 * Decodes a raft frame's body. Returns nothing (and sets `ec` to errc::malformed_message) if
 * the bytes are not exactly one well-formed message: lengths beyond the bytes present, unknown
 * types, trailing bytes. Semantic checks (terms, indexes) are the core's: step() refuses those.
 */
std::optional<group_message> decode_message(std::span<const std::byte> body, std::error_code& ec);

/** A decoded frame. */
struct frame {
  frame_kind kind = frame_kind::raft;
  std::vector<std::byte> body;
};

/**
 * Cuts a byte stream into frames. feed() takes whatever arrived; next() returns the frames
 * completed so far, one at a time. A frame with another version, an unknown kind, a body over
 * the cap or a checksum mismatch is an error: the stream cannot be trusted after it, so the
 * reader stays failed and the connection must be closed. The cap can be raised once the peer
 * is authenticated.
 */
class frame_reader {
 public:
  explicit frame_reader(std::uint32_t max_body = unauthenticated_max_frame_bytes)
      : max_body_(max_body) {}

  void set_max_body(std::uint32_t max_body) noexcept { max_body_ = max_body; }
  /** Adds bytes that arrived. Ignored once the reader failed. */
  void feed(std::span<const std::byte> bytes);
  /** The next complete frame, or nothing (need more bytes, or failed: see error()). */
  std::optional<frame> next();
  /** Why the stream was refused (errc::malformed_message and a reason), or no error. */
  std::error_code error() const noexcept { return error_; }
  const char* reason() const noexcept { return reason_; }
  /** Bytes held but not yet returned as frames. */
  std::size_t buffered() const noexcept { return buffer_.size() - consumed_; }

 private:
  void fail(const char* why);

  std::vector<std::byte> buffer_;
  std::size_t consumed_ = 0;
  std::uint32_t max_body_;
  std::error_code error_;
  const char* reason_ = "";
};

}  // namespace quorum::transport
