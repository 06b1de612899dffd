// The quorum-queue workload of the simulator (quorum-sim --workload queue): one queue replicated
// by the simulated cluster, publishers that retry until confirmed (with deduplication),
// consumers that ack, requeue, reject and detach, and a clock that stamps time. A checker
// follows the effects of every applied entry in log order and fails the run if replicas
// disagree on them, if a retried publish is enqueued twice, if a message is delivered that
// is not ready (never published, already gone, or held unacknowledged), if first deliveries
// break FIFO per publisher within a priority, or if a confirmed message is unaccounted for.
// After the liveness phase, consumers drain the queue: it must end empty.
#pragma once

#include <quorum/sim/kv.hpp>

namespace quorum::sim {

/** Runs one seed of the queue workload: safety phase with the configured faults, liveness,
 *  then a drain; checks everything. */
run_result run_queue(const run_config& config);

}  // namespace quorum::sim
