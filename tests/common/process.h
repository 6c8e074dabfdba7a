// Test helpers: child processes that are always stopped by their PID, temporary
// directories, loopback ports. For tests only; not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <sys/types.h>

namespace kurier::test {

// A child process started with execv (no shell). The destructor stops it:
// SIGTERM, then SIGKILL after a grace period, and reaps it.
class ChildProcess {
 public:
  ChildProcess() = default;
  // Starts argv[0] (a path) with the arguments; stdout and stderr go to `log_file`
  // (appended) when given, else to /dev/null. Throws std::runtime_error on failure.
  explicit ChildProcess(std::vector<std::string> argv, const std::filesystem::path& log_file = {});
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  bool running();
  // Sends `signal` and waits up to `grace` for exit; SIGKILL after. Returns the exit
  // status as from waitpid (or -1 if it was not running).
  int stop(int signal = 15, std::chrono::milliseconds grace = std::chrono::seconds(5));
  // Waits for exit up to `timeout`; returns the waitpid status or -1 on timeout.
  int wait(std::chrono::milliseconds timeout);

 private:
  // Reaps the child if it has exited, without blocking; true then (status_ holds its
  // waitpid status and pid_ is -1).
  bool reap();

  pid_t pid_ = -1;
  int status_ = -1;
};

// Runs a command to completion (no shell) and returns its exit code and output.
struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
RunResult run(const std::vector<std::string>& argv, std::chrono::seconds timeout = std::chrono::seconds(120),
              const std::string& stdin_text = {});

// A fresh directory under /tmp, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, then close).
std::uint16_t free_tcp_port();
std::uint16_t free_udp_port();
// Polls until `ip:port` accepts a TCP connection, up to `timeout`. Returns success.
bool wait_for_tcp(const std::string& ip, std::uint16_t port, std::chrono::milliseconds timeout);

// Full path of a built binary (KURIER_BINARY_DIR/...), e.g. binary("kurier").
std::filesystem::path binary(const std::string& name);
// Path to a file in the source tree.
std::filesystem::path source_path(const std::string& relative);
// Finds a system program (e.g. "dnsmasq", "smtp-sink") in PATH, /usr/sbin, /usr/bin;
// empty if missing.
std::filesystem::path find_program(const std::string& name);

void write_file(const std::filesystem::path& path, const std::string& content);
std::string read_file(const std::filesystem::path& path);

}  // namespace kurier::test
