// Tests of the shared WAL: many groups in one log, group commit (one fdatasync for all),
// per-group reads and recovery, and reclaiming segment files once no group needs them.
#include <quorum/detail/random.hpp>
#include <quorum/error.hpp>
#include <quorum/raft/memory_storage.hpp>
#include <quorum/storage/faulty_file_system.hpp>
#include <quorum/storage/shared_wal.hpp>

#include "../../support/storage.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <string>

using namespace quorum;
using namespace quorum::storage;
using quorum::test::payload_at;
using raft::entry;
using raft::index_t;
using raft::membership;
using raft::shared_bytes;

namespace {

const std::string dir = "/data/wal";

entry make(std::uint64_t group, index_t index, raft::term_t term = 1) {
  return {term, index, shared_bytes("g" + std::to_string(group) + "/e" + std::to_string(index))};
}

file_log_options small_segments() {
  file_log_options o;
  o.segment_bytes = 300;
  return o;
}

}  // namespace

TEST_CASE("appends of many groups become durable with one fdatasync (group commit)",
          "[storage][shared-wal]") {
  faulty_file_system fs;
  shared_wal wal(fs, dir);
  std::vector<wal_log*> groups;
  for (std::uint64_t g = 1; g <= 50; ++g) groups.push_back(&wal.open(g, membership{{1}}));
  REQUIRE_FALSE(wal.sync());
  const auto syncs = fs.operations(fs_op::sync);
  for (int round = 1; round <= 3; ++round) {
    for (wal_log* g : groups) {
      REQUIRE_FALSE(g->append(std::vector{make(g->group(), static_cast<index_t>(round))}));
      REQUIRE_FALSE(g->set_hard_state({1, 1, static_cast<index_t>(round)}));
    }
    REQUIRE_FALSE(wal.sync());
  }
  CHECK(fs.operations(fs_op::sync) - syncs == 3);  // 150 appends, three fdatasyncs
  CHECK(groups[0]->sync() == std::error_code{});   // nothing left to write: no fdatasync
  CHECK(fs.operations(fs_op::sync) - syncs == 3);
}

TEST_CASE("each group's log, truncations and hard state are recovered on their own",
          "[storage][shared-wal][paper-5.3]") {
  faulty_file_system fs;
  {
    shared_wal wal(fs, dir, small_segments());
    wal_log& a = wal.open(7, membership{{1}});
    wal_log& b = wal.open(9, membership{{1, 2}});
    for (index_t i = 1; i <= 6; ++i) {
      REQUIRE_FALSE(a.append(std::vector{make(7, i)}));
      REQUIRE_FALSE(b.append(std::vector{make(9, i)}));
    }
    REQUIRE_FALSE(a.append(std::vector{make(7, 4, 2)}));  // truncates a's 4..6
    REQUIRE_FALSE(a.set_hard_state({2, 1, 3}));
    REQUIRE_FALSE(b.set_hard_state({1, 2, 6}));
    REQUIRE_FALSE(wal.sync());
    CHECK(wal.segment_count() > 1);
  }
  fs.crash();
  shared_wal wal(fs, dir, small_segments());
  CHECK(wal.groups() == std::vector<std::uint64_t>{7, 9});
  wal_log& a = wal.open(7, membership{{1}});
  wal_log& b = wal.open(9, membership{{1, 2}});
  CHECK(a.last_index() == 4);
  std::error_code ec;
  CHECK(a.term(4, ec) == 2);
  CHECK(b.last_index() == 6);
  CHECK(payload_at(b, 5) == "g9/e5");
  CHECK(a.initial_state().hard == raft::hard_state{2, 1, 3});
  CHECK(b.initial_state().hard == raft::hard_state{1, 2, 6});
  CHECK(b.initial_state().members == membership{{1, 2}});
}

TEST_CASE("reading one group reads only its own records", "[storage][shared-wal]") {
  faulty_file_system fs;
  shared_wal wal(fs, dir);
  wal_log& a = wal.open(1, membership{{1}});
  wal_log& b = wal.open(2, membership{{1}});
  for (index_t i = 1; i <= 100; ++i) {
    REQUIRE_FALSE(a.append(std::vector{make(1, i)}));
    REQUIRE_FALSE(b.append(std::vector{make(2, i)}));
  }
  std::error_code ec;
  CHECK(a.entries(100, 101, 1 << 20, ec)[0].payload.to_string() == "g1/e100");  // not yet written
  REQUIRE_FALSE(wal.sync());
  const auto reads = fs.operations(fs_op::read);
  const auto got = a.entries(1, 101, 1 << 20, ec);
  REQUIRE(got.size() == 100);
  CHECK(got[99].payload.to_string() == "g1/e100");
  // Interleaved with group 2, group 1's entries are 100 separate records: one read each, and
  // never a scan of group 2's.
  CHECK(fs.operations(fs_op::read) - reads == 100);
}

