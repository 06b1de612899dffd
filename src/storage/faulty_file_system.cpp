// The fault-injecting in-memory file system. Single-threaded.
#include <quorum/storage/faulty_file_system.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace quorum::storage {

namespace {
std::error_code eio() {
  return {EIO, std::system_category()};
}
std::string parent_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}
}  // namespace

class faulty_file_system::handle final : public file {
 public:
  handle(faulty_file_system& fs, std::shared_ptr<inode> node)
      : fs_(&fs), node_(std::move(node)), generation_(fs.generation_) {}

  std::error_code write_at(std::uint64_t offset, std::span<const std::byte> data) override {
    if (auto ec = usable(fs_op::write)) return ec;
    pending_op op{true, offset, {data.begin(), data.end()}};
    apply(node_->data, op);
    node_->pending.push_back(std::move(op));
    return {};
  }

  std::error_code read_at(std::uint64_t offset, std::span<std::byte> out,
                          std::size_t& got) override {
    got = 0;
    if (auto ec = usable(fs_op::read)) return ec;
    if (offset < node_->data.size()) {
      got = std::min<std::size_t>(out.size(), node_->data.size() - offset);
      std::memcpy(out.data(), node_->data.data() + offset, got);
    }
    return {};
  }

  std::error_code sync() override {
    if (auto ec = usable(fs_op::sync)) return ec;
    node_->durable = node_->data;
    node_->pending.clear();
    return {};
  }

  std::error_code truncate(std::uint64_t size) override {
    if (auto ec = usable(fs_op::truncate)) return ec;
    pending_op op{false, size, {}};
    apply(node_->data, op);
    node_->pending.push_back(std::move(op));
    return {};
  }

  std::error_code size(std::uint64_t& out) override {
    if (generation_ != fs_->generation_) return eio();
    out = node_->data.size();
    return {};
  }

 private:
  std::error_code usable(fs_op op) {
    if (generation_ != fs_->generation_) return {EBADF, std::system_category()};
    return fs_->check(op);
  }

  faulty_file_system* fs_;
  std::shared_ptr<inode> node_;
  std::uint64_t generation_;
};

void faulty_file_system::apply(std::vector<std::byte>& target, const pending_op& op) {
  if (!op.is_write) {
    target.resize(static_cast<std::size_t>(op.offset));
    return;
  }
  const auto end = static_cast<std::size_t>(op.offset + op.bytes.size());
  if (target.size() < end) target.resize(end);
  std::copy(op.bytes.begin(), op.bytes.end(),
            target.begin() + static_cast<std::ptrdiff_t>(op.offset));
}

std::error_code faulty_file_system::check(fs_op op) {
  ++operations_;
  ++counts_[op];
  if (dead_.contains(op) || dead_.contains(fs_op::any)) return eio();
  const double rate = op == fs_op::read ? read_error_ : op == fs_op::sync ? sync_error_ : 0;
  if (rate > 0 && static_cast<double>(random_.below(1'000'000)) < rate * 1e6) return eio();
  if (fail_countdown_ != 0 && (fail_op_ == fs_op::any || fail_op_ == op)) {
    if (--fail_countdown_ == 0) return eio();
  }
  return {};
}

void faulty_file_system::fail_at(std::uint64_t n, fs_op op) {
  fail_countdown_ = n;
  fail_op_ = op;
}

std::unique_ptr<file> faulty_file_system::open(const std::string& path, bool create,
                                               std::error_code& ec) {
  ec = check(fs_op::open);
  if (ec) return nullptr;
  auto it = names_.find(path);
  if (it == names_.end()) {
    if (!create) {
      ec = {ENOENT, std::system_category()};
      return nullptr;
    }
    if (!dirs_.contains(parent_of(path))) {
      ec = {ENOENT, std::system_category()};
      return nullptr;
    }
    it = names_.emplace(path, std::make_shared<inode>()).first;
  }
  return std::make_unique<handle>(*this, it->second);
}

std::error_code faulty_file_system::remove(const std::string& path) {
  if (auto ec = check(fs_op::remove)) return ec;
  names_.erase(path);
  return {};
}

std::error_code faulty_file_system::rename(const std::string& from, const std::string& to) {
  if (auto ec = check(fs_op::rename)) return ec;
  auto it = names_.find(from);
  if (it == names_.end()) return {ENOENT, std::system_category()};
  auto node = it->second;
  names_.erase(it);
  names_[to] = std::move(node);
  return {};
}

std::error_code faulty_file_system::sync_dir(const std::string& dir) {
  if (auto ec = check(fs_op::sync_dir)) return ec;
  std::erase_if(durable_names_, [&](const auto& item) { return parent_of(item.first) == dir; });
  for (const auto& [path, node] : names_) {
    if (parent_of(path) == dir) durable_names_[path] = node;
  }
  return {};
}

std::error_code faulty_file_system::make_dirs(const std::string& dir) {
  for (std::string d = dir; !d.empty(); d = parent_of(d)) dirs_.insert(d);
  return {};
}

std::vector<std::string> faulty_file_system::list(const std::string& dir, std::error_code& ec) {
  ec.clear();
  std::vector<std::string> out;
  if (!dirs_.contains(dir)) {
    ec = {ENOENT, std::system_category()};
    return out;
  }
  for (const auto& [path, node] : names_) {
    if (parent_of(path) == dir) out.push_back(path.substr(dir.size() + 1));
  }
  return out;
}

void faulty_file_system::crash(bool keep_some, bool tear) {
  std::set<inode*> seen;
  for (auto* names : {&names_, &durable_names_}) {
    for (auto& [path, node] : *names) {
      if (!seen.insert(node.get()).second) continue;
      std::size_t keep = 0;
      if (keep_some && !node->pending.empty()) {
        keep = static_cast<std::size_t>(random_.below(node->pending.size() + 1));
      }
      for (std::size_t i = 0; i < keep; ++i) {
        pending_op op = node->pending[i];
        if (i + 1 == keep && tear && op.is_write && op.bytes.size() > 1 && random_.below(2) == 0) {
          op.bytes.resize(static_cast<std::size_t>(random_.below(op.bytes.size())));  // torn
        }
        apply(node->durable, op);
      }
      node->pending.clear();
      node->data = node->durable;
    }
  }
  names_ = durable_names_;
  ++generation_;
}

bool faulty_file_system::flip_bit(const std::string& path, std::uint64_t offset) {
  auto it = names_.find(path);
  if (it == names_.end() || offset >= it->second->durable.size()) return false;
  const auto at = static_cast<std::size_t>(offset);
  it->second->durable[at] ^= std::byte{0x10};
  if (at < it->second->data.size()) it->second->data[at] ^= std::byte{0x10};
  return true;
}

std::vector<std::byte> faulty_file_system::contents(const std::string& path) const {
  auto it = names_.find(path);
  return it == names_.end() ? std::vector<std::byte>{} : it->second->data;
}

}  // namespace quorum::storage
