// The server side of the SMTP dialogue: line buffer, command parsing and the state
// machine (contract in server_session.h). Runs on the thread of its connection; client
// mistakes get SMTP error replies, never exceptions.
#include "smtp/server_session.h"

#include <algorithm>
#include <cstring>

#include "common/text.h"

namespace kurier::smtp {
namespace {

using text::iequals;
using text::istarts_with;

// The read buffer starts small (a sink holds thousands of idle connections) and grows
// up to one maximal line plus one read.
constexpr std::size_t kInitialBuffer = 16 * 1024;
constexpr std::size_t kMinReadSpace = 4 * 1024;
constexpr std::size_t kReadChunk = 16 * 1024;
// A message of many megabytes should not stay allocated for the whole connection.
constexpr std::size_t kKeptMessageCapacity = 1u << 20;

// Spaces and tabs only (SMTP's WSP), unlike text::trim.
std::string_view trim_left(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

std::string_view trim_right(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string_view without_line_end(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

}  // namespace

Command split_command(std::string_view line) {
  const auto space = line.find(' ');
  if (space == std::string_view::npos) return {line, {}};
  return {line.substr(0, space), trim_right(trim_left(line.substr(space + 1)))};
}

std::optional<Path> parse_path(std::string_view args, std::string_view keyword) {
  if (!istarts_with(args, keyword)) return std::nullopt;
  std::string_view rest = trim_left(args.substr(keyword.size()));
  Path path;
  if (!rest.empty() && rest.front() == '<') {
    const auto close = rest.find('>');
    if (close == std::string_view::npos) return std::nullopt;
    path.address = rest.substr(1, close - 1);
    path.params = rest.substr(close + 1);
  } else {
    const auto space = rest.find(' ');
    path.address = rest.substr(0, space);
    path.params = space == std::string_view::npos ? std::string_view{} : rest.substr(space);
  }
  if (!path.address.empty() && path.address.front() == '@') {  // "<@a,@b:user@d>"
    const auto colon = path.address.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    path.address.remove_prefix(colon + 1);
  }
  return path;
}

std::uint64_t size_parameter(std::string_view params) {
  while (!(params = trim_left(params)).empty()) {
    const auto end = params.find(' ');
    const std::string_view token = params.substr(0, end);
    params = end == std::string_view::npos ? std::string_view{} : params.substr(end);
    if (!istarts_with(token, "SIZE=")) continue;
    std::uint64_t value = 0;
    for (char c : token.substr(5)) {
      if (c < '0' || c > '9') return 0;
      value = value * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return value;
  }
  return 0;
}

std::optional<std::string_view> unstuff(std::string_view line) {
  if (line == ".\r\n" || line == ".\n") return std::nullopt;
  if (!line.empty() && line.front() == '.') line.remove_prefix(1);
  return line;
}

// ---- LineBuffer -----------------------------------------------------------------------

LineBuffer::LineBuffer(std::size_t max_line)
    : buf_(std::min(kInitialBuffer, max_line + 2 + kReadChunk)), max_buffer_(max_line + 2 + kReadChunk) {}

std::span<char> LineBuffer::space() {
  if (begin_ == end_) begin_ = scan_ = end_ = 0;
  if (buf_.size() - end_ < kMinReadSpace) {
    if (begin_ > 0) {
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      scan_ -= begin_;
      begin_ = 0;
    }
    if (buf_.size() - end_ < kMinReadSpace) buf_.resize(std::min(buf_.size() * 2, max_buffer_));
  }
  return {buf_.data() + end_, buf_.size() - end_};
}

void LineBuffer::commit(std::size_t n) { end_ += n; }

LineBuffer::Next LineBuffer::next(std::string_view& line, std::size_t limit) {
  for (;;) {
    if (scan_ < begin_) scan_ = begin_;
    const char* data = buf_.data();
    const void* found = std::memchr(data + scan_, '\n', end_ - scan_);
    if (!found) {
      scan_ = end_;
      return end_ - begin_ > limit + 2 ? Next::too_long : Next::none;  // + CRLF
    }
    const std::size_t after = static_cast<std::size_t>(static_cast<const char*>(found) - data) + 1;
    line = std::string_view(data + begin_, after - begin_);
    begin_ = scan_ = after;
    if (!skipping_) return Next::line;
    skipping_ = false;  // that was the end of an over-long line
  }
}

void LineBuffer::skip_line() {
  skipping_ = true;
  begin_ = scan_ = end_ = 0;
}

void LineBuffer::clear() {
  skipping_ = false;
  begin_ = scan_ = end_ = 0;
}

// ---- ServerDialogue -------------------------------------------------------------------

ServerDialogue::ServerDialogue(ServerHooks& hooks, DialogueOptions options)
    : hooks_(hooks), options_(std::move(options)) {}

void ServerDialogue::start() { greeting_refused_ = !hooks_.greeting(*this); }

void ServerDialogue::reply(std::string_view line) {
  out_ += line;
  out_ += "\r\n";
}

void ServerDialogue::error(std::string_view line) {
  if (options_.max_errors > 0 && ++errors_ >= options_.max_errors) {
    reply("421 4.7.0 Error: too many errors");
    close();
    return;
  }
  reply(line);
}

bool ServerDialogue::handle_next(LineBuffer& in) {
  if (closing_ || starttls_) return false;
  std::string_view line;
  switch (in.next(line, in_data_ ? options_.max_data_line : options_.max_command_line)) {
    case LineBuffer::Next::none:
      return false;
    case LineBuffer::Next::too_long:
      if (in_data_) {  // read on to the end of the message, then refuse it
        line_too_long_ = true;
        in.skip_line();
      } else {
        reply("500 5.5.2 Error: line too long");
        close();
      }
      return false;
    case LineBuffer::Next::line:
      break;
  }
  if (in_data_)
    content(line);
  else
    command(without_line_end(line));
  return true;
}

void ServerDialogue::command(std::string_view line) {
  const auto [verb, args] = split_command(line);
  if (iequals(verb, "QUIT")) {
    reply("221 2.0.0 Bye");
    close();
  } else if (greeting_refused_) {
    reply("503 5.5.1 Error: connection refused, send QUIT");
  } else if (iequals(verb, "EHLO") || iequals(verb, "HELO")) {
    hello(args, iequals(verb, "EHLO"));
  } else if (iequals(verb, "MAIL")) {
    mail(args);
  } else if (iequals(verb, "RCPT")) {
    rcpt(args);
  } else if (iequals(verb, "DATA")) {
    data(args);
  } else if (iequals(verb, "RSET")) {
    reset_transaction();
    reply("250 2.0.0 Ok");
  } else if (iequals(verb, "NOOP")) {
    reply("250 2.0.0 Ok");
  } else if (iequals(verb, "VRFY")) {
    reply("252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
  } else if (iequals(verb, "STARTTLS")) {
    hooks_.starttls(args, *this);
  } else if (iequals(verb, "HELP") && !options_.help.empty()) {
    reply(options_.help);
  } else if (line.empty()) {
    error("500 5.5.2 Error: bad syntax");
  } else if (std::any_of(options_.unimplemented.begin(), options_.unimplemented.end(),
                         [&](const std::string& v) { return iequals(verb, v); })) {
    error("502 5.5.1 Error: command not implemented");
  } else {
    error("500 5.5.1 Error: command not recognized");
  }
}

void ServerDialogue::hello(std::string_view args, bool extended) {
  if (args.empty()) return error(extended ? "501 5.5.4 Syntax: EHLO hostname" : "501 5.5.4 Syntax: HELO hostname");
  helo_.assign(args.substr(0, args.find(' ')));
  reset_transaction();
  greeted_ = hooks_.hello(extended, *this);
}

void ServerDialogue::mail(std::string_view args) {
  if (!greeted_) return error("503 5.5.1 Error: send HELO/EHLO first");
  if (has_mail_) return error("503 5.5.1 Error: nested MAIL command");
  if (!hooks_.transaction_allowed(*this)) return;
  const auto path = parse_path(args, "FROM:");
  if (!path) return error("501 5.5.4 Syntax: MAIL FROM:<address>");
  if (options_.max_message_bytes != 0 && size_parameter(path->params) > options_.max_message_bytes) {
    hooks_.oversized();
    return reply("552 5.3.4 Error: message size exceeds fixed limit");
  }
  sender_.assign(path->address);
  has_mail_ = hooks_.mail(*path, *this);
}

void ServerDialogue::rcpt(std::string_view args) {
  if (!has_mail_) return error("503 5.5.1 Error: need MAIL command");
  const auto path = parse_path(args, "TO:");
  if (!path || path->address.empty()) return error("501 5.5.4 Syntax: RCPT TO:<address>");
  if (rcpt_count_ >= options_.max_recipients) {
    hooks_.too_many_recipients();
    return reply("452 4.5.3 Error: too many recipients");
  }
  if (!hooks_.rcpt(path->address, *this)) return;
  if (rcpt_count_ < rcpts_.size())
    rcpts_[rcpt_count_].assign(path->address);
  else
    rcpts_.emplace_back(path->address);
  ++rcpt_count_;
}

void ServerDialogue::data(std::string_view args) {
  if (!has_mail_) return error("503 5.5.1 Error: need MAIL command");
  if (rcpt_count_ == 0) return error("554 5.5.1 No valid recipients");
  if (!args.empty()) return error("501 5.5.4 Syntax: DATA");
  if (!hooks_.data(*this) || closing_) return;
  in_data_ = true;
  first_line_ = true;
  message_.clear();
  message_size_ = 0;
  too_big_ = false;
  line_too_long_ = false;
}

void ServerDialogue::content(std::string_view line) {
  if (first_line_) {
    first_line_ = false;
    hooks_.content_begins(*this);
    if (!in_data_) return;
  }
  const auto text = unstuff(line);
  if (!text) return end_of_data();
  const std::string_view body = options_.crlf_line_ends ? without_line_end(*text) : *text;
  message_size_ += body.size() + (options_.crlf_line_ends ? 2 : 0);
  if (options_.max_message_bytes != 0 && message_size_ > options_.max_message_bytes) too_big_ = true;
  if (!options_.keep_message || too_big_ || line_too_long_) return;
  message_.append(body);
  if (options_.crlf_line_ends) message_ += "\r\n";
}

void ServerDialogue::end_of_data() {
  in_data_ = false;
  if (line_too_long_) {
    reply("500 5.5.2 Error: line too long");
  } else if (too_big_) {
    hooks_.oversized();
    reply("552 5.3.4 Error: message size exceeds fixed limit");
  } else {
    hooks_.message(*this);
  }
  reset_transaction();
}

void ServerDialogue::abandon_message() {
  in_data_ = false;
  reset_transaction();
}

void ServerDialogue::tls_started() {
  starttls_ = false;
  greeted_ = false;
  helo_.clear();
  reset_transaction();
}

void ServerDialogue::reset_transaction() {
  has_mail_ = false;
  sender_.clear();
  rcpt_count_ = 0;
  message_.clear();
  message_size_ = 0;
  too_big_ = false;
  line_too_long_ = false;
  if (message_.capacity() > kKeptMessageCapacity) std::string().swap(message_);
}

}  // namespace kurier::smtp
