// Counters that come from the queue: at daemon start, one scan of every recipient's
// status adds the outcomes recorded before this process started to the per-domain
// series (and so to their providers) and to the last hour's history, so a restart
// does not zero the dashboard and /metrics. Runs on a thread of its own, started by
// the daemon before delivery; a store failure is logged and leaves what was counted.
//
// What a status says and what it counts (tally()):
//   delivered / bounced (by category) / expired: one of that outcome, and attempts - 1
//     deferrals before it; deferred: `attempts` deferrals; queued, suppressed, cancelled:
//     nothing. Greylisting and throttle replies are not told apart in a status: they
//     count as deferrals here and not in the greylisted/throttled counters.
//   A status whose last attempt is at or after the start was recorded by this process
//     and already counted live: skipped whole (its earlier deferrals are not counted).
//   The history gets the last attempt of each counted status, if within the hour.
// Provider of a domain: the shaping rules' route by domain; for providers matched by
// MX host, the status' last `mx` (the host the last attempt went to) stands in for the
// most preferred MX the live delivery looks up.
//
// Cost: a Store::for_each_recipient() over every campaign (address, fields and status
// of each recipient, one pass): per million recipients 1.4 s of CPU and 2.1 s wall
// (measured on the 2-core development machine while it compiled: one campaign, 500
// domains, all delivered), no RocksDB block cache filled; memory bounded by
// kSeedCacheDomains pending domains. Delivery and the HTTP server do not wait for it:
// the counters grow to the queue's figures when it ends.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <thread>

#include "engine/delivery/shaping/shaping.h"
#include "engine/ops/history.h"
#include "engine/ops/metrics.h"
#include "queue/store.h"

namespace kurier::engine {

// What one stored status adds to its domain's series.
struct RecipientTally {
  bool counted = false;  // false: nothing to add (pending without attempts, or live)
  SeededCounts counts;
  std::optional<HistoryKind> history;  // the last attempt's outcome, for the chart
  std::int64_t at_ms = 0;              // ... and its time
};
RecipientTally tally(const queue::Status& status, std::int64_t started_ms);

struct SeedSummary {
  std::uint64_t recipients = 0;  // statuses read
  std::uint64_t counted = 0;     // statuses that added something
  std::uint64_t domains = 0;     // distinct domains seen
  bool stopped = false;          // the stop flag ended the scan early
};

// Distinct domains whose counts are held before being added to their series; more
// are flushed and the table starts again (bounds memory on a long tail of domains).
inline constexpr std::size_t kSeedCacheDomains = 100'000;

// The scan itself, on the calling thread: adds every status last attempted before
// `started_ms` to `metrics`. Checks `stop` between recipients. Throws StoreError.
SeedSummary seed_metrics(queue::Store& store, const Shaper& routes, Metrics& metrics, std::int64_t started_ms,
                         const std::atomic<bool>& stop);

// seed_metrics() on a thread of its own, started by the constructor. `store`,
// `metrics` and the rules must outlive it; the destructor stops the scan and joins.
class MetricsSeeder {
 public:
  MetricsSeeder(queue::Store& store, const ShapingRules& rules, Metrics& metrics, std::int64_t started_ms);
  ~MetricsSeeder();
  MetricsSeeder(const MetricsSeeder&) = delete;
  MetricsSeeder& operator=(const MetricsSeeder&) = delete;

  bool done() const { return done_.load(); }

 private:
  Shaper routes_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

}  // namespace kurier::engine
