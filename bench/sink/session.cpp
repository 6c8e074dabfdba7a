// The kurier-sink session: the transport around the shared SMTP dialogue (reads, batched
// and delayed writes, STARTTLS, faults, timeouts). Runs on its worker thread only.
// Network errors and timeouts end the session quietly (logged at debug).
#include "bench/sink/session.h"

#include <chrono>
#include <memory>

#include "common/log.h"

namespace kurier::sink {
namespace {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// RFC 5321 §4.5.3.2.7: a server should wait at least 5 minutes for the next command.
constexpr auto kIdleTimeout = std::chrono::minutes(5);
// A TLS handshake that has not finished by then is a client that went away.
constexpr auto kHandshakeTimeout = std::chrono::seconds(60);
// An endless multi-line reply goes out in writes of this many lines until the client leaves.
constexpr std::size_t kEndlessLinesPerWrite = 512;
// What bad_tls sends where the TLS ServerHello should be: not a TLS record.
constexpr std::string_view kNotTls = "this is not a TLS handshake\r\n";

const auto& logger() {
  static const auto instance = log::get("sink");
  return instance;
}

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
        delay_timer_(socket_.get_executor()),
        hooks_(shared, listen, peer_),
        dialogue_(hooks_, sink_dialogue_options(shared)),
        in_(dialogue_.options().max_data_line) {}

  static asio::awaitable<void> run(std::shared_ptr<Session> self);
  // Closes the connection; pending operations complete with errors. Worker thread.
  void abort();

 private:
  asio::awaitable<void> serve();
  asio::awaitable<void> read_more(error_code& ec);
  asio::awaitable<void> flush(error_code& ec);
  asio::awaitable<void> start_tls(error_code& ec);
  // Carries out the hooks' pending fault once the replies before it are written; the
  // session then ends.
  asio::awaitable<void> run_fault();
  void arm_watchdog();
  void touch(Clock::duration timeout) { deadline_ = Clock::now() + timeout; }

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

  ScriptedHooks hooks_;            // the script's answers
  smtp::ServerDialogue dialogue_;  // replies accumulate in dialogue_.output()
  smtp::LineBuffer in_;
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
    self->dialogue_.reply("421 4.7.0 Too many connections");
    co_await self->flush(ec);
    co_return;
  }
  co_await self->serve();
  logger()->debug("close peer={} local={} messages={}", self->peer_, self->listen_.ip, self->hooks_.messages());
}

asio::awaitable<void> Session::serve() {
  error_code ec;
  dialogue_.start();
  const std::string& out = dialogue_.output();
  const bool delayed = script_.reply_delay.count() > 0;
  for (;;) {
    // Everything already buffered is handled before writing, so the replies to a
    // pipelined batch go out in one write, in order. With a reply delay, every reply
    // is delayed and written on its own.
    bool need_input = false;
    while (!(delayed && !out.empty())) {
      if (!dialogue_.handle_next(in_)) {
        need_input = !dialogue_.closing() && !dialogue_.starting_tls();
        break;
      }
    }
    if (!out.empty()) {
      co_await flush(ec);
      if (ec) co_return;
    }
    if (hooks_.pending_fault() != Fault::kNone && !closed_) {
      co_await run_fault();
      co_return;
    }
    if (dialogue_.closing() || closed_) co_return;
    if (dialogue_.starting_tls()) {
      co_await start_tls(ec);
      if (ec) co_return;
      continue;
    }
    if (need_input) {
      co_await read_more(ec);
      if (ec) co_return;
    }
  }
}

asio::awaitable<void> Session::read_more(error_code& ec) {
  auto space = in_.space();
  auto buffer = asio::buffer(space.data(), space.size());
  touch(kIdleTimeout);
  std::size_t n = tls_ ? co_await tls_->async_read_some(buffer, asio::redirect_error(asio::use_awaitable, ec))
                       : co_await socket_.async_read_some(buffer, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    if (ec != asio::error::eof && ec != asio::error::operation_aborted)
      logger()->debug("read peer={} error={}", peer_, ec.message());
    co_return;
  }
  in_.commit(n);
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
  std::string& out = dialogue_.output();
  if (tls_)
    co_await asio::async_write(*tls_, asio::buffer(out), asio::redirect_error(asio::use_awaitable, ec));
  else
    co_await asio::async_write(socket_, asio::buffer(out), asio::redirect_error(asio::use_awaitable, ec));
  out.clear();
  if (ec) logger()->debug("write peer={} error={}", peer_, ec.message());
}

asio::awaitable<void> Session::start_tls(error_code& ec) {
  // RFC 3207 §5: anything the client pipelined after STARTTLS arrived in plaintext and
  // must not be trusted; it is discarded.
  in_.clear();
  tls_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(socket_, *shared_.tls);
  touch(kHandshakeTimeout);
  co_await tls_->async_handshake(asio::ssl::stream_base::server, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    logger()->debug("tls handshake peer={} error={}", peer_, ec.message());
    co_return;
  }
  hooks_.set_tls_active();
  dialogue_.tls_started();
}

asio::awaitable<void> Session::run_fault() {
  const Fault fault = hooks_.pending_fault();
  shared_.stats->fault_injected();
  logger()->debug("fault peer={} local={} fault={}", peer_, listen_.ip, static_cast<int>(fault));
  error_code ec;
  switch (fault) {
    case Fault::kReset:
      // SO_LINGER with a zero timeout: close() sends RST instead of FIN.
      socket_.set_option(tcp::socket::linger(true, 0), ec);
      break;
    case Fault::kHang:
      // Never answer; keep reading so the client's writes succeed and only its reply
      // timeout can end this (or the idle timeout, or SIGTERM).
      while (!closed_) {
        in_.clear();
        co_await read_more(ec);
        if (ec) break;
      }
      break;
    case Fault::kEndless: {
      const std::string line = std::to_string(hooks_.fault_code()) + "-this reply never ends\r\n";
      std::string chunk;
      chunk.reserve(line.size() * kEndlessLinesPerWrite);
      for (std::size_t i = 0; i < kEndlessLinesPerWrite; ++i) chunk += line;
      while (!closed_) {
        dialogue_.output() = chunk;
        co_await flush(ec);
        if (ec) break;
      }
      break;
    }
    case Fault::kBadTls:
      dialogue_.output().assign(kNotTls);
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
