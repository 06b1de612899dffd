// The shared write-ahead log and its per-group logs. Single-threaded; see docs/storage.md.
#include <quorum/storage/shared_wal.hpp>

#include <quorum/detail/assert.hpp>
#include <quorum/detail/varint.hpp>
#include <quorum/error.hpp>
#include <quorum/storage/crc32c.hpp>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

namespace quorum::storage {

namespace {

constexpr char segment_magic[8] = {'Q', 'L', 'O', 'G', '0', '0', '0', '1'};

// Slots keep a segment's sequence number in 32 bits: 2^32 segments of 64 MiB is more than any
// WAL writes; a larger number read back means damage.
constexpr std::uint64_t max_segment = 0xffffffff;
std::uint32_t segment_of(std::uint64_t seq) {
  QUORUM_ASSERT(seq <= max_segment, "segment sequence numbers fit in 32 bits");
  return static_cast<std::uint32_t>(seq);
}
constexpr char snapshot_magic[8] = {'Q', 'S', 'N', 'P', '0', '0', '0', '2'};
constexpr char incoming_magic[8] = {'Q', 'I', 'N', 'C', '0', '0', '0', '1'};
constexpr std::uint64_t magic_bytes = 8;
constexpr std::uint64_t frame_bytes = 8;    // length and CRC32C before every record body
constexpr std::uint64_t entry_header = 26;  // kind, group, type, term, index
constexpr char index_magic[8] = {'Q', 'I', 'D', 'X', '0', '0', '0', '1'};

// A kept record is an entry kept below its group's log start (wal_log::create_snapshot's keep
// list), moved or received: replay files it with the kept entries, never in the log itself.
enum record_kind : std::uint8_t {
  entry_record = 1,
  hard_record = 2,
  base_record = 3,
  kept_record = 4
};

std::size_t open_wal_record(std::vector<std::byte>& out, record_kind kind, std::uint64_t group);

void put(std::vector<std::byte>& out, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<std::byte>(value >> (8 * i)));
}

std::uint64_t get(const std::byte* in, int bytes) {
  std::uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= static_cast<std::uint64_t>(in[i]) << (8 * i);
  return value;
}

using detail::get_varint;
using detail::put_varint;

/** A keep list as its count and ascending deltas in LEB128 (about a byte per entry). */
void put_keep(std::vector<std::byte>& out, std::span<const raft::index_t> keep) {
  put(out, keep.size(), 8);
  raft::index_t last = 0;
  for (raft::index_t i : keep) {
    for (std::uint64_t d = i - last;; d >>= 7) {
      const auto low = static_cast<std::uint8_t>(d & 0x7f);
      out.push_back(static_cast<std::byte>(d >= 0x80 ? low | 0x80 : low));
      if (d < 0x80) break;
    }
    last = i;
  }
}

/** The keep list put_keep wrote, or nothing if malformed (not ascending, or bytes left over). */
std::optional<std::vector<raft::index_t>> get_keep(std::span<const std::byte> in) {
  if (in.size() < 8) return std::nullopt;
  const std::uint64_t count = get(in.data(), 8);
  if (count > in.size()) return std::nullopt;  // at least a byte each
  std::vector<raft::index_t> keep(static_cast<std::size_t>(count));
  std::size_t at = 8;
  raft::index_t last = 0;
  for (raft::index_t& next : keep) {
    std::uint64_t d = 0;
    for (int shift = 0;; shift += 7) {
      if (at == in.size() || shift > 63) return std::nullopt;
      const auto b = static_cast<std::uint8_t>(in[at++]);
      d |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) break;
    }
    if (d == 0 || last + d < last) return std::nullopt;
    last += d;
    next = last;
  }
  if (at != in.size()) return std::nullopt;
  return keep;
}

/** Starts a record in `out`: room for its length and CRC32C; the body is appended after. */
std::size_t open_record(std::vector<std::byte>& out) {
  const std::size_t at = out.size();
  out.resize(at + frame_bytes);
  return at;
}

/** Ends the record opened at `at`: fills in its body's length and CRC32C, in place. */
void close_record(std::vector<std::byte>& out, std::size_t at) {
  const auto body = std::span<const std::byte>(out).subspan(at + frame_bytes);
  const std::uint64_t header = body.size() | (std::uint64_t{crc32c(body)} << 32);
  for (std::size_t i = 0; i < frame_bytes; ++i) {
    out[at + i] = static_cast<std::byte>(header >> (8 * i));
  }
}

/** Appends [length][crc32c][body] to `out`; returns where the record starts. */
std::size_t frame(std::vector<std::byte>& out, std::span<const std::byte> body) {
  const std::size_t at = open_record(out);
  out.insert(out.end(), body.begin(), body.end());
  close_record(out, at);
  return at;
}

std::span<const std::byte> as_bytes(const char (&text)[8]) {
  return std::as_bytes(std::span<const char>(text, 8));
}

std::string name_with(const char* prefix, std::uint64_t a, std::uint64_t b, const char* suffix) {
  char name[96];
  std::snprintf(name, sizeof name, "%s%020" PRIu64 "-%020" PRIu64 "%s", prefix, a, b, suffix);
  return name;
}

bool parse_name(const std::string& name, const char* prefix, const char* suffix, std::uint64_t& a,
                std::uint64_t& b) {
  const std::string p = prefix;
  const std::string s = suffix;
  if (name.size() != p.size() + 41 + s.size() || name.compare(0, p.size(), p) != 0 ||
      name.compare(name.size() - s.size(), s.size(), s) != 0 || name[p.size() + 20] != '-') {
    return false;
  }
  char* end = nullptr;
  a = std::strtoull(name.c_str() + p.size(), &end, 10);
  b = std::strtoull(name.c_str() + p.size() + 21, &end, 10);
  return true;
}

/** Opens a WAL record of `kind` for `group` in `out` (see open_record). */
std::size_t open_wal_record(std::vector<std::byte>& out, record_kind kind, std::uint64_t group) {
  const std::size_t at = open_record(out);
  put(out, kind, 1);
  put(out, group, 8);
  return at;
}

[[noreturn]] void raise(errc code, const std::string& what) {
  throw storage_error(make_error_code(code), what);
}

[[noreturn]] void raise_io(const std::string& path, std::error_code ec) {
  raise(errc::io_error, path + ": " + ec.message());
}

/** Reads all of `f`. */
std::vector<std::byte> read_all(file& f, const std::string& path) {
  std::uint64_t size = 0;
  if (auto ec = f.size(size)) raise_io(path, ec);
  std::vector<std::byte> bytes(static_cast<std::size_t>(size));
  std::size_t got = 0;
  if (auto ec = f.read_at(0, bytes, got)) raise_io(path, ec);
  bytes.resize(got);
  return bytes;
}

/** The body of the framed record at `at` of `f`, or nothing if incomplete or damaged; `next`
 *  is where the following record starts. */
std::optional<std::vector<std::byte>> read_framed(file& f, const std::string& path,
                                                  std::uint64_t at, std::uint64_t max_body,
                                                  std::uint64_t& next) {
  std::byte head[frame_bytes];
  std::size_t got = 0;
  if (auto ec = f.read_at(at, head, got)) raise_io(path, ec);
  if (got < frame_bytes) return std::nullopt;
  const std::uint64_t length = get(head, 4);
  if (length > max_body) return std::nullopt;
  std::vector<std::byte> body(static_cast<std::size_t>(length));
  if (auto ec = f.read_at(at + frame_bytes, body, got)) raise_io(path, ec);
  if (got < body.size() || crc32c(body) != static_cast<std::uint32_t>(get(head + 4, 4))) {
    return std::nullopt;
  }
  next = at + frame_bytes + length;
  return body;
}

/** A framed record in `bytes` at `at`: its body, or nothing if incomplete or damaged. */
std::optional<std::span<const std::byte>> record_at(std::span<const std::byte> bytes,
                                                    std::uint64_t at, std::uint64_t max_body) {
  if (bytes.size() < at + frame_bytes) return std::nullopt;
  const std::uint64_t length = get(bytes.data() + at, 4);
  const auto crc = static_cast<std::uint32_t>(get(bytes.data() + at + 4, 4));
  if (length > max_body || bytes.size() < at + frame_bytes + length) return std::nullopt;
  const auto body =
      bytes.subspan(static_cast<std::size_t>(at + frame_bytes), static_cast<std::size_t>(length));
  if (crc32c(body) != crc) return std::nullopt;
  return body;
}

}  // namespace

// ---- shared_wal -----------------------------------------------------------------------------

shared_wal::shared_wal(file_system& fs, std::string dir, file_log_options options)
    : fs_(&fs), dir_(std::move(dir)), options_(options) {
  recover();
}

