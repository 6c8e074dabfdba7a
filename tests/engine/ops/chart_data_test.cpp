// The /api/history document: the busiest domains kept, providers summed from their
// linked domains, live counts and seeded ones in the same buckets.
#include "engine/ops/chart_data.h"

#include <gtest/gtest.h>

#include "engine/core/clock.h"

namespace kurier::engine {
namespace {

DestinationHistory named(const std::string& name, const std::string& provider, std::uint64_t delivered) {
  DestinationHistory d;
  d.name = name;
  d.provider = provider;
  d.counts[0][History::kBuckets - 1] = delivered;
  return d;
}

TEST(ChartData, KeepsTheBusiestDestinationsBusiestFirst) {
  std::vector<DestinationHistory> list = {named("quiet.test", "", 1), named("busy.test", "", 50),
                                          named("b.test", "", 5), named("a.test", "", 5)};
  keep_busiest(list, 3);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].name, "busy.test");
  EXPECT_EQ(list[1].name, "a.test") << "ties by name";
  EXPECT_EQ(list[2].name, "b.test");
}

TEST(ChartData, ProvidersAreTheSumsOfTheirDomains) {
  const auto providers = provider_histories(
      {named("gmail.com", "gmail", 3), named("googlemail.com", "gmail", 4), named("own.test", "", 9),
       named("gmx.de", "gmx", 1)});
  ASSERT_EQ(providers.size(), 2u);
  EXPECT_EQ(providers[0].name, "gmail");
  EXPECT_EQ(providers[0].counts[0][History::kBuckets - 1], 7u);
  EXPECT_EQ(providers[1].name, "gmx");
  EXPECT_EQ(providers[1].total(), 1u);
}

TEST(ChartData, DocumentCarriesLiveAndSeededCountsPerProviderAndDomain) {
  Metrics metrics;
  Series& gmail = metrics.domain("gmail.com");
  metrics.link_provider(gmail, metrics.provider("gmail"));
  gmail.count_delivered();  // live: this minute (or the one before `now`)
  Series& own = metrics.domain("own.test");
  own.count_deferred();
  metrics.domain("idle.test");  // nothing in the hour
  const std::int64_t now = system_now_ms();
  gmail.history().add(HistoryKind::bounced, now - 10 * History::kBucketMs, 2);  // seeded
  auto last_two = [](const nlohmann::json& counts) {
    return counts[History::kBuckets - 1].get<std::uint64_t>() + counts[History::kBuckets - 2].get<std::uint64_t>();
  };

  const auto doc = chart_data_json(metrics, now);
  EXPECT_EQ(doc["bucket_ms"], History::kBucketMs);
  EXPECT_EQ(doc["start"], History::window_start_ms(now));
  ASSERT_EQ(doc["providers"].size(), 1u) << doc.dump();
  const auto& p = doc["providers"][0];
  EXPECT_EQ(p["provider"], "gmail");
  ASSERT_EQ(p["delivered"].size(), History::kBuckets);
  EXPECT_EQ(last_two(p["delivered"]), 1u);
  EXPECT_EQ(p["bounced"][History::kBuckets - 11], 2u);
  ASSERT_EQ(doc["domains"].size(), 2u) << "the idle domain is left out: " << doc.dump();
  EXPECT_EQ(doc["domains"][0]["domain"], "gmail.com");
  EXPECT_EQ(doc["domains"][0]["provider"], "gmail");
  EXPECT_EQ(doc["domains"][1]["domain"], "own.test");
  EXPECT_EQ(doc["domains"][1]["provider"], "");
  EXPECT_EQ(last_two(doc["domains"][1]["deferred"]), 1u);
}

}  // namespace
}  // namespace kurier::engine
