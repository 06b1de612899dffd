// Tests of the file log: the log_storage contract, segments and compaction, snapshot files,
// recovery from torn tails, damage reported with file and offset, and a fail matrix of I/O
// errors at every operation. Over the fault-injecting file system, and once on a real disk.
#include <quorum/error.hpp>
#include <quorum/storage/crc32c.hpp>
#include <quorum/storage/faulty_file_system.hpp>
#include <quorum/storage/file_log.hpp>

#include "../../support/storage.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>
#include <filesystem>
#include <map>
#include <string>

using namespace quorum;
using namespace quorum::storage;
using quorum::test::image_of;
using quorum::test::payload_at;
using raft::entry;
using raft::index_t;
using raft::membership;
using raft::shared_bytes;

namespace {

const std::string dir = "/data/log";

std::span<const std::byte> bytes_of(std::string_view text) {
  return std::as_bytes(std::span<const char>(text.data(), text.size()));
}

entry make(index_t index, raft::term_t term, std::size_t size = 10) {
  std::string payload = "e" + std::to_string(index) + "/";
  while (payload.size() < size) payload += static_cast<char>('a' + index % 26);
  return {term, index, shared_bytes(payload)};
}

file_log_options small_segments() {
  file_log_options o;
  o.segment_bytes = 256;
  o.snapshot_block_bytes = 8;
  return o;
}

}  // namespace

TEST_CASE("crc32c matches the standard check value, in hardware and in software",
          "[storage][crc32c]") {
  CHECK(crc32c(bytes_of("123456789")) == 0xe3069283);
  CHECK(crc32c_portable(bytes_of("123456789")) == 0xe3069283);
  std::string text;
  for (int i = 0; i < 1000; ++i) text += static_cast<char>(i * 7);
  CHECK(crc32c(bytes_of(text)) == crc32c_portable(bytes_of(text)));
  // Extending a checksum equals checksumming the whole.
  const auto whole = crc32c(bytes_of(text));
  const auto parts = crc32c(bytes_of(text).subspan(333), crc32c(bytes_of(text).subspan(0, 333)));
  CHECK(whole == parts);
}

TEST_CASE("a file log keeps what was synced across a reopen", "[storage][file-log]") {
  faulty_file_system fs;
  {
    file_log log(fs, dir, membership{{1, 2, 3}});
    CHECK(log.first_index() == 1);
    CHECK(log.last_index() == 0);
    REQUIRE_FALSE(log.append(std::vector{make(1, 1), make(2, 1), make(3, 2)}));
    REQUIRE_FALSE(log.set_hard_state({2, 3, 2}));
    REQUIRE_FALSE(log.sync());
  }
  fs.crash();
  file_log log(fs, dir, membership{{1, 2, 3}});
  CHECK(log.last_index() == 3);
  std::error_code ec;
  CHECK(log.term(3, ec) == 2);
  CHECK(payload_at(log, 2) == make(2, 1).payload.to_string());
  CHECK(log.initial_state().hard == raft::hard_state{2, 3, 2});
  CHECK(log.initial_state().members == membership{{1, 2, 3}});
}

TEST_CASE("appending over existing entries replaces the conflicting suffix, also after reopen",
          "[storage][file-log][paper-5.3]") {
  faulty_file_system fs;
  {
    file_log log(fs, dir, membership{{1}});
    REQUIRE_FALSE(log.append(std::vector{make(1, 1), make(2, 1), make(3, 1), make(4, 1)}));
    REQUIRE_FALSE(log.append(std::vector{make(3, 2, 30)}));
    CHECK(log.last_index() == 3);
    REQUIRE_FALSE(log.sync());
  }
  fs.crash();
  file_log log(fs, dir, membership{{1}});
  CHECK(log.last_index() == 3);
  std::error_code ec;
  CHECK(log.term(3, ec) == 2);
  CHECK(payload_at(log, 3) == make(3, 2, 30).payload.to_string());
  log.term(4, ec);
  CHECK(ec == errc::unavailable);
}

