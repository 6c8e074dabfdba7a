// The one harness for tests that run `kurier serve`: the serve, Prometheus and
// dashboard tests, and the tests that kill, restart and starve it of disk (with the
// ledger that shows what became of every recipient). The rig owns a private dnsmasq,
// one kurier-sink on four loopback addresses (one MX domain each) that stores every
// message it accepts, and the daemon as a child process on its own queue directory.
// Every kurier invocation can be wrapped in a command prefix (e.g. `nsenter -t PID -m
// --` to run it inside a private mount namespace whose queue file system the test
// controls). Everything is stopped by PID when the rig is destroyed. Test thread only.
#pragma once

#include <signal.h>
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
  std::optional<int> window = 200;   // [engine] window: the most a crash may resend
                                     // (nullopt: the daemon's default)
  bool tls_disabled = true;          // [smtp] tls = "disabled" (false: the default)
  int connections = 4;               // [default] connections per domain
  int messages_per_connection = 1000;  // [default] messages_per_connection
  bool bounce_listener = false;      // [bounce] listen on 127.0.0.1:0 (false: off)
  int reply_delay_ms = 0;            // the sink waits this long before each reply
  std::string sink_rules;            // appended to the sink script ([[rule]] tables)
  int teardown_signal = SIGKILL;     // what the destructor stops the daemon with
  std::vector<std::string> prefix;   // wraps every kurier invocation (empty: none)
  std::string extra_config;          // appended to kurier.toml (e.g. [events], [[webhook]])
};

// The serve, Prometheus and dashboard tests' daemon: the daemon's own window and TLS
// defaults, the bounce listener on, 50 messages per connection, a sink that rejects
// "unknown*" recipients with 550 5.1.1 (see write_campaign_with_unknowns), and a
// graceful SIGTERM when the rig is destroyed.
RigOptions serve_options(std::string subnet, std::string tag);

// Final counts per domain of a campaign written by write_campaign_with_unknowns.
struct DomainExpectation {
  std::uint64_t delivered = 0;
  std::uint64_t bounced_hard = 0;
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

  std::string http_address() const { return "127.0.0.1:" + std::to_string(http_port_); }

  // Writes campaign `id`: `per_domain` recipients <local><i>@<domain> for each domain.
  // Returns its campaign.toml.
  std::filesystem::path write_campaign(const std::string& id, int per_domain, const std::string& local = "u");
  // Writes campaign `id` with `per_domain` recipients for each domain, every `every`th
  // an "unknown<i>" the serve_options sink bounces, the rest "user<i>"; returns its
  // campaign.toml. expected_with_unknowns(per_domain) gives the final counts (every 5th).
  std::filesystem::path write_campaign_with_unknowns(const std::string& id, int per_domain, int every = 5);
  std::map<std::string, DomainExpectation> expected_with_unknowns(int per_domain) const;

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
  // Runs `kurier submit CAMPAIGN` (exit code and output).
  RunResult submit(const std::filesystem::path& campaign) { return kurier({"submit", campaign.string()}); }
  // GET `target` from the daemon; throws on transport failure (with the daemon's log)
  // or a status other than 200.
  std::string get(const std::string& target);
  nlohmann::json status() { return nlohmann::json::parse(get("/api/status")); }
  // The campaign's row of /api/status; nullopt if the daemon does not answer.
  std::optional<nlohmann::json> campaign_status(const std::string& id);
  // Polls until the campaign has `total` recipients, none pending or in flight; a
  // daemon that does not answer (restarting, dead) is polled again until `timeout`.
  bool wait_until_done(const std::string& id, std::uint64_t total, std::chrono::seconds timeout);
  // The same for a daemon that must keep answering (get() throws if it does not):
  // returns the last /api/status document for the caller to assert on, and records a
  // test failure with that document and the daemon's log on timeout.
  nlohmann::json await_done(const std::string& id, std::uint64_t total,
                            std::chrono::seconds timeout = std::chrono::seconds(60));
  // Messages the sink has accepted so far (its stats file, rewritten every 200 ms).
  std::uint64_t sink_messages() const;
  // Polls sink_messages() every 5 ms until it reaches `count` or `timeout` passes.
  void wait_for_sink_messages(std::uint64_t count, std::chrono::milliseconds timeout) const;
  // Reads `kurier report` (the daemon must be stopped: RocksDB is single-process)
  // and every message the sink stored.
  Ledger ledger(const std::string& campaign);

 private:
  void start_dns_and_sink(std::uint16_t smtp_port);
  void write_config(std::uint16_t smtp_port) const;
  // Writes <id>/recipients.csv, template.eml (From: `from` + `template_rest`) and
  // campaign.toml; returns the campaign.toml.
  std::filesystem::path write_campaign_files(const std::string& id, const std::string& from, const std::string& csv,
                                             const std::string& template_rest) const;
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
