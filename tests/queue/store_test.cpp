// Behaviour of the RocksDB store (queue/store.h) on a real database in a temporary
// directory: campaign visibility, the schedule, outcomes, suppression, persistence,
// locking and concurrent record(). Test thread plus the threads a test starts.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <set>
#include <thread>

#include "queue/store.h"
#include "tests/common/process.h"
#include "tests/queue/helpers.h"

namespace kurier::queue::test {
namespace {

constexpr std::int64_t kNow = 1'700'000'000'000;

class StoreTest : public StoreFixture {};

std::vector<RecipientKey> keys_of(const std::vector<Recipient>& rs) {
  std::vector<RecipientKey> out;
  for (const auto& r : rs) out.push_back(r.key);
  return out;
}

TEST_F(StoreTest, CampaignIsInvisibleUntilCommitThenComplete) {
  auto writer = store_->begin_campaign(make_campaign("spring"));
  const auto id = writer->id();
  EXPECT_EQ(id, 1u);
  // Enough to flush several intake batches before the commit.
  for (RecipientId r = 1; r <= 2500; ++r) writer->add(make_recipient(r, kNow));

  EXPECT_FALSE(store_->find_campaign("spring"));
  EXPECT_FALSE(store_->campaign(id));
  EXPECT_TRUE(store_->campaigns().empty());
  EXPECT_FALSE(store_->recipient({id, 1}));
  EXPECT_TRUE(all_due(*store_, kNow).empty());
  EXPECT_FALSE(store_->next_due_ms());
  EXPECT_EQ(store_->counts(id).total(), 0u);
  int seen = 0;
  store_->for_each_recipient(id, [&](const Recipient&) { return ++seen, true; });
  EXPECT_EQ(seen, 0);

  writer->commit();
  auto c = store_->find_campaign("spring");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->id, id);
  EXPECT_EQ(c->recipient_count, 2500u);
  EXPECT_EQ(c->from, "Example News <news@example.com>");
  EXPECT_EQ(c->template_text, make_campaign("spring").template_text);
  EXPECT_EQ(c->fields, (std::vector<std::string>{"first", "city"}));
  EXPECT_EQ(c->settings, R"({"max_age":"5d"})");
  EXPECT_EQ(c->created_ms, kNow);
  ASSERT_EQ(store_->campaigns().size(), 1u);
  EXPECT_EQ(store_->campaign(id)->name, "spring");

  auto r = store_->recipient({id, 7});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->address, "user7@example.com");
  EXPECT_EQ(r->fields, (std::vector<std::string>{"First7", "Berlin"}));
  EXPECT_EQ(r->status.state, State::queued);
  EXPECT_EQ(r->status.next_attempt_ms, kNow);
  EXPECT_FALSE(store_->recipient({id, 2501}));
  EXPECT_EQ(all_due(*store_, kNow).size(), 2500u);
  EXPECT_EQ(store_->next_due_ms(), kNow);
  EXPECT_EQ(store_->counts(id).queued, 2500u);
}

TEST_F(StoreTest, DuplicateNameIsRefusedCommittedOrInProgress) {
  add_campaign(*store_, "dup", 1, kNow);
  EXPECT_THROW(store_->begin_campaign(make_campaign("dup")), StoreError);
  try {
    store_->begin_campaign(make_campaign("dup"));
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("\"dup\" already exists"), std::string::npos) << e.what();
  }

  auto pending = store_->begin_campaign(make_campaign("pending"));
  EXPECT_THROW(store_->begin_campaign(make_campaign("pending")), StoreError);
  pending->abort();
  auto again = store_->begin_campaign(make_campaign("pending"));  // free after abort
  again->commit();
  EXPECT_TRUE(store_->find_campaign("pending"));
  EXPECT_THROW(store_->begin_campaign(make_campaign("")), StoreError);
}