TEST_CASE("file log reads span segments and stop at the byte budget", "[storage][file-log]") {
  faulty_file_system fs;
  file_log log(fs, dir, membership{{1}}, small_segments());
  std::vector<entry> batch;
  for (index_t i = 1; i <= 40; ++i) batch.push_back(make(i, 1, 20));
  for (const auto& e : batch) REQUIRE_FALSE(log.append(std::span(&e, 1)));  // over segments
  CHECK(log.segment_count() > 2);
  std::error_code ec;
  CHECK(log.entries(1, 41, 0, ec).size() == 1);
  const auto all = log.entries(1, 41, 1 << 20, ec);
  REQUIRE(all.size() == 40);
  CHECK(all == batch);
  CHECK(log.entries(5, 9, 2 * raft::entry_footprint(batch[0]), ec).size() == 2);
}

TEST_CASE("compaction needs a snapshot, drops old segments, and survives a reopen",
          "[storage][file-log][paper-7]") {
  faulty_file_system fs;
  {
    file_log log(fs, dir, membership{{1}}, small_segments());
    for (index_t i = 1; i <= 40; ++i) REQUIRE_FALSE(log.append(std::vector{make(i, 1, 20)}));
    REQUIRE_FALSE(log.sync());
    CHECK(log.compact(10) == errc::unavailable);
    REQUIRE_FALSE(log.create_snapshot({30, 1, {{1, 2}}}, shared_bytes("snapshot state")));
    const std::size_t before = log.segment_count();
    REQUIRE_FALSE(log.compact(30));
    CHECK(log.segment_count() < before);
    CHECK(log.first_index() == 31);
    CHECK(log.compact(30) == errc::compacted);
  }
  fs.crash();
  file_log log(fs, dir, membership{{1}}, small_segments());
  CHECK(log.first_index() == 31);
  CHECK(log.last_index() == 40);
  std::error_code ec;
  CHECK(log.term(30, ec) == 1);
  log.entries(30, 31, 1 << 20, ec);
  CHECK(ec == errc::compacted);
  CHECK(payload_at(log, 31) == make(31, 1, 20).payload.to_string());
  CHECK(log.snapshot() == raft::snapshot_meta{30, 1, {{1, 2}}});
  CHECK(log.snapshot_data().to_string() == "snapshot state");
  CHECK(log.initial_state().members == membership{{1, 2}});
}

TEST_CASE("snapshot files are read in checksummed pieces and the previous stays readable",
          "[storage][file-log][paper-7]") {
  faulty_file_system fs;
  file_log log(fs, dir, membership{{1}}, small_segments());
  for (index_t i = 1; i <= 5; ++i) REQUIRE_FALSE(log.append(std::vector{make(i, 1)}));
  REQUIRE_FALSE(log.create_snapshot({2, 1, {{1}}}, shared_bytes("0123456789abcdefXYZ")));
  std::error_code ec;
  std::string assembled;
  for (std::uint64_t at = 0;;) {
    auto piece = log.read_snapshot(2, at, 5, ec);
    REQUIRE_FALSE(ec);
    assembled += piece.data.to_string();
    at += piece.data.size();
    if (piece.last) break;
  }
  CHECK(assembled == image_of("0123456789abcdefXYZ"));
  REQUIRE_FALSE(log.create_snapshot({4, 1, {{1}}}, shared_bytes("newer")));
  CHECK(log.read_snapshot(2, 8 + 16, 10, ec).data.to_string() == "XYZ");
  REQUIRE_FALSE(log.create_snapshot({5, 1, {{1}}}, shared_bytes("newest")));
  log.read_snapshot(2, 0, 10, ec);
  CHECK(ec == errc::compacted);
  CHECK(fs.list(dir, ec).size() == 1);               // one segment
  CHECK(fs.list(dir + "/group-1", ec).size() == 2);  // two snapshots
}

