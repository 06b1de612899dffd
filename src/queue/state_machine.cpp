// The quorum queue's state machine: command codec, apply, snapshot.
#include <quorum/error.hpp>
#include <quorum/queue/state_machine.hpp>

#include <quorum/detail/assert.hpp>
#include <quorum/detail/varint.hpp>

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
    if (in_.size() - at_ < static_cast<std::size_t>(bytes)) return fail_all();
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= std::to_integer<std::uint64_t>(in_[at_ + i]) << (8 * i);
    at_ += static_cast<std::size_t>(bytes);
    return v;
  }
  /** A LEB128 number (detail/varint.hpp); one byte, the usual case, without a call. */
  std::uint64_t varint() {
    if (at_ < in_.size() && std::to_integer<std::uint8_t>(in_[at_]) < 0x80) {
      return std::to_integer<std::uint64_t>(in_[at_++]);
    }
    std::uint64_t v = 0;
    if (!detail::get_varint(in_, at_, v)) return fail_all();
    return v;
  }
  std::uint8_t byte() {
    if (at_ == in_.size()) return static_cast<std::uint8_t>(fail_all());
    return std::to_integer<std::uint8_t>(in_[at_++]);
  }
  std::size_t remaining() const { return in_.size() - at_; }
  bool ok() const { return ok_; }
  void fail() { ok_ = false; }

 private:
  /** Fails for good: every later read fails too. */
  std::uint64_t fail_all() {
    ok_ = false;
    at_ = in_.size();
    return 0;
  }

  std::span<const std::byte> in_;
  std::size_t at_ = 0;
  bool ok_ = true;
};

// Version 1 is a queue's own command; version 2 adds the member and fan-out of a queue group
// (written only when either is set, so a queue of its own writes what it always has).
constexpr std::uint8_t command_version = 1;
constexpr std::uint8_t group_command_version = 2;

effects failed(std::error_code ec) {
  effects out;
  out.error = ec;
  return out;
}
constexpr std::uint8_t snapshot_version = 3;
// A message in a snapshot, at the least: id (the gap from the previous one), size, priority,
// failures, flags, expiry, retry time; a byte each in LEB128 when small.
constexpr std::size_t least_message_bytes = 7;

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

// The fixed part of an encoded command, before its ids (version 1; version 2 puts the member
// and fan-out before the id count).
constexpr std::size_t command_header_bytes = 1 + 1 + 8 + 4 + 1 + 4 + 1 + 8 + 8 + 8 + 8 + 4 + 4;
constexpr std::size_t group_fields_bytes = 1 + 8;

std::size_t header_bytes(std::span<const std::byte> payload) {
  return !payload.empty() && std::to_integer<std::uint8_t>(payload[0]) == group_command_version
             ? command_header_bytes + group_fields_bytes
             : command_header_bytes;
}

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
  const std::size_t header = header_bytes(payload);
  if (payload.size() < header) return {};
  reader in(payload.subspan(header - 4));
  const std::uint64_t count = in.number(4);
  const std::size_t at = header + static_cast<std::size_t>(count) * 8;
  return count > payload.size() / 8 || at > payload.size() ? std::span<const std::byte>{}
                                                           : payload.subspan(at);
}

raft::shared_bytes encode(const command& c, std::span<const std::byte> body) {
  std::vector<std::byte> out;
  const bool grouped = c.member != 0 || c.fanout != 0;
  put(out, grouped ? group_command_version : command_version, 1);
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
  if (grouped) {
    put(out, c.member, 1);
    put(out, c.fanout, 8);
  }
  put(out, c.ids.size(), 4);
  for (message_id id : c.ids) put(out, id, 8);
  out.insert(out.end(), body.begin(), body.end());
  return raft::shared_bytes(std::move(out));
}

