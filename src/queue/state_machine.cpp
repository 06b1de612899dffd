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

effects failed(std::error_code ec) {
  effects out;
  out.error = ec;
  return out;
}
constexpr std::uint8_t snapshot_version = 2;

void put_options(std::vector<std::byte>& out, const queue_options& o) {
  put(out, static_cast<std::uint32_t>(o.delivery_limit), 4);
  put(out, o.dead_letter_target.size(), 4);
  for (char ch : o.dead_letter_target) out.push_back(static_cast<std::byte>(ch));
  put(out, static_cast<std::uint8_t>(o.dead_letter), 1);
  put(out, o.max_length, 8);
  put(out, o.max_length_bytes, 8);
  put(out, static_cast<std::uint8_t>(o.overflow), 1);
  for (std::int64_t v :
       {o.message_ttl_ms, o.expires_ms, o.consumer_timeout_ms, o.retry_min_ms, o.retry_max_ms}) {
    put(out, static_cast<std::uint64_t>(v), 8);
  }
  put(out, o.single_active_consumer ? 1 : 0, 1);
}

/** Reads what put_options wrote; the reader fails on anything out of range. */
queue_options get_options(reader& in) {
  queue_options o;
  o.delivery_limit = static_cast<std::int32_t>(static_cast<std::uint32_t>(in.number(4)));
  if (o.delivery_limit < -1) in.fail();
  const std::uint64_t name = in.number(4);
  if (name > in.remaining()) in.fail();
  for (std::uint64_t i = 0; in.ok() && i < name; ++i) {
    o.dead_letter_target.push_back(static_cast<char>(in.number(1)));
  }
  const auto strategy = in.number(1);
  if (strategy < 1 || strategy > 2) in.fail();
  o.dead_letter = static_cast<dead_letter_strategy>(strategy);
  o.max_length = in.number(8);
  o.max_length_bytes = in.number(8);
  const auto mode = in.number(1);
  if (mode < 1 || mode > 3) in.fail();
  o.overflow = static_cast<overflow>(mode);
  for (std::int64_t* v : {&o.message_ttl_ms, &o.expires_ms, &o.consumer_timeout_ms, &o.retry_min_ms,
                          &o.retry_max_ms}) {
    *v = static_cast<std::int64_t>(in.number(8));
    if (*v < 0) in.fail();
  }
  const auto sac = in.number(1);
  if (sac > 1) in.fail();
  o.single_active_consumer = sac == 1;
  return o;
}

// The fixed part of an encoded command, before its ids.
constexpr std::size_t command_header_bytes = 1 + 1 + 8 + 4 + 1 + 4 + 1 + 8 + 8 + 8 + 8 + 4 + 4;

}  // namespace

std::vector<std::byte> encode(const queue_options& o) {
  std::vector<std::byte> out;
  put_options(out, o);
  return out;
}

std::optional<queue_options> decode_options(std::span<const std::byte> bytes) {
  reader in(bytes);
  queue_options o = get_options(in);
  if (!in.ok() || in.remaining() != 0) return std::nullopt;
  return o;
}

std::span<const std::byte> body_of(std::span<const std::byte> payload) {
  if (payload.size() < command_header_bytes) return {};
  reader in(payload.subspan(command_header_bytes - 4));
  const std::uint64_t count = in.number(4);
  const std::size_t at = command_header_bytes + static_cast<std::size_t>(count) * 8;
  return count > payload.size() / 8 || at > payload.size() ? std::span<const std::byte>{}
                                                           : payload.subspan(at);
}

raft::shared_bytes encode(const command& c, std::span<const std::byte> body) {
  std::vector<std::byte> out;
  put(out, command_version, 1);
  put(out, static_cast<std::uint8_t>(c.type), 1);
  put(out, c.consumer, 8);
  put(out, c.size, 4);
  put(out, c.priority, 1);
  put(out, c.prefetch, 4);
  put(out, static_cast<std::uint8_t>(c.outcome), 1);
  put(out, static_cast<std::uint64_t>(c.time), 8);
  put(out, static_cast<std::uint64_t>(c.ttl_ms), 8);
  put(out, c.producer, 8);
  put(out, c.sequence, 8);
  put(out, static_cast<std::uint32_t>(c.consumer_priority), 4);
  put(out, c.ids.size(), 4);
  for (message_id id : c.ids) put(out, id, 8);
  out.insert(out.end(), body.begin(), body.end());
  return raft::shared_bytes(std::move(out));
}

