// The vocabulary of the Raft core: terms, indexes, node ids, log entries, hard state and
// membership. Plain values; no thread rules beyond those of the standard containers.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
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

  /** Takes `bytes` over without copying them (the buffer keeps the vector alive). */
  explicit shared_bytes(std::vector<std::byte>&& bytes) : size_(bytes.size()) {
    if (size_ != 0) {
      auto owner = std::make_shared<std::vector<std::byte>>(std::move(bytes));
      data_ = std::shared_ptr<const std::byte[]>(owner, owner->data());
    }
  }

  /** A buffer of `size` bytes left unset, for the caller to fill once through `fill` before
   *  it is shared. */
  static shared_bytes uninitialized(std::size_t size, std::byte*& fill) {
    shared_bytes out;
    out.size_ = size;
    if (size != 0) {
      auto owned = std::make_shared_for_overwrite<std::byte[]>(size);
      fill = owned.get();
      out.data_ = std::move(owned);
    } else {
      fill = nullptr;
    }
    return out;
  }

  /** `n` bytes from `offset`, sharing this buffer (which stays alive while the slice does). */
  shared_bytes slice(std::size_t offset, std::size_t n) const {
    assert(offset <= size_ && n <= size_ - offset);
    shared_bytes out;
    out.size_ = n;
    if (n != 0) out.data_ = std::shared_ptr<const std::byte[]>(data_, data_.get() + offset);
    return out;
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
enum class entry_type : std::uint8_t {
  normal = 0,
  /** The payload is an encoded membership (see encode_membership). */
  config = 1,
};

struct entry {
  term_t term = 0;
  index_t index = 0;
  shared_bytes payload;
  entry_type type = entry_type::normal;

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

/**
 * The members of a group: voters, and during joint consensus (dissertation 4.3) also the
 * outgoing voters, whose majority must agree too; learners receive the log but never vote or
 * count toward commit. Order is irrelevant; ids are non-zero and unique within each list.
 */
struct membership {
  std::vector<node_id> voters;
  /** Non-empty only in a joint configuration: the voters being replaced. */
  std::vector<node_id> voters_outgoing = {};
  std::vector<node_id> learners = {};

  bool joint() const noexcept { return !voters_outgoing.empty(); }
  bool is_voter(node_id id) const noexcept { return has(voters, id) || has(voters_outgoing, id); }
  bool is_learner(node_id id) const noexcept { return has(learners, id); }
  /** A voter of either configuration, or a learner. */
  bool contains(node_id id) const noexcept { return is_voter(id) || is_learner(id); }
  /** Votes (or matching replicas) needed for a decision among `voters`: a strict majority. */
  std::size_t quorum() const noexcept { return voters.size() / 2 + 1; }

  /** Every member, voter or learner, once each. */
  std::vector<node_id> all() const {
    std::vector<node_id> out = voters;
    for (const auto* list : {&voters_outgoing, &learners}) {
      for (node_id id : *list) {
        if (!has(out, id)) out.push_back(id);
      }
    }
    return out;
  }

  /**
   * The highest value that a majority of the voters hold, and during joint consensus also a
   * majority of the outgoing voters (the lower of the two). `value_of(id)` gives each voter's
   * value (a match index, an acknowledged round, 1 for active).
   */
  template <class ValueOf>
  std::uint64_t majority_value(ValueOf value_of) const {
    const std::uint64_t incoming = majority_of(voters, value_of);
    return joint() ? std::min(incoming, majority_of(voters_outgoing, value_of)) : incoming;
  }

  /**
   * An election's outcome: +1 won (a majority of each configuration granted), -1 lost (some
   * configuration's majority is out of reach), 0 undecided. `vote_of(id)` returns 1 granted,
   * -1 refused, 0 not yet answered.
   */
  template <class VoteOf>
  int vote_result(VoteOf vote_of) const {
    const int incoming = result_of(voters, vote_of);
    if (!joint()) return incoming;
    const int outgoing = result_of(voters_outgoing, vote_of);
    if (incoming < 0 || outgoing < 0) return -1;
    return incoming > 0 && outgoing > 0 ? 1 : 0;
  }

  friend bool operator==(const membership&, const membership&) = default;

 private:
  static bool has(const std::vector<node_id>& list, node_id id) noexcept {
    return std::find(list.begin(), list.end(), id) != list.end();
  }
  template <class ValueOf>
  static std::uint64_t majority_of(const std::vector<node_id>& set, ValueOf value_of) {
    std::vector<std::uint64_t> values;
    values.reserve(set.size());
    for (node_id id : set) values.push_back(value_of(id));
    std::sort(values.begin(), values.end(), std::greater<>());
    return values.empty() ? 0 : values[set.size() / 2];
  }
  template <class VoteOf>
  static int result_of(const std::vector<node_id>& set, VoteOf vote_of) {
    std::size_t yes = 0;
    std::size_t no = 0;
    for (node_id id : set) {
      const int v = vote_of(id);
      yes += v > 0 ? 1 : 0;
      no += v < 0 ? 1 : 0;
    }
    const std::size_t needed = set.size() / 2 + 1;
    if (yes >= needed) return 1;
    if (no > set.size() - needed) return -1;
    return 0;
  }
};

/** Encodes a membership as a configuration entry's payload. */
shared_bytes encode_membership(const membership& m);
/** Decodes a configuration entry's payload; nothing if the bytes are malformed. */
std::optional<membership> decode_membership(std::span<const std::byte> bytes);
/**
 * Checks a membership: at least one voter, no zero or repeated id, no node both a voter and a
 * learner (an outgoing voter may be a learner: it is being demoted). Sets `what` and returns
 * errc::invalid_membership if not.
 */
std::error_code validate(const membership& m, std::string& what);

/**
 * What a snapshot covers (paper 7): the log up to `index`, whose entry had `term`, and the
 * membership in force at that index (dissertation 5.2). Index 0 means "no snapshot".
 */
struct snapshot_meta {
  index_t index = 0;
  term_t term = 0;
  membership members;

  friend bool operator==(const snapshot_meta&, const snapshot_meta&) = default;
};

/** Bytes of a stored snapshot read for sending; `last` marks its end. */
struct snapshot_piece {
  shared_bytes data;
  bool last = false;
};

/**
 * A piece of an incoming snapshot that the host must write. Pieces of one snapshot arrive in
 * order; offset 0 starts a new incoming snapshot and discards any other partly received one.
 */
struct snapshot_chunk {
  snapshot_meta meta;
  std::uint64_t offset = 0;
  shared_bytes data;
  bool last = false;
};

/** A partly received snapshot: the first `bytes` of the snapshot (index, term) are durable. */
struct snapshot_receipt {
  index_t index = 0;
  term_t term = 0;
  std::uint64_t bytes = 0;

  friend bool operator==(const snapshot_receipt&, const snapshot_receipt&) = default;
};

/** What a node finds in its storage when it starts. */
struct initial_state {
  hard_state hard;
  /** The membership at the compaction point: the snapshot's, or the bootstrap one. */
  membership members;
  /** An incoming snapshot received in part before the node stopped, to resume. */
  snapshot_receipt receiving = {};
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
