// Later events on recipients (late bounce, complaint, ...) and the address-level
// bookkeeping (suppression list, soft bounces in a row) of the RocksDB store, on a
// real database in a temporary directory. Test thread only.
#include <gtest/gtest.h>

#include "queue/store.h"
#include "tests/common/process.h"
#include "tests/queue/helpers.h"

namespace kurier::queue::test {
namespace {

constexpr std::int64_t kNow = 1'700'000'000'000;

class EventTest : public StoreFixture {
 protected:
  // Records `state` for recipient `id` of campaign `c` (category/reason as given).
  void record(CampaignId c, RecipientId id, State state, const std::string& category, const std::string& reason,
              std::optional<AddressUpdate> update) {
    auto r = store_->recipient({c, id});
    ASSERT_TRUE(r);
    auto o = make_outcome(*r, state, kNow, kNow + 60'000, make_attempt(kNow, 550, "5.1.1", "no", "x"));
    o.status.category = category;
    o.status.reason = reason;
    o.address_update = std::move(update);
    store_->record(std::span(&o, 1));
  }
};

Event late_bounce(std::int64_t t, const std::string& reason) {
  return Event{EventKind::late_bounce, t, "hard", reason, "5.1.1 550 user unknown"};
}

TEST_F(EventTest, EventsAttachWithoutChangingStateAndSurviveReopen) {
  auto c = add_campaign(*store_, "spring", 3, kNow);
  record(c, 1, State::delivered, "", "delivered", std::nullopt);

  auto result = store_->add_event({c, 1}, late_bounce(kNow + 1000, "userunknown"));
  EXPECT_TRUE(result.applied);
  EXPECT_FALSE(result.suppressed);
  EXPECT_TRUE(store_->add_event({c, 1}, Event{EventKind::autoreply, kNow + 2000, "", "vacation", "Out of office"}).applied);
  EXPECT_FALSE(store_->add_event({c, 99}, late_bounce(kNow, "userunknown")).applied);  // no such recipient
  EXPECT_FALSE(store_->add_event({c + 7, 1}, late_bounce(kNow, "userunknown")).applied);  // no such campaign

  reopen();
  auto r = store_->recipient({c, 1});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status.state, State::delivered);
  ASSERT_TRUE(r->status.event);
  EXPECT_EQ(r->status.event->kind, EventKind::autoreply);  // the latest
  auto log = store_->events({c, 1});
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].kind, EventKind::late_bounce);
  EXPECT_EQ(log[0].reason, "userunknown");
  EXPECT_EQ(log[0].category, "hard");
  EXPECT_EQ(log[0].time_ms, kNow + 1000);
  EXPECT_EQ(log[1].detail, "Out of office");
  EXPECT_TRUE(store_->events({c, 2}).empty());
  EXPECT_FALSE(store_->recipient({c, 2})->status.event);

  // for_each_recipient sees the events in step; counts count recipients by latest event.
  ASSERT_TRUE(store_->add_event({c, 3}, Event{EventKind::complaint, kNow, "other", "complaint abuse", "abuse"}).applied);
  std::vector<std::string> seen;
  store_->for_each_recipient(c, [&](const Recipient& rec) {
    seen.push_back(rec.status.event ? to_string(rec.status.event->kind) : "-");
    return true;
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"autoreply", "-", "complaint"}));
  auto counts = store_->counts(c);
  EXPECT_EQ(counts.autoreply, 1u);
  EXPECT_EQ(counts.complaint, 1u);
  EXPECT_EQ(counts.late_bounce, 0u);
  EXPECT_EQ(counts.total(), 3u);  // events do not add recipients
}

TEST_F(EventTest, RecordKeepsEventsAndEventsKeepTheSchedule) {
  auto c = add_campaign(*store_, "spring", 1, kNow);
  ASSERT_TRUE(store_->add_event({c, 1}, Event{EventKind::delay, kNow, "soft", "expired", "4.4.7"}).applied);
  // Still queued and due: the event touched neither state nor schedule.
  ScheduleCursor cursor;
  auto due = store_->due(kNow, 10, cursor);
  ASSERT_EQ(due.size(), 1u);
  auto o = make_outcome(due[0], State::delivered, kNow, 0, make_attempt(kNow, 250, "2.0.0", "ok", "delivered"));
  store_->record(std::span(&o, 1));
  auto r = store_->recipient({c, 1});
  EXPECT_EQ(r->status.state, State::delivered);
  ASSERT_TRUE(r->status.event);
  EXPECT_EQ(r->status.event->kind, EventKind::delay);
}

TEST_F(EventTest, HardBounceOutcomeSuppressesInTheSameRecordAndKeepsTheFirstReason) {
  auto c = add_campaign(*store_, "spring", 2, kNow);
  record(c, 1, State::bounced, "hard", "userunknown",
         AddressUpdate{AddressUpdate::Kind::suppress, "User1@Example.com", "hard-bounce userunknown", 0, kNow});
  auto s = store_->suppression("user1@example.com");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->reason, "hard-bounce userunknown");
  EXPECT_EQ(s->time_ms, kNow);

  // A later complaint for a listed address keeps the first reason and says so.
  auto result = store_->add_event({c, 1}, Event{EventKind::complaint, kNow + 5, "other", "complaint abuse", ""},
                                  AddressUpdate{AddressUpdate::Kind::suppress, "user1@example.com", "complaint abuse",
                                                0, kNow + 5});
  EXPECT_TRUE(result.applied);
  EXPECT_FALSE(result.suppressed);
  EXPECT_EQ(store_->suppression("user1@example.com")->reason, "hard-bounce userunknown");

  result = store_->add_event({c, 2}, Event{EventKind::unsubscribe, kNow, "other", "unsubscribe", "opt-out"},
                             AddressUpdate{AddressUpdate::Kind::suppress, "user2@example.com", "unsubscribe", 0, kNow});
  EXPECT_TRUE(result.suppressed);
  reopen();
  EXPECT_EQ(store_->suppression("user2@example.com")->reason, "unsubscribe");
}

