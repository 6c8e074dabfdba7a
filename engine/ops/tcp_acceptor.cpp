// The TCP servers' shared plumbing (contract in tcp_acceptor.h). Accept errors are
// skipped, connections beyond the bound closed on accept; nothing is thrown after bind().
#include "engine/ops/tcp_acceptor.h"

#include <stdexcept>

#include "engine/ops/http_server.h"

namespace kurier::engine {

using tcp = asio::ip::tcp;

TcpAcceptor::TcpAcceptor(std::shared_ptr<spdlog::logger> log, std::string event_prefix, std::size_t pool_threads,
                         std::size_t max_connections)
    : log_(std::move(log)),
      event_prefix_(std::move(event_prefix)),
      max_connections_(max_connections),
      pool_(pool_threads) {}

TcpAcceptor::~TcpAcceptor() { stop(); }

void TcpAcceptor::bind(const std::string& listen, const std::string& what) {
  auto hp = parse_host_port(listen);
  if (!hp) throw std::runtime_error(what + ": not a host:port address: \"" + listen + "\"");
  error_code ec;
  tcp::resolver resolver(io_);
  auto endpoints = resolver.resolve(hp->host, std::to_string(hp->port), ec);
  if (ec || endpoints.empty()) throw std::runtime_error(what + ": cannot resolve " + listen + ": " + ec.message());
  tcp::endpoint endpoint = endpoints.begin()->endpoint();
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error(what + ": cannot listen on " + listen + ": " + ec.message());
  port_ = acceptor_.local_endpoint().port();
}

void TcpAcceptor::start(OnConnection on_connection, const char* connection_what) {
  asio::co_spawn(io_, accept_loop(this, std::move(on_connection), connection_what),
                 [this](std::exception_ptr error) { log_crash(error, "accept"); });
  thread_ = std::thread([this] { io_.run(); });
}

void TcpAcceptor::stop() {
  if (stopping_.exchange(true)) return;
  asio::post(io_, [this] {
    error_code ignored;
    acceptor_.close(ignored);
  });
  pool_.join();  // the work in progress finishes and posts its result
  io_.stop();    // open connections are dropped with their coroutine frames
  if (thread_.joinable()) thread_.join();
}

void TcpAcceptor::log_crash(std::exception_ptr error, const char* what) const {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    log_->error("event={}_{}_crashed error=\"{}\"", event_prefix_, what, e.what());
  }
}

asio::awaitable<void> TcpAcceptor::accept_loop(TcpAcceptor* self, OnConnection on_connection,
                                               const char* connection_what) {
  for (;;) {
    error_code ec;
    tcp::socket socket = co_await self->acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !self->acceptor_.is_open()) co_return;
    if (ec) continue;                                                  // e.g. EMFILE: try the next one
    if (self->connections_.load() >= self->max_connections_) continue;  // the socket closes here
    ++self->connections_;
    asio::co_spawn(self->io_, counted(self, on_connection(std::move(socket))),
                   [self, connection_what](std::exception_ptr error) { self->log_crash(error, connection_what); });
  }
}

asio::awaitable<void> TcpAcceptor::counted(TcpAcceptor* self, asio::awaitable<void> connection) {
  struct Count {
    TcpAcceptor* owner;
    ~Count() { --owner->connections_; }
  } count{self};
  co_await std::move(connection);
}

}  // namespace kurier::engine
