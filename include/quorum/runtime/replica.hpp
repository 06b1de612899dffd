// A replica: one Raft core driven on an Asio strand. A timer turns steady-clock time into
// ticks, the transport hands in messages, and the ready loop persists through the storage
// (sync before anything that vouches for it leaves), sends, applies committed entries to the
// user's state machine, completes proposals and serves linearizable reads. With a storage that
// syncs asynchronously (group commit), the leader keeps replicating while its own write is in
// flight. The host owns the io_context and its threads; every member runs on the replica's
// strand, so any thread may call the public functions.
#pragma once

#include <quorum/error.hpp>
#include <quorum/raft/core.hpp>
#include <quorum/runtime/waiter.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

namespace quorum::runtime {

/** A user's state machine: `apply` of one committed, non-empty entry returns the result the
 *  proposer receives. */
template <class T>
concept state_machine = requires(T& sm, const raft::entry& e) {
  { sm.apply(e) } -> std::convertible_to<std::string>;
};

/** Storage a replica can drive: the log_storage concept plus the write side of a ready batch. */
template <class S>
concept durable_log = raft::log_storage<S> &&
    requires(S& s, std::span<const raft::entry> batch, const raft::hard_state& hs) {
  s.append(batch);
  s.set_hard_state(hs);
  { s.sync() } -> std::same_as<std::error_code>;
};

/** Storage whose sync completes asynchronously (e.g. a group of a shared WAL synced by a
 *  group-commit thread): `done` is called once everything written before is durable, on any
 *  thread. */
template <class S>
concept async_durable_log = durable_log<S> &&
    requires(S& s, std::function<void(std::error_code)> done) {
  s.async_sync(std::move(done));
};

/** A state machine the replica can snapshot: `snapshot()` returns its whole state, which
 *  `restore()` takes back. */
template <class T>
concept snapshottable_machine = requires(T& sm, const raft::shared_bytes& data) {
  { sm.snapshot() } -> std::convertible_to<raft::shared_bytes>;
  sm.restore(data);
};

/**
 * A state machine whose state refers to entries of its own log (a queue's message bodies):
 * `kept_entries()` lists, ascending, the applied entries it still needs, and a snapshot keeps
 * them readable below the log's start (the storage must take a keep list). It also says how
 * many applied entries to wait between snapshots (`snapshot_interval()`, 0: none), since its
 * snapshot's cost grows with its state.
 */
template <class T>
concept keeping_machine = requires(const T& sm) {
  { sm.kept_entries() } -> std::same_as<std::vector<raft::index_t>>;
  { sm.snapshot_interval() } -> std::convertible_to<raft::index_t>;
};

/** What async_propose completes with besides the error. */
struct propose_result {
  /** The state machine's answer (on success). */
  std::string result;
  /** Where the command landed in the log (on success). */
  raft::index_t index = 0;
  /** With errc::not_leader: the leader this replica knows of, or no_node. */
  raft::node_id leader_hint = raft::no_node;
};

/** What the completion of a submitted command vouches for (replica::async_submit); Kafka's
 *  acks 0 / 1 / all. */
enum class ack_level : std::uint8_t {
  /** The command was handed to the leader (or forwarded to it): nothing is durable yet, and it
   *  is lost if the leader fails or the forward is lost. No result, index 0 when forwarded. */
  none = 0,
  /** The command is durable on the leader's disk. It is lost if the leader fails for good
   *  before a majority has it, or if a new leader elected without it overwrites it. It has not
   *  been applied yet: no result. */
  leader = 1,
  /** The command is committed (durable on a majority; it survives any minority of failures)
   *  and applied on this replica, with the state machine's result. */
  majority = 2,
};

/** Settings of a replica. */
struct replica_settings {
  /** Wall time per Raft tick (steady clock): election timeouts are options.election_ticks of
   *  these. */
  std::chrono::milliseconds tick{10};
  /** Take a snapshot once this many entries were applied since the last one (0: never).
   *  Needs a snapshottable_machine and a storage with create_snapshot and compact; a
   *  keeping_machine decides this itself. */
  raft::index_t snapshot_every = 0;
  /** Entries kept in the log behind a snapshot, so slightly lagging followers catch up from
   *  the log rather than the snapshot. */
  raft::index_t snapshot_trailing = 0;
};

template <state_machine StateMachine, durable_log Storage>
class replica {
 public:
  using executor_type = boost::asio::strand<boost::asio::any_io_executor>;
  using send_function = std::function<void(raft::message)>;
  using leadership_observer = std::function<void(raft::node_id leader, raft::term_t term)>;
  /** A read of the state machine, run on the strand once the read is confirmed. */
  using query_function = std::function<std::string(const StateMachine&)>;

