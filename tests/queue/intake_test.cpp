// Intake of 200,000 recipients into a real store: asserts that every one arrives,
// prints recipients/s and bytes per recipient on disk (speed targets belong to
// bench/, so nothing here asserts timing). Test thread only.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <ctime>

#include <sys/resource.h>

#include "queue/store.h"
#include "tests/common/process.h"
#include "tests/queue/helpers.h"

namespace kurier::queue::test {
namespace {

constexpr std::int64_t kNow = 1'700'000'000'000;
constexpr RecipientId kRecipients = 200'000;

// CPU time of the calling thread: the machine running the tests is shared, so the
// wall-clock rate alone says little; intake work happens on the calling thread.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// A typical recipient: ~25-byte address and two short fields.
Recipient typical(RecipientId id) {
  Recipient r;
  r.key.recipient = id;
  r.address = "firstname" + std::to_string(id) + "@example-mail.com";
  r.fields = {"Anna", "Hamburg"};
  r.status.next_attempt_ms = kNow;
  return r;
}

TEST(QueueIntake, TwoHundredThousandRecipients) {
  kurier::test::TempDir dir;
  const auto db = (dir.path() / "queue").string();
  CampaignId id = 0;
  {
    auto store = open_rocksdb_store(db);
    const auto start = std::chrono::steady_clock::now();
    const auto cpu_start = thread_cpu_seconds();
    auto writer = store->begin_campaign(make_campaign("big"));
    for (RecipientId r = 1; r <= kRecipients; ++r) writer->add(typical(r));
    writer->commit();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double cpu = thread_cpu_seconds() - cpu_start;
    id = writer->id();
    const auto bytes = store->disk_bytes();
    std::printf("[ queue    ] intake: %u recipients in %.3f s = %.0f recipients/s (%.0f per CPU-second of the "
                "writing thread); on disk %.1f bytes/recipient (WAL + SST, before flush)\n",
                kRecipients, seconds, kRecipients / seconds, kRecipients / cpu,
                static_cast<double>(bytes) / kRecipients);
    EXPECT_EQ(store->counts(id).queued, kRecipients);
    EXPECT_EQ(store->find_campaign("big")->recipient_count, kRecipients);
  }
  // Reopening replays the WAL into a (compressed) SST: the steady-state footprint.
  auto store = open_rocksdb_store(db);
  const auto bytes = store->disk_bytes();
  std::printf("[ queue    ] on disk after reopen: %.1f bytes/recipient (SST)\n",
              static_cast<double>(bytes) / kRecipients);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(store->counts(id).total(), kRecipients);
  std::printf("[ queue    ] counts(): %.3f s for %u recipients\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), kRecipients);
  start = std::chrono::steady_clock::now();
  ScheduleCursor cursor;
  std::size_t due = 0;
  for (;;) {
    auto batch = store->due(kNow, 1000, cursor);
    if (batch.empty()) break;
    due += batch.size();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ queue    ] due(): %zu recipients in %.3f s = %.0f recipients/s\n", due, seconds, static_cast<double>(due) / seconds);
  EXPECT_EQ(due, kRecipients);
}

// The scale target (1,000,000 queued recipients, peak RSS < 256 MB), too slow for
// every run: ./queue_tests --gtest_also_run_disabled_tests --gtest_filter='*OneMillion*'
TEST(QueueIntake, DISABLED_OneMillionRecipientsDeliveredWithinMemoryBudget) {
  constexpr RecipientId kMillion = 1'000'000;
  constexpr std::size_t kBatch = 1000;
  kurier::test::TempDir dir;
  auto store = open_rocksdb_store((dir.path() / "queue").string());
  auto start = std::chrono::steady_clock::now();
  auto writer = store->begin_campaign(make_campaign("million"));
  for (RecipientId r = 1; r <= kMillion; ++r) writer->add(typical(r));
  writer->commit();
  const auto id = writer->id();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ queue    ] 1M intake: %.1f s, %.0f recipients/s, %.1f bytes/recipient on disk\n", seconds,
              kMillion / seconds, static_cast<double>(store->disk_bytes()) / kMillion);
  EXPECT_EQ(store->counts(id).queued, kMillion);

  // Deliver everything: due() in batches, one record() per batch.
  start = std::chrono::steady_clock::now();
  ScheduleCursor cursor;
  std::size_t delivered = 0;
  for (;;) {
    auto due = store->due(kNow, kBatch, cursor);
    if (due.empty()) break;
    std::vector<Outcome> outcomes;
    outcomes.reserve(due.size());
    for (const auto& r : due) {
      Outcome o;
      o.key = r.key;
      o.previous_due_ms = r.status.next_attempt_ms;
      o.status.state = State::delivered;
      o.status.attempts = 1;
      o.status.last_attempt_ms = kNow;
      o.status.code = 250;
      o.attempt = Attempt{kNow, "mx.example-mail.com", "192.0.2.1", true, "TLSv1.3", 250, "2.0.0", "ok", "delivered"};
      outcomes.push_back(std::move(o));
    }
    store->record(outcomes);
    delivered += due.size();
  }
  seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ queue    ] 1M due()+record(): %.1f s, %.0f recipients/s, %.1f bytes/recipient on disk\n", seconds,
              static_cast<double>(delivered) / seconds, static_cast<double>(store->disk_bytes()) / kMillion);
  EXPECT_EQ(delivered, kMillion);
  EXPECT_EQ(store->counts(id).delivered, kMillion);
  EXPECT_FALSE(store->next_due_ms());
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("[ queue    ] peak RSS %.1f MB\n", static_cast<double>(usage.ru_maxrss) / 1024.0);
  EXPECT_LT(usage.ru_maxrss, 256 * 1024);
}

}  // namespace
}  // namespace kurier::queue::test
