// Runs the handlers already queued on an io_context, and what they queue in turn, a bounded
// number of hops deep. io_context::poll() runs until nothing is ready, which never happens
// while other nodes on the same io_context tick faster than a slow run (ASan on a loaded
// machine) handles their work: their overdue timers keep it busy forever.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

namespace quorum::test {

/**
 * Posts a marker and runs handlers until it ran, `hops` times over. The queue is FIFO, so each
 * round runs everything queued before its marker; a handler that a queued one posts on (a
 * message handed to a node, then to its replica's strand) is covered by the next round.
 */
inline void run_queued(boost::asio::io_context& ioc, int hops = 3) {
  for (int round = 0; round < hops; ++round) {
    bool reached = false;
    boost::asio::post(ioc, [&reached] { reached = true; });
    while (!reached) ioc.run_one();
  }
}

}  // namespace quorum::test
