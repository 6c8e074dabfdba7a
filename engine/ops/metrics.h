// Live per-destination figures for ops: /metrics, /api/status, `kurier status`/`top`.
//
// Contract: a Metrics registry hands out one Series per recipient domain and one per
// provider (a shaping rule's name, e.g. "gmail"). A Series lives as long as its
// registry at a stable address: look it up ONCE (per destination, per rule), keep the
// reference, and update it on the hot path with relaxed atomics — no strings, no
// locks, no allocation. domain() and provider() take a mutex and may allocate: never
// call them per message.
//
// Per-provider traffic is never counted twice: link a domain to its provider once
// (link_provider(), e.g. when its rule is matched by domain or MX suffix) and the
// provider's queued / in-flight / connections / outcome figures are the sums over its
// linked domains, computed when a snapshot is taken. Limits, throttle counters and
// suspension are set directly on whichever series they belong to (a provider rule on
// the provider's series, a [domain."x"] override on the domain's).
//
// Typical use (delivery engine and shaping):
//   Series& d = metrics.domain("gmail.com");            // once per destination
//   metrics.link_provider(d, metrics.provider("gmail"));  // once, when the rule is known
//   d.add_queued(+1); ... d.count_bounced(bounce::Category::hard);
//   metrics.provider("gmail").set_suspended_until(now_s + 600);  // from a throttle rule
//
// Outcome counts also go into the series' last hour (history.h) for the dashboard's
// charts; at daemon start metrics_seed.h adds what the queue recorded before.
//
// Threading: every member is safe from any thread. A snapshot reads each value once;
// it is not atomic across values (figures may be a message apart).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bounce/bounce.h"
#include "engine/ops/history.h"

namespace kurier::engine {


// A destination's throttle state as shown to ops; derived from the series' gauges.
enum class ThrottleState : std::uint8_t {
  normal,     // no suspension; rate limit at its configured value (or none)
  slowed,     // rate or connection limit below the configured one (or any rate when none is)
  suspended,  // suspended_until is in the future
};
std::string_view to_string(ThrottleState state);

// Plain copy of one series, for rendering.
struct SeriesSnapshot {
  std::string name;      // domain or provider name
  std::string provider;  // domains: the linked provider ("" = none); providers: ""
  std::int64_t queued = 0;
  std::int64_t in_flight = 0;
  std::int64_t connections = 0;
  std::uint64_t delivered = 0;
  std::uint64_t deferred = 0;
  std::uint64_t expired = 0;
  std::array<std::uint64_t, bounce::kFailureCategories> bounced{};  // indexed by bounce::Category
  std::uint64_t greylisted = 0;
  std::uint64_t throttled = 0;
  double rate_limit = 0;            // msg/s now in force; 0 = unlimited
  double configured_rate = 0;       // msg/s of the rule; 0 = unlimited
  std::int64_t connection_limit = 0;  // 0 = unlimited / not set
  std::int64_t configured_connections = 0;  // of the rule; 0 = not set
  std::int64_t suspended_until = 0;   // unix seconds; 0 = not suspended
  std::uint64_t bounced_total() const;
  ThrottleState throttle_state(std::int64_t now_s) const;
};

// Engine-wide counters (since the process started).
struct GlobalCounters {
  std::atomic<std::uint64_t> sessions_opened{0};     // SMTP sessions started (incl. failed connects)
  std::atomic<std::uint64_t> connect_failures{0};    // sessions that reached no MX
  std::atomic<std::uint64_t> dns_failures{0};        // MX lookups that failed (temporary or permanent)
  std::atomic<std::uint64_t> messages_attempted{0};  // transactions started
  std::atomic<std::uint64_t> outcomes_recorded{0};   // outcomes made durable in the queue
  std::atomic<std::uint64_t> record_batches{0};      // group commits (synced store writes)
  std::atomic<std::uint64_t> campaigns_submitted{0}; // accepted by `kurier submit` / the API
  std::atomic<std::uint64_t> breaker_trips{0};       // campaigns paused by a circuit breaker
  // The event log and its webhooks (engine/events/).
  std::atomic<std::uint64_t> events_written{0};      // lines appended to the event log
  std::atomic<std::uint64_t> event_log_errors{0};    // events dropped by a failed write
  std::atomic<std::uint64_t> webhook_events_sent{0}; // events in POSTs a receiver acknowledged
  std::atomic<std::uint64_t> webhook_failures{0};    // POSTs refused, failed or timed out
  std::atomic<std::uint64_t> webhook_events_lost{0}; // rotated away before a webhook read them
};

struct GlobalSnapshot {
  std::uint64_t sessions_opened = 0;
  std::uint64_t connect_failures = 0;
  std::uint64_t dns_failures = 0;
  std::uint64_t messages_attempted = 0;
  std::uint64_t outcomes_recorded = 0;
  std::uint64_t record_batches = 0;
  std::uint64_t campaigns_submitted = 0;
  std::uint64_t breaker_trips = 0;
  std::uint64_t events_written = 0, event_log_errors = 0;
  std::uint64_t webhook_events_sent = 0, webhook_failures = 0, webhook_events_lost = 0;
};

struct MetricsSnapshot {
  std::int64_t taken_ms = 0;    // unix milliseconds
  std::int64_t started_ms = 0;  // when the registry was created
  std::vector<SeriesSnapshot> domains;    // sorted by name
  std::vector<SeriesSnapshot> providers;  // sorted by name; traffic summed over linked domains
  GlobalSnapshot global;
};

// Outcomes recorded before this process started, counted from the queue's statuses
// at start (metrics_seed.h) so that a restart does not zero the counters.
struct SeededCounts {
  std::uint64_t delivered = 0, deferred = 0, expired = 0;
  std::array<std::uint64_t, bounce::kFailureCategories> bounced{};  // indexed by bounce::Category
};

// Gauges and counters of one destination (a domain or a provider).
class Series {
 public:
  explicit Series(std::string name) : name_(std::move(name)) {}
  Series(const Series&) = delete;
  Series& operator=(const Series&) = delete;

