// Fuzzes the frame reader with arbitrary streams fed in arbitrary pieces: it must never crash,
// never return a frame over the cap, and every frame it returns must re-encode to itself.
#include <quorum/transport/codec.hpp>

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace quorum::transport;
  if (size < 1) return 0;
  const auto bytes = std::as_bytes(std::span(data, size));
  // The first byte picks the piece size and the cap.
  const std::size_t piece = 1 + static_cast<std::size_t>(data[0] % 64);
  const std::uint32_t cap = data[0] & 0x80 ? unauthenticated_max_frame_bytes : 1 << 16;
  frame_reader reader(cap);
  for (std::size_t at = 1; at < size; at += piece) {
    reader.feed(bytes.subspan(at, std::min(piece, size - at)));
    while (auto f = reader.next()) {
      if (f->body.size() > cap) std::abort();
      std::vector<std::byte> again;
      append_frame(again, f->kind, f->body);
      frame_reader check(cap);
      check.feed(again);
      auto back = check.next();
      if (!back || back->body != f->body || back->kind != f->kind) std::abort();
    }
  }
  return 0;
}
