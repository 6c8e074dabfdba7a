// The per-minute history of a destination: buckets by minute, the hour's window,
// stale cells, late writers and concurrent adds across a minute boundary.
#include "engine/ops/history.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace kurier::engine {
namespace {

constexpr std::int64_t kMinute = History::kBucketMs;
constexpr std::int64_t kNow = 1'765'000'000'000 + 30'000;  // half a minute into a minute
constexpr std::size_t kLast = History::kBuckets - 1;

std::uint64_t at(const History::Counts& c, HistoryKind kind, std::size_t bucket) {
  return c[static_cast<std::size_t>(kind)][bucket];
}

History::Counts read(const History& h, std::int64_t now_ms = kNow) {
  History::Counts c{};
  h.add_to(c, now_ms);
  return c;
}

TEST(History, CountsLandInTheBucketOfTheirMinuteOldestFirst) {
  History h;
  h.add(HistoryKind::delivered, kNow);
  h.add(HistoryKind::delivered, kNow - 10'000, 4);  // the same minute
  h.add(HistoryKind::deferred, kNow - 2 * kMinute);
  h.add(HistoryKind::bounced, kNow - 59 * kMinute, 3);  // the oldest bucket of the hour
  const auto c = read(h);
  EXPECT_EQ(at(c, HistoryKind::delivered, kLast), 5u);
  EXPECT_EQ(at(c, HistoryKind::deferred, kLast - 2), 1u);
  EXPECT_EQ(at(c, HistoryKind::bounced, 0), 3u);
  std::uint64_t total = 0;
  for (const auto& kind : c)
    for (auto n : kind) total += n;
  EXPECT_EQ(total, 9u);
  EXPECT_EQ(History::window_start_ms(kNow), (kNow / kMinute - 59) * kMinute);
}

TEST(History, AnHourLaterTheSameSlotStartsAgain) {
  History h;
  h.add(HistoryKind::delivered, kNow - 60 * kMinute, 7);  // outside the hour, same slot
  EXPECT_EQ(at(read(h), HistoryKind::delivered, kLast), 0u) << "a stale cell is not shown";
  h.add(HistoryKind::delivered, kNow);
  EXPECT_EQ(at(read(h), HistoryKind::delivered, kLast), 1u) << "the new minute claims the cell afresh";
  // A late writer from an hour ago finds the cell taken by a newer minute: dropped.
  h.add(HistoryKind::delivered, kNow - 60 * kMinute, 5);
  EXPECT_EQ(at(read(h), HistoryKind::delivered, kLast), 1u);
  // Read an hour on, nothing of this minute is left in the window.
  EXPECT_EQ(at(read(h, kNow + 60 * kMinute), HistoryKind::delivered, 0), 0u);
  EXPECT_EQ(at(read(h, kNow + 59 * kMinute), HistoryKind::delivered, 0), 1u);
}

TEST(History, ConcurrentAddsAcrossAMinuteBoundaryAreAllCounted) {
  History h;
  constexpr int kThreads = 4, kAdds = 20000;
  const std::int64_t boundary = (kNow / kMinute) * kMinute;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&h, boundary] {
      // Alternating minutes: each thread races the others to claim the new minute's cell.
      for (int i = 0; i < kAdds; ++i) h.add(HistoryKind::deferred, boundary - 1 + (i % 2));
    });
  for (auto& t : threads) t.join();
  const auto c = read(h, boundary);
  EXPECT_EQ(at(c, HistoryKind::deferred, kLast - 1), std::uint64_t{kThreads} * kAdds / 2);
  EXPECT_EQ(at(c, HistoryKind::deferred, kLast), std::uint64_t{kThreads} * kAdds / 2);
}

TEST(History, AddNowCountsIntoTheCurrentMinute) {
  History h;
  h.add_now(HistoryKind::bounced);
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  const auto c = read(h, now);
  EXPECT_EQ(at(c, HistoryKind::bounced, kLast) + at(c, HistoryKind::bounced, kLast - 1), 1u);
}

}  // namespace
}  // namespace kurier::engine
