// The CLI's shared pieces: open_queue's one message for a queue another process
// holds (engine/cli/cli_support.h) and the SignalWatcher (engine/cli/signals.h).
// Signal tests run in a forked child (EXPECT_EXIT) so that no other thread of the
// test process can receive the signal. Test thread only.
#include <gtest/gtest.h>

#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "engine/cli/cli_support.h"
#include "engine/cli/signals.h"
#include "tests/common/process.h"

namespace kurier::engine {
namespace {

TEST(OpenQueue, AQueueHeldByAnotherOpenSaysWhatToDo) {
  test::TempDir dir;
  Config config;
  config.queue.path = dir.path() / "queue";
  config.bounce.listen = "127.0.0.1:2526";
  auto held = open_queue(config);
  try {
    open_queue(config);
    FAIL() << "second open succeeded";
  } catch (const queue::StoreError& e) {
    EXPECT_TRUE(e.is_lock_held()) << e.what();
    const std::string what = e.what();
    EXPECT_NE(what.find("the queue " + config.queue.path.string() + " is in use"), std::string::npos) << what;
    EXPECT_NE(what.find("kurier serve"), std::string::npos) << what;
    EXPECT_NE(what.find("[bounce] listen = \"127.0.0.1:2526\""), std::string::npos) << what;
  }
}

TEST(OpenQueue, CreatesTheDirectory) {
  test::TempDir dir;
  Config config;
  config.queue.path = dir.path() / "a" / "b";
  EXPECT_TRUE(open_queue(config));
  EXPECT_TRUE(std::filesystem::is_directory(config.queue.path));
}

TEST(OptionalPath, EmptyIsNotGiven) {
  EXPECT_FALSE(optional_path(""));
  EXPECT_EQ(optional_path("k.toml"), std::filesystem::path("k.toml"));
}

// In the child: SIGTERM to the process is counted, wakes fd() and reaches on_signal.
[[noreturn]] void watch_one_sigterm() {
  std::atomic<int> seen{0};
  SignalWatcher watcher([&seen](int signal) { seen = signal; });
  ::kill(::getpid(), SIGTERM);
  pollfd fd{watcher.fd(), POLLIN, 0};
  const bool woke = ::poll(&fd, 1, 5000) == 1;
  for (int i = 0; i < 500 && seen == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::_Exit(woke && watcher.count() == 1 && seen == SIGTERM ? 0 : 1);
}

TEST(SignalWatcher, CountsWakesAndCallsBack) {
  EXPECT_EXIT(watch_one_sigterm(), ::testing::ExitedWithCode(0), "");
}

TEST(SignalWatcher, DieByEndsTheProcessByThatSignal) {
  EXPECT_EXIT(
      {
        SignalWatcher watcher;
        SignalWatcher::die_by(SIGINT);
      },
      ::testing::KilledBySignal(SIGINT), "");
}

}  // namespace
}  // namespace kurier::engine