std::optional<command> decode(std::span<const std::byte> bytes, std::error_code& ec) {
  reader in(bytes);
  command c;
  if (in.number(1) != command_version) in.fail();
  const auto type = in.number(1);
  if (type < 1 || type > 8) in.fail();
  c.type = static_cast<command::kind>(type);
  c.consumer = in.number(8);
  c.size = static_cast<std::uint32_t>(in.number(4));
  c.priority = static_cast<std::uint8_t>(in.number(1));
  if (c.priority > max_priority) in.fail();
  c.prefetch = static_cast<std::uint32_t>(in.number(4));
  const auto outcome = in.number(1);
  if (outcome < 1 || outcome > 3) in.fail();
  c.outcome = static_cast<settlement>(outcome);
  c.time = static_cast<std::int64_t>(in.number(8));
  c.ttl_ms = static_cast<std::int64_t>(in.number(8));
  if (c.time < 0 || c.ttl_ms < 0) in.fail();
  c.producer = in.number(8);
  c.sequence = in.number(8);
  c.consumer_priority = static_cast<std::int32_t>(static_cast<std::uint32_t>(in.number(4)));
  const std::uint64_t count = in.number(4);
  // The count is checked against the bytes present before anything is reserved. What follows
  // the ids is an enqueue's body, of exactly its size.
  if (count > in.remaining() / 8) in.fail();
  if (in.ok()) c.ids.reserve(static_cast<std::size_t>(count));
  for (std::uint64_t i = 0; in.ok() && i < count; ++i) c.ids.push_back(in.number(8));
  const std::size_t body = c.type == command::kind::enqueue ? c.size : 0;
  if (in.remaining() != body) in.fail();
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
  if (!c) return failed(ec);
  return apply(e.index, *c);
}

effects state_machine::apply(raft::index_t index, const command& c) {
  effects out;
  // Refusals first, so that a refused command changes nothing (not even the clock).
  if (c.type == command::kind::detach && !consumers_.contains(c.consumer)) {
    return failed(errc::invalid_command);
  }
  if (c.type == command::kind::settle) {
    auto it = consumers_.find(c.consumer);
    if (it == consumers_.end()) return failed(errc::invalid_command);
    std::set<message_id> seen;
    for (message_id id : c.ids) {
      if (!it->second.unacked.contains(id) || !seen.insert(id).second) {
        return failed(errc::invalid_command);
      }
    }
  }
  now_ = std::max(now_, c.time);
  if (last_used_ < 0) last_used_ = now_;  // a new queue counts as used when it starts
  switch (c.type) {
    case command::kind::enqueue: enqueue(index, c, out); break;
    case command::kind::attach: {
      consumer& who = consumers_[c.consumer];
      // Attaching again changes prefetch and priority; what the consumer holds stays with it.
      if (!who.attached) who.arrival = ++arrivals_;
      who.attached = true;
      who.prefetch = c.prefetch;
      who.priority = c.consumer_priority;
      last_used_ = now_;
      break;
    }
    case command::kind::detach: {
      auto it = consumers_.find(c.consumer);
      // A consumer that goes away releases what it held, in order, without counting a failure.
      const auto held = std::move(it->second.unacked);
      consumers_.erase(it);
      if (active_ == c.consumer) active_ = 0;
      for (const auto& [id, since] : held) give_back(id, false, out);
      last_used_ = now_;
      break;
    }
    case command::kind::settle: {
      consumer& who = consumers_.at(c.consumer);
      for (message_id id : c.ids) {
        who.unacked.erase(id);
        switch (c.outcome) {
          case settlement::ack: discard(id, removal::acked, out); break;
          case settlement::requeue: give_back(id, true, out); break;
          case settlement::reject: discard(id, removal::dropped, out); break;
        }
      }
      break;
    }
    case command::kind::purge: {
      std::vector<message_id> doomed;
      for (const auto& [priority, id] : ready_) doomed.push_back(id);
      for (const auto& [at, id] : delayed_) doomed.push_back(id);
      delayed_.clear();
      for (message_id id : doomed) discard(id, removal::purged, out);
      break;
    }
    case command::kind::get: {
      last_used_ = now_;
      housekeeping(out);  // nothing expired may be handed out
      if (ready_.empty()) break;
      consumer& who = consumers_[c.consumer];
      hand_over(c.consumer, who, ready_.begin()->second, out);
      break;
    }
    case command::kind::tick: break;
    case command::kind::dead_lettered:
      // Idempotent: a hand-over repeated after a failure confirms nothing new.
      for (message_id id : c.ids) {
        if (dead_letters_.erase(id) == 0) continue;
        messages_.erase(id);
        out.removals.push_back({id, removal::dead_lettered});
      }
      break;
  }
  housekeeping(out);
  choose_active();
  deliver(out);
  return out;
}

