// The operator's policy pieces as pure functions and small state: circuit-breaker
// findings and counters (breaker.h), which pending recipients a selector names and what
// each action makes of them (admin.h), campaign control kept in a real RocksDB queue
// (campaign_control.h), operator suspensions (Shaper holds), and [breaker] in kurier.toml.
#include <gtest/gtest.h>

#include "engine/core/config.h"
#include "engine/core/input_error.h"
#include "engine/delivery/admin.h"
#include "engine/delivery/breaker.h"
#include "engine/delivery/campaign_control.h"
#include "tests/common/process.h"

namespace kurier::engine {
namespace {

constexpr std::int64_t kNow = 1'700'000'000'000;

TEST(Breaker, HardBounceRateTripsOnlyPastTheMinimumAndTheLimit) {
  BreakerConfig config;  // 5 % over 200 answers; 0.1 % complaints over 1,000 deliveries
  EXPECT_FALSE(breaker_finding({199, 100, 0, 0}, config, ""));        // too few answers
  EXPECT_FALSE(breaker_finding({200, 9, 0, 0}, config, ""));          // 4.5 %
  auto f = breaker_finding({200, 10, 0, 0}, config, "gmail");         // 5.0 %
  ASSERT_TRUE(f);
  EXPECT_EQ(*f, "hard-bounce rate 5.0% over 200 answers at gmail (limit 5.0% over 200)");
  EXPECT_FALSE(breaker_finding({0, 0, 999, 10}, config, ""));         // too few deliveries
  EXPECT_FALSE(breaker_finding({0, 0, 1000, 0}, config, ""));
  f = breaker_finding({0, 0, 2000, 3}, config, "");
  ASSERT_TRUE(f);
  EXPECT_EQ(*f, "complaint rate 0.15% over 2000 deliveries (limit 0.10% over 1000)");
  config.hard_bounce_rate = 0;  // off
  EXPECT_FALSE(breaker_finding({1000, 1000, 0, 0}, config, ""));
}

TEST(Breaker, CountsPerCampaignAndProviderTripsOnceUntilReset) {
  BreakerConfig config;
  config.min_attempts = 20;
  Breakers breakers(config);
  // Campaign 1: clean at "a", bad at "b"; the provider's rate trips before the campaign's.
  for (int i = 0; i < 200; ++i) EXPECT_FALSE(breakers.observe(1, "a", queue::State::delivered, "", 250));
  std::optional<std::string> trip;
  for (int i = 0; i < 20 && !trip; ++i)
    trip = breakers.observe(1, "b", i % 4 == 0 ? queue::State::bounced : queue::State::delivered, "hard", 550);
  ASSERT_TRUE(trip);
  EXPECT_NE(trip->find(" at b "), std::string::npos) << *trip;
  EXPECT_FALSE(breakers.observe(1, "b", queue::State::bounced, "hard", 550));  // once
  // Soft bounces, deferrals and other campaigns do not count.
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(breakers.observe(2, "b", queue::State::bounced, "soft", 552));
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(breakers.observe(2, "b", queue::State::deferred, "hard", 450));
  // Hard bounces without an MX answer (no such domain, null MX) do not count either.
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(breakers.observe(3, "c", queue::State::bounced, "hard", 0));
  EXPECT_EQ(breakers.trips(), 1u);
  breakers.reset(1);
  for (int i = 0; i < 19; ++i) EXPECT_FALSE(breakers.observe(1, "b", queue::State::bounced, "hard", 550));
  EXPECT_TRUE(breakers.observe(1, "b", queue::State::bounced, "hard", 550));
}

TEST(Breaker, ComplaintsCountFromTheLastResume) {
  BreakerConfig config;
  Breakers breakers(config);
  EXPECT_FALSE(breakers.observe_complaints(1, 5000, 4));
  ASSERT_TRUE(breakers.observe_complaints(1, 5000, 5));  // 0.1 %
  breakers.reset(1);                                      // the operator resumed it
  EXPECT_FALSE(breakers.observe_complaints(1, 5900, 5));  // nothing new: 0 of 900
  EXPECT_FALSE(breakers.observe_complaints(1, 6000, 5));  // 0 of 1000
  EXPECT_TRUE(breakers.observe_complaints(1, 6000, 6));   // 1 of 1000
}

queue::Recipient pending(queue::RecipientId id, std::string address, queue::State state, std::int64_t due,
                         std::string last_mx = "") {
  queue::Recipient r;
  r.key = {7, id};
  r.address = std::move(address);
  r.status.state = state;
  r.status.next_attempt_ms = due;
  r.status.mx = std::move(last_mx);
  r.status.attempts = state == queue::State::deferred ? 1 : 0;
  return r;
}

TEST(Admin, SelectorsNameCampaignsDomainsAndProvidersByDomainOrLastMx) {
  ShapingRules rules;
  ProviderRule google;
  google.name = "google";
  google.match_domains = {"gmail.com"};
  google.match_mx = {"*.google.com"};
  rules.providers.push_back(google);
  rules.domains["override.test"] = DomainRule{};
  Selector by_campaign, by_domain, by_provider;
  by_campaign.campaign = 7;
  by_domain.domain = "example.org";
  by_provider.provider = "google";
  const auto gmail = pending(1, "a@GMAIL.com", queue::State::queued, kNow);
  const auto hosted = pending(2, "b@firma.test", queue::State::deferred, kNow, "alt1.aspmx.l.google.com");
  const auto untried = pending(3, "c@firma.test", queue::State::queued, kNow);
  const auto org = pending(4, "d@example.org", queue::State::deferred, kNow);
  auto done = pending(5, "e@example.org", queue::State::delivered, 0);
  EXPECT_TRUE(selects(by_provider, rules, gmail));
  EXPECT_TRUE(selects(by_provider, rules, hosted));
  EXPECT_FALSE(selects(by_provider, rules, untried));  // its MX is not known yet
  EXPECT_FALSE(selects(by_provider, rules, pending(6, "x@override.test", queue::State::queued, kNow, "mx.google.com")));
  EXPECT_TRUE(selects(by_domain, rules, org));
  EXPECT_FALSE(selects(by_domain, rules, gmail));
  EXPECT_FALSE(selects(by_domain, rules, done));  // final: never selected
  EXPECT_TRUE(selects(by_campaign, rules, gmail));
  EXPECT_FALSE(selects(Selector{}, rules, gmail));
}

TEST(Admin, EachActionsOutcome) {
  const auto waiting = pending(1, "a@x.test", queue::State::deferred, kNow + 600'000);
  auto retry = admin_outcome(AdminAction::retry, waiting, "", kNow);
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->status.state, queue::State::deferred);
  EXPECT_EQ(retry->status.next_attempt_ms, kNow);
  EXPECT_EQ(retry->previous_due_ms, kNow + 600'000);
  EXPECT_EQ(retry->status.attempts, 1);  // not an attempt
  EXPECT_FALSE(retry->attempt);
  EXPECT_FALSE(admin_outcome(AdminAction::retry, pending(2, "b@x.test", queue::State::queued, kNow - 5), "", kNow));

  auto cancel = admin_outcome(AdminAction::cancel, waiting, "wrong list", kNow);
  ASSERT_TRUE(cancel);
  EXPECT_EQ(cancel->status.state, queue::State::cancelled);
  EXPECT_EQ(cancel->status.reason, "wrong list");
  EXPECT_EQ(cancel->status.next_attempt_ms, 0);

  auto purge = admin_outcome(AdminAction::purge, waiting, "domain closed", kNow);
  ASSERT_TRUE(purge);
  EXPECT_EQ(purge->status.state, queue::State::bounced);
  EXPECT_EQ(purge->status.category, "other");
  EXPECT_EQ(purge->status.reason, "admin");
  ASSERT_TRUE(purge->attempt);
  EXPECT_EQ(purge->attempt->text, "purged by the operator: domain closed");
  EXPECT_EQ(purge->attempt->time_ms, kNow);

  for (auto action : {AdminAction::retry, AdminAction::cancel, AdminAction::purge})
    EXPECT_FALSE(admin_outcome(action, pending(3, "c@x.test", queue::State::bounced, 0), "r", kNow));
}

TEST(CampaignControlStore, StatesAreKeptInTheQueueAndRefusalsAreTyped) {
  test::TempDir dir;
  const auto path = (dir.path() / "queue").string();
  {
    auto store = queue::open_rocksdb_store(path);
    CampaignControl control(*store);
    std::vector<std::pair<queue::CampaignId, RunState>> seen;
    control.on_change([&](queue::CampaignId id, const ControlState& s) { seen.emplace_back(id, s.state); });
    EXPECT_EQ(control.pause(1, "look first", "operator", kNow), ControlRefusal::none);
    EXPECT_EQ(control.pause(1, "again", "operator", kNow), ControlRefusal::already);
    EXPECT_EQ(control.resume(2), ControlRefusal::running);
    EXPECT_EQ(control.cancel(3, "wrong list", "operator", kNow), ControlRefusal::none);
    EXPECT_EQ(control.resume(3), ControlRefusal::cancelled);
    EXPECT_EQ(control.pause(3, "", "operator", kNow), ControlRefusal::cancelled);
    EXPECT_EQ(control.pause(4, "hard-bounce rate", "breaker", kNow), ControlRefusal::none);
    EXPECT_EQ(control.resume(4), ControlRefusal::none);
    EXPECT_EQ(seen.size(), 4u);
    EXPECT_EQ(*control.held_list(), (std::vector<queue::CampaignId>{1, 3}));
  }
  auto store = queue::open_rocksdb_store(path);
  CampaignControl control(*store);
  EXPECT_TRUE(control.held(1));
  EXPECT_FALSE(control.cancelled(1));
  EXPECT_TRUE(control.cancelled(3));
  EXPECT_FALSE(control.held(4));
  const ControlState one = control.state(1);
  EXPECT_EQ(one.reason, "look first");
  EXPECT_EQ(one.by, "operator");
  EXPECT_EQ(one.since_ms, kNow);
}

TEST(OperatorHolds, CoverADomainOrItsProviderUntilReleasedAndSurviveInTheQueue) {
  Shaper shaper(ShapingRules{});
  EXPECT_EQ(shaper.held_until("a.test", "", kNow), 0);
  shaper.hold("domain:a.test", {kNow + 1000, "asked to wait"});
  shaper.hold("provider:google", {kNow + 5000, ""});
  EXPECT_EQ(shaper.held_until("a.test", "", kNow), kNow + 1000);
  EXPECT_EQ(shaper.held_until("a.test", "", kNow + 1000), 0);  // over
  EXPECT_EQ(shaper.held_until("gmail.com", "google", kNow), kNow + 5000);
  EXPECT_EQ(shaper.holds(kNow).size(), 2u);
  EXPECT_TRUE(shaper.release("provider:google"));
  EXPECT_FALSE(shaper.release("provider:google"));
  EXPECT_EQ(shaper.held_until("gmail.com", "google", kNow), 0);

  test::TempDir dir;
  auto store = queue::open_rocksdb_store((dir.path() / "queue").string());
  persist_hold(*store, "domain:a.test", {kNow + 1000, "asked to wait"});
  persist_hold(*store, "domain:old.test", {kNow - 1, "over"});
  auto holds = load_holds(*store, kNow);
  ASSERT_EQ(holds.size(), 1u);
  EXPECT_EQ(holds.at("domain:a.test").reason, "asked to wait");
  erase_hold(*store, "domain:a.test");
  EXPECT_TRUE(load_holds(*store, kNow).empty());
}

TEST(BreakerConfigFile, SharesAsFractionsOrPercentagesAndBadValuesNameTheField) {
  test::TempDir dir;
  const auto file = dir.path() / "kurier.toml";
  test::write_file(file, "[breaker]\nhard_bounce_rate = \"2.5%\"\ncomplaint_rate = 0.002\nmin_attempts = 50\n");
  auto config = load_config(file);
  EXPECT_DOUBLE_EQ(config.breaker.hard_bounce_rate, 0.025);
  EXPECT_DOUBLE_EQ(config.breaker.complaint_rate, 0.002);
  EXPECT_EQ(config.breaker.min_attempts, 50u);
  EXPECT_EQ(config.breaker.min_deliveries, 1000u);
  test::write_file(file, "[breaker]\nhard_bounce_rate = \"lots\"\n");
  try {
    load_config(file);
    ADD_FAILURE() << "accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), "breaker.hard_bounce_rate");
    EXPECT_EQ(e.line(), 2u);
  }
  test::write_file(file, "[breaker]\nmin_attempt = 5\n");
  EXPECT_THROW(load_config(file), InputError);
}

}  // namespace
}  // namespace kurier::engine
