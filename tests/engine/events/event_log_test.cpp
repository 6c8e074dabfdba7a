// The event log on a real directory: one line per event, ids unique and stable across
// rotation and reopening, rotation by size keeping `keep` files, a torn last line cut
// at open, and a reader position that stays valid across rotation (and counts what
// rotation deleted before it was read).
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/events/event_log.h"
#include "engine/events/event_reader.h"
#include "tests/common/process.h"

namespace kurier::engine {
namespace {

namespace fs = std::filesystem;

std::vector<EventRecord> events(int n, const std::string& campaign = "c1") {
  std::vector<EventRecord> out;
  for (int i = 0; i < n; ++i) {
    EventRecord e;
    e.type = i % 2 ? EventType::bounced : EventType::delivered;
    e.time_ms = 1'700'000'000'000 + i;
    e.campaign = campaign;
    e.recipient = "user" + std::to_string(i) + "@example.com";
    e.text = "250 2.0.0 ok";
    out.push_back(e);
  }
  return out;
}

// Every id of every line in the live file and the rotated ones, in file order.
std::vector<std::uint64_t> all_ids(const fs::path& file) {
  std::vector<std::uint64_t> ids;
  LogPosition p;
  for (;;) {
    ReadBatch b = read_events(file, p, 1000);
    for (const auto& line : b.lines) ids.push_back(nlohmann::json::parse(line).at("id").get<std::uint64_t>());
    if (b.lines.empty()) break;
    p = b.end;
  }
  return ids;
}

TEST(EventLog, WritesOneJsonLinePerEventWithTheDesignFields) {
  test::TempDir dir;
  EventLog log({dir.path() / "events.jsonl"});
  log.append(events(3));
  const std::string text = test::read_file(dir.path() / "events.jsonl");
  ASSERT_EQ(std::count(text.begin(), text.end(), '\n'), 3);
  auto first = nlohmann::json::parse(text.substr(0, text.find('\n')));
  for (const char* key : {"id", "type", "time", "campaign", "recipient", "sender", "source", "mx", "ip", "tls",
                          "attempt", "code", "enhanced", "text", "reason", "category", "queued_time", "size", "node"})
    EXPECT_TRUE(first.contains(key)) << key;
  EXPECT_EQ(first["id"], 1);
  EXPECT_EQ(first["type"], "delivered");
  EXPECT_EQ(first["time"], "2023-11-14T22:13:20.000Z");
  EXPECT_TRUE(text.starts_with("{\"id\":1,\"type\":\"delivered\","));
  EXPECT_EQ(log.written(), 3u);
}

TEST(EventLog, RotatesBySizeKeepsKeepFilesAndIdsStayUniqueAndOrdered) {
  test::TempDir dir;
  const fs::path file = dir.path() / "events.jsonl";
  {
    EventLog log({file, 4096, 3});
    for (int i = 0; i < 40; ++i) log.append(events(5));  // ~200 lines of ~330 bytes: many rotations
  }
  const LogFiles files = list_log_files(file);
  EXPECT_EQ(files.rotated.size(), 3u) << "keep = 3";
  EXPECT_GT(files.rotated.front(), 1u) << "the oldest were deleted";
  EXPECT_EQ(files.live_seq, files.rotated.back() + 1);
  for (auto seq : files.rotated) EXPECT_LE(fs::file_size(rotated_file(file, seq)), 4096u + 5 * 512);
  const auto ids = all_ids(file);
  ASSERT_FALSE(ids.empty());
  for (std::size_t i = 1; i < ids.size(); ++i) ASSERT_EQ(ids[i], ids[i - 1] + 1) << "consecutive, no repeats";
  EXPECT_EQ(ids.back(), 200u) << "the newest kept line is the 200th event";

  EventLog reopened({file, 4096, 3});  // the counter continues from the disk
  EXPECT_EQ(reopened.next_id(), 201u);
}

TEST(EventLog, IdsContinueAfterReopenEvenWhenTheLiveFileIsEmpty) {
  test::TempDir dir;
  const fs::path file = dir.path() / "events.jsonl";
  {
    EventLog log({file, 1000, 5});
    log.append(events(4));  // > 1000 bytes: rotated right after, live file empty
  }
  EXPECT_EQ(fs::file_size(file), 0u);
  EventLog again({file, 1000, 5});
  EXPECT_EQ(again.next_id(), 5u) << "read from the newest rotated file";
}

TEST(EventLog, CutsATornLastLineAtOpen) {
  test::TempDir dir;
  const fs::path file = dir.path() / "events.jsonl";
  { EventLog({file}).append(events(2)); }
  const std::string whole = test::read_file(file);
  test::write_file(file, whole + "{\"id\":3,\"type\":\"deliv");  // a crash mid-write
  EventLog log({file});
  EXPECT_EQ(test::read_file(file), whole) << "the torn line is gone";
  EXPECT_EQ(log.next_id(), 3u) << "its id is given again: nobody could have read it";
  log.append(events(1));
  auto lines = read_events(file, {}, 10).lines;
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(line_id(lines[2]), 3u);
}

TEST(EventLog, ConcurrentAppendsNeverInterleaveLines) {
  test::TempDir dir;
  const fs::path file = dir.path() / "events.jsonl";
  EventLog log({file});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&log, t] {
      for (int i = 0; i < 50; ++i) log.append(events(10, "c" + std::to_string(t)));
    });
  for (auto& t : threads) t.join();
  std::set<std::uint64_t> ids;
  for (const auto& line : read_events(file, {}, 10000).lines) {
    auto j = nlohmann::json::parse(line);  // throws on an interleaved line
    ids.insert(j["id"].get<std::uint64_t>());
  }
  EXPECT_EQ(ids.size(), 2000u);
  EXPECT_EQ(*ids.rbegin(), 2000u);
}