void state_machine::enqueue(raft::index_t index, const command& c, effects& out) {
  if (c.producer != 0) {
    auto it = producers_.find(c.producer);
    if (it != producers_.end() && c.sequence <= it->second) {
      out.published = effects::publish::duplicate;  // confirmed before: nothing to do
      return;
    }
  }
  auto over = [&](std::uint64_t extra_count, std::uint64_t extra_bytes) {
    return (options_.max_length != 0 && ready_.size() + extra_count > options_.max_length) ||
           (options_.max_length_bytes != 0 &&
            ready_bytes_ + extra_bytes > options_.max_length_bytes);
  };
  if (options_.overflow != overflow::drop_head && over(1, c.size)) {
    if (options_.overflow == overflow::reject_publish_dlx) {
      out.published = effects::publish::rejected_dlx;
      out.removals.push_back(
          {index, options_.dead_letter_target.empty() ? removal::dropped : removal::dead_lettered});
    } else {
      out.published = effects::publish::rejected;
    }
    return;
  }
  std::int64_t ttl = options_.message_ttl_ms;
  if (c.ttl_ms > 0 && (ttl == 0 || c.ttl_ms < ttl)) ttl = c.ttl_ms;
  messages_[index] = message{c.size, c.priority, 0, false, false, ttl > 0 ? now_ + ttl : 0, 0};
  make_ready(index);
  out.published = effects::publish::accepted;
  // Only an accepted message counts for deduplication: a refused one may be sent again.
  if (c.producer != 0) producers_[c.producer] = c.sequence;
  // drop-head: the oldest messages at the head make room (the new one last of all).
  while (over(0, 0)) {
    auto head = ready_.begin();
    if (head->second == index && ready_.size() > 1) ++head;
    discard(head->second, removal::dropped, out);
  }
}

void state_machine::make_ready(message_id id) {
  const message& m = messages_.at(id);
  ready_.insert({m.priority, id});
  ready_bytes_ += m.size;
  if (m.expires_at != 0) expiry_.insert({m.expires_at, id});
}

void state_machine::unready(message_id id) {
  const message& m = messages_.at(id);
  if (ready_.erase({m.priority, id}) == 0) return;
  ready_bytes_ -= m.size;
  expiry_.erase({m.expires_at, id});
}

void state_machine::discard(message_id id, removal why, effects& out) {
  unready(id);
  // Rejected, dropped and expired messages go to the dead-letter target if there is one.
  if ((why == removal::dropped || why == removal::expired) &&
      !options_.dead_letter_target.empty()) {
    if (options_.dead_letter == dead_letter_strategy::at_least_once) {
      // Kept (undeliverable) until the target confirms it has the message.
      message& m = messages_.at(id);
      m.dead = true;
      m.delivered = false;  // never delivered again: a snapshot records only that it is dead
      dead_letters_.insert(id);
      out.dead_letters.push_back(id);
      return;
    }
    why = removal::dead_lettered;
  }
  messages_.erase(id);
  out.removals.push_back({id, why});
}

void state_machine::give_back(message_id id, bool count_failure, effects& out) {
  message& m = messages_.at(id);
  if (count_failure) ++m.failed;
  if (count_failure && options_.delivery_limit >= 0 &&
      m.failed > static_cast<std::uint32_t>(options_.delivery_limit)) {
    discard(id, removal::dropped, out);
    return;
  }
  if (count_failure && options_.retry_min_ms > 0) {
    // Delayed retry: min, 2 min, 4 min ... up to max.
    std::int64_t delay = options_.retry_min_ms;
    for (std::uint32_t i = 1; i < m.failed && delay < options_.retry_max_ms; ++i) delay *= 2;
    if (options_.retry_max_ms > 0) delay = std::min(delay, options_.retry_max_ms);
    m.ready_at = now_ + delay;
    delayed_.insert({m.ready_at, id});
    return;
  }
  if (count_failure && options_.test_mutation == queue_mutation::lose_requeued) return;
  make_ready(id);
}

