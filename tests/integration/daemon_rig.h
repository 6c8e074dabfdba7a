// A `kurier serve` that tests kill, restart and starve of disk, and the ledger that
// shows what became of every recipient. The rig owns a private dnsmasq, one
// kurier-sink on four loopback addresses (one MX domain each) that accepts and stores
// every message, and the daemon as a child process on its own queue directory. Every
// kurier invocation can be wrapped in a command prefix (e.g. `nsenter -t PID -m --`
// to run it inside a private mount namespace whose queue file system the test
// controls). Everything is stopped by PID when the rig is destroyed. Test thread only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/common/dnsmasq.h"
#include "tests/common/process.h"

namespace kurier::test {

struct RigOptions {
  std::string subnet;       // "127.0.N": the sink listens on .1 to .4 (one subnet per test)
  std::string tag;          // names the domains: a-<tag>.test ... d-<tag>.test
  int window = 200;         // [engine] window: the most a crash may resend
  int connections = 4;      // [default] connections per domain
  int reply_delay_ms = 0;   // the sink waits this long before each reply
  std::vector<std::string> prefix;  // wraps every kurier invocation (empty: none)
};

// What became of a campaign: the queue's word (kurier report) and the sink's.
struct Ledger {
  std::map<std::string, std::string> state;  // recipient -> state from `kurier report`
  std::map<std::string, int> received;       // recipient -> copies the sink stored
  int messages = 0;                          // messages the sink stored in all
};

class DaemonRig {
 public:
  explicit DaemonRig(RigOptions options);
  ~DaemonRig();
  DaemonRig(const DaemonRig&) = delete;
  DaemonRig& operator=(const DaemonRig&) = delete;

  const std::filesystem::path& root() const { return dir_.path(); }
  std::filesystem::path config() const { return root() / "kurier.toml"; }
  std::filesystem::path queue_dir() const { return root() / "queue"; }
  const std::vector<std::string>& domains() const { return domains_; }
  // Wraps every later kurier invocation (see RigOptions::prefix).
  void set_prefix(std::vector<std::string> prefix) { options_.prefix = std::move(prefix); }

  // Writes campaign `id`: `per_domain` recipients <local><i>@<domain> for each domain.
  // Returns its campaign.toml.
  std::filesystem::path write_campaign(const std::string& id, int per_domain, const std::string& local = "u");

  // Starts `kurier serve` and waits until its HTTP port answers (throws after 20 s or
  // if it exits first, with its log).
  void start_serve();
  // Starts it without waiting (for starts that are expected to fail).
  void launch_serve();
  bool serve_running();
  pid_t serve_pid() const { return serve_ ? serve_->pid() : -1; }
  // Sends `signal` by PID and reaps; returns the waitpid status (-1: not running).
  int stop_serve(int signal, std::chrono::milliseconds grace = std::chrono::seconds(20));
  // Waits for the daemon to exit on its own; waitpid status or -1 on timeout.
  int wait_serve(std::chrono::milliseconds timeout);
  std::string serve_log() const;

  // Runs `kurier ARGS... --config kurier.toml` through the prefix.
  RunResult kurier(std::vector<std::string> args, std::chrono::seconds timeout = std::chrono::seconds(60));
  // The campaign's row of /api/status; nullopt if the daemon does not answer.
  std::optional<nlohmann::json> campaign_status(const std::string& id);
  // Polls until the campaign has `total` recipients, none pending or in flight.
  bool wait_until_done(const std::string& id, std::uint64_t total, std::chrono::seconds timeout);
  // Messages the sink has accepted so far (its stats file, rewritten every 200 ms).
  std::uint64_t sink_messages() const;
  // Reads `kurier report` (the daemon must be stopped: RocksDB is single-process)
  // and every message the sink stored.
  Ledger ledger(const std::string& campaign);

 private:
  std::vector<std::string> serve_argv() const;

  RigOptions options_;
  TempDir dir_;
  std::vector<std::string> domains_;
  std::uint16_t http_port_ = 0;
  std::unique_ptr<Dnsmasq> dns_;
  std::unique_ptr<ChildProcess> sink_;
  std::unique_ptr<ChildProcess> serve_;
};

}  // namespace kurier::test