TEST(EventLog, AWriteErrorIsCountedNotThrown) {
  test::TempDir dir;
  const fs::path file = dir.path() / "events.jsonl";
  EventLog log({file, 1000, 2});
  fs::remove_all(dir.path());  // the directory vanishes: the rotation cannot reopen
  log.append(events(4));       // written to the unlinked file, then the reopen fails
  EXPECT_NO_THROW(log.append(events(2)));
  EXPECT_EQ(log.errors(), 2u);
}

TEST(EventReader, PositionStaysValidAcrossRotation) {
  test::TempDir dir;
  const fs::path file = dir.path() / "events.jsonl";
  EventLog log({file, 2000, 10});
  log.append(events(3));
  ReadBatch first = read_events(file, {}, 2);
  ASSERT_EQ(first.lines.size(), 2u);
  EXPECT_EQ(line_id(first.lines[1]), 2u);
  for (int i = 0; i < 6; ++i) log.append(events(3));  // rotates the file the position is in
  ASSERT_GE(list_log_files(file).rotated.size(), 2u);
  // The saved position, reloaded, continues exactly after the second line.
  LogPosition saved = *position_from_string(to_string(first.end));
  EXPECT_EQ(saved, first.end);
  ReadBatch rest = read_events(file, saved, 1000);
  std::vector<std::uint64_t> ids;
  for (;;) {
    for (const auto& l : rest.lines) ids.push_back(*line_id(l));
    if (rest.lines.empty()) break;
    rest = read_events(file, rest.end, 1000);
  }
  ASSERT_EQ(ids.size(), 19u);
  EXPECT_EQ(ids.front(), 3u);
  EXPECT_EQ(ids.back(), 21u);
  EXPECT_EQ(rest.lost, 0u);
}

TEST(EventReader, APositionInADeletedFileSkipsToTheOldestKeptAndCountsTheLoss) {
  test::TempDir dir;
  const fs::path file = dir.path() / "events.jsonl";
  EventLog log({file, 1000, 1});
  log.append(events(1));
  ReadBatch first = read_events(file, {}, 1);
  ASSERT_EQ(first.lines.size(), 1u);
  for (int i = 0; i < 10; ++i) log.append(events(4));  // each batch rotates; one file kept
  ReadBatch next = read_events(file, first.end, 1000);
  ASSERT_FALSE(next.lines.empty());
  const auto first_kept = *line_id(next.lines.front());
  EXPECT_GT(first_kept, 2u);
  EXPECT_EQ(next.lost, first_kept - 2) << "ids 2 .. first_kept-1 were rotated away unread";
}

TEST(EventReader, NoLogYetReadsNothing) {
  test::TempDir dir;
  ReadBatch b = read_events(dir.path() / "events.jsonl", {}, 10);
  EXPECT_TRUE(b.lines.empty());
  EXPECT_EQ(b.lost, 0u);
}

}  // namespace
}  // namespace kurier::engine