void state_machine::housekeeping(effects& out) {
  while (!delayed_.empty() && delayed_.begin()->first <= now_) {
    const message_id id = delayed_.begin()->second;
    delayed_.erase(delayed_.begin());
    messages_.at(id).ready_at = 0;
    make_ready(id);
  }
  // TTL: a ready message expires wherever it sits, not only at the head.
  while (!expiry_.empty() && expiry_.begin()->first <= now_) {
    const message_id id = expiry_.begin()->second;
    discard(id, removal::expired, out);
  }
  if (options_.consumer_timeout_ms > 0) {
    for (auto& [id, c] : consumers_) {
      std::vector<message_id> late;
      for (const auto& [m, since] : c.unacked) {
        if (now_ - since >= options_.consumer_timeout_ms) late.push_back(m);
      }
      if (late.empty()) continue;
      out.timed_out.push_back(id);
      for (message_id m : late) {
        c.unacked.erase(m);
        give_back(m, false, out);
      }
    }
  }
  const bool in_use = std::any_of(consumers_.begin(), consumers_.end(),
                                  [](const auto& c) { return c.second.attached; });
  if (in_use) last_used_ = now_;
  if (options_.expires_ms > 0 && !expired_ && now_ - last_used_ >= options_.expires_ms) {
    expired_ = true;
    out.queue_expired = true;
  }
}

void state_machine::choose_active() {
  if (!options_.single_active_consumer) return;
  const consumer* current = nullptr;
  if (auto it = consumers_.find(active_); it != consumers_.end() && it->second.attached) {
    current = &it->second;
  } else {
    active_ = 0;
  }
  // The best candidate: highest priority, then the earliest to attach.
  consumer_id best = 0;
  const consumer* best_c = nullptr;
  for (const auto& [id, c] : consumers_) {
    if (!c.attached) continue;
    if (best_c == nullptr || c.priority > best_c->priority ||
        (c.priority == best_c->priority && c.arrival < best_c->arrival)) {
      best = id;
      best_c = &c;
    }
  }
  if (current == nullptr) {
    active_ = best;
  } else if (best_c != nullptr && best_c->priority > current->priority &&
             current->unacked.empty()) {
    active_ = best;  // takeover, once the active consumer has settled what it held
  }
}

bool state_machine::may_receive(const consumer& c) const {
  return c.attached && c.unacked.size() < c.prefetch;
}

void state_machine::deliver(effects& out) {
  while (!ready_.empty()) {
    consumer_id chosen = 0;
    if (options_.single_active_consumer) {
      // A higher-priority consumer waiting to take over stops new deliveries to the active one.
      auto it = consumers_.find(active_);
      if (it == consumers_.end() || !may_receive(it->second)) return;
      for (const auto& [id, c] : consumers_) {
        if (c.attached && c.priority > it->second.priority) return;
      }
      chosen = active_;
    } else {
      // Consumer priorities: only the highest priority with credit is served; round robin
      // among those, starting after the last one served.
      std::optional<std::int32_t> top;
      for (const auto& [id, c] : consumers_) {
        if (may_receive(c) && (!top || c.priority > *top)) top = c.priority;
      }
      if (!top) return;
      auto it = consumers_.lower_bound(next_turn_);
      for (std::size_t looked = 0; looked < consumers_.size(); ++looked, ++it) {
        if (it == consumers_.end()) it = consumers_.begin();
        if (may_receive(it->second) && it->second.priority == *top) break;
      }
      chosen = it->first;
      next_turn_ = chosen + 1;
    }
    hand_over(chosen, consumers_.at(chosen), ready_.begin()->second, out);
  }
}

void state_machine::hand_over(consumer_id who, consumer& c, message_id id, effects& out) {
  unready(id);
  message& m = messages_.at(id);
  c.unacked.emplace(id, now_);
  out.deliveries.push_back({who, id, m.failed, m.delivered});
  m.delivered = true;
}

queue_status state_machine::status() const {
  queue_status s;
  s.ready = ready_.size();
  s.ready_bytes = ready_bytes_;
  s.delayed = delayed_.size();
  s.dead_lettering = dead_letters_.size();
  for (const auto& [id, c] : consumers_) {
    s.unacked += c.unacked.size();
    for (const auto& [m, since] : c.unacked) s.unacked_bytes += messages_.at(m).size;
    if (c.attached) ++s.consumers;
  }
  s.active_consumer = active_;
  return s;
}

raft::index_t state_machine::oldest_live() const {
  return messages_.empty() ? 0 : messages_.begin()->first;
}

