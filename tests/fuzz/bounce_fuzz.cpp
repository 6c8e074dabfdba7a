// libFuzzer target: the inbound bounce parser (bounce/bounce.h) on any message:
// DSNs, ARF reports and auto-replies arrive from anyone. parse() must not throw,
// crash, leak or read out of bounds (ASan, UBSan).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "bounce/bounce.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view raw(reinterpret_cast<const char*>(data), size);
  auto message = kurier::bounce::parse(raw);
  (void)message;
  return 0;
}
