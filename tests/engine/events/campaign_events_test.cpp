// CampaignEvents against a real queue: intake events read back after the commit,
// later events with the VERP sender, and a disabled [events] section.
#include <gtest/gtest.h>

#include <mutex>

#include "engine/core/config.h"
#include "engine/core/verp.h"
#include "engine/events/campaign_events.h"
#include "tests/queue/helpers.h"

namespace kurier::engine {
namespace {

struct KeptEvents final : EventSink {
  explicit KeptEvents(std::vector<EventRecord>& out) : kept(out) {}
  void append(std::span<const EventRecord> events) noexcept override {
    std::lock_guard lock(mutex);
    kept.insert(kept.end(), events.begin(), events.end());
  }
  std::mutex mutex;
  std::vector<EventRecord>& kept;
};

class CampaignEventsTest : public queue::test::StoreFixture {};

TEST_F(CampaignEventsTest, IntakeLogsQueuedAndSuppressedRecipients) {
  auto writer = store_->begin_campaign(queue::test::make_campaign("spring"));
  for (queue::RecipientId i = 1; i <= 25'000; ++i) {
    auto r = queue::test::make_recipient(i, 1000, i % 10 == 0 ? queue::State::suppressed : queue::State::queued);
    if (i % 10 == 0) r.status.reason = "role";
    writer->add(r);
  }
  writer->commit();
  std::vector<EventRecord> kept;
  CampaignEvents events(*store_, std::make_unique<KeptEvents>(kept), "");
  events.intake(writer->id(), 5000);
  ASSERT_EQ(kept.size(), 25'000u);
  EXPECT_EQ(std::count_if(kept.begin(), kept.end(), [](auto& e) { return e.type == EventType::suppressed; }), 2500);
  EXPECT_EQ(kept[9].type, EventType::suppressed);
  EXPECT_EQ(kept[9].reason, "role");
  EXPECT_EQ(kept[0].type, EventType::intake);
  EXPECT_EQ(kept[0].campaign, "spring");
  EXPECT_EQ(kept[0].recipient, "user1@example.com");
  EXPECT_EQ(kept[0].time_ms, 5000);

  std::vector<EventRecord> none;
  CampaignEvents off(*store_, std::make_unique<KeptEvents>(none), "", /*intake_events=*/false);
  off.intake(writer->id(), 5000);
  EXPECT_TRUE(none.empty());
}

TEST_F(CampaignEventsTest, LaterAndAdminEventsCarryTheSenderAndTheWords) {
  auto campaign = queue::test::make_campaign("spring");
  campaign.verp_domain = "bounce.example";
  auto writer = store_->begin_campaign(campaign);
  writer->add(queue::test::make_recipient(7, 1000));
  writer->commit();
  auto recipient = *store_->recipient({writer->id(), 7});
  std::vector<EventRecord> kept;
  CampaignEvents events(*store_, std::make_unique<KeptEvents>(kept), "secret");
  events.later(recipient, {queue::EventKind::complaint, 9000, "other", "complaint abuse", "abuse"});
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].type, EventType::complaint);
  EXPECT_EQ(kept[0].reason, "complaint abuse");
  EXPECT_EQ(kept[0].sender, Verp("secret").address({writer->id(), 7}, "bounce.example"));
  auto facts = events.facts(writer->id());
  ASSERT_TRUE(facts);
  EventRecord admin = admin_event(recipient, *facts, "purge", "blocked provider", 10'000);
  events.append(std::span<const EventRecord>(&admin, 1));
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[1].type, EventType::admin);
  EXPECT_EQ(kept[1].text, "purge");
  EXPECT_NE(to_json_line(kept[1]).find("\"type\":\"admin\""), std::string::npos);
  EXPECT_FALSE(events.facts(999));
}

TEST_F(CampaignEventsTest, DisabledEventsOpenNothing) {
  Config config;
  config.queue.path = dir_.path() / "q";
  config.events.enabled = false;
  EXPECT_EQ(open_campaign_events(config, *store_), nullptr);
  config.events.enabled = true;
  auto events = open_campaign_events(config, *store_);
  ASSERT_NE(events, nullptr);
  EXPECT_TRUE(std::filesystem::exists(dir_.path() / "q" / "events.jsonl"));
}

}  // namespace
}  // namespace kurier::engine
