// LEB128 unsigned integers (seven bits a byte, low bits first): the compact numbers of the
// WAL's segment indexes and keep lists, and of queue snapshots.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace quorum::detail {

inline void put_varint(std::vector<std::byte>& out, std::uint64_t v) {
  for (;; v >>= 7) {
    const auto low = static_cast<std::uint8_t>(v & 0x7f);
    out.push_back(static_cast<std::byte>(v >= 0x80 ? low | 0x80 : low));
    if (v < 0x80) return;
  }
}

/** Reads a LEB128 value at `at` of `in`, advancing `at`; false if malformed. */
inline bool get_varint(std::span<const std::byte> in, std::size_t& at, std::uint64_t& v) {
  v = 0;
  for (int shift = 0; shift <= 63; shift += 7) {
    if (at == in.size()) return false;
    const auto b = static_cast<std::uint8_t>(in[at++]);
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

}  // namespace quorum::detail
