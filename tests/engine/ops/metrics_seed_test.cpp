// Counters from the queue: what each stored status adds (tally), and the start-up
// scan over a real RocksDB queue — per-domain counters, providers routed by domain
// and by the last attempt's MX host, the last hour's history, statuses this process
// already counted, and the stop flag.
#include "engine/ops/metrics_seed.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "tests/common/process.h"

namespace kurier::engine {
namespace {

constexpr std::int64_t kStart = 1'765'000'000'000;  // the daemon's start
constexpr std::int64_t kMinute = History::kBucketMs;

queue::Status status(queue::State state, std::uint16_t attempts, std::int64_t last_ms, std::string category = "",
                     std::string mx = "") {
  queue::Status s;
  s.state = state;
  s.attempts = attempts;
  s.last_attempt_ms = last_ms;
  s.category = std::move(category);
  s.mx = std::move(mx);
  return s;
}

TEST(MetricsSeedTally, EachFinalStateCountsItsOutcomeAndTheDeferralsBeforeIt) {
  auto delivered = tally(status(queue::State::delivered, 3, kStart - 1000), kStart);
  EXPECT_TRUE(delivered.counted);
  EXPECT_EQ(delivered.counts.delivered, 1u);
  EXPECT_EQ(delivered.counts.deferred, 2u);
  EXPECT_EQ(delivered.history, HistoryKind::delivered);
  EXPECT_EQ(delivered.at_ms, kStart - 1000);

  auto bounced = tally(status(queue::State::bounced, 1, kStart - 1000, "block"), kStart);
  EXPECT_EQ(bounced.counts.bounced[static_cast<std::size_t>(bounce::Category::block)], 1u);
  EXPECT_EQ(bounced.counts.deferred, 0u);
  EXPECT_EQ(bounced.history, HistoryKind::bounced);
  auto uncategorised = tally(status(queue::State::bounced, 1, kStart - 1000), kStart);
  EXPECT_EQ(uncategorised.counts.bounced[static_cast<std::size_t>(bounce::Category::other)], 1u);

  auto deferred = tally(status(queue::State::deferred, 4, kStart - 1000, "soft"), kStart);
  EXPECT_EQ(deferred.counts.deferred, 4u);
  EXPECT_EQ(deferred.history, HistoryKind::deferred);

  auto expired = tally(status(queue::State::expired, 5, kStart - 1000, "soft"), kStart);
  EXPECT_EQ(expired.counts.expired, 1u);
  EXPECT_EQ(expired.counts.deferred, 4u);
  EXPECT_FALSE(expired.history) << "expiry is not charted (the live path does not chart it either)";
}

TEST(MetricsSeedTally, NothingForUnsentRecipientsOrWhatThisProcessCountedLive) {
  EXPECT_FALSE(tally(status(queue::State::queued, 0, 0), kStart).counted);
  EXPECT_FALSE(tally(status(queue::State::suppressed, 0, 0), kStart).counted);
  EXPECT_FALSE(tally(status(queue::State::cancelled, 0, 0), kStart).counted);
  EXPECT_FALSE(tally(status(queue::State::cancelled, 2, kStart - 5), kStart).counted);
  EXPECT_FALSE(tally(status(queue::State::delivered, 1, kStart), kStart).counted) << "recorded after the start";
  EXPECT_FALSE(tally(status(queue::State::deferred, 2, kStart + 5), kStart).counted);
}

class MetricsSeedScan : public ::testing::Test {
 protected:
  void SetUp() override { store_ = queue::open_rocksdb_store((dir_.path() / "queue").string()); }

  // One committed campaign; every recipient gets `make(i)` as its status.
  void add_campaign(const std::string& name, const std::vector<std::pair<std::string, queue::Status>>& rows) {
    queue::Campaign c;
    c.name = name;
    c.fingerprint = "sha256:" + name;
    c.from = "news@sender.test";
    c.created_ms = kStart - 3'600'000;
    auto writer = store_->begin_campaign(c);
    queue::RecipientId id = 0;
    for (const auto& [address, s] : rows) {
      queue::Recipient r;
      r.key.recipient = ++id;
      r.address = address;
      r.status = s;
      if (!queue::is_final(s.state)) r.status.next_attempt_ms = kStart + 600'000;
      writer->add(r);
    }
    writer->commit();
  }

  static const SeriesSnapshot& find(const std::vector<SeriesSnapshot>& list, const std::string& name) {
    for (const auto& s : list)
      if (s.name == name) return s;
    static const SeriesSnapshot none;
    ADD_FAILURE() << "no series " << name;
    return none;
  }