  const std::string& name() const { return name_; }

  // Traffic (domain series; a provider's are summed from its domains).
  // queued: handed to the destination's ready queue, waiting for a session.
  void add_queued(std::int64_t delta) { queued_.fetch_add(delta, kRelaxed); }
  // in_flight: taken by a session, outcome not known yet.
  void add_in_flight(std::int64_t delta) { in_flight_.fetch_add(delta, kRelaxed); }
  void connection_opened() { connections_.fetch_add(1, kRelaxed); }
  void connection_closed() { connections_.fetch_sub(1, kRelaxed); }
  // Outcomes also count into the last hour's history (history.h: one more atomic add).
  void count_delivered() {
    delivered_.fetch_add(1, kRelaxed);
    history_.add_now(HistoryKind::delivered);
  }
  void count_deferred() {
    deferred_.fetch_add(1, kRelaxed);
    history_.add_now(HistoryKind::deferred);
  }
  void count_expired() { expired_.fetch_add(1, kRelaxed); }
  // `none` (cannot happen for a bounce) counts as other.
  void count_bounced(bounce::Category category) {
    const auto i = std::min(static_cast<std::size_t>(category), static_cast<std::size_t>(bounce::Category::other));
    bounced_[i].fetch_add(1, kRelaxed);
    history_.add_now(HistoryKind::bounced);
  }
  // A deferral recognised as greylisting (also counted by count_deferred()).
  void count_greylisted() { greylisted_.fetch_add(1, kRelaxed); }
  // A throttling reply (421, rate wording, provider codes) that triggered a reaction.
  void count_throttled() { throttled_.fetch_add(1, kRelaxed); }

  // Shaping state (set by shaping; any series).
  void set_rate_limit(double per_second) { rate_limit_.store(per_second, kRelaxed); }            // 0 = unlimited
  void set_configured_rate(double per_second) { configured_rate_.store(per_second, kRelaxed); }  // 0 = unlimited
  void set_connection_limit(std::int64_t connections) { connection_limit_.store(connections, kRelaxed); }
  void set_configured_connections(std::int64_t connections) { configured_connections_.store(connections, kRelaxed); }
  void set_suspended_until(std::int64_t unix_seconds) { suspended_until_.store(unix_seconds, kRelaxed); }  // 0 = not

  SeriesSnapshot snapshot() const;  // provider field left empty

  // Adds outcomes from before the start (metrics_seed.h); the history is seeded
  // through history().add() with each outcome's time.
  void add_seeded(const SeededCounts& counts);
  History& history() { return history_; }
  const History& history() const { return history_; }
  // The provider linked by Metrics::link_provider(); null if none.
  const Series* linked_provider() const { return provider_.load(std::memory_order_acquire); }

 private:
  static constexpr auto kRelaxed = std::memory_order_relaxed;
  friend class Metrics;

  const std::string name_;
  std::atomic<std::int64_t> queued_{0}, in_flight_{0}, connections_{0};
  std::atomic<std::uint64_t> delivered_{0}, deferred_{0}, expired_{0}, greylisted_{0}, throttled_{0};
  std::array<std::atomic<std::uint64_t>, bounce::kFailureCategories> bounced_{};
  std::atomic<double> rate_limit_{0}, configured_rate_{0};
  std::atomic<std::int64_t> connection_limit_{0}, configured_connections_{0}, suspended_until_{0};
  std::atomic<const Series*> provider_{nullptr};  // domains only; set by link_provider
  History history_;                               // domains only (providers sum theirs)
};

class Metrics {
 public:
  // Distinct domain series kept at most; later domains share the series named
  // kOverflowDomain. Bounds memory and Prometheus label cardinality on lists with a
  // long tail of small domains (a per-domain series costs ~1.7 KB with its hour of
  // history, plus a Prometheus time series each).
  static constexpr std::size_t kMaxDomainSeries = 10000;
  static constexpr std::string_view kOverflowDomain = "_other";

  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Get-or-create (mutex; not for per-message use). Names are used as given: pass
  // lower-case domains.
  Series& domain(std::string_view name);
  Series& provider(std::string_view name);
  // Counts `domain`'s traffic into `provider` from now on, for the provider's sums.
  // Relinking moves the domain's whole history to the new provider.
  void link_provider(Series& domain, const Series& provider);

  GlobalCounters& global() { return global_; }

  // Calls fn for every domain series under the map mutex (e.g. to sum histories);
  // fn must not call back into this registry.
  void for_each_domain(const std::function<void(const Series& domain)>& fn) const;

  MetricsSnapshot snapshot() const;

 private:
  mutable std::mutex mutex_;  // guards the maps (the series themselves are atomic)
  std::unordered_map<std::string, std::unique_ptr<Series>> domains_;
  std::unordered_map<std::string, std::unique_ptr<Series>> providers_;
  GlobalCounters global_;
  std::int64_t started_ms_;
};

// Prometheus text exposition format 0.0.4: HELP/TYPE lines, `kurier_` prefix,
// labels domain=".." / provider="..", counters ending in `_total`.
std::string to_prometheus(const MetricsSnapshot& snapshot);
// Appends a label value escaped as the exposition format 0.0.4 wants (\\, \", \n).
void append_label_value(std::string& out, std::string_view value);

}  // namespace kurier::engine