shared_wal::~shared_wal() = default;

std::vector<std::uint64_t> shared_wal::groups() const {
  std::vector<std::uint64_t> ids;
  for (const auto& [id, g] : groups_) ids.push_back(id);
  return ids;
}

wal_log& shared_wal::group(std::uint64_t id) {
  auto it = groups_.find(id);
  if (it == groups_.end()) {
    it = groups_.emplace(id, std::unique_ptr<wal_log>(new wal_log(*this, id))).first;
  }
  return *it->second;
}

wal_log& shared_wal::open(std::uint64_t id, raft::membership bootstrap) {
  QUORUM_ASSERT(id != 0, "group 0 is reserved");
  wal_log& g = group(id);
  if (!g.opened_) g.open(std::move(bootstrap));
  return g;
}

std::error_code shared_wal::fail(std::error_code) {
  failed_ = true;
  return errc::io_error;
}

std::error_code shared_wal::roll() {
  std::error_code ec;
  if (!segments_.empty()) {
    // The segment being closed is made durable first: a damaged record in any segment but the
    // last is then always damage at rest, never a torn write.
    if ((ec = flush())) return ec;
    auto& [seq, active] = *segments_.rbegin();
    if (std::find(unsynced_.begin(), unsynced_.end(), seq) != unsynced_.end()) {
      if ((ec = active.f->sync())) return fail(ec);
      std::erase(unsynced_, seq);
    }
    if ((ec = write_index(seq, index_))) return ec;
    index_.clear();
  }
  const std::uint64_t seq = segments_.empty() ? 1 : segments_.rbegin()->first + 1;
  auto f = fs_->open(path_of(name_with("seg-", seq, 0, ".log")), true, ec);
  if (ec) return fail(ec);
  if ((ec = f->truncate(0)) || (ec = f->write_at(0, as_bytes(segment_magic)))) return fail(ec);
  segments_[seq] = segment{std::move(f), magic_bytes, 0};
  unsynced_.push_back(seq);
  dirs_unsynced_.push_back(dir_);
  return {};
}

std::error_code shared_wal::write(const std::vector<std::byte>& records, std::uint64_t& seq,
                                  std::uint64_t& offset) {
  if (failed_) return errc::io_error;
  if (segments_.empty() ||
      (segments_.rbegin()->second.size + records.size() > options_.segment_bytes &&
       segments_.rbegin()->second.size > magic_bytes)) {
    if (auto ec = roll()) return ec;
  }
  // Records gather in memory until sync(), which writes them in one piece (group commit).
  auto& [active_seq, active] = *segments_.rbegin();
  pending_.insert(pending_.end(), records.begin(), records.end());
  note_records(records, index_);
  seq = active_seq;
  offset = active.size;
  active.size += records.size();
  if (std::find(unsynced_.begin(), unsynced_.end(), seq) == unsynced_.end()) {
    unsynced_.push_back(seq);
  }
  return {};
}

std::error_code shared_wal::flush() {
  if (failed_) return errc::io_error;
  if (pending_.empty()) return {};
  segment& active = segments_.rbegin()->second;
  if (auto ec = active.f->write_at(active.size - pending_.size(), pending_)) return fail(ec);
  pending_.clear();
  return {};
}

void shared_wal::read(std::uint64_t seq, std::uint64_t offset, std::span<std::byte> out,
                      std::size_t& got) const {
  const segment& seg = segments_.at(seq);
  const bool active = seq == segments_.rbegin()->first;
  const std::uint64_t flushed = active ? seg.size - pending_.size() : seg.size;
  got = 0;
  if (offset < flushed) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), flushed - offset));
    if (auto ec = seg.f->read_at(offset, out.first(n), got)) {
      raise_io(path_of(name_with("seg-", seq, 0, ".log")), ec);
    }
    if (got < n) return;
  }
  if (active && offset + got >= flushed && got < out.size()) {
    const auto from = static_cast<std::size_t>(offset + got - flushed);
    const auto n = std::min(out.size() - got, pending_.size() - std::min(from, pending_.size()));
    std::memcpy(out.data() + got, pending_.data() + from, n);
    got += n;
  }
}

std::error_code shared_wal::sync() {
  if (failed_) return errc::io_error;
  std::error_code ec;
  if ((ec = flush())) return ec;
  if (options_.sync_interval.count() > 0) {
    // The weaker batched mode (see file_log_options::sync_interval). New files and snapshot
    // chunks are always synced: only appends to existing segments wait.
    const auto now = std::chrono::steady_clock::now();
    const bool structural = !dirs_unsynced_.empty() || !incoming_unsynced_.empty();
    if (!structural && last_fdatasync_ && now - *last_fdatasync_ < options_.sync_interval) {
      return {};
    }
    last_fdatasync_ = now;
  }
  for (std::uint64_t seq : unsynced_) {
    if ((ec = segments_.at(seq).f->sync())) return fail(ec);
  }
  unsynced_.clear();
  for (wal_log* g : incoming_unsynced_) {
    if (g->incoming_ && (ec = g->incoming_->f->sync())) return fail(ec);
  }
  incoming_unsynced_.clear();
  std::sort(dirs_unsynced_.begin(), dirs_unsynced_.end());
  dirs_unsynced_.erase(std::unique(dirs_unsynced_.begin(), dirs_unsynced_.end()),
                       dirs_unsynced_.end());
  for (const std::string& d : dirs_unsynced_) {
    if ((ec = fs_->sync_dir(d))) return fail(ec);
  }
  dirs_unsynced_.clear();
  return {};
}

// A sealed segment's index (seg-N.idx): magic, then one framed body: the segment's size (8),
// and per record its kind (1), group, body size and fixed fields (by
// kind: term and index; term, vote and commit; index and term) in LEB128. Opening the WAL
// replays a sealed segment from it instead of reading every body; the records' own checksums
// are then checked when they are read. It is written unsynced when the segment is sealed: a
// missing, damaged or mismatched index only means the segment is read instead.
void shared_wal::note_records(std::span<const std::byte> records, std::vector<std::byte>& index) {
  for (std::size_t at = 0; at + frame_bytes <= records.size();) {
    const std::uint64_t length = get(records.data() + at, 4);
    const std::byte* body = records.data() + at + frame_bytes;
    const auto kind = static_cast<std::uint8_t>(body[0]);
    put(index, kind, 1);
    put_varint(index, get(body + 1, 8));
    put_varint(index, length);
    if (kind == entry_record || kind == kept_record) {
      put_varint(index, get(body + 10, 8));
      put_varint(index, get(body + 18, 8));
    } else if (kind == hard_record) {
      for (int f = 0; f < 3; ++f) put_varint(index, get(body + 9 + 8 * f, 8));
    } else if (kind == base_record) {
      for (int f = 0; f < 2; ++f) put_varint(index, get(body + 9 + 8 * f, 8));
    }
    at += frame_bytes + length;
  }
}

std::error_code shared_wal::write_index(std::uint64_t seq, const std::vector<std::byte>& index) {
  std::vector<std::byte> bytes(as_bytes(index_magic).begin(), as_bytes(index_magic).end());
  std::vector<std::byte> body;
  body.reserve(index.size() + 16);
  put(body, segments_.at(seq).size, 8);
  body.insert(body.end(), index.begin(), index.end());
  frame(bytes, body);
  std::error_code ec;
  auto f = fs_->open(path_of(name_with("seg-", seq, 0, ".idx")), true, ec);
  if (ec || (ec = f->truncate(0)) || (ec = f->write_at(0, bytes))) return fail(ec);
  segments_.at(seq).indexed = true;
  return {};
}

