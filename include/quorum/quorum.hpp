// Umbrella header: everything public in quorum. Include the layer headers directly to compile
// less.
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
