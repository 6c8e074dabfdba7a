// The ops HTTP server (/metrics, /api/..., the dashboard) and the small blocking
// client the CLI uses to talk to a running daemon (submit, status, top).
//
// Contract: HttpServer binds in its constructor (throws std::runtime_error naming the
// address when it cannot) and serves HTTP/1.1 with keep-alive on its own io_context
// thread until stop() or destruction. The handler runs on a small pool of its own
// (kHandlerThreads; it may block on the queue), never on the network loop, so it must
// be thread-safe; one request at a time per connection. Requests are bounded (kMaxRequestBody; header limits of Beast) and
// every read and write has a deadline. No TLS: bind to loopback, or put a TLS proxy
// in front (`kurier serve` refuses a non-loopback address without a token).
//
// Threading: construct, stop() and destroy on one thread; port() from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kurier::engine {

struct HttpRequest {
  std::string method;         // "GET", "POST", ...
  std::string path;           // target without the query, e.g. "/api/status"
  std::string query;          // after '?', undecoded ("" if none)
  std::string authorization;  // the Authorization header as sent ("" if none)
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// "127.0.0.1:8025", "[::1]:8025", "localhost:8025" -> host and port. nullopt if malformed.
struct HostPort {
  std::string host;
  std::uint16_t port = 0;
};
std::optional<HostPort> parse_host_port(std::string_view text);
// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback_host(std::string_view host);

class HttpServer {
 public:
  // Largest request body accepted (413 beyond): API requests are small JSON documents.
  static constexpr std::size_t kMaxRequestBody = 1 << 20;
  // Connections served at once; more are closed on accept. Ops traffic is a handful
  // of scrapers and browsers; the bound keeps a misbehaving client from exhausting fds.
  static constexpr std::size_t kMaxConnections = 64;
  // Handler threads: two, so a long request (a campaign's intake) never holds up a
  // Prometheus scrape or the dashboard.
  static constexpr std::size_t kHandlerThreads = 2;

  // Binds `listen` (host:port; port 0 picks a free port). Throws std::runtime_error.
  HttpServer(const std::string& listen, HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  std::uint16_t port() const;
  // Stops accepting, lets the handler in progress finish, closes connections. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One blocking HTTP/1.1 request to `address` (host:port), connection closed after.
// `bearer` is sent as "Authorization: Bearer ..." when not empty. Throws
// std::runtime_error when the server cannot be reached or does not answer in time;
// any HTTP status is returned, not thrown.
HttpResponse http_call(const std::string& address, const std::string& method, const std::string& target,
                       const std::string& body = {}, const std::string& bearer = {},
                       std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace kurier::engine
