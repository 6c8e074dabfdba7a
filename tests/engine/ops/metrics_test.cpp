// The metrics registry: stable series, provider sums over linked domains, derived
// throttle state, the domain cap, and the Prometheus text rendering.
#include "engine/ops/metrics.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace kurier::engine {
namespace {

const SeriesSnapshot* find(const std::vector<SeriesSnapshot>& list, const std::string& name) {
  for (const auto& s : list)
    if (s.name == name) return &s;
  return nullptr;
}

TEST(Metrics, SeriesAreStableAndCountFromManyThreads) {
  Metrics metrics;
  Series& a = metrics.domain("a.test");
  EXPECT_EQ(&a, &metrics.domain("a.test"));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        a.add_queued(1);
        a.add_queued(-1);
        a.count_delivered();
      }
    });
  for (auto& t : threads) t.join();
  auto snap = metrics.snapshot();
  ASSERT_EQ(snap.domains.size(), 1u);
  EXPECT_EQ(snap.domains[0].delivered, 4000u);
  EXPECT_EQ(snap.domains[0].queued, 0);
}

TEST(Metrics, ProviderTrafficIsTheSumOfItsLinkedDomains) {
  Metrics metrics;
  Series& gmail = metrics.domain("gmail.com");
  Series& workspace = metrics.domain("corp.test");
  Series& other = metrics.domain("other.test");
  Series& google = metrics.provider("google");
  metrics.link_provider(gmail, google);
  metrics.link_provider(workspace, google);
  gmail.count_delivered();
  gmail.count_bounced(bounce::Category::hard);
  workspace.count_delivered();
  workspace.connection_opened();
  other.count_delivered();
  google.set_rate_limit(25);
  google.set_configured_rate(50);
  google.set_suspended_until(0);

  auto snap = metrics.snapshot();
  const auto* p = find(snap.providers, "google");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->delivered, 2u);
  EXPECT_EQ(p->bounced[static_cast<std::size_t>(bounce::Category::hard)], 1u);
  EXPECT_EQ(p->connections, 1);
  EXPECT_EQ(p->throttle_state(snap.taken_ms / 1000), ThrottleState::slowed);
  EXPECT_EQ(find(snap.domains, "gmail.com")->provider, "google");
  EXPECT_EQ(find(snap.domains, "other.test")->provider, "");
  EXPECT_EQ(find(snap.domains, "other.test")->throttle_state(snap.taken_ms / 1000), ThrottleState::normal);
  // No rate configured, but a slow-down put one in force: slowed, until it is lifted.
  other.set_rate_limit(40);
  snap = metrics.snapshot();
  EXPECT_EQ(find(snap.domains, "other.test")->throttle_state(snap.taken_ms / 1000), ThrottleState::slowed);
  other.set_rate_limit(0);
  snap = metrics.snapshot();
  EXPECT_EQ(find(snap.domains, "other.test")->throttle_state(snap.taken_ms / 1000), ThrottleState::normal);
  // Only the connections halved (no rate measured yet): slowed as well.
  other.set_configured_connections(10);
  other.set_connection_limit(5);
  snap = metrics.snapshot();
  EXPECT_EQ(find(snap.domains, "other.test")->throttle_state(snap.taken_ms / 1000), ThrottleState::slowed);
  other.set_connection_limit(10);
  snap = metrics.snapshot();
  EXPECT_EQ(find(snap.domains, "other.test")->throttle_state(snap.taken_ms / 1000), ThrottleState::normal);

  google.set_suspended_until(snap.taken_ms / 1000 + 60);
  snap = metrics.snapshot();
  EXPECT_EQ(find(snap.providers, "google")->throttle_state(snap.taken_ms / 1000), ThrottleState::suspended);
}

TEST(Metrics, DomainsBeyondTheCapShareOneSeries) {
  Metrics metrics;
  for (std::size_t i = 0; i < Metrics::kMaxDomainSeries; ++i) metrics.domain("d" + std::to_string(i) + ".test");
  Series& late1 = metrics.domain("late1.test");
  Series& late2 = metrics.domain("late2.test");
  EXPECT_EQ(&late1, &late2);
  EXPECT_EQ(late1.name(), Metrics::kOverflowDomain);
  EXPECT_EQ(metrics.snapshot().domains.size(), Metrics::kMaxDomainSeries + 1);
}

TEST(Metrics, PrometheusExpositionHasHelpTypeAndEscapedLabels) {
  Metrics metrics;
  Series& d = metrics.domain("we\"ird\\.test");
  d.count_delivered();
  d.count_delivered();
  d.count_bounced(bounce::Category::block);
  metrics.global().messages_attempted += 3;
  const std::string text = to_prometheus(metrics.snapshot());
  EXPECT_NE(text.find("# HELP kurier_domain_delivered_total "), std::string::npos);
  EXPECT_NE(text.find("# TYPE kurier_domain_delivered_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE kurier_domain_queued gauge\n"), std::string::npos);
  EXPECT_NE(text.find("kurier_domain_delivered_total{domain=\"we\\\"ird\\\\.test\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("kurier_domain_bounced_total{domain=\"we\\\"ird\\\\.test\",category=\"block\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("kurier_messages_attempted_total 3\n"), std::string::npos);
  // Every sample line belongs to a family announced before it.
  std::string last_type;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    ASSERT_NE(end, std::string::npos) << "the exposition ends with a line feed";
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.rfind("# TYPE ", 0) == 0) {
      last_type = line.substr(7, line.find(' ', 7) - 7);
    } else if (line.rfind("#", 0) != 0) {
      EXPECT_EQ(line.substr(0, last_type.size()), last_type) << line;
    }
  }
}

}  // namespace
}  // namespace kurier::engine