TEST_CASE("a received snapshot resumes from its durable chunks and installs by paper 7's rules",
          "[storage][file-log][paper-7]") {
  faulty_file_system fs;
  const raft::snapshot_meta meta{6, 2, {{1, 2, 3}}};
  const std::string image = image_of("abcdef");
  {
    file_log log(fs, dir, membership{{1}}, small_segments());
    REQUIRE_FALSE(log.append(std::vector{make(1, 1), make(2, 1), make(3, 1)}));
    REQUIRE_FALSE(log.write_snapshot_chunk({meta, 0, shared_bytes(image.substr(0, 3)), false}));
    REQUIRE_FALSE(log.sync());
    REQUIRE_FALSE(log.write_snapshot_chunk({meta, 3, shared_bytes(image.substr(3)), false}));
  }
  fs.crash(false);  // the second chunk was not synced
  {
    file_log log(fs, dir, membership{{1}}, small_segments());
    CHECK(log.initial_state().receiving == raft::snapshot_receipt{6, 2, 3});
    REQUIRE_FALSE(log.write_snapshot_chunk({meta, 3, shared_bytes(image.substr(3)), true}));
    REQUIRE_FALSE(log.install_snapshot(meta));  // log ends at 3: nothing is kept
    REQUIRE_FALSE(log.append(std::vector{make(7, 2)}));
    REQUIRE_FALSE(log.sync());
    CHECK(log.first_index() == 7);
  }
  fs.crash();
  file_log log(fs, dir, membership{{1}}, small_segments());
  CHECK(log.snapshot() == meta);
  CHECK(log.snapshot_data().to_string() == "abcdef");
  CHECK(log.initial_state().receiving == raft::snapshot_receipt{});
  CHECK(log.first_index() == 7);
  CHECK(log.last_index() == 7);
  CHECK(log.initial_state().members == meta.members);
}

TEST_CASE("installing a snapshot keeps the entries after it when the entry there matches",
          "[storage][file-log][paper-7]") {
  faulty_file_system fs;
  file_log log(fs, dir, membership{{1}});
  REQUIRE_FALSE(log.append(std::vector{make(1, 1), make(2, 2), make(3, 2), make(4, 2)}));
  const raft::snapshot_meta meta{2, 2, {{1}}};
  REQUIRE_FALSE(log.write_snapshot_chunk({meta, 0, shared_bytes(image_of("s")), true}));
  REQUIRE_FALSE(log.install_snapshot(meta));
  CHECK(log.first_index() == 3);
  CHECK(log.last_index() == 4);
  CHECK(payload_at(log, 4) == make(4, 2).payload.to_string());
}

TEST_CASE("a crash tears the unsynced tail and reopening keeps every synced entry",
          "[storage][file-log][crash]") {
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    INFO("seed " << seed);
    faulty_file_system fs(seed);
    index_t synced = 0;
    index_t written = 0;
    {
      file_log log(fs, dir, membership{{1}}, small_segments());
      for (int round = 0; round < 6; ++round) {
        std::vector<entry> batch;
        for (int i = 0; i < 3; ++i) {
          ++written;
          batch.push_back(make(written, 1, 5 + written % 40));
        }
        REQUIRE_FALSE(log.append(batch));
        if (round < 4) {
          REQUIRE_FALSE(log.sync());
          synced = written;
        }
      }
    }
    fs.crash();
    file_log log(fs, dir, membership{{1}}, small_segments());
    CHECK(log.last_index() >= synced);
    CHECK(log.last_index() <= written);
    for (index_t i = 1; i <= log.last_index(); ++i) {
      CHECK(payload_at(log, i) == make(i, 1, 5 + i % 40).payload.to_string());
    }
    // The log goes on after the cut.
    REQUIRE_FALSE(log.append(std::vector{make(log.last_index() + 1, 1)}));
    REQUIRE_FALSE(log.sync());
  }
}

