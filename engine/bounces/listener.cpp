// The bounce listener's SMTP server (contract in listener.h) on the shared
// smtp::ServerDialogue. Network: one io_context thread, one coroutine per connection;
// the handler runs on a one-thread pool. Network errors and timeouts close the
// connection; a handler failure is answered 451 so the sender retries; nothing is
// thrown after construction.
#include "engine/bounces/listener.h"

#include <atomic>
#include <mutex>
#include <set>

#include "bounce/bounce.h"
#include "common/asio.h"
#include "common/log.h"
#include "common/text.h"
#include "engine/core/clock.h"
#include "engine/intake/address.h"
#include "engine/ops/tcp_acceptor.h"
#include "smtp/server_session.h"

#include <boost/beast/core.hpp>

namespace kurier::engine {
namespace {

namespace beast = boost::beast;
using tcp = asio::ip::tcp;

// A client that keeps sending commands that fail is not a well-behaved MTA.
constexpr int kMaxErrors = 20;
// The store-backed domain filter rereads the campaigns' VERP domains on a miss, at
// most this often: a new campaign's domain is accepted within a second, and a flood
// of RCPTs for foreign domains costs one scan per second, not one per RCPT.
constexpr std::chrono::seconds kDomainRefresh{1};

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

// The listener's answers at each stage of the shared dialogue: any sender, recipients
// of the accepted domains only, and the message handed to the handler (by the session,
// on the pool: the hooks only stage it).
class ListenerHooks final : public smtp::ServerHooks {
 public:
  ListenerHooks(BounceListener::Impl& owner, const std::string& peer) : owner_(owner), peer_(peer) {}

  bool greeting(smtp::ServerDialogue& d) override {
    d.reply("220 " + owner_.options.hostname + " ESMTP kurier bounce listener");
    return true;
  }

  bool hello(bool extended, smtp::ServerDialogue& d) override {
    const auto& host = owner_.options.hostname;
    if (!extended) {
      d.reply("250 " + host);
      return true;
    }
    d.reply("250-" + host + "\r\n250-PIPELINING\r\n250-SIZE " + std::to_string(owner_.options.max_message_bytes) +
            "\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES");
    return true;
  }

  bool mail(const smtp::Path&, smtp::ServerDialogue& d) override {
    d.reply("250 2.1.0 Ok");
    return true;
  }

  bool rcpt(std::string_view address, smtp::ServerDialogue& d) override {
    std::string domain = domain_of(address);
    while (!domain.empty() && domain.back() == '.') domain.pop_back();
    // RFC 5321 4.5.1: "postmaster" without a domain must be accepted.
    bool accepted = text::iequals(address, "postmaster");
    if (!accepted && !domain.empty() && owner_.accept_domain) {
      try {
        accepted = owner_.accept_domain(domain);
      } catch (const std::exception& e) {  // the store failed: the sender should retry
        owner_.log->error("event=bounce_domain_check_failed peer={} error=\"{}\"", peer_, e.what());
        d.reply("451 4.3.0 Error: temporary failure, try again later");
        return false;
      }
    }
    if (!accepted) {
      owner_.count([](BounceListenerStats& s) { ++s.rejected_recipients; });
      d.error("550 5.7.1 <" + std::string(address) + ">: relaying denied");
      return false;
    }
    d.reply("250 2.1.5 Ok");
    return true;
  }

  bool data(smtp::ServerDialogue& d) override {
    d.reply("354 End data with <CR><LF>.<CR><LF>");
    return true;
  }

  // As a delivery agent does: the envelope goes in front of the message.
  void message(smtp::ServerDialogue& d) override {
    staged_ = "Return-Path: <" + std::string(d.sender()) + ">\r\n";
    for (const auto& r : d.recipients()) staged_ += "Delivered-To: " + r + "\r\n";
    staged_.reserve(staged_.size() + d.message().size());
    staged_ += d.message();
    has_staged_ = true;
  }

  void starttls(std::string_view, smtp::ServerDialogue& d) override {
    d.error("502 5.5.1 Error: command not implemented");  // a final destination, not a relay
  }

  void oversized() override {
    owner_.count([](BounceListenerStats& s) { ++s.oversized; });
  }

  // The message received, if one ended since the last call.
  std::optional<std::string> take_message() {
    if (!has_staged_) return std::nullopt;
    has_staged_ = false;
    return std::move(staged_);
  }

