// The vocabulary of the Raft core: terms, indexes, node ids, log entries, hard state and
// membership. Plain values; no thread rules beyond those of the standard containers.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace quorum::raft {

/** A Raft term: increases monotonically; 0 means "before any election". */
using term_t = std::uint64_t;
/** A log position: the first entry has index 1; 0 means "before the first entry". */
using index_t = std::uint64_t;
/** A node's identity within a group; never 0. */
using node_id = std::uint64_t;

/** The absent node: no vote cast, no leader known. */
inline constexpr node_id no_node = 0;

/**
 * An immutable, reference-counted byte buffer. Copies share the bytes, so one entry can be
 * held by the log, several outgoing messages and the apply queue without copying its body.
 */
class shared_bytes {
 public:
  /** An empty buffer; allocates nothing. */
  shared_bytes() noexcept = default;

  /** Copies `bytes` once into a new shared buffer. */
  explicit shared_bytes(std::span<const std::byte> bytes) : size_(bytes.size()) {
    if (size_ != 0) {
      auto owned = std::make_shared<std::byte[]>(size_);
      std::memcpy(owned.get(), bytes.data(), size_);
      data_ = std::move(owned);
    }
  }

  /** Copies the characters of `text` into a new shared buffer. */
  explicit shared_bytes(std::string_view text)
      : shared_bytes(std::as_bytes(std::span<const char>(text.data(), text.size()))) {}

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  const std::byte* data() const noexcept { return data_.get(); }
  std::span<const std::byte> bytes() const noexcept { return {data_.get(), size_}; }

  /** The bytes as text (a copy); handy for examples and tests. */
  std::string to_string() const { return {reinterpret_cast<const char*>(data_.get()), size_}; }

  friend bool operator==(const shared_bytes& a, const shared_bytes& b) noexcept {
    return a.size_ == b.size_ &&
           (a.data_ == b.data_ || std::equal(a.data(), a.data() + a.size_, b.data()));
  }

 private:
  std::shared_ptr<const std::byte[]> data_;
  std::size_t size_ = 0;
};

/**
 * One log entry. An entry with an empty payload at the start of a term is the leader's no-op
 * (Raft paper 5.4.2 / 8): it lets a new leader commit the entries of earlier terms.
 */
struct entry {
  term_t term = 0;
  index_t index = 0;
  shared_bytes payload;

  friend bool operator==(const entry&, const entry&) = default;
};

/** Bytes an entry accounts for in message and window limits: payload plus a fixed header. */
inline std::uint64_t entry_footprint(const entry& e) noexcept {
  return static_cast<std::uint64_t>(e.payload.size()) + 24;
}

/**
 * The state that must be durable before a node answers anyone: its current term, the vote it
 * cast in that term, and the highest index it knows committed.
 */
struct hard_state {
  term_t term = 0;
  node_id vote = no_node;
  index_t commit = 0;

  friend bool operator==(const hard_state&, const hard_state&) = default;
};

/** The voting members of a group. Order is irrelevant; ids are unique and non-zero. */
struct membership {
  std::vector<node_id> voters;

  bool contains(node_id id) const noexcept {
    return std::find(voters.begin(), voters.end(), id) != voters.end();
  }
  /** Votes (or matching replicas) needed for a decision: a strict majority. */
  std::size_t quorum() const noexcept { return voters.size() / 2 + 1; }

  friend bool operator==(const membership&, const membership&) = default;
};

/** What a node finds in its storage when it starts. */
struct initial_state {
  hard_state hard;
  membership members;
};

/** A node's role in the current term. */
enum class role : std::uint8_t { follower, pre_candidate, candidate, leader };

/** A readable name for a role ("follower", "pre-candidate", "candidate", "leader"). */
inline std::string_view to_string(role r) noexcept {
  switch (r) {
    case role::follower: return "follower";
    case role::pre_candidate: return "pre-candidate";
    case role::candidate: return "candidate";
    case role::leader: return "leader";
  }
  return "unknown";
}

}  // namespace quorum::raft