TEST_F(EventTest, SoftBouncesInARowSuppressAtTheLimitAndADeliveryResetsTheCount) {
  auto c = add_campaign(*store_, "spring", 6, kNow);
  const std::string address = "user1@example.com";  // the same address in every outcome below
  auto soft = [&](RecipientId id) {
    record(c, id, State::bounced, "soft", "mailboxfull",
           AddressUpdate{AddressUpdate::Kind::soft_bounce, address, "mailboxfull", 3, kNow});
  };
  soft(1);
  soft(2);
  EXPECT_EQ(store_->soft_bounces(address), 2u);
  EXPECT_FALSE(store_->suppression(address));
  record(c, 3, State::delivered, "", "delivered", AddressUpdate{AddressUpdate::Kind::delivered, address, "", 0, kNow});
  EXPECT_EQ(store_->soft_bounces(address), 0u);
  soft(4);
  soft(5);
  EXPECT_FALSE(store_->suppression(address));
  // The third in a row, this time from a late bounce.
  auto result = store_->add_event({c, 6}, Event{EventKind::late_bounce, kNow, "soft", "mailboxfull", ""},
                                  AddressUpdate{AddressUpdate::Kind::soft_bounce, "USER1@example.com", "mailboxfull",
                                                3, kNow});
  EXPECT_TRUE(result.suppressed);
  EXPECT_EQ(store_->soft_bounces(address), 3u);
  ASSERT_TRUE(store_->suppression(address));
  EXPECT_EQ(store_->suppression(address)->reason, "soft-bounce mailboxfull x3");
}

TEST_F(EventTest, SeveralUpdatesOfOneAddressInOneRecordApplyInOrder) {
  add_campaign(*store_, "spring", 3, kNow);
  std::vector<Outcome> outcomes;
  ScheduleCursor cursor;
  auto due = store_->due(kNow, 10, cursor);
  ASSERT_EQ(due.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    auto o = make_outcome(due[i], State::expired, kNow, 0, std::nullopt);
    o.address_update = AddressUpdate{AddressUpdate::Kind::soft_bounce, "same@example.com", "expired", 2, kNow};
    outcomes.push_back(std::move(o));
  }
  store_->record(outcomes);
  EXPECT_EQ(store_->soft_bounces("same@example.com"), 3u);
  EXPECT_EQ(store_->suppression("same@example.com")->reason, "soft-bounce expired x2");
}

// A delivery reads no suppression entry; a later update of the same address in the
// batch must still see the stored one (the first reason stays).
TEST_F(EventTest, AnUpdateAfterADeliveryInOneRecordSeesTheStoredSuppression) {
  add_campaign(*store_, "spring", 2, kNow);
  store_->suppress(Suppression{"same@example.com", "import", kNow});
  ScheduleCursor cursor;
  auto due = store_->due(kNow, 10, cursor);
  ASSERT_EQ(due.size(), 2u);
  std::vector<Outcome> outcomes;
  auto delivered = make_outcome(due[0], State::delivered, kNow, 0, std::nullopt);
  delivered.address_update = AddressUpdate{AddressUpdate::Kind::delivered, "Same@example.com", "", 0, kNow};
  outcomes.push_back(std::move(delivered));
  auto soft = make_outcome(due[1], State::expired, kNow, 0, std::nullopt);
  soft.address_update = AddressUpdate{AddressUpdate::Kind::soft_bounce, "same@example.com", "expired", 1, kNow};
  outcomes.push_back(std::move(soft));
  store_->record(outcomes);
  EXPECT_EQ(store_->soft_bounces("same@example.com"), 1u);
  EXPECT_EQ(store_->suppression("same@example.com")->reason, "import");
}

TEST_F(EventTest, SuppressAllStoresEveryEntryInOneBatch) {
  std::vector<Suppression> entries = {{"a@example.com", "import", kNow}, {"B@Example.com", "robinson", kNow + 1}};
  store_->suppress_all(entries);
  reopen();
  EXPECT_EQ(store_->suppression("a@example.com")->reason, "import");
  EXPECT_EQ(store_->suppression("b@example.com")->reason, "robinson");
  EXPECT_EQ(store_->suppression("b@example.com")->time_ms, kNow + 1);
  store_->suppress_all({});  // nothing to do, no error
}

}  // namespace
}  // namespace kurier::queue::test

namespace kurier::queue::test {
namespace {

TEST(StoreWithSuppressedRecipients, QueuedRecipientsBesideSuppressedOnesAreDue) {
  kurier::test::TempDir dir;
  auto store = open_rocksdb_store((dir.path() / "q").string());
  auto writer = store->begin_campaign(make_campaign("mixed"));
  writer->add(make_recipient(1, kNow));
  auto suppressed = make_recipient(2, 0, State::suppressed);
  suppressed.status.reason = "duplicate";
  writer->add(suppressed);
  writer->commit();
  ScheduleCursor cursor;
  auto due = store->due(kNow + 10, 100, cursor);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].key.recipient, 1u);
  EXPECT_EQ(store->next_due_ms(writer->id()), kNow);
}

}  // namespace
}  // namespace kurier::queue::test
