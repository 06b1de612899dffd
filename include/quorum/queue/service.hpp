// The quorum queue service of one node: the client API over a runtime::node. Every node of a
// cluster runs one service with the same cluster list. Group 1 is the registry of declared
// queues, replicated on every node; each queue is its own Raft group on `replicas` of the
// nodes, running queue::state_machine, or shares one with the other queues of its queue group
// (queue/group.hpp: a message for several of them is one entry). Any node takes any call: a node
// that holds a replica of the queue submits through it (forwarded to the leader if need be,
// replica::async_submit); a node that holds none answers errc::no_replica, and status() names the
// members to use.
//
// Message bodies travel in the enqueue entries and stay in the queue's log; each replica keeps
// a bounded cache of bodies (the head of the queue) and reads the rest back from its log.
// Deliveries are effects of applying the log: every member applies them, and the member where
// a consumer is attached hands the message to it. Completions run on the handler's associated
// executor, or else on the service's first executor.
#pragma once

#include <quorum/error.hpp>
#include <quorum/queue/group.hpp>
#include <quorum/queue/registry.hpp>
#include <quorum/queue/state_machine.hpp>
#include <quorum/runtime/node.hpp>
#include <quorum/runtime/waiter.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

namespace quorum::queue {

/** The registry's Raft group id; queues get the ids after it. */
inline constexpr std::uint64_t registry_group = 1;

/** How a queue is declared. */
struct declare_options {
  /** Nodes holding a replica (at most the cluster's size). 3 survives one failure. */
  std::uint32_t replicas = 3;
  queue_options queue;
};

/** How a message is published. */
struct publish_options {
  /** What the completion vouches for (docs/queue.md: what each level risks). */
  runtime::ack_level ack = runtime::ack_level::majority;
  std::uint8_t priority = 0;
  /** The message's own TTL (0: the queue's). */
  std::int64_t ttl_ms = 0;
  /** Publisher deduplication (producer 0: none): a retried publish with the same producer
   *  and sequence is confirmed again but not enqueued twice. */
  std::uint64_t producer = 0;
  std::uint64_t sequence = 0;
};

/** What a publish completed with. */
enum class publish_outcome : std::uint8_t {
  accepted,   // enqueued (ack_level::majority)
  duplicate,  // deduplicated: an earlier publish with this producer and sequence is enqueued
  rejected,   // refused by the queue's length limit (overflow reject_publish / _dlx)
  sent,       // ack_level none or leader: durable as the level says; enqueued unless refused
};

struct consumer_options {
  /** Unacknowledged deliveries at most. */
  std::uint32_t prefetch = 16;
  /** Higher is served first. */
  std::int32_t priority = 0;
  /** Called (on the consumer's executor) if the queue detaches the consumer without
   *  async_cancel: its node was cut off for longer than service_settings::consumer_grace, or
   *  the queue was deleted. No more deliveries come; attach again to resume. */
  std::function<void()> on_cancelled;
};

/** A delivered message. Settle it with its consumer and id. */
struct message {
  std::string queue;
  consumer_id consumer = 0;
  message_id id = 0;
  raft::shared_bytes body;
  /** Failed deliveries so far; redelivered if it was delivered before. */
  std::uint32_t failed = 0;
  bool redelivered = false;
};

/**
 * A consumer's deliveries as an awaitable stream: pass handler() to service::async_consume
 * (with this subscription's executor), then take each message with async_receive, e.g.
 * `auto [ec, m] = co_await sub.async_receive(asio::use_awaitable);`. Messages wait here until
 * received (prefetch bounds how many). close() ends the stream: a pending and every later
 * receive complete with errc::shutting_down once the waiting messages are taken. Use it from
 * its executor only.
 */
class subscription {
 public:
  explicit subscription(boost::asio::any_io_executor executor)
      : executor_(std::move(executor)), state_(std::make_shared<state>()) {}

  const boost::asio::any_io_executor& executor() const noexcept { return executor_; }

  /** The delivery handler for async_consume; it stays valid after the subscription is gone. */
  std::function<void(message)> handler() {
    return [s = state_](message m) {
      if (s->waiting) {
        std::exchange(s->waiting, nullptr)->complete({}, std::move(m));
      } else {
        s->ready.push_back(std::move(m));
      }
    };
  }

  /** Completes with the next message, (error_code, message). */
  template <class Token>
  auto async_receive(Token&& token) {
    return boost::asio::async_initiate<Token, void(std::error_code, message)>(
        [this](auto h) {
          auto w = runtime::make_waiter<message>(std::move(h), executor_);
          if (!state_->ready.empty()) {
            message m = std::move(state_->ready.front());
            state_->ready.pop_front();
            w->complete({}, std::move(m));
          } else if (state_->closed || state_->waiting) {
            // Closed, or a receive is already pending (one at a time).
            w->complete(make_error_code(errc::shutting_down), {});
          } else {
            state_->waiting = std::move(w);
          }
        },
        token);
  }

  void close() {
    state_->closed = true;
    if (state_->waiting) {
      std::exchange(state_->waiting, nullptr)->complete(make_error_code(errc::shutting_down), {});
    }
  }