TEST_CASE("segments are deleted once every group compacted past them, idle groups included",
          "[storage][shared-wal][paper-7]") {
  faulty_file_system fs;
  {
    shared_wal wal(fs, dir, small_segments());
    wal_log& a = wal.open(1, membership{{1}});
    wal_log& b = wal.open(2, membership{{1}});
    wal_log& idle = wal.open(3, membership{{1}});
    REQUIRE_FALSE(idle.set_hard_state({4, 3, 0}));  // only a hard state, in the first segment
    for (index_t i = 1; i <= 30; ++i) {
      REQUIRE_FALSE(a.append(std::vector{make(1, i)}));
      REQUIRE_FALSE(b.append(std::vector{make(2, i)}));
    }
    REQUIRE_FALSE(wal.sync());
    const std::size_t before = wal.segment_count();
    REQUIRE(before > 4);
    REQUIRE_FALSE(a.create_snapshot({28, 1, {{1}}}, shared_bytes("a")));
    REQUIRE_FALSE(a.compact(28));
    CHECK(wal.segment_count() == before);  // group 2 still needs them
    REQUIRE_FALSE(b.create_snapshot({28, 1, {{1}}}, shared_bytes("b")));
    REQUIRE_FALSE(b.compact(28));
    CHECK(wal.segment_count() < before / 2);
  }
  fs.crash();
  shared_wal wal(fs, dir, small_segments());
  wal_log& a = wal.open(1, membership{{1}});
  wal_log& b = wal.open(2, membership{{1}});
  wal_log& idle = wal.open(3, membership{{1}});
  CHECK(a.first_index() == 29);
  CHECK(payload_at(a, 30) == "g1/e30");
  CHECK(b.first_index() == 29);
  CHECK(idle.initial_state().hard == raft::hard_state{4, 3, 0});  // carried forward
}

TEST_CASE("a crash keeps every group's synced entries", "[storage][shared-wal][crash]") {
  for (std::uint64_t seed = 1; seed <= 30; ++seed) {
    INFO("seed " << seed);
    faulty_file_system fs(seed);
    index_t synced = 0;
    {
      shared_wal wal(fs, dir, small_segments());
      std::vector<wal_log*> groups;
      for (std::uint64_t g = 1; g <= 4; ++g) groups.push_back(&wal.open(g, membership{{1}}));
      for (index_t i = 1; i <= 12; ++i) {
        for (wal_log* g : groups) REQUIRE_FALSE(g->append(std::vector{make(g->group(), i)}));
        if (i <= 8) {
          REQUIRE_FALSE(wal.sync());
          synced = i;
        }
      }
    }
    fs.crash();
    shared_wal wal(fs, dir, small_segments());
    for (std::uint64_t g = 1; g <= 4; ++g) {
      wal_log& log = wal.open(g, membership{{1}});
      CHECK(log.last_index() >= synced);
      for (index_t i = 1; i <= log.last_index(); ++i) {
        CHECK(payload_at(log, i) == make(g, i).payload.to_string());
      }
    }
  }
}

