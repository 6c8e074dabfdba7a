// SMTP reply parsing (RFC 5321 §4.2) with RFC 3463 enhanced status codes.
// Pure functions and a small incremental parser: no I/O, no Asio; any thread.
// Replies are data, not errors: deciding what a reply means is the engine's job.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kurier::smtp {

// Defend against hostile servers: a reply line longer than this is cut (the rest of
// the line is discarded), and a multi-line reply keeps at most kMaxReplyLines lines /
// kMaxReplyBytes bytes of text; the remaining lines are read and dropped.
inline constexpr std::size_t kMaxReplyLineBytes = 2048;  // RFC 5321 says 512; be lenient
inline constexpr std::size_t kMaxReplyLines = 100;
inline constexpr std::size_t kMaxReplyBytes = 16 * 1024;
// Bytes of one reply on the wire, dropped ones included. Beyond this the reply is a
// protocol violation: a server streaming an endless multi-line reply (or a line of
// megabytes) would otherwise keep the session reading until the step's timeout,
// minutes at full speed. A hundred lines at the line limit are 200 KiB.
inline constexpr std::size_t kMaxReplyWireBytes = 256 * 1024;

struct Reply {
  int code = 0;             // 3-digit code; 0 = no reply (local failure)
  std::string enhanced;     // "5.1.1" if the first line carries an RFC 3463 code of the
                            // reply's class (a "250 5.1.1" is text), else ""
  std::string text;         // text of all lines, enhanced code and code stripped from each,
                            // joined with '\n'
  std::vector<std::string> lines;  // raw lines as received (without CRLF), bounded as above

  bool positive() const { return code >= 200 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
  bool permanent() const { return code >= 500 && code < 600; }
  // "550 5.1.1 text" on one line (multi-line text joined with ' '), for logs and reports.
  std::string summary() const;
};

// Parses one complete reply (lines separated by CRLF or LF). nullopt if malformed:
// a line without a 3-digit code, inconsistent codes across lines, or no final line.
std::optional<Reply> parse_reply(std::string_view text);

// Incremental parser fed with bytes from the socket. Call feed() with each chunk;
// it returns the number of bytes consumed (everything up to and including the end
// of a complete reply, or all of `data` if no reply is complete yet). When a reply
// completes, ready() is true and take() returns it (resetting the parser for the
// next reply; unconsumed bytes belong to the next reply and must be fed again).
// A protocol violation (garbage instead of "NNN-" / "NNN ", or a reply longer than
// kMaxReplyWireBytes) sets error().
class ReplyParser {
 public:
  std::size_t feed(std::string_view data);
  bool ready() const { return ready_; }
  bool error() const { return error_; }
  Reply take();

 private:
  void append_partial(std::string_view piece);
  void finish_line(std::string_view line);
  std::string line_;            // a line split across feed() calls, cut at kMaxReplyLineBytes
  bool line_overflow_ = false;  // line_ was cut: drop bytes until the line ends
  bool first_line_ = true;      // the enhanced code is taken from the first line only
  bool dropping_ = false;       // a limit was reached: the rest of this reply is dropped
  Reply reply_;
  std::size_t text_bytes_ = 0;
  std::size_t wire_bytes_ = 0;  // bytes consumed for the current reply
  bool ready_ = false;
  bool error_ = false;
};

// Extracts an RFC 3463 code ("4.7.1") from the start of `text`, or "" if none.
std::string extract_enhanced(std::string_view text);

}  // namespace kurier::smtp