 private:
  struct state {
    std::deque<message> ready;
    std::unique_ptr<runtime::waiter<message>> waiting;
    bool closed = false;
  };
  boost::asio::any_io_executor executor_;
  std::shared_ptr<state> state_;
};

/** A queue as one of its replicas sees it. */
struct queue_info {
  raft::node_id leader = raft::no_node;
  std::vector<raft::node_id> members;
  queue_status counters;
};

struct service_settings {
  /** This node. */
  raft::node_id self = raft::no_node;
  /** Every node of the cluster (the same list on each); the registry runs on all of them. */
  std::vector<raft::node_id> cluster;
  /** Raft options of every group (id is set to self). */
  raft::options raft;
  /** Ticks of every replica (its snapshot_every is not used: see below). */
  runtime::replica_settings replica;
  /** A queue replica takes a snapshot once this many entries, and at least half as many as it
   *  has live messages (but no more than snapshot_tail), were applied since its last one (0:
   *  never): a snapshot's cost grows with the live messages, so it stays in proportion to the
   *  traffic (a growing backlog snapshots each time it has doubled). Its log is then
   *  compacted: only the entries of live messages stay, so disk use follows the live messages,
   *  not the history. The registry takes none. */
  raft::index_t snapshot_every = 4096;
  /** The most entries a queue replica lets pass between snapshots, whatever its backlog: what a
   *  restart reads whole after the snapshot (bodies included), so it bounds the restart time
   *  (0: no bound). */
  raft::index_t snapshot_tail = 262'144;
  /** Bodies each queue replica keeps in memory, from the head of the queue. */
  std::uint64_t body_cache_bytes = std::uint64_t{64} << 20;
  /** How often the leader of a queue whose rules depend on time (TTLs, queue expiry, consumer
   *  timeout, delayed retry) proposes a tick. */
  std::chrono::milliseconds clock_interval{1000};
  /** How long a node may be lost (tcp_transport's on_peer_lost, nothing heard since) before
   *  the leaders detach its consumers. Shorter returns a dead node's messages sooner; a
   *  network blip longer than it cancels live consumers (they are told, on_cancelled). */
  std::chrono::milliseconds consumer_grace{10000};
  /** A call that finds no leader yet (a queue just declared, an election under way) is retried
   *  this often, this many times, before it fails with errc::not_leader. */
  std::chrono::milliseconds retry_interval{50};
  int retries = 100;
};

namespace detail {

/** What applying a queue command tells its proposer, as the replica's result string. */
struct queue_answer {
  std::error_code error;
  effects::publish published = effects::publish::none;
  std::uint64_t purged = 0;
  std::optional<delivery> got;
};

inline std::string encode_answer(const effects& fx, consumer_id getter) {
  std::string out;
  auto put = [&](std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  put(static_cast<std::uint32_t>(fx.error.value()), 4);
  put(static_cast<std::uint8_t>(fx.published), 1);
  put(static_cast<std::uint64_t>(
          std::count_if(fx.removals.begin(), fx.removals.end(),
                        [](const removed& r) { return r.why == removal::purged; })),
      8);
  auto got = std::find_if(fx.deliveries.begin(), fx.deliveries.end(),
                          [&](const delivery& d) { return d.consumer == getter; });
  put(getter != 0 && got != fx.deliveries.end() ? 1 : 0, 1);
  if (getter != 0 && got != fx.deliveries.end()) {
    put(got->id, 8);
    put(got->failed, 4);
    put(got->redelivered ? 1 : 0, 1);
  }
  return out;
}

inline queue_answer decode_answer(const std::string& in, consumer_id getter) {
  std::size_t at = 0;
  auto get = [&](int bytes) {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes && at < in.size(); ++i, ++at) {
      v |= std::uint64_t{static_cast<unsigned char>(in[at])} << (8 * i);
    }
    return v;
  };
  queue_answer a;
  if (const auto e = static_cast<int>(get(4)); e != 0)
    a.error = make_error_code(static_cast<errc>(e));
  a.published = static_cast<effects::publish>(get(1));
  a.purged = get(8);
  if (get(1) == 1) {
    delivery d;
    d.consumer = getter;
    d.id = get(8);
    d.failed = static_cast<std::uint32_t>(get(4));
    d.redelivered = get(1) == 1;
    a.got = d;
  }
  return a;
}

/** The node that attached a consumer: its id's top 16 bits. */
inline raft::node_id node_of(consumer_id c) {
  return c >> 48;
}

}  // namespace detail

template <runtime::message_transport Transport>
class service {
 public:
  /** The state machine of one Raft group: the registry (group 1), a queue, or a queue group
   *  (its queues in member order). */
  class group_machine {
   public:
    group_machine(service& host, class registry r) : host_(&host), state_(std::move(r)) {}
    /** The queues of one Raft group: one of its own, or every queue of a queue group. */
    group_machine(service& host, const std::vector<queue_record>& queues)
        : host_(&host), group_(queues.front().group), state_(queue_group_of(queues)) {
      for (const queue_record& q : queues) names_.push_back(q.name);
    }

    std::string apply(const raft::entry& e) {
      if (auto* r = std::get_if<class registry>(&state_)) {
        std::vector<queue_record> records;
        const registry_result result = r->apply(e, records);
        host_->registry_applied(result, records);
        return std::string(1, static_cast<char>(result));
      }
      auto& q = std::get<queue_group>(state_);
      std::error_code ec;
      const std::optional<command> c = decode(e.payload.bytes(), ec);
      group_effects fx = c ? q.apply(e.index, *c) : group_effects{};
      if (!c) fx.answer.error = ec;
      if (c && c->type == command::kind::enqueue) {
        std::uint32_t holders = 0;
        for (const member_effects& m : fx.members) {
          if (m.fx.published == effects::publish::accepted) ++holders;
        }
        if (holders > 0) cache(e.index, body_of(e.payload.bytes()), holders);
      }
      for (const member_effects& m : fx.members) {
        host_->queue_applied(*this, m.member, e.term, &*c, m.fx);  // may read leaving bodies
        for (const removed& gone : m.fx.removals) uncache(gone.id);
      }
      return detail::encode_answer(fx.reply(),
                                   c && c->type == command::kind::get ? c->consumer : 0);
    }

    /** Queue `member` of the group (0: a queue of its own). */
    const state_machine& queue(std::size_t member = 0) const {
      return std::get<queue_group>(state_).member(member);
    }
    std::size_t size() const { return std::get<queue_group>(state_).size(); }

    // ---- runtime::keeping_machine (the registry takes no snapshots) ----
    std::vector<raft::index_t> kept_entries() const {
      const auto* q = std::get_if<queue_group>(&state_);
      return q != nullptr ? q->live_ids() : std::vector<raft::index_t>{};
    }
    raft::index_t snapshot_interval() const {
      const auto* q = std::get_if<queue_group>(&state_);
      if (q == nullptr || host_->settings_.snapshot_every == 0) return 0;
      raft::index_t interval = q->live_count() / 2;
      if (host_->settings_.snapshot_tail != 0) {
        interval = std::min(interval, host_->settings_.snapshot_tail);
      }
      return std::max(host_->settings_.snapshot_every, interval);
    }
    raft::shared_bytes snapshot() const {
      const auto* q = std::get_if<queue_group>(&state_);
      return q != nullptr ? q->snapshot() : raft::shared_bytes();
    }
    bool restore(const raft::shared_bytes& data) {
      auto* q = std::get_if<queue_group>(&state_);
      if (q == nullptr || !q->restore(data)) return false;
      bodies_.clear();
      cached_bytes_ = 0;
      host_->queue_restored(*this);
      return true;
    }