TEST_CASE("after any mix of appends, truncations and compactions a reopened WAL equals a model",
          "[storage][shared-wal][model]") {
  // memory_storage is the model; the WAL must read back the same after every reopen, however
  // segments were rolled and reclaimed in between.
  for (std::uint64_t seed = 1; seed <= 60; ++seed) {
    INFO("seed " << seed);
    quorum::detail::splitmix64 random(seed);
    faulty_file_system fs(seed);
    raft::memory_storage model(membership{{1}});
    index_t commit = 0;
    raft::term_t term = 1;
    auto wal = std::make_unique<shared_wal>(fs, dir, small_segments());
    wal_log* log = &wal->open(1, membership{{1}});
    for (int step = 0; step < 120; ++step) {
      const auto choice = random.below(10);
      if (choice < 6) {
        const index_t lo = std::max(commit + 1, model.first_index());
        const index_t from = lo + random.below(model.last_index() + 2 - lo);
        if (random.below(3) == 0) ++term;
        std::vector<entry> batch;
        for (std::uint64_t i = 0, n = 1 + random.below(4); i < n; ++i) {
          batch.push_back(make(1, from + i, term));
        }
        model.append(batch);
        REQUIRE_FALSE(log->append(batch));
      } else if (choice < 8) {
        commit = model.last_index();
      } else if (commit > model.snapshot().index) {
        std::error_code ec;
        const raft::snapshot_meta meta{commit, model.term(commit, ec), {{1}}};
        REQUIRE_FALSE(model.create_snapshot(meta, shared_bytes("s")));
        REQUIRE_FALSE(log->create_snapshot(meta, shared_bytes("s")));
        const index_t to = model.first_index() + random.below(commit + 1 - model.first_index());
        if (to >= model.first_index()) {
          REQUIRE_FALSE(model.compact(to));
          REQUIRE_FALSE(log->compact(to));
        }
      }
      if (random.below(8) == 0) {
        REQUIRE_FALSE(wal->sync());
        wal.reset();
        fs.crash();
        wal = std::make_unique<shared_wal>(fs, dir, small_segments());
        log = &wal->open(1, membership{{1}});
        REQUIRE(log->first_index() == model.first_index());
        REQUIRE(log->last_index() == model.last_index());
        std::error_code ec;
        for (index_t i = model.first_index() - 1; i <= model.last_index(); ++i) {
          REQUIRE(log->term(i, ec) == model.term(i, ec));
        }
        if (model.last_index() >= model.first_index()) {
          CHECK(log->entries(model.first_index(), model.last_index() + 1, 1 << 20, ec) ==
                model.entries(model.first_index(), model.last_index() + 1, 1 << 20, ec));
        }
      }
    }
  }
}

TEST_CASE("the batched durability mode syncs at most once per interval, and is weaker",
          "[storage][shared-wal][durability]") {
  faulty_file_system fs;
  file_log_options o;
  o.sync_interval = std::chrono::hours(1);  // no test waits for it
  {
    shared_wal wal(fs, dir, o);
    wal_log& log = wal.open(1, membership{{1}});
    REQUIRE_FALSE(log.append(std::vector{make(1, 1)}));
    REQUIRE_FALSE(wal.sync());  // the first one goes to the disk
    const auto syncs = fs.operations(fs_op::sync);
    const std::string segment = dir + "/seg-00000000000000000001-00000000000000000000.log";
    const auto size = fs.contents(segment).size();
    REQUIRE_FALSE(log.append(std::vector{make(1, 2)}));
    REQUIRE_FALSE(wal.sync());  // written, not synced
    CHECK(fs.operations(fs_op::sync) == syncs);
    CHECK(fs.contents(segment).size() > size);
  }
  fs.crash(false);  // a power loss takes the unsynced, acknowledged entry 2 with it
  shared_wal wal(fs, dir, o);
  CHECK(wal.open(1, membership{{1}}).last_index() == 1);
}

TEST_CASE("a small log that never compacts is copied forward instead of pinning the WAL",
          "[storage][shared-wal][kept]") {
  // Group 1 is like a registry: three entries, never compacted. Group 2 writes on and keeps
  // one early entry alive through its snapshots, like a queue with a long-unacked message.
  faulty_file_system fs;
  std::size_t most_segments = 0;
  {
    shared_wal wal(fs, dir, small_segments());
    wal_log& registry = wal.open(1, membership{{1}});
    wal_log& queue = wal.open(2, membership{{1}});
    REQUIRE_FALSE(registry.append(std::vector{make(1, 1), make(1, 2), make(1, 3)}));
    REQUIRE_FALSE(registry.set_hard_state({1, 1, 3}));
    for (index_t i = 1; i <= 400; ++i) {
      REQUIRE_FALSE(queue.append(std::vector{make(2, i)}));
      if (i % 8 == 0) {
        REQUIRE_FALSE(wal.sync());
        const std::vector<index_t> keep{2};
        REQUIRE_FALSE(queue.create_snapshot({i, 1, {{1}}}, shared_bytes("q"), keep));
        REQUIRE_FALSE(queue.compact(i));
        most_segments = std::max(most_segments, wal.segment_count());
      }
    }
    REQUIRE_FALSE(wal.sync());
  }
  CHECK(most_segments <= 10);  // 400 entries of ~40 bytes fill some 60 segments
  fs.crash();
  shared_wal wal(fs, dir, small_segments());
  wal_log& registry = wal.open(1, membership{{1}});
  wal_log& queue = wal.open(2, membership{{1}});
  CHECK(registry.first_index() == 1);
  CHECK(registry.last_index() == 3);
  for (index_t i = 1; i <= 3; ++i) CHECK(payload_at(registry, i) == "g1/e" + std::to_string(i));
  CHECK(registry.initial_state().hard == raft::hard_state{1, 1, 3});
  CHECK(queue.kept_entry(2)->payload.to_string() == "g2/e2");
  CHECK(queue.first_index() == 401);
}

