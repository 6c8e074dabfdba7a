// Disk faults under the queue: a full and a read-only queue file system. kurier must
// refuse work it cannot record, with an error naming the queue and the cause, and lose
// nothing it had accepted once the space (or write access) comes back.
// Tests run as root, where chmod restricts nothing, so the faults are real file
// systems: a small tmpfs mounted on the queue directory inside a private mount
// namespace (util-linux `unshare -m`), held by a sleeping process; every kurier runs
// inside it through `nsenter -t PID -m`, and the test fills, frees or remounts it
// read-only the same way. Nothing is visible outside the namespace; the holder is
// stopped by PID and takes the tmpfs with it.
#include <gtest/gtest.h>

#include <signal.h>

#include <cstdio>
#include <sstream>
#include <thread>

#include "tests/integration/daemon_rig.h"

namespace kurier {
namespace {
namespace fs = std::filesystem;
using test::RunResult;

// Large enough for a few thousand recipients and RocksDB's files, small enough that
// RocksDB's WAL preallocation (1.1 x the 32 MB write buffer) cannot reserve room
// ahead: every WAL append then really needs free blocks.
constexpr const char* kQueueFsSize = "16m";

// A tmpfs on `dir` in a private mount namespace.
class QueueFilesystem {
 public:
  QueueFilesystem(const fs::path& dir, const fs::path& log) : dir_(dir) {
    const auto unshare = test::find_program("unshare");
    nsenter_ = test::find_program("nsenter");
    if (unshare.empty() || nsenter_.empty()) throw std::runtime_error("unshare and nsenter (util-linux) are required");
    holder_ = test::ChildProcess({unshare.string(), "-m", "--propagation", "private", "sh", "-c",
                                  std::string("mount -t tmpfs -o size=") + kQueueFsSize +
                                      " kurier-queue \"$0\" && echo mounted && exec sleep 600",
                                  dir.string()},
                                 log);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!fs::exists(log) || test::read_file(log).find("mounted") == std::string::npos) {
      if (!holder_.running() || std::chrono::steady_clock::now() >= deadline)
        throw std::runtime_error("cannot mount a tmpfs in a private mount namespace: " +
                                 (fs::exists(log) ? test::read_file(log) : std::string()));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ~QueueFilesystem() { holder_.stop(SIGKILL); }

  // Runs a command inside the namespace.
  std::vector<std::string> prefix() const {
    return {nsenter_.string(), "-t", std::to_string(holder_.pid()), "-m", "--"};
  }
  RunResult run(std::vector<std::string> argv) const {
    auto full = prefix();
    full.insert(full.end(), argv.begin(), argv.end());
    return test::run(full, std::chrono::seconds(30));
  }
  // Fills every free block with one file (dd stops at ENOSPC).
  void fill() const {
    run({"/bin/dd", "if=/dev/zero", "of=" + (dir_ / "filler").string(), "bs=64k"});
    auto df = run({"/bin/df", "--output=avail", "-B1", dir_.string()});
    std::istringstream fields(df.out);  // "Avail\n    0\n"
    std::string header;
    long long available = -1;
    fields >> header >> available;
    if (available != 0) throw std::runtime_error("queue fs not full: " + df.out);
  }
  void free_space() const { run({"/bin/rm", "-f", (dir_ / "filler").string()}); }
  // Remounting read-only needs no file open for writing on it (else EBUSY).
  void set_read_only(bool read_only) const {
    auto r = run({"/bin/mount", "-o", read_only ? "remount,ro" : "remount,rw", dir_.string()});
    if (r.exit_code != 0) throw std::runtime_error("remount failed: " + r.err);
  }

 private:
  fs::path dir_;
  fs::path nsenter_;
  test::ChildProcess holder_;
};

// A rig whose queue lives on a QueueFilesystem; every kurier runs in its namespace.
struct DiskRig {
  static constexpr int kWindow = 100;  // [engine] window

