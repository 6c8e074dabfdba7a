// HTTP/1.1 with Boost.Beast: the server (its own io_context thread; one coroutine per
// connection; handlers on a small pool so a slow handler never blocks the loop)
// and the CLI's blocking client. Network errors close the connection; nothing here
// throws after construction except the client, which reports unreachable servers.
#include "engine/ops/http_server.h"

#include "common/asio.h"
#include "common/log.h"
#include "engine/ops/tcp_acceptor.h"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace kurier::engine {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// A client gets this long to send a whole request (also the keep-alive idle time).
constexpr std::chrono::seconds kReadTimeout{30};
// And this long to take our response.
constexpr std::chrono::seconds kWriteTimeout{30};

HttpRequest to_request(const http::request<http::string_body>& req) {
  HttpRequest out;
  out.method = std::string(req.method_string());
  std::string_view target(req.target().data(), req.target().size());
  auto q = target.find('?');
  out.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) out.query = std::string(target.substr(q + 1));
  if (auto it = req.find(http::field::authorization); it != req.end()) out.authorization = std::string(it->value());
  out.body = req.body();
  return out;
}

}  // namespace

std::optional<HostPort> parse_host_port(std::string_view text) {
  HostPort out;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return std::nullopt;
    out.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) return std::nullopt;
    out.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  }
  if (out.host.empty() || port.empty() || port.size() > 5) return std::nullopt;
  unsigned value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 65535) return std::nullopt;
  out.port = static_cast<std::uint16_t>(value);
  return out;
}

bool is_loopback_host(std::string_view host) {
  if (host == "localhost") return true;
  error_code ec;
  auto address = asio::ip::make_address(std::string(host), ec);
  return !ec && address.is_loopback();
}

struct HttpServer::Impl {
  Impl(const std::string& listen, HttpHandler handler_in) : handler(std::move(handler_in)) {
    server.bind(listen, "http");
    server.start([this](tcp::socket socket) { return serve_connection(this, std::move(socket)); }, "connection");
  }

  // Runs the handler on the pool and resumes on the connection's executor.
  asio::awaitable<HttpResponse> call_handler(HttpRequest request) {
    return run_on(server.pool(), [this, request = std::move(request)] {
      HttpResponse response;
      try {
        response = handler(request);
      } catch (const std::exception& e) {
        server.log()->error("event=http_handler_failed path={} error=\"{}\"", request.path, e.what());
        response = {500, "text/plain; charset=utf-8", std::string("internal error: ") + e.what() + "\n"};
      }
      return response;
    });
  }

  static asio::awaitable<void> serve_connection(Impl* self, tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(kMaxRequestBody);
      error_code ec;
      stream.expires_after(kReadTimeout);
      co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
      if (ec == http::error::end_of_stream) break;
      HttpResponse response;
      bool keep_alive = false;
      unsigned version = 11;
      if (ec == http::error::body_limit) {
        response = {413, "text/plain; charset=utf-8", "request body too large\n"};
      } else if (ec) {
        break;  // timeout, reset, malformed request: nothing useful to answer
      } else {
        auto request = parser.release();
        keep_alive = request.keep_alive();
        version = request.version();
        response = co_await self->call_handler(to_request(request));
      }
      http::response<http::string_body> res{static_cast<http::status>(response.status), version};
      res.set(http::field::server, "kurier");
      res.set(http::field::content_type, response.content_type);
      res.set(http::field::cache_control, "no-store");
      res.keep_alive(keep_alive);
      res.body() = std::move(response.body);
      res.prepare_payload();
      stream.expires_after(kWriteTimeout);
      co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
      if (ec || !keep_alive || self->server.stopping()) break;
    }
    error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  HttpHandler handler;
  // Last: stopped and destroyed first, while the handler is still there.
  TcpAcceptor server{kurier::log::get("http"), "http", kHandlerThreads, kMaxConnections};
};

HttpServer::HttpServer(const std::string& listen, HttpHandler handler)
    : impl_(std::make_unique<Impl>(listen, std::move(handler))) {}

HttpServer::~HttpServer() { stop(); }

std::uint16_t HttpServer::port() const { return impl_->server.port(); }

void HttpServer::stop() { impl_->server.stop(); }

namespace {

asio::awaitable<void> do_call(std::string host, std::string port, http::request<http::string_body> request,
                              HttpResponse* out, std::chrono::milliseconds timeout) {
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  auto endpoints = co_await resolver.async_resolve(host, port, asio::use_awaitable);
  beast::tcp_stream stream(executor);
  stream.expires_after(timeout);
  co_await stream.async_connect(endpoints, asio::use_awaitable);
  stream.expires_after(timeout);
  co_await http::async_write(stream, request, asio::use_awaitable);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64u << 20);  // a status document of a very large queue still fits
  stream.expires_after(timeout);
  co_await http::async_read(stream, buffer, parser, asio::use_awaitable);
  auto response = parser.release();
  out->status = static_cast<int>(response.result_int());
  if (auto it = response.find(http::field::content_type); it != response.end())
    out->content_type = std::string(it->value());
  out->body = std::move(response.body());
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

}  // namespace

HttpResponse http_call(const std::string& address, const std::string& method, const std::string& target,
                       const std::string& body, const std::string& bearer, std::chrono::milliseconds timeout) {
  auto hp = parse_host_port(address);
  if (!hp) throw std::runtime_error("not a host:port address: \"" + address + "\"");
  http::request<http::string_body> request{http::string_to_verb(method), target, 11};
  request.set(http::field::host, address);
  request.set(http::field::user_agent, "kurier");
  if (!bearer.empty()) request.set(http::field::authorization, "Bearer " + bearer);
  if (!body.empty()) request.set(http::field::content_type, "application/json");
  request.body() = body;
  request.keep_alive(false);
  request.prepare_payload();

  asio::io_context io{1};
  HttpResponse response;
  std::exception_ptr failure;
  bool finished = false;
  asio::co_spawn(io, do_call(hp->host, std::to_string(hp->port), std::move(request), &response, timeout),
                 [&](std::exception_ptr error) {
                   failure = error;
                   finished = true;
                 });
  io.run();
  if (!finished) throw std::runtime_error("http://" + address + target + ": no answer");
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const boost::system::system_error& e) {
      throw std::runtime_error("http://" + address + target + ": " + e.code().message());
    }
  }
  return response;
}

}  // namespace kurier::engine
