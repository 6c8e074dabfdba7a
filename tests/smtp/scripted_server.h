// A scripted SMTP server for client tests: listens on 127.0.0.1:<ephemeral>, runs a
// test-supplied script for each accepted connection on its own thread (blocking
// sockets, OpenSSL for STARTTLS). For tests only.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kurier::test {

// Thrown inside a script when the client closed the connection.
struct PeerClosed {};

// One accepted connection, used by the script on the server thread.
class ServerConn {
 public:
  explicit ServerConn(int fd) : fd_(fd) {}
  ~ServerConn();
  ServerConn(const ServerConn&) = delete;
  ServerConn& operator=(const ServerConn&) = delete;

  void send(std::string_view raw);
  void reply(std::string_view line) { send(std::string(line) + "\r\n"); }
  // The next line without its CRLF; throws PeerClosed at EOF.
  std::string read_line();
  // The message content after a 354 exactly as sent (still dot-stuffed), including the
  // CRLF that ends its last line but not the ".\r\n" terminator. Throws PeerClosed at EOF.
  std::string read_data();
  // Whatever one read returns (at least one byte); throws PeerClosed at EOF.
  std::string read_chunk();
  // Reads until the client closes (returns everything read).
  std::string read_until_eof();
  // Server side of STARTTLS (after the script replied 220).
  void starttls();
  bool tls() const { return ssl_ != nullptr; }
  // Raw chunks as returned by each recv/SSL_read, to check what arrived together.
  const std::vector<std::string>& reads() const { return reads_; }
  void close();

 private:
  bool fill();  // one more read into in_; false at EOF
  int fd_;
  void* ssl_ = nullptr;  // SSL*
  std::string in_;
  std::vector<std::string> reads_;
};

class ScriptedServer {
 public:
  using Script = std::function<void(ServerConn&)>;
  // Accepts up to `connections` connections one after another, running `script` on each.
  explicit ScriptedServer(Script script, int connections = 1);
  ~ScriptedServer();
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;

  std::uint16_t port() const { return port_; }
  // Waits until every script has finished (or `timeout`, then their sockets are shut
  // down and the thread joined). Returns false on timeout.
  bool wait(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Errors thrown by scripts (other than PeerClosed), for the test to assert empty.
  std::vector<std::string> errors();
  int accepted() const { return accepted_.load(); }

 private:
  void loop(Script script, int connections);
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> current_fd_{-1};
  std::vector<std::string> errors_;
};

// A self-signed certificate and key (EC P-256, CN=localhost) made once per test process,
// used by ServerConn::starttls().
void ensure_test_certificate();

}  // namespace kurier::test