    /** The last term in which this node led the group (0: none since it started); only its
     *  leader proposed the entries of a term. On the group's strand. */
    raft::term_t led_term() const noexcept { return led_term_; }
    void led(raft::term_t term) noexcept { led_term_ = term; }
    /** The name of queue `member`. */
    const std::string& name(std::size_t member = 0) const { return names_.at(member); }
    std::uint64_t group() const noexcept { return group_; }

    /** The body of live message `id`: from the cache, or read back from the log (nothing if
     *  it cannot be read: damage). */
    std::optional<raft::shared_bytes> body(message_id id) const {
      if (auto it = bodies_.find(id); it != bodies_.end()) return it->second.bytes;
      std::optional<raft::entry> e = host_->node_.read_entry(group_, id);
      if (!e) return std::nullopt;
      return raft::shared_bytes(body_of(e->payload.bytes()));
    }

   private:
    /** A cached body, and how many of the group's queues still hold its message. */
    struct cached {
      raft::shared_bytes bytes;
      std::uint32_t holders = 0;
    };

    static queue_group queue_group_of(const std::vector<queue_record>& queues) {
      std::vector<queue_options> options;
      for (const queue_record& q : queues) options.push_back(q.options);
      return queue_group(std::move(options), queues.front().queue_group.empty());
    }
    void cache(message_id id, std::span<const std::byte> body, std::uint32_t holders) {
      // The cache holds the head of the queue: a message that does not fit waits in the log.
      if (cached_bytes_ + body.size() > host_->settings_.body_cache_bytes) return;
      cached_bytes_ += body.size();
      bodies_.emplace(id, cached{raft::shared_bytes(body), holders});
    }
    /** One queue let message `id` go: the body leaves the cache with the last one. */
    void uncache(message_id id) {
      auto it = bodies_.find(id);
      if (it == bodies_.end() || --it->second.holders > 0) return;
      cached_bytes_ -= it->second.bytes.size();
      bodies_.erase(it);
    }

    service* host_;
    std::uint64_t group_ = registry_group;
    std::vector<std::string> names_;
    std::variant<class registry, queue_group> state_;
    std::map<message_id, cached> bodies_;
    std::uint64_t cached_bytes_ = 0;
    raft::term_t led_term_ = 0;
  };

  service(std::vector<boost::asio::any_io_executor> executors, storage::shared_wal& wal,
          Transport& transport, service_settings settings)
      : settings_(std::move(settings)),
        executor_(executors.at(0)),
        node_(std::move(executors), wal, transport, node_settings_of(settings_)),
        clock_(executor_),
        start_floor_(consumer_floor(settings_.self)),
        last_consumer_(start_floor_) {
    if (settings_.self == raft::no_node || settings_.self >= (1u << 16) ||
        std::find(settings_.cluster.begin(), settings_.cluster.end(), settings_.self) ==
            settings_.cluster.end()) {
      throw std::invalid_argument(
          "service_settings: self must be a node id below 65536 in cluster");
    }
  }

  service(const service&) = delete;
  service& operator=(const service&) = delete;

  /** Opens the registry and, as it replays, every queue this node holds a replica of. */
  void start() {
    raft::membership everyone;
    everyone.voters = settings_.cluster;
    node_.add_group(registry_group, everyone,
                    std::make_unique<group_machine>(*this, registry(settings_.cluster)));
    schedule_clock();
  }

  /** A message from the transport (wire the transport's receiver here). */
  void deliver(transport::group_message m) {
    if (lost_count_.load() > 0) {
      // A lost node is back once anything arrives from it.
      std::lock_guard lock(mutex_);
      lost_since_.erase(m.message.from);
      lost_count_ = lost_since_.size();
    }
    node_.deliver(std::move(m));
  }
  /**
   * The transport lost node `peer` (wire tcp_transport::on_peer_lost here): quiesced groups it
   * led wake, and if nothing arrives from it for `consumer_grace`, the leaders here detach its
   * consumers, so the messages they hold return to their queues.
   */
  void peer_lost(raft::node_id peer) {
    {
      std::lock_guard lock(mutex_);
      lost_since_.try_emplace(peer, std::chrono::steady_clock::now());
      lost_count_ = lost_since_.size();
    }
    node_.peer_lost(peer);
  }

  /** Stops every replica; run the executors until finished() before destroying it. */
  void stop() {
    stopping_ = true;
    clock_.cancel();
    node_.stop();
  }
  bool finished() const { return node_.finished() && !clock_running_.load(); }

  /**
   * Declares queue `name` (1 to 255 bytes). Declaring it again with the same options does
   * nothing; with other options it fails with errc::queue_mismatch. errc::invalid_options if
   * the replica count is 0 or above the cluster's size.
   */
  template <class Token>
  auto async_declare(std::string name, declare_options options, Token&& token) {
    return start_op<>(
        std::forward<Token>(token), [this, name = std::move(name), options](auto done) mutable {
          if (name.empty() || name.size() > 255 || options.replicas == 0 ||
              options.replicas > settings_.cluster.size()) {
            return done(make_error_code(errc::invalid_options));
          }
          registry_command c;
          c.name = std::move(name);
          c.replicas = options.replicas;
          c.options = options.queue;
          submit_registry(encode(c), [done](std::error_code ec) mutable { done(ec); });
        });
  }

  /**
   * Declares queue group `group`: queues that share one Raft group on `replicas` nodes, so that
   * async_publish_fanout writes a message for several of them once (one log entry, one body).
   * Each queue is used by its name like any other (consume, get, settle, purge, status,
   * publish to it alone); the group is deleted as a whole. Declaring it again the same way
   * does nothing; otherwise errc::queue_mismatch, also if a name is taken by another queue or
   * group. errc::invalid_options for 0 or more than 64 queues, a name used twice, a queue
   * with expires_ms (a group's queues do not expire one by one), or a bad replica count.
   */
  template <class Token>
  auto async_declare_group(std::string group, std::uint32_t replicas,
                           std::vector<group_member> queues, Token&& token) {
    return start_op<>(std::forward<Token>(token), [this, group = std::move(group), replicas,
                                                   queues = std::move(queues)](auto done) mutable {
      const bool named = std::all_of(queues.begin(), queues.end(), [](const group_member& q) {
        return !q.name.empty() && q.name.size() <= 255;
      });
      if (group.empty() || group.size() > 255 || !named || queues.empty() ||
          queues.size() > max_group_members || replicas == 0 ||
          replicas > settings_.cluster.size()) {
        return done(make_error_code(errc::invalid_options));
      }
      registry_command c;
      c.type = registry_command::kind::declare_group;
      c.name = std::move(group);
      c.replicas = replicas;
      c.queues = std::move(queues);
      submit_registry(encode(c), [done](std::error_code ec) mutable { done(ec); });
    });
  }

