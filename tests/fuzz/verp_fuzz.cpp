// libFuzzer target: the VERP decoder (engine/core/verp.h) on addresses from bounces, which
// anyone can send. Decoding must never accept a token whose MAC was not made with
// the secret, and every token we make must decode to its ids in any letter case.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "engine/core/verp.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const kurier::engine::Verp verp("fuzz-secret");
  static const kurier::engine::Verp other("another-secret");
  std::string_view input(reinterpret_cast<const char*>(data), size);
  if (auto ids = verp.decode_address(input)) {
    // Only possible if the input carries a genuine token: re-encoding must match it.
    const std::string token = verp.token(*ids);
    std::string lowered(input);
    for (char& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lowered.find(token) == std::string::npos) __builtin_trap();
  }
  (void)verp.decode_token(input);

  if (size >= 8) {
    kurier::engine::VerpIds ids;
    std::memcpy(&ids.campaign, data, 4);
    std::memcpy(&ids.recipient, data + 4, 4);
    std::string address = verp.address(ids, "bounce.example");
    for (std::size_t i = 8; i < size && i - 8 < address.size(); ++i)
      if (data[i] & 1) address[i - 8] = static_cast<char>(std::toupper(static_cast<unsigned char>(address[i - 8])));
    auto back = verp.decode_address(address);
    if (!back || !(*back == ids)) __builtin_trap();
    if (other.decode_address(address)) __builtin_trap();  // ~2^-80: a real failure
  }
  return 0;
}
