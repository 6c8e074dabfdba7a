// The per-minute outcome history of a destination (see history.h). Writers on any
// delivery thread, readers on the HTTP threads; lock-free, never fails.
#include "engine/ops/history.h"

#include "engine/core/clock.h"

namespace kurier::engine {
namespace {

constexpr std::uint64_t kCountMask = 0xffff'ffffu;

std::int64_t minute_of(std::int64_t ms) {
  return ms >= 0 ? ms / History::kBucketMs : (ms - History::kBucketMs + 1) / History::kBucketMs;
}
std::uint32_t stamp_of(std::uint64_t cell) { return static_cast<std::uint32_t>(cell >> 32); }
std::size_t slot_of(std::int64_t minute) {
  return static_cast<std::size_t>(minute % static_cast<std::int64_t>(History::kBuckets));
}

}  // namespace

void History::add(HistoryKind kind, std::int64_t at_ms, std::uint32_t n) {
  const std::int64_t minute = minute_of(at_ms);
  if (minute < 0 || n == 0) return;
  const auto stamp = static_cast<std::uint32_t>(minute);
  auto& cell = cells_[static_cast<std::size_t>(kind)][slot_of(minute)];
  std::uint64_t seen = cell.load(std::memory_order_relaxed);
  for (;;) {
    if (stamp_of(seen) == stamp) {
      // The cell holds this minute: count into it (2^32 outcomes a minute do not happen).
      cell.fetch_add(n, std::memory_order_relaxed);
      return;
    }
    // Signed difference of 32-bit minute stamps: negative = the cell holds a newer minute.
    if (static_cast<std::int32_t>(stamp - stamp_of(seen)) < 0) return;
    const std::uint64_t claimed = (std::uint64_t{stamp} << 32) | n;
    if (cell.compare_exchange_weak(seen, claimed, std::memory_order_relaxed)) return;
  }
}

void History::add_now(HistoryKind kind) { add(kind, system_now_ms()); }

void History::add_to(Counts& sum, std::int64_t now_ms) const {
  const std::int64_t first = minute_of(now_ms) - static_cast<std::int64_t>(kBuckets) + 1;
  for (std::size_t k = 0; k < kKinds; ++k) {
    for (std::size_t i = 0; i < kBuckets; ++i) {
      const std::int64_t minute = first + static_cast<std::int64_t>(i);
      if (minute < 0) continue;
      const std::uint64_t cell = cells_[k][slot_of(minute)].load(std::memory_order_relaxed);
      if (stamp_of(cell) == static_cast<std::uint32_t>(minute)) sum[k][i] += cell & kCountMask;
    }
  }
}

std::int64_t History::window_start_ms(std::int64_t now_ms) {
  return (minute_of(now_ms) - static_cast<std::int64_t>(kBuckets) + 1) * kBucketMs;
}

}  // namespace kurier::engine
