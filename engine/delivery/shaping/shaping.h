// Provider shaping: the rules of shaping.toml (limits per destination, matched by
// recipient domain or MX host), greylist recognition, and the live throttle state
// (GCRA message and connection rates, connection slots, slow-down and suspension
// with gradual recovery) that the delivery engine consults before every connection
// and every message.
//
// Contract:
//   - load_shaping()/parse_shaping() read the whole file up front; every problem is an
//     InputError naming file, line and key. The result is plain data, read-only after.
//   - A destination's *key* is the unit that shares limits: a provider's name when a
//     [provider.NAME] rule matches the domain (match_domains) or its most preferred MX
//     host (match_mx), "domain:<d>" for a [domain."d"] override, else the domain itself.
//     Every domain that maps to one key shares one connection pool and one rate.
//   - Shaper and Throttle are thread-safe (one mutex per Throttle; a map mutex in
//     Shaper). Times are milliseconds since the Unix epoch passed in by the caller, so
//     tests drive them without sleeping.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/core/clock.h"
#include "smtp/client.h"

namespace kurier::engine {

class Series;  // engine/ops/metrics.h: gauges the throttle keeps up to date when attached

// A rate such as "1000/s" or "20000/h"; per_second == 0 means unlimited.
struct Rate {
  double per_second = 0;
  bool unlimited() const { return per_second <= 0; }
};
// Parses "N/s", "N/m", "N/h", "N/d" (N > 0, may be fractional). nullopt if malformed.
std::optional<Rate> parse_rate(std::string_view text);

enum class ThrottleAction {
  none,
  slow,     // halve the rate and the connection limit, hold for `duration`, then recover
  suspend,  // no new connections or messages for `duration`; then resume slowed, recover
};
std::string_view to_string(ThrottleAction action);

// A reaction to a reply: the regex searches "<code> <enhanced> <text>" (case-insensitive).
class ReplyPattern;
struct ThrottleRule {
  std::string pattern;
  ThrottleAction action = ThrottleAction::slow;
  std::chrono::seconds duration{60};
  std::shared_ptr<const ReplyPattern> compiled;
  // `reply_line`: "<code> <enhanced> <text>" ("<code> <text>" without an enhanced code).
  bool matches(const std::string& reply_line) const;
};
// Compiles `pattern` (ECMAScript, icase). Throws std::regex_error on a bad pattern.
ThrottleRule make_throttle_rule(std::string pattern, ThrottleAction action, std::chrono::seconds duration);

// Limits of one destination key. Keys missing from a block inherit [default]'s.
struct ShapingLimits {
  int connections = 20;               // concurrent sessions per key
  int messages_per_connection = 100;  // then QUIT and reconnect (spreads load over MX hosts)
  Rate rate;                          // messages per second per key; default unlimited
  Rate connection_rate;               // new connections per second per key; default unlimited
  // Retry after the n-th counted temporary failure: retry[min(n-1, size-1)]. Greylisting
  // and throttling deferrals are not counted (they have their own delays).
  std::vector<std::chrono::seconds> retry = {std::chrono::minutes(5),  std::chrono::minutes(10),
                                             std::chrono::minutes(20), std::chrono::minutes(40),
                                             std::chrono::hours(1),    std::chrono::hours(2),
                                             std::chrono::hours(4)};
  std::chrono::seconds max_age = std::chrono::hours(24 * 5);  // then `expired`
  // Retry delay after a greylisting reply that gives no "retry in N seconds" hint.
  // Postgrey's default delay is 300 s; most greylisters use 1-15 min.
  std::chrono::seconds greylist_delay = std::chrono::minutes(5);
  // After a slow-down or suspension has run out, the limits grow back by one connection
  // and a tenth of the configured rate per interval (additive increase).
  std::chrono::seconds recovery_interval{30};
  // `tls`: "opportunistic", "required" (no STARTTLS or a failed handshake defers, never
  // plaintext) or "none". Unset: kurier.toml's [smtp] tls. An MTA-STS policy in
  // enforce mode overrides it (engine/delivery/tls_policy.h).
  std::optional<smtp::TlsPolicy> tls;
};

struct ProviderRule {
  std::string name;
  std::vector<std::string> match_domains;  // "gmail.com", "*.gmail.com" (lower-case)
  std::vector<std::string> match_mx;       // "*.google.com", "mx*.gmx.net"
  ShapingLimits limits;
  std::vector<ThrottleRule> on_reply;      // tried before the global [[throttle]] rules
};

struct DomainRule {
  std::string domain;
  ShapingLimits limits;
  std::vector<ThrottleRule> on_reply;
};

struct ShapingRules {
  ShapingLimits defaults;
  std::vector<ProviderRule> providers;          // file order; first match wins
  std::map<std::string, DomainRule> domains;    // [domain."x"]
  std::vector<ThrottleRule> throttle;           // [[throttle]]; then the built-in ones
  bool uses_mx() const;                         // some provider has match_mx
};

// The built-in reactions, tried after the configured ones: rate wording (4.7.28,
// "rate limit", "too many connections", "throttl"), Microsoft's 4.7.500 "server busy",
// Yahoo's TS01/TS02 (suspend 15 min) and TS03 (suspend 1 h).
const std::vector<ThrottleRule>& builtin_throttle_rules();

ShapingRules load_shaping(const std::filesystem::path& path);                 // throws InputError
ShapingRules parse_shaping(std::string_view text, const std::string& origin);  // throws InputError

// '*' matches any run, '?' one character; ASCII case-insensitive.
bool host_glob_match(std::string_view pattern, std::string_view host);


// Gauges shown to ops (status, /metrics).
struct ThrottleSnapshot {
  std::string key;
  std::string provider;               // rule name; "" for plain domains
  int connections_open = 0;
  int connection_limit = 0;           // in force now
  int configured_connections = 0;
  double rate_limit = 0;              // msg/s in force now; 0 = unlimited
  double configured_rate = 0;
  std::int64_t suspended_until_ms = 0;  // 0 = not suspended
  std::int64_t slowed_until_ms = 0;     // the hold of the last slow-down
  std::uint64_t throttle_events = 0;    // replies that matched a throttle rule
};

// The live state of one destination key. All methods are thread-safe.
class Throttle {
 public:
  Throttle(std::string key, std::string provider, const ShapingLimits& limits,
           std::vector<const ThrottleRule*> rules);

