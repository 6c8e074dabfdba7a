// libFuzzer target: the SMTP reply parser (smtp/reply.h) on hostile server bytes.
// One-shot parse_reply() and the incremental ReplyParser fed in chunks whose sizes
// come from the input must agree, and every limit of reply.h must hold.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "smtp/reply.h"

using kurier::smtp::ReplyParser;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t chunk = 1 + data[0] % 64;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  (void)kurier::smtp::parse_reply(input);

  ReplyParser parser;
  std::size_t replies = 0;
  while (!input.empty()) {
    std::string_view piece = input.substr(0, chunk);
    const std::size_t used = parser.feed(piece);
    if (used > piece.size()) __builtin_trap();
    input.remove_prefix(used);
    if (parser.error()) break;
    if (parser.ready()) {
      auto reply = parser.take();
      ++replies;
      if (reply.code < 200 || reply.code > 599) __builtin_trap();
      if (reply.lines.size() > kurier::smtp::kMaxReplyLines) __builtin_trap();
      for (const auto& line : reply.lines)
        if (line.size() > kurier::smtp::kMaxReplyLineBytes) __builtin_trap();
      (void)reply.summary();
    } else if (used == 0) {
      __builtin_trap();  // neither progress nor a result: the caller would spin
    }
  }
  (void)replies;
  return 0;
}