  explicit DiskRig(const std::string& tag, int reply_delay_ms = 0) {
    test::RigOptions options;
    options.subnet = "127.0.9";
    options.tag = tag;
    options.window = kWindow;
    options.reply_delay_ms = reply_delay_ms;
    rig = std::make_unique<test::DaemonRig>(options);
    queue_fs = std::make_unique<QueueFilesystem>(rig->queue_dir(), rig->root() / "holder.log");
    rig->set_prefix(queue_fs->prefix());
  }

  std::unique_ptr<test::DaemonRig> rig;
  std::unique_ptr<QueueFilesystem> queue_fs;  // destroyed first: the daemon still holds the namespace
};

// The error kurier prints must say where (the queue directory) and why.
void expect_names_queue_and_cause(const std::string& text, const fs::path& queue, const std::string& cause) {
  EXPECT_NE(text.find(queue.string()), std::string::npos) << "queue path missing from: " << text;
  EXPECT_NE(text.find(cause), std::string::npos) << "cause \"" << cause << "\" missing from: " << text;
}

// Counts per state from the ledger; checks each delivered recipient reached the sink.
struct Tally {
  int delivered = 0, pending = 0, lost = 0, duplicates = 0;
};
Tally tally(const test::Ledger& ledger, const test::DaemonRig& rig, int per_domain, const std::string& local = "u") {
  Tally t;
  for (int i = 0; i < per_domain; ++i)
    for (const auto& domain : rig.domains()) {
      const std::string rcpt = local + std::to_string(i) + "@" + domain;
      auto state = ledger.state.find(rcpt);
      auto copies = ledger.received.find(rcpt);
      const int received = copies == ledger.received.end() ? 0 : copies->second;
      if (state == ledger.state.end()) ++t.lost;
      else if (state->second == "delivered") (received > 0 ? ++t.delivered : ++t.lost);
      else if (state->second == "queued" || state->second == "deferred") ++t.pending;
      else ADD_FAILURE() << rcpt << " ended " << state->second;
      t.duplicates += received > 1 ? received - 1 : 0;
    }
  return t;
}

TEST(DiskFault, SendOnAFullQueueFailsNamingTheQueueAndTheCauseThenSucceedsWithSpace) {
  DiskRig disk("full");
  auto& rig = *disk.rig;
  const auto campaign = rig.write_campaign("full", 50);
  disk.queue_fs->fill();
  RunResult full = rig.kurier({"send", campaign.string(), "--no-progress"});
  EXPECT_NE(full.exit_code, 0) << full.out << full.err;
  EXPECT_NE(full.exit_code, 2) << "a full disk is not bad input";
  expect_names_queue_and_cause(full.err, rig.queue_dir(), "No space left on device");
  EXPECT_EQ(rig.sink_messages(), 0u) << "nothing may be sent whose outcome cannot be recorded";

  disk.queue_fs->free_space();
  RunResult again = rig.kurier({"send", campaign.string(), "--no-progress"});
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  const test::Ledger ledger = rig.ledger("full");
  const Tally t = tally(ledger, rig, 50);
  EXPECT_EQ(t.delivered, 200);
  EXPECT_EQ(t.lost, 0);
  EXPECT_EQ(t.duplicates, 0);
  std::printf("[ figures  ] send on a full queue: exit %d, \"%s\"; after freeing space: %d of 200 delivered, "
              "%d lost\n", full.exit_code, full.err.substr(0, full.err.find('\n')).c_str(), t.delivered, t.lost);
}

TEST(DiskFault, ReadOnlyQueueRefusesSendAndServeAndKeepsWhatItHad) {
  DiskRig disk("ro");
  auto& rig = *disk.rig;
  // An earlier campaign, accepted and half delivered: the daemon is killed mid-way.
  const auto first = rig.write_campaign("ro-first", 250);
  rig.start_serve();
  auto submitted = rig.kurier({"submit", first.string()});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.out << submitted.err;
  rig.wait_for_sink_messages(100, std::chrono::seconds(30));
  rig.stop_serve(SIGKILL);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the sink's stats file lags by up to 200 ms

  disk.queue_fs->set_read_only(true);
  const auto second = rig.write_campaign("ro-second", 10, "v");
  RunResult send = rig.kurier({"send", second.string(), "--no-progress"});
  EXPECT_NE(send.exit_code, 0) << send.out << send.err;
  EXPECT_NE(send.exit_code, 2);
  expect_names_queue_and_cause(send.err, rig.queue_dir(), "Read-only file system");

  const std::uint64_t sent_before = rig.sink_messages();
  rig.launch_serve();
  const int serve_status = rig.wait_serve(std::chrono::seconds(30));
  EXPECT_TRUE(WIFEXITED(serve_status) && WEXITSTATUS(serve_status) == 1) << serve_status << rig.serve_log();
  expect_names_queue_and_cause(rig.serve_log(), rig.queue_dir(), "Read-only file system");
  EXPECT_EQ(rig.sink_messages(), sent_before) << "a daemon that cannot record must not send";

  disk.queue_fs->set_read_only(false);
  rig.start_serve();
  ASSERT_TRUE(rig.wait_until_done("ro-first", 1000, std::chrono::seconds(60))) << rig.serve_log();
  EXPECT_EQ(rig.stop_serve(SIGTERM), 0);
  const Tally t = tally(rig.ledger("ro-first"), rig, 250);
  EXPECT_EQ(t.delivered, 1000);
  EXPECT_EQ(t.lost, 0);
  EXPECT_LE(t.duplicates, DiskRig::kWindow);
  std::printf("[ figures  ] read-only queue: send exit %d (\"%s\"), serve exit %d; after remounting rw: %d of 1000 "
              "delivered, %d lost, %d duplicates (window %d)\n",
              send.exit_code, send.err.substr(0, send.err.find('\n')).c_str(),
              WIFEXITED(serve_status) ? WEXITSTATUS(serve_status) : -1, t.delivered, t.lost, t.duplicates,
              DiskRig::kWindow);
}

TEST(DiskFault, DaemonWhoseQueueFillsUpStopsTakingWorkAndLosesNothing) {
  constexpr int kPerDomain = 500;  // 2,000 recipients
  // Replies slowed down so the disk fills while delivery is in full swing.
  DiskRig disk("fill", 2);
  auto& rig = *disk.rig;
  const auto campaign = rig.write_campaign("fill", kPerDomain);
  rig.start_serve();
  auto submitted = rig.kurier({"submit", campaign.string()});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.out << submitted.err;
  rig.wait_for_sink_messages(300, std::chrono::seconds(30));
  ASSERT_GE(rig.sink_messages(), 300u) << rig.serve_log();

  disk.queue_fs->fill();
  const std::uint64_t sent_at_fill = rig.sink_messages();  // up to 200 ms stale: a lower bound
  // The next group commit fails: the daemon stops dispatching, lets the open
  // transactions end and exits 1 with the error.
  const int status = rig.wait_serve(std::chrono::seconds(40));
  ASSERT_NE(status, -1) << "the daemon kept running on a full queue\n" << rig.serve_log();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the sink's stats file lags by up to 200 ms
  const std::uint64_t sent_at_exit = rig.sink_messages();
  expect_names_queue_and_cause(rig.serve_log(), rig.queue_dir(), "No space left on device");
  EXPECT_LT(sent_at_exit, static_cast<std::uint64_t>(4 * kPerDomain)) << "the campaign ended before the fault";
  // What was sent after the disk filled is bounded by the window (open transactions).
  EXPECT_LE(sent_at_exit - sent_at_fill, static_cast<std::uint64_t>(DiskRig::kWindow) + 50);

  // A restart while the disk is still full refuses to run.
  rig.launch_serve();
  const int full_restart = rig.wait_serve(std::chrono::seconds(30));
  EXPECT_TRUE(WIFEXITED(full_restart) && WEXITSTATUS(full_restart) == 1) << full_restart << rig.serve_log();
  EXPECT_EQ(rig.sink_messages(), sent_at_exit);

  disk.queue_fs->free_space();
  rig.start_serve();
  ASSERT_TRUE(rig.wait_until_done("fill", 4 * kPerDomain, std::chrono::seconds(60))) << rig.serve_log();
  EXPECT_EQ(rig.stop_serve(SIGTERM), 0);
  const test::Ledger ledger = rig.ledger("fill");
  const Tally t = tally(ledger, rig, kPerDomain);
  EXPECT_EQ(t.lost, 0);
  EXPECT_EQ(t.delivered, 4 * kPerDomain);
  EXPECT_LE(t.duplicates, DiskRig::kWindow);
  const std::string log = rig.serve_log();
  const auto failed_at = log.find("event=delivery_failed");
  if (failed_at != std::string::npos)
    std::printf("[ figures  ] daemon on a full queue logged: %s\n",
                log.substr(failed_at, log.find('\n', failed_at) - failed_at).c_str());
  std::printf("[ figures  ] queue filled after %llu of %d sent: daemon exited %d after %llu more sends; restart on "
              "the full disk exited %d; with space: %d delivered, %d lost, %d duplicates (window %d)\n",
              static_cast<unsigned long long>(sent_at_fill), 4 * kPerDomain,
              WIFEXITED(status) ? WEXITSTATUS(status) : -1,
              static_cast<unsigned long long>(sent_at_exit - sent_at_fill),
              WIFEXITED(full_restart) ? WEXITSTATUS(full_restart) : -1, t.delivered, t.lost, t.duplicates,
              DiskRig::kWindow);
}

TEST(DiskFault, SubmitToADaemonOnAFullQueueFailsAndTheDaemonStops) {
  DiskRig disk("submit");
  auto& rig = *disk.rig;
  const auto first = rig.write_campaign("submit-first", 25);
  const auto second = rig.write_campaign("submit-second", 25, "v");
  rig.start_serve();
  auto ok = rig.kurier({"submit", first.string()});
  ASSERT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  ASSERT_TRUE(rig.wait_until_done("submit-first", 100, std::chrono::seconds(30))) << rig.serve_log();

  disk.queue_fs->fill();
  RunResult refused = rig.kurier({"submit", second.string()});
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  expect_names_queue_and_cause(refused.err, rig.queue_dir(), "No space left on device");
  // The daemon cannot record anything now: it stops, exit 1, and says why.
  const int status = rig.wait_serve(std::chrono::seconds(30));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status << rig.serve_log();
  expect_names_queue_and_cause(rig.serve_log(), rig.queue_dir(), "No space left on device");

  disk.queue_fs->free_space();
  rig.start_serve();
  auto resubmitted = rig.kurier({"submit", second.string()});
  ASSERT_EQ(resubmitted.exit_code, 0) << resubmitted.out << resubmitted.err;
  EXPECT_NE(resubmitted.out.find("submitted"), std::string::npos) << "the refused intake left nothing behind: "
                                                                   << resubmitted.out;
  ASSERT_TRUE(rig.wait_until_done("submit-second", 100, std::chrono::seconds(30))) << rig.serve_log();
  EXPECT_EQ(rig.stop_serve(SIGTERM), 0);
  const Tally a = tally(rig.ledger("submit-first"), rig, 25);
  const Tally b = tally(rig.ledger("submit-second"), rig, 25, "v");
  EXPECT_EQ(a.delivered, 100);
  EXPECT_EQ(b.delivered, 100);
  EXPECT_EQ(a.lost + b.lost, 0);
  EXPECT_EQ(a.duplicates + b.duplicates, 0);
  std::printf("[ figures  ] submit to a daemon on a full queue: exit %d (\"%s\"), daemon exit %d; after freeing "
              "space: %d + %d of 200 delivered, %d lost\n",
              refused.exit_code, refused.err.substr(0, refused.err.find('\n')).c_str(),
              WIFEXITED(status) ? WEXITSTATUS(status) : -1, a.delivered, b.delivered, a.lost + b.lost);
}

}  // namespace
}  // namespace kurier