TEST_F(StoreTest, RecipientIdsMustIncrease) {
  auto w = store_->begin_campaign(make_campaign("order"));
  w->add(make_recipient(5, kNow));
  EXPECT_THROW(w->add(make_recipient(5, kNow)), std::invalid_argument);
  EXPECT_THROW(w->add(make_recipient(4, kNow)), std::invalid_argument);
  w->add(make_recipient(9, kNow));  // gaps are fine
  w->commit();
  EXPECT_EQ(store_->find_campaign("order")->recipient_count, 2u);
  EXPECT_THROW(w->add(make_recipient(10, kNow)), std::logic_error);
}

TEST_F(StoreTest, AbortAndDestroyedWriterLeaveNothingAndFreeTheSpace) {
  const auto kept = add_campaign(*store_, "kept", 10, kNow);
  const auto base_bytes = store_->disk_bytes();
  CampaignId aborted = 0;
  {
    auto w = store_->begin_campaign(make_campaign("aborted"));
    aborted = w->id();
    for (RecipientId r = 1; r <= 30000; ++r) w->add(make_recipient(r, kNow - 1000 + r % 7));
    // Attempts and non-pending states too, to cover every record type.
    w->add(make_recipient(30001, 0, State::suppressed));
    EXPECT_GT(store_->disk_bytes(), base_bytes + 1'000'000);
    w->abort();
    w->abort();  // idempotent
  }
  {
    auto w = store_->begin_campaign(make_campaign("dropped"));
    for (RecipientId r = 1; r <= 3000; ++r) w->add(make_recipient(r, kNow - 5));
  }  // destroyed without commit: aborted

  auto check_clean = [&] {
    EXPECT_FALSE(store_->find_campaign("aborted"));
    EXPECT_FALSE(store_->find_campaign("dropped"));
    EXPECT_FALSE(store_->recipient({aborted, 1}));
    ASSERT_EQ(store_->campaigns().size(), 1u);
    auto due = all_due(*store_, kNow);
    EXPECT_EQ(due.size(), 10u);
    for (const auto& r : due) EXPECT_EQ(r.key.campaign, kept);
    EXPECT_EQ(store_->next_due_ms(), kNow);
    EXPECT_EQ(store_->counts(aborted).total(), 0u);
  };
  check_clean();
  const auto after_abort = store_->disk_bytes();
  std::printf("[ queue    ] disk bytes: base %llu, after aborting 33,000 recipients %llu\n",
              static_cast<unsigned long long>(base_bytes), static_cast<unsigned long long>(after_abort));
  EXPECT_LT(after_abort, base_bytes + 200'000);

  reopen();
  check_clean();
  // Names are free again; ids are never reused.
  auto w = store_->begin_campaign(make_campaign("aborted"));
  EXPECT_GT(w->id(), aborted + 1);
  w->commit();
}

TEST_F(StoreTest, DueOrdersByDueCampaignRecipientWithLimitAndCursor) {
  // Campaign 1: recipients due at 300, 100, 200 (ids 1..3); campaign 2: due at 100.
  auto w1 = store_->begin_campaign(make_campaign("one"));
  w1->add(make_recipient(1, kNow + 300));
  w1->add(make_recipient(2, kNow + 100));
  w1->add(make_recipient(3, kNow + 200));
  w1->add(make_recipient(4, kNow + 100));
  w1->add(make_recipient(5, 0, State::suppressed));  // final: never scheduled
  w1->commit();
  auto w2 = store_->begin_campaign(make_campaign("two"));
  w2->add(make_recipient(1, kNow + 100));
  w2->add(make_recipient(2, kNow - 50));
  w2->commit();
  const CampaignId c1 = w1->id(), c2 = w2->id();

  EXPECT_EQ(keys_of(all_due(*store_, kNow + 1000)),
            (std::vector<RecipientKey>{{c2, 2}, {c1, 2}, {c1, 4}, {c2, 1}, {c1, 3}, {c1, 1}}));
  // Inclusive of now, exclusive of the future.
  EXPECT_EQ(keys_of(all_due(*store_, kNow + 99)), (std::vector<RecipientKey>{{c2, 2}}));
  EXPECT_EQ(all_due(*store_, kNow + 100).size(), 4u);
  EXPECT_TRUE(all_due(*store_, kNow - 51).empty());

  ScheduleCursor cursor;
  auto a = store_->due(kNow + 1000, 2, cursor);
  EXPECT_EQ(keys_of(a), (std::vector<RecipientKey>{{c2, 2}, {c1, 2}}));
  EXPECT_EQ(a[1].status.next_attempt_ms, kNow + 100);
  auto b = store_->due(kNow + 1000, 3, cursor);
  EXPECT_EQ(keys_of(b), (std::vector<RecipientKey>{{c1, 4}, {c2, 1}, {c1, 3}}));
  auto c = store_->due(kNow + 1000, 3, cursor);
  EXPECT_EQ(keys_of(c), (std::vector<RecipientKey>{{c1, 1}}));
  const auto at_end = cursor.after;
  EXPECT_TRUE(store_->due(kNow + 1000, 3, cursor).empty());
  EXPECT_EQ(cursor.after, at_end);  // unchanged when nothing is returned
  EXPECT_TRUE(store_->due(kNow + 1000, 0, cursor).empty());
  cursor.reset();
  EXPECT_EQ(store_->due(kNow + 1000, 10, cursor).size(), 6u);

  EXPECT_EQ(store_->next_due_ms(), kNow - 50);
  EXPECT_EQ(store_->next_due_ms(c1), kNow + 100);
  EXPECT_EQ(store_->next_due_ms(c2), kNow - 50);
  EXPECT_FALSE(store_->next_due_ms(99));
}

TEST_F(StoreTest, DueSkipsCampaignsBeingWrittenAndShowsThemAfterCommit) {
  const auto done = add_campaign(*store_, "done", 3, kNow);
  auto w = store_->begin_campaign(make_campaign("busy"));
  for (RecipientId r = 1; r <= 5000; ++r) w->add(make_recipient(r, kNow - 10 + r % 3));  // due earlier
  w->add(make_recipient(5001, kNow));  // same bucket as "done"'s entries, campaign after it
  ScheduleCursor cursor;
  auto due = store_->due(kNow, 100, cursor);
  EXPECT_EQ(keys_of(due), (std::vector<RecipientKey>{{done, 1}, {done, 2}, {done, 3}}));
  EXPECT_EQ(store_->next_due_ms(), kNow);
  EXPECT_FALSE(store_->next_due_ms(w->id()));
  w->commit();
  EXPECT_EQ(store_->due(kNow, 100'000, cursor).size(), 1u);  // after the cursor: (busy, 5001)
  cursor.reset();
  EXPECT_EQ(store_->due(kNow, 100'000, cursor).size(), 5004u);
  EXPECT_EQ(store_->next_due_ms(), kNow - 10);
  EXPECT_EQ(store_->next_due_ms(w->id()), kNow - 10);
}

TEST_F(StoreTest, RecordMovesSchedulesAndLogsAttempts) {
  const auto id = add_campaign(*store_, "flow", 4, kNow);
  auto first = all_due(*store_, kNow);
  ASSERT_EQ(first.size(), 4u);

  // 1: queued -> deferred -> delivered. 2: queued -> bounced. 3: queued -> deferred
  // -> expired. 4 stays queued.
  std::vector<Outcome> batch = {
      make_outcome(first[0], State::deferred, kNow, kNow + 60'000,
                   make_attempt(kNow, 451, "4.7.1", "greylisted, try again", "deferred")),
      make_outcome(first[1], State::bounced, kNow, 0,
                   make_attempt(kNow, 550, "5.1.1", "no such user", "bounced hard userunknown")),
      make_outcome(first[2], State::deferred, kNow, kNow + 30'000,
                   make_attempt(kNow, 421, "4.4.2", "timeout", "deferred")),
  };
  batch[1].status.category = "hard";
  batch[1].status.reason = "userunknown";
  store_->record(batch);

  auto due_now = all_due(*store_, kNow);
  EXPECT_EQ(keys_of(due_now), (std::vector<RecipientKey>{{id, 4}}));
  auto later = all_due(*store_, kNow + 60'000);
  ASSERT_EQ(keys_of(later), (std::vector<RecipientKey>{{id, 4}, {id, 3}, {id, 1}}));
  EXPECT_EQ(later[1].status.next_attempt_ms, kNow + 30'000);
  EXPECT_EQ(later[1].status.state, State::deferred);
  EXPECT_EQ(later[1].status.attempts, 1);
  EXPECT_EQ(store_->next_due_ms(), kNow);

  auto c = store_->counts(id);
  EXPECT_EQ(c.queued, 1u);
  EXPECT_EQ(c.deferred, 2u);
  EXPECT_EQ(c.bounced, 1u);
  EXPECT_EQ(c.total(), 4u);
  EXPECT_EQ(c.pending(), 3u);

  auto bounced = store_->recipient({id, 2});
  ASSERT_TRUE(bounced);
  EXPECT_EQ(bounced->status.state, State::bounced);
  EXPECT_EQ(bounced->status.code, 550);
  EXPECT_EQ(bounced->status.enhanced, "5.1.1");
  EXPECT_EQ(bounced->status.category, "hard");
  EXPECT_EQ(bounced->status.reason, "userunknown");
  EXPECT_EQ(bounced->status.last_attempt_ms, kNow);

  store_->record(std::vector<Outcome>{
      make_outcome(later[2], State::delivered, kNow + 60'000, 0,
                   make_attempt(kNow + 60'000, 250, "2.0.0", "ok queued as 123", "delivered")),
      make_outcome(later[1], State::expired, kNow + 60'000, 0,
                   make_attempt(kNow + 60'000, 421, "4.4.2", "timeout", "expired")),
  });
  EXPECT_EQ(keys_of(all_due(*store_, std::numeric_limits<std::int64_t>::max())),
            (std::vector<RecipientKey>{{id, 4}}));
  c = store_->counts(id);
  EXPECT_EQ(c.queued, 1u);
  EXPECT_EQ(c.delivered, 1u);
  EXPECT_EQ(c.bounced, 1u);
  EXPECT_EQ(c.expired, 1u);
  EXPECT_EQ(c.deferred, 0u);

  auto log = store_->attempts({id, 1});
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].code, 451);
  EXPECT_EQ(log[0].enhanced, "4.7.1");
  EXPECT_EQ(log[0].text, "greylisted, try again");
  EXPECT_EQ(log[0].classification, "deferred");
  EXPECT_EQ(log[0].time_ms, kNow);
  EXPECT_EQ(log[0].mx_host, "mx1.example.com");
  EXPECT_EQ(log[0].mx_address, "192.0.2.25");
  EXPECT_TRUE(log[0].tls);
  EXPECT_EQ(log[0].tls_detail, "TLSv1.3 TLS_AES_256_GCM_SHA384");
  EXPECT_EQ(log[1].code, 250);
  EXPECT_EQ(log[1].time_ms, kNow + 60'000);
  EXPECT_EQ(log[1].classification, "delivered");
  EXPECT_EQ(store_->attempts({id, 3}).size(), 2u);
  EXPECT_EQ(store_->attempts({id, 2}).size(), 1u);
  EXPECT_TRUE(store_->attempts({id, 4}).empty());
  auto delivered = store_->recipient({id, 1});
  EXPECT_EQ(delivered->status.state, State::delivered);
  EXPECT_EQ(delivered->status.attempts, 2);

  // A late event on a final recipient (a DSN after the 250) changes its state and
  // appends to the log, without scheduling anything.
  Outcome late;
  late.key = {id, 1};
  late.status = delivered->status;
  late.status.state = State::bounced;
  late.status.reason = "mailboxfull";
  late.attempt = make_attempt(kNow + 90'000, 552, "5.2.2", "late DSN: mailbox full", "late_bounce");
  store_->record(std::span(&late, 1));
  EXPECT_EQ(store_->attempts({id, 1}).size(), 3u);
  EXPECT_EQ(store_->attempts({id, 1})[2].classification, "late_bounce");
  EXPECT_EQ(store_->counts(id).bounced, 2u);
  EXPECT_EQ(all_due(*store_, std::numeric_limits<std::int64_t>::max()).size(), 1u);
}

TEST_F(StoreTest, RecordWithStalePreviousDueStillLeavesOneScheduleEntry) {
  const auto id = add_campaign(*store_, "stale", 2, kNow);
  Outcome o;
  o.key = {id, 1};
  o.previous_due_ms = kNow - 12345;  // wrong: the store knows the real entry
  o.status.state = State::deferred;
  o.status.next_attempt_ms = kNow + 10;
  store_->record(std::span(&o, 1));
  auto due = all_due(*store_, kNow + 100);
  EXPECT_EQ(keys_of(due), (std::vector<RecipientKey>{{id, 2}, {id, 1}}));

  // Two outcomes for one recipient in one call apply in order.
  std::vector<Outcome> twice(2);
  twice[0].key = twice[1].key = {id, 2};
  twice[0].previous_due_ms = kNow;
  twice[0].status.state = State::deferred;
  twice[0].status.next_attempt_ms = kNow + 20;
  twice[0].attempt = make_attempt(kNow, 450, "4.2.0", "busy", "deferred");
  twice[1].previous_due_ms = kNow + 20;
  twice[1].status.state = State::delivered;
  twice[1].attempt = make_attempt(kNow + 20, 250, "2.0.0", "ok", "delivered");
  store_->record(twice);
  EXPECT_EQ(keys_of(all_due(*store_, kNow + 100)), (std::vector<RecipientKey>{{id, 1}}));
  auto log = store_->attempts({id, 2});
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].code, 450);
  EXPECT_EQ(log[1].code, 250);

  // Unknown recipients and campaigns are ignored.
  Outcome ghost;
  ghost.key = {id, 99};
  ghost.status.state = State::delivered;
  Outcome ghost_campaign;
  ghost_campaign.key = {42, 1};
  ghost_campaign.status.state = State::deferred;
  ghost_campaign.status.next_attempt_ms = kNow;
  store_->record(std::vector<Outcome>{ghost, ghost_campaign});
  EXPECT_FALSE(store_->recipient({id, 99}));
  EXPECT_EQ(all_due(*store_, kNow + 100).size(), 1u);
}

TEST_F(StoreTest, EntriesMovedBeforeTheScannedHeadAreStillFound) {
  // A head scan raises the in-memory low-water mark past the tombstones; an entry
  // later scheduled before that mark must still be returned.
  const auto id = add_campaign(*store_, "head", 200, kNow);
  auto due = all_due(*store_, kNow);
  std::vector<Outcome> done;
  for (std::size_t i = 0; i < 150; ++i) done.push_back(make_outcome(due[i], State::delivered, kNow, 0, {}));
  store_->record(done);
  EXPECT_EQ(all_due(*store_, kNow).size(), 50u);  // raises the mark to (kNow, id, 151)
  auto o = make_outcome(due[190], State::deferred, kNow, kNow - 1000, {});
  store_->record(std::span(&o, 1));
  auto again = all_due(*store_, kNow);
  ASSERT_EQ(again.size(), 50u);
  EXPECT_EQ(again[0].key, (RecipientKey{id, 191}));
  EXPECT_EQ(store_->next_due_ms(), kNow - 1000);
  reopen();
  EXPECT_EQ(all_due(*store_, kNow).size(), 50u);
}

TEST_F(StoreTest, ForEachRecipientAndCountsCoverEveryState) {
  auto w = store_->begin_campaign(make_campaign("mixed"));
  for (RecipientId r = 1; r <= 1000; ++r) {
    auto rec = make_recipient(r, kNow, r % 10 == 0 ? State::suppressed : State::queued);
    if (rec.status.state == State::suppressed) rec.status.reason = "role";
    w->add(rec);
  }
  w->commit();
  const auto id = w->id();
  auto c = store_->counts(id);
  EXPECT_EQ(c.queued, 900u);
  EXPECT_EQ(c.suppressed, 100u);
  EXPECT_EQ(all_due(*store_, kNow).size(), 900u);
  EXPECT_EQ(store_->recipient({id, 10})->status.reason, "role");

  RecipientId expect = 1;
  store_->for_each_recipient(id, [&](const Recipient& r) {
    EXPECT_EQ(r.key, (RecipientKey{id, expect}));
    EXPECT_EQ(r.address, "user" + std::to_string(expect) + "@example.com");
    EXPECT_EQ(r.status.state, expect % 10 == 0 ? State::suppressed : State::queued);
    ++expect;
    return true;
  });
  EXPECT_EQ(expect, 1001u);
  int calls = 0;
  store_->for_each_recipient(id, [&](const Recipient&) { return ++calls < 5; });
  EXPECT_EQ(calls, 5);
}

TEST_F(StoreTest, EverythingSurvivesReopen) {
  const auto id = add_campaign(*store_, "durable", 3, kNow);
  auto due = all_due(*store_, kNow);
  store_->record(std::vector<Outcome>{
      make_outcome(due[0], State::deferred, kNow, kNow + 500, make_attempt(kNow, 451, "4.7.1", "later", "deferred")),
      make_outcome(due[1], State::delivered, kNow, 0, make_attempt(kNow, 250, "2.0.0", "ok", "delivered"))});
  store_->suppress({"Someone@Example.com", "complaint", kNow});

  reopen();
  auto c = store_->find_campaign("durable");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->id, id);
  EXPECT_EQ(c->recipient_count, 3u);
  EXPECT_EQ(keys_of(all_due(*store_, kNow + 500)), (std::vector<RecipientKey>{{id, 3}, {id, 1}}));
  EXPECT_EQ(store_->counts(id).delivered, 1u);
  EXPECT_EQ(store_->attempts({id, 1})[0].text, "later");
  EXPECT_EQ(store_->suppression("someone@example.com")->reason, "complaint");

  // Attempt numbering continues after the reopen.
  auto again = all_due(*store_, kNow + 500);
  store_->record(std::vector<Outcome>{make_outcome(again[1], State::delivered, kNow + 500, 0,
                                                   make_attempt(kNow + 500, 250, "2.0.0", "ok", "delivered"))});
  auto log = store_->attempts({id, 1});
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].code, 451);
  EXPECT_EQ(log[1].code, 250);
  EXPECT_EQ(store_->begin_campaign(make_campaign("next"))->id(), id + 1);
}

TEST_F(StoreTest, SecondOpenOfTheSamePathFailsNamingTheLock) {
  try {
    auto second = open_rocksdb_store(path());
    FAIL() << "second open succeeded";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("lock held by another process"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path()), std::string::npos) << e.what();
  }
  // The first store is unaffected.
  add_campaign(*store_, "still-works", 1, kNow);
  EXPECT_TRUE(store_->find_campaign("still-works"));
}

TEST_F(StoreTest, OpenFailureIsAStoreError) {
  kurier::test::write_file(dir_.path() / "file", "not a directory");
  EXPECT_THROW(open_rocksdb_store((dir_.path() / "file").string()), StoreError);
}

TEST_F(StoreTest, SuppressionIsCaseInsensitive) {
  EXPECT_FALSE(store_->suppression("a@example.com"));
  store_->suppress({"Bob@Example.COM", "hard-bounce userunknown", 10});
  store_->suppress({"alice@example.com", "unsubscribe", 20});
  store_->suppress({"carol@EXAMPLE.com", "import", 30});
  auto s = store_->suppression("BOB@example.com");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->address, "bob@example.com");
  EXPECT_EQ(s->reason, "hard-bounce userunknown");
  EXPECT_EQ(s->time_ms, 10);
  store_->suppress({"bob@example.com", "complaint", 40});  // replaces
  EXPECT_EQ(store_->suppression("bob@example.com")->reason, "complaint");

  std::vector<std::string> all;
  store_->for_each_suppression([&](const Suppression& e) { return all.push_back(e.address), true; });
  EXPECT_EQ(all, (std::vector<std::string>{"alice@example.com", "bob@example.com", "carol@example.com"}));
  int calls = 0;
  store_->for_each_suppression([&](const Suppression&) { return ++calls < 2; });
  EXPECT_EQ(calls, 2);

  EXPECT_TRUE(store_->unsuppress("ALICE@example.com"));
  EXPECT_FALSE(store_->unsuppress("alice@example.com"));
  EXPECT_FALSE(store_->suppression("alice@example.com"));
  reopen();
  EXPECT_TRUE(store_->suppression("Carol@Example.com"));
  EXPECT_FALSE(store_->suppression("alice@example.com"));
}

TEST_F(StoreTest, ConcurrentRecordFromFourThreadsLosesNothing) {
  constexpr std::uint32_t kPerThread = 1000;
  constexpr int kThreads = 4;
  constexpr std::size_t kBatch = 50;
  const auto id = add_campaign(*store_, "parallel", kPerThread * kThreads, kNow);
  auto due = all_due(*store_, kNow);
  ASSERT_EQ(due.size(), kPerThread * kThreads);

  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        std::vector<Outcome> batch;
        for (std::uint32_t i = 0; i < kPerThread; ++i) {
          const auto& r = due[t * kPerThread + i];
          // Odd ones are deferred first, then delivered, in separate calls.
          batch.push_back(make_outcome(r, r.key.recipient % 2 ? State::deferred : State::delivered, kNow,
                                       kNow + 1000, make_attempt(kNow, 250, "2.0.0", "ok", "delivered")));
          if (batch.size() == kBatch) store_->record(batch), batch.clear();
        }
        if (!batch.empty()) store_->record(batch);
      } catch (...) {
        ++failures;
      }
    });
  }
  // A scanner races with the writers; it must never see a final recipient.
  std::atomic<bool> stop{false};
  std::thread scanner([&] {
    while (!stop) {
      for (const auto& r : all_due(*store_, kNow + 1000))
        if (is_final(r.status.state)) ++failures;
    }
  });
  for (auto& t : threads) t.join();
  stop = true;
  scanner.join();
  EXPECT_EQ(failures, 0);

  auto c = store_->counts(id);
  EXPECT_EQ(c.delivered, kPerThread * kThreads / 2);
  EXPECT_EQ(c.deferred, kPerThread * kThreads / 2);
  auto deferred = all_due(*store_, kNow + 1000);
  ASSERT_EQ(deferred.size(), kPerThread * kThreads / 2);
  std::vector<Outcome> finish;
  for (const auto& r : deferred) finish.push_back(make_outcome(r, State::delivered, kNow + 1000, 0, {}));
  store_->record(finish);
  EXPECT_EQ(store_->counts(id).delivered, kPerThread * kThreads);
  EXPECT_TRUE(all_due(*store_, std::numeric_limits<std::int64_t>::max()).empty());
  EXPECT_EQ(store_->attempts({id, 1}).size(), 1u);
}

