// Tests of per-follower progress: probe, replicate, snapshot-needed, and the in-flight window.
#include <quorum/raft/progress.hpp>

#include <catch2/catch.hpp>

using namespace quorum::raft;

TEST_CASE("the in-flight window fills by count or by bytes and frees by acknowledgement",
          "[raft][progress]") {
  inflights window(3, 1000);
  window.add(1, 10);
  window.add(2, 10);
  CHECK_FALSE(window.full());
  window.add(5, 10);
  CHECK(window.full());
  window.free_le(2);
  CHECK(window.count() == 1);
  CHECK_FALSE(window.full());
  window.add(9, 2000);
  CHECK(window.full());
  window.free_first();
  window.free_first();
  CHECK(window.count() == 0);
  CHECK(window.bytes() == 0);
}

TEST_CASE("a probed follower is paused after one append until it answers", "[raft][progress]") {
  progress pr(5, 8, 1 << 20);
  CHECK_FALSE(pr.is_paused());
  pr.sent_append(2, 6, 100);
  CHECK(pr.is_paused());
  CHECK(pr.next() == 5);  // probing does not advance next optimistically
  pr.heartbeat_answered();
  CHECK_FALSE(pr.is_paused());
}

TEST_CASE("a replicating follower advances next optimistically", "[raft][progress]") {
  progress pr(1, 2, 1 << 20);
  pr.maybe_update(4);
  pr.become_replicate();
  CHECK(pr.next() == 5);
  pr.sent_append(3, 7, 30);
  CHECK(pr.next() == 8);
  pr.sent_append(1, 8, 10);
  CHECK(pr.is_paused());
  CHECK(pr.maybe_update(7));
  CHECK_FALSE(pr.is_paused());
  CHECK(pr.inflights().count() == 1);
}

TEST_CASE("stale rejections are ignored", "[raft][progress]") {
  progress pr(10, 8, 1 << 20);
  pr.maybe_update(5);
  pr.become_replicate();
  CHECK_FALSE(pr.maybe_decrease_to(4, 0));  // at or below match: stale
  CHECK(pr.maybe_decrease_to(7, 0));        // above match: back to match + 1
  CHECK(pr.next() == 6);
  pr.become_probe();
  CHECK_FALSE(pr.maybe_decrease_to(9, 0));  // probe rejected at another index: stale
  CHECK(pr.maybe_decrease_to(5, 5));        // next - 1 == 5
  CHECK(pr.next() == 6);                    // never below match + 1
}

TEST_CASE("a follower that needs a snapshot gets no appends", "[raft][progress]") {
  progress pr(1, 8, 1 << 20);
  pr.become_snapshot_needed();
  CHECK(pr.is_paused());
  CHECK(to_string(pr.state()) == "snapshot-needed");
  pr.become_probe();
  CHECK_FALSE(pr.is_paused());
}
