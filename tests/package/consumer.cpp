// Elects a one-node group through the installed headers and library.
#include <quorum/quorum.hpp>

int main() {
  quorum::raft::memory_storage storage({{1}});
  quorum::raft::options options;
  options.id = 1;
  quorum::raft::core<quorum::raft::memory_storage> node(storage, options);
  node.campaign();
  const bool leads = node.current_role() == quorum::raft::role::leader;
  const auto refused = quorum::make_error_code(quorum::errc::not_leader);
  return leads && refused.message().size() > 0 ? 0 : 1;
}