TEST_F(StoreTest, ScansRacingRescheduleNeverLoseAnEntry) {
  // Recorders move entries back and forth across the head of the schedule while
  // scanners keep raising the low-water mark; afterwards every recipient must still
  // be found exactly once.
  constexpr std::uint32_t kRecipients = 2000;
  const auto id = add_campaign(*store_, "churn", kRecipients, kNow);
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      try {
        for (int round = 0; round < 40; ++round) {
          std::vector<Outcome> batch;
          for (int i = 0; i < 25; ++i) {
            // Each thread owns the recipients of its parity, so no two threads
            // record the same recipient at once (the engine's guarantee too).
            RecipientId r = static_cast<RecipientId>((rng() % (kRecipients / 2)) * 2 + 1 + t);
            auto current = store_->recipient({id, r});
            if (!current) throw std::runtime_error("lost");
            auto delta = static_cast<std::int64_t>(rng() % 2000) - 1000;
            batch.push_back(make_outcome(*current, State::deferred, kNow, kNow + delta, {}));
            store_->record(batch);
            batch.clear();
          }
        }
      } catch (...) {
        ++errors;
      }
    });
  }
  std::thread scanner([&] {
    while (!stop) all_due(*store_, kNow + 2000);
  });
  for (auto& t : threads) t.join();
  stop = true;
  scanner.join();
  EXPECT_EQ(errors, 0);
  auto due = all_due(*store_, kNow + 2000);
  std::set<RecipientKey> unique;
  for (const auto& r : due) unique.insert(r.key);
  EXPECT_EQ(due.size(), kRecipients);
  EXPECT_EQ(unique.size(), kRecipients);
}

}  // namespace
}  // namespace kurier::queue::test
