// The store's control records, the cancelled state and a reader beside the owner
// (Access::read_only), on a real RocksDB in a temporary directory. Test thread only.
#include <gtest/gtest.h>

#include <map>

#include "queue/store.h"
#include "tests/queue/helpers.h"

namespace kurier::queue::test {
namespace {

constexpr std::int64_t kNow = 1'700'000'000'000;

class ControlTest : public StoreFixture {};

TEST_F(ControlTest, ControlRecordsAreKeptByNameAndSurviveAReopen) {
  EXPECT_FALSE(store_->control("campaign/1"));
  store_->put_control("campaign/1", R"({"state":"paused"})");
  store_->put_control("campaign/2", R"({"state":"cancelled"})");
  store_->put_control("suspend/domain:x.test", "1700000000000");
  store_->put_control("campaign/1", R"({"state":"running"})");  // replaces
  reopen();
  EXPECT_EQ(store_->control("campaign/1"), R"({"state":"running"})");

  std::map<std::string, std::string> seen;
  store_->for_each_control("campaign/", [&](std::string_view name, std::string_view value) {
    seen.emplace(name, value);
    return true;
  });
  EXPECT_EQ(seen, (std::map<std::string, std::string>{{"campaign/1", R"({"state":"running"})"},
                                                      {"campaign/2", R"({"state":"cancelled"})"}}));
  store_->erase_control("campaign/2");
  EXPECT_FALSE(store_->control("campaign/2"));
  int all = 0;
  store_->for_each_control("", [&](std::string_view, std::string_view) { return ++all, true; });
  EXPECT_EQ(all, 2);
}

TEST_F(ControlTest, CancelledIsFinalAndCountedApart) {
  auto id = add_campaign(*store_, "spring", 3, kNow);
  auto due = all_due(*store_, kNow);
  ASSERT_EQ(due.size(), 3u);
  std::vector<Outcome> outcomes{make_outcome(due[0], State::cancelled, kNow, 0, std::nullopt),
                                make_outcome(due[1], State::delivered, kNow, 0, std::nullopt)};
  outcomes[0].status.reason = "operator";
  store_->record(outcomes);
  auto counts = store_->counts(id);
  EXPECT_EQ(counts.cancelled, 1u);
  EXPECT_EQ(counts.delivered, 1u);
  EXPECT_EQ(counts.queued, 1u);
  EXPECT_EQ(counts.total(), 3u);
  EXPECT_TRUE(is_final(State::cancelled));
  EXPECT_EQ(std::string(to_string(State::cancelled)), "cancelled");
  EXPECT_EQ(state_from_string("cancelled"), State::cancelled);
  // Its schedule entry is gone: only the queued one is still due.
  EXPECT_EQ(all_due(*store_, kNow).size(), 1u);
  reopen();
  EXPECT_EQ(store_->recipient({id, 1})->status.state, State::cancelled);
}

TEST_F(ControlTest, AReaderSeesTheOwnersCommittedDataWithoutItsLockAndCannotWrite) {
  auto id = add_campaign(*store_, "spring", 50, kNow);
  store_->suppress({"gone@example.com", "hard-bounce userunknown", kNow});
  store_->put_control("campaign/1", "paused");
  // A second owner is refused: the lock is held.
  try {
    open_rocksdb_store(path());
    ADD_FAILURE() << "a second owner opened the queue";
  } catch (const StoreError& e) {
    EXPECT_TRUE(e.is_lock_held()) << e.what();
  }
  auto reader = open_rocksdb_store(path(), Access::read_only);
  ASSERT_TRUE(reader->find_campaign("spring"));
  EXPECT_EQ(reader->counts(id).queued, 50u);
  EXPECT_TRUE(reader->suppression("gone@example.com"));
  EXPECT_EQ(reader->control("campaign/1"), "paused");
  int seen = 0;
  reader->for_each_recipient(id, [&](const Recipient&) { return ++seen, true; });
  EXPECT_EQ(seen, 50);
  EXPECT_EQ(all_due(*reader, kNow).size(), 50u);
  EXPECT_TRUE(reader->recipient({id, 7}));
  EXPECT_THROW(reader->suppress({"x@example.com", "import", kNow}), StoreError);
  EXPECT_THROW(reader->put_control("campaign/1", "running"), StoreError);
  EXPECT_THROW(reader->begin_campaign(make_campaign("autumn"))->commit(), StoreError);
  // The owner goes on writing while the reader is open.
  store_->suppress({"later@example.com", "import", kNow});
  EXPECT_TRUE(store_->suppression("later@example.com"));
  reader.reset();
  EXPECT_TRUE(open_rocksdb_store(path(), Access::read_only)->suppression("later@example.com"));
}

TEST_F(ControlTest, DuePassesOverHeldCampaignsAndSeesThemAgainOnceReleased) {
  auto a = add_campaign(*store_, "a", 3000, kNow);
  auto b = add_campaign(*store_, "b", 2, kNow + 10);
  ScheduleCursor cursor;
  const std::vector<CampaignId> held{a};
  auto due = store_->due(kNow + 100, 10, cursor, held);
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0].key.campaign, b);
  EXPECT_EQ(due[1].key.campaign, b);
  cursor.reset();
  EXPECT_EQ(store_->due(kNow + 100, SIZE_MAX, cursor).size(), 3002u);
}

TEST_F(ControlTest, AReaderOfAMissingQueueFailsAndCreatesNothing) {
  auto missing = (dir_.path() / "nothing-here").string();
  EXPECT_THROW(open_rocksdb_store(missing, Access::read_only), StoreError);
  EXPECT_FALSE(std::filesystem::exists(missing));
}

}  // namespace
}  // namespace kurier::queue::test
