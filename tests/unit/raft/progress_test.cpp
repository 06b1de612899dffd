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

TEST_CASE("snapshot chunks are pipelined within the window and resumed from the acknowledged byte",
          "[raft][progress][paper-7]") {
  progress pr(1, 2, 1 << 20);
  pr.become_snapshot({10, 3, {{1, 2, 3}}});
  CHECK(to_string(pr.state()) == "snapshot");
  CHECK(pr.snapshot_index() == 10);
  pr.sent_snapshot_chunk(100, 100, false);
  CHECK_FALSE(pr.is_paused());
  pr.sent_snapshot_chunk(200, 100, false);
  CHECK(pr.is_paused());  // window of two chunks full
  pr.snapshot_received(100);
  CHECK_FALSE(pr.is_paused());
  CHECK(pr.snapshot_offset() == 200);
  pr.snapshot_rewind(50);  // stale: the follower already holds 100
  CHECK(pr.snapshot_offset() == 200);
  pr.snapshot_rewind(100);  // chunk 100..200 was lost: resend from 100
  CHECK(pr.snapshot_offset() == 100);
  CHECK(pr.inflights().count() == 0);
  pr.sent_snapshot_chunk(150, 50, true);
  CHECK(pr.is_paused());                    // everything sent: wait for the receipt
  CHECK_FALSE(pr.maybe_decrease_to(0, 0));  // append rejections are stale now
}

TEST_CASE("refusals of one window's chunks resend the window once, not once per refusal",
          "[raft][progress][paper-7]") {
  // Found by the queue workload: with 7-byte chunks, every refused chunk rewound the stream
  // and resent a window, each of whose chunks was refused again: traffic grew without bound.
  progress pr(1, 4, 1 << 20);
  pr.become_snapshot({10, 3, {{1, 2, 3}}});
  for (std::uint64_t end : {100, 200, 300, 400}) pr.sent_snapshot_chunk(end, 100, false);
  pr.snapshot_rewind(0);  // chunk 0 was lost; 100.. arrived first
  CHECK(pr.snapshot_offset() == 0);
  pr.sent_snapshot_chunk(100, 100, false);
  pr.sent_snapshot_chunk(200, 100, false);
  pr.snapshot_rewind(0);  // 200.. and 300.. of the old window arrive: the same refusal
  pr.snapshot_rewind(0);
  CHECK(pr.snapshot_offset() == 200);  // not rewound again
  CHECK(pr.inflights().count() == 2);
  pr.snapshot_rewind(100);  // the follower holds more and still misses something: rewind
  CHECK(pr.snapshot_offset() == 100);
  pr.sent_snapshot_chunk(200, 100, false);
  pr.heartbeat_answered();  // notes the acknowledgement (100) the stream has reached
  pr.heartbeat_answered();
  pr.heartbeat_answered();  // the resent chunk was lost too: the stall check rewinds anyway
  CHECK(pr.snapshot_offset() == 100);
  CHECK(pr.inflights().count() == 0);
}

TEST_CASE("a snapshot stream stalled for two heartbeat answers is resent from the last ack",
          "[raft][progress][paper-7]") {
  progress pr(1, 8, 1 << 20);
  pr.become_snapshot({10, 3, {{1, 2, 3}}});
  pr.sent_snapshot_chunk(100, 100, false);
  pr.heartbeat_answered();  // the chunk may still be on its way
  CHECK(pr.snapshot_offset() == 100);
  pr.heartbeat_answered();  // two answers and no acknowledgement: lost
  CHECK(pr.snapshot_offset() == 0);
  pr.sent_snapshot_chunk(100, 100, false);
  pr.snapshot_received(100);
  pr.heartbeat_answered();
  pr.heartbeat_answered();  // nothing outstanding: no rewind
  CHECK(pr.snapshot_offset() == 100);
}
