// kurier.toml and shaping.toml: the daemon/sender configuration. Every key is
// optional except [verp] secret. Parsing errors are InputError naming file, line
// and key. Plain data after loading; safe to share read-only between threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/delivery/shaping/shaping.h"
#include "engine/intake/hygiene/hygiene.h"
#include "engine/delivery/mta_sts.h"
#include "smtp/client.h"

namespace kurier::bounce {
class Rules;  // bounce/bounce.h
}

namespace kurier::engine {

// One DKIM signing key: d=domain, s=selector, the PEM private key file.
struct DkimKey {
  std::string domain;
  std::string selector;
  std::filesystem::path key;
};

struct Config {
  std::filesystem::path file;            // the kurier.toml read ("" = defaults only)
  std::filesystem::path queue_path = "var/queue";
  std::vector<std::string> dns_servers;  // "host:port"; empty = system resolvers
  std::chrono::milliseconds dns_timeout{5000};
  std::string helo;                      // default: the machine's host name
  std::uint16_t smtp_port = 25;
  smtp::TlsPolicy tls = smtp::TlsPolicy::opportunistic;  // default; shaping.toml may set it per destination
  smtp::Timeouts timeouts;
  MtaStsOptions mta_sts;                 // [mta_sts]: enabled, port, ca_file, timeout_ms
  std::string verp_secret;
  // [[dkim.key]] entries: used for campaigns without their own [dkim] block whose
  // From domain is the key's domain or a subdomain of it.
  std::vector<DkimKey> dkim_keys;
  std::string http_listen = "127.0.0.1:8025";
  // Bearer token for changing HTTP endpoints ([http] token). Empty: `kurier serve`
  // generates one into <queue path>/http.token (mode 0600), where `kurier submit` reads it.
  std::string http_token;
  std::string bounce_listen = "127.0.0.1:2526";
  // [bounce] domains: what the bounce listener accepts RCPT for; empty = the VERP
  // domains of the campaigns in the queue.
  std::vector<std::string> bounce_domains;
  // [bounce] soft_limit: soft bounces in a row (no delivery between) that suppress
  // an address; 0 = never.
  std::uint32_t bounce_soft_limit = 3;
  // [bounce] rules: an ops rules file (format of data/bounce-rules.toml) consulted
  // before the built-in rules by every classifier: delivery replies, `kurier ingest`
  // and the bounce listener. Null = built-in rules only; use bounce_rules_or_builtin().
  std::filesystem::path bounce_rules_file;
  std::shared_ptr<const bounce::Rules> bounce_rules;
  ShapingRules shaping;                  // [shaping] file (engine/delivery/shaping/shaping.h); defaults without one
  int workers = 0;                       // delivery threads; 0 = one per core
  std::size_t window = 20000;            // recipients in flight at most (memory bound)
  std::string log_level = "warn";
  HygieneOptions hygiene;                // [hygiene]: lists and policy per verdict
};

// [verp] secret, the HMAC key of VERP tokens; throws InputError naming the file when it
// is not set. Every component that makes or checks tokens takes it from here: there is
// no fallback secret.
const std::string& required_verp_secret(const Config& config);

// The configured bounce rules, or the built-in ones when none are configured.
const bounce::Rules& bounce_rules_or_builtin(const Config& config);

// Loads `path` (relative paths inside it resolve against its directory). With no
// path, looks for ./kurier.toml and otherwise uses defaults. Throws InputError.
Config load_config(const std::optional<std::filesystem::path>& path);

// Parses "30s", "5m", "2h", "5d" (a non-negative integer and a unit; shaping.toml's
// durations). nullopt if malformed.
std::optional<std::chrono::seconds> parse_duration(const std::string& text);

}  // namespace kurier::engine