  /**
   * A replica over `storage` and `machine` (both must outlive it), sending through `send`.
   * Throws what raft::core's constructor throws for invalid options. Call start() to run.
   */
  replica(boost::asio::any_io_executor ex, Storage& storage, StateMachine& machine,
          const raft::options& options, send_function send, replica_settings settings = {})
      : strand_(boost::asio::make_strand(ex)),
        storage_(&storage),
        machine_(&machine),
        core_(storage, options),
        send_(std::move(send)),
        settings_(settings),
        timer_(strand_) {}

  replica(const replica&) = delete;
  replica& operator=(const replica&) = delete;

  executor_type get_executor() const noexcept { return strand_; }

  /** Restores the state machine from the storage's snapshot (if any) and starts the tick
   *  timer; the log after the snapshot is applied again as it commits. */
  void start() {
    boost::asio::dispatch(strand_, [this] {
      const raft::snapshot_meta snap = storage_->snapshot();
      if (snap.index != 0) restore(snap);
      schedule_tick();
    });
  }

  /**
   * Stops ticking and fails every pending proposal with errc::shutting_down. The replica may
   * be destroyed once the io_context has run the stop (e.g. after run() returned).
   */
  void stop() {
    boost::asio::dispatch(strand_, [this] { halt(errc::shutting_down); });
  }

  /**
   * The host suspects node `peer` (its connection dropped or went silent). If this replica is
   * quiesced and `peer` is its leader, it wakes: it restarts its election clock and asks the
   * leader to resume heartbeats (raft::core::unquiesce). Any thread.
   */
  void suspect(raft::node_id peer) {
    boost::asio::dispatch(strand_, [this, peer] {
      if (stopped_ || !core_.quiesced() || core_.leader() != peer) return;
      core_.unquiesce();
      pump();
    });
  }

  /** True while the group is quiesced here (options.quiesce): no ticks, no heartbeats (a
   *  snapshot). */
  bool quiesced() const noexcept { return quiesced_.load(); }

  /** True once the replica has stopped, no storage sync of it is in flight and its tick timer's
   *  handler has run: from then on nothing of its own reaches it, and it may be destroyed once
   *  its executor has run the handlers already queued (a snapshot; any thread). */
  bool finished() const noexcept { return finished_.load(); }

  /** A message from the transport. */
  void receive(raft::message m) {
    boost::asio::dispatch(strand_, [this, m = std::move(m)] {
      if (stopped_) return;
      (void)core_.step(m);  // malformed or misaddressed messages change nothing
      pump();
    });
  }

  /**
   * A linearizable read (ReadIndex, dissertation 6.4): once a quorum confirmed this node's
   * leadership and the state machine applied every write committed before the call, runs
   * `query` on the strand and completes with (error, its result). On a follower the read is
   * forwarded to the leader. Fails with errc::read_not_confirmed (no leader, or leadership
   * lost) or errc::shutting_down.
   */
  template <class CompletionToken>
  auto async_read(query_function query, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::error_code, std::string)>(
        [this](auto handler, query_function q) {
          auto w = make_waiter<std::string>(std::move(handler));
          boost::asio::dispatch(strand_, [this, w = std::move(w), q = std::move(q)]() mutable {
            begin_read(std::move(q), std::move(w));
          });
        },
        token, std::move(query));
  }

