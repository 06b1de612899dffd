// The quorum queue's state machine: command codec, apply, snapshot.
#include <quorum/error.hpp>
#include <quorum/queue/state_machine.hpp>

#include <algorithm>

namespace quorum::queue {

namespace {

// Little-endian fixed-width numbers; a reader that fails for good on any short read.
void put(std::vector<std::byte>& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<std::byte>(v >> (8 * i)));
}

class reader {
 public:
  explicit reader(std::span<const std::byte> in) : in_(in) {}
  std::uint64_t number(int bytes) {
    if (in_.size() < static_cast<std::size_t>(bytes)) {
      ok_ = false;
      in_ = {};
      return 0;
    }
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= std::to_integer<std::uint64_t>(in_[i]) << (8 * i);
    in_ = in_.subspan(static_cast<std::size_t>(bytes));
    return v;
  }
  std::size_t remaining() const { return in_.size(); }
  bool ok() const { return ok_; }
  void fail() { ok_ = false; }

 private:
  std::span<const std::byte> in_;
  bool ok_ = true;
};

constexpr std::uint8_t command_version = 1;
constexpr std::uint8_t snapshot_version = 1;

}  // namespace

raft::shared_bytes encode(const command& c) {
  std::vector<std::byte> out;
  put(out, command_version, 1);
  put(out, static_cast<std::uint8_t>(c.type), 1);
  put(out, c.consumer, 8);
  put(out, c.size, 4);
  put(out, c.priority, 1);
  put(out, c.prefetch, 4);
  put(out, static_cast<std::uint8_t>(c.outcome), 1);
  put(out, c.ids.size(), 4);
  for (message_id id : c.ids) put(out, id, 8);
  return raft::shared_bytes(std::move(out));
}

std::optional<command> decode(std::span<const std::byte> bytes, std::error_code& ec) {
  reader in(bytes);
  command c;
  if (in.number(1) != command_version) in.fail();
  const auto type = in.number(1);
  if (type < 1 || type > 5) in.fail();
  c.type = static_cast<command::kind>(type);
  c.consumer = in.number(8);
  c.size = static_cast<std::uint32_t>(in.number(4));
  c.priority = static_cast<std::uint8_t>(in.number(1));
  if (c.priority > max_priority) in.fail();
  c.prefetch = static_cast<std::uint32_t>(in.number(4));
  const auto outcome = in.number(1);
  if (outcome < 1 || outcome > 3) in.fail();
  c.outcome = static_cast<settlement>(outcome);
  const std::uint64_t count = in.number(4);
  // The count is checked against the bytes present before anything is reserved.
  if (count != in.remaining() / 8 || in.remaining() % 8 != 0) in.fail();
  if (in.ok()) c.ids.reserve(static_cast<std::size_t>(count));
  for (std::uint64_t i = 0; in.ok() && i < count; ++i) c.ids.push_back(in.number(8));
  if (!in.ok()) {
    ec = errc::malformed_message;
    return std::nullopt;
  }
  ec.clear();
  return c;
}

effects state_machine::apply(const raft::entry& e) {
  std::error_code ec;
  std::optional<command> c = decode(e.payload.bytes(), ec);
  if (!c) return {{}, {}, ec};
  return apply(e.index, *c);
}

effects state_machine::apply(raft::index_t index, const command& c) {
  effects out;
  switch (c.type) {
    case command::kind::enqueue:
      messages_[index] = message{c.size, c.priority, 0, false};
      ready_.insert({c.priority, index});
      break;
    case command::kind::attach:
      // Attaching again changes the prefetch; what the consumer holds stays with it.
      consumers_[c.consumer].prefetch = c.prefetch;
      break;
    case command::kind::detach: {
      auto it = consumers_.find(c.consumer);
      if (it == consumers_.end()) return {{}, {}, errc::invalid_command};
      // A consumer that goes away releases what it held, in order, without counting a failure.
      const std::set<message_id> held = std::move(it->second.unacked);
      consumers_.erase(it);
      for (message_id id : held) give_back(id, false, out);
      break;
    }
    case command::kind::settle: {
      auto it = consumers_.find(c.consumer);
      if (it == consumers_.end()) return {{}, {}, errc::invalid_command};
      for (message_id id : c.ids) {
        if (!it->second.unacked.contains(id)) return {{}, {}, errc::invalid_command};
      }
      for (message_id id : c.ids) {
        it->second.unacked.erase(id);
        switch (c.outcome) {
          case settlement::ack:
            messages_.erase(id);
            out.removals.push_back({id, removal::acked});
            break;
          case settlement::requeue: give_back(id, true, out); break;
          case settlement::reject:
            messages_.erase(id);
            out.removals.push_back({id, options_.dead_letter_target.empty()
                                            ? removal::dropped
                                            : removal::dead_lettered});
            break;
        }
      }
      break;
    }
    case command::kind::purge:
      for (const auto& [priority, id] : ready_) {
        messages_.erase(id);
        out.removals.push_back({id, removal::purged});
      }
      ready_.clear();
      break;
  }
  deliver(out);
  return out;
}

