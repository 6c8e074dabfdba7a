// A process killed in the middle of a campaign intake: the test re-runs this binary
// as a child that writes recipients until SIGKILL arrives, then reopens the store.
// Also checks the lock error across processes. Test thread; the child is stopped by PID.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include <signal.h>
#include <sys/wait.h>

#include "queue/store.h"
#include "tests/common/process.h"
#include "tests/queue/helpers.h"

namespace kurier::queue::test {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kNow = 1'700'000'000'000;
constexpr const char* kChildDbEnv = "KURIER_QUEUE_CRASH_DB";
// The child announces itself after this many recipients (several intake batches,
// several MB of WAL), then keeps writing until it is killed.
constexpr RecipientId kReadyAfter = 50'000;
// Bound on the child's work should the parent never kill it.
constexpr RecipientId kChildMax = 5'000'000;

std::uint64_t files_bytes(const fs::path& dir) {
  std::uint64_t total = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    auto ext = e.path().extension();
    if (ext == ".sst" || ext == ".log") total += e.file_size();
  }
  return total;
}

// Child side, run only through the parent test below (DISABLED_ keeps it out of
// normal runs; the parent passes --gtest_also_run_disabled_tests).
TEST(QueueCrashChild, DISABLED_IntakeUntilKilled) {
  const char* db = std::getenv(kChildDbEnv);
  ASSERT_NE(db, nullptr);
  auto store = open_rocksdb_store(db);
  auto writer = store->begin_campaign(make_campaign("crashing"));
  for (RecipientId r = 1; r <= kChildMax; ++r) {
    writer->add(make_recipient(r, kNow - 1000));
    if (r == kReadyAfter) kurier::test::write_file(fs::path(db).parent_path() / "ready", "ready");
  }
  // Not killed in time: leave without commit the hard way.
  std::quick_exit(3);
}

TEST(QueueCrash, IntakeKilledMidwayIsInvisibleAndReclaimedAfterReopen) {
  kurier::test::TempDir dir;
  const auto db = (dir.path() / "queue").string();
  CampaignId kept = 0;
  std::uint64_t base_bytes = 0;
  {
    auto store = open_rocksdb_store(db);
    kept = add_campaign(*store, "kept", 10, kNow);
    base_bytes = store->disk_bytes();
  }

  ::setenv(kChildDbEnv, db.c_str(), 1);
  kurier::test::ChildProcess child({fs::read_symlink("/proc/self/exe").string(),
                                    "--gtest_filter=QueueCrashChild.DISABLED_IntakeUntilKilled",
                                    "--gtest_also_run_disabled_tests"},
                                   dir.path() / "child.log");
  ::unsetenv(kChildDbEnv);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!fs::exists(dir.path() / "ready") && child.running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(fs::exists(dir.path() / "ready")) << kurier::test::read_file(dir.path() / "child.log");

  // While the child holds the store, another process cannot open it.
  try {
    open_rocksdb_store(db);
    ADD_FAILURE() << "opened a store held by another process";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("lock held by another process (is kurier serve running?)"),
              std::string::npos)
        << e.what();
  }

  int status = child.stop(SIGKILL);
  ASSERT_TRUE(WIFSIGNALED(status)) << status;
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  const auto crashed_bytes = files_bytes(db);
  EXPECT_GT(crashed_bytes, base_bytes + 2'000'000);

  auto store = open_rocksdb_store(db);
  EXPECT_FALSE(store->find_campaign("crashing"));
  ASSERT_EQ(store->campaigns().size(), 1u);
  EXPECT_EQ(store->campaigns()[0].id, kept);
  EXPECT_FALSE(store->recipient({kept + 1, 1}));
  EXPECT_EQ(store->counts(kept + 1).total(), 0u);
  auto due = all_due(*store, kNow);
  EXPECT_EQ(due.size(), 10u);
  for (const auto& r : due) EXPECT_EQ(r.key.campaign, kept);
  EXPECT_EQ(store->next_due_ms(), kNow);
  const auto reopened_bytes = store->disk_bytes();
  std::printf("[ queue    ] disk bytes: before child %llu, after kill %llu, after reopen %llu\n",
              static_cast<unsigned long long>(base_bytes), static_cast<unsigned long long>(crashed_bytes),
              static_cast<unsigned long long>(reopened_bytes));
  EXPECT_LT(reopened_bytes, base_bytes + 200'000);

  // The name is free again, and the crashed campaign's id is not reused.
  auto w = store->begin_campaign(make_campaign("crashing"));
  EXPECT_GT(w->id(), kept + 1);
  w->add(make_recipient(1, kNow));
  w->commit();
  EXPECT_EQ(all_due(*store, kNow).size(), 11u);
}

}  // namespace
}  // namespace kurier::queue::test
