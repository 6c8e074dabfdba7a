// kurier-sink's listeners, workers, stats file and signal-driven shutdown. The
// acceptors, stats timer and signals run on the main thread's control io_context;
// sessions run on the workers. Start-up failures throw; accept errors are logged and
// retried after a short pause.
#include "bench/sink/server.h"

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>

#include <signal.h>

#include "bench/sink/session.h"
#include "bench/sink/stats.h"
#include "bench/sink/store.h"
#include "bench/sink/tls.h"
#include "common/log.h"

namespace kurier::sink {
namespace {

using asio::ip::tcp;

// How often the stats file is refreshed (when something changed).
constexpr auto kStatsInterval = std::chrono::milliseconds(200);
// After SIGTERM, how long sessions get to unwind before the workers are stopped hard;
// the whole shutdown must fit in about a second.
constexpr auto kShutdownGrace = std::chrono::milliseconds(500);
// Pause after a failed accept (EMFILE, ENOBUFS) so the loop does not spin.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(50);
constexpr unsigned kMaxThreads = 256;

const auto& logger() {
  static const auto instance = log::get("sink");
  return instance;
}

struct ListenAddress {
  std::string ip;  // canonical
  tcp::endpoint endpoint;
};

ListenAddress parse_listen(const std::string& text) {
  std::string host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      throw UsageError("--listen " + text + ": expected [IPv6]:PORT");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon)
      throw UsageError("--listen " + text + ": expected ADDR:PORT (IPv6 as [ADDR]:PORT)");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned long number = 0;
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      (number = std::stoul(port)) == 0 || number > 65535)
    throw UsageError("--listen " + text + ": port must be 1..65535");
  error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) throw UsageError("--listen " + text + ": not an IP address");
  return {address.to_string(), tcp::endpoint(address, static_cast<unsigned short>(number))};
}

void log_exception(std::exception_ptr error) {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    logger()->error("task failed error={}", e.what());
  }
}

class Server {
 public:
  explicit Server(ServerOptions options);
  int run();

 private:
  static asio::awaitable<void> accept_loop(Server* server, std::size_t index);
  static asio::awaitable<void> stats_loop(Server* server);
  void write_stats(bool force);
  void shutdown();

  ServerOptions options_;
  std::vector<ListenAddress> addresses_;
  RuleMatcher rules_;
  Stats stats_;
  std::optional<MessageStore> store_;
  std::optional<asio::ssl::context> tls_;
  SinkShared shared_;
  std::vector<ListenInfo> listen_infos_;  // one per --listen; never resized after start
  std::string last_stats_;
  bool stopping_ = false;

  // Declared after the shared state above: sessions (owned by the workers' contexts)
  // are destroyed before what they point to.
  asio::io_context control_{1};
  asio::steady_timer stats_timer_{control_};
  asio::signal_set signals_{control_, SIGINT, SIGTERM};
  std::vector<tcp::acceptor> acceptors_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::size_t next_worker_ = 0;
};

std::vector<ListenAddress> parse_all(const std::vector<std::string>& listen) {
  if (listen.empty()) throw UsageError("at least one --listen ADDR:PORT is required");
  std::vector<ListenAddress> out;
  for (const std::string& text : listen) out.push_back(parse_listen(text));
  return out;
}

std::vector<std::string> ips_of(const std::vector<ListenAddress>& addresses) {
  std::vector<std::string> ips;
  for (const auto& a : addresses) ips.push_back(a.ip);
  return ips;
}

Server::Server(ServerOptions options)
    : options_(std::move(options)),
      addresses_(parse_all(options_.listen)),
      rules_(options_.script),
      stats_(ips_of(addresses_)) {
  if (options_.threads == 0 || options_.threads > kMaxThreads)
    throw UsageError("--threads must be 1.." + std::to_string(kMaxThreads));
  if (!options_.store_dir.empty()) store_.emplace(options_.store_dir, ips_of(addresses_));
  if (options_.tls || options_.script.tls || !options_.tls_cert.empty()) {
    tls_.emplace(asio::ssl::context::tls_server);
    tls_->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                      asio::ssl::context::no_sslv3);
    if (options_.tls_cert.empty()) {
      install_ephemeral_certificate(tls_->native_handle());
    } else {
      tls_->use_certificate_chain_file(options_.tls_cert.string());  // throws with OpenSSL's reason
      tls_->use_private_key_file(options_.tls_key.empty() ? options_.tls_cert.string() : options_.tls_key.string(),
                                 asio::ssl::context::pem);
    }
  }
  shared_ = {&options_.script, &rules_, &stats_, store_ ? &*store_ : nullptr, tls_ ? &*tls_ : nullptr};
  for (const auto& a : addresses_) listen_infos_.push_back({a.ip, stats_.address(a.ip)});
}