std::optional<command> decode(std::span<const std::byte> bytes, std::error_code& ec) {
  reader in(bytes);
  command c;
  const auto version = in.number(1);
  if (version != command_version && version != group_command_version) in.fail();
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
  if (version == group_command_version) {
    c.member = static_cast<std::uint8_t>(in.number(1));
    c.fanout = in.number(8);
  }
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
      const auto holding = std::move(it->second.unacked);
      consumers_.erase(it);
      if (active_ == c.consumer) active_ = 0;
      for (const auto& [id, h] : holding) give_back(h.m, false, out);
      last_used_ = now_;
      break;
    }
    case command::kind::settle: {
      consumer& who = consumers_.at(c.consumer);
      for (message_id id : c.ids) {
        auto node = who.unacked.extract(id);
        const message m = node.mapped().m;
        switch (c.outcome) {
          case settlement::ack: discard(m, removal::acked, out); break;
          case settlement::requeue: give_back(m, true, out); break;
          case settlement::reject: discard(m, removal::dropped, out); break;
        }
      }
      // A getter (never attached) is gone once it holds nothing.
      if (!who.attached && who.unacked.empty()) consumers_.erase(c.consumer);
      break;
    }
    case command::kind::purge: {
      // In delivery order, then the delayed ones by retry time.
      while (auto h = head()) discard(take(h->first, h->second), removal::purged, out);
      for (const auto& [at, id] : retry_at_) discard(delayed_.at(id).m, removal::purged, out);
      delayed_.clear();
      retry_at_.clear();
      break;
    }
    case command::kind::get: {
      last_used_ = now_;
      housekeeping(out);  // nothing expired may be handed out
      const auto h = head();
      if (!h) break;
      consumer& who = consumers_[c.consumer];
      hand_over(c.consumer, who, take(h->first, h->second), out);
      break;
    }
    case command::kind::tick: break;
    case command::kind::dead_lettered:
      // Idempotent: a hand-over repeated after a failure confirms nothing new.
      for (message_id id : c.ids) {
        if (dead_.erase(id) == 0) continue;
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
    return (options_.max_length != 0 && ready_count_ + extra_count > options_.max_length) ||
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
  message m;
  m.id = index;
  m.size = c.size;
  m.priority = c.priority;
  const std::int64_t ttl = options_.message_ttl_ms;
  if (c.ttl_ms > 0 && (ttl == 0 || c.ttl_ms < ttl)) {
    m.expires_at = now_ + c.ttl_ms;
    m.flags = flag_own_ttl;
    expiry_.insert({m.expires_at, m.id, m.priority});
  } else if (ttl > 0) {
    m.expires_at = now_ + ttl;  // in arrival order, as the clock never runs backwards
  }
  fresh_[m.priority].push_back(m);
  ++ready_count_;
  ready_bytes_ += m.size;
  out.published = effects::publish::accepted;
  // Only an accepted message counts for deduplication: a refused one may be sent again.
  if (c.producer != 0) producers_[c.producer] = c.sequence;
  // drop-head: the oldest messages at the head make room (the new one last of all).
  while (over(0, 0)) {
    auto h = head(ready_count_ > 1 ? index : 0);
    discard(take(h->first, h->second), removal::dropped, out);
  }
}

std::optional<std::pair<std::uint8_t, message_id>> state_machine::head(message_id skip) const {
  for (int p = max_priority; p >= 0; --p) {
    const auto priority = static_cast<std::uint8_t>(p);
    std::optional<message_id> best;
    for (const message& m : fresh_[priority]) {
      if ((m.flags & flag_gone) != 0 || m.id == skip) continue;
      best = m.id;
      break;
    }
    for (const auto& [id, m] : returned_[priority]) {
      if (id == skip) continue;
      if (!best || id < *best) best = id;
      break;
    }
    if (best) return std::pair(priority, *best);
  }
  return std::nullopt;
}

state_machine::message state_machine::take(std::uint8_t priority, message_id id) {
  message m;
  auto& back = returned_[priority];
  if (auto it = back.find(id); it != back.end()) {
    m = it->second;
    back.erase(it);
  } else {
    lane& l = fresh_[priority];
    auto it2 = std::lower_bound(l.begin(), l.end(), id,
                                [](const message& a, message_id b) { return a.id < b; });
    QUORUM_ASSERT(it2 != l.end() && it2->id == id && (it2->flags & flag_gone) == 0,
                  "a ready message is in its lane");
    m = *it2;
    it2->flags |= flag_gone;
    while (!l.empty() && (l.front().flags & flag_gone) != 0) l.pop_front();
  }
  --ready_count_;
  ready_bytes_ -= m.size;
  if (m.expires_at != 0) expiry_.erase({m.expires_at, m.id, m.priority});
  return m;
}

