// The last hour of one destination's outcomes, minute by minute, for the dashboard's
// charts: delivered, deferred and bounced per one-minute bucket. Updated from any
// delivery thread without a lock; read by the HTTP handler threads. Never fails.
//
// Each cell packs the bucket's minute (since the Unix epoch, 32 bits) and its count
// (32 bits) into one atomic word: adding to the current minute is one relaxed
// fetch_add; the first add of a new minute claims the cell with a compare-exchange, so
// no count is lost and none lands in a stale minute. A writer that comes late for a
// cell already claimed by a newer minute drops its count (it is over an hour old).
// A mutex per series or a ticking thread that clears buckets were rejected: the first
// costs the hot path, the second loses adds that race with the clear.
//
// Memory: kBuckets x kKinds x 8 bytes = 1,440 bytes per series (14 MB at the metrics'
// 10,000-domain cap).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace kurier::engine {

enum class HistoryKind : std::uint8_t { delivered = 0, deferred = 1, bounced = 2 };

class History {
 public:
  static constexpr std::size_t kBuckets = 60;        // one hour of ...
  static constexpr std::int64_t kBucketMs = 60'000;  // ... one-minute buckets
  static constexpr std::size_t kKinds = 3;           // HistoryKind values

  // Counts per kind, oldest bucket first; the last is the minute of `now`.
  using Counts = std::array<std::array<std::uint64_t, kBuckets>, kKinds>;

  // Counts `n` outcomes of `kind` at `at_ms` (unix ms). Any thread, lock-free. Times
  // more than an hour before the newest minute seen in the cell are dropped.
  void add(HistoryKind kind, std::int64_t at_ms, std::uint32_t n = 1);
  // The same at the current time (the hot path: one clock read and one atomic add).
  void add_now(HistoryKind kind);

  // Adds this series' counts of the kBuckets minutes ending with now_ms's to `sum`.
  void add_to(Counts& sum, std::int64_t now_ms) const;

  // The first millisecond of the oldest bucket add_to(…, now_ms) fills.
  static std::int64_t window_start_ms(std::int64_t now_ms);

 private:
  std::array<std::array<std::atomic<std::uint64_t>, kBuckets>, kKinds> cells_{};
};

}  // namespace kurier::engine
