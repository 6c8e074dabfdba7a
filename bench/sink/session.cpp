// The kurier-sink SMTP server dialogue: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP,
// QUIT, VRFY, STARTTLS, with the script's rules deciding replies. Runs on its worker
// thread only. Network errors and timeouts end the session quietly (logged at debug);
// protocol errors from the client get SMTP error replies, never exceptions.
#include "bench/sink/session.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "common/text.h"

namespace kurier::sink {
namespace {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// RFC 5321 §4.5.3.2.7: a server should wait at least 5 minutes for the next command.
constexpr auto kIdleTimeout = std::chrono::minutes(5);
// A TLS handshake that has not finished by then is a client that went away.
constexpr auto kHandshakeTimeout = std::chrono::seconds(60);
// Longest line accepted, in commands and in message content (RFC 5321 asks for 1000
// octets; real mail has longer lines and the sink is meant to be lenient).
constexpr std::size_t kMaxLineLength = 64 * 1024;
// Read buffer: starts small (thousands of idle connections), grows up to one maximal
// line plus one read.
constexpr std::size_t kInitialBuffer = 16 * 1024;
constexpr std::size_t kMinReadSpace = 4 * 1024;
constexpr std::size_t kMaxBuffer = kMaxLineLength + 2 + 16 * 1024;
// RFC 5321 §4.5.3.1.8 requires at least 100; beyond this, 452 (the client retries them).
constexpr std::size_t kMaxRecipients = 1000;

// Fault modes (script rules with `fault`): what a hostile or broken peer sends.
// An HTTP server answering on port 25, with a NUL and bytes that are not UTF-8.
constexpr char kGarbageBytes[] = "HTTP/1.1 400 Bad Request\r\nServer: not-smtp\r\n\r\n\0\xff\xfe<html>\r\n";
constexpr std::string_view kGarbageReply{kGarbageBytes, sizeof kGarbageBytes - 1};
// "A 1 MB reply line": far beyond any client's line limit, so the client must cut it.
constexpr std::size_t kLongReplyLineBytes = 1024 * 1024;
// An endless multi-line reply goes out in writes of this many lines until the client leaves.
constexpr std::size_t kEndlessLinesPerWrite = 512;
// What bad_tls sends where the TLS ServerHello should be: not a TLS record.
constexpr std::string_view kNotTls = "this is not a TLS handshake\r\n";

const auto& logger() {
  static const auto instance = log::get("sink");
  return instance;
}

using text::iequals;
using text::istarts_with;

// Spaces and tabs only (SMTP's WSP), unlike text::trim.
std::string_view trim_left(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

std::string_view trim_right(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Parses "FROM:<address> params" (keyword "FROM:") or "TO:<address> params".
// Lenient: spaces after the colon, a missing angle bracket pair, source routes.
bool parse_path(std::string_view args, std::string_view keyword, std::string_view& address,
                std::string_view& params) {
  if (!istarts_with(args, keyword)) return false;
  std::string_view rest = trim_left(args.substr(keyword.size()));
  if (!rest.empty() && rest.front() == '<') {
    auto close = rest.find('>');
    if (close == std::string_view::npos) return false;
    address = rest.substr(1, close - 1);
    params = rest.substr(close + 1);
  } else {
    auto space = rest.find(' ');
    address = rest.substr(0, space);
    params = space == std::string_view::npos ? std::string_view{} : rest.substr(space);
  }
  if (!address.empty() && address.front() == '@') {  // "<@a,@b:user@d>"
    auto colon = address.find(':');
    if (colon == std::string_view::npos) return false;
    address.remove_prefix(colon + 1);
  }
  return true;
}

// The SIZE=n parameter of MAIL FROM, or 0.
std::uint64_t size_parameter(std::string_view params) {
  while (!(params = trim_left(params)).empty()) {
    auto end = params.find(' ');
    std::string_view token = params.substr(0, end);
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

bool positive(int code) { return code >= 200 && code < 300; }

}  // namespace

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Worker& worker, tcp::socket socket, const ListenInfo& listen, const SinkShared& shared)
      : worker_(worker),
        socket_(std::move(socket)),
        listen_(listen),
        shared_(shared),
        script_(*shared.script),
        watchdog_(socket_.get_executor()),
        delay_timer_(socket_.get_executor()) {}

  static asio::awaitable<void> run(std::shared_ptr<Session> self);
  // Closes the connection; pending operations complete with errors. Worker thread.
  void abort();

 private:
  enum class Mode { kCommand, kData };

  asio::awaitable<void> serve();
  asio::awaitable<void> read_more(error_code& ec);
  asio::awaitable<void> flush(error_code& ec);
  asio::awaitable<void> start_tls(error_code& ec);
  // Carries out fault_ once the replies before it are written; the session then ends.
  asio::awaitable<void> run_fault();
  void arm_watchdog();
  void touch(Clock::duration timeout) { deadline_ = Clock::now() + timeout; }

  // Takes the next complete line out of the buffer and handles it; false if there is none.
  bool handle_next_line();
  void handle_command(std::string_view line);
  void handle_data_line(std::string_view line);
  void on_ehlo(std::string_view args, bool extended);
  void on_mail(std::string_view args);
  void on_rcpt(std::string_view args);
  void on_data(std::string_view args);
  void on_starttls(std::string_view args);
  void finish_message();
  void reset_transaction();

  void reply(std::string_view text) { out_ += text; }
  // Renders a rule's reply; a rule with close = true, or any 421, closes the connection.
  // A rule with a fault replaces or follows the reply with the fault (see Fault).
  void reply(const Rule& rule, std::string_view rcpt);
  Substitutions values(std::string_view rcpt) const {
    return {rcpt, sender_, helo_.empty() ? std::string_view(peer_) : std::string_view(helo_)};
  }

  Worker& worker_;
  tcp::socket socket_;
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls_;
  const ListenInfo& listen_;
  const SinkShared& shared_;
  const Script& script_;
  std::list<Session*>::iterator registration_;
  bool registered_ = false;
  std::string peer_;

  // Deadline of the current network operation; the watchdog closes the socket past it.
  asio::steady_timer watchdog_;
  Clock::time_point deadline_ = Clock::now() + kIdleTimeout;
  asio::steady_timer delay_timer_;  // reply_delay_ms
  bool closed_ = false;

  // Input: bytes [begin_, end_) of buf_ are unprocessed; no '\n' in [begin_, scan_).
  std::vector<char> buf_ = std::vector<char>(kInitialBuffer);
  std::size_t begin_ = 0, scan_ = 0, end_ = 0;
  bool skipping_long_line_ = false;  // dropping the rest of an over-long data line
  // Output: replies not yet written, sent in one write per batch of pipelined commands.
  std::string out_;
  bool closing_ = false;   // close after writing out_
  bool starttls_ = false;  // start TLS after writing out_
  Fault fault_ = Fault::kNone;  // run after writing out_, then close
  int fault_code_ = 250;        // reply code for long_line / endless

  // Dialogue state.
  Mode mode_ = Mode::kCommand;
  bool greeting_refused_ = false;  // a connect rule answered non-2xx: only QUIT works
  bool greeted_ = false;
  std::string helo_;
  std::uint32_t messages_ = 0;  // accepted on this connection
  // Transaction state; strings are reused across transactions to avoid allocations.
  bool has_mail_ = false;
  std::string sender_;
  std::vector<std::string> rcpts_;
  std::size_t rcpt_count_ = 0;
  std::vector<std::string_view> rcpt_views_;
  std::string message_;
  std::uint64_t message_size_ = 0;
  bool too_big_ = false;
  bool line_too_long_ = false;
  const Rule* content_fault_ = nullptr;  // a content-stage rule for the message arriving
};

void Session::abort() {
  closed_ = true;
  error_code ignored;
  socket_.close(ignored);
  watchdog_.cancel();
  delay_timer_.cancel();
}

void Session::arm_watchdog() {
  watchdog_.expires_at(deadline_);
  watchdog_.async_wait([self = shared_from_this()](error_code ec) {
    if (ec || self->closed_) return;
    if (Clock::now() >= self->deadline_) {
      logger()->debug("timeout peer={} local={}", self->peer_, self->listen_.ip);
      self->abort();
      return;
    }
    self->arm_watchdog();
  });
}

asio::awaitable<void> Session::run(std::shared_ptr<Session> self) {
  Worker& worker = self->worker_;
  if (worker.closing_) {
    self->abort();
    co_return;
  }
  // Unregisters and counts the close however the coroutine ends (also when its frame
  // is destroyed with the io_context at a forced shutdown).
  struct Cleanup {
    Session& session;
    ~Cleanup() {
      // Counted before the socket closes: a client that saw the close and reconnects
      // must find the connection gone from max_connections.
      session.shared_.stats->connection_closed(*session.listen_.stats);
      session.abort();
      if (session.registered_) session.worker_.sessions_.erase(session.registration_);
    }
  };
  self->registration_ = worker.sessions_.insert(worker.sessions_.end(), self.get());
  self->registered_ = true;
  const std::uint64_t open = self->shared_.stats->connection_opened(*self->listen_.stats);
  Cleanup cleanup{*self};

  error_code ec;
  auto remote = self->socket_.remote_endpoint(ec);
  self->peer_ = ec ? "unknown" : remote.address().to_string();
  logger()->debug("connect peer={} local={} open={}", self->peer_, self->listen_.ip, open);
  self->arm_watchdog();

  const std::uint32_t limit = self->script_.max_connections;
  if (limit != 0 && open > limit) {
    self->shared_.stats->connection_refused();
    self->reply("421 4.7.0 Too many connections\r\n");
    co_await self->flush(ec);
    co_return;
  }
  co_await self->serve();
  logger()->debug("close peer={} local={} messages={}", self->peer_, self->listen_.ip, self->messages_);
}

asio::awaitable<void> Session::serve() {
  error_code ec;
  if (const Rule* rule = shared_.rules->find(Stage::kConnect, listen_.ip, std::string_view{})) {
    reply(*rule, {});
    greeting_refused_ = !positive(rule->reply.code());
  } else {
    script_.greeting.render(out_, values({}));
  }
  const bool delayed = script_.reply_delay.count() > 0;
  bool need_input = false;
  for (;;) {
    // Everything already buffered is handled before writing, so the replies to a
    // pipelined batch go out in one write, in order. With a reply delay, every reply
    // is delayed and written on its own.
    while (!closing_ && !starttls_ && !(delayed && !out_.empty())) {
      if (!handle_next_line()) {
        need_input = true;
        break;
      }
    }
    if (!out_.empty()) {
      co_await flush(ec);
      if (ec) co_return;
    }
    if (fault_ != Fault::kNone && !closed_) {
      co_await run_fault();
      co_return;
    }
    if (closing_ || closed_) co_return;
    if (starttls_) {
      co_await start_tls(ec);
      if (ec) co_return;
      continue;
    }
    if (need_input) {
      co_await read_more(ec);
      if (ec) co_return;
      need_input = false;
    }
  }
}

asio::awaitable<void> Session::read_more(error_code& ec) {
  if (begin_ == end_) begin_ = scan_ = end_ = 0;
  if (buf_.size() - end_ < kMinReadSpace) {
    if (begin_ > 0) {
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      scan_ -= begin_;
      begin_ = 0;
    }
    if (buf_.size() - end_ < kMinReadSpace) buf_.resize(std::min(buf_.size() * 2, kMaxBuffer));
  }
  auto space = asio::buffer(buf_.data() + end_, buf_.size() - end_);
  touch(kIdleTimeout);
  std::size_t n = tls_ ? co_await tls_->async_read_some(space, asio::redirect_error(asio::use_awaitable, ec))
                       : co_await socket_.async_read_some(space, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    if (ec != asio::error::eof && ec != asio::error::operation_aborted)
      logger()->debug("read peer={} error={}", peer_, ec.message());
    co_return;
  }
  end_ += n;
}

asio::awaitable<void> Session::flush(error_code& ec) {
  if (script_.reply_delay.count() > 0) {
    delay_timer_.expires_after(script_.reply_delay);
    co_await delay_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (closed_) {
      ec = asio::error::operation_aborted;
      co_return;
    }
  }
  touch(kIdleTimeout);
  if (tls_)
    co_await asio::async_write(*tls_, asio::buffer(out_), asio::redirect_error(asio::use_awaitable, ec));
  else
    co_await asio::async_write(socket_, asio::buffer(out_), asio::redirect_error(asio::use_awaitable, ec));
  out_.clear();
  if (ec) logger()->debug("write peer={} error={}", peer_, ec.message());
}

asio::awaitable<void> Session::start_tls(error_code& ec) {
  starttls_ = false;
  // RFC 3207 §5: anything the client pipelined after STARTTLS arrived in plaintext and
  // must not be trusted; it is discarded.
  begin_ = scan_ = end_ = 0;
  tls_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(socket_, *shared_.tls);
  touch(kHandshakeTimeout);
  co_await tls_->async_handshake(asio::ssl::stream_base::server, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    logger()->debug("tls handshake peer={} error={}", peer_, ec.message());
    co_return;
  }
  // RFC 3207 §4.2: forget everything learnt before TLS; the client starts with EHLO.
  greeted_ = false;
  helo_.clear();
  reset_transaction();
}

asio::awaitable<void> Session::run_fault() {
  shared_.stats->fault_injected();
  logger()->debug("fault peer={} local={} fault={}", peer_, listen_.ip, static_cast<int>(fault_));
  error_code ec;
  switch (fault_) {
    case Fault::kReset:
      // SO_LINGER with a zero timeout: close() sends RST instead of FIN.
      socket_.set_option(tcp::socket::linger(true, 0), ec);
      break;
    case Fault::kHang:
      // Never answer; keep reading so the client's writes succeed and only its reply
      // timeout can end this (or the idle timeout, or SIGTERM).
      while (!closed_) {
        begin_ = scan_ = end_ = 0;
        co_await read_more(ec);
        if (ec) break;
      }
      break;
    case Fault::kEndless: {
      const std::string line = std::to_string(fault_code_) + "-this reply never ends\r\n";
      std::string chunk;
      chunk.reserve(line.size() * kEndlessLinesPerWrite);
      for (std::size_t i = 0; i < kEndlessLinesPerWrite; ++i) chunk += line;
      while (!closed_) {
        out_ = chunk;
        co_await flush(ec);
        if (ec) break;
      }
      break;
    }
    case Fault::kBadTls:
      out_.assign(kNotTls);
      co_await flush(ec);
      break;
    case Fault::kDrop:
      // FIN first, so the client reads an orderly end (close() alone sends RST when
      // unread input is pending, which is what `reset` is for).
      socket_.shutdown(tcp::socket::shutdown_send, ec);
      break;
    default:
      break;
  }
}

bool Session::handle_next_line() {
  if (scan_ < begin_) scan_ = begin_;
  const char* data = buf_.data();
  const void* found = std::memchr(data + scan_, '\n', end_ - scan_);
  if (!found) {
    scan_ = end_;
    if (end_ - begin_ > kMaxLineLength + 2) {  // + CRLF
      if (mode_ == Mode::kData) {
        // Keep reading to find the end of the message; the message will be refused.
        line_too_long_ = true;
        skipping_long_line_ = true;
        begin_ = scan_ = end_ = 0;
      } else {
        reply("500 5.5.2 Error: line too long\r\n");
        closing_ = true;
      }
    }
    return false;
  }
  const std::size_t next = static_cast<std::size_t>(static_cast<const char*>(found) - data) + 1;
  std::string_view line(data + begin_, next - begin_);
  begin_ = scan_ = next;
  if (skipping_long_line_) {
    skipping_long_line_ = false;
    return true;
  }
  if (mode_ == Mode::kData) {
    handle_data_line(line);
  } else {
    line.remove_suffix(1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    handle_command(line);
  }
  return true;
}

void Session::handle_data_line(std::string_view line) {
  if (content_fault_) {
    const Rule& rule = *content_fault_;
    content_fault_ = nullptr;
    mode_ = Mode::kCommand;
    reset_transaction();
    reply(rule, {});
    return;
  }
  if (line == ".\r\n" || line == ".\n") {
    finish_message();
    return;
  }
  if (line.front() == '.') line.remove_prefix(1);  // dot-stuffing, RFC 5321 §4.5.2
  message_size_ += line.size();
  if (script_.size_limit != 0 && message_size_ > script_.size_limit) too_big_ = true;
  if (shared_.store && !too_big_ && !line_too_long_) message_.append(line);
}

void Session::handle_command(std::string_view line) {
  auto space = line.find(' ');
  const std::string_view verb = line.substr(0, space);
  const std::string_view args =
      space == std::string_view::npos ? std::string_view{} : trim_right(trim_left(line.substr(space + 1)));

  if (iequals(verb, "QUIT")) {
    reply("221 2.0.0 Bye\r\n");
    closing_ = true;
  } else if (greeting_refused_) {
    reply("503 5.5.1 Error: connection refused, send QUIT\r\n");
  } else if (iequals(verb, "EHLO")) {
    on_ehlo(args, true);
  } else if (iequals(verb, "HELO")) {
    on_ehlo(args, false);
  } else if (iequals(verb, "MAIL")) {
    on_mail(args);
  } else if (iequals(verb, "RCPT")) {
    on_rcpt(args);
  } else if (iequals(verb, "DATA")) {
    on_data(args);
  } else if (iequals(verb, "RSET")) {
    reset_transaction();
    reply("250 2.0.0 Ok\r\n");
  } else if (iequals(verb, "NOOP")) {
    reply("250 2.0.0 Ok\r\n");
  } else if (iequals(verb, "VRFY")) {
    reply("252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery\r\n");
  } else if (iequals(verb, "STARTTLS")) {
    on_starttls(args);
  } else if (iequals(verb, "HELP")) {
    reply("214 2.0.0 kurier-sink: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY STARTTLS\r\n");
  } else if (line.empty()) {
    reply("500 5.5.2 Error: bad syntax\r\n");
  } else {
    reply("500 5.5.1 Error: command not recognized\r\n");
  }
}

void Session::on_ehlo(std::string_view args, bool extended) {
  if (args.empty()) {
    reply(extended ? "501 5.5.4 Syntax: EHLO hostname\r\n" : "501 5.5.4 Syntax: HELO hostname\r\n");
    return;
  }
  helo_.assign(args.substr(0, args.find(' ')));
  reset_transaction();
  if (const Rule* rule = shared_.rules->find(Stage::kEhlo, listen_.ip, std::string_view{})) {
    reply(*rule, {});
    greeted_ = positive(rule->reply.code());
    return;
  }
  greeted_ = true;
  if (!extended) {
    reply("250 kurier-sink\r\n");
    return;
  }
  std::string size = "SIZE";
  if (script_.size_limit != 0) size += ' ' + std::to_string(script_.size_limit);
  const std::string_view lines[] = {
      script_.pipelining ? "PIPELINING" : "",
      size,
      script_.eight_bit_mime ? "8BITMIME" : "",
      script_.smtputf8 ? "SMTPUTF8" : "",
      shared_.tls && !tls_ ? "STARTTLS" : "",
      "ENHANCEDSTATUSCODES",
  };
  out_ += "250-kurier-sink Hello ";
  out_ += helo_;
  for (std::size_t i = 0; i < std::size(lines); ++i) {
    if (lines[i].empty()) continue;
    out_ += i + 1 < std::size(lines) ? "\r\n250-" : "\r\n250 ";
    out_ += lines[i];
  }
  out_ += "\r\n";
}

void Session::on_mail(std::string_view args) {
  if (!greeted_) return reply("503 5.5.1 Error: send HELO/EHLO first\r\n");
  if (has_mail_) return reply("503 5.5.1 Error: nested MAIL command\r\n");
  if (script_.max_messages_per_connection != 0 && messages_ >= script_.max_messages_per_connection) {
    reply("421 4.7.0 Too many messages, closing\r\n");
    closing_ = true;
    return;
  }
  if (!shared_.stats->mail_allowed(*listen_.stats, script_.max_messages_per_second)) {
    reply("421 4.7.0 Rate limit exceeded, too many messages per second, try again later\r\n");
    closing_ = true;
    return;
  }
  std::string_view address, params;
  if (!parse_path(args, "FROM:", address, params)) return reply("501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
  if (script_.size_limit != 0 && size_parameter(params) > script_.size_limit)
    return reply("552 5.3.4 Error: message size exceeds fixed limit\r\n");
  sender_.assign(address);
  if (const Rule* rule = shared_.rules->find(Stage::kMail, listen_.ip, address)) {
    reply(*rule, {});
    has_mail_ = positive(rule->reply.code());
    return;
  }
  has_mail_ = true;
  reply("250 2.1.0 Ok\r\n");
}

void Session::on_rcpt(std::string_view args) {
  if (!has_mail_) return reply("503 5.5.1 Error: need MAIL command\r\n");
  std::string_view address, params;
  if (!parse_path(args, "TO:", address, params) || address.empty())
    return reply("501 5.5.4 Syntax: RCPT TO:<address>\r\n");
  if (rcpt_count_ >= kMaxRecipients) {
    shared_.stats->recipient_reply(452);
    return reply("452 4.5.3 Error: too many recipients\r\n");
  }
  int code = 250;
  if (const Rule* rule = shared_.rules->find(Stage::kRcpt, listen_.ip, address)) {
    code = rule->reply.code();
    reply(*rule, address);
  } else {
    reply("250 2.1.5 Ok\r\n");
  }
  shared_.stats->recipient_reply(code);
  if (!positive(code)) return;
  if (rcpt_count_ < rcpts_.size())
    rcpts_[rcpt_count_].assign(address);
  else
    rcpts_.emplace_back(address);
  ++rcpt_count_;
}

void Session::on_data(std::string_view args) {
  if (!has_mail_) return reply("503 5.5.1 Error: need MAIL command\r\n");
  if (rcpt_count_ == 0) return reply("554 5.5.1 No valid recipients\r\n");
  if (!args.empty()) return reply("501 5.5.4 Syntax: DATA\r\n");
  if (const Rule* rule = shared_.rules->find(Stage::kData, listen_.ip, std::string_view{})) {
    reply(*rule, {});
    if (rule->reply.code() != 354 || closing_) return;
  } else {
    reply("354 End data with <CR><LF>.<CR><LF>\r\n");
  }
  mode_ = Mode::kData;
  content_fault_ = nullptr;
  if (shared_.rules->has_rules(Stage::kContent)) {
    rcpt_views_.assign(rcpts_.begin(), rcpts_.begin() + static_cast<std::ptrdiff_t>(rcpt_count_));
    content_fault_ = shared_.rules->find(Stage::kContent, listen_.ip, rcpt_views_);
  }
  message_.clear();
  message_size_ = 0;
  too_big_ = false;
  line_too_long_ = false;
}

void Session::on_starttls(std::string_view args) {
  if (!shared_.tls) return reply("502 5.5.1 Error: command not implemented\r\n");
  if (tls_) return reply("503 5.5.1 Error: TLS already active\r\n");
  if (!args.empty()) return reply("501 5.5.4 Syntax: STARTTLS\r\n");
  if (const Rule* rule = shared_.rules->find(Stage::kStarttls, listen_.ip, std::string_view{})) {
    reply(*rule, {});
    starttls_ = rule->fault == Fault::kNone && rule->reply.code() == 220 && !closing_;
    return;
  }
  reply("220 2.0.0 Ready to start TLS\r\n");
  starttls_ = true;
}

void Session::finish_message() {
  mode_ = Mode::kCommand;
  if (line_too_long_) {
    reply("500 5.5.2 Error: line too long\r\n");
  } else if (too_big_) {
    reply("552 5.3.4 Error: message size exceeds fixed limit\r\n");
  } else {
    const std::span<const std::string> rcpts(rcpts_.data(), rcpt_count_);
    rcpt_views_.assign(rcpts.begin(), rcpts.end());
    std::string_view matched;
    const Rule* rule = shared_.rules->find(Stage::kMessage, listen_.ip, rcpt_views_, &matched);
    const int code = rule ? rule->reply.code() : 250;
    if (positive(code) && shared_.store && !shared_.store->store(listen_.ip, sender_, rcpts, message_)) {
      logger()->error("store failed dir={} local={} error={}", shared_.store->root().string(), listen_.ip,
                      std::strerror(errno));
      reply("451 4.3.0 Error: cannot store message\r\n");
    } else {
      if (positive(code)) {
        shared_.stats->message_accepted(*listen_.stats);
        ++messages_;
      }
      if (rule)
        reply(*rule, matched);
      else
        reply("250 2.0.0 Ok: queued\r\n");
    }
  }
  reset_transaction();
}

void Session::reset_transaction() {
  has_mail_ = false;
  sender_.clear();
  rcpt_count_ = 0;
  message_.clear();
  message_size_ = 0;
  too_big_ = false;
  line_too_long_ = false;
  // A message of many megabytes should not stay allocated for the whole connection.
  if (message_.capacity() > 4 * kMaxBuffer) std::string().swap(message_);
}

void Session::reply(const Rule& rule, std::string_view rcpt) {
  switch (rule.fault) {
    case Fault::kNone:
      rule.reply.render(out_, values(rcpt));
      if (rule.close || rule.reply.code() == 421) closing_ = true;
      return;
    case Fault::kGarbage:
      shared_.stats->fault_injected();
      out_.append(kGarbageReply);
      if (rule.close) closing_ = true;
      return;
    case Fault::kLongLine:
      shared_.stats->fault_injected();
      out_ += std::to_string(rule.reply.empty() ? 250 : rule.reply.code());
      out_ += ' ';
      out_.append(kLongReplyLineBytes, 'x');
      out_ += "\r\n";
      if (rule.close) closing_ = true;
      return;
    case Fault::kReset:
      if (!rule.reply.empty()) rule.reply.render(out_, values(rcpt));
      break;
    case Fault::kBadTls:
      if (rule.reply.empty())
        out_ += "220 2.0.0 Ready to start TLS\r\n";
      else
        rule.reply.render(out_, values(rcpt));
      break;
    case Fault::kDrop:
    case Fault::kHang:
    case Fault::kEndless:
      break;  // no reply
  }
  // The session stops handling input; serve() writes what is queued, then the fault.
  fault_ = rule.fault;
  fault_code_ = rule.reply.empty() ? 250 : rule.reply.code();
  closing_ = true;
}

void Worker::close_all() {
  asio::post(context_, [this] {
    closing_ = true;
    for (Session* session : sessions_) session->abort();
  });
}

void start_session(Worker& worker, tcp::socket socket, const ListenInfo& listen, const SinkShared& shared) {
  auto session = std::make_shared<Session>(worker, std::move(socket), listen, shared);
  asio::co_spawn(worker.context(), Session::run(std::move(session)), [](std::exception_ptr error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      logger()->error("session failed error={}", e.what());
    }
  });
}

}  // namespace kurier::sink