void state_machine::make_ready(const message& m) {
  // Only messages delivered before come back: they return to their place by id.
  returned_[m.priority].emplace(m.id, m);
  ++ready_count_;
  ready_bytes_ += m.size;
  if (m.expires_at != 0) expiry_.insert({m.expires_at, m.id, m.priority});
}

void state_machine::discard(message m, removal why, effects& out) {
  // Rejected, dropped and expired messages go to the dead-letter target if there is one.
  if ((why == removal::dropped || why == removal::expired) &&
      !options_.dead_letter_target.empty()) {
    if (options_.dead_letter == dead_letter_strategy::at_least_once) {
      // Kept (undeliverable) until the target confirms it has the message.
      m.flags = flag_dead;
      dead_.emplace(m.id, m);
      out.dead_letters.push_back(m.id);
      return;
    }
    why = removal::dead_lettered;
  }
  out.removals.push_back({m.id, why});
}

void state_machine::give_back(message m, bool count_failure, effects& out) {
  if (count_failure && m.failed < 0xffff) ++m.failed;
  if (count_failure && options_.delivery_limit >= 0 &&
      m.failed > static_cast<std::uint32_t>(options_.delivery_limit)) {
    discard(m, removal::dropped, out);
    return;
  }
  if (count_failure && options_.retry_min_ms > 0) {
    // Delayed retry: min, 2 min, 4 min ... up to max.
    std::int64_t delay = options_.retry_min_ms;
    for (std::uint32_t i = 1; i < m.failed && delay < options_.retry_max_ms; ++i) delay *= 2;
    if (options_.retry_max_ms > 0) delay = std::min(delay, options_.retry_max_ms);
    delayed_.emplace(m.id, delayed_message{m, now_ + delay});
    retry_at_.insert({now_ + delay, m.id});
    return;
  }
  if (count_failure && options_.test_mutation == queue_mutation::lose_requeued) return;
  make_ready(m);
}