void state_machine::give_back(message_id id, bool count_failure, effects& out) {
  message& m = messages_.at(id);
  if (count_failure) ++m.failed;
  if (count_failure && options_.delivery_limit >= 0 &&
      m.failed > static_cast<std::uint32_t>(options_.delivery_limit)) {
    messages_.erase(id);
    out.removals.push_back(
        {id, options_.dead_letter_target.empty() ? removal::dropped : removal::dead_lettered});
    return;
  }
  ready_.insert({m.priority, id});
}

void state_machine::deliver(effects& out) {
  // Round robin over consumers with credit, starting after the last one served; each turn
  // hands the next ready message to the next consumer that has room.
  while (!ready_.empty()) {
    auto it = consumers_.lower_bound(next_turn_);
    std::size_t looked = 0;
    for (; looked < consumers_.size(); ++looked, ++it) {
      if (it == consumers_.end()) it = consumers_.begin();
      if (it->second.unacked.size() < it->second.prefetch) break;
    }
    if (looked == consumers_.size()) return;  // nobody has credit
    const auto [priority, id] = *ready_.begin();
    ready_.erase(ready_.begin());
    message& m = messages_.at(id);
    it->second.unacked.insert(id);
    out.deliveries.push_back({it->first, id, m.failed, m.delivered});
    m.delivered = true;
    next_turn_ = it->first + 1;
  }
}

queue_status state_machine::status() const {
  queue_status s;
  for (const auto& [id, m] : messages_) {
    const bool ready = ready_.contains({m.priority, id});
    (ready ? s.ready : s.unacked) += 1;
    (ready ? s.ready_bytes : s.unacked_bytes) += m.size;
  }
  s.consumers = consumers_.size();
  return s;
}

raft::index_t state_machine::oldest_live() const {
  return messages_.empty() ? 0 : messages_.begin()->first;
}

raft::shared_bytes state_machine::snapshot() const {
  std::vector<std::byte> out;
  put(out, snapshot_version, 1);
  put(out, static_cast<std::uint32_t>(options_.delivery_limit), 4);
  put(out, options_.dead_letter_target.size(), 4);
  for (char ch : options_.dead_letter_target) out.push_back(static_cast<std::byte>(ch));
  put(out, next_turn_, 8);
  put(out, messages_.size(), 8);
  for (const auto& [id, m] : messages_) {
    put(out, id, 8);
    put(out, m.size, 4);
    put(out, m.priority, 1);
    put(out, m.failed, 4);
    put(out, m.delivered ? 1 : 0, 1);
  }
  put(out, consumers_.size(), 8);
  for (const auto& [id, c] : consumers_) {
    put(out, id, 8);
    put(out, c.prefetch, 4);
    put(out, c.unacked.size(), 8);
    for (message_id m : c.unacked) put(out, m, 8);
  }
  return raft::shared_bytes(std::move(out));
}

bool state_machine::restore(const raft::shared_bytes& bytes) {
  reader in(bytes.bytes());
  state_machine s;
  if (in.number(1) != snapshot_version) return false;
  s.options_.delivery_limit = static_cast<std::int32_t>(static_cast<std::uint32_t>(in.number(4)));
  const std::uint64_t name = in.number(4);
  if (name > in.remaining()) return false;
  for (std::uint64_t i = 0; i < name; ++i) {
    s.options_.dead_letter_target.push_back(static_cast<char>(in.number(1)));
  }
  s.next_turn_ = in.number(8);
  const std::uint64_t messages = in.number(8);
  if (messages > in.remaining() / 18) return false;
  for (std::uint64_t i = 0; i < messages; ++i) {
    const message_id id = in.number(8);
    message m;
    m.size = static_cast<std::uint32_t>(in.number(4));
    m.priority = static_cast<std::uint8_t>(in.number(1));
    m.failed = static_cast<std::uint32_t>(in.number(4));
    m.delivered = in.number(1) != 0;
    if (m.priority > max_priority || !s.messages_.emplace(id, m).second) return false;
  }
  const std::uint64_t consumers = in.number(8);
  if (consumers > in.remaining() / 20) return false;
  std::set<message_id> held;
  for (std::uint64_t i = 0; i < consumers && in.ok(); ++i) {
    consumer& c = s.consumers_[in.number(8)];
    c.prefetch = static_cast<std::uint32_t>(in.number(4));
    const std::uint64_t count = in.number(8);
    if (count > in.remaining() / 8) return false;
    for (std::uint64_t k = 0; k < count; ++k) {
      const message_id id = in.number(8);
      // Every held message is live and held by one consumer only.
      if (!s.messages_.contains(id) || !held.insert(id).second) return false;
      c.unacked.insert(id);
    }
  }
  if (!in.ok() || in.remaining() != 0) return false;
  for (const auto& [id, m] : s.messages_) {
    if (!held.contains(id)) s.ready_.insert({m.priority, id});
  }
  *this = std::move(s);
  return true;
}

}  // namespace quorum::queue
