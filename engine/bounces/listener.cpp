// The bounce listener's SMTP server (contract in bounce_listener.h). Network: one
// io_context thread, one coroutine per connection; the handler runs on a one-thread
// pool. Network errors and timeouts close the connection; a handler failure is
// answered 451 so the sender retries; nothing is thrown after construction.
#include "engine/bounces/listener.h"

#include <atomic>
#include <mutex>
#include <set>

#include "bounce/bounce.h"
#include "common/asio.h"
#include "common/log.h"
#include "common/text.h"
#include "engine/intake/address.h"
#include "engine/delivery/delivery.h"
#include "engine/ops/tcp_acceptor.h"

#include <boost/beast/core.hpp>

namespace kurier::engine {
namespace {

namespace beast = boost::beast;
using tcp = asio::ip::tcp;

// A client that keeps sending commands that fail is not a well-behaved MTA.
constexpr int kMaxErrors = 20;
// Bytes read from the socket at a time.
constexpr std::size_t kReadChunk = 16 * 1024;
// The store-backed domain filter rereads the campaigns' VERP domains on a miss, at
// most this often: a new campaign's domain is accepted within a second, and a flood
// of RCPTs for foreign domains costs one scan per second, not one per RCPT.
constexpr std::chrono::seconds kDomainRefresh{1};

std::string upper(std::string_view text) {
  std::string out(text);
  for (auto& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

// "FROM:<a@b> SIZE=10" with keyword "FROM:" -> path "a@b" and the parameters.
// nullopt if the keyword or the angle brackets are missing.
struct PathArgument {
  std::string path;
  std::string params;
};
std::optional<PathArgument> parse_path(std::string_view args, std::string_view keyword) {
  if (args.size() < keyword.size() || upper(args.substr(0, keyword.size())) != keyword) return std::nullopt;
  args.remove_prefix(keyword.size());
  while (!args.empty() && args.front() == ' ') args.remove_prefix(1);
  if (args.empty() || args.front() != '<') return std::nullopt;
  auto gt = args.find('>');
  if (gt == std::string_view::npos) return std::nullopt;
  PathArgument out{std::string(args.substr(1, gt - 1)), std::string(args.substr(gt + 1))};
  return out;
}

// The SIZE=n parameter of MAIL, 0 if absent or malformed.
std::uint64_t size_param(std::string_view params) {
  auto u = upper(params);
  auto pos = u.find("SIZE=");
  if (pos == std::string::npos) return 0;
  std::uint64_t n = 0;
  for (auto i = pos + 5; i < u.size() && u[i] >= '0' && u[i] <= '9'; ++i) {
    if (n > (std::uint64_t{1} << 50)) break;
    n = n * 10 + static_cast<std::uint64_t>(u[i] - '0');
  }
  return n;
}

}  // namespace

struct BounceListener::Impl {
  Impl(Handler handler_in, DomainFilter filter_in, BounceListenerOptions options_in)
      : handler(std::move(handler_in)), accept_domain(std::move(filter_in)), options(std::move(options_in)) {
    server.bind(options.listen, "bounce listener");
  }

  void start();

  template <typename F>
  void count(F&& f) {
    std::lock_guard lock(stats_mutex);
    f(stats);
  }

  Handler handler;
  DomainFilter accept_domain;
  BounceListenerOptions options;
  std::shared_ptr<spdlog::logger> log = kurier::log::get("bounce");
  std::atomic<bool> started{false};
  mutable std::mutex stats_mutex;
  BounceListenerStats stats;
  // One pool thread: each message is one synced write; applying them one after another
  // lets RocksDB's write group do the rest. Last: stopped and destroyed first.
  TcpAcceptor server{log, "bounce_listener", 1, kMaxConnections};
};

namespace {

// One SMTP connection. Lives in the frame of its coroutine (run_session), so it is
// kept alive by its pending operation and dropped with it when the loop stops.
class Session {
 public:
  Session(BounceListener::Impl& owner, tcp::socket socket) : owner_(owner), stream_(std::move(socket)) {
    error_code ec;
    auto remote = stream_.socket().remote_endpoint(ec);
    peer_ = ec ? "?" : remote.address().to_string();
  }

  asio::awaitable<void> run() {
    if (!co_await reply("220 " + owner_.options.hostname + " ESMTP kurier bounce listener")) co_return;
    std::string line;
    for (;;) {
      auto status = co_await read_line(line, BounceListener::kMaxCommandLine);
      if (status == Read::too_long) {
        co_await reply("500 5.5.6 Error: line too long");
        co_return;
      }
      if (status != Read::ok) co_return;
      auto space = line.find(' ');
      const std::string verb = upper(std::string_view(line).substr(0, space));
      const std::string_view args =
          space == std::string::npos ? std::string_view{} : std::string_view(line).substr(space + 1);
      bool keep_going = true;
      if (verb == "EHLO" || verb == "HELO") {
        keep_going = co_await hello(verb == "EHLO", args);
      } else if (verb == "MAIL") {
        keep_going = co_await mail(args);
      } else if (verb == "RCPT") {
        keep_going = co_await rcpt(args);
      } else if (verb == "DATA") {
        keep_going = co_await data();
      } else if (verb == "RSET") {
        reset();
        keep_going = co_await reply("250 2.0.0 Ok");
      } else if (verb == "NOOP") {
        keep_going = co_await reply("250 2.0.0 Ok");
      } else if (verb == "QUIT") {
        co_await reply("221 2.0.0 Bye");
        co_return;
      } else if (verb == "VRFY") {
        keep_going = co_await reply("252 2.0.0 Cannot VRFY user");
      } else if (verb == "AUTH" || verb == "STARTTLS" || verb == "EXPN" || verb == "ETRN" || verb == "BDAT") {
        keep_going = co_await error("502 5.5.1 Error: command not implemented");
      } else {
        keep_going = co_await error("500 5.5.2 Error: command not recognized");
      }
      if (!keep_going) co_return;
    }
  }

 private:
  enum class Read { ok, too_long, closed };

  // One line without its line end (CRLF or a bare LF).
  asio::awaitable<Read> read_line(std::string& line, std::size_t limit) {
    for (;;) {
      auto nl = buffer_.find('\n', scanned_);
      if (nl != std::string::npos) {
        auto end = nl > pos_ && buffer_[nl - 1] == '\r' ? nl - 1 : nl;
        line.assign(buffer_, pos_, end - pos_);
        pos_ = scanned_ = nl + 1;
        if (pos_ == buffer_.size()) {
          buffer_.clear();
          pos_ = scanned_ = 0;
        }
        co_return Read::ok;
      }
      if (buffer_.size() - pos_ > limit) co_return Read::too_long;
      if (pos_ > 0) {  // keep the buffer small: drop what was consumed
        buffer_.erase(0, pos_);
        pos_ = 0;
      }
      scanned_ = buffer_.size();
      char chunk[kReadChunk];
      error_code ec;
      stream_.expires_after(owner_.options.command_timeout);
      auto n = co_await stream_.async_read_some(asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return Read::closed;  // EOF, reset, timeout
      buffer_.append(chunk, n);
    }
  }

  asio::awaitable<bool> reply(std::string text) {
    text += "\r\n";
    error_code ec;
    stream_.expires_after(owner_.options.command_timeout);
    co_await asio::async_write(stream_, asio::buffer(text), asio::redirect_error(asio::use_awaitable, ec));
    co_return !ec;
  }

  asio::awaitable<bool> error(std::string text) {
    if (++errors_ >= kMaxErrors) {
      co_await reply("421 4.7.0 Error: too many errors");
      co_return false;
    }
    co_return co_await reply(std::move(text));
  }

  void reset() {
    mail_from_.reset();
    recipients_.clear();
  }

  asio::awaitable<bool> hello(bool extended, std::string_view args) {
    if (args.empty()) co_return co_await error(std::string("501 5.5.4 Syntax: ") + (extended ? "EHLO" : "HELO") + " hostname");
    reset();
    helo_ = true;
    const auto& host = owner_.options.hostname;
    if (!extended) co_return co_await reply("250 " + host);
    co_return co_await reply("250-" + host + "\r\n250-PIPELINING\r\n250-SIZE " +
                             std::to_string(owner_.options.max_message_bytes) +
                             "\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES");
  }

  asio::awaitable<bool> mail(std::string_view args) {
    if (!helo_) co_return co_await error("503 5.5.1 Error: send HELO/EHLO first");
    if (mail_from_) co_return co_await error("503 5.5.1 Error: nested MAIL command");
    auto path = parse_path(args, "FROM:");
    if (!path) co_return co_await error("501 5.5.4 Syntax: MAIL FROM:<address>");
    if (size_param(path->params) > owner_.options.max_message_bytes) {
      owner_.count([](BounceListenerStats& s) { ++s.oversized; });
      co_return co_await reply("552 5.3.4 Message size exceeds fixed limit");
    }
    mail_from_ = path->path;
    co_return co_await reply("250 2.1.0 Ok");
  }

  asio::awaitable<bool> rcpt(std::string_view args) {
    if (!mail_from_) co_return co_await error("503 5.5.1 Error: need MAIL command");
    auto path = parse_path(args, "TO:");
    if (!path || path->path.empty()) co_return co_await error("501 5.5.4 Syntax: RCPT TO:<address>");
    if (recipients_.size() >= BounceListener::kMaxRecipients)
      co_return co_await reply("452 4.5.3 Error: too many recipients");
    std::string domain = domain_of(path->path);
    while (!domain.empty() && domain.back() == '.') domain.pop_back();
    // RFC 5321 4.5.1: "postmaster" without a domain must be accepted.
    const bool bare_postmaster = text::iequals(path->path, "postmaster");
    bool accepted = bare_postmaster;
    bool check_failed = false;
    if (!accepted && !domain.empty() && owner_.accept_domain) {
      try {
        accepted = owner_.accept_domain(domain);
      } catch (const std::exception& e) {  // the store failed: the sender should retry
        owner_.log->error("event=bounce_domain_check_failed peer={} error=\"{}\"", peer_, e.what());
        check_failed = true;
      }
    }
    if (check_failed) co_return co_await reply("451 4.3.0 Error: temporary failure, try again later");
    if (!accepted) {
      owner_.count([](BounceListenerStats& s) { ++s.rejected_recipients; });
      co_return co_await error("550 5.7.1 <" + path->path + ">: relaying denied");
    }
    recipients_.push_back(path->path);
    co_return co_await reply("250 2.1.5 Ok");
  }

  asio::awaitable<bool> data() {
    if (!mail_from_) co_return co_await error("503 5.5.1 Error: need MAIL command");
    if (recipients_.empty()) co_return co_await error("554 5.5.1 Error: no valid recipients");
    if (!co_await reply("354 End data with <CR><LF>.<CR><LF>")) co_return false;

    // As a delivery agent does: the envelope goes in front of the message.
    std::string message = "Return-Path: <" + *mail_from_ + ">\r\n";
    for (const auto& r : recipients_) message += "Delivered-To: " + r + "\r\n";
    const std::size_t envelope_bytes = message.size();
    bool oversized = false;
    std::string line;
    for (;;) {
      auto status = co_await read_line(line, BounceListener::kMaxDataLine);
      if (status == Read::too_long) {
        co_await reply("500 5.5.6 Error: line too long");
        co_return false;
      }
      if (status != Read::ok) co_return false;  // the transaction is abandoned
      if (line == ".") break;
      if (oversized) continue;  // read to the end, then say why
      std::string_view text = line;
      if (!text.empty() && text.front() == '.') text.remove_prefix(1);  // dot un-stuffing
      if (message.size() - envelope_bytes + text.size() + 2 > owner_.options.max_message_bytes) {
        oversized = true;
        message.clear();
        message.shrink_to_fit();
        continue;
      }
      message.append(text);
      message += "\r\n";
    }
    reset();
    if (oversized) {
      owner_.count([](BounceListenerStats& s) { ++s.oversized; });
      co_return co_await reply("552 5.3.4 Error: message too big");
    }
    auto failure = co_await apply(std::move(message));
    if (failure.empty()) {
      owner_.count([](BounceListenerStats& s) { ++s.messages; });
      co_return co_await reply("250 2.0.0 Ok: applied");
    }
    owner_.count([](BounceListenerStats& s) { ++s.failed; });
    owner_.log->error("event=bounce_apply_failed peer={} error=\"{}\"", peer_, failure);
    co_return co_await reply("451 4.3.0 Error: temporary failure, try again later");
  }

  // Runs the handler on the pool; resumes here with "" on success or the error text.
  asio::awaitable<std::string> apply(std::string message) {
    auto& owner = owner_;
    return run_on(owner.server.pool(), [&owner, message = std::move(message)] {
      std::string failure;
      try {
        if (!owner.handler) throw std::runtime_error("no handler");
        owner.handler(message);
      } catch (const std::exception& e) {
        failure = e.what();
        if (failure.empty()) failure = "unknown error";
      }
      return failure;
    });
  }

  BounceListener::Impl& owner_;
  beast::tcp_stream stream_;
  std::string peer_;
  std::string buffer_;
  std::size_t pos_ = 0;      // start of unread data in buffer_
  std::size_t scanned_ = 0;  // buffer_ holds no '\n' in [pos_, scanned_)
  bool helo_ = false;
  std::optional<std::string> mail_from_;
  std::vector<std::string> recipients_;
  int errors_ = 0;
};

asio::awaitable<void> run_session(BounceListener::Impl* owner, tcp::socket socket) {
  Session session(*owner, std::move(socket));
  co_await session.run();
}

}  // namespace

void BounceListener::Impl::start() {
  if (started.exchange(true)) return;
  server.start(
      [this](tcp::socket socket) {
        count([](BounceListenerStats& s) { ++s.connections; });
        return run_session(this, std::move(socket));
      },
      "session");
}

BounceListener::BounceListener(Handler handler, DomainFilter accept_domain, BounceListenerOptions options)
    : impl_(std::make_unique<Impl>(std::move(handler), std::move(accept_domain), std::move(options))) {}

namespace {

BounceListenerOptions options_from(const Config& config, std::string listen) {
  BounceListenerOptions options;
  options.listen = listen.empty() ? config.bounce_listen : std::move(listen);
  if (!config.helo.empty()) options.hostname = config.helo;
  return options;
}

// Accepts the configured domains, or else the VERP domains of the queued campaigns.
class CampaignDomains {
 public:
  CampaignDomains(queue::Store& store, std::vector<std::string> fixed)
      : store_(store), fixed_(fixed.begin(), fixed.end()) {}

  bool accepts(std::string_view domain) {
    const std::string d(domain);
    if (!fixed_.empty()) return fixed_.contains(d);
    std::lock_guard lock(mutex_);
    if (known_.contains(d)) return true;
    const auto now = std::chrono::steady_clock::now();
    if (refreshed_ && now - *refreshed_ < kDomainRefresh) return false;
    refreshed_ = now;
    known_.clear();
    for (const auto& c : store_.campaigns()) known_.insert(text::lower_ascii(c.verp_domain));
    return known_.contains(d);
  }

 private:
  queue::Store& store_;
  const std::set<std::string> fixed_;
  std::mutex mutex_;
  std::set<std::string> known_;
  std::optional<std::chrono::steady_clock::time_point> refreshed_;
};

}  // namespace

BounceListener::BounceListener(queue::Store& store, const Config& config, std::string listen)
    : BounceListener(Handler{}, DomainFilter{}, options_from(config, std::move(listen))) {
  auto applier = std::make_shared<BounceApplier>(store, config);
  Impl* impl = impl_.get();
  // [bounce] rules (an ops file before the built-in rules) classify what arrives here too.
  std::shared_ptr<const bounce::Rules> rules = config.bounce_rules;
  impl_->handler = [impl, applier, rules](std::string_view raw) {
    auto message = rules ? bounce::parse(raw, *rules) : bounce::parse(raw);
    auto result = applier->apply(message, system_now_ms());
    impl->count([&](BounceListenerStats& s) { s.applied.add(message, result); });
    impl->log->debug("event=bounce_received kind={} matched={} suppressed={}", bounce::to_string(message.kind),
                     result.matched, result.suppressed);
  };
  auto domains = std::make_shared<CampaignDomains>(store, config.bounce_domains);
  impl_->accept_domain = [domains](std::string_view domain) { return domains->accepts(domain); };
}

BounceListener::~BounceListener() {
  if (impl_) impl_->server.stop();
}

void BounceListener::start() { impl_->start(); }
void BounceListener::stop() { impl_->server.stop(); }
std::uint16_t BounceListener::port() const { return impl_->server.port(); }

BounceListenerStats BounceListener::stats() const {
  std::lock_guard lock(impl_->stats_mutex);
  return impl_->stats;
}

}  // namespace kurier::engine