bool shared_wal::replay_index(std::uint64_t seq) {
  const std::string path = path_of(name_with("seg-", seq, 0, ".idx"));
  const std::string seg_path = path_of(name_with("seg-", seq, 0, ".log"));
  std::error_code ec;
  auto idx = fs_->open(path, false, ec);
  if (ec) return false;
  std::uint64_t next = 0;
  std::optional<std::vector<std::byte>> body;
  std::vector<std::byte> magic(magic_bytes);
  std::size_t got = 0;
  if (idx->read_at(0, magic, got) || got != magic_bytes ||
      std::memcmp(magic.data(), index_magic, magic_bytes) != 0) {
    return false;
  }
  body = read_framed(*idx, path, magic_bytes, std::uint64_t{1} << 40, next);
  if (!body || body->size() < 8) return false;
  auto f = fs_->open(seg_path, false, ec);
  if (ec) raise_io(seg_path, ec);
  std::uint64_t size = 0;
  if ((ec = f->size(size))) raise_io(seg_path, ec);
  if (size != get(body->data(), 8)) return false;
  // Parsed and checked whole before any of it is replayed: a bad index falls back to reading
  // the segment.
  const std::span<const std::byte> in(*body);
  const auto parse = [&](std::size_t& p, index_item& it) {
    wal_log::record_fields& r = it.fields;
    r.kind = static_cast<std::uint8_t>(in[p++]);
    if (r.kind < entry_record || r.kind > kept_record) return false;
    if (!get_varint(in, p, it.group) || !get_varint(in, p, r.body_size) || it.group == 0) {
      return false;
    }
    const int fields = r.kind == hard_record ? 3 : 2;
    for (int k = 0; k < fields; ++k) {
      if (!get_varint(in, p, r.v[k])) return false;
    }
    return true;
  };
  // One buffer for every segment: fresh memory for each would cost a page fault per 4 KiB.
  std::vector<index_item>& items = index_items_;
  items.clear();
  items.reserve(in.size() / 8);
  std::uint64_t at = magic_bytes;
  for (std::size_t p = 8; p < in.size();) {
    index_item& it = items.emplace_back();
    if (!parse(p, it)) return false;
    at += frame_bytes + it.fields.body_size;
  }
  if (at != size) return false;
  segments_[seq].f = std::move(f);
  segments_[seq].size = size;
  segments_[seq].indexed = true;
  at = magic_bytes;
  wal_log* g = nullptr;  // runs of records of one group are the rule
  for (const index_item& it : items) {
    if (g == nullptr || g->group_ != it.group) g = &group(it.group);
    g->replay(it.fields, seq, at, seg_path);
    at += frame_bytes + it.fields.body_size;
  }
  return true;
}

void shared_wal::hold(const wal_log::slot& s, bool kept) {
  segment& seg = segment_at(s.segment);
  ++seg.live;
  seg.live_bytes += s.length;
  if (kept) ++seg.kept;
}

void shared_wal::let_go(const wal_log::slot& s, bool kept) {
  segment& seg = segment_at(s.segment);
  --seg.live;
  seg.live_bytes -= s.length;
  if (kept) --seg.kept;
}

bool shared_wal::wasteful() const {
  std::uint64_t size = 0;
  std::uint64_t live = 0;
  for (const auto& [seq, seg] : segments_) {
    size += seg.size;
    live += seg.live_bytes;
  }
  return size > 2 * live + 2 * options_.segment_bytes;
}

std::error_code shared_wal::reclaim() {
  // Only a prefix of segments goes: a record in a later segment may have truncated entries of
  // an earlier one, which replay must see after them. The newest hard state and log start of a
  // group that pin the oldest segment are written again at the end first. Kept entries (a
  // queue's long-lived messages) would pin it for good: once the files hold more than twice
  // what is live, they are copied to the end, so disk use follows the live entries and each is
  // copied at most once per pass over the WAL.
  for (bool again = true; again && segments_.size() > 1;) {
    again = false;
    auto it = segments_.begin();
    if (it->second.live != 0 && wasteful()) {
      // A small log in the oldest segment (an idle group's, or one that never compacts, like a
      // registry) is copied whole; a large one holds the segment until it compacts.
      const std::uint64_t seq = it->first;
      const std::uint64_t small = std::max<std::uint64_t>(options_.segment_bytes / 8, 64 << 10);
      std::vector<wal_log*> logs;
      bool movable = true;
      for (auto& [id, g] : groups_) {
        if (!g->log_starts_in(seq)) continue;
        if (g->log_bytes_beyond(small)) movable = false;
        logs.push_back(g.get());
      }
      if (!movable) break;
      for (auto& [id, g] : groups_) {
        if (auto ec = g->move_kept_out_of(seq)) return ec;
      }
      for (wal_log* g : logs) {
        if (auto ec = g->move_log()) return ec;
      }
      if (auto ec = sync()) return ec;
      it = segments_.begin();  // moving wrote at the end; the oldest is still `seq`
    }
    if (it->second.live != 0) break;
    const std::uint64_t oldest = it->first;
    bool pinned = false;
    for (auto& [id, g] : groups_) {
      if (g->hard_segment_ == oldest) {
        if (auto ec = g->write_hard()) return ec;
        pinned = true;
      }
      if (g->base_segment_ == oldest) {
        if (auto ec = g->write_base(g->base_, g->base_term_)) return ec;
        pinned = true;
      }
    }
    if (pinned) {
      if (auto ec = sync()) return ec;
      if (segments_.begin()->first != oldest || segments_.size() == 1) break;
    }
    const std::string path = path_of(name_with("seg-", oldest, 0, ".log"));
    std::erase(unsynced_, oldest);
    const bool indexed = segments_.at(oldest).indexed;
    segments_.erase(oldest);
    cached_segment_ = nullptr;
    if (auto ec = fs_->remove(path)) return fail(ec);
    if (indexed) {
      if (auto ec = fs_->remove(path_of(name_with("seg-", oldest, 0, ".idx")))) return fail(ec);
    }
    dirs_unsynced_.push_back(dir_);
    again = true;
  }
  return sync();
}

void shared_wal::recover_segment(std::uint64_t seq, bool last) {
  const std::string path = path_of(name_with("seg-", seq, 0, ".log"));
  std::error_code ec;
  auto f = fs_->open(path, false, ec);
  if (ec) raise_io(path, ec);
  const auto bytes = read_all(*f, path);
  if (bytes.size() < magic_bytes) {
    if (!last) raise(errc::corruption, path + " offset 0: segment header missing");
    if ((ec = fs_->remove(path))) raise_io(path, ec);  // created, never written: torn
    dirs_unsynced_.push_back(dir_);
    return;
  }
  if (std::memcmp(bytes.data(), segment_magic, magic_bytes) != 0) {
    raise(errc::corruption, path + " offset 0: not a quorum log segment");
  }
  segments_[seq].f = nullptr;
  std::uint64_t at = magic_bytes;
  while (at < bytes.size()) {
    const auto body = record_at(bytes, at, options_.max_record_bytes);
    if (!body) {
      // The last segment may end in a write that never completed (never acknowledged): cut it
      // off, unless a sound record follows, which shows damage at rest.
      bool sound_after = false;
      if (bytes.size() >= at + frame_bytes) {
        const std::uint64_t skip = at + frame_bytes + get(bytes.data() + at, 4);
        sound_after = record_at(bytes, skip, options_.max_record_bytes).has_value();
      }
      if (!last || sound_after) {
        raise(errc::corruption, path + " offset " + std::to_string(at) + ": damaged record");
      }
      if ((ec = f->truncate(at)) || (ec = f->sync())) raise_io(path, ec);
      break;
    }
    if (body->size() < 9 || get(body->data() + 1, 8) == 0) {
      raise(errc::corruption, path + " offset " + std::to_string(at) + ": unknown record");
    }
    group(get(body->data() + 1, 8)).replay(wal_log::fields_of(*body), seq, at, path);
    at += frame_bytes + body->size();
  }
  segments_[seq].f = std::move(f);
  segments_[seq].size = std::min<std::uint64_t>(at, bytes.size());
  std::vector<std::byte> index;
  note_records(std::span<const std::byte>(bytes).subspan(
                   magic_bytes, static_cast<std::size_t>(segments_[seq].size - magic_bytes)),
               index);
  if (last) {
    index_ = std::move(index);  // written when this segment is sealed
  } else if ((ec = write_index(seq, index))) {
    raise_io(path_of(name_with("seg-", seq, 0, ".idx")), ec);
  }
}

void shared_wal::recover() {
  std::error_code ec;
  if ((ec = fs_->make_dirs(dir_))) raise_io(dir_, ec);
  const std::vector<std::string> names = fs_->list(dir_, ec);
  if (ec) raise_io(dir_, ec);
  std::vector<std::uint64_t> seqs;
  for (const std::string& name : names) {
    std::uint64_t seq = 0;
    std::uint64_t zero = 0;
    if (parse_name(name, "seg-", ".log", seq, zero)) seqs.push_back(seq);
  }
  std::sort(seqs.begin(), seqs.end());
  // Every index (and the last segment, read whole) is read next: the disk may start on all of
  // them while the first ones are parsed.
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    const bool last = i + 1 == seqs.size();
    std::error_code missing;  // an index that is not there: the segment is read instead
    if (auto f = fs_->open(path_of(name_with("seg-", seqs[i], 0, last ? ".log" : ".idx")), false,
                           missing)) {
      f->will_need();
    }
  }
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    const bool last = i + 1 == seqs.size();
    if (!last && replay_index(seqs[i])) continue;
    recover_segment(seqs[i], last);
  }
  index_items_ = {};
  if ((ec = sync())) raise_io(dir_, ec);
}