  /** Deletes queue `name` and its messages, or queue group `name` and all its queues;
   *  errc::no_queue if it is not declared, errc::invalid_options for one queue of a group. */
  template <class Token>
  auto async_delete(std::string name, Token&& token) {
    return start_op<>(std::forward<Token>(token), [this, name = std::move(name)](auto done) {
      registry_command c;
      c.type = registry_command::kind::remove;
      c.name = name;
      submit_registry(encode(c), [done](std::error_code ec) mutable { done(ec); });
    });
  }

  /** Publishes `body` to queue `name`; completes as options.ack says. */
  template <class Token>
  auto async_publish(std::string name, raft::shared_bytes body, publish_options options,
                     Token&& token) {
    return start_op<publish_outcome>(
        std::forward<Token>(token),
        [this, name = std::move(name), body = std::move(body), options](auto done) mutable {
          if (options.priority > max_priority || options.ttl_ms < 0 ||
              body.size() > std::uint32_t{0xffffffff}) {
            return done(make_error_code(errc::invalid_options), publish_outcome::sent);
          }
          publish_attempt(std::move(name), std::move(body), options, 0, 0, false, std::move(done));
        });
  }

  /**
   * Publishes `body` once to several queues of one queue group (async_declare_group): one log
   * entry and one body, which each of them delivers and settles on its own. With ack majority
   * it completes accepted once every one of them has it, rejected if any refused it by its
   * length limit (the others keep it, as a broker routing to several queues does), duplicate
   * if every one had it already. errc::invalid_options if the queues are not all of one group.
   */
  template <class Token>
  auto async_publish_fanout(std::vector<std::string> queues, raft::shared_bytes body,
                            publish_options options, Token&& token) {
    return start_op<publish_outcome>(std::forward<Token>(token), [this, queues = std::move(queues),
                                                                  body = std::move(body),
                                                                  options](auto done) mutable {
      if (queues.empty() || options.priority > max_priority || options.ttl_ms < 0 ||
          body.size() > std::uint32_t{0xffffffff}) {
        return done(make_error_code(errc::invalid_options), publish_outcome::sent);
      }
      std::string first = queues.front();
      resolve(first, [this, queues = std::move(queues), body = std::move(body), options,
                      done](std::optional<queue_record> record) mutable {
        if (!record) return done(make_error_code(errc::no_queue), publish_outcome::sent);
        std::uint64_t fanout = 0;
        for (const std::string& name : queues) {
          // The first lookup brought the registry here up to date.
          std::optional<queue_record> q = lookup(name);
          if (!q) return done(make_error_code(errc::no_queue), publish_outcome::sent);
          if (q->group != record->group || q->queue_group.empty()) {
            return done(make_error_code(errc::invalid_options), publish_outcome::sent);
          }
          fanout |= std::uint64_t{1} << q->member;
        }
        publish_attempt(record->name, std::move(body), options, fanout, 0, false, std::move(done));
      });
    });
  }

  /**
   * Attaches a consumer to queue `name`: `handler` receives each delivery, on `executor`, until
   * async_cancel. Completes with the consumer's id. The consumer must be on a node holding a
   * replica (errc::no_replica otherwise).
   */
  template <class Token>
  auto async_consume(std::string name, consumer_options options,
                     std::function<void(message)> handler, boost::asio::any_io_executor executor,
                     Token&& token) {
    return start_op<consumer_id>(
        std::forward<Token>(token), [this, name = std::move(name), options,
                                     handler = std::move(handler), executor](auto done) mutable {
          const consumer_id id = new_consumer_id();
          {
            // Registered before the attach: deliveries may apply before the attach completes.
            std::lock_guard lock(mutex_);
            consumers_[id] =
                local_consumer{name, std::move(handler), executor, options.on_cancelled, false};
          }
          command c;
          c.type = command::kind::attach;
          c.consumer = id;
          c.prefetch = options.prefetch;
          c.consumer_priority = options.priority;
          submit_queue(name, c, {}, runtime::ack_level::majority, 0,
                       [this, done, id](std::error_code ec, detail::queue_answer a) mutable {
                         if (!ec) ec = a.error;
                         if (ec) forget(id);
                         done(ec, id);
                       });
        });
  }

  /** Detaches a consumer: the messages it holds unsettled return to the queue (uncounted). */
  template <class Token>
  auto async_cancel(std::string name, consumer_id consumer, Token&& token) {
    return start_op<>(
        std::forward<Token>(token), [this, name = std::move(name), consumer](auto done) {
          {
            std::lock_guard lock(mutex_);
            if (auto it = consumers_.find(consumer); it != consumers_.end()) {
              it->second.cancelling = true;
            }
          }
          command c;
          c.type = command::kind::detach;
          c.consumer = consumer;
          submit_queue(name, c, {}, runtime::ack_level::majority, 0,
                       [this, done, consumer](std::error_code ec, detail::queue_answer a) mutable {
                         if (!ec) ec = a.error;
                         if (!ec) {
                           forget(consumer);
                         } else {
                           std::lock_guard lock(mutex_);
                           if (auto it = consumers_.find(consumer); it != consumers_.end()) {
                             it->second.cancelling = false;
                           }
                         }
                         done(ec);
                       });
        });
  }

  /**
   * Settles messages `ids` held by `consumer`: settlement::ack removes them, requeue returns
   * them (nack or reject with requeue: a failed delivery is counted), reject dead-letters or
   * drops them (nack or reject without requeue). errc::invalid_command (nothing settled) if the
   * consumer does not hold one of them.
   */
  template <class Token>
  auto async_settle(std::string name, consumer_id consumer, settlement outcome,
                    std::vector<message_id> ids, Token&& token) {
    return start_op<>(std::forward<Token>(token), [this, name = std::move(name), consumer, outcome,
                                                   ids = std::move(ids)](auto done) {
      command c;
      c.type = command::kind::settle;
      c.consumer = consumer;
      c.outcome = outcome;
      c.ids = ids;
      submit_queue(
          name, c, {}, runtime::ack_level::majority, 0,
          [done](std::error_code ec, detail::queue_answer a) mutable { done(ec ? ec : a.error); });
    });
  }

