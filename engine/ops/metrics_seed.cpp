// The start-up scan that seeds the metrics from the queue (see metrics_seed.h). Runs
// on the seeder's own thread (or the caller's in tests); a StoreError ends the scan
// with a log line (event=metrics_seed_failed) and keeps what was already added.
#include "engine/ops/metrics_seed.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <unordered_map>

#include "common/log.h"
#include "engine/intake/address.h"

namespace kurier::engine {
namespace {

// A domain's counts not yet added to its series, and whether its provider is known.
struct PendingDomain {
  Series* series = nullptr;
  SeededCounts counts;
  bool routed = false;  // provider linked (or none to link); false: waiting for an MX host
};

void add(SeededCounts& sum, const SeededCounts& part) {
  sum.delivered += part.delivered;
  sum.deferred += part.deferred;
  sum.expired += part.expired;
  for (std::size_t i = 0; i < sum.bounced.size(); ++i) sum.bounced[i] += part.bounced[i];
}

// Links the domain to its provider when the rules can tell (by domain, or by the MX
// host of the last attempt). A domain already linked by live delivery keeps its link.
void route(PendingDomain& d, std::string_view domain, const queue::Status& status, const Shaper& routes,
           Metrics& metrics) {
  if (d.series->linked_provider()) {
    d.routed = true;
    return;
  }
  std::vector<std::string> mx;
  if (routes.needs_mx(domain)) {
    if (status.mx.empty()) return;  // a later recipient's attempt may name it
    mx.push_back(status.mx);
  }
  const auto r = routes.route(domain, mx);
  if (!r.provider.empty()) metrics.link_provider(*d.series, metrics.provider(r.provider));
  d.routed = true;
}

void flush(std::unordered_map<std::string, PendingDomain>& pending) {
  for (auto& [name, d] : pending) d.series->add_seeded(d.counts);
  pending.clear();
}

}  // namespace

RecipientTally tally(const queue::Status& status, std::int64_t started_ms) {
  RecipientTally t;
  if (status.attempts == 0 || status.last_attempt_ms <= 0) return t;  // never tried (or purged unsent)
  if (status.last_attempt_ms >= started_ms) return t;                 // this process counted it
  const std::uint64_t before_last = status.attempts - 1u;
  switch (status.state) {
    case queue::State::delivered:
      t.counts.delivered = 1;
      t.counts.deferred = before_last;
      t.history = HistoryKind::delivered;
      break;
    case queue::State::bounced:
      // `none` (no category stored) counts as other, as Series::count_bounced() does.
      t.counts.bounced[std::min(static_cast<std::size_t>(bounce::category_from(status.category)),
                                static_cast<std::size_t>(bounce::Category::other))] = 1;
      t.counts.deferred = before_last;
      t.history = HistoryKind::bounced;
      break;
    case queue::State::expired:  // its last attempt was a deferral that hit max_age
      t.counts.expired = 1;
      t.counts.deferred = before_last;
      break;
    case queue::State::deferred:
      t.counts.deferred = status.attempts;
      t.history = HistoryKind::deferred;
      break;
    default: return t;  // queued after an attempt cannot happen; suppressed, cancelled: never sent
  }
  t.counted = true;
  t.at_ms = status.last_attempt_ms;
  return t;
}

SeedSummary seed_metrics(queue::Store& store, const Shaper& routes, Metrics& metrics, std::int64_t started_ms,
                         const std::atomic<bool>& stop) {
  SeedSummary summary;
  std::unordered_map<std::string, PendingDomain> pending;
  const std::int64_t window_start = History::window_start_ms(started_ms);
  for (const auto& campaign : store.campaigns()) {
    if (stop.load(std::memory_order_relaxed)) break;
    store.for_each_recipient(campaign.id, [&](const queue::Recipient& r) {
      if (stop.load(std::memory_order_relaxed)) return false;
      ++summary.recipients;
      const RecipientTally t = tally(r.status, started_ms);
      if (!t.counted) return true;
      ++summary.counted;
      std::string domain = ascii_domain_of(r.address);
      auto [it, fresh] = pending.try_emplace(std::move(domain));
      PendingDomain& d = it->second;
      if (fresh) d.series = &metrics.domain(it->first);
      if (!d.routed) route(d, it->first, r.status, routes, metrics);
      add(d.counts, t.counts);
      if (t.history && t.at_ms >= window_start) d.series->history().add(*t.history, t.at_ms);
      if (pending.size() >= kSeedCacheDomains) {
        summary.domains += pending.size();
        flush(pending);
      }
      return true;
    });
  }
  summary.domains += pending.size();
  flush(pending);
  summary.stopped = stop.load();
  return summary;
}

MetricsSeeder::MetricsSeeder(queue::Store& store, const ShapingRules& rules, Metrics& metrics,
                             std::int64_t started_ms)
    : routes_(rules) {
  thread_ = std::thread([this, &store, &metrics, started_ms] {
    auto log = kurier::log::get("serve");
    const auto begin = std::chrono::steady_clock::now();
    try {
      const SeedSummary s = seed_metrics(store, routes_, metrics, started_ms, stop_);
      const auto ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - begin).count();
      log->info("event=metrics_seeded recipients={} counted={} domains={} stopped={} ms={}", s.recipients, s.counted,
                s.domains, s.stopped, ms);
    } catch (const std::exception& e) {
      log->error("event=metrics_seed_failed error=\"{}\"", e.what());
    }
    done_ = true;
  });
}

MetricsSeeder::~MetricsSeeder() {
  stop_ = true;
  thread_.join();
}

}  // namespace kurier::engine
