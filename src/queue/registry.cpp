// The registry of declared queues: codec and apply.
#include <quorum/queue/registry.hpp>

#include <algorithm>

namespace quorum::queue {

namespace {

constexpr std::uint8_t registry_version = 1;
constexpr std::size_t max_name_bytes = 255;

void put(std::vector<std::byte>& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<std::byte>(v >> (8 * i)));
}

}  // namespace

raft::shared_bytes encode(const registry_command& c) {
  std::vector<std::byte> out;
  put(out, registry_version, 1);
  put(out, static_cast<std::uint8_t>(c.type), 1);
  put(out, c.name.size(), 1);
  for (char ch : c.name) out.push_back(static_cast<std::byte>(ch));
  put(out, c.replicas, 4);
  const std::vector<std::byte> options = encode(c.options);
  out.insert(out.end(), options.begin(), options.end());
  return raft::shared_bytes(std::span<const std::byte>(out));
}

std::optional<registry_command> decode_registry_command(std::span<const std::byte> in) {
  auto number = [&](std::size_t bytes) -> std::optional<std::uint64_t> {
    if (in.size() < bytes) return std::nullopt;
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < bytes; ++i) v |= std::to_integer<std::uint64_t>(in[i]) << (8 * i);
    in = in.subspan(bytes);
    return v;
  };
  registry_command c;
  const auto version = number(1);
  const auto type = number(1);
  const auto name = number(1);
  if (!version || *version != registry_version || !type || *type < 1 || *type > 2 || !name ||
      *name == 0 || *name > in.size()) {
    return std::nullopt;
  }
  c.type = static_cast<registry_command::kind>(*type);
  c.name.assign(reinterpret_cast<const char*>(in.data()), static_cast<std::size_t>(*name));
  in = in.subspan(static_cast<std::size_t>(*name));
  const auto replicas = number(4);
  if (!replicas) return std::nullopt;
  c.replicas = static_cast<std::uint32_t>(*replicas);
  auto options = decode_options(in);
  if (!options) return std::nullopt;
  c.options = std::move(*options);
  return c;
}

registry::registry(std::vector<raft::node_id> cluster) : cluster_(std::move(cluster)) {
  std::sort(cluster_.begin(), cluster_.end());
  cluster_.erase(std::unique(cluster_.begin(), cluster_.end()), cluster_.end());
}

registry_result registry::apply(const raft::entry& e, queue_record& record) {
  const std::optional<registry_command> c = decode_registry_command(e.payload.bytes());
  if (!c || c->name.size() > max_name_bytes) return registry_result::malformed;
  auto it = queues_.find(c->name);
  if (c->type == registry_command::kind::remove) {
    if (it == queues_.end()) return registry_result::missing;
    record = std::move(it->second);
    queues_.erase(it);
    return registry_result::removed;
  }
  if (it != queues_.end()) {
    record = it->second;
    return it->second.replicas == c->replicas && it->second.options == c->options
               ? registry_result::exists
               : registry_result::mismatch;
  }
  if (c->replicas == 0 || c->replicas > cluster_.size()) return registry_result::malformed;
  queue_record r;
  r.name = c->name;
  r.group = e.index + 1;
  r.replicas = c->replicas;
  r.options = c->options;
  // Replicas spread over the cluster: consecutive nodes from a place the group id picks.
  const std::size_t start = r.group % cluster_.size();
  for (std::size_t i = 0; i < r.replicas; ++i) {
    r.members.push_back(cluster_[(start + i) % cluster_.size()]);
  }
  std::sort(r.members.begin(), r.members.end());
  record = r;
  queues_.emplace(r.name, std::move(r));
  return registry_result::created;
}

const queue_record* registry::find(const std::string& name) const {
  auto it = queues_.find(name);
  return it == queues_.end() ? nullptr : &it->second;
}

}  // namespace quorum::queue