 private:
  BounceListener::Impl& owner_;
  const std::string& peer_;
  std::string staged_;
  bool has_staged_ = false;
};

smtp::DialogueOptions listener_dialogue_options(const BounceListenerOptions& options) {
  smtp::DialogueOptions out;
  out.max_command_line = BounceListener::kMaxCommandLine;
  out.max_data_line = BounceListener::kMaxDataLine;
  out.max_message_bytes = options.max_message_bytes;
  out.max_recipients = BounceListener::kMaxRecipients;
  out.max_errors = kMaxErrors;
  out.crlf_line_ends = true;
  out.unimplemented = {"AUTH", "EXPN", "ETRN", "BDAT"};
  return out;
}

// One SMTP connection. Lives in the frame of its coroutine (run_session), so it is
// kept alive by its pending operation and dropped with it when the loop stops.
class Session {
 public:
  Session(BounceListener::Impl& owner, tcp::socket socket)
      : owner_(owner),
        stream_(std::move(socket)),
        peer_(peer_of(stream_.socket())),
        hooks_(owner, peer_),
        dialogue_(hooks_, listener_dialogue_options(owner.options)),
        in_(BounceListener::kMaxDataLine) {}

  asio::awaitable<void> run() {
    dialogue_.start();
    for (;;) {
      while (dialogue_.handle_next(in_)) {
        if (auto message = hooks_.take_message()) co_await answer(std::move(*message));
      }
      if (!co_await flush()) co_return;
      if (dialogue_.closing()) co_return;
      if (!co_await read_more()) co_return;  // EOF, reset, timeout
    }
  }

 private:
  static std::string peer_of(const tcp::socket& socket) {
    error_code ec;
    auto remote = socket.remote_endpoint(ec);
    return ec ? "?" : remote.address().to_string();
  }

  asio::awaitable<bool> read_more() {
    auto space = in_.space();
    error_code ec;
    stream_.expires_after(owner_.options.command_timeout);
    auto n = co_await stream_.async_read_some(asio::buffer(space.data(), space.size()),
                                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return false;
    in_.commit(n);
    co_return true;
  }

  asio::awaitable<bool> flush() {
    std::string& out = dialogue_.output();
    if (out.empty()) co_return true;
    error_code ec;
    stream_.expires_after(owner_.options.command_timeout);
    co_await asio::async_write(stream_, asio::buffer(out), asio::redirect_error(asio::use_awaitable, ec));
    out.clear();
    co_return !ec;
  }

  // Applies the message on the pool and answers: 250 once it is durable, else 451.
  asio::awaitable<void> answer(std::string message) {
    auto failure = co_await apply(std::move(message));
    if (failure.empty()) {
      owner_.count([](BounceListenerStats& s) { ++s.messages; });
      dialogue_.reply("250 2.0.0 Ok: applied");
      co_return;
    }
    owner_.count([](BounceListenerStats& s) { ++s.failed; });
    owner_.log->error("event=bounce_apply_failed peer={} error=\"{}\"", peer_, failure);
    dialogue_.reply("451 4.3.0 Error: temporary failure, try again later");
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
  ListenerHooks hooks_;
  smtp::ServerDialogue dialogue_;
  smtp::LineBuffer in_;
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
  options.listen = listen.empty() ? config.bounce.listen : std::move(listen);
  if (!config.smtp.helo.empty()) options.hostname = config.smtp.helo;
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

BounceListener::BounceListener(queue::Store& store, const Config& config, std::string listen,
                               CampaignEvents* events)
    : BounceListener(Handler{}, DomainFilter{}, options_from(config, std::move(listen))) {
  auto applier = std::make_shared<BounceApplier>(store, config, events);
  Impl* impl = impl_.get();
  // [bounce] rules (an ops file before the built-in rules) classify what arrives here too.
  std::shared_ptr<const bounce::Rules> rules = config.bounce.rules;
  impl_->handler = [impl, applier, rules](std::string_view raw) {
    auto message = rules ? bounce::parse(raw, *rules) : bounce::parse(raw);
    auto result = applier->apply(message, system_now_ms());
    impl->count([&](BounceListenerStats& s) { s.applied.add(message, result); });
    impl->log->debug("event=bounce_received kind={} matched={} suppressed={}", bounce::to_string(message.kind),
                     result.matched, result.suppressed);
  };
  auto domains = std::make_shared<CampaignDomains>(store, config.bounce.domains);
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
