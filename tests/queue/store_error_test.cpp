// The kinds of StoreError (queue/store.h) that a test can provoke on a real RocksDB
// store: a held lock, a corrupt database, a path that cannot be a queue, and the
// store's own misuse errors. Test thread only.
#include <gtest/gtest.h>

#include "queue/store.h"
#include "tests/common/process.h"
#include "tests/queue/helpers.h"

namespace kurier::queue::test {
namespace {

constexpr std::int64_t kNow = 1'700'000'000'000;

class StoreErrorTest : public StoreFixture {};

// Runs `fn`, which must throw a StoreError, and returns it.
template <typename Fn>
StoreError thrown_by(Fn&& fn) {
  try {
    fn();
  } catch (const StoreError& e) {
    return e;
  }
  ADD_FAILURE() << "no StoreError thrown";
  return StoreError("none");
}

TEST_F(StoreErrorTest, SecondOpenOfTheSamePathIsLockHeld) {
  const auto e = thrown_by([&] { open_rocksdb_store(path()); });
  EXPECT_TRUE(e.is_lock_held()) << e.what();
  EXPECT_EQ(e.kind(), StoreError::Kind::lock_held);
  EXPECT_FALSE(e.is_io_error());
  EXPECT_FALSE(e.is_no_space());
  EXPECT_FALSE(e.is_corruption());
}

TEST_F(StoreErrorTest, UnreadableCurrentFileIsCorruption) {
  store_.reset();
  // RocksDB's CURRENT names the live MANIFEST and must end with a newline.
  kurier::test::write_file(dir_.path() / "queue" / "CURRENT", "garbage");
  const auto e = thrown_by([&] { open_rocksdb_store(path()); });
  EXPECT_TRUE(e.is_corruption()) << e.what();
  EXPECT_FALSE(e.is_lock_held());
}

TEST_F(StoreErrorTest, APathThatIsAFileIsAnIoError) {
  kurier::test::write_file(dir_.path() / "file", "not a directory");
  const auto e = thrown_by([&] { open_rocksdb_store((dir_.path() / "file").string()); });
  EXPECT_TRUE(e.is_io_error()) << e.what();
  EXPECT_FALSE(e.is_lock_held());
}

TEST_F(StoreErrorTest, MisuseIsKindOther) {
  add_campaign(*store_, "dup", 1, kNow);
  const auto e = thrown_by([&] { store_->begin_campaign(make_campaign("dup")); });
  EXPECT_EQ(e.kind(), StoreError::Kind::other) << e.what();
}

TEST(StoreErrorKind, DefaultsToOtherAndKeepsTheMessage) {
  const StoreError plain("queue: something");
  EXPECT_EQ(plain.kind(), StoreError::Kind::other);
  EXPECT_STREQ(plain.what(), "queue: something");
  const StoreError full("queue: full", StoreError::Kind::no_space);
  EXPECT_TRUE(full.is_no_space());
  EXPECT_FALSE(full.is_io_error());
}

}  // namespace
}  // namespace kurier::queue::test