TEST_CASE("sealed segments are replayed from their index, and a bad index is only a detour",
          "[storage][shared-wal]") {
  faulty_file_system fs;
  auto fill = [&] {
    shared_wal wal(fs, dir, small_segments());
    wal_log& a = wal.open(1, membership{{1}});
    wal_log& b = wal.open(2, membership{{1}});
    for (index_t i = 1; i <= 60; ++i) {
      REQUIRE_FALSE(a.append(std::vector{make(1, i)}));
      REQUIRE_FALSE(b.append(std::vector{make(2, i, i > 50 ? 2 : 1)}));
      REQUIRE_FALSE(a.set_hard_state({1, 1, i}));
    }
    const std::vector<index_t> keep{7};
    REQUIRE_FALSE(wal.sync());
    REQUIRE_FALSE(b.create_snapshot({40, 1, {{1}}}, shared_bytes("b40"), keep));
    REQUIRE_FALSE(b.compact(40));
    REQUIRE_FALSE(b.append(std::vector{make(2, 55, 3)}));  // a truncation
    REQUIRE_FALSE(wal.sync());
  };
  auto check = [&] {
    shared_wal wal(fs, dir, small_segments());
    wal_log& a = wal.open(1, membership{{1}});
    wal_log& b = wal.open(2, membership{{1}});
    CHECK(a.first_index() == 1);
    CHECK(a.last_index() == 60);
    CHECK(a.initial_state().hard == raft::hard_state{1, 1, 60});
    for (index_t i = 1; i <= 60; ++i) CHECK(payload_at(a, i) == "g1/e" + std::to_string(i));
    CHECK(b.first_index() == 41);
    CHECK(b.last_index() == 55);
    std::error_code ec;
    CHECK(b.term(55, ec) == 3);
    CHECK(b.term(54, ec) == 2);
    CHECK(b.kept_entry(7)->payload.to_string() == "g2/e7");
  };
  fill();
  std::vector<std::string> indexes;
  std::size_t segments = 0;
  std::error_code ec;
  for (const std::string& name : fs.list(dir, ec)) {
    if (name.ends_with(".idx")) indexes.push_back(dir + "/" + name);
    if (name.ends_with(".log")) ++segments;
  }
  REQUIRE(segments > 3);
  CHECK(indexes.size() == segments - 1);  // every sealed one
  check();
  // A damaged index, or none, sends recovery to the segment itself (and writes the index anew).
  {
    auto f = fs.open(indexes[1], false, ec);
    REQUIRE_FALSE(ec);
    const std::byte junk[3] = {std::byte{0xde}, std::byte{0xad}, std::byte{0x01}};
    REQUIRE_FALSE(f->write_at(20, junk));
  }
  REQUIRE_FALSE(fs.remove(indexes[2]));
  check();
  check();
  // The index is what opening reads: damage inside a sealed segment is not seen then, and is
  // reported when the record is read.
  std::vector<std::string> names = fs.list(dir, ec);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    if (!name.ends_with(".log")) continue;
    auto f = fs.open(dir + "/" + name, false, ec);
    REQUIRE_FALSE(ec);
    const std::byte junk[3] = {std::byte{0xde}, std::byte{0xad}, std::byte{0x01}};
    for (std::uint64_t at : {40, 140, 240}) REQUIRE_FALSE(f->write_at(at, junk));
    break;  // the oldest: sealed, so it has an index
  }
  shared_wal wal(fs, dir, small_segments());
  wal_log& a = wal.open(1, membership{{1}});
  wal_log& b = wal.open(2, membership{{1}});
  CHECK(a.last_index() == 60);
  bool reported = false;
  try {
    a.entries(1, 61, 1 << 20, ec);
    b.entries(41, 56, 1 << 20, ec);
    b.kept_entry(7);
  } catch (const storage_error& e) {
    reported = e.code() == errc::corruption;
  }
  CHECK(reported);
}
