// Linearizability checking for register histories. Pure, single-threaded.
#include <quorum/sim/linearizability.hpp>

#include <algorithm>
#include <unordered_set>

namespace quorum::sim {
namespace {

struct event {
  std::uint64_t time;
  bool is_call;
  std::size_t op;
  event* match = nullptr;  // a call's return event
  event* prev = nullptr;
  event* next = nullptr;
};

struct state_key {
  std::vector<std::uint64_t> linearized;
  std::uint64_t value;
  bool operator==(const state_key&) const = default;
};

struct state_key_hash {
  std::size_t operator()(const state_key& k) const noexcept {
    std::uint64_t h = k.value * 0x9e3779b97f4a7c15ULL;
    for (std::uint64_t w : k.linearized) h = (h ^ w) * 0x100000001b3ULL;
    return static_cast<std::size_t>(h);
  }
};

void lift(event* call) {
  call->prev->next = call->next;
  if (call->next) call->next->prev = call->prev;
  event* ret = call->match;
  ret->prev->next = ret->next;
  if (ret->next) ret->next->prev = ret->prev;
}

void unlift(event* call) {
  event* ret = call->match;
  ret->prev->next = ret;
  if (ret->next) ret->next->prev = ret;
  call->prev->next = call;
  if (call->next) call->next->prev = call;
}

}  // namespace

std::optional<std::string> check_register(const std::vector<register_op>& all_ops,
                                          std::uint64_t max_steps) {
  // A write whose outcome is unknown and whose value no read returned can always take effect
  // last, after everything else, which is the same as never: leave it out. (Values are unique,
  // so "no read returned it" is exact.) This keeps the search small when many clients time out.
  std::unordered_set<std::uint64_t> read_values;
  for (const register_op& op : all_ops) {
    if (!op.is_write) read_values.insert(op.value);
  }
  std::vector<register_op> history;
  history.reserve(all_ops.size());
  for (const register_op& op : all_ops) {
    const bool unobserved_unknown =
        op.is_write && op.completed == register_op::never && !read_values.contains(op.value);
    if (!unobserved_unknown) history.push_back(op);
  }
  const std::size_t n = history.size();
  if (n == 0) return std::nullopt;
  std::vector<event> events;
  events.reserve(2 * n + 1);
  for (std::size_t i = 0; i < n; ++i) {
    events.push_back({history[i].invoked, true, i});
    events.push_back({history[i].completed, false, i});
  }
  // At equal times calls come first: operations that touch in time count as concurrent,
  // which can only hide a violation, never invent one.
  std::sort(events.begin(), events.end(), [](const event& a, const event& b) {
    if (a.time != b.time) return a.time < b.time;
    if (a.is_call != b.is_call) return a.is_call;
    return a.op < b.op;
  });
  std::vector<event*> ret_of(n);
  for (auto& e : events) {
    if (!e.is_call) ret_of[e.op] = &e;
  }
  event head{0, false, n};
  event* prev = &head;
  for (auto& e : events) {
    if (e.is_call) e.match = ret_of[e.op];
    e.prev = prev;
    prev->next = &e;
    prev = &e;
  }

  std::vector<std::uint64_t> linearized((n + 63) / 64, 0);
  std::unordered_set<state_key, state_key_hash> cache;
  std::vector<std::pair<event*, std::uint64_t>> calls;  // (call, value before it)
  std::uint64_t value = 0;
  std::uint64_t steps = 0;
  event* entry = head.next;
  while (head.next != nullptr) {
    if (++steps > max_steps) {
      return "linearizability search gave up after " + std::to_string(max_steps) + " steps";
    }
    if (entry->is_call) {
      const register_op& op = history[entry->op];
      const bool legal = op.is_write || op.value == value;
      if (legal) {
        const std::uint64_t next_value = op.is_write ? op.value : value;
        auto bits = linearized;
        bits[entry->op / 64] |= 1ULL << (entry->op % 64);
        if (cache.insert({bits, next_value}).second) {
          calls.emplace_back(entry, value);
          value = next_value;
          linearized = std::move(bits);
          lift(entry);
          entry = head.next;
          continue;
        }
      }
      entry = entry->next;
    } else {
      // An operation returned before any order could place it: undo the last choice.
      if (calls.empty()) {
        const register_op& op = history[entry->op];
        return std::string("no linearization: ") + (op.is_write ? "write of " : "read of ") +
               std::to_string(op.value) + " by client " + std::to_string(op.client) + " over [" +
               std::to_string(op.invoked) + ", " + std::to_string(op.completed) +
               "] cannot be ordered";
      }
      auto [call, before] = calls.back();
      calls.pop_back();
      value = before;
      linearized[call->op / 64] &= ~(1ULL << (call->op % 64));
      unlift(call);
      entry = call->next;
    }
  }
  return std::nullopt;
}

std::optional<std::string> kv_history::check() const {
  for (const auto& [key, ops] : ops_) {
    if (auto why = check_register(ops)) return "key " + key + ": " + *why;
  }
  return std::nullopt;
}

std::size_t kv_history::size() const {
  std::size_t total = 0;
  for (const auto& [key, ops] : ops_) total += ops.size();
  return total;
}

}  // namespace quorum::sim