TEST_CASE("damage before the tail is reported with its file and offset, never skipped",
          "[storage][file-log][corruption]") {
  faulty_file_system fs;
  {
    file_log log(fs, dir, membership{{1}});
    for (index_t i = 1; i <= 10; ++i) REQUIRE_FALSE(log.append(std::vector{make(i, 1, 50)}));
    REQUIRE_FALSE(log.sync());
  }
  const std::string segment = dir + "/seg-00000000000000000001-00000000000000000000.log";
  REQUIRE(fs.exists(segment));
  REQUIRE(fs.flip_bit(segment, 200));  // inside an early record
  try {
    file_log log(fs, dir, membership{{1}});
    FAIL("a damaged log opened");
  } catch (const storage_error& e) {
    CHECK(e.code() == errc::corruption);
    CHECK_THAT(e.what(), Catch::Contains("seg-00000000000000000001") && Catch::Contains("offset"));
  }
}

TEST_CASE("damage found by a read is an error, never returned as data",
          "[storage][file-log][corruption]") {
  faulty_file_system fs;
  file_log log(fs, dir, membership{{1}});
  for (index_t i = 1; i <= 5; ++i) REQUIRE_FALSE(log.append(std::vector{make(i, 1, 50)}));
  REQUIRE_FALSE(log.sync());
  REQUIRE(fs.flip_bit(dir + "/seg-00000000000000000001-00000000000000000000.log", 100));
  std::error_code ec;
  CHECK_THROWS_AS(log.entries(1, 6, 1 << 20, ec), storage_error);
}

TEST_CASE("an I/O error at any operation loses nothing acknowledged (fail matrix)",
          "[storage][file-log][fail-matrix]") {
  // A workload over open, append, truncation, hard state, sync, snapshot, compaction, chunks
  // and install.
  // Each run fails the k-th file operation; whatever the log acknowledged (sync returned
  // success) must be there after a crash and a reopen on a healthy disk.
  struct acked {
    index_t last = 0;
    raft::hard_state hard;
  };
  auto workload = [](faulty_file_system& fs, acked& ok) {
    file_log log(fs, dir, membership{{1}}, small_segments());
    index_t next = log.last_index() + 1;
    for (int round = 0; round < 8; ++round) {
      std::vector<entry> batch{make(next, 1, 30), make(next + 1, 1, 30)};
      if (log.append(batch)) return;
      if (log.set_hard_state({1, 1, next})) return;
      if (log.sync()) return;
      next += 2;
      ok.last = next - 1;
      ok.hard = {1, 1, next - 2};
      if (round == 3) {
        if (log.create_snapshot({next - 2, 1, {{1}}}, shared_bytes("state"))) return;
        if (log.compact(next - 4)) return;
      }
      if (round == 5) {
        // A new leader's entry replaces the last (uncommitted) one: a suffix truncation.
        if (log.append(std::vector{make(next - 1, 2, 30)})) return;
        if (log.sync()) return;
      }
    }
    const raft::snapshot_meta meta{next + 5, 3, {{1}}};
    const std::string image = image_of("chunk-achunk-b");
    if (log.write_snapshot_chunk({meta, 0, shared_bytes(image.substr(0, 7)), false})) return;
    if (log.write_snapshot_chunk({meta, 7, shared_bytes(image.substr(7)), true})) return;
    if (log.install_snapshot(meta)) return;
    if (log.sync()) return;
    ok.last = meta.index;
  };
  faulty_file_system clean;
  acked reference;
  workload(clean, reference);
  const std::uint64_t total = clean.operations();
  REQUIRE(total > 40);
  for (std::uint64_t k = 1; k <= total; ++k) {
    INFO("failing operation " << k << " of " << total);
    faulty_file_system fs(k);
    acked ok;
    fs.fail_at(k);
    try {
      workload(fs, ok);
    } catch (const storage_error& e) {
      CHECK(e.code() == errc::io_error);  // open and reads throw; never corruption
    }
    fs.crash();
    fs.heal();
    file_log log(fs, dir, membership{{1}}, small_segments());
    CHECK(log.last_index() >= ok.last);
    CHECK(log.initial_state().hard.commit >= ok.hard.commit);
    for (index_t i = log.first_index(); i <= std::min(log.last_index(), ok.last); ++i) {
      std::error_code ec;
      if (log.term(i, ec) == 1) CHECK(payload_at(log, i) == make(i, 1, 30).payload.to_string());
    }
  }
}

