// The plumbing under the daemon's small TCP servers (the ops HTTP server, the bounce
// listener): an io_context on its own thread, the listening socket, a bound on the
// connections served at once, and a thread pool for the work that may block (the
// queue, fsync), so the network loop never does. The servers keep only their protocol.
//
// Includes Asio: for the .cpp files of such servers only, never a widely used header.
//
// Threading: construct, bind(), start(), stop() and destroy on one thread; port() from
// any thread after bind(). Connections run on the io thread; run_on() hops to the pool.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>

#include "common/asio.h"
#include "common/log.h"

namespace kurier::engine {

class TcpAcceptor {
 public:
  // Called on the io thread for each accepted connection (within the bound); the
  // coroutine it returns serves the connection.
  using OnConnection = std::function<asio::awaitable<void>(asio::ip::tcp::socket)>;

  // Crashes are logged to `log` as "event=<event_prefix>_<what>_crashed".
  TcpAcceptor(std::shared_ptr<spdlog::logger> log, std::string event_prefix, std::size_t pool_threads,
              std::size_t max_connections);
  ~TcpAcceptor();  // stop()
  TcpAcceptor(const TcpAcceptor&) = delete;
  TcpAcceptor& operator=(const TcpAcceptor&) = delete;

  // Binds `listen` (host:port; port 0 picks a free port). Throws std::runtime_error
  // starting with "<what>: " and naming the address.
  void bind(const std::string& listen, const std::string& what);
  // Starts accepting on the acceptor's own thread; a crashed connection coroutine is
  // logged as `connection_what`. Once only.
  void start(OnConnection on_connection, const char* connection_what);
  // Stops accepting, lets the pool's work in progress finish, drops open connections. Idempotent.
  void stop();

  std::uint16_t port() const { return port_; }
  bool stopping() const { return stopping_.load(); }
  asio::thread_pool& pool() { return pool_; }
  const std::shared_ptr<spdlog::logger>& log() const { return log_; }
  void log_crash(std::exception_ptr error, const char* what) const;

 private:
  static asio::awaitable<void> accept_loop(TcpAcceptor* self, OnConnection on_connection, const char* connection_what);
  static asio::awaitable<void> counted(TcpAcceptor* self, asio::awaitable<void> connection);

  std::shared_ptr<spdlog::logger> log_;
  std::string event_prefix_;
  std::size_t max_connections_;
  // Before io_: the connection frames that io_ destroys decrement it.
  std::atomic<std::size_t> connections_{0};
  std::atomic<bool> stopping_{false};
  asio::io_context io_{1};
  asio::ip::tcp::acceptor acceptor_{io_};
  asio::thread_pool pool_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

// Runs fn() on `pool` and resumes the awaiting coroutine on its own executor with the
// result. fn must not throw: it reports failures in its result.
template <typename Fn>
asio::awaitable<std::invoke_result_t<Fn&>> run_on(asio::thread_pool& pool, Fn fn) {
  using Result = std::invoke_result_t<Fn&>;
  auto resume_on = co_await asio::this_coro::executor;
  auto initiate = [&pool, resume_on, fn = std::move(fn)](auto completion) mutable {
    asio::post(pool, [resume_on, fn = std::move(fn), completion = std::move(completion)]() mutable {
      Result result = fn();
      auto executor = asio::get_associated_executor(completion, resume_on);
      asio::post(executor, [completion = std::move(completion), result = std::move(result)]() mutable {
        completion(std::move(result));
      });
    });
  };
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(Result)>(std::move(initiate),
                                                                                       asio::use_awaitable);
}

}  // namespace kurier::engine
