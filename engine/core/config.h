// kurier.toml and shaping.toml: the daemon/sender configuration, one struct per
// section. Every key is optional except [verp] secret; unknown sections and keys are
// errors. Parsing errors are InputError naming file, line and key. Plain data after
// loading; safe to share read-only between threads.
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
#include "engine/events/events_config.h"
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

// One struct per section of kurier.toml, each read by its own function in config.cpp.

struct QueueConfig {  // [queue]
  std::filesystem::path path = "var/queue";
};

struct DnsConfig {  // [dns]
  std::vector<std::string> servers;  // "host:port"; empty = system resolvers
  std::chrono::milliseconds timeout{5000};
};

struct SmtpConfig {  // [smtp] and [smtp.timeouts]
  std::string helo;                  // default: the machine's host name
  std::uint16_t port = 25;
  smtp::TlsPolicy tls = smtp::TlsPolicy::opportunistic;  // default; shaping.toml may set it per destination
  smtp::Timeouts timeouts;
};

struct VerpConfig {  // [verp]
  std::string secret;  // use required_verp_secret(): there is no fallback
};

struct DkimConfig {  // [dkim]
  // [[dkim.key]] entries: used for campaigns without their own [dkim] block whose
  // From domain is the key's domain or a subdomain of it.
  std::vector<DkimKey> keys;
};

struct HttpConfig {  // [http]
  std::string listen = "127.0.0.1:8025";
  // Bearer token for changing HTTP endpoints. Empty: `kurier serve` generates one into
  // <queue path>/http.token (mode 0600), where `kurier submit` reads it.
  std::string token;
};

struct BounceConfig {  // [bounce]
  std::string listen = "127.0.0.1:2526";
  // What the bounce listener accepts RCPT for; empty = the VERP domains of the
  // campaigns in the queue.
  std::vector<std::string> domains;
  // Soft bounces in a row (no delivery between) that suppress an address; 0 = never.
  std::uint32_t soft_limit = 3;
  // An ops rules file (format of data/bounce-rules.toml) consulted before the built-in
  // rules by every classifier: delivery replies, `kurier ingest` and the bounce
  // listener. Null = built-in rules only; use bounce_rules_or_builtin().
  std::filesystem::path rules_file;
  std::shared_ptr<const bounce::Rules> rules;
};

struct EngineConfig {  // [engine]
  int workers = 0;             // delivery threads; 0 = one per core
  std::size_t window = 20000;  // recipients in flight at most (memory bound)
};

// Circuit breakers (engine/delivery/breaker.h): a campaign whose list or content burns
// the sender's reputation is paused. Rates are shares (0.05 = 5 %); a rate of 0 turns
// that breaker off.
struct BreakerConfig {  // [breaker]
  double hard_bounce_rate = 0.05;     // hard bounces / final MX answers (delivered + bounced)
  std::uint64_t min_attempts = 200;   // ... counted once this many answers are in
  double complaint_rate = 0.001;      // complaints / deliveries
  std::uint64_t min_deliveries = 1000;
};

struct LogConfig {  // [log]
  std::string level = "warn";
};

struct Config {
  std::filesystem::path file;  // the kurier.toml read ("" = defaults only)
  QueueConfig queue;
  DnsConfig dns;
  SmtpConfig smtp;
  MtaStsOptions mta_sts;       // [mta_sts]: enabled, port, ca_file, timeout_ms
  VerpConfig verp;
  DkimConfig dkim;
  HttpConfig http;
  BounceConfig bounce;
  EngineConfig engine;
  BreakerConfig breaker;
  HygieneOptions hygiene;      // [hygiene]: lists and policy per verdict
  LogConfig log;
  ShapingRules shaping;        // [shaping] file (engine/delivery/shaping/shaping.h); defaults without one
  EventsConfig events;         // [events]: the event log (engine/events/events_config.h)
  std::vector<WebhookConfig> webhooks;  // [[webhook]]
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