  /** Takes one ready message, if any, held until settled with its consumer and id. Must run
   *  on a node holding a replica. */
  template <class Token>
  auto async_get(std::string name, Token&& token) {
    return start_op<std::optional<message>>(
        std::forward<Token>(token), [this, name = std::move(name)](auto done) {
          command c;
          c.type = command::kind::get;
          c.consumer = new_consumer_id();
          submit_queue(name, c, {}, runtime::ack_level::majority, c.consumer,
                       [this, done, name, getter = c.consumer](std::error_code ec,
                                                               detail::queue_answer a) mutable {
                         if (ec == errc::outcome_unknown) {
                           // The get may have taken a message nobody will settle: give it
                           // back (refused harmlessly if the get never applied).
                           command back;
                           back.type = command::kind::detach;
                           back.consumer = getter;
                           submit_queue(name, back, {}, runtime::ack_level::majority, 0,
                                        [](std::error_code, detail::queue_answer) {});
                         }
                         if (!ec) ec = a.error;
                         if (ec || !a.got) return done(ec, std::nullopt);
                         std::optional<message> got = message_of(name, *a.got);
                         // The body is gone from this node's log (damage): say so, never an
                         // empty message. The getter keeps it until it is released.
                         if (!got) return done(make_error_code(errc::corruption), std::nullopt);
                         done(ec, std::move(got));
                       });
        });
  }

  /** Drops every ready message (unacknowledged ones stay); completes with how many. */
  template <class Token>
  auto async_purge(std::string name, Token&& token) {
    return start_op<std::uint64_t>(
        std::forward<Token>(token), [this, name = std::move(name)](auto done) {
          command c;
          c.type = command::kind::purge;
          submit_queue(name, c, {}, runtime::ack_level::majority, 0,
                       [done](std::error_code ec, detail::queue_answer a) mutable {
                         done(ec ? ec : a.error, a.purged);
                       });
        });
  }

  /** The queue's leader, members and counters, read linearizably through a replica here. */
  template <class Token>
  auto async_status(std::string name, Token&& token) {
    return start_op<queue_info>(
        std::forward<Token>(token), [this, name = std::move(name)](auto done) mutable {
          resolve(name, [this, done](std::optional<queue_record> record) mutable {
            if (!record) return done(make_error_code(errc::no_queue), queue_info{});
            queue_info info;
            info.members = record->members;
            auto* r = node_.find(record->group);
            if (r == nullptr) return done(make_error_code(errc::no_replica), info);
            read_status(r, record->member, info, 0, std::move(done));
          });
        });
  }

  /** At-most-once dead letters this node failed to hand to their target (it has no replica of
   *  the target, or the publish failed): they are gone. */
  std::uint64_t dead_letters_lost() const noexcept { return dead_letters_lost_.load(); }
  /** Bodies this node could not read back from its log (damage, see docs/storage.md): such a
   *  message is never delivered or handed over empty; a get fails with errc::corruption, a
   *  consumer's delivery is skipped (the message stays with it until it is released). */
  std::uint64_t unreadable_bodies() const noexcept { return unreadable_bodies_.load(); }

  /** The declared queues, as the registry replica here has applied them. */
  std::vector<queue_record> queues() const {
    std::lock_guard lock(mutex_);
    std::vector<queue_record> out;
    for (const auto& [name, r] : declared_) out.push_back(r);
    return out;
  }

 private:
  using node_type = runtime::node<group_machine, Transport>;
  using replica_type = typename node_type::replica_type;

  struct local_consumer {
    std::string queue;
    std::function<void(message)> handler;
    boost::asio::any_io_executor executor;
    std::function<void()> on_cancelled;
    bool cancelling = false;  // async_cancel under way: no on_cancelled
  };

  static runtime::node_settings node_settings_of(const service_settings& s) {
    runtime::node_settings n;
    n.self = s.self;
    n.raft = s.raft;
    n.replica = s.replica;
    n.replica.snapshot_every = 0;
    return n;
  }

  /** Runs `begin(done)`, where done(error, values...) completes `token` on its executor. */
  template <class... Values, class Token, class Begin>
  auto start_op(Token&& token, Begin begin) {
    return boost::asio::async_initiate<Token, void(std::error_code, Values...)>(
        [this](auto handler, Begin start) mutable {
          using handler_type = decltype(handler);
          auto h = std::make_shared<handler_type>(std::move(handler));
          auto done = [h, ex = executor_](std::error_code ec, Values... values) mutable {
            auto target = boost::asio::get_associated_executor(*h, ex);
            boost::asio::post(
                target, [h, ec, values...]() mutable { std::move (*h)(ec, std::move(values)...); });
          };
          start(std::move(done));
        },
        token, std::move(begin));
  }

  /** A consumer id: the node in the top 16 bits, the wall clock's microseconds below (they
   *  wrap every 8.9 years). Ids grow, so a restarted node neither reuses one of its earlier
   *  life's consumers nor mistakes one for its own. */
  static consumer_id consumer_floor(raft::node_id self) {
    const auto now =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    return (std::uint64_t{self} << 48) | (now & ((std::uint64_t{1} << 48) - 1));
  }

  consumer_id new_consumer_id() {
    const consumer_id floor = consumer_floor(settings_.self);
    consumer_id seen = last_consumer_.load();
    consumer_id next = 0;
    do {
      next = std::max(seen + 1, floor);
    } while (!last_consumer_.compare_exchange_weak(seen, next));
    return next;
  }

  void forget(consumer_id id) {
    std::lock_guard lock(mutex_);
    consumers_.erase(id);
  }

  std::optional<queue_record> lookup(const std::string& name) const {
    std::lock_guard lock(mutex_);
    auto it = declared_.find(name);
    if (it == declared_.end()) return std::nullopt;
    return it->second;
  }

  /** Calls `then` with queue `name`'s record. A queue this node has not heard of may have been
   *  declared through another node a moment ago: a linearizable read of the registry first
   *  brings this node up to date (read-your-writes across nodes). */
  template <class Then>
  void resolve(const std::string& name, Then then) {
    if (std::optional<queue_record> record = lookup(name)) return then(std::move(record));
    replica_type* r = node_.find(registry_group);
    if (r == nullptr) return then(std::nullopt);
    r->async_read([](const group_machine&) { return std::string(); },
                  [this, name, then](std::error_code, std::string) mutable { then(lookup(name)); });
  }

