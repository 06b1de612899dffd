// CRC32C: hardware path (SSE4.2 crc32 instruction, chosen at run time) and a byte-table path.
#include <quorum/storage/crc32c.hpp>

#include <array>
#include <cstring>

namespace quorum::storage {

namespace {

constexpr std::uint32_t polynomial = 0x82f63b78;  // Castagnoli, reflected

constexpr std::array<std::uint32_t, 256> make_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int bit = 0; bit < 8; ++bit) c = (c & 1) != 0 ? (c >> 1) ^ polynomial : c >> 1;
    table[i] = c;
  }
  return table;
}

constexpr auto table = make_table();

std::uint32_t crc_table(std::span<const std::byte> bytes, std::uint32_t crc) noexcept {
  for (std::byte b : bytes) crc = table[(crc ^ static_cast<std::uint8_t>(b)) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t crc_hardware(std::span<const std::byte> bytes,
                                                             std::uint32_t crc) noexcept {
  std::uint64_t c = crc;
  std::size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, bytes.data() + i, 8);
    c = __builtin_ia32_crc32di(c, word);
  }
  auto c32 = static_cast<std::uint32_t>(c);
  for (; i < bytes.size(); ++i) {
    c32 = __builtin_ia32_crc32qi(c32, static_cast<unsigned char>(bytes[i]));
  }
  return c32;
}

bool has_hardware() noexcept {
  static const bool supported = __builtin_cpu_supports("sse4.2");
  return supported;
}
#endif

}  // namespace

std::uint32_t crc32c(std::span<const std::byte> bytes, std::uint32_t crc) noexcept {
  crc = ~crc;
#if defined(__x86_64__)
  if (has_hardware()) return ~crc_hardware(bytes, crc);
#endif
  return ~crc_table(bytes, crc);
}

std::uint32_t crc32c_portable(std::span<const std::byte> bytes, std::uint32_t crc) noexcept {
  return ~crc_table(bytes, ~crc);
}

}  // namespace quorum::storage
