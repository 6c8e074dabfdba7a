// The metrics registry and its Prometheus rendering. Updates come from any engine
// thread (relaxed atomics); snapshots and rendering run on the HTTP thread. Nothing
// here fails except by allocation.
#include "engine/ops/metrics.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "engine/core/clock.h"

namespace kurier::engine {

// Label values escape backslash, double quote and line feed (exposition format 0.0.4).
void append_label_value(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
}

namespace {

void add_traffic(SeriesSnapshot& sum, const SeriesSnapshot& part) {
  sum.queued += part.queued;
  sum.in_flight += part.in_flight;
  sum.connections += part.connections;
  sum.delivered += part.delivered;
  sum.deferred += part.deferred;
  sum.expired += part.expired;
  sum.greylisted += part.greylisted;
  for (std::size_t i = 0; i < bounce::kFailureCategories; ++i) sum.bounced[i] += part.bounced[i];
}

void append_number(std::string& out, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", value);
  out += buf;
}

void append_number(std::string& out, std::int64_t value) { out += std::to_string(value); }
void append_number(std::string& out, std::uint64_t value) { out += std::to_string(value); }

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

// One metric family over a list of series, labelled `label`="series name".
template <typename Get>
void family(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            std::string_view label, const std::vector<SeriesSnapshot>& series, Get get) {
  header(out, name, type, help);
  for (const auto& s : series) {
    out += name;
    out += '{';
    out += label;
    out += "=\"";
    append_label_value(out, s.name);
    out += "\"} ";
    append_number(out, get(s));
    out += '\n';
  }
}

// Metrics that exist for domains and providers alike: kurier_domain_* and kurier_provider_*.
void destination_families(std::string& out, std::string_view kind, const std::vector<SeriesSnapshot>& series) {
  const std::string prefix = "kurier_" + std::string(kind) + "_";
  const std::string_view label = kind;
  auto name = [&](std::string_view suffix) { return prefix + std::string(suffix); };
  family(out, name("queued"), "gauge", "Recipients in the ready queue waiting for a session.", label, series,
         [](const SeriesSnapshot& s) { return s.queued; });
  family(out, name("in_flight"), "gauge", "Recipients in an SMTP transaction, outcome not known yet.", label, series,
         [](const SeriesSnapshot& s) { return s.in_flight; });
  family(out, name("connections_open"), "gauge", "SMTP sessions open or opening.", label, series,
         [](const SeriesSnapshot& s) { return s.connections; });
  family(out, name("delivered_total"), "counter", "Recipients accepted by the MX (2xx).", label, series,
         [](const SeriesSnapshot& s) { return s.delivered; });
  family(out, name("deferred_total"), "counter", "Temporary failures (4xx, network, DNS), retried later.", label,
         series, [](const SeriesSnapshot& s) { return s.deferred; });
  family(out, name("greylisted_total"), "counter", "Deferrals recognised as greylisting.", label, series,
         [](const SeriesSnapshot& s) { return s.greylisted; });
  family(out, name("expired_total"), "counter", "Recipients still failing temporarily at max_age.", label, series,
         [](const SeriesSnapshot& s) { return s.expired; });

  // Bounces carry a second label, the category.
  const std::string bounced = name("bounced_total");
  header(out, bounced, "counter", "Permanent failures by category (hard, soft, block, other).");
  for (const auto& s : series) {
    for (std::size_t i = 0; i < bounce::kFailureCategories; ++i) {
      out += bounced;
      out += '{';
      out += label;
      out += "=\"";
      append_label_value(out, s.name);
      out += "\",category=\"";
      out += to_string(static_cast<bounce::Category>(i));
      out += "\"} ";
      append_number(out, s.bounced[i]);
      out += '\n';
    }
  }

  family(out, name("throttled_total"), "counter", "Throttling replies that slowed down or suspended delivery.", label,
         series, [](const SeriesSnapshot& s) { return s.throttled; });
  family(out, name("rate_limit"), "gauge", "Messages per second currently allowed (0 = unlimited).", label, series,
         [](const SeriesSnapshot& s) { return s.rate_limit; });
  family(out, name("configured_rate_limit"), "gauge", "Messages per second of the shaping rule (0 = unlimited).",
         label, series, [](const SeriesSnapshot& s) { return s.configured_rate; });
  family(out, name("connection_limit"), "gauge", "Concurrent sessions allowed (0 = not set).", label, series,
         [](const SeriesSnapshot& s) { return s.connection_limit; });
  family(out, name("suspended_until_seconds"), "gauge", "Unix time until which delivery is suspended (0 = not).",
         label, series, [](const SeriesSnapshot& s) { return s.suspended_until; });
}

void global_counter(std::string& out, std::string_view name, std::string_view help, std::uint64_t value) {
  header(out, name, "counter", help);
  out += name;
  out += ' ';
  append_number(out, value);
  out += '\n';
}

}  // namespace

std::string_view to_string(ThrottleState state) {
  switch (state) {
    case ThrottleState::normal: return "normal";
    case ThrottleState::slowed: return "slowed";
    case ThrottleState::suspended: break;
  }
  return "suspended";
}

std::uint64_t SeriesSnapshot::bounced_total() const {
  std::uint64_t total = 0;
  for (auto n : bounced) total += n;
  return total;
}

ThrottleState SeriesSnapshot::throttle_state(std::int64_t now_s) const {
  if (suspended_until > now_s) return ThrottleState::suspended;
  // A rate in force below the rule's, or any rate in force where the rule has none
  // (a slow-down halved the rate observed at the time): backing off or recovering.
  if (rate_limit > 0 && (configured_rate <= 0 || rate_limit < configured_rate)) return ThrottleState::slowed;
  // A slow-down halves the connections too, also where no rate is configured.
  if (configured_connections > 0 && connection_limit > 0 && connection_limit < configured_connections)
    return ThrottleState::slowed;
  return ThrottleState::normal;
}

SeriesSnapshot Series::snapshot() const {
  SeriesSnapshot s;
  s.name = name_;
  s.queued = queued_.load(kRelaxed);
  s.in_flight = in_flight_.load(kRelaxed);
  s.connections = connections_.load(kRelaxed);
  s.delivered = delivered_.load(kRelaxed);
  s.deferred = deferred_.load(kRelaxed);
  s.expired = expired_.load(kRelaxed);
  for (std::size_t i = 0; i < bounce::kFailureCategories; ++i) s.bounced[i] = bounced_[i].load(kRelaxed);
  s.greylisted = greylisted_.load(kRelaxed);
  s.throttled = throttled_.load(kRelaxed);
  s.rate_limit = rate_limit_.load(kRelaxed);
  s.configured_rate = configured_rate_.load(kRelaxed);
  s.connection_limit = connection_limit_.load(kRelaxed);
  s.configured_connections = configured_connections_.load(kRelaxed);
  s.suspended_until = suspended_until_.load(kRelaxed);
  return s;
}

void Series::add_seeded(const SeededCounts& counts) {
  delivered_.fetch_add(counts.delivered, kRelaxed);
  deferred_.fetch_add(counts.deferred, kRelaxed);
  expired_.fetch_add(counts.expired, kRelaxed);
  for (std::size_t i = 0; i < bounce::kFailureCategories; ++i) bounced_[i].fetch_add(counts.bounced[i], kRelaxed);
}

Metrics::Metrics() : started_ms_(system_now_ms()) {}

Series& Metrics::domain(std::string_view name) {
  std::lock_guard lock(mutex_);
  auto it = domains_.find(std::string(name));
  if (it != domains_.end()) return *it->second;
  std::string key = domains_.size() < kMaxDomainSeries ? std::string(name) : std::string(kOverflowDomain);
  auto& slot = domains_[key];
  if (!slot) slot = std::make_unique<Series>(key);
  return *slot;
}

Series& Metrics::provider(std::string_view name) {
  std::lock_guard lock(mutex_);
  auto& slot = providers_[std::string(name)];
  if (!slot) slot = std::make_unique<Series>(std::string(name));
  return *slot;
}

void Metrics::link_provider(Series& domain, const Series& provider) {
  domain.provider_.store(&provider, std::memory_order_release);
}

void Metrics::for_each_domain(const std::function<void(const Series& domain)>& fn) const {
  std::lock_guard lock(mutex_);
  for (const auto& [name, series] : domains_) fn(*series);
}

MetricsSnapshot Metrics::snapshot() const {
  MetricsSnapshot out;
  out.taken_ms = system_now_ms();
  out.started_ms = started_ms_;
  {
    std::lock_guard lock(mutex_);
    out.domains.reserve(domains_.size());
    std::unordered_map<const Series*, std::size_t> provider_index;
    out.providers.reserve(providers_.size());
    for (const auto& [name, series] : providers_) {
      provider_index.emplace(series.get(), out.providers.size());
      out.providers.push_back(series->snapshot());
      // Traffic is summed from the linked domains below, not counted on the provider.
      auto& p = out.providers.back();
      SeriesSnapshot empty;
      p.queued = p.in_flight = p.connections = 0;
      p.delivered = p.deferred = p.expired = p.greylisted = 0;
      p.bounced = empty.bounced;
    }
    for (const auto& [name, series] : domains_) {
      out.domains.push_back(series->snapshot());
      const Series* provider = series->provider_.load(std::memory_order_acquire);
      if (!provider) continue;
      out.domains.back().provider = provider->name();
      auto it = provider_index.find(provider);
      if (it != provider_index.end()) add_traffic(out.providers[it->second], out.domains.back());
    }
  }
  auto by_name = [](const SeriesSnapshot& a, const SeriesSnapshot& b) { return a.name < b.name; };
  std::sort(out.domains.begin(), out.domains.end(), by_name);
  std::sort(out.providers.begin(), out.providers.end(), by_name);
  auto& g = out.global;
  g.sessions_opened = global_.sessions_opened.load(std::memory_order_relaxed);
  g.connect_failures = global_.connect_failures.load(std::memory_order_relaxed);
  g.dns_failures = global_.dns_failures.load(std::memory_order_relaxed);
  g.messages_attempted = global_.messages_attempted.load(std::memory_order_relaxed);
  g.outcomes_recorded = global_.outcomes_recorded.load(std::memory_order_relaxed);
  g.record_batches = global_.record_batches.load(std::memory_order_relaxed);
  g.campaigns_submitted = global_.campaigns_submitted.load(std::memory_order_relaxed);
  g.breaker_trips = global_.breaker_trips.load(std::memory_order_relaxed);
  g.events_written = global_.events_written.load(std::memory_order_relaxed);
  g.event_log_errors = global_.event_log_errors.load(std::memory_order_relaxed);
  g.webhook_events_sent = global_.webhook_events_sent.load(std::memory_order_relaxed);
  g.webhook_failures = global_.webhook_failures.load(std::memory_order_relaxed);
  g.webhook_events_lost = global_.webhook_events_lost.load(std::memory_order_relaxed);
  return out;
}

std::string to_prometheus(const MetricsSnapshot& snapshot) {
  std::string out;
  out.reserve(4096 + 2048 * (snapshot.domains.size() + snapshot.providers.size()));
  destination_families(out, "domain", snapshot.domains);
  destination_families(out, "provider", snapshot.providers);
  const auto& g = snapshot.global;
  global_counter(out, "kurier_sessions_opened_total", "SMTP sessions started.", g.sessions_opened);
  global_counter(out, "kurier_connect_failures_total", "Sessions that reached no MX host.", g.connect_failures);
  global_counter(out, "kurier_dns_failures_total", "MX lookups that failed.", g.dns_failures);
  global_counter(out, "kurier_messages_attempted_total", "SMTP transactions started.", g.messages_attempted);
  global_counter(out, "kurier_outcomes_recorded_total", "Recipient outcomes made durable in the queue.",
                 g.outcomes_recorded);
  global_counter(out, "kurier_record_batches_total", "Group commits to the queue.", g.record_batches);
  global_counter(out, "kurier_campaigns_submitted_total", "Campaigns accepted through the API.",
                 g.campaigns_submitted);
  global_counter(out, "kurier_breaker_trips_total", "Campaigns paused by a circuit breaker.", g.breaker_trips);
  global_counter(out, "kurier_events_written_total", "Lines appended to the event log.", g.events_written);
  global_counter(out, "kurier_event_log_errors_total", "Events dropped by a failed event log write.",
                 g.event_log_errors);
  global_counter(out, "kurier_webhook_events_sent_total", "Events in webhook POSTs acknowledged (2xx).",
                 g.webhook_events_sent);
  global_counter(out, "kurier_webhook_failures_total", "Webhook POSTs refused, failed or timed out.",
                 g.webhook_failures);
  global_counter(out, "kurier_webhook_events_lost_total", "Events rotated away before a webhook read them.",
                 g.webhook_events_lost);
  header(out, "kurier_start_time_seconds", "gauge", "Unix time the process started.");
  out += "kurier_start_time_seconds ";
  append_number(out, static_cast<double>(snapshot.started_ms) / 1000.0);
  out += '\n';
  return out;
}

}  // namespace kurier::engine