  static std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  /** One attempt of a publish. A deduplicated publish (with a producer id) whose outcome is
   *  unknown (a forward's answer lost in a leader change) is sent again: deduplication makes
   *  that safe, and a "duplicate" answer then means the earlier attempt made it. */
  template <class Done>
  void publish_attempt(std::string name, raft::shared_bytes body, publish_options options,
                       std::uint64_t fanout, int attempt, bool unsure, Done done) {
    command c;
    c.type = command::kind::enqueue;
    c.fanout = fanout;
    c.size = static_cast<std::uint32_t>(body.size());
    c.priority = options.priority;
    c.ttl_ms = options.ttl_ms;
    c.producer = options.producer;
    c.sequence = options.sequence;
    submit_queue(name, c, body, options.ack, 0,
                 [this, name, body, options, fanout, attempt, unsure, done](
                     std::error_code ec, detail::queue_answer a) mutable {
                   if (ec == errc::outcome_unknown && options.producer != 0 &&
                       attempt < settings_.retries && !stopping_) {
                     return later([this, name, body, options, fanout, attempt, done]() mutable {
                       publish_attempt(std::move(name), std::move(body), options, fanout,
                                       attempt + 1, true, std::move(done));
                     });
                   }
                   if (ec || options.ack != runtime::ack_level::majority) {
                     return done(ec, publish_outcome::sent);
                   }
                   switch (a.published) {
                     case effects::publish::duplicate:
                       return done(ec,
                                   unsure ? publish_outcome::accepted : publish_outcome::duplicate);
                     case effects::publish::rejected:
                     case effects::publish::rejected_dlx:
                       return done(ec, publish_outcome::rejected);
                     default: return done(ec, publish_outcome::accepted);
                   }
                 });
  }

  /** Runs `again()` after the retry interval. */
  template <class Again>
  void later(Again again) {
    auto timer = std::make_shared<boost::asio::steady_timer>(executor_, settings_.retry_interval);
    timer->async_wait([timer, again = std::move(again)](std::error_code) mutable { again(); });
  }

  /** A linearizable read of a queue's counters, retried while no leader confirms it. */
  template <class Done>
  void read_status(replica_type* r, std::uint8_t member, queue_info info, int attempt, Done done) {
    auto counters = std::make_shared<queue_status>();
    r->async_read(
        [counters, member](const group_machine& m) {
          *counters = m.queue(member).status();
          return std::string();
        },
        [this, done, info, counters, r, member, attempt](std::error_code ec, std::string) mutable {
          if (ec == errc::read_not_confirmed && attempt < settings_.retries && !stopping_) {
            return later([this, r, member, info, attempt, done]() mutable {
              read_status(r, member, info, attempt + 1, std::move(done));
            });
          }
          info.counters = *counters;
          info.leader = r->leader();
          done(ec, info);
        });
  }

  /** Submits to a replica, retrying while no leader is known (or another leader's entry
   *  replaced the command, which was then not applied). */
  template <class Done>
  void submit_with_retry(replica_type* r, raft::shared_bytes bytes, runtime::ack_level level,
                         int attempt, Done done) {
    r->async_submit(bytes, level,
                    [this, r, bytes, level, attempt, done](std::error_code ec,
                                                           runtime::propose_result result) mutable {
                      const bool retry =
                          (ec == errc::not_leader && result.leader_hint == raft::no_node) ||
                          ec == errc::proposal_dropped;
                      if (!retry || attempt >= settings_.retries || stopping_) {
                        return done(ec, std::move(result.result));
                      }
                      later([this, r, bytes, level, attempt, done]() mutable {
                        submit_with_retry(r, std::move(bytes), level, attempt + 1, std::move(done));
                      });
                    });
  }

  /** Declares and deletes are safe to send again, so one whose outcome is unknown (a forward
   *  lost in a leader change) is; a delete then finding no queue was done by the first copy. */
  template <class Done>
  void submit_registry(raft::shared_bytes bytes, Done done, int attempt = 0, bool unsure = false) {
    replica_type* r = node_.find(registry_group);
    if (r == nullptr) return done(make_error_code(errc::shutting_down));
    submit_with_retry(
        r, bytes, runtime::ack_level::majority, 0,
        [this, bytes, done, attempt, unsure](std::error_code ec, std::string result) mutable {
          if (ec == errc::outcome_unknown && attempt < settings_.retries && !stopping_) {
            return later([this, bytes, done, attempt]() mutable {
              submit_registry(std::move(bytes), std::move(done), attempt + 1, true);
            });
          }
          if (ec) return done(ec);
          switch (result.empty() ? registry_result::malformed
                                 : static_cast<registry_result>(result[0])) {
            case registry_result::created:
            case registry_result::exists:
            case registry_result::removed: return done(std::error_code());
            case registry_result::mismatch: return done(make_error_code(errc::queue_mismatch));
            case registry_result::missing:
              return done(unsure ? std::error_code() : make_error_code(errc::no_queue));
            default: return done(make_error_code(errc::invalid_options));
          }
        });
  }

  template <class Done>
  void submit_queue(const std::string& name, command c, raft::shared_bytes body,
                    runtime::ack_level level, consumer_id getter, Done done) {
    c.time = wall_ms();
    resolve(name, [this, c, body = std::move(body), level, getter,
                   done](std::optional<queue_record> record) mutable {
      if (!record) return done(make_error_code(errc::no_queue), detail::queue_answer{});
      replica_type* r = node_.find(record->group);
      if (r == nullptr) return done(make_error_code(errc::no_replica), detail::queue_answer{});
      c.member = record->member;
      raft::shared_bytes bytes = encode(c, body.bytes());
      submit_with_retry(r, std::move(bytes), level, 0,
                        [done, getter](std::error_code ec, std::string result) mutable {
                          detail::queue_answer a;
                          if (!ec && !result.empty()) a = detail::decode_answer(result, getter);
                          done(ec, a);
                        });
    });
  }