void state_machine::housekeeping(effects& out) {
  while (!retry_at_.empty() && retry_at_.begin()->first <= now_) {
    const message_id id = retry_at_.begin()->second;
    retry_at_.erase(retry_at_.begin());
    make_ready(delayed_.at(id).m);
    delayed_.erase(id);
  }
  // TTL: a ready message expires wherever it sits, not only at the head; in order of expiry.
  std::vector<std::tuple<std::int64_t, message_id, std::uint8_t>> due;
  for (const auto& e : expiry_) {
    if (std::get<0>(e) > now_) break;
    due.push_back(e);
  }
  if (options_.message_ttl_ms > 0) {
    for (std::size_t p = 0; p <= max_priority; ++p) {
      for (const message& m : fresh_[p]) {
        if ((m.flags & (flag_gone | flag_own_ttl)) != 0) continue;
        if (m.expires_at > now_) break;  // the queue's TTL: later arrivals expire later
        due.push_back({m.expires_at, m.id, m.priority});
      }
    }
  }
  std::sort(due.begin(), due.end());
  for (const auto& [at, id, priority] : due) discard(take(priority, id), removal::expired, out);
  if (options_.consumer_timeout_ms > 0) {
    for (auto& [id, c] : consumers_) {
      std::vector<message_id> late;
      for (const auto& [m, h] : c.unacked) {
        if (now_ - h.since >= options_.consumer_timeout_ms) late.push_back(m);
      }
      if (late.empty()) continue;
      out.timed_out.push_back(id);
      for (message_id m : late) {
        const message back = c.unacked.at(m).m;
        c.unacked.erase(m);
        give_back(back, false, out);
      }
    }
    std::erase_if(consumers_,
                  [](const auto& c) { return !c.second.attached && c.second.unacked.empty(); });
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
  while (ready_count_ > 0) {
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
    const auto h = head();
    hand_over(chosen, consumers_.at(chosen), take(h->first, h->second), out);
  }
}

void state_machine::hand_over(consumer_id who, consumer& c, message m, effects& out) {
  out.deliveries.push_back({who, m.id, m.failed, (m.flags & flag_delivered) != 0});
  m.flags = static_cast<std::uint8_t>((m.flags | flag_delivered) & ~flag_own_ttl);
  c.unacked.emplace(m.id, held{m, now_});
}

queue_status state_machine::status() const {
  queue_status s;
  s.ready = ready_count_;
  s.ready_bytes = ready_bytes_;
  s.delayed = delayed_.size();
  s.dead_lettering = dead_.size();
  for (const auto& [id, c] : consumers_) {
    s.unacked += c.unacked.size();
    for (const auto& [m, h] : c.unacked) s.unacked_bytes += h.m.size;
    if (c.attached) ++s.consumers;
  }
  s.active_consumer = active_;
  return s;
}

std::vector<consumer_id> state_machine::consumers() const {
  std::vector<consumer_id> out;
  for (const auto& [id, c] : consumers_) out.push_back(id);
  return out;
}

std::vector<delivery> state_machine::held_by(consumer_id c) const {
  std::vector<delivery> out;
  auto it = consumers_.find(c);
  if (it == consumers_.end()) return out;
  for (const auto& [id, h] : it->second.unacked) out.push_back({c, id, h.m.failed, true});
  return out;
}

std::vector<message_id> state_machine::dead_letters() const {
  std::vector<message_id> out;
  for (const auto& [id, m] : dead_) out.push_back(id);
  return out;
}

raft::index_t state_machine::oldest_live() const {
  message_id oldest = 0;
  auto see = [&](message_id id) {
    if (oldest == 0 || id < oldest) oldest = id;
  };
  for (std::size_t p = 0; p <= max_priority; ++p) {
    for (const message& m : fresh_[p]) {
      if ((m.flags & flag_gone) != 0) continue;
      see(m.id);
      break;
    }
    if (!returned_[p].empty()) see(returned_[p].begin()->first);
  }
  for (const auto& [id, c] : consumers_) {
    if (!c.unacked.empty()) see(c.unacked.begin()->first);
  }
  if (!delayed_.empty()) see(delayed_.begin()->first);
  if (!dead_.empty()) see(dead_.begin()->first);
  return oldest;
}

template <class Visit>
void state_machine::visit_live(Visit&& visit) const {
  // Every place a message can be is already in id order: a merge of them visits all in id
  // order with no copy and no sort (a snapshot of millions of messages needs neither).
  struct source {
    std::function<bool(const message*&, std::int64_t&)> next;  // false at the end
    const message* head = nullptr;
    std::int64_t ready_at = 0;
  };
  std::vector<source> sources;
  const auto range = [&](auto first, auto last, auto project) {
    sources.push_back({[first, last, project](const message*& m, std::int64_t& ready_at) mutable {
      while (first != last) {
        const auto it = first++;
        if (project(*it, m, ready_at)) return true;
      }
      return false;
    }});
  };
  for (std::size_t p = 0; p <= max_priority; ++p) {
    range(fresh_[p].begin(), fresh_[p].end(), [](const message& x, const message*& m, auto&) {
      m = &x;
      return (x.flags & flag_gone) == 0;
    });
    range(returned_[p].begin(), returned_[p].end(), [](const auto& x, const message*& m, auto&) {
      m = &x.second;
      return true;
    });
  }
  for (const auto& [id, c] : consumers_) {
    range(c.unacked.begin(), c.unacked.end(), [](const auto& x, const message*& m, auto&) {
      m = &x.second.m;
      return true;
    });
  }
  range(delayed_.begin(), delayed_.end(),
        [](const auto& x, const message*& m, std::int64_t& ready_at) {
          m = &x.second.m;
          ready_at = x.second.ready_at;
          return true;
        });
  range(dead_.begin(), dead_.end(), [](const auto& x, const message*& m, auto&) {
    m = &x.second;
    return true;
  });
  // A min-heap of the sources' heads by id.
  std::vector<std::size_t> heap;
  for (std::size_t i = 0; i < sources.size(); ++i) {
    if (sources[i].next(sources[i].head, sources[i].ready_at)) heap.push_back(i);
  }
  const auto later = [&](std::size_t a, std::size_t b) {
    return sources[a].head->id > sources[b].head->id;
  };
  std::make_heap(heap.begin(), heap.end(), later);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    source& s = sources[heap.back()];
    visit(*s.head, s.ready_at);
    s.ready_at = 0;
    if (s.next(s.head, s.ready_at)) {
      std::push_heap(heap.begin(), heap.end(), later);
    } else {
      heap.pop_back();
    }
  }
}