int Server::run() {
  for (std::size_t i = 0; i < addresses_.size(); ++i) {
    const tcp::endpoint& endpoint = addresses_[i].endpoint;
    tcp::acceptor& acceptor = acceptors_.emplace_back(control_);
    error_code ec;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec && endpoint.address().is_v6()) acceptor.set_option(asio::ip::v6_only(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("--listen " + options_.listen[i] + ": " + ec.message());
  }
  for (unsigned i = 0; i < options_.threads; ++i) {
    workers_.push_back(std::make_unique<Worker>());
    guards_.push_back(asio::make_work_guard(workers_.back()->context()));
  }
  std::vector<std::thread> threads;
  for (auto& worker : workers_) {
    threads.emplace_back([&context = worker->context()] {
      try {
        context.run();
      } catch (const std::exception& e) {
        logger()->error("worker failed error={}", e.what());
      }
    });
  }
  for (std::size_t i = 0; i < acceptors_.size(); ++i) asio::co_spawn(control_, accept_loop(this, i), log_exception);
  if (!options_.stats_file.empty()) {
    write_stats(true);
    asio::co_spawn(control_, stats_loop(this), log_exception);
  }
  signals_.async_wait([this](error_code ec, int signal) {
    if (ec) return;
    logger()->info("signal={} shutting down", signal);
    shutdown();
  });

  std::fputs("kurier-sink ready\n", stdout);
  std::fflush(stdout);
  logger()->info("ready listen={} threads={} tls={} store={}", options_.listen.size(), options_.threads,
                 tls_.has_value(), options_.store_dir.string());

  control_.run();  // until shutdown(): acceptors closed, stats loop ended

  // Sessions were told to close; give them a moment to unwind, then stop the rest.
  const auto deadline = std::chrono::steady_clock::now() + kShutdownGrace;
  auto all_stopped = [this] {
    for (auto& worker : workers_)
      if (!worker->context().stopped()) return false;
    return true;
  };
  while (!all_stopped() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  for (auto& worker : workers_) worker->context().stop();
  for (auto& thread : threads) thread.join();

  if (!options_.stats_file.empty()) write_stats(true);
  return 0;
}

asio::awaitable<void> Server::accept_loop(Server* server, std::size_t index) {
  tcp::acceptor& acceptor = server->acceptors_[index];
  asio::steady_timer backoff(server->control_);
  for (;;) {
    Worker& worker = *server->workers_[server->next_worker_++ % server->workers_.size()];
    error_code ec;
    auto socket = co_await acceptor.async_accept(worker.context(), asio::redirect_error(asio::use_awaitable, ec));
    if (server->stopping_ || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      logger()->warn("accept listen={} error={}", server->options_.listen[index], ec.message());
      backoff.expires_after(kAcceptBackoff);
      co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    // Replies are small and pipelined clients wait for them: never hold them for Nagle.
    socket.set_option(tcp::no_delay(true), ec);
    start_session(worker, tcp::socket(std::move(socket)), server->listen_infos_[index], server->shared_);
  }
}

asio::awaitable<void> Server::stats_loop(Server* server) {
  for (;;) {
    error_code ec;
    server->stats_timer_.expires_after(kStatsInterval);
    co_await server->stats_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec || server->stopping_) co_return;
    server->write_stats(false);
  }
}

void Server::write_stats(bool force) {
  std::string json = stats_.to_json();
  if (!force && json == last_stats_) return;
  if (!write_file_atomically(options_.stats_file, json)) {
    logger()->warn("cannot write stats file={}", options_.stats_file.string());
    return;
  }
  last_stats_ = std::move(json);
}

void Server::shutdown() {
  if (stopping_) return;
  stopping_ = true;
  error_code ignored;
  for (auto& acceptor : acceptors_) acceptor.close(ignored);
  stats_timer_.cancel();
  for (auto& worker : workers_) worker->close_all();
  for (auto& guard : guards_) guard.reset();
}

}  // namespace

int run_server(ServerOptions options) {
  ::signal(SIGPIPE, SIG_IGN);  // a peer closing mid-write is an error code, not a signal
  Server server(std::move(options));
  return server.run();
}

}  // namespace kurier::sink
