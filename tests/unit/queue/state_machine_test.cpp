// Rule-named tests of the quorum queue's state machine (issue 7, first slice): FIFO within a
// priority, strict priorities, prefetch (credit), ack, requeue, reject, the delivery limit,
// dead-lettering, consumers that detach, purge, the command codec and snapshots.
#include <quorum/error.hpp>
#include <quorum/queue/state_machine.hpp>

#include <catch2/catch.hpp>

using namespace quorum;
using namespace quorum::queue;

namespace {

/** A queue fed through encoded log entries, as a replica would apply them. */
struct fixture {
  explicit fixture(queue_options o = {}) : sm(std::move(o)) {}

  effects run(const command& c) { return sm.apply(raft::entry{1, ++index, encode(c)}); }
  message_id publish(std::uint8_t priority = 0, std::uint32_t size = 10) {
    command c;
    c.type = command::kind::enqueue;
    c.size = size;
    c.priority = priority;
    REQUIRE_FALSE(run(c).error);
    return index;
  }
  effects attach(consumer_id who, std::uint32_t prefetch) {
    command c;
    c.type = command::kind::attach;
    c.consumer = who;
    c.prefetch = prefetch;
    return run(c);
  }
  effects settle(consumer_id who, settlement outcome, std::vector<message_id> ids) {
    command c;
    c.type = command::kind::settle;
    c.consumer = who;
    c.outcome = outcome;
    c.ids = std::move(ids);
    return run(c);
  }
  effects detach(consumer_id who) {
    command c;
    c.type = command::kind::detach;
    c.consumer = who;
    return run(c);
  }

  state_machine sm;
  raft::index_t index = 0;
};

std::vector<message_id> ids_of(const effects& e) {
  std::vector<message_id> out;
  for (const delivery& d : e.deliveries) out.push_back(d.id);
  return out;
}

}  // namespace

TEST_CASE("messages of one priority are delivered in the order they were enqueued",
          "[queue][fifo]") {
  fixture q;
  const message_id a = q.publish(), b = q.publish(), c = q.publish();
  CHECK(ids_of(q.attach(1, 10)) == std::vector<message_id>{a, b, c});
}

TEST_CASE("a higher priority is delivered first, strictly, over 32 levels", "[queue][priority]") {
  fixture q;
  const message_id low = q.publish(0), top = q.publish(31), mid = q.publish(7), mid2 = q.publish(7);
  CHECK(ids_of(q.attach(1, 10)) == std::vector<message_id>{top, mid, mid2, low});
  std::error_code ec;
  command bad;
  bad.priority = 32;
  CHECK_FALSE(decode(encode(bad).bytes(), ec));
  CHECK(ec == errc::malformed_message);
}

TEST_CASE("a consumer never holds more unacknowledged messages than its prefetch",
          "[queue][prefetch]") {
  fixture q;
  for (int i = 0; i < 5; ++i) q.publish();
  const effects first = q.attach(1, 2);
  CHECK(first.deliveries.size() == 2);
  CHECK(q.sm.status().unacked == 2);
  CHECK(q.sm.status().ready == 3);
  // Each ack frees one credit, which the next message takes at once.
  const effects after = q.settle(1, settlement::ack, {first.deliveries[0].id});
  CHECK(after.deliveries.size() == 1);
  CHECK(after.removals == std::vector<removed>{{first.deliveries[0].id, removal::acked}});
  CHECK(q.sm.status().unacked == 2);
  // Prefetch 0 means no credit at all.
  fixture idle;
  idle.publish();
  CHECK(idle.attach(1, 0).deliveries.empty());
}

TEST_CASE("consumers with credit are served in turn", "[queue][prefetch]") {
  fixture q;
  q.attach(1, 10);
  q.attach(2, 10);
  std::vector<consumer_id> served;
  for (int i = 0; i < 4; ++i) {
    command c;
    c.type = command::kind::enqueue;
    for (const delivery& d : q.run(c).deliveries) served.push_back(d.consumer);
  }
  CHECK(served == std::vector<consumer_id>{1, 2, 1, 2});
}

TEST_CASE("a requeued message goes back to its place and counts a failed delivery",
          "[queue][requeue]") {
  fixture q;
  const message_id a = q.publish(), b = q.publish();
  q.attach(1, 1);
  const effects back = q.settle(1, settlement::requeue, {a});
  REQUIRE(back.deliveries.size() == 1);
  CHECK(back.deliveries[0].id == a);  // ahead of b, which is newer
  CHECK(back.deliveries[0].failed == 1);
  CHECK(back.deliveries[0].redelivered);
  CHECK(q.settle(1, settlement::ack, {a}).deliveries.at(0).id == b);
}

TEST_CASE("a message returned more times than the delivery limit is dead-lettered",
          "[queue][delivery-limit][dead-letter]") {
  fixture q({2, "dlx"});
  const message_id a = q.publish();
  q.attach(1, 1);
  CHECK(q.settle(1, settlement::requeue, {a}).removals.empty());  // failed 1
  CHECK(q.settle(1, settlement::requeue, {a}).removals.empty());  // failed 2
  const effects third = q.settle(1, settlement::requeue, {a});    // failed 3 > 2
  CHECK(third.removals == std::vector<removed>{{a, removal::dead_lettered}});
  CHECK(third.deliveries.empty());
  CHECK(q.sm.status().ready + q.sm.status().unacked == 0);
}