  /** The delivered message, its body read from the log (nothing if that fails). */
  std::optional<message> message_of(const std::string& queue, const delivery& d) {
    message m;
    m.queue = queue;
    m.consumer = d.consumer;
    m.id = d.id;
    m.failed = d.failed;
    m.redelivered = d.redelivered;
    // Read from the log: the cache belongs to the queue's strand.
    std::optional<raft::entry> e = node_.read_entry(declared_group(queue), d.id);
    if (!e) {
      ++unreadable_bodies_;
      return std::nullopt;
    }
    m.body = raft::shared_bytes(body_of(e->payload.bytes()));
    return m;
  }

  std::uint64_t declared_group(const std::string& name) const {
    std::optional<queue_record> r = lookup(name);
    return r ? r->group : 0;
  }

  /** On the registry's strand, on every node, in log order. `records`: a queue, or every
   *  queue of a group. */
  void registry_applied(registry_result result, const std::vector<queue_record>& records) {
    if (records.empty()) return;
    const queue_record& record = records.front();
    const bool here = std::find(record.members.begin(), record.members.end(), settings_.self) !=
                      record.members.end();
    if (result == registry_result::created) {
      {
        std::lock_guard lock(mutex_);
        for (const queue_record& q : records) declared_[q.name] = q;
      }
      if (here && node_.find(record.group) == nullptr) {
        raft::membership members;
        members.voters = record.members;
        auto machine = std::make_unique<group_machine>(*this, records);
        group_machine* m = machine.get();
        replica_type& r = node_.add_group(record.group, members, std::move(machine));
        r.on_leadership([this, m](raft::node_id leader, raft::term_t term) {
          if (leader == settings_.self) m->led(term);
        });
        std::lock_guard lock(mutex_);
        machines_[record.group] = m;
      }
    } else if (result == registry_result::removed) {
      std::vector<local_consumer> gone;
      std::set<std::string> names;
      for (const queue_record& q : records) names.insert(q.name);
      {
        std::lock_guard lock(mutex_);
        for (const std::string& name : names) declared_.erase(name);
        machines_.erase(record.group);
        for (auto it = consumers_.begin(); it != consumers_.end();) {
          if (!names.contains(it->second.queue)) {
            ++it;
            continue;
          }
          gone.push_back(std::move(it->second));
          it = consumers_.erase(it);
        }
      }
      for (const local_consumer& c : gone) {
        if (c.on_cancelled && !c.cancelling) boost::asio::post(c.executor, c.on_cancelled);
      }
      if (auto* r = node_.find(record.group)) r->stop();
    }
  }

  /** On a queue's strand, on every member, in log order: hands deliveries to the consumers
   *  attached here. */
  /** On the queue's strand, after a snapshot replaced its state (a member that fell behind):
   *  deliveries in the entries it skipped never reached this node's consumers, so each gets
   *  again what it holds. */
  void queue_restored(const group_machine& m) {
    for (std::size_t member = 0; member < m.size(); ++member) {
      effects fx;
      for (consumer_id c : m.queue(member).consumers()) {
        if (detail::node_of(c) != settings_.self) continue;
        for (const delivery& d : m.queue(member).held_by(c)) fx.deliveries.push_back(d);
      }
      if (!fx.deliveries.empty()) {
        queue_applied(m, static_cast<std::uint8_t>(member), 0, nullptr, fx);
      }
    }
  }

  void queue_applied(const group_machine& m, std::uint8_t member, raft::term_t term,
                     const command* c, const effects& fx) {
    if (c != nullptr && c->type == command::kind::detach && !fx.error &&
        detail::node_of(c->consumer) == settings_.self) {
      // Detached by someone else (a leader after this node was lost): tell the consumer.
      std::optional<local_consumer> gone;
      {
        std::lock_guard lock(mutex_);
        auto it = consumers_.find(c->consumer);
        if (it != consumers_.end() && !it->second.cancelling) {
          gone = std::move(it->second);
          consumers_.erase(it);
        }
      }
      if (gone && gone->on_cancelled) boost::asio::post(gone->executor, gone->on_cancelled);
    }
    for (const delivery& d : fx.deliveries) {
      if (detail::node_of(d.consumer) != settings_.self) continue;
      local_consumer target;
      {
        std::lock_guard lock(mutex_);
        auto it = consumers_.find(d.consumer);
        if (it == consumers_.end()) continue;  // a get (answered to its caller), or gone
        target = it->second;
      }
      std::optional<raft::shared_bytes> body = m.body(d.id);
      if (!body) {
        ++unreadable_bodies_;  // not delivered empty: it stays with the consumer until released
        continue;
      }
      message out;
      out.queue = m.name(member);
      out.consumer = d.consumer;
      out.id = d.id;
      out.body = std::move(*body);
      out.failed = d.failed;
      out.redelivered = d.redelivered;
      boost::asio::post(target.executor,
                        [h = std::move(target.handler), out = std::move(out)]() { h(out); });
    }
    // The node that proposed the entry (the leader of its term) acts on it, once: dead-letter
    // hand-overs and the delete of an expired queue. Nobody else does, nor does a node
    // replaying its log after a restart. If that leader fails first, the clock's resume takes
    // over for at-least-once dead letters; at most once, they are lost, as that allows.
    if (term == 0 || m.led_term() != term) return;
    const queue_options& o = m.queue(member).options();
    if (!o.dead_letter_target.empty()) {
      for (const removed& gone : fx.removals) {
        if (gone.why != removal::dead_lettered) continue;
        // At most once: the message has left the queue; a failed hand-over loses it.
        publish_options p;
        p.ack = runtime::ack_level::leader;
        std::optional<raft::shared_bytes> body = m.body(gone.id);
        if (!body) {
          ++unreadable_bodies_;
          ++dead_letters_lost_;
          continue;
        }
        async_publish(o.dead_letter_target, std::move(*body), p,
                      [this](std::error_code ec, publish_outcome) {
                        if (ec) ++dead_letters_lost_;
                      });
      }
      for (message_id id : fx.dead_letters) {
        std::optional<raft::shared_bytes> body = m.body(id);
        if (body) {
          hand_over(m.group(), m.name(member), o, id, std::move(*body));
        } else {
          ++unreadable_bodies_;  // it stays pending: the hand-over is retried, never empty
        }
      }
    }
    if (fx.queue_expired) async_delete(m.name(member), [](std::error_code) {});
  }