// ---- wal_log: reads ---------------------------------------------------------------------------

wal_log::wal_log(shared_wal& wal, std::uint64_t group)
    : wal_(&wal), group_(group), dir_(wal.path_of("group-" + std::to_string(group))) {
  peek_keep();
}

void wal_log::peek_keep() {
  // Replay files entries the newest snapshot keeps as they leave the log; open() checks the
  // result against that snapshot once it has read it properly, and reports any damage. An I/O
  // error here stops the open (it may pass on a retry); a guess would turn it into damage.
  std::error_code ec;
  const std::vector<std::string> names = wal_->fs_->list(dir_, ec);
  if (ec == std::errc::no_such_file_or_directory) return;  // a new group
  if (ec) raise_io(dir_, ec);
  std::string newest;
  for (const std::string& name : names) {
    std::uint64_t a = 0;
    std::uint64_t b = 0;
    if (parse_name(name, "snap-", ".snap", a, b) && name > newest) newest = name;
  }
  if (newest.empty()) return;
  auto f = wal_->fs_->open(path_of(newest), false, ec);
  if (ec) raise_io(path_of(newest), ec);
  std::uint64_t next = 0;
  const auto head =
      read_framed(*f, path_of(newest), magic_bytes, wal_->options_.max_record_bytes, next);
  if (!head) return;  // damaged: open() says so
  const auto list = read_framed(*f, path_of(newest), next, wal_->options_.max_record_bytes, next);
  if (!list) return;
  if (auto keep = get_keep(*list)) {
    recovery_keep_ = std::move(*keep);
    peeked_snapshot_ = newest;
  }
  kept_.reserve(recovery_keep_.size());
}

bool wal_log::failed() const noexcept {
  return wal_->failed_;
}

raft::initial_state wal_log::initial_state() const {
  raft::initial_state init;
  init.hard = hard_;
  init.members = snapshot_ ? snapshot_->meta.members : bootstrap_;
  if (incoming_) init.receiving = incoming_->receipt;
  return init;
}

raft::term_t wal_log::term(raft::index_t i, std::error_code& ec) const {
  ec.clear();
  if (i < base_) {
    ec = errc::compacted;
    return 0;
  }
  if (i == base_) return base_term_;
  if (i > last_index()) {
    ec = errc::unavailable;
    return 0;
  }
  return slots_[i - base_ - 1].term;
}

std::vector<raft::entry> wal_log::entries(raft::index_t lo, raft::index_t hi,
                                          std::uint64_t max_bytes, std::error_code& ec) const {
  ec.clear();
  if (lo <= base_) {
    ec = errc::compacted;
    return {};
  }
  if (hi > last_index() + 1) {
    ec = errc::unavailable;
    return {};
  }
  // Decide how many entries fit the budget from the slots alone, then read them in runs of
  // records that lie back to back in one segment.
  raft::index_t end = lo;
  std::uint64_t bytes = 0;
  for (; end < hi; ++end) {
    const slot& s = slots_[end - base_ - 1];
    bytes += s.length - frame_bytes - entry_header + 24;
    if (end > lo && bytes > max_bytes) break;
  }
  std::vector<raft::entry> out;
  out.reserve(static_cast<std::size_t>(end - lo));
  for (raft::index_t i = lo; i < end;) {
    const slot& first = slots_[i - base_ - 1];
    raft::index_t j = i + 1;
    std::uint64_t run = first.length;
    while (j < end) {
      const slot& next = slots_[j - base_ - 1];
      if (next.segment != first.segment || next.offset != first.offset + run) break;
      run += next.length;
      ++j;
    }
    const std::string path = wal_->path_of(name_with("seg-", first.segment, 0, ".log"));
    // One buffer per run; the entries' payloads are slices of it, not copies.
    std::byte* fill = nullptr;
    const raft::shared_bytes buffer =
        raft::shared_bytes::uninitialized(static_cast<std::size_t>(run), fill);
    std::size_t got = 0;
    wal_->read(first.segment, first.offset, std::span<std::byte>(fill, buffer.size()), got);
    std::uint64_t at = 0;
    for (raft::index_t k = i; k < j; ++k) {
      const auto body = record_at(std::span<const std::byte>(buffer.data(), got), at,
                                  wal_->options_.max_record_bytes);
      if (!body || body->size() < entry_header || get(body->data(), 1) != entry_record ||
          get(body->data() + 1, 8) != group_ || get(body->data() + 18, 8) != k) {
        raise(errc::corruption, path + " offset " + std::to_string(first.offset + at) +
                                    ": damaged record for entry " + std::to_string(k) +
                                    " of group " + std::to_string(group_));
      }
      raft::entry e;
      e.type = static_cast<raft::entry_type>(get(body->data() + 9, 1));
      e.term = get(body->data() + 10, 8);
      e.index = k;
      e.payload = buffer.slice(static_cast<std::size_t>(at + frame_bytes + entry_header),
                               body->size() - entry_header);
      out.push_back(std::move(e));
      at += frame_bytes + body->size();
    }
    i = j;
  }
  return out;
}

std::vector<std::byte> wal_log::read_record(const slot& s, raft::index_t index) const {
  std::vector<std::byte> buffer(s.length);
  std::size_t got = 0;
  wal_->read(s.segment, s.offset, buffer, got);
  const auto body =
      record_at(std::span<const std::byte>(buffer.data(), got), 0, wal_->options_.max_record_bytes);
  if (!body || body->size() < entry_header ||
      (get(body->data(), 1) != entry_record && get(body->data(), 1) != kept_record) ||
      get(body->data() + 1, 8) != group_ || get(body->data() + 18, 8) != index) {
    raise(errc::corruption, wal_->path_of(name_with("seg-", s.segment, 0, ".log")) + " offset " +
                                std::to_string(s.offset) + ": damaged record for entry " +
                                std::to_string(index) + " of group " + std::to_string(group_));
  }
  return {body->begin(), body->end()};
}

std::optional<raft::entry> wal_log::kept_entry(raft::index_t index) const {
  const auto it = std::lower_bound(kept_.begin(), kept_.end(), index,
                                   [](const kept_slot& k, raft::index_t i) { return k.index < i; });
  if (it == kept_.end() || it->index != index) return std::nullopt;
  const std::vector<std::byte> body = read_record(it->where, index);
  raft::entry e;
  e.type = static_cast<raft::entry_type>(get(body.data() + 9, 1));
  e.term = get(body.data() + 10, 8);
  e.index = index;
  e.payload = raft::shared_bytes(std::span<const std::byte>(body).subspan(entry_header));
  return e;
}

const wal_log::slot& wal_log::kept_at(std::size_t position) const {
  if (position < kept_.size()) return kept_[position].where;
  return slots_[keep_above_[position - kept_.size()] - base_ - 1];
}

raft::snapshot_meta wal_log::snapshot() const {
  return snapshot_ ? snapshot_->meta : raft::snapshot_meta{};
}

const wal_log::stored_snapshot* wal_log::find_snapshot(raft::index_t index) const {
  if (index == 0) return nullptr;
  if (snapshot_ && snapshot_->meta.index == index) return &*snapshot_;
  if (previous_snapshot_ && previous_snapshot_->meta.index == index) return &*previous_snapshot_;
  return nullptr;
}

std::vector<std::byte> wal_log::read_blocks(const stored_snapshot& s, std::uint64_t first,
                                            std::uint64_t last) const {
  // One open and one read for the whole range; each block's checksum is checked, and its
  // data moved down over the frames before it, so the buffer read is the one returned.
  const std::uint64_t b = wal_->options_.snapshot_block_bytes;
  const std::uint64_t from = s.data_offset + first * (frame_bytes + b);
  const std::uint64_t data_end = std::min(s.size, (last + 1) * b);
  const std::uint64_t to =
      s.data_offset + last * (frame_bytes + b) + frame_bytes + (data_end - last * b);
  std::error_code ec;
  auto f = wal_->fs_->open(s.path, false, ec);
  if (ec) raise_io(s.path, ec);
  std::vector<std::byte> buffer(static_cast<std::size_t>(to - from));
  std::size_t got = 0;
  if ((ec = f->read_at(from, buffer, got))) raise_io(s.path, ec);
  std::uint64_t at = 0;
  std::size_t kept = 0;
  for (std::uint64_t block = first; block <= last; ++block) {
    const std::uint64_t length = std::min(b, s.size - block * b);
    const auto body = record_at(std::span<const std::byte>(buffer.data(), got), at, b);
    if (!body || body->size() != length) {
      raise(errc::corruption,
            s.path + " offset " + std::to_string(from + at) + ": damaged snapshot block");
    }
    std::memmove(buffer.data() + kept, body->data(), body->size());
    kept += body->size();
    at += frame_bytes + length;
  }
  buffer.resize(kept);
  return buffer;
}

