// CRC32C (Castagnoli), the checksum on every record the storage layer writes. Uses the SSE4.2
// instruction when the CPU has it, a table otherwise; both give the same values. Thread-safe.
#pragma once

#include <cstdint>
#include <span>

namespace quorum::storage {

/** Extends `crc` (0 to start) over `bytes`. */
std::uint32_t crc32c(std::span<const std::byte> bytes, std::uint32_t crc = 0) noexcept;

/** The table path alone, for tests that compare it with the hardware path. */
std::uint32_t crc32c_portable(std::span<const std::byte> bytes, std::uint32_t crc = 0) noexcept;

}  // namespace quorum::storage
