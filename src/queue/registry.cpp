// The registry of declared queues: codec and apply.
#include <quorum/queue/group.hpp>
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
  if (c.type == registry_command::kind::declare_group) {
    // The queues, each as its name and its options after their length.
    put(out, c.queues.size(), 1);
    for (const group_member& q : c.queues) {
      put(out, q.name.size(), 1);
      for (char ch : q.name) out.push_back(static_cast<std::byte>(ch));
      const std::vector<std::byte> options = encode(q.options);
      put(out, options.size(), 4);
      out.insert(out.end(), options.begin(), options.end());
    }
    return raft::shared_bytes(std::move(out));
  }
  const std::vector<std::byte> options = encode(c.options);
  out.insert(out.end(), options.begin(), options.end());
  return raft::shared_bytes(std::move(out));
}

std::optional<registry_command> decode_registry_command(std::span<const std::byte> in) {
  auto number = [&](std::size_t bytes) -> std::optional<std::uint64_t> {
    if (in.size() < bytes) return std::nullopt;
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < bytes; ++i) v |= std::to_integer<std::uint64_t>(in[i]) << (8 * i);
    in = in.subspan(bytes);
    return v;
  };
  auto text = [&](std::optional<std::uint64_t> length) -> std::optional<std::string> {
    if (!length || *length == 0 || *length > in.size()) return std::nullopt;
    std::string out(reinterpret_cast<const char*>(in.data()), static_cast<std::size_t>(*length));
    in = in.subspan(static_cast<std::size_t>(*length));
    return out;
  };
  registry_command c;
  const auto version = number(1);
  const auto type = number(1);
  if (!version || *version != registry_version || !type || *type < 1 || *type > 3) {
    return std::nullopt;
  }
  c.type = static_cast<registry_command::kind>(*type);
  std::optional<std::string> name = text(number(1));
  const auto replicas = number(4);
  if (!name || !replicas) return std::nullopt;
  c.name = std::move(*name);
  c.replicas = static_cast<std::uint32_t>(*replicas);
  if (c.type == registry_command::kind::declare_group) {
    const auto count = number(1);
    for (std::uint64_t i = 0; count && i < *count; ++i) {
      std::optional<std::string> queue = text(number(1));
      const auto length = number(4);
      if (!queue || !length || *length > in.size()) return std::nullopt;
      auto options = decode_options(in.first(static_cast<std::size_t>(*length)));
      if (!options) return std::nullopt;
      in = in.subspan(static_cast<std::size_t>(*length));
      c.queues.push_back({std::move(*queue), std::move(*options)});
    }
    if (!count || !in.empty()) return std::nullopt;
    return c;
  }
  auto options = decode_options(in);
  if (!options) return std::nullopt;
  c.options = std::move(*options);
  return c;
}

registry::registry(std::vector<raft::node_id> cluster) : cluster_(std::move(cluster)) {
  std::sort(cluster_.begin(), cluster_.end());
  cluster_.erase(std::unique(cluster_.begin(), cluster_.end()), cluster_.end());
}

registry_result registry::apply(const raft::entry& e, std::vector<queue_record>& records) {
  const std::optional<registry_command> c = decode_registry_command(e.payload.bytes());
  if (!c || c->name.size() > max_name_bytes) return registry_result::malformed;
  auto group = groups_.find(c->name);
  auto it = queues_.find(c->name);
  if (c->type == registry_command::kind::remove) {
    if (group != groups_.end()) {
      for (const std::string& name : group->second) {
        records.push_back(std::move(queues_.at(name)));
        queues_.erase(name);
      }
      groups_.erase(group);
      return registry_result::removed;
    }
    if (it == queues_.end()) return registry_result::missing;
    if (!it->second.queue_group.empty()) return registry_result::grouped;
    records.push_back(std::move(it->second));
    queues_.erase(it);
    return registry_result::removed;
  }
  const bool grouped = c->type == registry_command::kind::declare_group;
  if (grouped && group != groups_.end()) {
    bool same = group->second.size() == c->queues.size();
    for (std::size_t i = 0; same && i < c->queues.size(); ++i) {
      const queue_record& r = queues_.at(group->second[i]);
      same = r.name == c->queues[i].name && r.options == c->queues[i].options &&
             r.replicas == c->replicas;
    }
    return same ? registry_result::exists : registry_result::mismatch;
  }
  if (!grouped && it != queues_.end()) {
    records.push_back(it->second);
    return it->second.queue_group.empty() && it->second.replicas == c->replicas &&
                   it->second.options == c->options
               ? registry_result::exists
               : registry_result::mismatch;
  }
  if (c->replicas == 0 || c->replicas > cluster_.size()) return registry_result::malformed;
  std::vector<group_member> queues =
      grouped ? c->queues : std::vector<group_member>{{c->name, c->options}};
  if (grouped) {
    // 1 to 64 queues, each named once; none expires on its own (the group goes as a whole).
    std::vector<std::string> names;
    for (const group_member& q : queues) {
      if (q.name.size() > max_name_bytes || q.name == c->name || q.options.expires_ms != 0) {
        return registry_result::malformed;
      }
      names.push_back(q.name);
    }
    std::sort(names.begin(), names.end());
    if (queues.empty() || queues.size() > max_group_members ||
        std::adjacent_find(names.begin(), names.end()) != names.end()) {
      return registry_result::malformed;
    }
  }
  // Groups and queues share one namespace, so that a delete names exactly one of them.
  if (groups_.contains(c->name) || (grouped && queues_.contains(c->name))) {
    return registry_result::mismatch;
  }
  for (const group_member& q : queues) {
    if (groups_.contains(q.name) || queues_.contains(q.name)) return registry_result::mismatch;
  }
  queue_record r;
  r.group = e.index + 1;
  r.replicas = c->replicas;
  // Replicas spread over the cluster: consecutive nodes from a place the group id picks.
  const std::size_t start = r.group % cluster_.size();
  for (std::size_t i = 0; i < r.replicas; ++i) {
    r.members.push_back(cluster_[(start + i) % cluster_.size()]);
  }
  std::sort(r.members.begin(), r.members.end());
  if (grouped) r.queue_group = c->name;
  std::vector<std::string> names;
  for (std::size_t i = 0; i < queues.size(); ++i) {
    r.name = queues[i].name;
    r.options = queues[i].options;
    r.member = static_cast<std::uint8_t>(i);
    records.push_back(r);
    queues_.emplace(r.name, r);
    names.push_back(r.name);
  }
  if (grouped) groups_.emplace(c->name, std::move(names));
  return registry_result::created;
}

const queue_record* registry::find(const std::string& name) const {
  auto it = queues_.find(name);
  return it == queues_.end() ? nullptr : &it->second;
}

}  // namespace quorum::queue
