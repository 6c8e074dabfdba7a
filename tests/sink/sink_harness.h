// Test harness for kurier-sink: starts the binary as a child process on loopback and
// talks SMTP to it with a small blocking socket client (deliberately not kurier's
// smtp/ client, which these tests must not depend on). Test thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/common/process.h"

namespace kurier::test {

// A blocking TCP client with a receive timeout; every failure throws std::runtime_error.
class SmtpSocket {
 public:
  SmtpSocket(const std::string& ip, std::uint16_t port,
             std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~SmtpSocket();
  SmtpSocket(const SmtpSocket&) = delete;
  SmtpSocket& operator=(const SmtpSocket&) = delete;

  void send(std::string_view data);
  // One complete reply, all lines with their CRLF ("250-a\r\n250 b\r\n").
  std::string reply();
  // Sends `line` + CRLF and returns the reply.
  std::string command(std::string_view line);
  // True if the server closes the connection (EOF or reset) within the timeout.
  bool closed_by_peer();
  void close();

 private:
  int fd_ = -1;
  std::string buffer_;
};

// The reply code of a reply text (first three digits); -1 if malformed.
int code_of(const std::string& reply);

struct SinkOptions {
  std::string script;                              // TOML text; empty: no --script
  std::vector<std::string> ips = {"127.0.0.1"};    // one --listen per IP, same port
  std::vector<std::string> extra_args;             // e.g. {"--tls"}
  bool store = true;
  bool stats = true;

  SinkOptions& with_script(std::string text) {
    script = std::move(text);
    return *this;
  }
  SinkOptions& with_ips(std::vector<std::string> list) {
    ips = std::move(list);
    return *this;
  }
  SinkOptions& with_args(std::vector<std::string> args) {
    extra_args = std::move(args);
    return *this;
  }
  SinkOptions& without_store() {
    store = false;
    return *this;
  }
  SinkOptions& without_stats() {
    stats = false;
    return *this;
  }
};

// A running kurier-sink; stopped by PID on destruction.
class Sink {
 public:
  explicit Sink(SinkOptions options = {});
  std::uint16_t port() const { return port_; }
  const std::filesystem::path& store_dir() const { return store_dir_; }
  const std::filesystem::path& stats_file() const { return stats_file_; }
  ChildProcess& process() { return process_; }
  std::string log() const;

  // The stats file once `ready(json)` holds (polled up to `timeout`), else the last one read.
  template <typename Predicate>
  nlohmann::json wait_stats(Predicate ready, std::chrono::milliseconds timeout = std::chrono::seconds(5)) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    nlohmann::json json;
    for (;;) {
      json = read_stats();
      if (ready(json) || std::chrono::steady_clock::now() >= deadline) return json;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  nlohmann::json read_stats() const;
  // Stored .eml files under store_dir()/ip, sorted by name.
  std::vector<std::filesystem::path> stored(const std::string& ip = "127.0.0.1") const;

 private:
  TempDir dir_;
  std::uint16_t port_ = 0;
  std::filesystem::path store_dir_, stats_file_, log_file_;
  ChildProcess process_;
};

// Writes `text` to `file` and runs kurier-sink with it as --script on a free loopback
// port, bounded by 10 s: for scripts the sink must reject at start (exit code, stderr).
RunResult run_sink_script(const std::filesystem::path& file, const std::string& text);

// EHLO, MAIL, RCPT... DATA, content, "." on an open connection; returns the final reply.
// Expects 250 for EHLO, MAIL, each RCPT and 354 for DATA (gtest assertions).
std::string send_message(SmtpSocket& smtp, const std::string& sender, const std::vector<std::string>& rcpts,
                         const std::string& dot_stuffed_content);

}  // namespace kurier::test
