// Rule-named tests of queue groups (fan-out without write amplification) and of the registry
// that declares them: one entry for several queues, each queue on its own, the entries a group
// keeps, snapshots, and the refusals.
#include <quorum/error.hpp>
#include <quorum/queue/group.hpp>
#include <quorum/queue/registry.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace quorum;
using namespace quorum::queue;

namespace {

/** A group fed through encoded log entries, as a replica would apply them. */
struct group_fixture {
  explicit group_fixture(std::vector<queue_options> members) : g(std::move(members)) {}

  group_effects run(command c) {
    c.time = now;
    const std::vector<std::byte> body(c.type == command::kind::enqueue ? c.size : 0);
    std::error_code ec;
    const raft::shared_bytes bytes = encode(c, body);
    const std::optional<command> decoded = decode(bytes.bytes(), ec);
    REQUIRE(decoded);
    REQUIRE(*decoded == c);
    return g.apply(++index, *decoded);
  }
  group_effects publish(std::uint64_t fanout, std::uint64_t producer = 0,
                        std::uint64_t sequence = 0) {
    command c;
    c.type = command::kind::enqueue;
    c.size = 100;
    c.fanout = fanout;
    c.producer = producer;
    c.sequence = sequence;
    return run(c);
  }
  group_effects get(std::uint8_t member, consumer_id who) {
    command c;
    c.type = command::kind::get;
    c.member = member;
    c.consumer = who;
    return run(c);
  }
  group_effects settle(std::uint8_t member, consumer_id who, settlement s, message_id id) {
    command c;
    c.type = command::kind::settle;
    c.member = member;
    c.consumer = who;
    c.outcome = s;
    c.ids = {id};
    return run(c);
  }

  queue_group g;
  raft::index_t index = 0;
  std::int64_t now = 1000;
};

std::vector<queue_options> three() {
  return std::vector<queue_options>(3);
}

raft::entry entry(raft::index_t index, const registry_command& c) {
  return raft::entry{1, index, encode(c)};
}

registry_command group_declare(std::string name, std::vector<std::string> queues,
                               std::uint32_t replicas = 3) {
  registry_command c;
  c.type = registry_command::kind::declare_group;
  c.name = std::move(name);
  c.replicas = replicas;
  for (std::string& q : queues) c.queues.push_back({std::move(q), queue_options{}});
  return c;
}

}  // namespace

TEST_CASE(
    "a message routed to several queues of a group is one entry each delivers and acks "
    "on its own",
    "[queue][group]") {
  group_fixture f(three());
  const group_effects put = f.publish(0b101);
  CHECK(put.reply().published == effects::publish::accepted);
  REQUIRE(put.members.size() == 2);
  CHECK(put.members[0].member == 0);
  CHECK(put.members[1].member == 2);
  const message_id id = f.index;
  CHECK(f.g.member(0).status().ready == 1);
  CHECK(f.g.member(1).status().ready == 0);
  CHECK(f.g.member(2).status().ready == 1);
  // Member 0's consumer takes and acks it; member 2 still has it, with the same id.
  const group_effects got = f.get(0, 7);
  REQUIRE(got.reply().deliveries.size() == 1);
  CHECK(got.reply().deliveries[0].id == id);
  REQUIRE(f.settle(0, 7, settlement::ack, id).members.size() == 1);
  CHECK(f.g.member(0).live_count() == 0);
  CHECK(f.g.member(2).status().ready == 1);
  const group_effects other = f.get(2, 8);
  REQUIRE(other.reply().deliveries.size() == 1);
  CHECK(other.reply().deliveries[0].id == id);
  CHECK_FALSE(other.reply().deliveries[0].redelivered);
  // A consumer of one member settles nothing of another.
  CHECK(f.settle(0, 8, settlement::ack, id).reply().error == errc::invalid_command);
}