raft::snapshot_piece wal_log::read_snapshot(raft::index_t index, std::uint64_t offset,
                                            std::uint64_t max_bytes, std::error_code& ec) const {
  // What a follower receives (the image): the data's size (8 bytes), the data, then the
  // records of the entries the snapshot keeps. Only the current snapshot's kept entries are
  // at hand: the previous snapshot can still be sent only if it keeps none.
  ec.clear();
  const stored_snapshot* s = find_snapshot(index);
  const bool current = s != nullptr && s == &*snapshot_;
  if (s == nullptr || (!current && s->kept != 0)) {
    ec = errc::compacted;
    return {};
  }
  const std::uint64_t data_end = 8 + s->size;
  if (cursor_.index != s->meta.index || cursor_.term != s->meta.term) {
    cursor_ = {s->meta.index, s->meta.term, 0, data_end, data_end};
    if (current) {
      for (std::size_t p = 0; p < kept_total(); ++p) cursor_.size += kept_at(p).length;
    }
  }
  QUORUM_ASSERT(offset <= cursor_.size, "snapshot read beyond its end");
  const std::uint64_t end =
      offset + std::min(cursor_.size - offset, std::max<std::uint64_t>(max_bytes, 1));
  std::vector<std::byte> out;
  out.reserve(static_cast<std::size_t>(end - offset));
  std::uint64_t at = offset;
  if (at < 8 && at < end) {
    std::vector<std::byte> size;
    put(size, s->size, 8);
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(end, 8) - at);
    out.insert(out.end(), size.begin() + static_cast<std::ptrdiff_t>(at),
               size.begin() + static_cast<std::ptrdiff_t>(at + n));
    at += n;
  }
  if (at < data_end && at < end) {
    const std::uint64_t to = std::min(end, data_end);
    const std::uint64_t b = wal_->options_.snapshot_block_bytes;
    const auto blocks = read_blocks(*s, (at - 8) / b, (to - 8 - 1) / b);
    const auto skip = static_cast<std::ptrdiff_t>((at - 8) % b);
    out.insert(out.end(), blocks.begin() + skip,
               blocks.begin() + skip + static_cast<std::ptrdiff_t>(to - at));
    at = to;
  }
  if (at < end) {
    if (cursor_.offset > at) cursor_ = {cursor_.index, cursor_.term, 0, data_end, cursor_.size};
    while (cursor_.offset + kept_at(cursor_.position).length <= at) {
      cursor_.offset += kept_at(cursor_.position++).length;
    }
    while (at < end) {
      const std::size_t p = cursor_.position;
      const raft::index_t i = p < kept_.size() ? kept_[p].index : keep_above_[p - kept_.size()];
      std::vector<std::byte> body = read_record(kept_at(p), i);
      body[0] = static_cast<std::byte>(kept_record);
      std::vector<std::byte> record;
      frame(record, body);
      const std::uint64_t from = at - cursor_.offset;
      const std::uint64_t n = std::min<std::uint64_t>(record.size() - from, end - at);
      out.insert(out.end(), record.begin() + static_cast<std::ptrdiff_t>(from),
                 record.begin() + static_cast<std::ptrdiff_t>(from + n));
      at += n;
      if (from + n == record.size()) {
        cursor_.offset += record.size();
        ++cursor_.position;
      }
    }
  }
  return {raft::shared_bytes(std::span<const std::byte>(out)), end == cursor_.size};
}

raft::shared_bytes wal_log::snapshot_data() const {
  if (!snapshot_) return {};
  if (snapshot_->size == 0) return raft::shared_bytes(std::span<const std::byte>());
  const std::uint64_t b = wal_->options_.snapshot_block_bytes;
  return raft::shared_bytes(read_blocks(*snapshot_, 0, (snapshot_->size - 1) / b));
}

// ---- wal_log: writes --------------------------------------------------------------------------

std::error_code wal_log::sync() {
  return wal_->sync();
}

void wal_log::drop_slots_from(raft::index_t index) {
  QUORUM_ASSERT(keep_above_.empty() || keep_above_.back() < index || recovering_,
                "entries a snapshot keeps are committed: never truncated");
  while (last_index() >= index && !slots_.empty()) {
    wal_->let_go(slots_.back(), false);
    slots_.pop_back();
  }
}

bool wal_log::keeps(raft::index_t index) const {
  if (!recovering_) return !keep_above_.empty() && keep_above_.front() == index;
  // Replay asks in ascending order, but for the rare start moved back by a gap.
  if (recovery_at_ > 0 && recovery_keep_[recovery_at_ - 1] >= index) recovery_at_ = 0;
  while (recovery_at_ < recovery_keep_.size() && recovery_keep_[recovery_at_] < index) {
    ++recovery_at_;
  }
  return recovery_at_ < recovery_keep_.size() && recovery_keep_[recovery_at_] == index;
}

void wal_log::drop_slots_through(raft::index_t index) {
  if (!recovering_ && !keep_above_.empty() && keep_above_.front() <= index) {
    // Grow once to the exact size: a backlog's kept set is most of a node's memory.
    const auto moving =
        std::upper_bound(keep_above_.begin(), keep_above_.end(), index) - keep_above_.begin();
    kept_.reserve(kept_.size() + static_cast<std::size_t>(moving));
  }
  while (!slots_.empty() && base_ < index) {
    const slot s = slots_.front();
    const raft::index_t i = base_ + 1;
    if (keeps(i)) {
      kept_.push_back({i, s});
      ++wal_->segment_at(s.segment).kept;
      if (!recovering_) keep_above_.pop_front();
    } else {
      wal_->let_go(s, false);
    }
    base_term_ = s.term;
    slots_.pop_front();
    ++base_;
  }
}

void wal_log::retain_only(std::span<const raft::index_t> keep) {
  std::size_t out = 0;
  auto k = keep.begin();
  for (const kept_slot& e : kept_) {
    while (k != keep.end() && *k < e.index) ++k;
    if (k != keep.end() && *k == e.index) {
      kept_[out++] = e;
    } else {
      wal_->let_go(e.where, true);
    }
  }
  kept_.resize(out);
}

void wal_log::settle_kept() {
  const std::vector<raft::index_t>& keep = recovery_keep_;
  // The newest copy of each entry counts (a moved or received record comes after the one it
  // replaces); anything the snapshot does not keep, or above the log's start, goes. One pass.
  const auto by_index = [](const kept_slot& a, const kept_slot& b) { return a.index < b.index; };
  if (!std::is_sorted(kept_.begin(), kept_.end(), by_index)) {
    std::stable_sort(kept_.begin(), kept_.end(), by_index);
  }
  std::size_t out = 0;
  auto k = keep.begin();
  for (std::size_t i = 0; i < kept_.size(); ++i) {
    const kept_slot e = kept_[i];
    const bool replaced = i + 1 < kept_.size() && kept_[i + 1].index == e.index;
    while (k != keep.end() && *k < e.index) ++k;
    if (!replaced && e.index <= base_ && k != keep.end() && *k == e.index) {
      kept_[out++] = e;
    } else {
      wal_->let_go(e.where, true);
    }
  }
  kept_.resize(out);
  const auto above = std::upper_bound(keep.begin(), keep.end(), base_);
  if (kept_.size() != static_cast<std::size_t>(above - keep.begin()) ||
      (above != keep.end() && keep.back() > last_index())) {
    raise(errc::corruption, wal_->dir_ + ": entries that the snapshot of group " +
                                std::to_string(group_) + " keeps are missing");
  }
  keep_above_.assign(above, keep.end());
  kept_.shrink_to_fit();
  recovery_keep_ = {};
  peeked_snapshot_.clear();
  recovering_ = false;
}

bool wal_log::log_starts_in(std::uint64_t seq) const {
  // Appends go to the newest segment and move_log() moves a log whole, so along the log the
  // segments never decrease: the oldest segment holds entries only if it holds the first.
  return !slots_.empty() && slots_.front().segment == seq;
}

bool wal_log::log_bytes_beyond(std::uint64_t limit) const {
  std::uint64_t total = 0;
  for (const slot& s : slots_) {
    total += s.length;
    if (total > limit) return true;
  }
  return false;
}