std::vector<message_id> state_machine::live_ids() const {
  std::vector<message_id> ids;
  ids.reserve(static_cast<std::size_t>(live_count()));
  visit_live([&](const message& m, std::int64_t) { ids.push_back(m.id); });
  return ids;
}

std::uint64_t state_machine::live_count() const {
  std::uint64_t n = ready_count_ + delayed_.size() + dead_.size();
  for (const auto& [id, c] : consumers_) n += c.unacked.size();
  return n;
}

bool operator==(const state_machine& a, const state_machine& b) {
  auto live = [](const state_machine& s, std::size_t p) {
    std::vector<state_machine::message> out;
    for (const auto& m : s.fresh_[p]) {
      if ((m.flags & state_machine::flag_gone) == 0) out.push_back(m);
    }
    return out;
  };
  for (std::size_t p = 0; p <= max_priority; ++p) {
    if (live(a, p) != live(b, p)) return false;
  }
  return a.options_ == b.options_ && a.now_ == b.now_ && a.returned_ == b.returned_ &&
         a.ready_count_ == b.ready_count_ && a.ready_bytes_ == b.ready_bytes_ &&
         a.expiry_ == b.expiry_ && a.delayed_ == b.delayed_ && a.retry_at_ == b.retry_at_ &&
         a.dead_ == b.dead_ && a.consumers_ == b.consumers_ && a.next_turn_ == b.next_turn_ &&
         a.arrivals_ == b.arrivals_ && a.active_ == b.active_ && a.producers_ == b.producers_ &&
         a.last_used_ == b.last_used_ && a.expired_ == b.expired_;
}