  const std::string& key() const { return key_; }
  const std::string& provider() const { return provider_; }
  const ShapingLimits& limits() const { return limits_; }

  struct Gate {
    bool ok = false;
    std::int64_t retry_at_ms = 0;  // when !ok: the earliest moment worth trying again
    bool slots_full = false;       // when !ok: only because every connection slot is taken
    std::int64_t limit_grows_at_ms = 0;  // slots_full after a slow-down: when the limit grows back
  };
  // A new connection: within the connection limit, the connection rate, not suspended
  // and not so far behind on the message rate that it would only idle. On ok the slot
  // is taken; give it back with connection_closed().
  Gate try_open_connection(std::int64_t now_ms);
  void connection_closed();
  // True if more connections are open than the limit now allows (after a slow-down),
  // or the key is suspended.
  bool over_connection_limit(std::int64_t now_ms);

  // Reserves the next message slot (GCRA): the time the message may be sent (<= now:
  // at once). nullopt (nothing reserved) when suspended, when more connections are open
  // than the limit now allows (the caller's session gives way after a slow-down), or
  // when the slot lies more than `max_wait_ms` ahead.
  std::optional<std::int64_t> reserve_message(std::int64_t now_ms, std::int64_t max_wait_ms);

  // Applies the first matching rule; returns its action (none: not a throttle reply).
  ThrottleAction on_reply(int code, std::string_view enhanced, std::string_view text, std::int64_t now_ms);
  // When suspended: the end of the suspension; else 0.
  std::int64_t suspended_until(std::int64_t now_ms);