TEST_CASE("a group keeps a message's entry while any queue it went to still holds it",
          "[queue][group][bounded-disk]") {
  group_fixture f(three());
  f.publish(0b011);  // 1: to members 0 and 1
  f.publish(0b100);  // 2: to member 2
  f.publish(0b111);  // 3: to all
  CHECK(f.g.live_ids() == std::vector<message_id>{1, 2, 3});
  CHECK(f.g.live_count() == 6);
  f.get(0, 7);  // takes 1 from member 0
  f.settle(0, 7, settlement::ack, 1);
  CHECK(f.g.live_ids() == std::vector<message_id>{1, 2, 3});  // member 1 still has 1
  f.get(1, 8);
  f.settle(1, 8, settlement::reject, 1);  // dropped: no dead-letter target
  CHECK(f.g.live_ids() == std::vector<message_id>{2, 3});
  command purge;
  purge.type = command::kind::purge;
  purge.member = 2;
  CHECK(f.run(purge).reply().removals.size() == 2);  // 2 and 3 leave member 2
  CHECK(f.g.live_ids() == std::vector<message_id>{3});
}

TEST_CASE("a fan-out publish refused by one full queue is rejected and the others keep it",
          "[queue][group][max-length]") {
  queue_options small;
  small.max_length = 1;
  small.overflow = overflow::reject_publish;
  group_fixture f({queue_options{}, small});
  CHECK(f.publish(0b11).reply().published == effects::publish::accepted);
  CHECK(f.publish(0b11).reply().published == effects::publish::rejected);
  CHECK(f.g.member(0).status().ready == 2);
  CHECK(f.g.member(1).status().ready == 1);
}

TEST_CASE("a fan-out publish sent again with its producer and sequence is a duplicate",
          "[queue][group][dedup]") {
  group_fixture f(three());
  CHECK(f.publish(0b111, 5, 1).reply().published == effects::publish::accepted);
  CHECK(f.publish(0b111, 5, 1).reply().published == effects::publish::duplicate);
  for (std::size_t i = 0; i < 3; ++i) CHECK(f.g.member(i).status().ready == 1);
}

TEST_CASE("a tick reaches every queue of a group", "[queue][group][ttl]") {
  queue_options ttl;
  ttl.message_ttl_ms = 50;
  group_fixture f({queue_options{}, ttl});
  f.publish(0b11);
  f.now += 100;
  command tick;
  tick.type = command::kind::tick;
  const group_effects fx = f.run(tick);
  REQUIRE(fx.members.size() == 2);
  REQUIRE(fx.members[1].fx.removals.size() == 1);
  CHECK(fx.members[1].fx.removals[0].why == removal::expired);
  CHECK(f.g.member(0).status().ready == 1);
  CHECK(f.g.member(1).status().ready == 0);
}

TEST_CASE("a command for a queue the group does not have is refused and changes nothing",
          "[queue][group][malformed]") {
  group_fixture f(three());
  CHECK(f.publish(0b1000).reply().error == errc::invalid_command);
  CHECK(f.get(3, 7).reply().error == errc::invalid_command);
  for (std::size_t i = 0; i < 3; ++i) CHECK(f.g.member(i).live_count() == 0);
  // A queue of its own knows only member 0.
  queue_group solo({queue_options{}}, true);
  command c;
  c.type = command::kind::enqueue;
  c.fanout = 0b10;
  CHECK(solo.apply(1, c).reply().error == errc::invalid_command);
}

TEST_CASE("a group's snapshot restores every queue, and a malformed one changes nothing",
          "[queue][group][snapshot]") {
  group_fixture f(three());
  f.publish(0b111);
  f.publish(0b010);
  f.get(2, 9);
  const raft::shared_bytes snap = f.g.snapshot();
  queue_group copy(three());
  REQUIRE(copy.restore(snap));
  for (std::size_t i = 0; i < 3; ++i) CHECK(copy.member(i) == f.g.member(i));
  CHECK(copy.live_ids() == f.g.live_ids());
  // Cut short, or for another number of queues: refused, the state unchanged.
  CHECK_FALSE(copy.restore(snap.slice(0, snap.size() - 1)));
  queue_group two({queue_options{}, queue_options{}});
  CHECK_FALSE(two.restore(snap));
  CHECK(two.live_count() == 0);
  CHECK(copy.member(1).status().ready == 2);
  // A queue of its own snapshots as that queue alone.
  queue_group solo({queue_options{}}, true);
  CHECK(solo.snapshot() == state_machine().snapshot());
}

