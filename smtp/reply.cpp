// SMTP reply parsing: RFC 5321 §4.2 reply lines and RFC 3463 enhanced status codes.
// Pure code on the caller's thread, no I/O. Malformed input is reported (nullopt,
// ReplyParser::error()), never thrown; hostile sizes are cut at the header's limits.
#include "smtp/reply.h"

#include <cstring>

namespace kurier::smtp {

namespace {

// RFC 3463: subject and detail are 1-3 digits each.
constexpr std::size_t kMaxEnhancedPartDigits = 3;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A reply code is three digits, the first 2-5 (RFC 5321 §4.2: 1yz is not used by
// SMTP, and 0 is our "no reply" marker, so a server must not be able to produce it).
bool valid_code(std::string_view line) {
  return line.size() >= 3 && line[0] >= '2' && line[0] <= '5' && is_digit(line[1]) &&
         is_digit(line[2]);
}

int code_of(std::string_view line) {
  return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
}

// Number of digits at the start of `s`, at most `max + 1` (so callers can tell "too many").
std::size_t count_digits(std::string_view s, std::size_t max) {
  std::size_t n = 0;
  while (n < s.size() && n <= max && is_digit(s[n])) ++n;
  return n;
}

// Length of the RFC 3463 code at the start of `text` (0 if none).
std::size_t enhanced_length(std::string_view text) {
  if (text.size() < 5) return 0;
  if (text[0] != '2' && text[0] != '4' && text[0] != '5') return 0;
  if (text[1] != '.') return 0;
  std::size_t pos = 2;
  std::size_t n = count_digits(text.substr(pos), kMaxEnhancedPartDigits);
  if (n == 0 || n > kMaxEnhancedPartDigits) return 0;
  pos += n;
  if (pos >= text.size() || text[pos] != '.') return 0;
  ++pos;
  n = count_digits(text.substr(pos), kMaxEnhancedPartDigits);
  if (n == 0 || n > kMaxEnhancedPartDigits) return 0;
  pos += n;
  if (pos < text.size() && text[pos] != ' ') return 0;
  return pos;
}

}  // namespace

std::string extract_enhanced(std::string_view text) {
  return std::string(text.substr(0, enhanced_length(text)));
}

std::string Reply::summary() const {
  std::string out = std::to_string(code);
  if (!enhanced.empty()) {
    out += ' ';
    out += enhanced;
  }
  if (!text.empty()) {
    out += ' ';
    for (char c : text) out += c == '\n' ? ' ' : c;
  }
  return out;
}

std::size_t ReplyParser::feed(std::string_view data) {
  if (ready_ || error_) return 0;
  std::size_t pos = 0;
  while (pos < data.size()) {
    const char* start = data.data() + pos;
    const auto* lf = static_cast<const char*>(std::memchr(start, '\n', data.size() - pos));
    std::size_t chunk = lf ? static_cast<std::size_t>(lf - start) : data.size() - pos;
    std::string_view piece(start, chunk);
    pos += chunk;
    if (wire_bytes_ + pos > kMaxReplyWireBytes) {
      error_ = true;
      break;
    }
    if (lf == nullptr) {
      // Partial line: keep it (bounded) until the rest arrives.
      append_partial(piece);
      break;
    }
    ++pos;  // the LF
    if (line_.empty() && !line_overflow_) {
      // Fast path: the whole line is in `data`; no copy into line_.
      finish_line(piece.substr(0, std::min(piece.size(), kMaxReplyLineBytes)));
    } else {
      append_partial(piece);
      finish_line(line_);
      line_.clear();
      line_overflow_ = false;
    }
    if (ready_ || error_) break;
  }
  wire_bytes_ += pos;
  return pos;
}

void ReplyParser::append_partial(std::string_view piece) {
  std::size_t room = kMaxReplyLineBytes - line_.size();
  if (piece.size() > room) {
    piece = piece.substr(0, room);
    line_overflow_ = true;  // the rest of the line is read and dropped
  }
  line_.append(piece);
}

void ReplyParser::finish_line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // "NNN", "NNN text", "NNN-text"; anything else is a protocol violation.
  if (!valid_code(line) || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
    error_ = true;
    return;
  }
  int code = code_of(line);
  bool last = line.size() == 3 || line[3] == ' ';
  if (reply_.code == 0) {
    reply_.code = code;
  } else if (code != reply_.code) {
    error_ = true;  // RFC 5321 §4.2.1: every line of a reply carries the same code
    return;
  }
  std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view{};
  // RFC 3463 codes belong to the reply's class (2xx -> 2.x.x); a "250 5.1.1" is text.
  std::size_t enh = enhanced_length(text);
  if (enh > 0 && text[0] != line[0]) enh = 0;
  if (first_line_) {
    first_line_ = false;
    if (enh > 0) reply_.enhanced.assign(text.substr(0, enh));
  }
  if (enh > 0) {
    text.remove_prefix(enh);
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  }
  // Keep what fits; later lines are still checked (to find the end) but dropped, all
  // of them once one is, so the kept text is a prefix of the reply and has no holes.
  if (!dropping_ && (reply_.lines.size() >= kMaxReplyLines || text_bytes_ + line.size() > kMaxReplyBytes)) {
    dropping_ = true;
  }
  if (!dropping_) {
    text_bytes_ += line.size();
    if (!reply_.lines.empty()) reply_.text += '\n';
    reply_.text.append(text);
    reply_.lines.emplace_back(line);
  }
  if (last) ready_ = true;
}

Reply ReplyParser::take() {
  Reply out = std::move(reply_);
  reply_ = Reply{};
  line_.clear();
  line_overflow_ = false;
  first_line_ = true;
  dropping_ = false;
  text_bytes_ = 0;
  wire_bytes_ = 0;
  ready_ = false;
  error_ = false;
  return out;
}

std::optional<Reply> parse_reply(std::string_view text) {
  ReplyParser parser;
  std::size_t used = parser.feed(text);
  if (!parser.ready() && !parser.error() && used == text.size() && !text.empty() &&
      text.back() != '\n') {
    parser.feed("\n");  // the final line may come without its line ending
  }
  if (parser.error() || !parser.ready()) return std::nullopt;
  // Anything after the final line is not part of this reply.
  if (used < text.size() && text.substr(used).find_first_not_of("\r\n") != std::string_view::npos) {
    return std::nullopt;
  }
  return parser.take();
}

}  // namespace kurier::smtp