TEST_CASE("a log whose sync failed refuses everything until reopened", "[storage][file-log]") {
  faulty_file_system fs;
  file_log log(fs, dir, membership{{1}});
  REQUIRE_FALSE(log.append(std::vector{make(1, 1)}));
  fs.fail_at(1, fs_op::sync);
  CHECK(log.sync() == errc::io_error);
  CHECK(log.failed());
  CHECK(log.append(std::vector{make(2, 1)}) == errc::io_error);
  CHECK(log.sync() == errc::io_error);  // never retried into a false success
}

TEST_CASE("the file log works on a real disk", "[storage][file-log][posix]") {
  // In the working directory (ctest: the build tree), a real disk; removed even on failure.
  struct scratch {
    std::string path =
        std::filesystem::current_path().string() + "/file_log_test." + std::to_string(::getpid());
    scratch() { std::filesystem::remove_all(path); }
    ~scratch() { std::filesystem::remove_all(path); }
  } dir_guard;
  const std::string& path = dir_guard.path;
  posix_file_system fs;
  {
    file_log log(fs, path, membership{{1, 2}}, small_segments());
    for (index_t i = 1; i <= 30; ++i) REQUIRE_FALSE(log.append(std::vector{make(i, 1, 25)}));
    REQUIRE_FALSE(log.set_hard_state({1, 2, 30}));
    REQUIRE_FALSE(log.sync());
    REQUIRE_FALSE(log.create_snapshot({20, 1, {{1, 2}}}, shared_bytes("on disk")));
    REQUIRE_FALSE(log.compact(20));
  }
  {
    file_log log(fs, path, membership{{1, 2}}, small_segments());
    CHECK(log.first_index() == 21);
    CHECK(log.last_index() == 30);
    CHECK(payload_at(log, 25) == make(25, 1, 25).payload.to_string());
    CHECK(log.snapshot_data().to_string() == "on disk");
    CHECK(log.initial_state().hard == raft::hard_state{1, 2, 30});
  }
}

TEST_CASE("compaction keeps the entries a snapshot lists, across restarts",
          "[storage][file-log][kept]") {
  faulty_file_system fs;
  {
    file_log log(fs, dir, membership{{1}}, small_segments());
    for (index_t i = 1; i <= 20; ++i) REQUIRE_FALSE(log.append(std::vector{make(i, 1)}));
    const std::vector<index_t> keep{3, 7, 12, 14};
    REQUIRE_FALSE(log.create_snapshot({15, 1, {{1}}}, shared_bytes("s15"), keep));
    REQUIRE_FALSE(log.compact(13));
    CHECK(log.first_index() == 14);
    CHECK(log.kept_count() == 3);  // 14 is still in the log
    for (index_t i : {3, 7, 12}) {
      const auto e = log.kept_entry(i);
      REQUIRE(e);
      CHECK(e->payload.to_string() == make(i, 1).payload.to_string());
      CHECK(e->index == i);
    }
    CHECK_FALSE(log.kept_entry(4));
    CHECK_FALSE(log.kept_entry(14));  // in the log: entries() reads it
    REQUIRE_FALSE(log.sync());
  }
  fs.crash();
  {
    file_log log(fs, dir, membership{{1}}, small_segments());
    CHECK(log.kept_count() == 3);
    CHECK(log.kept_entry(12)->payload.to_string() == make(12, 1).payload.to_string());
    // The next snapshot keeps fewer; an entry no longer held cannot be kept again.
    const std::vector<index_t> lost{4};
    CHECK(log.create_snapshot({18, 1, {{1}}}, shared_bytes("s18"), lost) == errc::unavailable);
    const std::vector<index_t> keep{7, 14};
    REQUIRE_FALSE(log.create_snapshot({18, 1, {{1}}}, shared_bytes("s18"), keep));
    REQUIRE_FALSE(log.compact(18));
    CHECK(log.kept_count() == 2);
    CHECK_FALSE(log.kept_entry(3));
    CHECK(log.kept_entry(14)->payload.to_string() == make(14, 1).payload.to_string());
  }
  fs.crash();
  file_log log(fs, dir, membership{{1}}, small_segments());
  CHECK(log.kept_count() == 2);
  CHECK_FALSE(log.kept_entry(12));
  CHECK(log.kept_entry(7)->payload.to_string() == make(7, 1).payload.to_string());
  CHECK(log.snapshot_data().to_string() == "s18");
}

