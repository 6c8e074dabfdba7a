// kurier-sink test harness: the sink as a child process plus a blocking SMTP socket.
// Test thread only; start-up and socket failures throw std::runtime_error, protocol
// surprises are gtest failures.
#include "tests/sink/sink_harness.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace kurier::test {
namespace fs = std::filesystem;

namespace {
// The sink prints "ready" after binding; allow for a loaded 2-core machine.
constexpr auto kStartTimeout = std::chrono::seconds(10);
}  // namespace

SmtpSocket::SmtpSocket(const std::string& ip, std::uint16_t port, std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(ip.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 || !found)
    throw std::runtime_error("bad ip " + ip);
  fd_ = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    ::freeaddrinfo(found);
    throw std::runtime_error("socket failed");
  }
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const int rc = ::connect(fd_, found->ai_addr, found->ai_addrlen);
  ::freeaddrinfo(found);
  if (rc != 0) {
    const int error = errno;
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error("connect " + ip + " port " + std::to_string(port) + ": " + std::strerror(error));
  }
}

SmtpSocket::~SmtpSocket() { close(); }

void SmtpSocket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void SmtpSocket::send(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(std::string("send: ") + std::strerror(errno));
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::string SmtpSocket::reply() {
  std::string out;
  for (;;) {
    auto nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl + 1);
      buffer_.erase(0, nl + 1);
      out += line;
      if (line.size() < 4 || line[3] != '-') return out;
      continue;
    }
    char chunk[65536];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("reply: connection closed or timed out after \"" + out + buffer_ + "\"");
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

std::string SmtpSocket::command(std::string_view line) {
  send(std::string(line) + "\r\n");
  return reply();
}

bool SmtpSocket::closed_by_peer() {
  if (!buffer_.empty()) return false;
  char c;
  for (;;) {
    ssize_t n = ::recv(fd_, &c, 1, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET;
    buffer_.push_back(c);
    return false;
  }
}

int code_of(const std::string& reply) {
  if (reply.size() < 3 || !std::all_of(reply.begin(), reply.begin() + 3, [](char c) { return c >= '0' && c <= '9'; }))
    return -1;
  return std::stoi(reply.substr(0, 3));
}

Sink::Sink(SinkOptions options) {
  port_ = free_tcp_port();
  store_dir_ = dir_.path() / "store";
  stats_file_ = dir_.path() / "stats.json";
  log_file_ = dir_.path() / "sink.log";
  std::vector<std::string> argv = {binary("kurier-sink").string()};
  for (const std::string& ip : options.ips) {
    argv.push_back("--listen");
    argv.push_back(ip.find(':') != std::string::npos ? "[" + ip + "]:" + std::to_string(port_)
                                                     : ip + ":" + std::to_string(port_));
  }
  if (!options.script.empty()) {
    write_file(dir_.path() / "script.toml", options.script);
    argv.push_back("--script");
    argv.push_back((dir_.path() / "script.toml").string());
  }
  if (options.store) {
    argv.push_back("--store");
    argv.push_back(store_dir_.string());
  }
  if (options.stats) {
    argv.push_back("--stats");
    argv.push_back(stats_file_.string());
  }
  argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
  process_ = ChildProcess(argv, log_file_);
  auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (log().find("kurier-sink ready") == std::string::npos) {
    if (!process_.running()) throw std::runtime_error("kurier-sink exited at start: " + log());
    if (std::chrono::steady_clock::now() >= deadline) throw std::runtime_error("kurier-sink not ready: " + log());
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string Sink::log() const {
  std::ifstream in(log_file_, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

nlohmann::json Sink::read_stats() const {
  std::ifstream in(stats_file_, std::ios::binary);
  if (!in) return nlohmann::json::object();
  std::string text(std::istreambuf_iterator<char>(in), {});
  // Atomic rename: a file that exists is complete, so a parse error is a real failure.
  return nlohmann::json::parse(text);
}

std::vector<fs::path> Sink::stored(const std::string& ip) const {
  std::vector<fs::path> files;
  if (!fs::exists(store_dir_ / ip)) return files;
  for (const auto& entry : fs::directory_iterator(store_dir_ / ip))
    if (entry.path().extension() == ".eml") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

RunResult run_sink_script(const fs::path& file, const std::string& text) {
  write_file(file, text);
  return run({binary("kurier-sink").string(), "--listen", "127.0.0.1:" + std::to_string(free_tcp_port()), "--script",
              file.string()},
             std::chrono::seconds(10));
}

std::string send_message(SmtpSocket& smtp, const std::string& sender, const std::vector<std::string>& rcpts,
                         const std::string& dot_stuffed_content) {
  EXPECT_EQ(code_of(smtp.command("EHLO client.test")), 250);
  EXPECT_EQ(code_of(smtp.command("MAIL FROM:<" + sender + ">")), 250);
  for (const auto& rcpt : rcpts) EXPECT_EQ(code_of(smtp.command("RCPT TO:<" + rcpt + ">")), 250);
  EXPECT_EQ(code_of(smtp.command("DATA")), 354);
  smtp.send(dot_stuffed_content);
  return smtp.command(".");
}

}  // namespace kurier::test