raft::shared_bytes state_machine::snapshot() const {
  // Consumers come before the messages, so that a restore places each message as it reads it.
  std::vector<std::byte> out;
  auto put_signed = [&](std::int64_t v) { put(out, static_cast<std::uint64_t>(v), 8); };
  auto number = [&](std::uint64_t v) { detail::put_varint(out, v); };
  put(out, snapshot_version, 1);
  put_options(out, options_);
  put_signed(now_);
  put_signed(last_used_);
  put(out, expired_ ? 1 : 0, 1);
  number(next_turn_);
  number(arrivals_);
  number(active_);
  number(consumers_.size());
  for (const auto& [id, c] : consumers_) {
    number(id);
    number(c.prefetch);
    put(out, static_cast<std::uint32_t>(c.priority), 4);
    number(c.arrival);
    put(out, c.attached ? 1 : 0, 1);
    number(c.unacked.size());
    for (const auto& [m, h] : c.unacked) {
      number(m);
      put_signed(h.since);
    }
  }
  number(producers_.size());
  for (const auto& [producer, sequence] : producers_) {
    number(producer);
    number(sequence);
  }
  const std::uint64_t count = live_count();
  number(count);
  out.reserve(out.size() + count * (least_message_bytes + 2) + 16);
  message_id previous = 0;
  visit_live([&](const message& m, std::int64_t ready_at) {
    number(m.id - previous);
    previous = m.id;
    number(m.size);
    put(out, m.priority, 1);
    number(m.failed);
    put(out, m.flags, 1);
    number(static_cast<std::uint64_t>(m.expires_at));
    number(static_cast<std::uint64_t>(ready_at));
  });
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
  s.next_turn_ = in.varint();
  s.arrivals_ = in.varint();
  s.active_ = in.varint();
  const std::uint64_t consumers = in.varint();
  if (consumers > in.remaining() / 9) return false;
  // Where each message sits follows from its flags, its retry time and the consumer that
  // holds it, which come first.
  std::map<message_id, std::pair<consumer*, std::int64_t>> holders;
  for (std::uint64_t i = 0; i < consumers && in.ok(); ++i) {
    consumer& c = s.consumers_[in.varint()];
    const std::uint64_t prefetch = in.varint();
    if (prefetch > UINT32_MAX) return false;
    c.prefetch = static_cast<std::uint32_t>(prefetch);
    c.priority = static_cast<std::int32_t>(static_cast<std::uint32_t>(in.number(4)));
    c.arrival = in.varint();
    c.attached = get_flag();
    const std::uint64_t held_count = in.varint();
    if (held_count > in.remaining() / 9) return false;
    for (std::uint64_t k = 0; k < held_count; ++k) {
      const message_id id = in.varint();
      const std::int64_t since = get_signed();
      // Every held message is one consumer's only.
      if (!holders.emplace(id, std::pair(&c, since)).second) return false;
    }
  }
  const std::uint64_t producers = in.varint();
  if (producers > in.remaining() / 2) return false;
  for (std::uint64_t i = 0; i < producers && in.ok(); ++i) {
    const std::uint64_t producer = in.varint();
    s.producers_[producer] = in.varint();
  }
  if (!in.ok() || s.consumers_.size() != consumers || s.producers_.size() != producers) {
    return false;
  }
  const std::uint64_t count = in.varint();
  if (count > in.remaining() / least_message_bytes) return false;
  std::size_t placed_held = 0;
  message_id previous = 0;
  for (std::uint64_t i = 0; i < count && in.ok(); ++i) {
    message m;
    const std::uint64_t gap = in.varint();
    const std::uint64_t size = in.varint();
    m.priority = in.byte();
    const std::uint64_t failed = in.varint();
    m.flags = in.byte();
    m.expires_at = static_cast<std::int64_t>(in.varint());
    const auto ready_at = static_cast<std::int64_t>(in.varint());
    m.id = previous + gap;
    previous = m.id;
    m.size = static_cast<std::uint32_t>(size);
    m.failed = static_cast<std::uint16_t>(failed);
    const bool dead = (m.flags & flag_dead) != 0;
    // Ids ascend (so none repeats) and are never 0.
    if (!in.ok() || gap == 0 || m.id < gap || size > UINT32_MAX || failed > UINT16_MAX ||
        m.priority > max_priority ||
        (m.flags & ~(flag_delivered | flag_dead | flag_own_ttl)) != 0 ||
        (dead && m.flags != flag_dead) || ready_at < 0 || m.expires_at < 0) {
      return false;
    }
    if (auto h = holders.empty() ? holders.end() : holders.find(m.id); h != holders.end()) {
      // Held: delivered, not dead, not waiting to retry.
      if ((m.flags & flag_delivered) == 0 || dead || ready_at != 0) return false;
      h->second.first->unacked.emplace(m.id, held{m, h->second.second});
      ++placed_held;
    } else if (dead) {
      if (ready_at != 0) return false;
      s.dead_.emplace(m.id, m);
    } else if (ready_at != 0) {
      s.delayed_.emplace(m.id, delayed_message{m, ready_at});
      s.retry_at_.insert({ready_at, m.id});
    } else if ((m.flags & flag_delivered) != 0) {
      s.make_ready(m);
    } else {
      s.fresh_[m.priority].push_back(m);  // in id order, as they came
      ++s.ready_count_;
      s.ready_bytes_ += m.size;
      if ((m.flags & flag_own_ttl) != 0) s.expiry_.insert({m.expires_at, m.id, m.priority});
    }
  }
  if (!in.ok() || in.remaining() != 0) return false;
  if (placed_held != holders.size()) return false;  // a consumer holds a message that is not live
  *this = std::move(s);
  return true;
}

}  // namespace quorum::queue