std::error_code wal_log::move_log() {
  // The records are copied as they are: same group, same entries, read back checked.
  std::vector<std::byte> records;
  std::vector<std::uint64_t> starts;
  for (raft::index_t i = first_index(); i <= last_index(); ++i) {
    const slot& s = slots_[i - base_ - 1];
    starts.push_back(records.size());
    const std::vector<std::byte> body = read_record(s, i);
    frame(records, body);
  }
  if (starts.empty()) return {};
  std::uint64_t to = 0;
  std::uint64_t offset = 0;
  if (auto ec = wal_->write(records, to, offset)) return ec;
  for (std::size_t k = 0; k < slots_.size(); ++k) {
    slot& s = slots_[k];
    wal_->let_go(s, false);
    s.segment = segment_of(to);
    s.offset = offset + starts[k];
    wal_->hold(s, false);
  }
  return {};
}

std::error_code wal_log::move_kept_out_of(std::uint64_t seq) {
  const std::uint64_t batch_bytes = std::max<std::uint64_t>(wal_->options_.segment_bytes / 4, 1);
  std::vector<std::byte> records;
  std::vector<std::pair<std::size_t, std::size_t>> moved;  // position in kept_, record start
  const auto write = [&]() -> std::error_code {
    if (moved.empty()) return {};
    std::uint64_t to = 0;
    std::uint64_t offset = 0;
    if (auto ec = wal_->write(records, to, offset)) return ec;
    for (const auto& [p, at] : moved) {
      slot& where = kept_[p].where;
      wal_->let_go(where, true);
      where.segment = segment_of(to);
      where.offset = offset + at;
      wal_->hold(where, true);
    }
    records.clear();
    moved.clear();
    return {};
  };
  for (std::size_t p = 0; p < kept_.size(); ++p) {
    if (kept_[p].where.segment != seq) continue;
    std::vector<std::byte> body = read_record(kept_[p].where, kept_[p].index);
    body[0] = static_cast<std::byte>(kept_record);
    moved.emplace_back(p, frame(records, body));
    if (records.size() >= batch_bytes) {
      if (auto ec = write()) return ec;
    }
  }
  return write();
}

bool wal_log::holds(raft::index_t index, raft::term_t t) const {
  return index > base_ && index <= last_index() && slots_[index - base_ - 1].term == t;
}

void wal_log::move_start(raft::index_t index, raft::term_t t) {
  if (index < base_) return;  // an older start: nothing to do
  if (holds(index, t)) {
    drop_slots_through(index);
  } else if (index > base_) {
    drop_slots_from(base_ + 1);
    base_ = index;
  }
  base_term_ = t;
}

std::error_code wal_log::append(std::span<const raft::entry> batch) {
  if (failed()) return errc::io_error;
  if (batch.empty()) return {};
  const raft::index_t first = batch.front().index;
  QUORUM_ASSERT(first > base_ && first <= last_index() + 1,
                "appended entries must follow the compaction point and leave no gap");
  std::vector<std::byte> records;
  std::vector<std::size_t> starts;
  for (const raft::entry& e : batch) {
    if (e.payload.size() + entry_header > wal_->options_.max_record_bytes) {
      return make_error_code(std::errc::message_size);
    }
    // Framed in place: the payload is copied once into the batch, not via a body buffer.
    const std::size_t at = open_wal_record(records, entry_record, group_);
    put(records, static_cast<std::uint8_t>(e.type), 1);
    put(records, e.term, 8);
    put(records, e.index, 8);
    records.insert(records.end(), e.payload.bytes().begin(), e.payload.bytes().end());
    close_record(records, at);
    starts.push_back(at);
  }
  std::uint64_t seq = 0;
  std::uint64_t offset = 0;
  if (auto ec = wal_->write(records, seq, offset)) return ec;
  drop_slots_from(first);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const std::size_t end = i + 1 < starts.size() ? starts[i + 1] : records.size();
    slots_.push_back({batch[i].term, offset + starts[i], segment_of(seq),
                      static_cast<std::uint32_t>(end - starts[i])});
    wal_->hold(slots_.back(), false);
  }
  return {};
}

std::error_code wal_log::write_hard() {
  std::vector<std::byte> records;
  const std::size_t at = open_wal_record(records, hard_record, group_);
  put(records, hard_.term, 8);
  put(records, hard_.vote, 8);
  put(records, hard_.commit, 8);
  close_record(records, at);
  std::uint64_t offset = 0;
  return wal_->write(records, hard_segment_, offset);
}

std::error_code wal_log::set_hard_state(const raft::hard_state& hs) {
  if (failed()) return errc::io_error;
  hard_ = hs;
  return write_hard();
}

std::error_code wal_log::write_base(raft::index_t index, raft::term_t term) {
  std::vector<std::byte> records;
  const std::size_t at = open_wal_record(records, base_record, group_);
  put(records, index, 8);
  put(records, term, 8);
  close_record(records, at);
  std::uint64_t offset = 0;
  return wal_->write(records, base_segment_, offset);
}

std::error_code wal_log::compact(raft::index_t index) {
  if (failed()) return errc::io_error;
  if (index <= base_) return errc::compacted;
  if (!snapshot_ || index > snapshot_->meta.index || index > last_index()) {
    return errc::unavailable;
  }
  // The new start is recorded and made durable before any segment goes away.
  std::error_code ec;
  const raft::term_t t = term(index, ec);
  if ((ec = write_base(index, t))) return ec;
  drop_slots_through(index);
  if ((ec = wal_->sync())) return ec;
  return wal_->reclaim();
}

std::error_code wal_log::write_snapshot_file(const raft::snapshot_meta& meta,
                                             std::span<const std::byte> data,
                                             std::span<const raft::index_t> keep) {
  file_system& fs = *wal_->fs_;
  const std::string name = name_with("snap-", meta.index, meta.term, ".snap");
  const std::string tmp = path_of(name + ".tmp");
  std::vector<std::byte> bytes(as_bytes(snapshot_magic).begin(), as_bytes(snapshot_magic).end());
  std::vector<std::byte> body;
  put(body, meta.index, 8);
  put(body, meta.term, 8);
  const raft::shared_bytes members = raft::encode_membership(meta.members);
  body.insert(body.end(), members.bytes().begin(), members.bytes().end());
  frame(bytes, body);
  std::vector<std::byte> list;
  put_keep(list, keep);
  frame(bytes, list);
  const std::uint64_t data_offset = bytes.size();
  const std::size_t block = wal_->options_.snapshot_block_bytes;
  for (std::size_t at = 0; at < data.size(); at += block) {
    frame(bytes, data.subspan(at, std::min(block, data.size() - at)));
  }
  std::error_code ec;
  auto f = fs.open(tmp, true, ec);
  if (ec || (ec = f->truncate(0)) || (ec = f->write_at(0, bytes)) || (ec = f->sync()) ||
      (ec = fs.rename(tmp, path_of(name))) || (ec = fs.sync_dir(dir_))) {
    return wal_->fail(ec);
  }
  if (previous_snapshot_) {
    if ((ec = fs.remove(previous_snapshot_->path))) return wal_->fail(ec);
    wal_->dirs_unsynced_.push_back(dir_);
  }
  previous_snapshot_ = std::move(snapshot_);
  snapshot_ = stored_snapshot{meta, path_of(name), data_offset, data.size(), keep.size()};
  return {};
}

std::error_code wal_log::create_snapshot(const raft::snapshot_meta& meta,
                                         const raft::shared_bytes& data,
                                         std::span<const raft::index_t> keep) {
  if (failed()) return errc::io_error;
  if (snapshot_ && meta.index <= snapshot_->meta.index) return errc::compacted;
  std::error_code ec;
  if (term(meta.index, ec) != meta.term || ec) return errc::unavailable;
  raft::index_t last = 0;
  for (raft::index_t i : keep) {
    if (i <= last || i > meta.index) return make_error_code(std::errc::invalid_argument);
    last = i;
  }
  // Everything kept below the start must still be kept (the list only shrinks there).
  const auto above = std::upper_bound(keep.begin(), keep.end(), base_);
  {
    auto k = kept_.begin();
    for (auto i = keep.begin(); i != above; ++i) {
      while (k != kept_.end() && k->index < *i) ++k;
      if (k == kept_.end() || k->index != *i) return errc::unavailable;
    }
  }
  if ((ec = write_snapshot_file(meta, data.bytes(), keep))) return ec;
  retain_only(keep.first(static_cast<std::size_t>(above - keep.begin())));
  keep_above_.assign(above, keep.end());
  return {};
}

