// Umbrella header: everything public in quorum except the simulator and the Asio runtime
// (include <quorum/runtime/replica.hpp> and link quorum::runtime for that). Include the layer
// headers directly to compile less.
#pragma once

#include <quorum/error.hpp>
#include <quorum/raft/core.hpp>
#include <quorum/raft/log.hpp>
#include <quorum/raft/memory_storage.hpp>
#include <quorum/raft/message.hpp>
#include <quorum/raft/options.hpp>
#include <quorum/raft/progress.hpp>
#include <quorum/raft/ready.hpp>
#include <quorum/raft/storage.hpp>
#include <quorum/raft/types.hpp>
#include <quorum/storage/crc32c.hpp>
#include <quorum/storage/faulty_file_system.hpp>
#include <quorum/storage/file_log.hpp>
#include <quorum/storage/file_system.hpp>
#include <quorum/storage/shared_wal.hpp>
#include <quorum/transport/codec.hpp>
#include <quorum/transport/handshake.hpp>