  test::TempDir dir_;
  std::unique_ptr<queue::Store> store_;
  ShapingRules rules_ = parse_shaping(R"(
[provider.gmail]
match_domains = ["gmail.com", "googlemail.com"]
[provider.outlook]
match_mx = ["*.protection.outlook.com"]
)", "shaping.toml");
};

TEST_F(MetricsSeedScan, CountersProvidersAndHistoryComeFromTheStatuses) {
  using queue::State;
  add_campaign("spring", {
      {"a@gmail.com", status(State::delivered, 1, kStart - 5 * kMinute, "", "gmail-smtp-in.l.google.com")},
      {"b@GMail.com", status(State::delivered, 2, kStart - 5 * kMinute)},
      {"c@googlemail.com", status(State::bounced, 1, kStart - 2 * kMinute, "hard")},
      {"d@contoso.test", status(State::queued, 0, 0)},  // never tried: no MX known yet
      {"e@contoso.test", status(State::deferred, 3, kStart - kMinute, "soft", "contoso-test.mail.protection.outlook.com")},
      {"f@own.test", status(State::expired, 2, kStart - 90 * kMinute, "soft", "mx.own.test")},
      {"g@own.test", status(State::delivered, 1, kStart + 10)},  // this process counted it
  });
  add_campaign("summer", {{"h@gmail.com", status(State::delivered, 1, kStart - 3 * 3'600'000)}});

  Metrics metrics;
  const Shaper routes(rules_);
  std::atomic<bool> stop{false};
  const SeedSummary summary = seed_metrics(*store_, routes, metrics, kStart, stop);
  EXPECT_EQ(summary.recipients, 8u);
  EXPECT_EQ(summary.counted, 6u);
  EXPECT_EQ(summary.domains, 4u);
  EXPECT_FALSE(summary.stopped);

  const auto snap = metrics.snapshot();
  const auto& gmail_com = find(snap.domains, "gmail.com");
  EXPECT_EQ(gmail_com.delivered, 3u);
  EXPECT_EQ(gmail_com.deferred, 1u);
  EXPECT_EQ(gmail_com.provider, "gmail");
  EXPECT_EQ(find(snap.domains, "googlemail.com").bounced[0], 1u);
  const auto& contoso = find(snap.domains, "contoso.test");
  EXPECT_EQ(contoso.deferred, 3u);
  EXPECT_EQ(contoso.provider, "outlook") << "routed by the MX host of its last attempt";
  const auto& own = find(snap.domains, "own.test");
  EXPECT_EQ(own.expired, 1u);
  EXPECT_EQ(own.deferred, 1u);
  EXPECT_EQ(own.delivered, 0u) << "recorded after the start: counted live, not again";
  EXPECT_EQ(own.provider, "");

  const auto& gmail = find(snap.providers, "gmail");
  EXPECT_EQ(gmail.delivered, 3u);
  EXPECT_EQ(gmail.bounced_total(), 1u);
  EXPECT_EQ(find(snap.providers, "outlook").deferred, 3u);

  // The hour's history: the start falls in the last bucket.
  History::Counts c{};
  metrics.domain("gmail.com").history().add_to(c, kStart);
  const std::size_t last = History::kBuckets - 1;
  EXPECT_EQ(c[0][last - 5], 2u) << "two deliveries five minutes before the start";
  std::uint64_t delivered_in_hour = 0;
  for (auto n : c[0]) delivered_in_hour += n;
  EXPECT_EQ(delivered_in_hour, 2u) << "the delivery three hours ago counts, but is not charted";
  History::Counts d{};
  metrics.domain("contoso.test").history().add_to(d, kStart);
  EXPECT_EQ(d[1][last - 1], 1u) << "a deferred recipient's last deferral";
}

TEST_F(MetricsSeedScan, TheStopFlagEndsTheScan) {
  add_campaign("big", {{"a@gmail.com", status(queue::State::delivered, 1, kStart - 1)},
                       {"b@gmail.com", status(queue::State::delivered, 1, kStart - 1)}});
  Metrics metrics;
  const Shaper routes(rules_);
  std::atomic<bool> stop{true};
  const SeedSummary summary = seed_metrics(*store_, routes, metrics, kStart, stop);
  EXPECT_TRUE(summary.stopped);
  EXPECT_EQ(summary.recipients, 0u);
}

TEST_F(MetricsSeedScan, TheSeederThreadAddsTheCountsInTheBackground) {
  add_campaign("bg", {{"a@gmail.com", status(queue::State::delivered, 1, kStart - 1)}});
  Metrics metrics;
  MetricsSeeder seeder(*store_, rules_, metrics, kStart);
  for (int i = 0; i < 500 && !seeder.done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(seeder.done());
  EXPECT_EQ(find(metrics.snapshot().providers, "gmail").delivered, 1u);
}

}  // namespace
}  // namespace kurier::engine