std::error_code wal_log::write_snapshot_chunk(const raft::snapshot_chunk& chunk) {
  if (failed()) return errc::io_error;
  file_system& fs = *wal_->fs_;
  std::error_code ec;
  if (chunk.offset == 0) {
    if (incoming_ && (ec = fs.remove(incoming_->path))) return wal_->fail(ec);
    incoming_.reset();
    const std::string path =
        path_of(name_with("incoming-", chunk.meta.index, chunk.meta.term, ".part"));
    auto f = fs.open(path, true, ec);
    if (ec) return wal_->fail(ec);
    std::vector<std::byte> head(as_bytes(incoming_magic).begin(), as_bytes(incoming_magic).end());
    std::vector<std::byte> body;
    put(body, chunk.meta.index, 8);
    put(body, chunk.meta.term, 8);
    const raft::shared_bytes members = raft::encode_membership(chunk.meta.members);
    body.insert(body.end(), members.bytes().begin(), members.bytes().end());
    frame(head, body);
    if ((ec = f->truncate(0)) || (ec = f->write_at(0, head))) return wal_->fail(ec);
    incoming_ = incoming{{chunk.meta.index, chunk.meta.term, 0}, path, std::move(f), head.size()};
    wal_->dirs_unsynced_.push_back(dir_);
  }
  QUORUM_ASSERT(incoming_ && incoming_->receipt.index == chunk.meta.index &&
                    incoming_->receipt.term == chunk.meta.term &&
                    incoming_->receipt.bytes == chunk.offset,
                "snapshot chunks must arrive in order");
  std::vector<std::byte> record;
  frame(record, chunk.data.bytes());
  if ((ec = incoming_->f->write_at(incoming_->file_size, record))) return wal_->fail(ec);
  incoming_->file_size += record.size();
  incoming_->receipt.bytes += chunk.data.size();
  if (std::find(wal_->incoming_unsynced_.begin(), wal_->incoming_unsynced_.end(), this) ==
      wal_->incoming_unsynced_.end()) {
    wal_->incoming_unsynced_.push_back(this);
  }
  return {};
}

std::error_code wal_log::install_snapshot(const raft::snapshot_meta& meta) {
  if (failed()) return errc::io_error;
  QUORUM_ASSERT(
      incoming_ && incoming_->receipt.index == meta.index && incoming_->receipt.term == meta.term,
      "installing a snapshot that was not received");
  // Take the received image apart chunk by chunk (each checked): the data, then the records of
  // the entries the snapshot keeps. Those are written to the WAL as kept records and made
  // durable first; once the snapshot file is renamed into place the snapshot is installed,
  // whatever happens to the log's records next.
  const std::string& path = incoming_->path;
  const auto damaged = [&](const std::string& why) { raise(errc::corruption, path + ": " + why); };
  file& in = *incoming_->f;
  std::uint64_t at = 0;
  if (!read_framed(in, path, magic_bytes, wal_->options_.max_record_bytes, at)) {
    damaged("damaged header");
  }
  std::vector<std::byte> data;
  std::vector<std::byte> rest;  // image bytes not yet taken apart
  std::uint64_t data_size = 0;
  bool sized = false;
  std::vector<raft::index_t> keep;
  std::vector<slot> received;
  std::vector<std::byte> records;
  std::vector<std::size_t> starts;
  const auto write = [&]() -> std::error_code {
    if (starts.empty()) return {};
    std::uint64_t seq = 0;
    std::uint64_t offset = 0;
    if (auto ec = wal_->write(records, seq, offset)) return ec;
    for (std::size_t i = 0; i < starts.size(); ++i) {
      const std::size_t end = i + 1 < starts.size() ? starts[i + 1] : records.size();
      const std::size_t first = received.size() - starts.size();
      received[first + i] = {received[first + i].term, offset + starts[i], segment_of(seq),
                             static_cast<std::uint32_t>(end - starts[i])};
      wal_->hold(received[first + i], true);
    }
    records.clear();
    starts.clear();
    return wal_->flush();
  };
  std::uint64_t total = 0;
  while (at < incoming_->file_size) {
    auto chunk = read_framed(in, path, at, wal_->options_.max_record_bytes, at);
    if (!chunk) damaged("damaged chunk");
    total += chunk->size();
    rest.insert(rest.end(), chunk->begin(), chunk->end());
    std::size_t used = 0;
    if (!sized && rest.size() >= 8) {
      data_size = get(rest.data(), 8);
      used = 8;
      sized = true;
    }
    if (sized && data.size() < data_size) {
      const auto n = static_cast<std::size_t>(
          std::min<std::uint64_t>(data_size - data.size(), rest.size() - used));
      data.insert(data.end(), rest.begin() + static_cast<std::ptrdiff_t>(used),
                  rest.begin() + static_cast<std::ptrdiff_t>(used + n));
      used += n;
    }
    while (sized && data.size() == data_size) {
      const auto body = record_at(std::span<const std::byte>(rest).subspan(used), 0,
                                  wal_->options_.max_record_bytes);
      if (!body) break;  // incomplete: its end is in a later chunk (or damage, found below)
      const raft::index_t index = body->size() >= entry_header ? get(body->data() + 18, 8) : 0;
      if (body->size() < entry_header || get(body->data(), 1) != kept_record || index == 0 ||
          index > meta.index || (!keep.empty() && index <= keep.back())) {
        damaged("a kept entry out of place");
      }
      keep.push_back(index);
      received.push_back({get(body->data() + 10, 8), 0, 0, 0});
      starts.push_back(open_wal_record(records, kept_record, group_));
      records.insert(records.end(), body->begin() + 9, body->end());
      close_record(records, starts.back());
      used += frame_bytes + body->size();
      if (records.size() >= wal_->options_.segment_bytes / 4) {
        if (auto ec = write()) return ec;
      }
    }
    rest.erase(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(used));
  }
  QUORUM_ASSERT(total == incoming_->receipt.bytes, "incoming snapshot size mismatch");
  if (!sized || data.size() != data_size || !rest.empty()) damaged("incomplete snapshot image");
  if (auto ec = write()) return ec;
  if (auto ec = wal_->sync()) return ec;
  if (auto ec = write_snapshot_file(meta, data, keep)) return ec;
  if (auto ec = wal_->fs_->remove(incoming_->path)) return wal_->fail(ec);
  incoming_.reset();
  std::erase(wal_->incoming_unsynced_, this);
  wal_->dirs_unsynced_.push_back(dir_);
  // The received copies replace whatever was kept before.
  retain_only({});
  keep_above_.clear();
  for (std::size_t i = 0; i < keep.size(); ++i) kept_.push_back({keep[i], received[i]});
  move_start(meta.index, meta.term);
  return write_base(meta.index, meta.term);
}

// ---- wal_log: recovery ------------------------------------------------------------------------

wal_log::record_fields wal_log::fields_of(std::span<const std::byte> body) {
  record_fields r;
  r.kind = static_cast<std::uint8_t>(get(body.data(), 1));
  r.body_size = body.size();
  if ((r.kind == entry_record || r.kind == kept_record) && body.size() >= entry_header) {
    r.v[0] = get(body.data() + 10, 8);
    r.v[1] = get(body.data() + 18, 8);
  } else if (r.kind == hard_record && body.size() == 33) {
    for (int k = 0; k < 3; ++k) r.v[k] = get(body.data() + 9 + 8 * k, 8);
  } else if (r.kind == base_record && body.size() == 25) {
    for (int k = 0; k < 2; ++k) r.v[k] = get(body.data() + 9 + 8 * k, 8);
  }
  return r;  // replay() refuses a kind or size that does not fit
}

void wal_log::replay(const record_fields& r, std::uint64_t seq, std::uint64_t at,
                     const std::string& path) {
  const auto damaged = [&](const std::string& why) {
    raise(errc::corruption, path + " offset " + std::to_string(at) + ": " + why);
  };
  const auto where = [&] {
    if (seq > max_segment) damaged("segment number beyond 2^32");
    return slot{r.v[0], at, segment_of(seq), static_cast<std::uint32_t>(frame_bytes + r.body_size)};
  };
  if (r.kind == entry_record && r.body_size >= entry_header) {
    const raft::index_t index = r.v[1];
    // Segments before this one were reclaimed after a compaction, so the log may seem to start
    // later than it does: an entry beyond the end, or (after such a gap) one that truncates
    // below the assumed start, moves the start to just before it. The log-start record must
    // confirm it (checked when the group is opened).
    const bool gap =
        index > last_index() + 1 || (gap_floor_ != 0 && index <= base_ && index > known_base_);
    if (gap) {
      drop_slots_from(base_ + 1);
      base_ = index - 1;
      base_term_ = base_ == known_base_ ? known_base_term_ : 0;
      gap_floor_ = base_;
    }
    if (index <= base_) damaged("entry " + std::to_string(index) + " out of sequence");
    if (index <= last_index()) drop_slots_from(index);  // it replaces what follows
    slots_.push_back(where());
    wal_->hold(slots_.back(), false);
  } else if (r.kind == kept_record && r.body_size >= entry_header) {
    // Sorted out against the snapshot's keep list once the group is opened (settle_kept).
    kept_.push_back({r.v[1], where()});
    wal_->hold(kept_.back().where, true);
  } else if (r.kind == hard_record && r.body_size == 33) {
    hard_ = {r.v[0], r.v[1], r.v[2]};
    hard_segment_ = seq;
  } else if (r.kind == base_record && r.body_size == 25) {
    move_start(r.v[0], r.v[1]);
    known_base_ = r.v[0];
    known_base_term_ = r.v[1];
    base_segment_ = seq;
  } else {
    damaged("unknown record");
  }
}

