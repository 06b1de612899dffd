// Encoding and validation of group memberships. Pure functions.
#include <quorum/raft/types.hpp>

#include <quorum/error.hpp>

#include <algorithm>
#include <cstring>

namespace quorum::raft {
namespace {

// Format: for each of voters, voters_outgoing, learners: a 32-bit count, then 64-bit ids; all
// little-endian.
void put(std::vector<std::byte>& out, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<std::byte>(value >> (8 * i)));
}

bool get(std::span<const std::byte>& in, std::uint64_t& value, int bytes) {
  if (in.size() < static_cast<std::size_t>(bytes)) return false;
  value = 0;
  for (int i = 0; i < bytes; ++i) value |= std::to_integer<std::uint64_t>(in[i]) << (8 * i);
  in = in.subspan(static_cast<std::size_t>(bytes));
  return true;
}

bool has_duplicates(std::vector<node_id> ids) {
  std::sort(ids.begin(), ids.end());
  return std::adjacent_find(ids.begin(), ids.end()) != ids.end();
}

}  // namespace

shared_bytes encode_membership(const membership& m) {
  std::vector<std::byte> out;
  for (const auto* list : {&m.voters, &m.voters_outgoing, &m.learners}) {
    put(out, list->size(), 4);
    for (node_id id : *list) put(out, id, 8);
  }
  return shared_bytes(std::span<const std::byte>(out));
}

std::optional<membership> decode_membership(std::span<const std::byte> bytes) {
  membership m;
  for (auto* list : {&m.voters, &m.voters_outgoing, &m.learners}) {
    std::uint64_t count = 0;
    // The count is checked against what is left before anything is allocated.
    if (!get(bytes, count, 4) || count > bytes.size() / 8) return std::nullopt;
    for (std::uint64_t i = 0; i < count; ++i) {
      std::uint64_t id = 0;
      get(bytes, id, 8);
      list->push_back(id);
    }
  }
  if (!bytes.empty()) return std::nullopt;
  return m;
}

std::error_code validate(const membership& m, std::string& what) {
  what.clear();
  auto zero = [](const std::vector<node_id>& ids) {
    return std::find(ids.begin(), ids.end(), no_node) != ids.end();
  };
  if (m.voters.empty()) {
    what = "a membership needs at least one voter";
  } else if (zero(m.voters) || zero(m.voters_outgoing) || zero(m.learners)) {
    what = "node id 0 is reserved";
  } else if (has_duplicates(m.voters) || has_duplicates(m.voters_outgoing) ||
             has_duplicates(m.learners)) {
    what = "a node id is listed twice";
  } else {
    // (An outgoing voter may be a learner already: a voter being demoted, in joint consensus.)
    for (node_id learner : m.learners) {
      if (std::find(m.voters.begin(), m.voters.end(), learner) != m.voters.end()) {
        what = "node " + std::to_string(learner) + " is voter and learner";
      }
    }
  }
  return what.empty() ? std::error_code{} : make_error_code(errc::invalid_membership);
}

}  // namespace quorum::raft
