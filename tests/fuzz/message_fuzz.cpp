// Fuzzes the message decoder: arbitrary bytes must be refused or decoded, never crash or
// allocate from an unchecked length; whatever decodes must re-encode to a message that decodes
// to the same value.
#include <quorum/transport/codec.hpp>

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace quorum::transport;
  std::error_code ec;
  const auto decoded = decode_message(std::as_bytes(std::span(data, size)), ec);
  if (!decoded) {
    if (!ec) std::abort();
    return 0;
  }
  const auto again = decode_message(encode_message(*decoded), ec);
  if (!again || !(*again == *decoded)) std::abort();
  return 0;
}