  /** At least once: publishes dead letter `id` to the target with a majority confirm, then
   *  tells the source queue, which only then lets it go. A failed step is retried by the
   *  clock (resume_dead_letters), by whichever node leads the source then. */
  void hand_over(std::uint64_t group, const std::string& source, const queue_options& o,
                 message_id id, raft::shared_bytes body) {
    {
      std::lock_guard lock(mutex_);
      if (!handing_over_[{group, source}].insert(id).second) return;  // under way already
    }
    async_publish(o.dead_letter_target, std::move(body), publish_options{},
                  [this, group, source, id](std::error_code ec, publish_outcome outcome) {
                    if (ec || outcome == publish_outcome::rejected) {
                      return handed_over(group, source, id);
                    }
                    command c;
                    c.type = command::kind::dead_lettered;
                    c.ids = {id};
                    submit_queue(source, c, {}, runtime::ack_level::majority, 0,
                                 [this, group, source, id](std::error_code, detail::queue_answer) {
                                   handed_over(group, source, id);
                                 });
                  });
  }
  void handed_over(std::uint64_t group, const std::string& source, message_id id) {
    std::lock_guard lock(mutex_);
    handing_over_[{group, source}].erase(id);
  }

  /** Detaches, through queue `q`'s replica here, every consumer it lists for which `doomed`
   *  holds (once each), so the messages they hold return to the queue. */
  template <class Doomed>
  void release_consumers(const queue_record& q, replica_type* r, Doomed doomed) {
    group_machine* m = nullptr;
    {
      std::lock_guard lock(mutex_);
      auto it = machines_.find(q.group);
      if (it == machines_.end()) return;
      m = it->second;
    }
    boost::asio::post(r->get_executor(), [this, m, name = q.name, member = q.member, doomed] {
      for (consumer_id id : m->queue(member).consumers()) {
        if (!doomed(id)) continue;
        {
          std::lock_guard lock(mutex_);
          if (!releasing_.insert(id).second) continue;  // under way
        }
        command c;
        c.type = command::kind::detach;
        c.consumer = id;
        submit_queue(name, c, {}, runtime::ack_level::majority, 0,
                     [this, id](std::error_code, detail::queue_answer) {
                       std::lock_guard lock(mutex_);
                       releasing_.erase(id);
                     });
      }
    });
  }

  /** The nodes lost for longer than the consumer grace period. */
  std::set<raft::node_id> long_lost() const {
    std::set<raft::node_id> out;
    if (lost_count_.load() == 0) return out;
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    for (const auto& [peer, since] : lost_since_) {
      if (now - since >= settings_.consumer_grace) out.insert(peer);
    }
    return out;
  }

  /** The leader of an at-least-once queue hands over the dead letters still pending (a new
   *  leader takes over those its predecessor did not finish). */
  void resume_dead_letters(const queue_record& q, replica_type* r) {
    struct pending {
      std::vector<message_id> ids;
      std::vector<std::optional<raft::shared_bytes>> bodies;
    };
    auto found = std::make_shared<pending>();
    r->async_read(
        [found, member = q.member](const group_machine& m) {
          for (message_id id : m.queue(member).dead_letters()) {
            found->ids.push_back(id);
            found->bodies.push_back(m.body(id));
          }
          return std::string();
        },
        [this, found, q](std::error_code ec, std::string) {
          if (ec) return;
          for (std::size_t i = 0; i < found->ids.size(); ++i) {
            if (!found->bodies[i]) {
              ++unreadable_bodies_;
              continue;
            }
            hand_over(q.group, q.name, q.options, found->ids[i], *found->bodies[i]);
          }
        });
  }

  /** Every clock interval: each member releases its earlier life's consumers; the leader of
   *  each queue whose rules depend on time proposes a tick, and the leader of each
   *  at-least-once queue resumes its dead-letter hand-overs. */
  void schedule_clock() {
    if (stopping_) return;
    clock_running_ = true;
    clock_.expires_after(settings_.clock_interval);
    clock_.async_wait([this](std::error_code ec) {
      if (ec || stopping_) {
        clock_running_ = false;
        return;
      }
      std::set<std::uint64_t> ticked;  // a tick reaches every queue of a group
      for (const queue_record& q : queues()) {
        const queue_options& o = q.options;
        const bool time_based = o.message_ttl_ms != 0 || o.expires_ms != 0 ||
                                o.consumer_timeout_ms != 0 || o.retry_min_ms != 0;
        replica_type* r = node_.find(q.group);
        if (r == nullptr) continue;
        // Consumers and getters this node attached in an earlier life (before a restart) hold
        // messages nobody will settle.
        release_consumers(q, r, [this](consumer_id id) {
          return detail::node_of(id) == settings_.self && id < start_floor_;
        });
        if (r->leader() != settings_.self) continue;
        // The leader gives back what the consumers of long-lost nodes hold.
        if (std::set<raft::node_id> lost = long_lost(); !lost.empty()) {
          release_consumers(q, r,
                            [lost](consumer_id id) { return lost.contains(detail::node_of(id)); });
        }
        if (o.dead_letter == dead_letter_strategy::at_least_once && !o.dead_letter_target.empty()) {
          resume_dead_letters(q, r);
        }
        if (!time_based || !ticked.insert(q.group).second) continue;
        command c;
        c.type = command::kind::tick;
        c.time = wall_ms();
        r->async_submit(encode(c), runtime::ack_level::none,
                        [](std::error_code, runtime::propose_result) {});
      }
      schedule_clock();
    });
  }

  service_settings settings_;
  boost::asio::any_io_executor executor_;
  node_type node_;
  boost::asio::steady_timer clock_;
  std::atomic<bool> clock_running_{false};
  std::atomic<bool> stopping_{false};
  const consumer_id start_floor_;  // consumers of this node below it are an earlier life's
  std::atomic<consumer_id> last_consumer_;
  mutable std::mutex mutex_;
  std::map<std::string, queue_record> declared_;
  std::map<consumer_id, local_consumer> consumers_;
  // (group, source queue) -> dead letters
  std::map<std::pair<std::uint64_t, std::string>, std::set<message_id>> handing_over_;
  std::map<std::uint64_t, group_machine*> machines_;  // the queues held here
  std::set<consumer_id> releasing_;                   // consumers being detached by this node
  std::map<raft::node_id, std::chrono::steady_clock::time_point> lost_since_;
  std::atomic<std::size_t> lost_count_{0};
  std::atomic<std::uint64_t> dead_letters_lost_{0};
  std::atomic<std::uint64_t> unreadable_bodies_{0};
};

}  // namespace quorum::queue
