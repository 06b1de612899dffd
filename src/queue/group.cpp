// A queue group: commands routed to its members, the entries they need, snapshots.
#include <quorum/error.hpp>
#include <quorum/queue/group.hpp>

#include <quorum/detail/varint.hpp>

#include <algorithm>
#include <iterator>
#include <stdexcept>

namespace quorum::queue {

namespace {

// A group's snapshot: this byte, the member count, then each member's snapshot after its
// length (LEB128). A solo group's snapshot is its queue's alone, which never starts with it.
constexpr std::byte group_snapshot_tag{0xf7};

}  // namespace

queue_group::queue_group(std::vector<queue_options> members, bool solo) : solo_(solo) {
  if (members.empty() || members.size() > max_group_members || (solo && members.size() != 1)) {
    throw std::invalid_argument("queue_group: 1 to 64 members, one if solo");
  }
  members_.reserve(members.size());
  for (queue_options& o : members) members_.emplace_back(std::move(o));
}

group_effects queue_group::apply(raft::index_t index, const command& c) {
  group_effects out;
  const std::uint64_t all =
      members_.size() == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << members_.size()) - 1;
  const bool fanned = c.type == command::kind::enqueue && c.fanout != 0;
  if ((fanned && (c.fanout & ~all) != 0) || (!fanned && c.member >= members_.size())) {
    out.answer.error = errc::invalid_command;
    return out;
  }
  if (c.type == command::kind::tick) {
    for (std::size_t i = 0; i < members_.size(); ++i) {
      out.members.push_back({static_cast<std::uint8_t>(i), members_[i].apply(index, c)});
    }
    return out;
  }
  if (!fanned) {
    out.members.push_back({c.member, members_[c.member].apply(index, c)});
    out.own_answer = false;  // no copy of what may be many deliveries
    return out;
  }
  bool rejected = false;
  bool rejected_dlx = false;
  bool all_duplicates = true;
  for (std::size_t i = 0; i < members_.size(); ++i) {
    if ((c.fanout >> i & 1) == 0) continue;
    member_effects m{static_cast<std::uint8_t>(i), members_[i].apply(index, c)};
    rejected = rejected || m.fx.published == effects::publish::rejected;
    rejected_dlx = rejected_dlx || m.fx.published == effects::publish::rejected_dlx;
    all_duplicates = all_duplicates && m.fx.published == effects::publish::duplicate;
    out.members.push_back(std::move(m));
  }
  out.answer.published = rejected_dlx     ? effects::publish::rejected_dlx
                         : rejected       ? effects::publish::rejected
                         : all_duplicates ? effects::publish::duplicate
                                          : effects::publish::accepted;
  return out;
}

std::vector<message_id> queue_group::live_ids() const {
  std::vector<message_id> ids = members_.front().live_ids();
  for (std::size_t i = 1; i < members_.size(); ++i) {
    const std::vector<message_id> more = members_[i].live_ids();
    std::vector<message_id> both;
    both.reserve(ids.size() + more.size());
    std::set_union(ids.begin(), ids.end(), more.begin(), more.end(), std::back_inserter(both));
    ids = std::move(both);
  }
  return ids;
}

std::uint64_t queue_group::live_count() const {
  std::uint64_t n = 0;
  for (const state_machine& m : members_) n += m.live_count();
  return n;
}

raft::shared_bytes queue_group::snapshot() const {
  if (solo_) return members_.front().snapshot();
  std::vector<std::byte> out;
  out.push_back(group_snapshot_tag);
  detail::put_varint(out, members_.size());
  for (const state_machine& m : members_) {
    const raft::shared_bytes one = m.snapshot();
    detail::put_varint(out, one.size());
    out.insert(out.end(), one.bytes().begin(), one.bytes().end());
  }
  return raft::shared_bytes(std::move(out));
}

bool queue_group::restore(const raft::shared_bytes& bytes) {
  if (solo_) return members_.front().restore(bytes);
  const std::span<const std::byte> in = bytes.bytes();
  std::size_t at = 1;
  std::uint64_t count = 0;
  if (in.empty() || in[0] != group_snapshot_tag || !detail::get_varint(in, at, count) ||
      count != members_.size()) {
    return false;
  }
  // Restored into fresh queues first, so that a malformed member changes nothing.
  std::vector<state_machine> restored;
  restored.reserve(members_.size());
  for (const state_machine& m : members_) {
    std::uint64_t length = 0;
    if (!detail::get_varint(in, at, length) || length > in.size() - at) return false;
    restored.emplace_back(m.options());
    if (!restored.back().restore(bytes.slice(at, static_cast<std::size_t>(length)))) return false;
    at += static_cast<std::size_t>(length);
  }
  if (at != in.size()) return false;
  members_ = std::move(restored);
  return true;
}

}  // namespace quorum::queue
