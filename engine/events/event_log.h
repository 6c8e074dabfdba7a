// The event log: one JSON line per event (event.h) appended to a file after the queue
// commit that it reports, rotated by size, read back by the webhooks (event_reader.h).
//
// Files: the live file `F` (e.g. <queue>/events.jsonl) and rotated ones `F.<seq>`,
// numbered 1, 2, 3, ... in the order they were written; the live file is the one
// after the highest rotated number. A (seq, offset) position therefore stays valid
// across rotation: the bytes at an offset of file seq never change.
//
// Ids: each event gets the next number of a counter that continues across rotation
// and restarts (at open) from the last id on disk, so ids are unique and a line read
// twice has the same id: a webhook receiver dedupes on it. A gap in ids means lines
// lost (rotated files deleted before they were read).
//
// Durability: append() is one write() per batch into the page cache, no fsync (the
// queue is the record; the log is a copy of it for other systems). A crash of the
// process loses nothing written; a torn last line (a crash of the machine mid-write)
// is cut off when the log next opens.
//
// Threading: append() is thread-safe (a mutex; callers are the delivery result
// writer, intake and the bounce threads) and never throws: an I/O error is logged,
// counted (kurier_event_log_errors_total) and the batch dropped; delivery goes on.
// The constructor throws std::runtime_error when the file cannot be opened.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "engine/events/event.h"

namespace kurier::engine {

struct GlobalCounters;  // engine/ops/metrics.h

struct EventLogOptions {
  std::filesystem::path file;                 // the live file
  std::uint64_t max_bytes = 256ull << 20;     // rotate at this size
  std::uint32_t keep = 10;                    // rotated files kept
};

// The files of a log as they are on disk now.
struct LogFiles {
  std::vector<std::uint64_t> rotated;  // sequence numbers of F.<seq>, ascending
  std::uint64_t live_seq = 1;          // the live file's sequence number
  std::uint64_t oldest() const { return rotated.empty() ? live_seq : rotated.front(); }
};
LogFiles list_log_files(const std::filesystem::path& file);
std::filesystem::path rotated_file(const std::filesystem::path& file, std::uint64_t seq);

class EventLog final : public EventSink {
 public:
  explicit EventLog(EventLogOptions options, GlobalCounters* counters = nullptr);
  ~EventLog() override;
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Writes the batch with consecutive ids (each event's own id is ignored).
  void append(std::span<const EventRecord> events) noexcept override;

  const std::filesystem::path& file() const { return options_.file; }
  std::uint64_t written() const { return written_.load(std::memory_order_relaxed); }
  std::uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }
  std::uint64_t next_id() const;

 private:
  void open_live();
  void rotate();
  bool write_all(const std::string& data);

  const EventLogOptions options_;
  GlobalCounters* const counters_;
  mutable std::mutex mutex_;  // guards everything below
  int fd_ = -1;
  std::uint64_t seq_ = 1;     // the live file's sequence number
  std::uint64_t size_ = 0;    // bytes in the live file (all whole lines)
  std::uint64_t next_id_ = 1;
  std::atomic<std::uint64_t> written_{0}, errors_{0};
};

// The id of the last whole line of `path` (nullopt: empty or unreadable). Cuts a torn
// last line off first when `cut_torn_tail` (the writer at open).
std::optional<std::uint64_t> last_event_id(const std::filesystem::path& path, bool cut_torn_tail);

// The id at the start of a line ({"id":N,...}); nullopt if the line does not start so.
std::optional<std::uint64_t> line_id(std::string_view line);
// The type name of a line ({"id":N,"type":"T",...}); "" if not there.
std::string_view line_type(std::string_view line);

}  // namespace kurier::engine