  /** Hands leadership to `target` (dissertation 3.10); completes at once with the core's
   *  answer (errc::not_leader, errc::invalid_transfer_target or success: started). */
  template <class CompletionToken>
  auto async_transfer_leadership(raft::node_id target, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::error_code)>(
        [this, target](auto handler) {
          boost::asio::dispatch(strand_, [this, target, h = std::move(handler)]() mutable {
            const std::error_code ec =
                stopped_ ? make_error_code(errc::shutting_down) : core_.transfer_leadership(target);
            pump();
            auto ex = boost::asio::get_associated_executor(h, strand_);
            boost::asio::post(ex, [h = std::move(h), ec]() mutable { std::move(h)(ec); });
          });
        },
        token);
  }

  /**
   * Proposes `command`; completes with (error, propose_result) once the command is applied
   * here (result set), or with errc::not_leader (leader_hint set), errc::uncommitted_limit,
   * errc::transfer_in_progress, errc::proposal_dropped (another leader's entry took its
   * place) or errc::shutting_down. Any completion token: callbacks, use_future, use_awaitable.
   */
  template <class CompletionToken>
  auto async_propose(raft::shared_bytes command, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::error_code, propose_result)>(
        [this](auto handler, raft::shared_bytes cmd) {
          auto w = make_waiter<propose_result>(std::move(handler));
          boost::asio::dispatch(strand_, [this, w = std::move(w), cmd = std::move(cmd)]() mutable {
            begin_propose(std::move(cmd), std::move(w));
          });
        },
        token, std::move(command));
  }

  /**
   * Submits `command` from any replica: the leader proposes it, a follower forwards it to the
   * leader it knows (core::forward). Completes with (error, propose_result) as `level` says:
   * at once (none), once durable on the leader (leader), or once committed and applied here
   * (majority, with the result). Errors: those of async_propose, and errc::outcome_unknown
   * when a forwarded command's answer is lost (it may still be applied: retry only what is
   * safe to repeat).
   */
  template <class CompletionToken>
  auto async_submit(raft::shared_bytes command, ack_level level, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::error_code, propose_result)>(
        [this, level](auto handler, raft::shared_bytes cmd) {
          auto w = make_waiter<propose_result>(std::move(handler));
          boost::asio::dispatch(strand_,
                                [this, level, w = std::move(w), cmd = std::move(cmd)]() mutable {
                                  begin_submit(std::move(cmd), level, std::move(w));
                                });
        },
        token, std::move(command));
  }

  /** Called on the strand whenever the known leader changes (no_node while unknown), or a
   *  known leader starts a new term, with the leader and the term. */
  void on_leadership(leadership_observer observer) {
    boost::asio::dispatch(strand_, [this, observer = std::move(observer)]() mutable {
      observer_ = std::move(observer);
    });
  }

  /** The leader this replica knows of (a snapshot; may change at once). */
  raft::node_id leader() const noexcept { return leader_.load(); }
  /** Entries applied to the state machine (a snapshot). */
  raft::index_t applied() const noexcept { return applied_.load(); }

 private:
  /** A handler waiting for (error, Result), whatever its type. */
  template <class Result>
  using waiter = runtime::waiter<Result>;

  template <class Result, class Handler>
  std::unique_ptr<waiter<Result>> make_waiter(Handler handler) {
    return runtime::make_waiter<Result>(std::move(handler), strand_);
  }
  struct pending_read {
    query_function query;
    std::unique_ptr<waiter<std::string>> waiting;
    raft::index_t index = 0;  // to wait for, once confirmed
  };

  struct pending {
    raft::term_t term;
    std::unique_ptr<waiter<propose_result>> waiting;
  };
  struct forwarded {
    ack_level level = ack_level::majority;
    std::unique_ptr<waiter<propose_result>> waiting;
  };
  struct applied_result {
    raft::index_t index;
    raft::term_t term;
    std::string result;
  };
  // Results kept while forwarded commands await their answers.
  static constexpr std::size_t recent_results = 4096;

  /** Keeps the tick timer running while the core is not quiesced (pump() restarts it). A
   *  quiesced group costs no timer wake-ups at all. */
  void schedule_tick() {
    quiesced_ = core_.quiesced();
    if (stopped_ || ticking_ || quiesced_.load()) return;
    ticking_ = true;
    timer_.expires_after(settings_.tick);
    timer_.async_wait(boost::asio::bind_executor(strand_, [this](const auto& ec) {
      // The replica is not finished while this wait is outstanding, so it is still here.
      ticking_ = false;
      if (stopped_) {
        settle_finished();
        return;
      }
      if (ec) return;
      core_.tick();
      pump();
    }));
  }

  void begin_propose(raft::shared_bytes command, std::unique_ptr<waiter<propose_result>> w) {
    if (stopped_) {
      w->complete(errc::shutting_down, {});
      return;
    }
    const raft::proposal_result r = core_.propose(command);
    if (r.error) {
      w->complete(r.error, {{}, 0, r.leader_hint});
      return;
    }
    await_apply(r.first_index, r.term, std::move(w));
    pump();
  }

  void begin_submit(raft::shared_bytes command, ack_level level,
                    std::unique_ptr<waiter<propose_result>> w) {
    if (stopped_) {
      w->complete(errc::shutting_down, {});
      return;
    }
    const raft::proposal_result r = core_.propose(command);
    if (!r.error) {
      if (level == ack_level::none) {
        w->complete({}, {{}, r.first_index, raft::no_node});
      } else if (level == ack_level::leader) {
        durable_[r.first_index] = pending{r.term, std::move(w)};
      } else {
        await_apply(r.first_index, r.term, std::move(w));
      }
      pump();
      return;
    }
    if (r.error != errc::not_leader || r.leader_hint == raft::no_node) {
      w->complete(r.error, {{}, 0, r.leader_hint});
      return;
    }
    const std::uint64_t context = ++forward_context_;
    if (const std::error_code ec = core_.forward(context, std::move(command))) {
      w->complete(ec, {{}, 0, r.leader_hint});
      return;
    }
    if (level == ack_level::none) {
      w->complete({}, {});
    } else {
      forwards_[context] = forwarded{level, std::move(w)};
    }
    pump();
  }

  /** The waiter completes when entry `index` of term `term` is applied here. An entry of an
   *  older term waiting at the same index was overwritten by this one: it was dropped. */
  void await_apply(raft::index_t index, raft::term_t term,
                   std::unique_ptr<waiter<propose_result>> w) {
    auto it = pending_.find(index);
    if (it != pending_.end()) {
      it->second.waiting->complete(errc::proposal_dropped, {{}, 0, core_.leader()});
      pending_.erase(it);
    }
    pending_[index] = pending{term, std::move(w)};
  }

  /** The leader answered a forwarded command (or it was given up). */
  void answered(const raft::proposal_state& ps) {
    auto it = forwards_.find(ps.context);
    if (it == forwards_.end()) return;
    forwarded f = std::move(it->second);
    forwards_.erase(it);
    if (ps.error) {
      f.waiting->complete(ps.error, {{}, 0, ps.leader_hint});
    } else if (f.level == ack_level::leader) {
      f.waiting->complete({}, {{}, ps.index, raft::no_node});
    } else if (ps.index > applied_.load()) {
      await_apply(ps.index, ps.term, std::move(f.waiting));
    } else {
      // Applied here before the answer came: the result was kept for it.
      auto r = std::find_if(recent_.begin(), recent_.end(),
                            [&](const applied_result& a) { return a.index == ps.index; });
      if (r == recent_.end()) {
        f.waiting->complete(errc::outcome_unknown, {});
      } else if (r->term != ps.term) {
        f.waiting->complete(errc::proposal_dropped, {{}, 0, core_.leader()});
      } else {
        f.waiting->complete({}, {r->result, r->index, raft::no_node});
      }
    }
  }

  void begin_read(query_function query, std::unique_ptr<waiter<std::string>> w) {
    if (stopped_) {
      w->complete(errc::shutting_down, {});
      return;
    }
    const std::uint64_t context = ++read_context_;
    if (const std::error_code ec = core_.read_index(context)) {
      w->complete(ec, {});
      return;
    }
    reads_[context] = pending_read{std::move(query), std::move(w)};
    pump();
  }

  /** Sends what may leave and, unless a batch is being persisted, handles the next batch. */
  void pump() {
    schedule_tick();  // whatever called pump() may have woken or quiesced the core
    if (persisting_) {
      // Dissertation 10.2.1: the leader replicates while its own write is in flight.
      for (raft::message& m : core_.take_messages()) send_(std::move(m));
      return;
    }
    while (!stopped_ && !persisting_ && core_.has_ready()) {
      raft::ready rd = core_.get_ready();
      for (raft::message& m : rd.messages) send_(std::move(m));
      std::error_code ec = write(rd);
      if (!ec && !needs_sync(rd)) {
        // Nothing in the batch must be durable before what follows: committed entries are
        // already durable here, and a commit index alone may reach the disk with a later sync.
        finish(rd);
        continue;
      }
      if (rd.hard_state) durable_vote_ = {rd.hard_state->term, rd.hard_state->vote};
      if constexpr (async_durable_log<Storage>) {
        if (!ec) {
          persisting_ = true;
          in_flight_ = std::move(rd);
          storage_->async_sync([this](std::error_code e) {
            boost::asio::post(strand_, [this, e] { persisted(e); });
          });
          return;
        }
      } else {
        if (!ec) ec = storage_->sync();
      }
      if (ec) {
        // Principle 2: a node whose disk failed stops; nothing unsynced is vouched for.
        halt(errc::io_error);
        return;
      }
      finish(rd);
    }
  }

  /** True if the batch wrote what must be durable before its persisted messages leave and its
   *  entries count: entries, snapshot pieces, or a new term or vote. */
  bool needs_sync(const raft::ready& rd) const {
    return !rd.entries.empty() || !rd.snapshot_chunks.empty() || rd.snapshot ||
           (rd.hard_state && std::pair(rd.hard_state->term, rd.hard_state->vote) != durable_vote_);
  }

  /** Writes a batch to the storage (not yet durable). */
  std::error_code write(const raft::ready& rd) {
    std::error_code ec;
    for (const raft::snapshot_chunk& c : rd.snapshot_chunks) {
      if constexpr (requires { storage_->write_snapshot_chunk(c); }) {
        if (!ec) ec = checked([&] { return storage_->write_snapshot_chunk(c); });
      }
    }
    if (rd.snapshot && !ec) {
      if constexpr (requires { storage_->install_snapshot(*rd.snapshot); }) {
        ec = checked([&] { return storage_->install_snapshot(*rd.snapshot); });
      }
    }
    if (!ec && !rd.entries.empty()) ec = checked([&] { return storage_->append(rd.entries); });
    if (!ec && rd.hard_state)
      ec = checked([&] { return storage_->set_hard_state(*rd.hard_state); });
    return ec;
  }

  /** The asynchronous sync of the batch in flight completed. */
  void persisted(std::error_code ec) {
    persisting_ = false;
    raft::ready rd = std::move(*in_flight_);
    in_flight_.reset();
    if (stopped_) {
      settle_finished();
      return;
    }
    if (ec) {
      halt(errc::io_error);
      return;
    }
    finish(rd);
    pump();
  }

  /** The batch is durable: sends what vouches for it, applies, serves reads, advances. */
  void finish(raft::ready& rd) {
    for (raft::message& m : rd.persisted_messages) send_(std::move(m));
    if (!rd.entries.empty()) {
      // Leader-level submissions in this batch are durable here now, unless another leader's
      // entry replaced them first.
      const raft::index_t first = rd.entries.front().index;
      const raft::index_t last = rd.entries.back().index;
      while (!durable_.empty() && durable_.begin()->first <= last) {
        const raft::index_t i = durable_.begin()->first;
        pending p = std::move(durable_.begin()->second);
        durable_.erase(durable_.begin());
        if (i < first || rd.entries[i - first].term == p.term) {
          p.waiting->complete({}, {{}, i, raft::no_node});
        } else {
          p.waiting->complete(errc::proposal_dropped, {{}, 0, core_.leader()});
        }
      }
    }
    // Before anything applies: an observer learns of its own leadership before entries of its
    // term do.
    notice_leader(core_.leader());
    if (rd.snapshot) restore(*rd.snapshot);
    for (const raft::entry& e : rd.committed_entries) apply(e);
    for (const raft::proposal_state& ps : rd.proposal_states) answered(ps);
    for (const raft::read_state& rs : rd.read_states) confirm_read(rs);
    serve_reads();
    core_.advance(rd);
    if (!stopped_) maybe_snapshot();
  }

  void confirm_read(const raft::read_state& rs) {
    auto it = reads_.find(rs.context);
    if (it == reads_.end()) return;
    if (rs.error) {
      it->second.waiting->complete(rs.error, {});
      reads_.erase(it);
      return;
    }
    it->second.index = rs.index;
  }

  void serve_reads() {
    for (auto it = reads_.begin(); it != reads_.end();) {
      if (it->second.index == 0 || it->second.index > applied_.load()) {
        ++it;
        continue;
      }
      it->second.waiting->complete({}, it->second.query(*machine_));
      it = reads_.erase(it);
    }
  }

  void maybe_snapshot() {
    if constexpr (snapshottable_machine<StateMachine> &&
                  requires(Storage & st, const raft::snapshot_meta& m, raft::shared_bytes d) {
                    st.create_snapshot(m, d);
                    st.compact(m.index);
                  }) {
      raft::index_t every = settings_.snapshot_every;
      if constexpr (keeping_machine<StateMachine>) every = machine_->snapshot_interval();
      if (every == 0) return;
      const raft::snapshot_meta meta = core_.applied_meta();
      if (meta.index == 0 || meta.index < storage_->snapshot().index + every) return;
      std::error_code ec;
      if constexpr (keeping_machine<StateMachine>) {
        // Without a storage that keeps entries, compaction would lose what the state needs.
        if constexpr (requires(Storage & st, const raft::snapshot_meta& m, raft::shared_bytes d,
                               std::vector<raft::index_t> k) { st.create_snapshot(m, d, k); }) {
          const std::vector<raft::index_t> keep = machine_->kept_entries();
          ec = checked([&] { return storage_->create_snapshot(meta, machine_->snapshot(), keep); });
        } else {
          return;
        }
      } else {
        ec = checked([&] { return storage_->create_snapshot(meta, machine_->snapshot()); });
      }
      if (!ec && meta.index > settings_.snapshot_trailing) {
        ec = checked([&] { return storage_->compact(meta.index - settings_.snapshot_trailing); });
      }
      if (ec) halt(errc::io_error);
    }
  }

  // Storage writes return an error (file_log) or nothing (memory_storage).
  template <class Write>
  static std::error_code checked(Write&& write) {
    if constexpr (std::is_void_v<decltype(write())>) {
      write();
      return {};
    } else {
      return write();
    }
  }

  void restore(const raft::snapshot_meta& meta) {
    if constexpr (requires(StateMachine & m) { m.restore(storage_->snapshot_data()); }) {
      machine_->restore(storage_->snapshot_data());
      applied_ = meta.index;
    } else {
      halt(errc::io_error);  // a snapshot this state machine cannot take
    }
  }

  void apply(const raft::entry& e) {
    std::string result;
    if (!e.payload.empty() && e.type == raft::entry_type::normal) result = machine_->apply(e);
    applied_ = e.index;
    if (!forwards_.empty()) {
      // A forwarded command may be applied before its answer arrives: keep recent results.
      recent_.push_back(applied_result{e.index, e.term, result});
      if (recent_.size() > recent_results) recent_.pop_front();
    }
    auto it = pending_.find(e.index);
    if (it == pending_.end()) return;
    pending p = std::move(it->second);
    pending_.erase(it);
    if (p.term == e.term) {
      p.waiting->complete({}, {std::move(result), e.index, raft::no_node});
    } else {
      p.waiting->complete(errc::proposal_dropped, {{}, 0, core_.leader()});
    }
  }

  void notice_leader(raft::node_id leader) {
    // A known leader in a new term counts as a change even if it is the same node: it may
    // have lost and won an election between two batches.
    const raft::term_t term = core_.term();
    if (leader == leader_.load() && (leader == raft::no_node || term == noticed_term_)) return;
    leader_ = leader;
    noticed_term_ = term;
    if (observer_) observer_(leader, term);
  }

  /** Stopped, with no sync in flight and no tick handler to come: the replica may go. */
  void settle_finished() {
    if (stopped_ && !persisting_ && !ticking_) finished_ = true;
  }

  void halt(errc why) {
    stopped_ = true;
    timer_.cancel();
    settle_finished();
    for (auto& [index, p] : pending_) p.waiting->complete(why, {});
    pending_.clear();
    for (auto& [context, r] : reads_) r.waiting->complete(why, {});
    reads_.clear();
    for (auto& [index, p] : durable_) p.waiting->complete(why, {});
    durable_.clear();
    for (auto& [context, f] : forwards_) f.waiting->complete(why, {});
    forwards_.clear();
  }

  executor_type strand_;
  Storage* storage_;
  StateMachine* machine_;
  raft::core<Storage> core_;
  send_function send_;
  replica_settings settings_;
  boost::asio::steady_timer timer_;
  std::map<raft::index_t, pending> pending_;
  std::map<raft::index_t, pending> durable_;  // ack_level::leader
  std::map<std::uint64_t, forwarded> forwards_;
  // Forward contexts grow across restarts (core::forward): they start from the wall clock.
  std::uint64_t forward_context_ =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  std::deque<applied_result> recent_;
  std::map<std::uint64_t, pending_read> reads_;
  std::uint64_t read_context_ = 0;
  bool persisting_ = false;
  // The term and vote last made durable (or being made durable by the batch in flight).
  std::pair<raft::term_t, raft::node_id> durable_vote_{0, raft::no_node};
  std::optional<raft::ready> in_flight_;
  leadership_observer observer_;
  raft::term_t noticed_term_ = 0;
  std::atomic<raft::node_id> leader_{raft::no_node};
  std::atomic<raft::index_t> applied_{0};
  std::atomic<bool> quiesced_{false};
  std::atomic<bool> finished_{false};
  bool ticking_ = false;
  bool stopped_ = false;
};

}  // namespace quorum::runtime
