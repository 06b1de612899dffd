// Small builders shared by the raft unit tests.
#pragma once

#include <quorum/raft/types.hpp>

#include <initializer_list>
#include <vector>

namespace quorum::test {

/** Entries with the given terms, indexes from `first` on, each with payload "e". */
inline std::vector<raft::entry> make_entries(raft::index_t first,
                                             std::initializer_list<raft::term_t> terms) {
  std::vector<raft::entry> out;
  for (raft::term_t t : terms) out.push_back(raft::entry{t, first++, raft::shared_bytes("e")});
  return out;
}

}  // namespace quorum::test