TEST_CASE("one long-kept entry does not pin the log: it moves, and old segments go",
          "[storage][file-log][kept]") {
  faulty_file_system fs;
  std::size_t most_segments = 0;
  {
    file_log log(fs, dir, membership{{1}}, small_segments());
    for (index_t i = 1; i <= 600; ++i) {
      REQUIRE_FALSE(log.append(std::vector{make(i, 1, 40)}));
      if (i % 10 == 0) {
        // Entry 1 stays live all along, and the last of each ten for a while.
        std::vector<index_t> keep{1};
        if (i > 10) keep.push_back(i - 10);
        REQUIRE_FALSE(log.sync());
        REQUIRE_FALSE(log.create_snapshot({i, 1, {{1}}}, shared_bytes("s"), keep));
        REQUIRE_FALSE(log.compact(i - 5));
        most_segments = std::max(most_segments, log.segment_count());
      }
    }
    CHECK(log.kept_entry(1)->payload.to_string() == make(1, 1, 40).payload.to_string());
    CHECK(log.kept_entry(590)->payload.to_string() == make(590, 1, 40).payload.to_string());
  }
  // 600 entries of about 80 bytes fill some 190 segments of 256 bytes; live are 2.
  CHECK(most_segments <= 8);
  fs.crash();
  file_log log(fs, dir, membership{{1}}, small_segments());
  CHECK(log.kept_count() == 2);
  CHECK(log.kept_entry(1)->payload.to_string() == make(1, 1, 40).payload.to_string());
  CHECK(log.kept_entry(590)->payload.to_string() == make(590, 1, 40).payload.to_string());
  CHECK(log.first_index() == 596);
}