TEST_CASE("a queue's own commands keep their format, and a group's carry member and fan-out",
          "[queue][group][codec]") {
  command plain;
  plain.type = command::kind::get;
  plain.consumer = 3;
  command grouped = plain;
  grouped.member = 4;
  const raft::shared_bytes a = encode(plain);
  const raft::shared_bytes b = encode(grouped);
  CHECK(std::to_integer<int>(a.bytes()[0]) == 1);
  CHECK(std::to_integer<int>(b.bytes()[0]) == 2);
  std::error_code ec;
  CHECK(decode(b.bytes(), ec) == grouped);
  // The body of a fan-out enqueue is found after its longer head.
  command fan;
  fan.type = command::kind::enqueue;
  fan.fanout = 0b11;
  const std::string text = "one body for both";
  fan.size = static_cast<std::uint32_t>(text.size());
  const raft::shared_bytes bytes = encode(fan, std::as_bytes(std::span(text)));
  const std::span<const std::byte> body = body_of(bytes.bytes());
  CHECK(std::string(reinterpret_cast<const char*>(body.data()), body.size()) == text);
  // Cut anywhere, a group command is refused.
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    CHECK_FALSE(decode(bytes.bytes().first(n), ec));
  }
}

TEST_CASE("a queue group is declared and deleted as a whole, never one of its queues alone",
          "[queue][group][registry]") {
  registry r({1, 2, 3});
  std::vector<queue_record> records;
  REQUIRE(r.apply(entry(1, group_declare("fan", {"a", "b", "c"})), records) ==
          registry_result::created);
  REQUIRE(records.size() == 3);
  for (std::uint8_t i = 0; i < 3; ++i) {
    CHECK(records[i].group == 2);
    CHECK(records[i].member == i);
    CHECK(records[i].queue_group == "fan");
    CHECK(records[i].members == records[0].members);
  }
  registry_command remove;
  remove.type = registry_command::kind::remove;
  remove.name = "b";
  records.clear();
  CHECK(r.apply(entry(2, remove), records) == registry_result::grouped);
  CHECK(r.find("b") != nullptr);
  remove.name = "fan";
  CHECK(r.apply(entry(3, remove), records) == registry_result::removed);
  CHECK(records.size() == 3);
  CHECK(r.queues().empty());
  records.clear();
  CHECK(r.apply(entry(4, remove), records) == registry_result::missing);
}

TEST_CASE("declaring a group again the same way does nothing, and a name taken elsewhere fails",
          "[queue][group][registry]") {
  registry r({1, 2, 3});
  std::vector<queue_record> records;
  REQUIRE(r.apply(entry(1, group_declare("fan", {"a", "b"})), records) == registry_result::created);
  CHECK(r.apply(entry(2, group_declare("fan", {"a", "b"})), records) == registry_result::exists);
  CHECK(r.apply(entry(3, group_declare("fan", {"a"})), records) == registry_result::mismatch);
  CHECK(r.apply(entry(4, group_declare("fan", {"a", "b"}, 1)), records) ==
        registry_result::mismatch);
  // Queues and groups share one namespace.
  CHECK(r.apply(entry(5, group_declare("other", {"b", "x"})), records) ==
        registry_result::mismatch);
  registry_command solo;
  solo.name = "a";
  solo.replicas = 3;
  CHECK(r.apply(entry(6, solo), records) == registry_result::mismatch);
  solo.name = "fan";
  CHECK(r.apply(entry(7, solo), records) == registry_result::mismatch);
  solo.name = "mine";
  REQUIRE(r.apply(entry(8, solo), records) == registry_result::created);
  CHECK(r.apply(entry(9, group_declare("mine", {"y"})), records) == registry_result::mismatch);
  // No queue twice, none named as the group, none that expires on its own.
  CHECK(r.apply(entry(10, group_declare("g", {"p", "p"})), records) == registry_result::malformed);
  CHECK(r.apply(entry(11, group_declare("g", {"g"})), records) == registry_result::malformed);
  registry_command expiring = group_declare("g", {"p"});
  expiring.queues[0].options.expires_ms = 10;
  CHECK(r.apply(entry(12, expiring), records) == registry_result::malformed);
  CHECK(r.queues().size() == 3);
  // The command round-trips through its bytes, and cut short it is refused.
  const registry_command c = group_declare("g", {"p", "q"});
  const raft::shared_bytes bytes = encode(c);
  CHECK(decode_registry_command(bytes.bytes()) == c);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    CHECK_FALSE(decode_registry_command(bytes.bytes().first(n)));
  }
}