void wal_log::open(raft::membership bootstrap) {
  bootstrap_ = std::move(bootstrap);
  opened_ = true;
  file_system& fs = *wal_->fs_;
  if (gap_floor_ != 0 && (base_ != known_base_ || base_term_ == 0)) {
    raise(errc::corruption, wal_->dir_ + ": entries of group " + std::to_string(group_) +
                                " up to " + std::to_string(gap_floor_) +
                                " are missing and no compaction covers them");
  }
  std::error_code ec;
  if ((ec = fs.make_dirs(dir_))) raise_io(dir_, ec);
  const std::vector<std::string> names = fs.list(dir_, ec);
  if (ec) raise_io(dir_, ec);
  for (const std::string& name : names) {
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) {
      if ((ec = fs.remove(path_of(name)))) raise_io(path_of(name), ec);  // never renamed
      wal_->dirs_unsynced_.push_back(dir_);
    }
  }
  // The same list peek_keep() read, now from a snapshot checked whole.
  recover_snapshots(names, recovery_keep_);
  if (snapshot_ && snapshot_->meta.index > base_) {
    // A snapshot installed (renamed into place) before the log recorded its new start.
    const raft::snapshot_meta& meta = snapshot_->meta;
    if (!holds(meta.index, meta.term)) {
      move_start(meta.index, meta.term);
      if ((ec = write_base(meta.index, meta.term))) raise_io(dir_, ec);
    }
  }
  settle_kept();
  recover_incoming(names);
  hard_.commit = std::min(hard_.commit, last_index());
  if ((ec = wal_->sync())) raise_io(dir_, ec);
}

std::optional<wal_log::stored_snapshot> wal_log::open_snapshot(
    const std::string& name, std::vector<raft::index_t>* keep) const {
  // Reads the header, the keep list and the last block: a large snapshot's other blocks are
  // checked when they are read (to restore or send it), not twice.
  std::uint64_t index = 0;
  std::uint64_t term = 0;
  if (!parse_name(name, "snap-", ".snap", index, term)) return std::nullopt;
  const std::string path = path_of(name);
  std::error_code ec;
  auto f = wal_->fs_->open(path, false, ec);
  if (ec) raise_io(path, ec);
  const auto damaged = [&](std::uint64_t at) {
    raise(errc::corruption, path + " offset " + std::to_string(at) + ": damaged snapshot");
  };
  std::uint64_t file_size = 0;
  if ((ec = f->size(file_size))) raise_io(path, ec);
  if (keep != nullptr) f->will_need();  // the newest: its data is read next, to restore
  std::vector<std::byte> magic(magic_bytes);
  std::size_t got = 0;
  if ((ec = f->read_at(0, magic, got))) raise_io(path, ec);
  if (got < magic_bytes || std::memcmp(magic.data(), snapshot_magic, magic_bytes) != 0) {
    damaged(0);
  }
  std::uint64_t list_at = 0;
  const auto head = read_framed(*f, path, magic_bytes, wal_->options_.max_record_bytes, list_at);
  if (!head || head->size() < 16) damaged(magic_bytes);
  auto members = raft::decode_membership(std::span<const std::byte>(*head).subspan(16));
  if (!members || get(head->data(), 8) != index || get(head->data() + 8, 8) != term) {
    damaged(magic_bytes);
  }
  std::uint64_t data_offset = 0;
  const auto list = read_framed(*f, path, list_at, wal_->options_.max_record_bytes, data_offset);
  std::optional<std::vector<raft::index_t>> parsed;
  const std::vector<raft::index_t>* kept = nullptr;
  if (list && keep == &recovery_keep_ && name == peeked_snapshot_) {
    kept = &recovery_keep_;  // peek_keep parsed these very bytes (read again: their CRC held)
  } else if (list && (parsed = get_keep(*list))) {
    kept = &*parsed;
  }
  if (kept == nullptr || (!kept->empty() && kept->back() > index)) damaged(list_at);
  // Every block is full but the last: the file's size gives the data's.
  const std::uint64_t block = wal_->options_.snapshot_block_bytes;
  if (file_size < data_offset) damaged(data_offset);
  const std::uint64_t rest = file_size - data_offset;
  const std::uint64_t full = rest / (frame_bytes + block);
  const std::uint64_t tail = rest % (frame_bytes + block);
  if (tail != 0 && tail <= frame_bytes) damaged(file_size - tail);
  const std::uint64_t size = full * block + (tail == 0 ? 0 : tail - frame_bytes);
  if (size > 0) {
    const std::uint64_t last_at = data_offset + (size - 1) / block * (frame_bytes + block);
    std::uint64_t end = 0;
    const auto last = read_framed(*f, path, last_at, block, end);
    if (!last || end != file_size) damaged(last_at);
  }
  stored_snapshot s{{index, term, std::move(*members)}, path, data_offset, size, kept->size()};
  if (keep != nullptr && parsed) *keep = std::move(*parsed);
  return s;
}

void wal_log::recover_snapshots(const std::vector<std::string>& names,
                                std::vector<raft::index_t>& keep) {
  std::vector<std::string> found;
  for (const std::string& name : names) {
    std::uint64_t a = 0;
    std::uint64_t b = 0;
    if (parse_name(name, "snap-", ".snap", a, b)) found.push_back(name);
  }
  std::sort(found.begin(), found.end());  // fixed-width names: by index
  for (std::size_t i = 0; i < found.size(); ++i) {
    if (i + 2 < found.size()) {
      // An older snapshot whose removal did not become durable.
      if (auto ec = wal_->fs_->remove(path_of(found[i]))) raise_io(path_of(found[i]), ec);
      wal_->dirs_unsynced_.push_back(dir_);
      continue;
    }
    previous_snapshot_ = std::move(snapshot_);
    snapshot_ = open_snapshot(found[i], i + 1 == found.size() ? &keep : nullptr);
  }
}

void wal_log::recover_incoming(const std::vector<std::string>& names) {
  std::vector<std::string> found;
  for (const std::string& name : names) {
    std::uint64_t a = 0;
    std::uint64_t b = 0;
    if (parse_name(name, "incoming-", ".part", a, b)) found.push_back(name);
  }
  for (std::size_t i = 0; i < found.size(); ++i) {
    const std::string path = path_of(found[i]);
    std::uint64_t index = 0;
    std::uint64_t term = 0;
    parse_name(found[i], "incoming-", ".part", index, term);
    std::error_code ec;
    auto f = wal_->fs_->open(path, false, ec);
    if (ec) raise_io(path, ec);
    const auto bytes = read_all(*f, path);
    std::optional<std::span<const std::byte>> head;
    if (bytes.size() >= magic_bytes &&
        std::memcmp(bytes.data(), incoming_magic, magic_bytes) == 0) {
      head = record_at(bytes, magic_bytes, wal_->options_.max_record_bytes);
    }
    const bool stale = snapshot_ && index <= snapshot_->meta.index;
    if (i + 1 < found.size() || stale || !head || head->size() < 16) {
      // Superseded, already installed, or torn before its header was durable: of no use.
      f.reset();
      if ((ec = wal_->fs_->remove(path))) raise_io(path, ec);
      wal_->dirs_unsynced_.push_back(dir_);
      continue;
    }
    std::uint64_t at = magic_bytes + frame_bytes + head->size();
    std::uint64_t received = 0;
    while (at < bytes.size()) {
      const auto chunk = record_at(bytes, at, wal_->options_.max_record_bytes);
      if (!chunk) {
        // A partly written chunk was never acknowledged: the receipt ends before it.
        if ((ec = f->truncate(at)) || (ec = f->sync())) raise_io(path, ec);
        break;
      }
      received += chunk->size();
      at += frame_bytes + chunk->size();
    }
    incoming_ = incoming{
        {index, term, received}, path, std::move(f), std::min<std::uint64_t>(at, bytes.size())};
  }
}

}  // namespace quorum::storage