TEST_CASE("a snapshot travels with the entries it keeps, and the follower keeps them",
          "[storage][file-log][kept][paper-7]") {
  faulty_file_system fs;
  const raft::snapshot_meta meta{8, 1, {{1}}};
  file_log leader(fs, "/data/leader", membership{{1}}, small_segments());
  for (index_t i = 1; i <= 10; ++i) REQUIRE_FALSE(leader.append(std::vector{make(i, 1, 30)}));
  const std::vector<index_t> keep{2, 5, 8};
  REQUIRE_FALSE(leader.create_snapshot(meta, shared_bytes("leader state"), keep));
  REQUIRE_FALSE(leader.compact(6));  // 8 is kept, but still in the log
  // Read the image in small pieces, going back once (a stream may resume anywhere).
  std::error_code ec;
  std::string image;
  for (std::uint64_t at = 0;;) {
    auto piece = leader.read_snapshot(8, at, 7, ec);
    REQUIRE_FALSE(ec);
    if (at == 70) {
      CHECK(leader.read_snapshot(8, 21, 7, ec).data.to_string() == image.substr(21, 7));
    }
    image += piece.data.to_string();
    at += piece.data.size();
    if (piece.last) break;
  }
  CHECK(image.substr(0, 20) == image_of("leader state"));
  CHECK(image.size() > 20 + 3 * 30);

  {
    file_log follower(fs, dir, membership{{1}}, small_segments());
    REQUIRE_FALSE(follower.append(std::vector{make(1, 1, 30)}));
    for (std::size_t at = 0; at < image.size(); at += 11) {
      const bool last = at + 11 >= image.size();
      REQUIRE_FALSE(
          follower.write_snapshot_chunk({meta, at, shared_bytes(image.substr(at, 11)), last}));
    }
    REQUIRE_FALSE(follower.install_snapshot(meta));
    REQUIRE_FALSE(follower.sync());
    CHECK(follower.first_index() == 9);
    CHECK(follower.kept_count() == 3);
    // The follower's own image is the same bytes: it can pass the snapshot on.
    auto again = follower.read_snapshot(8, 0, 1 << 20, ec);
    CHECK(again.data.to_string() == image);
    CHECK(again.last);
  }
  fs.crash();
  file_log follower(fs, dir, membership{{1}}, small_segments());
  CHECK(follower.snapshot_data().to_string() == "leader state");
  for (index_t i : keep) {
    const auto e = follower.kept_entry(i);
    REQUIRE(e);
    CHECK(e->payload.to_string() == make(i, 1, 30).payload.to_string());
  }
}

TEST_CASE("a damaged snapshot image is refused at install", "[storage][file-log][kept]") {
  faulty_file_system fs;
  const raft::snapshot_meta meta{4, 1, {{1}}};
  file_log leader(fs, "/data/leader", membership{{1}}, small_segments());
  for (index_t i = 1; i <= 4; ++i) REQUIRE_FALSE(leader.append(std::vector{make(i, 1, 30)}));
  const std::vector<index_t> keep{2};
  REQUIRE_FALSE(leader.create_snapshot(meta, shared_bytes("x"), keep));
  std::error_code ec;
  std::string image = leader.read_snapshot(4, 0, 1 << 20, ec).data.to_string();
  image[image.size() - 3] ^= 0x20;  // inside the kept entry's record
  file_log follower(fs, dir, membership{{1}}, small_segments());
  REQUIRE_FALSE(follower.write_snapshot_chunk({meta, 0, shared_bytes(image), true}));
  CHECK_THROWS_AS(follower.install_snapshot(meta), storage_error);
  CHECK(follower.snapshot().index == 0);
}

TEST_CASE("a read error while opening a log with kept entries is an I/O error, never damage",
          "[storage][file-log][kept]") {
  faulty_file_system fs;
  {
    file_log log(fs, dir, membership{{1}}, small_segments());
    for (index_t i = 1; i <= 30; ++i) REQUIRE_FALSE(log.append(std::vector{make(i, 1, 30)}));
    const std::vector<index_t> keep{4, 9, 20};
    REQUIRE_FALSE(log.create_snapshot({25, 1, {{1}}}, shared_bytes("s"), keep));
    REQUIRE_FALSE(log.compact(25));
    REQUIRE_FALSE(log.sync());
  }
  // Every read of the open fails in turn: the open either succeeds with every kept entry, or
  // reports an I/O error (a retry may pass); a transient error must not look like damage.
  for (std::uint64_t k = 1; k <= 200; ++k) {
    INFO("failing read " << k);
    fs.fail_at(k, fs_op::read);
    try {
      file_log log(fs, dir, membership{{1}}, small_segments());
      CHECK(log.kept_count() == 3);
    } catch (const storage_error& e) {
      CHECK(e.code() == errc::io_error);
    }
    fs.fail_at(0, fs_op::read);
  }
  file_log log(fs, dir, membership{{1}}, small_segments());
  CHECK(log.kept_entry(9)->payload.to_string() == make(9, 1, 30).payload.to_string());
}