  ThrottleSnapshot snapshot(std::int64_t now_ms);
  // Keeps the series' rate, connection limit and suspension gauges current (or stops: nullptr).
  void attach(Series* series);

 private:
  void refresh(std::int64_t now_ms);  // recovery; mutex held
  void publish();                     // to the attached series; mutex held
  double observed_rate(std::int64_t now_ms) const;

  const std::string key_;
  const std::string provider_;
  const ShapingLimits limits_;
  const std::vector<const ThrottleRule*> rules_;

  std::mutex mutex_;
  int open_ = 0;
  int connection_limit_;
  double rate_;                      // 0 = unlimited
  double message_tat_ms_ = 0;        // GCRA theoretical arrival time of the next message
  double connect_tat_ms_ = 0;        // the same for new connections
  double recover_rate_to_ = 0;       // unlimited rate: recover up to the rate of the slow-down
  std::int64_t suspended_until_ms_ = 0;
  std::int64_t hold_until_ms_ = 0;   // no recovery before this
  std::int64_t next_recovery_ms_ = 0;
  std::int64_t last_reaction_ms_ = -1'000'000;
  std::int64_t reconnect_after_ms_ = 0;  // a short pause after a throttling reply
  std::uint64_t events_ = 0;
  // Messages reserved per whole second (current and previous): the rate a slow-down
  // halves when no rate is configured.
  std::int64_t count_second_ = 0;
  std::int64_t first_second_ = -1;  // the second of the first message reserved
  std::uint64_t count_current_ = 0, count_previous_ = 0;
  Series* series_ = nullptr;
};

// The routing of domains to keys and the table of live throttles.
class Shaper {
 public:
  // `clock` dates the sweep of idle throttles; every other time comes from the caller.
  explicit Shaper(ShapingRules rules, Clock clock = system_now_ms);

  // True when the domain's key can only be known from its MX hosts (no domain rule
  // matches it and some provider matches by MX).
  bool needs_mx(std::string_view domain) const;
  // The throttle for `domain` whose MX hosts are `mx_hosts` (most preferred first;
  // empty if unknown). Shared by every domain with the same key.
  std::shared_ptr<Throttle> throttle_for(std::string_view domain, const std::vector<std::string>& mx_hosts);

  // Limits and rules for a domain without touching the live table (tests, reports).
  struct Route {
    std::string key;
    std::string provider;  // "" unless a provider rule matched
    const ShapingLimits* limits = nullptr;
    const std::vector<ThrottleRule>* on_reply = nullptr;  // the rule's own reactions
  };
  Route route(std::string_view domain, const std::vector<std::string>& mx_hosts) const;

  // Called for every throttle when it is created (e.g. to attach a metrics series).
  void on_new_throttle(std::function<void(Throttle&)> callback);

  // Operator suspensions (`kurier suspend`): a scope "domain:<d>" or "provider:<name>"
  // held until a time, apart from the throttles' own reactions (and never followed
  // by their slow recovery).
  struct Hold {
    std::int64_t until_ms = 0;
    std::string reason;
  };
  void hold(const std::string& scope, Hold hold);
  bool release(const std::string& scope);  // false if it was not held
  // The end of an operator suspension covering the domain or its provider ("" = none);
  // 0 when neither is held at now_ms. Cheap when nothing is held (one atomic load).
  std::int64_t held_until(std::string_view domain, std::string_view provider, std::int64_t now_ms) const;
  std::map<std::string, Hold> holds(std::int64_t now_ms) const;  // those still in force

 private:
  mutable std::mutex holds_mutex_;
  std::map<std::string, Hold, std::less<>> holds_;
  std::atomic<bool> any_hold_{false};
  ShapingRules rules_;
  Clock clock_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<Throttle>> throttles_;
  std::function<void(Throttle&)> on_new_;
  std::size_t created_since_sweep_ = 0;
};

}  // namespace kurier::engine