TEST_CASE("without a dead-letter target, a message over the delivery limit is dropped",
          "[queue][delivery-limit]") {
  fixture q({0, ""});
  const message_id a = q.publish();
  q.attach(1, 1);
  CHECK(q.settle(1, settlement::requeue, {a}).removals ==
        std::vector<removed>{{a, removal::dropped}});
}

TEST_CASE("a delivery limit of -1 requeues forever", "[queue][delivery-limit]") {
  fixture q({-1, "dlx"});
  const message_id a = q.publish();
  q.attach(1, 1);
  for (int i = 0; i < 100; ++i) REQUIRE(q.settle(1, settlement::requeue, {a}).removals.empty());
  CHECK(q.sm.status().unacked == 1);
}

TEST_CASE("a rejected message is dead-lettered, or dropped without a target", "[queue][reject]") {
  fixture with({20, "dlx"});
  const message_id a = with.publish();
  with.attach(1, 1);
  CHECK(with.settle(1, settlement::reject, {a}).removals ==
        std::vector<removed>{{a, removal::dead_lettered}});
  fixture without;
  const message_id b = without.publish();
  without.attach(1, 1);
  CHECK(without.settle(1, settlement::reject, {b}).removals ==
        std::vector<removed>{{b, removal::dropped}});
}

TEST_CASE("a consumer that detaches returns its unacknowledged messages, uncounted",
          "[queue][consumer]") {
  fixture q({1, ""});
  const message_id a = q.publish(), b = q.publish();
  q.attach(1, 2);
  q.attach(2, 2);
  const effects gone = q.detach(1);
  CHECK(ids_of(gone) == std::vector<message_id>{a, b});  // to consumer 2, in order
  for (const delivery& d : gone.deliveries) {
    CHECK(d.consumer == 2);
    CHECK(d.failed == 0);
    CHECK(d.redelivered);
  }
}

TEST_CASE("settling what the consumer does not hold changes nothing", "[queue][consumer]") {
  fixture q;
  const message_id a = q.publish();
  q.attach(1, 1);
  q.attach(2, 1);
  const state_machine before = q.sm;
  CHECK(q.settle(2, settlement::ack, {a}).error == errc::invalid_command);
  CHECK(q.settle(9, settlement::ack, {a}).error == errc::invalid_command);
  CHECK(q.settle(1, settlement::ack, {a, a + 100}).error == errc::invalid_command);
  CHECK(q.detach(9).error == errc::invalid_command);
  CHECK(q.sm == before);
}

TEST_CASE("purge drops the ready messages and keeps the unacknowledged", "[queue][purge]") {
  fixture q;
  const message_id a = q.publish(), b = q.publish(), c = q.publish();
  q.attach(1, 1);
  command purge;
  purge.type = command::kind::purge;
  const effects e = q.run(purge);
  CHECK(e.removals == std::vector<removed>{{b, removal::purged}, {c, removal::purged}});
  CHECK(q.sm.status().unacked == 1);
  CHECK(q.sm.status().ready == 0);
  CHECK(q.settle(1, settlement::ack, {a}).removals.size() == 1);
}

TEST_CASE("the oldest live message bounds what the log must keep", "[queue][bounded-disk]") {
  fixture q;
  CHECK(q.sm.oldest_live() == 0);
  const message_id a = q.publish(), b = q.publish();
  q.attach(1, 1);  // holds a
  CHECK(q.sm.oldest_live() == a);
  q.settle(1, settlement::ack, {a});
  CHECK(q.sm.oldest_live() == b);
}

TEST_CASE("a snapshot restores the same queue, and damaged snapshots are refused",
          "[queue][snapshot]") {
  fixture q({3, "dlx"});
  q.publish(5);
  const message_id b = q.publish(0, 77);
  q.publish(31);
  q.attach(1, 2);
  q.attach(2, 0);
  q.settle(1, settlement::requeue, {b});
  const raft::shared_bytes bytes = q.sm.snapshot();
  state_machine copy;
  REQUIRE(copy.restore(bytes));
  CHECK(copy == q.sm);
  // Every truncation is refused, and leaves the state unchanged.
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    std::vector<std::byte> cut(bytes.bytes().begin(), bytes.bytes().begin() + n);
    state_machine s;
    CHECK_FALSE(s.restore(raft::shared_bytes(std::move(cut))));
    CHECK(s == state_machine{});
  }
}

TEST_CASE("commands survive the codec, and malformed commands are refused", "[queue][codec]") {
  command c;
  c.type = command::kind::settle;
  c.consumer = 42;
  c.outcome = settlement::reject;
  c.ids = {3, 9, 27};
  std::error_code ec;
  const raft::shared_bytes bytes = encode(c);
  CHECK(decode(bytes.bytes(), ec) == c);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    CHECK_FALSE(decode(bytes.bytes().subspan(0, n), ec));
    CHECK(ec == errc::malformed_message);
  }
  fixture q;
  CHECK(q.sm.apply(raft::entry{1, 1, raft::shared_bytes("junk")}).error == errc::malformed_message);
}