raft::shared_bytes state_machine::snapshot() const {
  std::vector<std::byte> out;
  auto put_signed = [&](std::int64_t v) { put(out, static_cast<std::uint64_t>(v), 8); };
  put(out, snapshot_version, 1);
  put_options(out, options_);
  // State.
  put_signed(now_);
  put_signed(last_used_);
  put(out, expired_ ? 1 : 0, 1);
  put(out, next_turn_, 8);
  put(out, arrivals_, 8);
  put(out, active_, 8);
  put(out, messages_.size(), 8);
  for (const auto& [id, m] : messages_) {
    put(out, id, 8);
    put(out, m.size, 4);
    put(out, m.priority, 1);
    put(out, m.failed, 4);
    put(out, m.dead ? 2 : m.delivered ? 1 : 0, 1);
    put_signed(m.expires_at);
    put_signed(m.ready_at);
  }
  put(out, consumers_.size(), 8);
  for (const auto& [id, c] : consumers_) {
    put(out, id, 8);
    put(out, c.prefetch, 4);
    put(out, static_cast<std::uint32_t>(c.priority), 4);
    put(out, c.arrival, 8);
    put(out, c.attached ? 1 : 0, 1);
    put(out, c.unacked.size(), 8);
    for (const auto& [m, since] : c.unacked) {
      put(out, m, 8);
      put_signed(since);
    }
  }
  put(out, producers_.size(), 8);
  for (const auto& [producer, sequence] : producers_) {
    put(out, producer, 8);
    put(out, sequence, 8);
  }
  return raft::shared_bytes(std::move(out));
}

bool state_machine::restore(const raft::shared_bytes& bytes) {
  reader in(bytes.bytes());
  auto get_signed = [&] { return static_cast<std::int64_t>(in.number(8)); };
  auto get_flag = [&] {
    const auto v = in.number(1);
    if (v > 1) in.fail();
    return v == 1;
  };
  state_machine s;
  if (in.number(1) != snapshot_version) return false;
  s.options_ = get_options(in);
  if (!in.ok()) return false;
  s.options_.test_mutation = options_.test_mutation;  // of the running code, not of the data
  s.now_ = get_signed();
  s.last_used_ = get_signed();
  s.expired_ = get_flag();
  s.next_turn_ = in.number(8);
  s.arrivals_ = in.number(8);
  s.active_ = in.number(8);
  const std::uint64_t messages = in.number(8);
  if (messages > in.remaining() / 34) return false;
  for (std::uint64_t i = 0; i < messages; ++i) {
    const message_id id = in.number(8);
    message m;
    m.size = static_cast<std::uint32_t>(in.number(4));
    m.priority = static_cast<std::uint8_t>(in.number(1));
    m.failed = static_cast<std::uint32_t>(in.number(4));
    const auto state = in.number(1);
    if (state > 2) in.fail();
    m.delivered = state == 1;
    m.dead = state == 2;
    m.expires_at = get_signed();
    m.ready_at = get_signed();
    if (m.priority > max_priority || !s.messages_.emplace(id, m).second) return false;
  }
  const std::uint64_t consumers = in.number(8);
  if (consumers > in.remaining() / 33) return false;
  std::set<message_id> held;
  for (std::uint64_t i = 0; i < consumers && in.ok(); ++i) {
    consumer& c = s.consumers_[in.number(8)];
    c.prefetch = static_cast<std::uint32_t>(in.number(4));
    c.priority = static_cast<std::int32_t>(static_cast<std::uint32_t>(in.number(4)));
    c.arrival = in.number(8);
    c.attached = get_flag();
    const std::uint64_t count = in.number(8);
    if (count > in.remaining() / 16) return false;
    for (std::uint64_t k = 0; k < count; ++k) {
      const message_id id = in.number(8);
      const std::int64_t since = get_signed();
      // Every held message is live and held by one consumer only.
      if (!s.messages_.contains(id) || !held.insert(id).second) return false;
      c.unacked.emplace(id, since);
    }
  }
  const std::uint64_t producers = in.number(8);
  if (producers > in.remaining() / 16) return false;
  for (std::uint64_t i = 0; i < producers; ++i) {
    const std::uint64_t producer = in.number(8);
    s.producers_[producer] = in.number(8);
  }
  if (!in.ok() || in.remaining() != 0 || s.consumers_.size() != consumers ||
      s.producers_.size() != producers) {
    return false;
  }
  // Messages not held are delayed (a retry time ahead) or ready.
  for (const auto& [id, m] : s.messages_) {
    if (held.contains(id)) continue;
    if (m.dead) {
      s.dead_letters_.insert(id);
    } else if (m.ready_at != 0) {
      s.delayed_.insert({m.ready_at, id});
    } else {
      s.make_ready(id);
    }
  }
  *this = std::move(s);
  return true;
}

}  // namespace quorum::queue
