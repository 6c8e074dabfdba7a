// kurier.toml and shaping.toml: the daemon/sender configuration. Every key is
// optional except [verp] secret. Parsing errors are InputError naming file, line
// and key. Plain data after loading; safe to share read-only between threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "smtp/client.h"

namespace kurier::engine {

// Per-destination delivery limits. [default] in shaping.toml; the shaping issue adds
// providers matched by domain / MX suffix on top of this.
struct ShapingLimits {
  int connections = 20;                  // concurrent sessions per destination domain
  int messages_per_connection = 100;     // then QUIT and reconnect (spreads load over MX hosts)
  // Retry after the n-th temporary failure: schedule[min(n-1, size-1)]. Greylisting-
  // friendly: the first retry after a few minutes, then growing.
  std::vector<std::chrono::seconds> retry = {std::chrono::minutes(5),  std::chrono::minutes(10),
                                             std::chrono::minutes(20), std::chrono::minutes(40),
                                             std::chrono::hours(1),    std::chrono::hours(2),
                                             std::chrono::hours(4)};
  std::chrono::seconds max_age = std::chrono::hours(24 * 5);  // then `expired`
};

struct Config {
  std::filesystem::path file;            // the kurier.toml read ("" = defaults only)
  std::filesystem::path queue_path = "var/queue";
  std::vector<std::string> dns_servers;  // "host:port"; empty = system resolvers
  std::chrono::milliseconds dns_timeout{5000};
  std::string helo;                      // default: the machine's host name
  std::uint16_t smtp_port = 25;
  smtp::TlsPolicy tls = smtp::TlsPolicy::opportunistic;
  smtp::Timeouts timeouts;
  std::string verp_secret;
  std::string http_listen = "127.0.0.1:8025";
  std::string bounce_listen = "127.0.0.1:2526";
  ShapingLimits shaping;
  int workers = 0;                       // delivery threads; 0 = one per core
  std::size_t window = 20000;            // recipients in flight at most (memory bound)
  std::string log_level = "warn";
};

// Loads `path` (relative paths inside it resolve against its directory). With no
// path, looks for ./kurier.toml and otherwise uses defaults. Throws InputError.
Config load_config(const std::optional<std::filesystem::path>& path);

// Parses "1000/s", "20000/h", "30s", "5m", "2h", "5d" style durations ("30s" -> 30 s).
std::optional<std::chrono::seconds> parse_duration(const std::string& text);

}  // namespace kurier::engine
