// The quorum error category. Stateless; safe from any thread.
#include <quorum/error.hpp>

namespace quorum {
namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "quorum"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::not_leader:
        return "this node is not the leader; retry on the leader hint, or wait for an election";
      case errc::uncommitted_limit:
        return "too many bytes proposed but not committed; wait for commits, then retry";
      case errc::compacted: return "the requested entries were compacted into a snapshot";
      case errc::unavailable: return "the requested entries are not in storage";
      case errc::wrong_recipient:
        return "message addressed to another node; check the transport's routing";
      case errc::malformed_message:
        return "malformed message dropped (bad type, sender or entry indexes)";
      case errc::invalid_options: return "invalid options; see the message for the field at fault";
      case errc::io_error:
        return "storage I/O failed; the node stopped: check the disk, then restart it";
      case errc::transfer_in_progress:
        return "leadership is being transferred; retry on the new leader";
      case errc::invalid_transfer_target: return "the transfer target is not a voter of this group";
      case errc::read_not_confirmed:
        return "the read could not be confirmed by a quorum (no leader, or leadership lost); retry";
      case errc::membership_change_in_progress:
        return "a membership change is in flight; retry once it has committed";
      case errc::invalid_membership:
        return "invalid membership (no voters, a zero or repeated id, or a voter also learner)";
      case errc::not_caught_up:
        return "the learner is not caught up with the leader's log yet; promote it later";
      case errc::corruption:
        return "log damaged before its end (checksum mismatch); repair this node from its peers";
      case errc::authentication_failed:
        return "peer authentication failed (cluster secret, cluster id or node id do not match)";
      case errc::proposal_dropped:
        return "the proposal was overwritten by another leader's entry and not applied; retry";
      case errc::shutting_down:
        return "the replica is stopping or stopped; the operation did not run";
      case errc::invalid_command:
        return "the queue command names an unknown consumer or a message it does not hold";
      case errc::outcome_unknown:
        return "the forwarded command got no answer; it may or may not have been applied";
      case errc::no_replica:
        return "this node holds no replica of that queue; use one of its members";
      case errc::queue_mismatch: return "the queue exists with other settings; it was not changed";
      case errc::no_queue: return "no queue of that name is declared";
    }
    return "unknown quorum error";
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const category instance;
  return instance;
}

std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

}  // namespace quorum
