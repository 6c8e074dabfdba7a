// A running `kurier serve` for the daemon tests (serve, Prometheus, dashboard): a
// private dnsmasq, one kurier-sink on four loopback addresses (one MX domain each),
// the daemon started as a child process with its own queue and HTTP port, and
// campaigns whose outcome per domain the sink script fixes: "user*" local parts are
// delivered, "unknown*" ones bounce with 550 5.1.1 (hard).
// Everything is stopped by PID when the harness is destroyed. Test thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/common/dnsmasq.h"
#include "tests/common/process.h"

namespace kurier::test {

struct DomainExpectation {
  std::uint64_t delivered = 0;
  std::uint64_t bounced_hard = 0;
};

class ServeHarness {
 public:
  // `subnet`: "127.0.N" — the sink listens on .1 to .4 of it (distinct per test
  // binary so tests may run in parallel). `tag` names the domains (a-<tag>.test, ...).
  ServeHarness(const std::string& subnet, const std::string& tag);
  ~ServeHarness();

  const std::filesystem::path& root() const { return dir_.path(); }
  std::filesystem::path config() const { return dir_.path() / "kurier.toml"; }
  std::string http_address() const { return "127.0.0.1:" + std::to_string(http_port_); }
  std::uint16_t http_port() const { return http_port_; }
  pid_t serve_pid() const { return serve_->pid(); }

  // Writes campaign `id` with `per_domain` recipients for each domain (every 5th on a
  // sink domain is an unknown user) and returns its campaign.toml.
  std::filesystem::path write_campaign(const std::string& id, int per_domain);
  // Expected final counts per domain for a campaign written by write_campaign.
  std::map<std::string, DomainExpectation> expected(int per_domain) const;
  const std::vector<std::string>& domains() const { return domains_; }

  // Runs `kurier submit` (exit code and output).
  RunResult submit(const std::filesystem::path& campaign);
  // GET `target` from the daemon; throws on transport failure.
  std::string get(const std::string& target);
  nlohmann::json status();
  // Polls /api/status until campaign `id` is done with `total` recipients; returns the
  // last document (the caller asserts on it). Bounded by `timeout`.
  nlohmann::json wait_until_done(const std::string& id, std::uint64_t total,
                                 std::chrono::seconds timeout = std::chrono::seconds(60));
  // SIGTERM to the daemon by PID; returns the waitpid status.
  int stop_serve();
  std::string serve_log() const;

 private:
  TempDir dir_;
  std::string tag_;
  std::vector<std::string> domains_;  // a-<tag>.test ... d-<tag>.test
  std::unique_ptr<Dnsmasq> dns_;
  std::unique_ptr<ChildProcess> sink_;
  std::unique_ptr<ChildProcess> serve_;
  std::uint16_t http_port_ = 0;
};

}  // namespace kurier::test
